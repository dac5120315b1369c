"""Decode one frame of Pixel Data into a numpy array.

Native little-endian monochrome 8/16-bit data — the bulk of CT/MR/CR/DX — is read straight from
the file with one ``os.pread`` and ``np.frombuffer``. Everything else goes through pydicom's
``pydicom.pixels`` decoders, positioned at the Pixel Data value so the header is not re-parsed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.pixels import get_decoder, pixel_array

from media.imaging.errors import (
    FrameNotFoundError,
    ImagingError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
    is_decoder_failure,
)
from media.imaging.image_model import ImageModel

log = logging.getLogger(__name__)

_LITTLE_ENDIAN_NATIVE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
#: Above this many distinct stored values a lookup table stops being cheaper than direct maths.
MAX_LUT_ENTRIES = 1 << 16


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """A decoded frame in the form rendering wants.

    Monochrome: ``index`` holds ``stored - domain_min`` in the smallest unsigned dtype so a
    rendered frame is ``np.take(lut, index)``; frames whose value range is too wide for a LUT
    keep their raw ``stored`` values instead. Color: ``rgb`` is final 8-bit RGB.
    """

    frame: int
    domain_min: int = 0
    domain_max: int = 0
    index: np.ndarray | None = None
    stored: np.ndarray | None = None
    rgb: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.index, self.stored, self.rgb) if a is not None) + 128


def stored_dtype(model: ImageModel) -> np.dtype:
    """The little-endian numpy dtype of the stored values (PS3.5 8.1.1)."""
    if model.bits_allocated <= 8:
        return np.dtype("i1" if model.pixel_representation else "u1")
    size = {16: 2, 32: 4, 64: 8}.get(model.bits_allocated)
    if size is None:
        raise InvalidDicomError(f"Bits Allocated {model.bits_allocated} is not supported")
    return np.dtype(f"<{'i' if model.pixel_representation else 'u'}{size}")


def check_frame(model: ImageModel, frame: int) -> None:
    if not model.has_pixels:
        raise FrameNotFoundError("this instance has no pixel data, so it has no frames")
    if not isinstance(frame, int) or isinstance(frame, bool) or not 1 <= frame <= model.frames:
        raise FrameNotFoundError(
            f"frame {frame} does not exist; this instance has frames 1 to {model.frames}"
        )


def _fast_path(model: ImageModel) -> bool:
    pixel = model.pixel
    return (
        pixel is not None
        and pixel.offset is not None
        and not pixel.encapsulated
        and pixel.transfer_syntax_uid in _LITTLE_ENDIAN_NATIVE
        and model.samples_per_pixel == 1
        and model.bits_allocated in (8, 16)
        and model.bits_stored <= model.bits_allocated
    )


def _read_native(path: str | os.PathLike[str], model: ImageModel, frame: int) -> np.ndarray:
    assert model.pixel is not None and model.pixel.offset is not None
    dtype = stored_dtype(model)
    frame_length = model.rows * model.columns * dtype.itemsize
    if model.pixel.length is not None and model.pixel.length < frame_length * model.frames:
        raise InvalidDicomError(
            f"Pixel Data holds {model.pixel.length} bytes but {model.frames} frame(s) of "
            f"{model.rows}x{model.columns} need {frame_length * model.frames}"
        )
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, frame_length, model.pixel.offset + (frame - 1) * frame_length)
    finally:
        os.close(fd)
    if len(data) != frame_length:
        raise InvalidDicomError(f"the file is truncated inside frame {frame} of the Pixel Data")
    arr = np.frombuffer(data, dtype=dtype).reshape(model.rows, model.columns)
    if shift := model.bits_allocated - model.bits_stored:
        # Same as pydicom: the unused high bits carry no meaning (PS3.5 8.1.1), so shift them
        # out and back; an arithmetic right shift on the signed dtype sign-extends.
        arr = np.right_shift(np.left_shift(arr, shift), shift)
    return arr


def _decode_with_pydicom(
    path: str | os.PathLike[str], model: ImageModel, frame: int, *, raw: bool
) -> np.ndarray:
    pixel = model.pixel
    assert pixel is not None
    try:
        decoder = get_decoder(pixel.transfer_syntax_uid)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(
            f"no decoder for transfer syntax {pixel.transfer_syntax_uid}"
        ) from None
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"no installed plugin can decode transfer syntax {pixel.transfer_syntax_uid}"
        )
    try:
        if pixel.offset is None:
            # Deflated: offsets are meaningless in the compressed stream, so parse fully.
            ds = pydicom.dcmread(path)
            return pixel_array(ds, index=frame - 1, raw=raw)
        with open(path, "rb") as fp:
            fp.seek(pixel.offset)
            arr, _meta = decoder.as_array(
                fp, index=frame - 1, raw=raw, validate=True, **pixel.decode_options
            )
            return arr
    except ImagingError:
        raise
    except FileNotFoundError:
        raise
    except BaseException as exc:  # plugins raise anything from ValueError to a Rust panic
        if not is_decoder_failure(exc):
            raise
        raise InvalidDicomError(f"frame {frame} could not be decoded: {exc}") from exc


def decode_stored(
    path: str | os.PathLike[str], model: ImageModel, frame: int, *, raw: bool = False
) -> np.ndarray:
    """Stored values of 1-based `frame`: (rows, cols) or (rows, cols, samples).

    With ``raw=False`` YBR_FULL/YBR_FULL_422 come back as RGB (pydicom's conversion); JPEG and
    JPEG 2000 decoders already undo YBR_ICT/YBR_RCT and the JPEG colour transform.
    """
    check_frame(model, frame)
    if _fast_path(model) and model.is_monochrome:
        return _read_native(path, model, frame)
    arr = _decode_with_pydicom(path, model, frame, raw=raw)
    expected = (model.rows, model.columns) + (
        (model.samples_per_pixel,) if model.samples_per_pixel > 1 else ()
    )
    if arr.shape != expected:
        raise InvalidDicomError(f"frame {frame} decoded to shape {arr.shape}, expected {expected}")
    return arr


def _smallest_unsigned(span: int) -> np.dtype:
    if span <= 0xFF:
        return np.dtype(np.uint8)
    if span <= 0xFFFF:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _to_rgb8(arr: np.ndarray, model: ImageModel) -> np.ndarray:
    # Color images are rendered as stored: a VOI window is a grayscale concept (PS3.3 C.11.2
    # applies to MONOCHROME only), so only bit depth is reduced here.
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    bits = model.bits_stored or model.bits_allocated
    scale = 255.0 / ((1 << bits) - 1)
    out = np.rint(arr.astype(np.float64) * scale)
    return np.clip(out, 0, 255).astype(np.uint8)


def decode_frame(path: str | os.PathLike[str], model: ImageModel, frame: int) -> DecodedFrame:
    """Decode 1-based `frame` into the representation the renderer caches."""
    check_frame(model, frame)
    if model.photometric_interpretation == "PALETTE COLOR":
        arr = decode_stored(path, model, frame)
        assert model.palette is not None
        rgb = np.take(model.palette, arr.astype(np.intp, copy=False), axis=0, mode="clip")
        return DecodedFrame(frame=frame, rgb=rgb)
    if not model.is_monochrome:
        return DecodedFrame(frame=frame, rgb=_to_rgb8(decode_stored(path, model, frame), model))
    arr = decode_stored(path, model, frame)
    lo = int(arr.min())
    hi = int(arr.max())
    span = hi - lo
    if span >= MAX_LUT_ENTRIES:
        return DecodedFrame(frame=frame, domain_min=lo, domain_max=hi, stored=arr)
    dtype = _smallest_unsigned(span)
    if arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)
    # Big-endian decodes come back as '>i2'; the unsigned view below must be native order.
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    # Subtract in the same-width unsigned view: the result wraps modulo 2^bits, which is exact
    # because span < 2^16 fits, and it avoids a widening copy (one pass over the pixels).
    unsigned = arr.view(np.dtype(f"u{arr.dtype.itemsize}"))
    offset = np.array(lo).astype(np.int64).astype(unsigned.dtype)
    index = np.subtract(unsigned, offset) if lo else unsigned
    if index.dtype != dtype:
        index = index.astype(dtype)
    index.setflags(write=False)
    return DecodedFrame(frame=frame, domain_min=lo, domain_max=hi, index=index)


def frame_stored_bytes(decoded: DecodedFrame, model: ImageModel) -> bytes:
    """Little-endian stored values of a cached monochrome frame (WADO-RS octet-stream)."""
    dtype = stored_dtype(model)
    if decoded.index is not None:
        values = decoded.index.astype(np.int64) + decoded.domain_min
        return values.astype(dtype).tobytes()
    assert decoded.stored is not None
    return decoded.stored.astype(dtype).tobytes()

"""Ingest-time validation (STOW-RS): decide whether a file may be stored, before writing it.

Everything the renderer later relies on is checked here, so a stored file renders or fails only
for reasons outside our control (a decoder bug), and the uploader hears what is wrong at once.
"""

from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

from media.imaging.errors import (
    ImageTooLargeError,
    ImagingError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
)
from media.imaging.image_model import (
    _UNDEFINED_LENGTH,
    PixelLocation,
    _locate_pixel_data,
    model_from_dataset,
)

_UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_PHOTOMETRIC_SAMPLES = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
    "YBR_PARTIAL_420": 3,
}
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD


class _ShortReadDetector(io.BytesIO):
    """BytesIO that notices reads cut short by the end of the data.

    pydicom (in its default lenient mode) stops quietly at an unexpected end of file and returns
    a partial dataset; switching it to strict mode is process-global, so instead watch the reads.
    Its element loop legitimately ends with an 8-byte header read that returns nothing.
    """

    truncated = False

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if size is not None and size > 0 and len(chunk) < size and (chunk or size != 8):
            self.truncated = True
        return chunk


def is_valid_uid(value: str) -> bool:
    """PS3.5 9.1: digits and dots, no leading zeros in a component, at most 64 characters."""
    return 0 < len(value) <= 64 and _UID_RE.fullmatch(value) is not None


def _check_fragments(data: bytes, offset: int, little_endian: bool) -> int:
    """Walk the encapsulated items (PS3.5 A.4) to prove the value is complete; returns count."""
    endian = "<" if little_endian else ">"
    pos, items = offset, 0
    while True:
        if pos + 8 > len(data):
            raise InvalidDicomError(
                "the file is truncated inside the encapsulated Pixel Data (no sequence delimiter)"
            )
        group, elem, length = struct.unpack_from(f"{endian}HHL", data, pos)
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQUENCE_DELIMITER:
            return items
        if tag != _ITEM:
            raise InvalidDicomError(
                f"the encapsulated Pixel Data has an unexpected tag ({group:04X},{elem:04X})"
            )
        if length == _UNDEFINED_LENGTH or pos + length > len(data):
            raise InvalidDicomError("the file is truncated inside a Pixel Data fragment")
        pos += length
        items += 1


def _check_transfer_syntax(tsyntax: UID) -> None:
    if not tsyntax.is_encapsulated:
        if not tsyntax.is_transfer_syntax:
            raise UnsupportedTransferSyntaxError(
                f"transfer syntax {tsyntax} is not one this server knows how to read"
            )
        return
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        name = tsyntax.name if tsyntax.name != str(tsyntax) else "unknown"
        raise UnsupportedTransferSyntaxError(
            f"pixel data in transfer syntax {tsyntax} ({name}) cannot be decoded by this server"
        ) from None
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"pixel data in transfer syntax {tsyntax} ({tsyntax.name}) needs a decoder plugin "
            "that is not installed"
        )


def _check_pixels(ds: Dataset, tsyntax: UID, max_pixels: int) -> None:
    missing = [
        k
        for k in (
            "Rows",
            "Columns",
            "BitsAllocated",
            "SamplesPerPixel",
            "PhotometricInterpretation",
        )
        if ds.get(k) in (None, "")
    ]
    if missing:
        raise InvalidDicomError(f"Pixel Data is present but {', '.join(missing)} is missing")
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames_value = ds.get("NumberOfFrames")
    try:
        frames = int(frames_value) if frames_value not in (None, "") else 1
    except (TypeError, ValueError):
        raise InvalidDicomError(f"Number of Frames {frames_value!r} is not a number") from None
    if rows < 1 or columns < 1 or frames < 1:
        raise InvalidDicomError(
            f"image size Rows={rows} Columns={columns} Number of Frames={frames} is not positive"
        )
    if rows * columns * frames > max_pixels:
        raise ImageTooLargeError(
            f"image has {rows}x{columns} pixels x {frames} frame(s) = {rows * columns * frames} "
            f"pixels, over the limit of {max_pixels}"
        )
    bits_allocated = int(ds.BitsAllocated)
    bits_stored = int(ds.get("BitsStored") or bits_allocated)
    if bits_allocated not in (1, 8, 16, 32):
        raise InvalidDicomError(f"Bits Allocated {bits_allocated} is not 1, 8, 16 or 32")
    if not 1 <= bits_stored <= bits_allocated:
        raise InvalidDicomError(
            f"Bits Stored {bits_stored} must be between 1 and Bits Allocated {bits_allocated}"
        )
    if int(ds.get("PixelRepresentation") or 0) not in (0, 1):
        raise InvalidDicomError("Pixel Representation must be 0 (unsigned) or 1 (signed)")
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    samples = int(ds.SamplesPerPixel)
    expected_samples = _PHOTOMETRIC_SAMPLES.get(photometric)
    if expected_samples is None:
        raise InvalidDicomError(f"Photometric Interpretation {photometric!r} is not supported")
    if samples != expected_samples:
        raise InvalidDicomError(
            f"{photometric} needs Samples per Pixel {expected_samples}, the file says {samples}"
        )
    _check_transfer_syntax(tsyntax)
    if tsyntax.is_encapsulated:
        _check_frames(ds, frames)
    else:
        expected = get_expected_length(ds, "bytes")
        actual = len(ds.PixelData)
        if actual < expected:
            raise InvalidDicomError(
                f"Pixel Data has {actual} bytes but {rows}x{columns}x{samples} samples x "
                f"{frames} frame(s) at {bits_allocated} bits need {expected} (truncated file?)"
            )
    # Build the rendering model now so malformed LUTs/palettes are rejected at upload time.
    model_from_dataset(ds, PixelLocation(str(tsyntax), None, None, tsyntax.is_encapsulated))
    if tsyntax.is_encapsulated:
        # A registered decoder may still lack support for this particular stream (e.g. 12-bit
        # lossy JPEG); decoding frame 1 is the only proof, and costs milliseconds at upload.
        try:
            pixel_array(ds, index=0)
        except Exception as exc:
            raise UnsupportedTransferSyntaxError(
                f"the {tsyntax.name} pixel data could not be decoded by the installed "
                f"decoders: {exc}"
            ) from exc


def _check_frames(ds: Dataset, frames: int) -> None:
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        count = 0
        for fragment in generate_frames(
            ds.PixelData, number_of_frames=frames, extended_offsets=extended
        ):
            if not fragment:
                raise InvalidDicomError(f"frame {count + 1} of the Pixel Data is empty")
            count += 1
    except ImagingError:
        raise
    except Exception as exc:  # pydicom raises ValueError/struct.error on malformed items
        raise InvalidDicomError(f"the encapsulated Pixel Data is malformed: {exc}") from exc
    if count != frames:
        raise InvalidDicomError(
            f"the encapsulated Pixel Data holds {count} frame(s) but Number of Frames is {frames}"
        )


def read_dataset(source: bytes | str | os.PathLike[str], *, max_pixels: int) -> Dataset:
    """Parse and validate a Part-10 file; raises an ImagingError subclass explaining any fault."""
    data = (
        bytes(source)
        if isinstance(source, bytes | bytearray | memoryview)
        else (Path(source).read_bytes())
    )
    if len(data) < 132 or data[128:132] != b"DICM":
        raise InvalidDicomError(
            "not a DICOM Part-10 file: expected a 128-byte preamble followed by 'DICM'"
        )
    try:
        fp = io.BytesIO(data)
        header = pydicom.dcmread(fp, stop_before_pixels=True)
        tsyntax = UID(str(header.file_meta.get("TransferSyntaxUID") or "").strip())
        if not tsyntax:
            raise InvalidDicomError("the file meta information has no Transfer Syntax UID")
        if not is_valid_uid(str(tsyntax)):
            raise InvalidDicomError(f"Transfer Syntax UID {str(tsyntax)!r} is not a valid UID")
        pixel_offset = None
        if tsyntax != "1.2.840.10008.1.2.1.99":  # deflated: offsets are not file offsets
            keyword, pixel_offset, length, _vr = _locate_pixel_data(
                fp,
                implicit_vr=tsyntax.is_implicit_VR,
                little_endian=tsyntax.is_little_endian,
                pos=fp.tell(),
            )
            if keyword is not None and length is not None and pixel_offset is not None:
                if length == _UNDEFINED_LENGTH:
                    _check_fragments(data, pixel_offset, tsyntax.is_little_endian)
                elif pixel_offset + length > len(data):
                    raise InvalidDicomError(
                        f"the file is truncated: {keyword} declares {length} bytes but only "
                        f"{len(data) - pixel_offset} remain"
                    )
        body = _ShortReadDetector(data)
        ds = pydicom.dcmread(body)
        if body.truncated:
            raise InvalidDicomError("the file is truncated: it ends in the middle of an element")
        # Convert every element now so malformed values fail here rather than at render time.
        for element in ds.iterall():
            _ = element.value
    except ImagingError:
        raise
    except Exception as exc:  # pydicom's parse errors are a zoo of built-in exception types
        raise InvalidDicomError(f"the file could not be parsed as DICOM: {exc}") from exc
    for keyword in _REQUIRED_UIDS:
        value = str(ds.get(keyword) or "").strip()
        if not value:
            raise InvalidDicomError(f"required attribute {keyword} is missing or empty")
        if not is_valid_uid(value):
            raise InvalidDicomError(f"{keyword} {value!r} is not a valid UID")
    if "PixelData" in ds:
        _check_pixels(ds, tsyntax, max_pixels)
    return ds

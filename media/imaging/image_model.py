"""Per-instance rendering parameters, extracted once from a DICOM header.

An `ImageModel` is everything the renderer needs besides the pixels: the Image Pixel module
(PS3.3 C.7.6.3), the Modality LUT (C.11.1), VOI LUT (C.11.2) and Presentation LUT (C.11.6)
parameters, per-frame overrides from enhanced multi-frame functional groups (C.7.6.16), and
where the Pixel Data value sits in the file so frames can be read without re-parsing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.uid import UID

from media.imaging.errors import ImagingError, InvalidDicomError, InvalidWindowError
from media.imaging.window import Window

log = logging.getLogger(__name__)

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_TAGS = {
    0x7FE00010: "PixelData",
    0x7FE00008: "FloatPixelData",
    0x7FE00009: "DoubleFloatPixelData",
}
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"UN")
DEFLATED = "1.2.840.10008.1.2.1.99"


@functools.cache
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword)`` without pydicom's keyword machinery (3x faster on the hot path)."""
    tag = _tag(keyword)
    if tag not in ds:
        return default
    value = ds[tag].value
    return default if value is None or value == "" else value


@dataclass(frozen=True, eq=False)
class LookupTable:
    """A Modality or VOI LUT Sequence item (PS3.3 C.11.1.1.1 / C.11.2.1.1)."""

    first_mapped: int
    data: np.ndarray  # uint16 entries, read-only
    bits: int  # nominal bits per entry (third LUT Descriptor value)
    digest: str  # identifies the table in cache keys without hashing the array each time

    @property
    def output_max(self) -> int:
        # Some files declare fewer bits than their data uses; never let a value exceed 1.0.
        return max((1 << self.bits) - 1, int(self.data.max()) if self.data.size else 1, 1)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Look up `values`; inputs below/above the table clamp to the first/last entry."""
        index = np.rint(values).astype(np.int64) - self.first_mapped
        return np.take(self.data, index, mode="clip")


@dataclass(frozen=True)
class FrameTransform:
    """Grayscale transform parameters for one frame (or all frames when shared)."""

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: LookupTable | None = None
    windows: tuple[Window, ...] = ()
    window_explanations: tuple[str, ...] = ()
    voi_lut: LookupTable | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """Hashable identity of everything except the window (which is chosen per request)."""
        return (
            self.rescale_slope,
            self.rescale_intercept,
            self.modality_lut.digest if self.modality_lut else None,
            self.voi_lut.digest if self.voi_lut else None,
        )


@dataclass(frozen=True)
class PixelLocation:
    """Where and how the Pixel Data value is stored in the file."""

    transfer_syntax_uid: str
    offset: int | None  # file offset of the value; None when not seekable (deflated)
    length: int | None  # value length; None for encapsulated (undefined length)
    encapsulated: bool
    decode_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageModel:
    sop_class_uid: str
    sop_instance_uid: str
    has_pixels: bool
    rows: int = 0
    columns: int = 0
    frames: int = 0
    samples_per_pixel: int = 1
    photometric_interpretation: str = ""
    planar_configuration: int = 0
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    presentation_lut_shape: str = "IDENTITY"
    transforms: tuple[FrameTransform, ...] = ()  # one shared item, or one per frame
    palette: np.ndarray | None = None  # (entries, 3) uint8: stored index -> RGB, PALETTE COLOR
    pixel: PixelLocation | None = None

    @property
    def is_monochrome(self) -> bool:
        return self.photometric_interpretation in MONOCHROME and self.samples_per_pixel == 1

    @property
    def inverted(self) -> bool:
        # PS3.3 C.8.11.6.1.2 (and C.11.6.1): MONOCHROME1 images carry Presentation LUT Shape
        # INVERSE to describe the *same* inversion, so the two never cancel each other out.
        return (
            self.photometric_interpretation == "MONOCHROME1"
            or self.presentation_lut_shape == "INVERSE"
        )

    @property
    def stored_min(self) -> int:
        if self.pixel_representation == 1:
            return -(1 << (self.bits_stored - 1))
        return 0

    @property
    def stored_max(self) -> int:
        if self.pixel_representation == 1:
            return (1 << (self.bits_stored - 1)) - 1
        return (1 << self.bits_stored) - 1

    @property
    def frame_bytes_length(self) -> int:
        """Bytes of one frame as little-endian stored values (1-bit data unpacked to 8)."""
        itemsize = max(1, self.bits_allocated // 8)
        return self.rows * self.columns * self.samples_per_pixel * itemsize

    def transform(self, frame: int) -> FrameTransform:
        """The grayscale transform of 1-based `frame`."""
        if len(self.transforms) == 1:
            return self.transforms[0]
        return self.transforms[frame - 1]


# --- header reading ---------------------------------------------------------------------------


def _lut_from_item(item: Dataset, *, signed_input: bool, little_endian: bool) -> LookupTable:
    descriptor = [int(v) for v in item.LUTDescriptor]
    if len(descriptor) != 3:
        raise InvalidDicomError("a LUT Descriptor must have exactly 3 values")
    entries = descriptor[0] or 65536  # PS3.3 C.11.1.1.1: 0 means 2^16 entries
    first = descriptor[1]
    if signed_input and first > 32767:
        # The descriptor's second value follows Pixel Representation; US-encoded negatives.
        first -= 65536
    bits = descriptor[2]
    element = item["LUTData"]
    if isinstance(element.value, bytes | bytearray):
        data = np.frombuffer(element.value, dtype="<u2" if little_endian else ">u2")
    else:
        values = element.value if isinstance(element.value, Sequence) else [element.value]
        data = np.asarray(values, dtype=np.int64)
    data = np.ascontiguousarray(data[:entries], dtype=np.uint16)
    if data.size == 0:
        raise InvalidDicomError("a LUT Sequence item has no LUT Data")
    data.setflags(write=False)
    digest = hashlib.blake2b(
        data.tobytes() + struct.pack("<qq", first, bits), digest_size=12
    ).hexdigest()
    return LookupTable(first_mapped=first, data=data, bits=bits, digest=digest)


def _as_floats(value: Any) -> list[float]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [float(value)]
    return [float(v) for v in value]


def _windows(source: Dataset) -> tuple[tuple[Window, ...], tuple[str, ...]]:
    centers = _as_floats(_get(source, "WindowCenter"))
    widths = _as_floats(_get(source, "WindowWidth"))
    function = str(_get(source, "VOILUTFunction") or "LINEAR")
    raw_explanations = _get(source, "WindowCenterWidthExplanation") or []
    if isinstance(raw_explanations, str):
        raw_explanations = [raw_explanations]
    windows: list[Window] = []
    explanations: list[str] = []
    for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
        try:
            windows.append(Window(center, width, function))
        except InvalidWindowError as exc:
            # A bad stored window must not make the image unviewable; fall back to the next one.
            log.warning("image_model.window_ignored", extra={"reason": exc.message})
            continue
        text = str(raw_explanations[index]) if index < len(raw_explanations) else ""
        explanations.append(text)
    return tuple(windows), tuple(explanations)


def _frame_transform(
    sources: Sequence[Dataset], *, signed: bool, little_endian: bool
) -> FrameTransform:
    """Merge transform attributes; later `sources` override earlier (image < shared < frame)."""
    slope, intercept = 1.0, 0.0
    modality_lut: LookupTable | None = None
    windows: tuple[Window, ...] = ()
    explanations: tuple[str, ...] = ()
    voi_lut: LookupTable | None = None
    for source in sources:
        if _tag("RescaleSlope") in source or _tag("RescaleIntercept") in source:
            slope = float(_get(source, "RescaleSlope") or 1.0)
            intercept = float(_get(source, "RescaleIntercept") or 0.0)
            modality_lut = None
        if _get(source, "ModalityLUTSequence"):
            modality_lut = _lut_from_item(
                _get(source, "ModalityLUTSequence")[0],
                signed_input=signed,
                little_endian=little_endian,
            )
        if _tag("WindowCenter") in source and _tag("WindowWidth") in source:
            windows, explanations = _windows(source)
        if _get(source, "VOILUTSequence"):
            item = _get(source, "VOILUTSequence")[0]
            if "LUTDescriptor" in item and "LUTData" in item:
                # The VOI LUT input is the Modality LUT output, which is signed only if rescaled.
                voi_lut = _lut_from_item(item, signed_input=False, little_endian=little_endian)
    return FrameTransform(slope, intercept, modality_lut, windows, explanations, voi_lut)


def _group_items(group: Dataset | None) -> list[Dataset]:
    """The functional-group macros that carry grayscale transform attributes (C.7.6.16.2)."""
    if group is None:
        return []
    items: list[Dataset] = []
    for keyword in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
        sequence = group.get(keyword)
        if sequence:
            items.append(sequence[0])
    return items


def _transforms(ds: Dataset, frames: int, *, little_endian: bool) -> tuple[FrameTransform, ...]:
    signed = int(_get(ds, "PixelRepresentation") or 0) == 1
    shared_seq = _get(ds, "SharedFunctionalGroupsSequence")
    shared = _group_items(shared_seq[0] if shared_seq else None)
    per_frame_seq = _get(ds, "PerFrameFunctionalGroupsSequence")
    base = [ds, *shared]
    if per_frame_seq and len(per_frame_seq) == frames:
        per_frame = [
            _frame_transform(
                [*base, *_group_items(item)], signed=signed, little_endian=little_endian
            )
            for item in per_frame_seq
        ]
        if all(t == per_frame[0] for t in per_frame[1:]):
            return (per_frame[0],)
        return tuple(per_frame)
    return (_frame_transform(base, signed=signed, little_endian=little_endian),)


def _palette_table(ds: Dataset, bits_stored: int) -> np.ndarray:
    """Stored index -> 8-bit RGB, built once so rendering a palette frame is one np.take."""
    from pydicom.pixels import apply_color_lut

    if bits_stored > 16:
        raise InvalidDicomError(f"PALETTE COLOR with {bits_stored} bits stored is not valid")
    indices = np.arange(1 << bits_stored, dtype=np.uint16 if bits_stored > 8 else np.uint8)
    try:
        rgb = apply_color_lut(indices, ds)[..., :3]
    except (ValueError, AttributeError, KeyError, IndexError) as exc:
        raise InvalidDicomError(f"the palette color lookup tables are unusable: {exc}") from exc
    if rgb.dtype != np.uint8:
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        scale = 255.0 / ((1 << bits) - 1)
        rgb = np.clip(np.rint(rgb.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    table = np.ascontiguousarray(rgb, dtype=np.uint8)
    table.setflags(write=False)
    return table


def _locate_pixel_data(
    fp: Any, *, implicit_vr: bool, little_endian: bool, pos: int
) -> tuple[str | None, int | None, int | None, str | None]:
    """Parse the Pixel Data element header at `pos`: (keyword, value offset, length, VR)."""
    fp.seek(pos)
    header = fp.read(8)
    if len(header) < 8:
        return None, None, None, None
    endian = "<" if little_endian else ">"
    group, elem = struct.unpack(f"{endian}HH", header[:4])
    keyword = _PIXEL_TAGS.get((group << 16) | elem)
    if keyword is None:
        return None, None, None, None
    if implicit_vr or header[4:6] not in _PIXEL_VRS:
        # Some files switch to implicit VR despite an explicit transfer syntax (pydicom
        # tolerates it); a Pixel Data VR can only be one of _PIXEL_VRS, so this is unambiguous.
        (length,) = struct.unpack(f"{endian}L", header[4:8])
        return keyword, pos + 8, length, None
    vr = header[4:6].decode("ascii", "replace")
    extra = fp.read(4)
    if len(extra) < 4:
        raise InvalidDicomError("the file ends inside the Pixel Data element header")
    (length,) = struct.unpack(f"{endian}L", extra)
    return keyword, pos + 12, length, vr


def model_from_dataset(ds: Dataset, pixel: PixelLocation | None) -> ImageModel:
    """Build the model from a parsed header; `pixel` is None for objects without Pixel Data."""
    sop_class = str(_get(ds, "SOPClassUID", ""))
    sop_instance = str(_get(ds, "SOPInstanceUID", ""))
    if pixel is None:
        return ImageModel(sop_class_uid=sop_class, sop_instance_uid=sop_instance, has_pixels=False)
    try:
        rows = int(_get(ds, "Rows"))
        columns = int(_get(ds, "Columns"))
        samples = int(_get(ds, "SamplesPerPixel") or 1)
        bits_allocated = int(_get(ds, "BitsAllocated"))
        bits_stored = int(_get(ds, "BitsStored") or bits_allocated)
        pixel_representation = int(_get(ds, "PixelRepresentation") or 0)
        photometric = str(_get(ds, "PhotometricInterpretation")).strip().upper()
        frames = int(_get(ds, "NumberOfFrames") or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidDicomError(
            f"the Image Pixel module is incomplete or malformed: {exc}"
        ) from exc
    if rows < 1 or columns < 1 or frames < 1:
        raise InvalidDicomError(f"image size {rows}x{columns}x{frames} frames is not positive")
    if photometric == "NONE":
        raise InvalidDicomError("Photometric Interpretation is missing")
    planar_configuration = int(_get(ds, "PlanarConfiguration") or 0)
    # The decoder options pydicom's as_pixel_options() would build, from values we already hold.
    options: dict[str, Any] = {
        "samples_per_pixel": samples,
        "photometric_interpretation": photometric,
        "planar_configuration": planar_configuration,
        "number_of_frames": frames,
        "rows": rows,
        "columns": columns,
        "bits_allocated": bits_allocated,
        "bits_stored": bits_stored,
        "pixel_representation": pixel_representation,
    }
    offsets = _get(ds, "ExtendedOffsetTable")
    lengths = _get(ds, "ExtendedOffsetTableLengths")
    if offsets is not None and lengths is not None:
        options["extended_offsets"] = (offsets, lengths)
    options.update(pixel.decode_options)
    pixel = dataclasses.replace(pixel, decode_options=options)
    shape = str(_get(ds, "PresentationLUTShape") or "IDENTITY").strip().upper()
    little_endian = UID(pixel.transfer_syntax_uid).is_little_endian
    transforms: tuple[FrameTransform, ...] = ()
    palette = None
    if photometric in MONOCHROME:
        transforms = _transforms(ds, frames, little_endian=little_endian)
    elif photometric == "PALETTE COLOR":
        palette = _palette_table(ds, bits_stored)
    return ImageModel(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        has_pixels=True,
        rows=rows,
        columns=columns,
        frames=frames,
        samples_per_pixel=samples,
        photometric_interpretation=photometric,
        planar_configuration=planar_configuration,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
        presentation_lut_shape=shape if shape in ("IDENTITY", "INVERSE") else "IDENTITY",
        transforms=transforms,
        palette=palette,
        pixel=pixel,
    )


def pixel_location(
    tsyntax: UID, offset: int | None, length: int | None, vr: str | None
) -> PixelLocation:
    """Where the Pixel Data value is, as read_image_model and ingest validation both record it."""
    options: dict[str, Any] = {"transfer_syntax_uid": tsyntax, "pixel_keyword": "PixelData"}
    if vr is not None:
        options["pixel_vr"] = vr
    return PixelLocation(
        transfer_syntax_uid=str(tsyntax),
        offset=offset,
        length=None if length == _UNDEFINED_LENGTH else length,
        encapsulated=tsyntax.is_encapsulated,
        decode_options=options,
    )


def read_image_model(path: str | os.PathLike[str]) -> ImageModel:
    """Read the header of a stored Part-10 file (never the pixels) and build its model."""
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            tsyntax = UID(ds.file_meta.get("TransferSyntaxUID") or "")
            if not tsyntax:
                raise InvalidDicomError("the file meta has no Transfer Syntax UID")
            if tsyntax == DEFLATED:
                # A deflated stream has no stable byte offsets: decode from a full parse instead.
                keyword, offset, length, vr = "PixelData", None, None, None
                full = pydicom.dcmread(path)
                if "PixelData" not in full:
                    keyword = None
                else:
                    ds = full
            else:
                keyword, offset, length, vr = _locate_pixel_data(
                    fp,
                    implicit_vr=tsyntax.is_implicit_VR,
                    little_endian=tsyntax.is_little_endian,
                    pos=fp.tell(),
                )
    except FileNotFoundError:
        raise
    except ImagingError:
        raise
    except (PydicomInvalidDicomError, OSError, EOFError, ValueError, struct.error) as exc:
        raise InvalidDicomError(f"the file could not be read as DICOM: {exc}") from exc
    if keyword != "PixelData":
        if keyword is not None:
            log.info("image_model.float_pixel_data_not_rendered", extra={"keyword": keyword})
        return model_from_dataset(ds, None)
    return model_from_dataset(ds, pixel_location(tsyntax, offset, length, vr))

"""Ingest-time validation (STOW-RS): decide whether a file may be stored, before writing it.

Everything the renderer later relies on is checked here, so a stored file renders or fails only
for reasons outside our control (a decoder bug), and the uploader hears what is wrong at once.
"""

from __future__ import annotations

import copy
import io
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filebase import DicomFileLike
from pydicom.filereader import _read_file_meta_info, read_preamble, read_sequence
from pydicom.filereader import read_dataset as read_dataset_elements
from pydicom.filewriter import write_file_meta_info
from pydicom.hooks import hooks
from pydicom.hooks import raw_element_value as pydicom_raw_element_value
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, ExplicitVRLittleEndian

from media.ecg.waveform import check_annotation_count, check_waveform, is_ecg
from media.imaging.errors import (
    ImageTooLargeError,
    ImagingError,
    InflatedTooLargeError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
    is_decoder_failure,
)
from media.imaging.image_model import (
    _UNDEFINED_LENGTH,
    DEFLATED,
    ImageModel,
    _locate_pixel_data,
    model_from_dataset,
    pixel_location,
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
_INFLATE_CHUNK = 1 << 20


def is_valid_uid(value: str) -> bool:
    """PS3.5 9.1: digits and dots, no leading zeros in a component, at most 64 characters."""
    return 0 < len(value) <= 64 and _UID_RE.fullmatch(value) is not None


def _check_fragments(fp: BinaryIO, offset: int, size: int, little_endian: bool) -> int:
    """Walk the encapsulated items (PS3.5 A.4) to prove the value is complete; returns where
    the value ends (after the sequence delimiter).

    Reads only the 8-byte item headers, so the check costs no memory whatever the value's size.
    """
    endian = "<" if little_endian else ">"
    pos, items = offset, 0
    while True:
        if pos + 8 > size:
            raise InvalidDicomError(
                "the file is truncated inside the encapsulated Pixel Data (no sequence delimiter)"
            )
        fp.seek(pos)
        group, elem, length = struct.unpack(f"{endian}HHL", fp.read(8))
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQUENCE_DELIMITER:
            return pos
        if tag != _ITEM:
            raise InvalidDicomError(
                f"the encapsulated Pixel Data has an unexpected tag ({group:04X},{elem:04X})"
            )
        if length == _UNDEFINED_LENGTH or pos + length > size:
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


@dataclass(frozen=True)
class Limits:
    """What one instance may cost: checked on the header, before any byte is inflated or
    decoded beyond it."""

    max_pixels: int  # rows x columns x frames
    max_frame_pixels: int = 40_000_000  # rows x columns of one frame
    #: Largest inflated size of a Deflated Explicit VR Little Endian file (its own upload limit).
    max_inflated_bytes: int = 512 * 2**20

    @property
    def max_frame_bytes(self) -> int:
        # A frame of the largest admitted size at 32 bits per pixel (or 8-bit RGB plus alpha
        # headroom): decoding one frame never needs more than this.
        return 4 * self.max_frame_pixels


@dataclass(frozen=True)
class ValidatedFile:
    """A file that may be stored: its header (no pixel values) and its rendering model.

    `path` is the file to store: the upload itself, or for a Deflated upload the inflated
    Explicit VR Little Endian copy made while validating (a lossless change of transfer syntax,
    so frames are read at file offsets and nothing is inflated again at render time).
    """

    path: Path
    dataset: Dataset
    model: ImageModel


def _pixel_size_checks(ds: Dataset, limits: Limits) -> tuple[int, int, int, int, int]:
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
        raise InvalidDicomError(
            f"Number of Frames {str(frames_value)[:20]!r} is not a number"
        ) from None
    if rows < 1 or columns < 1 or frames < 1:
        raise InvalidDicomError(
            f"image size Rows={rows} Columns={columns} Number of Frames={frames} is not positive"
        )
    if rows * columns > limits.max_frame_pixels:
        raise ImageTooLargeError(
            f"a frame of {rows}x{columns} = {rows * columns} pixels is over the limit of "
            f"{limits.max_frame_pixels} pixels per frame (HUIZHEN_MAX_FRAME_PIXELS)"
        )
    if rows * columns * frames > limits.max_pixels:
        raise ImageTooLargeError(
            f"image has {rows}x{columns} pixels x {frames} frame(s) = {rows * columns * frames} "
            f"pixels, over the limit of {limits.max_pixels}"
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
        raise InvalidDicomError(f"Photometric Interpretation {photometric[:20]!r} is not supported")
    if samples != expected_samples:
        raise InvalidDicomError(
            f"{photometric} needs Samples per Pixel {expected_samples}, the file says {samples}"
        )
    # rows x columns x samples x bytes: what decoding one frame produces, known before decoding.
    frame_bytes = rows * columns * samples * max(1, bits_allocated // 8)
    if frame_bytes > limits.max_frame_bytes:
        raise ImageTooLargeError(
            f"a decoded frame would take {frame_bytes} bytes, over the limit of "
            f"{limits.max_frame_bytes}"
        )
    return rows, columns, frames, samples, bits_allocated


def _check_pixels(
    fp: BinaryIO,
    size: int,
    ds: Dataset,
    tsyntax: UID,
    location: tuple[int, int, str | None],
    limits: Limits,
) -> ImageModel:
    offset, length, vr = location
    rows, columns, frames, samples, bits_allocated = _pixel_size_checks(ds, limits)
    _check_transfer_syntax(tsyntax)
    if tsyntax.is_encapsulated:
        if length != _UNDEFINED_LENGTH:
            raise InvalidDicomError("encapsulated Pixel Data must have an undefined length")
        end = _check_fragments(fp, offset, size, tsyntax.is_little_endian)
        _check_frames(fp, offset, ds, frames)
    else:
        if length == _UNDEFINED_LENGTH:
            raise InvalidDicomError("native Pixel Data cannot have an undefined length")
        if offset + length > size:
            raise InvalidDicomError(
                f"the file is truncated: Pixel Data declares {length} bytes but only "
                f"{size - offset} remain"
            )
        # Arithmetic on the header only: the pixel values are never read here.
        probe = Dataset()
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "NumberOfFrames",
                        "PhotometricInterpretation"):
            if keyword in ds:
                setattr(probe, keyword, ds.get(keyword))
        expected = get_expected_length(probe, "bytes")
        if length < expected:
            raise InvalidDicomError(
                f"Pixel Data has {length} bytes but {rows}x{columns}x{samples} samples x "
                f"{frames} frame(s) at {bits_allocated} bits need {expected} (truncated file?)"
            )
        end = offset + length
    if end < size:
        _check_trailer(fp, end, tsyntax)
    # Build the rendering model now so malformed LUTs/palettes are rejected at upload time; it
    # is kept beside the stored file, so nobody parses this header again.
    model = model_from_dataset(ds, pixel_location(tsyntax, offset, length, vr))
    if tsyntax.is_encapsulated:
        # A registered decoder may still lack support for this particular stream (e.g. 12-bit
        # lossy JPEG); decoding frame 1 is the only proof, and costs milliseconds at upload.
        assert model.pixel is not None
        try:
            fp.seek(offset)
            get_decoder(tsyntax).as_array(
                fp, index=0, validate=True, **model.pixel.decode_options
            )
        except BaseException as exc:
            if not is_decoder_failure(exc):
                raise
            raise UnsupportedTransferSyntaxError(
                f"the {tsyntax.name} pixel data could not be decoded by the installed "
                f"decoders: {exc}"
            ) from exc
    return model


def _check_trailer(fp: BinaryIO, pos: int, tsyntax: UID) -> None:
    """Elements after the Pixel Data (padding, private tags) parse completely too."""
    body = _ShortReadDetector(fp)
    fp.seek(pos)
    try:
        trailer = read_dataset_elements(
            body, tsyntax.is_implicit_VR, tsyntax.is_little_endian  # type: ignore[arg-type]
        )
        for element in trailer.iterall():
            _ = element.value
    except Exception as exc:
        raise InvalidDicomError(
            f"the elements after the Pixel Data could not be parsed: {exc}"
        ) from exc
    if body.truncated:
        raise InvalidDicomError("the file is truncated: it ends in the middle of an element")


def _check_frames(fp: BinaryIO, offset: int, ds: Dataset, frames: int) -> None:
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        count = 0
        fp.seek(offset)  # the value starts with the Basic Offset Table item
        # One frame in memory at a time, read from the file.
        for fragment in generate_frames(fp, number_of_frames=frames, extended_offsets=extended):
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


#: Reads a header parse may make (about two per element, three per sequence item), in total over
#: the file, nested sequences included. Real headers, RT Structure Sets with tens of thousands of
#: contours included, stay far below; parsing this many takes seconds.
MAX_HEADER_READS = 1_000_000
#: Bytes of defined-length sequences parsed from memory, summed over every nesting level: each
#: level is a copy of the bytes of the level it is in, so a deep nest of one-item sequences costs
#: depth x size. An ECG's Waveform Sequence (at most ~100 MB of samples) is one level.
MAX_SEQUENCE_BYTES = 1 << 30
#: Bytes of non-bulk values (everything but SQ and OB/OW/OF/OD/OL/OV/UN) converted to Python
#: values: the header part of the file, outside Pixel Data and Waveform Data.
MAX_HEADER_VALUE_BYTES = 64 << 20
#: Values those become (multi-valued strings split at '\\', binary numbers one per width): a DS
#: value costs ~1.7 us and ~400 bytes in pydicom, so megabytes of '0\\0\\...' would cost
#: minutes and gigabytes. 5 million is ~1.7 million contour points in an RT Structure Set.
MAX_HEADER_VALUES = 5_000_000
_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_NUMBER_WIDTHS = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4, "FD": 8, "SV": 8, "UV": 8}


class _HeaderBudget:
    """What one validation's header parse may still spend, shared by the file's own parse and
    every sequence parsed later from memory (pydicom reads a defined-length sequence as raw bytes
    and parses it when first accessed, out of reach of the file wrapper's read count)."""

    def __init__(self, max_reads: int) -> None:
        self.reads_left = max_reads
        self.sequence_bytes_left = MAX_SEQUENCE_BYTES
        self.value_bytes_left = MAX_HEADER_VALUE_BYTES
        self.values_left = MAX_HEADER_VALUES
        #: The refusal raised, kept because pydicom re-raises some as its own OSError.
        self.refused: ImagingError | None = None

    def _refuse(self, error: ImagingError) -> None:
        self.refused = error
        raise error

    def read(self) -> None:
        self.reads_left -= 1
        if self.reads_left < 0:
            self._refuse(InvalidDicomError(
                "the data set has too many elements or sequence items (more than about "
                f"{MAX_HEADER_READS // 2:,}): refused before parsing it all"
            ))

    def convert(self, raw: RawDataElement, vr: str) -> None:
        """Charge a raw element's conversion before it happens (its length only: counting
        backslashes runs at C speed)."""
        value = raw.value
        if not isinstance(value, bytes) or vr in _BULK_VRS:
            return
        if vr == "SQ":
            self.sequence_bytes_left -= len(value)
            if self.sequence_bytes_left < 0:
                self._refuse(ImageTooLargeError(
                    "the data set's sequences nest more than "
                    f"{MAX_SEQUENCE_BYTES // 2**20} MiB of items inside each other: refused "
                    "before parsing them"
                ))
            return
        self.value_bytes_left -= len(value)
        width = _NUMBER_WIDTHS.get(vr)
        self.values_left -= len(value) // width if width else value.count(b"\\") + 1
        if self.value_bytes_left < 0 or self.values_left < 0:
            self._refuse(ImageTooLargeError(
                f"the data set's header (outside Pixel Data and Waveform Data) holds more than "
                f"{MAX_HEADER_VALUE_BYTES // 2**20} MiB or {MAX_HEADER_VALUES:,} values: "
                "refused before converting them"
            ))


#: The budget of the validation running in this thread (None: parse as pydicom does).
_budget: ContextVar[_HeaderBudget | None] = ContextVar("header_budget", default=None)


def _raw_element_value(
    raw: RawDataElement,
    data: dict[str, Any],
    *,
    encoding: str | MutableSequence[str] | None = None,
    ds: Dataset | None = None,
    **kwargs: Any,
) -> None:
    """pydicom's raw-value hook: outside a validation exactly pydicom's own conversion; inside
    one, charged to its budget, and a defined-length sequence is parsed through a counting
    reader, so its items and elements (and those nested in them) count like the file's."""
    budget = _budget.get()
    if budget is None:
        pydicom_raw_element_value(raw, data, encoding=encoding, ds=ds, **kwargs)
        return
    budget.convert(raw, data["VR"])
    if data["VR"] == "SQ" and isinstance(raw.value, bytes) and raw.value:
        encodings = [encoding] if isinstance(encoding, str) else list(encoding or [])
        reader = _ShortReadDetector(io.BytesIO(raw.value))  # type: ignore[arg-type]
        data["value"] = read_sequence(
            reader,  # type: ignore[arg-type]
            raw.is_implicit_VR,
            raw.is_little_endian,
            len(raw.value),
            encodings or [default_encoding],
            raw.value_tell,
        )
        return
    pydicom_raw_element_value(raw, data, encoding=encoding, ds=ds, **kwargs)


# Process-wide, but identical to pydicom's default whenever no validation budget is active.
hooks.register_callback("raw_element_value", _raw_element_value)


@contextmanager
def _header_budget(max_reads: int = MAX_HEADER_READS) -> Iterator[_HeaderBudget]:
    budget = _HeaderBudget(max_reads)
    token = _budget.set(budget)
    try:
        yield budget
    except ImagingError as exc:
        # pydicom turns a refusal inside a sequence item's read into "No tag to read": the
        # uploader hears the refusal itself.
        if budget.refused is not None and exc is not budget.refused:
            raise budget.refused from exc
        raise
    finally:
        _budget.reset(token)


class _ShortReadDetector:
    """A file wrapper that notices reads cut short by the end of the data.

    pydicom (in its default lenient mode) stops quietly at an unexpected end of file and returns
    a partial dataset; switching it to strict mode is process-global, so instead watch the reads.
    Its element loop legitimately ends with an 8-byte header read that returns nothing.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self.truncated = False
        # The validation's shared budget, or (outside one) a budget of this wrapper's own.
        self._budget = _budget.get() or _HeaderBudget(MAX_HEADER_READS)

    def read(self, size: int | None = -1, /) -> bytes:
        # pydicom reads each element's header and value separately: counting reads bounds the
        # CPU a header of millions of tiny elements (e.g. megabytes of zeros after 'DICM')
        # could cost, whatever the file's size.
        self._budget.read()
        chunk = self._fp.read(size)
        if size is not None and size > 0 and len(chunk) < size and (chunk or size != 8):
            self.truncated = True
        return chunk

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()


def _inflate(src: BinaryIO, dst: BinaryIO, cap: int) -> int:
    """Stream-inflate a raw deflate stream (PS3.5 A.5) from `src` into `dst`, refusing as soon as
    more than `cap` bytes come out. Memory: one input chunk and one bounded output chunk."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while True:
        data = src.read(_INFLATE_CHUNK)
        if not data:
            break
        while data:
            # max_length bounds each output: a 256 KiB chunk of a bomb can inflate to 256 MiB.
            try:
                out = inflater.decompress(data, _INFLATE_CHUNK)
            except zlib.error as exc:
                raise InvalidDicomError(f"the deflated data set is corrupt ({exc})") from exc
            total += len(out)
            if total > cap:
                raise InflatedTooLargeError(
                    f"the deflated data set inflates to more than {cap // 2**20} MiB, the "
                    "upload limit (HUIZHEN_MAX_UPLOAD_MB); nothing was stored"
                )
            dst.write(out)
            data = inflater.unconsumed_tail
        if inflater.eof:
            break
    if not inflater.eof:
        raise InvalidDicomError("the file is truncated inside its deflated data set")
    return total


def _write_inflated(fp: BinaryIO, meta: FileMetaDataset, out: BinaryIO, cap: int) -> None:
    """Write to `out` the same Part-10 file in Explicit VR Little Endian (fp is at the data
    set): a new file meta naming that transfer syntax, then the inflated data set."""
    meta = copy.deepcopy(meta)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.write(b"\0" * 128 + b"DICM")
    try:
        write_file_meta_info(DicomFileLike(out), meta, enforce_standard=True)
    except Exception as exc:
        # pydicom refuses a file meta missing required elements (AttributeError) or holding an
        # unknown VR (NotImplementedError), among others: found by the mutation test.
        raise InvalidDicomError(f"the file meta information is incomplete: {exc}") from exc
    _inflate(fp, out, cap)


def _open_checked(fp: BinaryIO) -> None:
    fp.seek(0)
    head = fp.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise InvalidDicomError(
            "not a DICOM Part-10 file: expected a 128-byte preamble followed by 'DICM'"
        )


def _validate(fp: BinaryIO, limits: Limits) -> tuple[Dataset, ImageModel]:
    """Header parse (pixel values never loaded) and every check, on a non-deflated file; every
    parse in it (nested sequences, the trailer) spends one budget."""
    with _header_budget():
        return _validate_in_budget(fp, limits)


def _validate_in_budget(fp: BinaryIO, limits: Limits) -> tuple[Dataset, ImageModel]:
    size = fp.seek(0, os.SEEK_END)
    try:
        body = _ShortReadDetector(fp)
        fp.seek(0)
        ds = pydicom.dcmread(body, stop_before_pixels=True)  # type: ignore[arg-type]
        if body.truncated:
            raise InvalidDicomError("the file is truncated: it ends in the middle of an element")
        tsyntax = _transfer_syntax(ds)
        keyword, pixel_offset, length, vr = _locate_pixel_data(
            fp,
            implicit_vr=tsyntax.is_implicit_VR,
            little_endian=tsyntax.is_little_endian,
            pos=fp.tell(),
        )
        # Before the conversion below parses every sequence item.
        check_annotation_count(ds)
        # Convert every element now so malformed values fail here rather than at render time.
        for element in ds.iterall():
            _ = element.value
    except ImagingError:
        raise
    except Exception as exc:  # pydicom's parse errors are a zoo of built-in exception types
        raise InvalidDicomError(f"the file could not be parsed as DICOM: {exc}") from exc
    _check_uids(ds)
    try:
        if is_ecg(ds):
            # Channels, samples, bits, sensitivity, groups, data length: before any decoding.
            check_waveform(ds, has_pixels=keyword is not None)
        if keyword == "PixelData" and pixel_offset is not None and length is not None:
            return ds, _check_pixels(fp, size, ds, tsyntax, (pixel_offset, length, vr), limits)
        return ds, model_from_dataset(ds, None)
    except ImagingError:
        raise
    except Exception as exc:  # a value of the wrong type where a number is needed, and so on
        raise InvalidDicomError(f"the image attributes are malformed: {exc}") from exc


def _transfer_syntax(ds: Dataset) -> UID:
    tsyntax = UID(str(ds.file_meta.get("TransferSyntaxUID") or "").strip())
    if not tsyntax:
        raise InvalidDicomError("the file meta information has no Transfer Syntax UID")
    if not is_valid_uid(str(tsyntax)):
        raise InvalidDicomError(f"Transfer Syntax UID {str(tsyntax)[:70]!r} is not a valid UID")
    return tsyntax


def _check_uids(ds: Dataset) -> None:
    for keyword in _REQUIRED_UIDS:
        value = str(ds.get(keyword) or "").strip()
        if not value:
            raise InvalidDicomError(f"required attribute {keyword} is missing or empty")
        if not is_valid_uid(value):
            raise InvalidDicomError(f"{keyword} {value[:70]!r} is not a valid UID")


def _deflated_meta(fp: BinaryIO) -> FileMetaDataset | None:
    """The file meta if the data set is deflated (fp left at the data set), else None."""
    fp.seek(0)
    try:
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        # Values convert lazily: an unknown VR raises here, not in the read above.
        deflated = str(meta.get("TransferSyntaxUID") or "").strip() == DEFLATED
    except Exception as exc:
        raise InvalidDicomError(f"the file meta information is malformed: {exc}") from exc
    return meta if deflated else None


def validate_file(
    path: str | os.PathLike[str], limits: Limits, *, scratch_dir: Path | None = None
) -> ValidatedFile:
    """Parse and validate an uploaded Part-10 file once; raises an ImagingError subclass
    explaining any fault. A Deflated file is inflated once, streaming and capped, into a file in
    `scratch_dir` (default: beside it) that the caller owns: `ValidatedFile.path`."""
    source = Path(path)
    with source.open("rb") as fp:
        _open_checked(fp)
        meta = _deflated_meta(fp)
        if meta is None:
            ds, model = _validate(fp, limits)
            return ValidatedFile(source, ds, model)
        inflated = (scratch_dir or source.parent) / (source.name + ".inflated")
        try:
            with inflated.open("wb") as out:
                _write_inflated(fp, meta, out, limits.max_inflated_bytes)
            with inflated.open("rb") as ifp:
                ds, model = _validate(ifp, limits)
        except BaseException:
            inflated.unlink(missing_ok=True)
            raise
        return ValidatedFile(inflated, ds, model)


def read_dataset(
    source: bytes | str | os.PathLike[str],
    *,
    max_pixels: int,
    max_frame_pixels: int = 40_000_000,
    max_inflated_bytes: int = 512 * 2**20,
) -> Dataset:
    """Validate a Part-10 file (bytes or a path) and return its header (pixel values are not
    loaded); raises an ImagingError subclass explaining any fault."""
    limits = Limits(max_pixels, max_frame_pixels, max_inflated_bytes)
    if not isinstance(source, bytes | bytearray | memoryview):
        with tempfile.TemporaryDirectory() as scratch:
            return validate_file(source, limits, scratch_dir=Path(scratch)).dataset
    fp = io.BytesIO(bytes(source))
    _open_checked(fp)
    meta = _deflated_meta(fp)
    if meta is None:
        return _validate(fp, limits)[0]
    out = io.BytesIO()
    _write_inflated(fp, meta, out, max_inflated_bytes)
    return _validate(out, limits)[0]

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from media.imaging.errors import (
    ImageTooLargeError,
    ImagingError,
    InflatedTooLargeError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
)
from media.imaging.image_model import read_image_model
from media.imaging.model_sidecar import dumps
from media.imaging.synthetic import ct_dataset, write
from media.imaging.validation import Limits, is_valid_uid, read_dataset, validate_file

LIMIT = 50_000_000


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtplan.dcm", "test-SR.dcm"]
)
def test_valid_files(name: str) -> None:
    ds = read_dataset(get_testdata_file(name), max_pixels=LIMIT)
    assert ds.SOPInstanceUID


def test_accepts_bytes_and_path(tmp_path: Path) -> None:
    ds = ct_dataset(rows=32, columns=32)
    data = _bytes(ds)
    assert read_dataset(data, max_pixels=LIMIT).SOPInstanceUID == ds.SOPInstanceUID
    path = write(ds, tmp_path / "a.dcm")
    assert read_dataset(Path(path), max_pixels=LIMIT).Rows == 32


@pytest.mark.parametrize("data", [b"", b"hello world", b"\0" * 132, b"\0" * 128 + b"DIC"])
def test_not_dicom(data: bytes) -> None:
    with pytest.raises(InvalidDicomError, match="DICM"):
        read_dataset(data, max_pixels=LIMIT)


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "rtplan.dcm"])
@pytest.mark.parametrize("cut", [1, 7, 100, 3000])
def test_truncated(name: str, cut: int) -> None:
    data = Path(get_testdata_file(name)).read_bytes()
    with pytest.raises(InvalidDicomError, match=r"truncated|DICM"):
        read_dataset(data[:-cut], max_pixels=LIMIT)


@pytest.mark.parametrize(
    "keyword", ["SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID"]
)
def test_missing_required_uid(keyword: str) -> None:
    ds = ct_dataset(rows=8, columns=8)
    delattr(ds, keyword)
    with pytest.raises(InvalidDicomError, match=keyword):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


def test_malformed_uid() -> None:
    ds = ct_dataset(rows=8, columns=8)
    ds.SOPInstanceUID = "1.2.03.abc"
    with pytest.raises(InvalidDicomError, match="not a valid UID"):
        read_dataset(_bytes(ds), max_pixels=LIMIT)
    assert is_valid_uid("1.2.840.10008.1.2")
    assert not is_valid_uid("1.02") and not is_valid_uid("1." + "1" * 70)


def test_unsupported_transfer_syntax() -> None:
    # MPEG-2 video: pydicom has no decoder for it at all.
    ds = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    with pytest.raises(UnsupportedTransferSyntaxError, match=r"1\.2\.840\.10008\.1\.2\.4\.100"):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


def test_registered_decoder_that_cannot_decode_this_stream() -> None:
    # 12-bit lossy JPEG: a decoder exists for the UID but no installed plugin handles it.
    with pytest.raises(UnsupportedTransferSyntaxError, match="could not be decoded"):
        read_dataset(get_testdata_file("JPEG-lossy.dcm"), max_pixels=LIMIT)


def test_image_too_large() -> None:
    ds = ct_dataset(rows=64, columns=64)
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        read_dataset(_bytes(ds), max_pixels=64 * 64 - 1)
    ds.Rows = 60000
    ds.Columns = 60000
    ds.NumberOfFrames = 1000
    with pytest.raises(ImageTooLargeError):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


def test_inconsistent_pixel_length() -> None:
    ds = ct_dataset(rows=64, columns=64)
    ds.Rows = 65
    with pytest.raises(InvalidDicomError, match="need"):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("attribute", "value", "match"),
    [
        ("BitsAllocated", 12, "Bits Allocated"),
        ("BitsStored", 17, "Bits Stored"),
        ("PhotometricInterpretation", "RGB", "Samples per Pixel"),
        ("PhotometricInterpretation", "CMYK", "not supported"),
    ],
)
def test_insane_pixel_attributes(attribute: str, value: object, match: str) -> None:
    ds = ct_dataset(rows=8, columns=8)
    setattr(ds, attribute, value)
    with pytest.raises(ImagingError, match=match):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


def test_missing_pixel_attribute() -> None:
    ds = ct_dataset(rows=8, columns=8)
    del ds.Columns
    with pytest.raises(InvalidDicomError, match="Columns"):
        read_dataset(_bytes(ds), max_pixels=LIMIT)


# -- bounded memory: limits on the header, Deflated data sets inflated once, streaming ----------


def _deflated(ds: pydicom.Dataset) -> bytes:
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return _bytes(ds)


def test_deflated_file_is_inflated_once_into_explicit_vr_little_endian(tmp_path: Path) -> None:
    ds = ct_dataset(rows=64, columns=48)
    path = tmp_path / "upload"
    path.write_bytes(_deflated(ds))
    valid = validate_file(path, Limits(LIMIT))
    assert valid.path == tmp_path / "upload.inflated"
    stored = pydicom.dcmread(valid.path)
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert valid.dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.PixelData == ds.PixelData and stored.SOPInstanceUID == ds.SOPInstanceUID
    # The model validation built is the one the renderer would read from the stored file.
    assert dumps(valid.model) == dumps(read_image_model(valid.path))
    assert "PixelData" not in valid.dataset  # the header only: pixel values never loaded


@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtplan.dcm",
                                  "SC_rgb_rle_2frame.dcm", "examples_palette.dcm",
                                  "MR_small_bigendian.dcm", "rtdose.dcm"])
def test_validation_model_equals_the_renderers(name: str) -> None:
    path = get_testdata_file(name)
    valid = validate_file(path, Limits(LIMIT))
    assert valid.path == Path(path)
    assert dumps(valid.model) == dumps(read_image_model(path))


def test_a_real_deflated_file(tmp_path: Path) -> None:
    path = tmp_path / "image_dfl.dcm"
    path.write_bytes(Path(get_testdata_file("image_dfl.dcm")).read_bytes())
    valid = validate_file(path, Limits(LIMIT))
    original = pydicom.dcmread(path)
    assert np.array_equal(pydicom.dcmread(valid.path).pixel_array, original.pixel_array)


def test_inflated_size_is_capped_while_inflating() -> None:
    ds = ct_dataset(rows=256, columns=256)  # 128 KiB of pixels
    data = _deflated(ds)
    with pytest.raises(InflatedTooLargeError, match="inflates to more than"):
        read_dataset(data, max_pixels=LIMIT, max_inflated_bytes=64 * 1024)
    assert read_dataset(data, max_pixels=LIMIT, max_inflated_bytes=1 << 20).Rows == 256


def test_capped_inflation_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(_deflated(ct_dataset(rows=256, columns=256)))
    with pytest.raises(InflatedTooLargeError):
        validate_file(path, Limits(LIMIT, max_inflated_bytes=64 * 1024))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload"]


@pytest.mark.parametrize("cut", [20, 50, 500])
def test_truncated_or_corrupt_deflate_stream(cut: int) -> None:
    data = _deflated(ct_dataset(rows=64, columns=64))
    with pytest.raises(InvalidDicomError):
        read_dataset(data[:-cut], max_pixels=LIMIT)
    meta_end = data.index(b"\x1f\x8b") if b"\x1f\x8b" in data else len(data) - 40
    corrupt = data[:meta_end] + bytes(b ^ 0xFF for b in data[meta_end:meta_end + 40])
    with pytest.raises(InvalidDicomError):
        read_dataset(corrupt + data[meta_end + 40:], max_pixels=LIMIT)


def test_frame_pixel_limit_is_checked_on_the_header() -> None:
    ds = ct_dataset(rows=64, columns=64)
    with pytest.raises(ImageTooLargeError, match="HUIZHEN_MAX_FRAME_PIXELS"):
        read_dataset(_bytes(ds), max_pixels=LIMIT, max_frame_pixels=64 * 64 - 1)
    assert read_dataset(_bytes(ds), max_pixels=LIMIT, max_frame_pixels=64 * 64).Rows == 64
    # A header claiming a huge frame is refused before its (absent) pixels are looked at.
    ds.Rows, ds.Columns = 50_000, 50_000
    with pytest.raises(ImageTooLargeError, match="per frame"):
        read_dataset(_bytes(ds), max_pixels=10**12)


def test_decoded_frame_bytes_are_bounded_before_decoding() -> None:
    ds = ct_dataset(rows=64, columns=64)
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelData = bytes(64 * 64 * 4)
    # 4 bytes per pixel fit the 4 x frame-pixels budget exactly; RGB at 32 bits would not.
    assert read_dataset(_bytes(ds), max_pixels=LIMIT, max_frame_pixels=64 * 64).Rows == 64
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "RGB", 3
    ds.PlanarConfiguration = 0
    ds.PixelData = bytes(64 * 64 * 12)
    with pytest.raises(ImageTooLargeError, match="decoded frame"):
        read_dataset(_bytes(ds), max_pixels=LIMIT, max_frame_pixels=64 * 64)


# -- property: whatever the bytes, validation answers with an ImagingError or a dataset ----------

_SEED_FILES = {
    name: Path(get_testdata_file(name)).read_bytes()
    for name in ("CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtplan.dcm")
}
_SEED_FILES["deflated"] = _deflated(ct_dataset(rows=16, columns=16))


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(_SEED_FILES)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10**6),
)
def test_mutated_files_fail_only_with_imaging_errors(
    name: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_SEED_FILES[name])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        read_dataset(bytes(data), max_pixels=LIMIT, max_inflated_bytes=8 * 2**20)
    except ImagingError as exc:
        assert exc.message


def test_a_header_of_millions_of_tiny_elements_is_refused_after_a_bounded_parse() -> None:
    # 128 zero bytes, 'DICM', then 20 MiB of zeros: pydicom would read ~2.6 million empty
    # elements one by one (tens of seconds of CPU per upload on a busy server). The parse stops
    # at MAX_HEADER_READS instead, whatever the file's size.
    data = b"\0" * 128 + b"DICM" + b"\0" * (20 * 2**20)
    with pytest.raises(InvalidDicomError, match="too many elements"):
        read_dataset(data, max_pixels=LIMIT)


def test_a_large_real_header_stays_under_the_element_cap() -> None:
    # An RT Structure Set style header: 20,000 sequence items of a few elements each.
    ds = ct_dataset(rows=4, columns=4)
    item = pydicom.Dataset()
    item.ROINumber = 1
    item.ReferencedFrameOfReferenceUID = "1.2.3"
    item.ROIName = "roi"
    ds.StructureSetROISequence = pydicom.Sequence([copy.deepcopy(item) for _ in range(20_000)])
    assert len(read_dataset(_bytes(ds), max_pixels=LIMIT).StructureSetROISequence) == 20_000

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from media.imaging.errors import (
    ImageTooLargeError,
    ImagingError,
    InvalidDicomError,
    UnsupportedTransferSyntaxError,
)
from media.imaging.synthetic import ct_dataset, write
from media.imaging.validation import is_valid_uid, read_dataset

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

"""Defined-length sequences are parsed from memory after the file's own parse; their items and
elements, nested ones included, spend the same bounded budget (MAX_HEADER_READS)."""

from __future__ import annotations

import io

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from media.imaging import validation
from media.imaging.errors import ImageTooLargeError, InvalidDicomError
from media.imaging.validation import Limits, read_dataset
from tests.dicom_factory import ct_bytes, with_nested_items

LIMIT = 50_000_000


def _validate_with(
    data: bytes, max_reads: int
) -> tuple[validation._HeaderBudget, Exception | None]:
    """Validate under a budget of `max_reads`, returning the budget to read what was spent."""
    budget = None
    try:
        with validation._header_budget(max_reads) as budget:
            validation._validate_in_budget(io.BytesIO(data), Limits(LIMIT))
    except InvalidDicomError as exc:
        assert budget is not None
        return budget, exc
    assert budget is not None
    return budget, None


def test_two_million_nested_items_are_refused_after_a_bounded_number_of_reads() -> None:
    # 1,000,000 items each holding a defined-length sequence of one empty item: 28 MB. Before,
    # the file's parse read the outer sequence as one value and the conversion parsed all
    # 2,000,000 items from memory, unbounded (minutes of CPU at the 512 MB upload limit).
    data = with_nested_items(1_000_000)
    budget, exc = _validate_with(data, validation.MAX_HEADER_READS)
    assert exc is not None and "too many elements or sequence items" in str(exc)
    # The parse stopped at the cap: exactly MAX_HEADER_READS reads, then the refused one.
    assert budget.reads_left == -1
    with pytest.raises(InvalidDicomError, match="too many elements or sequence items"):
        read_dataset(data, max_pixels=LIMIT)


def test_nested_items_count_at_every_level() -> None:
    # 300 outer items x 3 levels of one-item sequences = 1,200 items: far under the real cap,
    # over a cap of 1,000 reads: so the nested (defined-length) levels are counted.
    data = with_nested_items(300, depth=3)
    assert read_dataset(data, max_pixels=LIMIT).ContentSequence[299].ContentSequence
    budget, exc = _validate_with(data, 1_000)
    assert exc is not None and budget.reads_left == -1


@settings(max_examples=40, deadline=None)
@given(outer=st.integers(1, 400), depth=st.integers(0, 6), max_reads=st.integers(200, 3_000))
def test_a_parse_never_spends_more_than_its_budget(outer: int, depth: int, max_reads: int) -> None:
    budget, exc = _validate_with(with_nested_items(outer, depth), max_reads)
    assert budget.reads_left >= -1
    if exc is None:
        # Accepted: the parse fitted, and nothing was skipped to make it fit.
        assert outer * (depth + 1) <= max_reads
    else:
        assert budget.reads_left == -1 and "too many" in str(exc)


def test_deep_nesting_of_large_sequences_is_refused_by_the_bytes_it_copies(monkeypatch) -> None:
    # Each nesting level parses a copy of the level around it: depth x size bytes in all.
    monkeypatch.setattr(validation, "MAX_SEQUENCE_BYTES", 4 * 2**20)
    data = with_nested_items(20_000, depth=4)  # 20,000 x 5 items, ~2 MB, copied ~3 times
    with pytest.raises(ImageTooLargeError, match="sequences nest more than 4 MiB"):
        read_dataset(data, max_pixels=LIMIT)


def test_megabytes_of_tiny_values_are_refused_before_conversion(monkeypatch) -> None:
    # 'DS' of '0\0\0...' costs ~1.7 us and hundreds of bytes per value once converted.
    ds = pydicom.dcmread(io.BytesIO(ct_bytes(rows=4, columns=4)))
    buf = io.BytesIO()
    ds.ImagePositionPatient = ["0"] * 30_000  # 60 KB: fits DS's 16-bit length
    ds.save_as(buf, enforce_file_format=True)
    monkeypatch.setattr(validation, "MAX_HEADER_VALUES", 20_000)
    with pytest.raises(ImageTooLargeError, match="20,000 values"):
        read_dataset(buf.getvalue(), max_pixels=LIMIT)
    monkeypatch.setattr(validation, "MAX_HEADER_VALUES", 40_000)
    assert len(read_dataset(buf.getvalue(), max_pixels=LIMIT).ImagePositionPatient) == 30_000


@pytest.mark.parametrize("name", ["waveform_ecg.dcm", "test-SR.dcm", "rtstruct.dcm"])
def test_real_files_with_many_items_fit(name: str) -> None:
    path = get_testdata_file(name)
    assert path is not None
    with open(path, "rb") as fp:
        budget, exc = _validate_with(fp.read(), validation.MAX_HEADER_READS)
    # Either accepted or refused for something else than the budget (rtstruct has no UIDs...).
    assert exc is None or "too many" not in str(exc)
    assert budget.reads_left > validation.MAX_HEADER_READS - 20_000

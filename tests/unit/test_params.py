"""Strict number parsing of request text (server/params.py): property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.dicomweb.multipart import parse_accept
from server.dicomweb.query import Level, parse_query
from server.errors import InvalidParameter
from server.params import MAX_DIGITS, parse_hex8, parse_int


@given(st.integers(min_value=0, max_value=10**MAX_DIGITS - 1))
def test_every_ascii_number_parses_to_itself(n: int) -> None:
    assert parse_int(str(n), "n") == n


@given(st.text(max_size=40))
def test_any_text_is_a_bounded_ascii_number_or_invalid_parameter(text: str) -> None:
    try:
        value = parse_int(text, "n", minimum=1, maximum=1000)
    except InvalidParameter as exc:
        assert exc.message and "n" in exc.message
        assert len(exc.message) < 200  # never echoes a huge value back
    else:
        assert text.isascii() and text.isdigit() and 1 <= value <= 1000


@pytest.mark.parametrize(
    "text", ["٣", "３", "1_000", " 1", "1 ", "+1", "-1", "1" * (MAX_DIGITS + 1), "1" * 5000, "",
             "0x10", "1e3", "١٠"]
)
def test_what_int_would_accept_is_refused(text: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_int(text, "n")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_hex8_round_trip(n: int) -> None:
    assert parse_hex8(f"{n:08X}", "tag") == n
    assert parse_hex8(f"{n:08x}", "tag") == n


@pytest.mark.parametrize("text", ["0x7FE0010", "7FE0_010", "٧FE00010", "7FE0001", "7FE000100"])
def test_hex8_refuses(text: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_hex8(text, "tag")


@given(st.dictionaries(st.sampled_from(["limit", "offset"]), st.text(max_size=30)))
def test_qido_paging_is_ascii_or_invalid_parameter(params: dict[str, str]) -> None:
    try:
        query = parse_query(params, [Level.STUDY])
    except InvalidParameter:
        return
    assert all(v.isascii() and v.isdigit() for v in params.values())
    assert query.offset >= 0 and (query.limit is None or 0 <= query.limit <= 1000)


@given(st.text(max_size=200))
def test_any_accept_header_parses(header: str) -> None:
    ranges = parse_accept(header)
    assert all(0 < r.q <= 1 for r in ranges)

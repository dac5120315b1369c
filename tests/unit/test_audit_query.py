"""The audit search's query parser and matcher (server/audit_search.py): pure logic, with
properties over arbitrary input (never anything but InvalidParameter, bounds kept)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.audit_search import (
    QUERY_FIELDS,
    AuditQuery,
    csv_header,
    csv_rows,
    parse_cursor,
    parse_query,
    parse_time,
)
from server.errors import InvalidParameter
from server.store.audit import AuditEvent

NOW = 1_764_633_600.0  # 2025-12-02T00:00:00Z


def test_times() -> None:
    assert parse_time("1764633600", "since") == NOW
    assert parse_time("2025-12-02", "since") == NOW
    assert parse_time("2025-12-02T08:00:00+08:00", "since") == NOW
    assert parse_time("2025-12-02T00:00Z", "since") == NOW
    assert parse_time("-2h", "since", now=NOW) == NOW - 7200
    assert parse_time("-7d", "since", now=NOW) == NOW - 7 * 86400
    assert parse_time("15m", "since", now=NOW) == NOW - 900
    for bad in ("", "yesterday", "-2w", "2025-13-01", "99999999999999", "1e9", "+1h"):
        with pytest.raises(InvalidParameter):
            parse_time(bad, "since", now=NOW)


def test_query_and_matching() -> None:
    q = parse_query({"user": "dr.li", "action": "referral.*, wado.retrieve",
                     "since": "-1h", "break_glass": "1"}, now=NOW)
    assert q.actions == ("referral.*", "wado.retrieve") and q.break_glass
    base = {"user": "dr.li", "action": "referral.accept", "ts": str(NOW - 10),
            "break_glass": "1"}
    assert q.matches(base)
    assert not q.matches({**base, "user": "dr.wang"})
    assert not q.matches({**base, "action": "auth.login"})
    assert q.matches({**base, "action": "wado.retrieve"})
    assert not q.matches({**base, "action": "wado.retrieved"})
    assert not q.matches({**base, "break_glass": ""})
    assert not q.matches({**base, "ts": str(NOW - 7200)})
    clinic = AuditQuery(clinic="hetang")
    assert clinic.matches({"clinic": "", "study_clinic": "hetang"})
    assert clinic.matches({"referral_clinic": "hetang"})
    assert not clinic.matches({"clinic": "qingshui"})
    patient = AuditQuery(patient="QS-1", patient_studies=frozenset({"1.2.3"}))
    assert patient.matches({"patient_id": "QS-1"})
    assert patient.matches({"study": "1.2.3"})
    assert patient.matches({"studies": "1.2.4,1.2.3"})
    assert patient.matches({"break_glass_studies": "qingshui/1.2.3"})
    assert not patient.matches({"studies": "1.2.33"})
    with pytest.raises(InvalidParameter):
        parse_query({"since": "-1h", "until": "-2h"}, now=NOW)
    with pytest.raises(InvalidParameter):
        parse_query({"action": "DROP TABLE"})
    with pytest.raises(InvalidParameter):
        parse_query({"break_glass": "maybe"})
    assert parse_cursor("1764633600000-0") == "1764633600000-0"
    with pytest.raises(InvalidParameter):
        parse_cursor("+")


def test_csv_quotes_formulas_and_keeps_chinese() -> None:
    ev = AuditEvent("1-0", {"ts": str(NOW), "action": "referral.create", "user": "dr.li",
                            "patient_id": "=HYPERLINK(\"x\")", "note": "转诊 a,b"})
    text = csv_header() + csv_rows([ev])
    lines = text.split("\r\n")
    assert lines[0].startswith("id,time_utc,action,user")
    assert "'=HYPERLINK" in lines[1] and "转诊 a,b" in lines[1]
    assert "2025-12-02T00:00:00.000000Z" in lines[1]


_TEXT = st.text(max_size=60)


@given(st.dictionaries(st.sampled_from(QUERY_FIELDS), _TEXT, max_size=7))
def test_any_input_parses_or_is_refused_cleanly(params) -> None:
    try:
        q = parse_query(params, now=NOW)
    except InvalidParameter:
        return
    assert len(q.actions) <= 20
    if q.since is not None and q.until is not None:
        assert q.since <= q.until
    # a parsed query matches any fields without raising
    q.matches({"ts": "x", "action": "a"})
    q.matches({})


@given(st.integers(min_value=0, max_value=253402300799))
def test_unix_and_iso_agree(ts) -> None:
    iso = datetime.fromtimestamp(ts, UTC).isoformat()
    assert parse_time(str(ts), "t") == parse_time(iso, "t") == ts


@given(st.integers(min_value=0, max_value=9_999_999), st.sampled_from("smhd"))
def test_relative_times(n, unit) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] * n
    try:
        value = parse_time(f"-{n}{unit}", "t", now=NOW)
    except InvalidParameter:
        assert seconds > NOW
        return
    assert value == NOW - seconds


@given(st.text(max_size=50))
def test_cursor(text) -> None:
    with contextlib.suppress(InvalidParameter):
        assert parse_cursor(text) in (None, text)

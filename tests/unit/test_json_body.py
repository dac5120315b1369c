"""The JSON body helper (server/api/json_body.py): bounds, and that it is the only body reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.api.json_body import (
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    InvalidJson,
    parse_json_bytes,
)

SERVER = Path(__file__).resolve().parents[2] / "server"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_ordinary_json_round_trips(value: object) -> None:
    assert parse_json_bytes(json.dumps(value).encode()) == value


@given(st.binary(max_size=300))
def test_any_bytes_are_json_or_invalid_json(data: bytes) -> None:
    try:
        parse_json_bytes(data)
    except InvalidJson as exc:
        assert exc.status == 400 and exc.message


@pytest.mark.parametrize(
    "body",
    [
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b"[" * 50_000 + b"]" * 50_000,  # beyond Python's recursion limit
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
        b'{"n": ' + b"1" * 5000 + b"}",
        b'{"n": 1' + b"0" * MAX_NUMBER_CHARS + b"}",
        b'{"n": 1.' + b"5" * 5000 + b"}",
        b'{"n": NaN}',
        b'{"n": 1e999999}',
        b'{"n": -Infinity}',
        b'{"u": "\xff"}',
        b"",
    ],
)
def test_hostile_bodies_are_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidJson):
        parse_json_bytes(body)


def test_depth_limit_is_inclusive() -> None:
    assert parse_json_bytes(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


def test_no_handler_reads_a_body_but_through_the_helpers() -> None:
    """JSON bodies go through read_json; only the upload routes stream multipart bodies."""
    reader = re.compile(r"request\.(json|text|read|post)\(|request\.content\.read")
    offenders = [
        str(path.relative_to(SERVER))
        for path in SERVER.rglob("*.py")
        if path.name != "json_body.py"
        and any(
            reader.search(line)
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith("#")
        )
    ]
    assert offenders == []

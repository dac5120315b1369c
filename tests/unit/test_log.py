"""Log lines cannot be forged: hostile values are encoded and read back exactly."""

from __future__ import annotations

import io
import logging

from hypothesis import given
from hypothesis import strategies as st

from server.log import CONTINUATION, KeyValueFormatter, event, parse_line


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    logger = logging.getLogger(f"test.log.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


HOSTILE = {
    "username": 'x" role=admin\n2026-01-01T00:00:00 info server.api.auth_routes login_ok '
                'username=admin',
    "quote": 'say "hi"',
    "backslash": 'C:\\path\\"',
    "cr": "a\rb",
    "sep": "line\u2028break\u2029para\x85nel\x7fdel\x00nul",
    "zh": "王小明 放射科",
    "empty": "",
    "equals": "username=admin",
    "spaces": "  ",
}


def test_hostile_values_parse_back_exactly() -> None:
    logger, stream = _capture()
    event(logger, "login_failed", **HOSTILE, count=3)
    output = stream.getvalue()
    lines = output.splitlines()
    assert len(lines) == 1, output  # str.splitlines breaks on \u2028, \x85, \r … too
    name, fields = parse_line(lines[0])
    assert name == "login_failed"
    assert fields == {**HOSTILE, "count": "3"}


def test_free_text_message_and_traceback_stay_one_record() -> None:
    logger, stream = _capture()
    try:
        raise ValueError('bad\n2026-01-01T00:00:00 info x login_ok username="admin"')
    except ValueError:
        logger.exception('failed for "user"\nlogin_ok username=admin')
    first, *rest = stream.getvalue().splitlines()
    name, fields = parse_line(first)
    assert name == "message" and fields["msg"] == 'failed for "user"\nlogin_ok username=admin'
    assert rest and all(row.startswith(CONTINUATION) for row in rest)


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda k: k not in {"logger", "name", "level"})  # event()'s own parameters


@given(st.dictionaries(_KEYS, st.text()))
def test_any_text_round_trips(values: dict[str, str]) -> None:
    logger, stream = _capture()
    event(logger, "probe", **values)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert parse_line(lines[0]) == ("probe", values)

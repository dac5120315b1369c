"""docs/signaling.md and the message models cannot drift: every inbound model
(server/realtime/messages.py) and every outbound one (server/realtime/outbound.py) has its row
in the doc's tables naming each of its fields, every row names a real type, and no module of
server/ builds a `{"type": ...}` message the catalogue does not know."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.realtime import messages as m
from server.realtime import outbound

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "signaling.md").read_text(encoding="utf-8")
TICKS = re.compile(r"`([^`]+)`")


def _table(heading: str) -> dict[str, str]:
    """type -> the row's other cells, from the table under `heading`."""
    start = DOC.index(heading)
    rows: dict[str, str] = {}
    seen_table = False
    for line in DOC[start:].splitlines()[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if seen_table:
                break
            continue
        seen_table = True
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cells[0]) <= {"-", " ", ":"} or cells[0] == "type":
            continue
        for name in TICKS.findall(cells[0]):
            rows[name] = " | ".join(cells[1:])
    return rows


def _inbound_models() -> dict[str, type]:
    models = m.Inbound.__origin__.__args__  # type: ignore[attr-defined]
    return {cls.model_fields["type"].annotation.__args__[0]: cls for cls in models}


OUT_ROWS = _table("## Server → client")
IN_ROWS = _table("## Client → server")


def test_the_tables_list_exactly_the_catalogued_types():
    assert sorted(OUT_ROWS) == sorted(outbound.CATALOGUE)
    assert sorted(IN_ROWS) == sorted(m.TYPES) == sorted(_inbound_models())


@pytest.mark.parametrize("type_", sorted(outbound.CATALOGUE))
def test_an_outbound_row_names_every_field(type_):
    named = set(TICKS.findall(OUT_ROWS[type_]))
    missing = [f for f in outbound.wire_fields(outbound.CATALOGUE[type_]) if f not in named]
    assert not missing, f"docs/signaling.md: {type_} does not name {missing}"


@pytest.mark.parametrize("type_", sorted(m.TYPES))
def test_an_inbound_row_names_every_field(type_):
    named = set(TICKS.findall(IN_ROWS[type_]))
    fields = [f for f in _inbound_models()[type_].model_fields if f not in ("type", "id")]
    missing = [f for f in fields if f not in named]
    assert not missing, f"docs/signaling.md: {type_} does not name {missing}"


def test_no_message_is_built_outside_the_catalogue():
    literal = re.compile(r"""["']type["']\s*:\s*["']([a-z][a-z0-9_.]*)["']""")
    unknown: list[str] = []
    for path in sorted((REPO / "server").rglob("*.py")):
        if path.name == "openapi.py":  # JSON Schema's "type": "object"
            continue
        for found in literal.findall(path.read_text(encoding="utf-8")):
            if found not in outbound.CATALOGUE:
                unknown.append(f"{path.relative_to(REPO)}: {found}")
    assert not unknown, "outbound types missing from server/realtime/outbound.py: " + \
        ", ".join(unknown)


def test_the_wire_form_leaves_out_only_what_may_be_absent():
    state = outbound.RtcState(room_id="r", state="connected").to_json()
    assert state == {"type": "rtc.state", "room_id": "r", "state": "connected"}
    invited = outbound.RoomInvited(room_id="r", sender="exp.zhang", consult=None).to_json()
    assert invited == {"type": "room.invited", "room_id": "r", "from": "exp.zhang",
                       "kind": "consult", "consult": None}
    assert outbound.Error(code="c", message="m", ref="x").to_json() == {
        "type": "error", "code": "c", "message": "m", "ref": "x"}

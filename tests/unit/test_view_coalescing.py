"""A connection whose writes are held up keeps at most one unsent view.state per room, the
newest: a follower that falls behind jumps to the newest state; other messages keep order."""

from __future__ import annotations

import asyncio
import json

from server.auth.principal import Principal
from server.realtime.hub import Connection
from server.store.directory import Role


class GatedSocket:
    """Stands in for the aiohttp WebSocketResponse: send_str waits until the gate opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[dict] = []

    async def send_str(self, text: str) -> None:
        await self.gate.wait()
        self.sent.append(json.loads(text))

    async def close(self, **_: object) -> None:
        return None


def _view(room: str, version: int) -> dict:
    return {"type": "view.state", "room_id": room, "version": version, "presenter": "p",
            "state": {"n": version}, "at": 0.0}


async def test_a_backed_up_connection_sends_only_the_newest_view_state():
    sock = GatedSocket()
    conn = Connection(sock, Principal("exp.zhang", Role.EXPERT))  # type: ignore[arg-type]
    conn.start()
    await asyncio.sleep(0)
    conn.send(_view("a", 1))  # taken by the writer, which now waits at the gate
    await asyncio.sleep(0)
    for v in range(2, 50):
        conn.send(_view("a", v))
        if v == 10:
            conn.send({"type": "room.event", "room_id": "a", "event": {"id": "1-0"}})
    conn.send(_view("b", 3))
    conn.send(_view("a", 20))  # older than what is pending: never sent
    sock.gate.set()
    await conn.stop()
    got = [(m["type"], m.get("room_id"), m.get("version")) for m in sock.sent]
    assert got == [("view.state", "a", 1), ("view.state", "a", 49),
                   ("room.event", "a", None), ("view.state", "b", 3)]
    assert conn.coalesced == 48  # 47 replaced (2..48 by their successors), the stale 20 dropped


async def test_a_version_already_shown_is_not_sent_again():
    sock = GatedSocket()
    sock.gate.set()
    conn = Connection(sock, Principal("exp.zhang", Role.EXPERT))  # type: ignore[arg-type]
    conn.start()
    conn.view_sent("a", 5)  # room.state carried version 5
    for v in (4, 5, 6, 6):
        conn.send(_view("a", v))
        await asyncio.sleep(0.01)
    await conn.stop()
    assert [m["version"] for m in sock.sent] == [6]

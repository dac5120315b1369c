"""Two real `huizhen serve` processes on one Redis serve one MDT room: the view state, control
changes, the pointer and room events reach participants on either process, in order."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import aiohttp
import pytest

from server.auth.passwords import hash_password
from server.realtime.room_policy import MDT_MAX_PARTICIPANTS
from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.integration.serve_process import ServeProcess, short_data_dir
from tests.integration.ws_client import PageSocket

REDIS_DB = 22
ROOM = "mdt-two"
PASSWORD = secrets.token_urlsafe(12)
USERS = (("coord.liu", Role.COORDINATOR, None), ("exp.zhang", Role.EXPERT, "radiology"),
         ("exp.li", Role.EXPERT, "radiology"))
SERIES = "1.2.826.0.1.3680043.8.498.7.1"


def view(n: int) -> dict:
    return {
        "study_uid": "1.2.826.0.1.3680043.8.498.7", "series_uid": SERIES,
        "sop_instance_uid": f"{SERIES}.{n}", "frame": 1,
        "window": {"center": 40 + n % 5, "width": 400, "function": "LINEAR"},
        "zoom": 1.0, "pan": {"x": 0.0, "y": 0.0}, "rotation": 0, "flip_h": False,
        "flip_v": False, "invert": False, "cine": {"playing": False, "fps": 10},
        "showing": "images", "ecg": None,  # every key, as the room stores and sends it
    }


async def _seed(redis_url: str) -> None:
    store = Store.from_url(redis_url)
    try:
        await store.redis.flushdb()
        await store.directory.add_department("Radiology", "radiology")
        digest = hash_password(PASSWORD)
        for name, role, dept in USERS:
            await store.directory.add_user(name, role=role, password_hash=digest,
                                           department=dept)
        room = await store.rooms.create(kind="mdt", ref="two", room_id=ROOM,
                                        max_participants=MDT_MAX_PARTICIPANTS)
        for name, _, _ in USERS:
            await store.rooms.invite(room.id, name)
    finally:
        await store.close()


@pytest.fixture
def two_servers(redis_server) -> Iterator[tuple[str, str]]:
    url = redis_server.url(REDIS_DB)
    asyncio.run(_seed(url))
    procs = []
    try:
        for _ in range(2):
            data_dir = short_data_dir()
            proc = ServeProcess(data_dir, free_port(), {})
            proc.env = ServeProcess.environment(data_dir, proc.port, HUIZHEN_REDIS_URL=url,
                                                HUIZHEN_LOG_LEVEL="WARNING")
            procs.append(proc)
            proc.start(timeout_s=90)
        yield tuple(f"http://127.0.0.1:{p.port}" for p in procs)  # type: ignore[misc]
    finally:
        for proc in procs:
            proc.stop()


async def _page(http: aiohttp.ClientSession, base: str, user: str) -> PageSocket:
    async with http.post(f"{base}/api/auth/login",
                         json={"username": user, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["token"]
    sock = PageSocket(await http.ws_connect(f"{base}/api/ws"))
    await sock.send(type="auth", token=token)
    await sock.expect("ready", timeout=15, user=user)
    await sock.send(type="room.join", room_id=ROOM)
    await sock.expect("room.state", timeout=30)
    return sock


async def test_one_mdt_room_across_two_processes(two_servers):
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        coord = await _page(http, a, "coord.liu")  # the presenter, on process A
        zhang = await _page(http, b, "exp.zhang")  # a follower on process B
        li = await _page(http, a, "exp.li")  # a follower on process A
        try:
            await coord.send(type="control.take", room_id=ROOM, id="t")
            took = await coord.expect("control.changed", ref="t", timeout=10)
            for sock in (zhang, li):
                got = await sock.expect("control.changed", presenter="coord.liu", timeout=10)
                assert got["version"] == took["version"]
            v0 = took["version"]
            for i in range(50):
                await coord.send(type="view.update", room_id=ROOM, base_version=v0 + i,
                                 state=view(i))
            for sock in (zhang, li):
                seen = []
                while not seen or seen[-1] < v0 + 50:
                    seen.append((await sock.expect("view.state", timeout=15))["version"])
                assert seen == sorted(set(seen))
            # the pointer and a stored event cross too, both ways
            await coord.send(type="pointer", room_id=ROOM, x=3.5, y=4.5,
                             sop_instance_uid=f"{SERIES}.1")
            assert (await zhang.expect("pointer", timeout=10))["x"] == 3.5
            await zhang.send(type="chat.send", room_id=ROOM, text="from B", id="c")
            sent = await zhang.expect("chat.sent", ref="c", timeout=10)
            while (got := await coord.expect("room.event", timeout=10))["event"]["type"] != "chat":
                assert got["event"]["type"] == "control.changed"
            assert got["event"]["id"] == sent["event_id"] and got["event"]["text"] == "from B"
            # control handed to a participant on B; A follows B's changes
            await coord.send(type="control.handover", room_id=ROOM, to="exp.zhang", id="h")
            handed = await coord.expect("control.changed", ref="h", timeout=10)
            await zhang.expect("control.changed", presenter="exp.zhang", timeout=10)
            await zhang.send(type="view.update", room_id=ROOM, base_version=handed["version"],
                             state=view(99), id="u")
            await zhang.expect("view.state", ref="u", timeout=10)
            for sock in (coord, li):
                got = await sock.expect("view.state", version=handed["version"] + 1,
                                        timeout=10)
                assert got["presenter"] == "exp.zhang" and got["state"] == view(99)
            # a stale update from the old presenter on A is refused
            await coord.send(type="control.take", room_id=ROOM, id="t2")
            retook = await coord.expect("control.changed", ref="t2", timeout=10)
            await zhang.send(type="view.update", room_id=ROOM,
                             base_version=handed["version"] + 1, state=view(5), id="late")
            assert (await zhang.expect("error", ref="late", timeout=10))["code"] == "forbidden"
            await coord.send(type="view.update", room_id=ROOM,
                             base_version=retook["version"] - 1, state=view(5), id="stale")
            err = await coord.expect("error", ref="stale", timeout=10)
            assert err["code"] == "stale_view"
            assert err["details"]["version"] == retook["version"]
        finally:
            for sock in (coord, zhang, li):
                await sock.close()

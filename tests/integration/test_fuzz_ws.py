"""Property-based fuzzing of the page WebSocket (/api/ws) with hypothesis-generated messages.

Several signed-in users (doctor, expert, coordinator, another clinic's doctor) send generated
messages: raw text, arbitrary JSON, deep nesting, binary frames, and near-valid signaling
messages of every type with fields of any JSON type and real IDs mixed in. After each batch a
ping must come back (the connection is alive and in order). The properties: no reply is an
`internal_error`, no fuzzing connection is dropped, and two other participants that only
watch (an expert of the department and a doctor) stay connected, see no error, and can still
start and accept a consult afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
from aiohttp import WSMsgType
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st

from server.realtime import messages as m
from server.store.directory import Role
from tests.integration.conftest import login

pytestmark = pytest.mark.timeout(600)

MIN_MESSAGES = 2000
ENOUGH = 2200
# The server's budget is 20 messages/s with a burst of 60 per connection; stay under it.
RATE_PER_S, BURST = 16.0, 40.0


@dataclass
class Socket:
    ws: Any
    user: str
    tokens: float = BURST
    stamp: float = field(default_factory=time.monotonic)
    received: list[dict] = field(default_factory=list)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    reader: asyncio.Task | None = None

    def start(self) -> None:
        async def read() -> None:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    self.received.append(data)
                    self.queue.put_nowait(data)
            self.queue.put_nowait(None)

        self.reader = asyncio.ensure_future(read())

    def available(self) -> float:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * RATE_PER_S)
        self.stamp = now
        return self.tokens

    async def until(self, predicate, timeout: float = 30.0) -> list[dict]:
        """Messages up to and including the first one matching `predicate`."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.queue.get()
                if msg is None:
                    raise ConnectionError(f"{self.user}: closed ({self.ws.close_code})")
                seen.append(msg)
                if predicate(msg):
                    return seen


async def _connect(client, user: str) -> Socket:
    h = await login(client, user)
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"type": "auth", "token": h["Authorization"].split(" ", 1)[1]})
    sock = Socket(ws, user)
    sock.start()
    await sock.until(lambda msg: msg.get("type") == "ready")
    return sock


# -- message strategies -------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_ids = st.sampled_from(["radiology", "cardiology", "qingshui", "dr.li", "exp.zhang",
                        "radiology:ringing", "..", "a" * 64, "a" * 65, "", "CONSULT"]) \
    | st.text(max_size=70)
_field_value = _ids | _json | st.integers(min_value=-(2**70), max_value=2**70)
_FIELDS = ("id", "token", "department", "urgency", "question", "patient_name", "patient_id",
           "study_uid", "consult_id", "room_id", "last_event_id", "username", "sdp",
           "candidate")


@st.composite
def _near_valid(draw) -> str:
    message: dict[str, Any] = {"type": draw(st.sampled_from([*m.TYPES, "room.state", "x"]))}
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=5, unique=True)):
        if name == "candidate":
            message[name] = draw(st.none() | _json | st.fixed_dictionaries(
                {"candidate": st.text(max_size=200)},
                optional={"sdpMid": _field_value, "sdpMLineIndex": _field_value}))
        elif name == "sdp":
            message[name] = draw(st.text(max_size=300) | st.just("v=0\r\n" * 3) | _json)
        elif name == "urgency":
            message[name] = draw(st.sampled_from(["routine", "urgent", "emergency"]) | _json)
        elif name == "question":
            message[name] = draw(st.text(min_size=1, max_size=30) | _json)
        else:
            message[name] = draw(_field_value)
    return json.dumps(message)


_frames = st.one_of(
    _near_valid(),
    _near_valid(),
    _near_valid(),
    _json.map(json.dumps),
    st.text(max_size=100),
    st.integers(min_value=1, max_value=20000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=20000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(min_value=4000, max_value=6000).map(
        lambda n: '{"type": "ping", "id": ' + "9" * n + "}"),
    st.binary(max_size=64),
)


# -- the test -----------------------------------------------------------------------------------


async def test_fuzz_page_websocket(client, people, store, password_hash) -> None:
    loop = asyncio.get_running_loop()
    # The watchers are other people than the fuzzers: a doctor of the fuzzing doctor's clinic
    # and an expert of the department the fuzzers ring.
    await store.directory.add_user("dr.zhou", role=Role.DOCTOR, password_hash=password_hash,
                                   clinic="qingshui")
    await store.directory.add_user("exp.chen", role=Role.EXPERT, password_hash=password_hash,
                                   department="radiology")
    fuzzers = [await _connect(client, user) for user in (
        "dr.li", "dr.li", "dr.li", "exp.zhang", "exp.zhang", "coord.liu", "coord.liu",
        "dr.wang", "dr.wang")]
    watch_expert = await _connect(client, "exp.chen")
    watch_doctor = await _connect(client, "dr.zhou")
    codes: Counter[str] = Counter()
    sent = [0]
    pings = [0]

    async def batch(frames: list[str | bytes], pick: int) -> None:
        # The connection with the most budget left, waiting for it to refill if needed.
        need = len(frames) + 1
        while True:
            sock = max(fuzzers[pick % len(fuzzers):] + fuzzers[: pick % len(fuzzers)],
                       key=Socket.available)
            if sock.tokens >= need:
                break
            await asyncio.sleep((need - sock.tokens) / RATE_PER_S)
        sock.tokens -= need
        for frame in frames:
            if isinstance(frame, bytes):
                await sock.ws.send_bytes(frame)
            else:
                await sock.ws.send_str(frame)
        pings[0] += 1
        ref = f"fuzz-{pings[0]}"
        await sock.ws.send_json({"type": "ping", "id": ref})
        replies = await sock.until(lambda msg: msg.get("type") == "pong"
                                   and msg.get("ref") == ref)
        sent[0] += len(frames)
        for reply in replies:
            if reply.get("type") == "error":
                codes[reply.get("code")] += 1
                assert reply.get("code") != "internal_error", (frames, reply)
                assert reply.get("code") != "too_many_messages", "the fuzzer outran its budget"

    @hypothesis.settings(max_examples=800, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck),
                         phases=[Phase.generate, Phase.shrink])
    @given(frames=st.lists(_frames, min_size=2, max_size=8), pick=st.integers(0, 100))
    def fuzz(frames: list[str | bytes], pick: int) -> None:
        if sent[0] >= ENOUGH:
            return  # hypothesis' list lengths vary: stop sending once there were enough
        asyncio.run_coroutine_threadsafe(batch(frames, pick), loop).result(timeout=120)

    await asyncio.to_thread(fuzz)

    assert sent[0] >= MIN_MESSAGES, sent[0]
    assert codes["invalid_message"] > 100, codes  # the fuzz reached the validators
    for sock in fuzzers:
        assert not sock.ws.closed, (sock.user, sock.ws.close_code)

    # The watchers: still connected, never sent an error, and fully working.
    for sock in (watch_expert, watch_doctor):
        assert not sock.ws.closed
        assert not [r for r in sock.received if r.get("type") == "error"], sock.received
    await watch_doctor.ws.send_json({"type": "ping", "id": "w"})
    await watch_doctor.until(lambda msg: msg.get("type") == "pong")
    await watch_doctor.ws.send_json({"type": "consult.start", "department": "radiology",
                                     "question": "after the fuzz", "id": "start"})
    created = (await watch_doctor.until(lambda msg: msg.get("type") == "consult.created"))[-1]
    consult_id = created["consult"]["id"]
    await watch_expert.until(lambda msg: msg.get("type") == "consult.ringing"
                             and msg.get("consult", {}).get("id") == consult_id)
    await watch_expert.ws.send_json({"type": "consult.accept", "consult_id": consult_id})
    await watch_expert.until(lambda msg: msg.get("type") == "consult.accepted")
    await watch_doctor.until(lambda msg: msg.get("type") == "consult.accepted")
    for sock in (*fuzzers, watch_expert, watch_doctor):
        await sock.ws.close()

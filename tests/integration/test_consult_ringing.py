"""Consult requests ring for a bounded time (decided in Redis, so a restart does not lose the
deadline), and one doctor cannot flood a department."""

from __future__ import annotations

import dataclasses
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.store import Store
from tests.integration.conftest import login
from tests.integration.ws_client import PageSocket


async def _page(client, username: str) -> PageSocket:
    token = (await login(client, username))["Authorization"].split()[1]
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token=token)
    await sock.expect("ready")
    return sock


async def test_an_unanswered_consult_stops_ringing_with_a_message(server_with, store):
    client = await server_with(ring_timeout_s=1.5)
    doctor, expert = await _page(client, "dr.li"), await _page(client, "exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Anyone?")
    created = (await doctor.expect("consult.created"))["consult"]
    started = time.time()
    assert created["ring_deadline"] == pytest.approx(created["created_at"] + 1.5)
    ringing = (await expert.expect("consult.ringing"))["consult"]
    assert ringing["doctor_name"] and ringing["has_study"] is False
    told = await doctor.expect("consult.unanswered", timeout=8)
    assert time.time() - started >= 1.4  # not before the deadline
    assert told["consult"]["id"] == created["id"] and told["consult"]["state"] == "unanswered"
    assert told["consult"]["outcome"] == "unanswered"
    assert told["consult"]["question"] == "Anyone?"  # the page can offer to ring again
    assert told["ring_timeout_s"] == 1.5
    assert (await expert.expect("consult.unanswered", timeout=8))["consult_id"] == created["id"]
    await expert.send(type="consult.accept", consult_id=created["id"])
    assert (await expert.expect("error"))["code"] == "conflict"
    actions = [e.fields["action"] for e in await store.audit.recent(50)]
    assert "consult.unanswered" in actions
    # The expert who signs in later is not rung for it.
    late = await _page(client, "exp.zhang")
    await late.send(type="ping", id="p")
    await late.expect("pong")
    assert not [m for m in late.backlog if m["type"] == "consult.ringing"]
    for s in (doctor, expert, late):
        await s.close()


async def test_the_deadline_survives_a_server_restart(settings, store, people):
    fast = dataclasses.replace(settings, ring_timeout_s=2.0)
    first = TestClient(TestServer(create_app(fast, Store.from_url(fast.redis_url))))
    await first.start_server()
    doctor, expert = await _page(first, "dr.li"), await _page(first, "exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Restart?")
    consult = (await doctor.expect("consult.created"))["consult"]
    await doctor.close()
    await expert.close()
    await first.close()  # no in-memory timer survives this

    second = TestClient(TestServer(create_app(fast, Store.from_url(fast.redis_url))))
    await second.start_server()
    try:
        again = await _page(second, "dr.li")
        assert (await again.expect("consult.created"))["consult"]["id"] == consult["id"]
        told = await again.expect("consult.unanswered", timeout=8)
        assert told["consult_id"] == consult["id"]
        assert time.time() >= consult["ring_deadline"]
        await again.close()
    finally:
        await second.close()


async def test_one_doctor_cannot_flood_a_department(server_with, store):
    client = await server_with(consult_max_ringing=2, consult_starts_per_hour=4)
    doctor = await _page(client, "dr.li")
    expert = await _page(client, "exp.zhang")
    ids = []
    for i in range(2):
        await doctor.send(type="consult.start", department="radiology", question=f"q{i}")
        ids.append((await doctor.expect("consult.created"))["consult"]["id"])
    await doctor.send(type="consult.start", department="radiology", question="q2", id="x")
    err = await doctor.expect("error", ref="x")
    assert err["code"] == "too_many_requests" and err["details"] == {"limit": "waiting"}
    # Another doctor is not affected.
    other = await _page(client, "dr.wang")
    await other.send(type="consult.start", department="radiology", question="mine")
    await other.expect("consult.created")
    # Cancelling frees a place (and cancelled carries the consult, to refill the form).
    await doctor.send(type="consult.cancel", consult_id=ids[0])
    cancelled = await doctor.expect("consult.cancelled")
    assert cancelled["consult"]["question"] == "q0" and cancelled["consult"]["state"] == "cancelled"
    await doctor.send(type="consult.start", department="radiology", question="q3")
    ids.append((await doctor.expect("consult.created"))["consult"]["id"])
    await doctor.send(type="consult.cancel", consult_id=ids[-1])
    await doctor.expect("consult.cancelled")
    await doctor.send(type="consult.start", department="radiology", question="q4")
    q4 = (await doctor.expect("consult.created"))["consult"]["id"]  # the 4th start this hour
    await doctor.send(type="consult.cancel", consult_id=q4)
    await doctor.expect("consult.cancelled")
    await doctor.send(type="consult.start", department="radiology", question="q5", id="y")
    err = await doctor.expect("error", ref="y")
    assert err["code"] == "too_many_requests" and err["details"] == {"limit": "rate"}
    refused = [e.fields for e in await store.audit.recent(50)
               if e.fields["action"] == "consult.refused"]
    assert [f["reason"] for f in refused] == ["rate", "waiting"]  # newest first
    assert all(f["user"] == "dr.li" and f["clinic"] == "qingshui" for f in refused)
    for s in (doctor, other, expert):
        await s.close()

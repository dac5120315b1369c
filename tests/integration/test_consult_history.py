"""GET /api/consults: doctors see their clinic's consults, experts the ones they joined, with
patient, department, participants, duration, outcome and whether it can be rejoined."""

from __future__ import annotations

import asyncio

import pytest

from server.store.directory import Role


@pytest.fixture
async def connect(page_sockets, store, password_hash):
    await store.directory.add_user("exp.li", role=Role.EXPERT, password_hash=password_hash,
                                   department="radiology")
    return page_sockets


async def _history(client, auth, user: str, query: str = "") -> dict:
    resp = await client.get(f"/api/consults{query}", headers=await auth(user))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_history_by_role_with_outcomes(connect, client, auth, store):
    doctor, expert = await connect("dr.li"), await connect("exp.zhang")
    other_clinic = await connect("dr.wang")
    await doctor.send(type="consult.start", department="radiology", question="Completed one",
                      patient_name="王小明", patient_id="QS-1")
    done = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=done["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    for p in (doctor, expert):
        await p.send(type="room.join", room_id=room_id)
        await p.expect("room.state")
    await asyncio.sleep(0.3)  # a call of measurable length
    for p in (doctor, expert):
        await p.send(type="room.leave", room_id=room_id)
        await p.expect("room.left")
    await doctor.send(type="consult.start", department="radiology", question="Cancelled one")
    cancelled = (await doctor.expect("consult.created"))["consult"]
    await doctor.send(type="consult.cancel", consult_id=cancelled["id"])
    await doctor.expect("consult.cancelled")
    await other_clinic.send(type="consult.start", department="radiology", question="Not yours")
    theirs = (await other_clinic.expect("consult.created"))["consult"]

    mine = await _history(client, auth, "dr.li")
    assert mine["total"] == 2 and [c["id"] for c in mine["consults"]] == [
        cancelled["id"], done["id"]]  # newest first, only the own clinic's
    first = mine["consults"][1]
    assert first["outcome"] == "completed" and first["state"] == "ended"
    assert first["patient_name"] == "王小明" and first["department"] == "radiology"
    assert 0.2 <= first["duration_s"] < 60
    assert {p["id"] for p in first["participants"]} == {"dr.li", "exp.zhang"}
    assert all(p["reason"] == "hung_up" for p in first["participants"])
    assert first["rejoinable"] is False
    assert mine["consults"][0]["outcome"] == "cancelled"
    assert mine["consults"][0]["participants"] == []
    assert theirs["id"] not in {c["id"] for c in mine["consults"]}

    joined = await _history(client, auth, "exp.zhang")
    assert [c["id"] for c in joined["consults"]] == [done["id"]]
    assert (await _history(client, auth, "exp.li"))["consults"] == []  # never joined one
    page = await _history(client, auth, "dr.li", "?limit=1&offset=1")
    assert page["total"] == 2 and [c["id"] for c in page["consults"]] == [done["id"]]
    listed = [e.fields for e in await store.audit.recent(20)
              if e.fields["action"] == "consults.list"]
    assert listed and listed[0]["user"] == "dr.li" and listed[0]["clinic"] == "qingshui"


async def test_a_dropped_doctor_sees_the_call_as_rejoinable(connect, client, auth):
    doctor, expert = await connect("dr.li"), await connect("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Drop")
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    for p in (doctor, expert):
        await p.send(type="room.join", room_id=room_id)
        await p.expect("room.state")
    await doctor.close()  # the kiosk's link drops
    await expert.expect("room.participant", event="reconnecting")
    item = (await _history(client, auth, "dr.li"))["consults"][0]
    assert item["rejoinable"] is True and item["outcome"] == "in_progress"
    assert item["duration_s"] >= 0


@pytest.mark.parametrize(("user", "query", "status"), [
    ("admin", "", 403), ("dr.li", "?limit=0", 400), ("dr.li", "?limit=101", 400),
    ("dr.li", "?limit=%D9%A3", 400), ("dr.li", "?offset=-1", 400),
    ("dr.li", "?limit=" + "9" * 5000, 400),
])
async def test_refused_and_bad_paging(client, auth, user, query, status):
    resp = await client.get(f"/api/consults{query}", headers=await auth(user))
    assert resp.status == status
    assert "code" in (await resp.json())["error"]
    assert (await client.get("/api/consults")).status == 401

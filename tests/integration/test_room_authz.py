"""Every room and consult authorization decision, refused through the real WebSocket and audited
(issue #7 item 13)."""

from __future__ import annotations

import pytest

from server.store import rooms as rooms_module
from tests.integration.ws_client import PageSocket


@pytest.fixture
def connect(page_sockets, more_people):
    return page_sockets


async def _open_room(connect) -> tuple[PageSocket, PageSocket, str]:
    doctor, expert = await connect("dr.li"), await connect("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="q")
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    for p in (doctor, expert):
        await p.send(type="room.join", room_id=room_id)
        await p.expect("room.state", timeout=10)
    return doctor, expert, room_id


async def _refusals(store, action: str) -> list[dict]:
    return [e.fields for e in await store.audit.recent(200) if e.fields["action"] == action]


@pytest.mark.parametrize(("user", "code"), [
    ("dr.wang", "not_found"),    # another clinic's doctor
    ("exp.chen", "not_found"),   # another department's expert
    ("coord.liu", "not_found"),  # a coordinator nobody invited
    ("admin", "forbidden"),      # admins never join
])
async def test_outsiders_cannot_join_an_open_consult_room(connect, store, user, code):
    _, _, room_id = await _open_room(connect)
    outsider = await connect(user)
    await outsider.send(type="room.join", room_id=room_id, id="j")
    err = await outsider.expect("error", ref="j")
    assert err["code"] == code
    assert {m.id for m in await store.rooms.members(room_id)} == {"dr.li", "exp.zhang"}
    refused = await _refusals(store, "room.join.refused")
    assert [(r["user"], r["room"], r["code"]) for r in refused] == [(user, room_id, code)]
    # Nor can it speak in the room it failed to join.
    await outsider.send(type="rtc.answer", room_id=room_id, sdp="v=0 whatever", id="a")
    assert (await outsider.expect("error", ref="a"))["code"] == "not_found"


async def test_only_experts_invite_and_departments_must_exist(connect, store):
    doctor, expert, room_id = await _open_room(connect)
    await doctor.send(type="room.invite", room_id=room_id, username="exp.li", id="i1")
    assert (await doctor.expect("error", ref="i1"))["code"] == "forbidden"
    await doctor.send(type="room.invite", room_id=room_id, department="neurology", id="i2")
    assert (await doctor.expect("error", ref="i2"))["code"] == "forbidden"
    assert not await store.rooms.invited(room_id, "exp.li", "radiology")
    assert not await store.rooms.invited(room_id, "exp.chen", "neurology")
    await expert.send(type="room.invite", room_id=room_id, department="cardiology", id="i3")
    assert (await expert.expect("error", ref="i3"))["code"] == "not_found"
    await expert.send(type="room.invite", room_id=room_id, username="dr.wang", id="i4")
    assert (await expert.expect("error", ref="i4"))["code"] == "not_found"  # not an expert
    refused = await _refusals(store, "room.invite.refused")
    assert sorted((r["user"], r.get("username", ""), r.get("department", ""), r["code"])
                  for r in refused) == sorted([
        ("dr.li", "exp.li", "", "forbidden"), ("dr.li", "", "neurology", "forbidden"),
        ("exp.zhang", "", "cardiology", "not_found"), ("exp.zhang", "dr.wang", "", "not_found"),
    ])


async def test_inviting_a_department_lets_its_experts_in(connect, store):
    _, expert, room_id = await _open_room(connect)
    chen = await connect("exp.chen")
    await expert.send(type="room.invite", room_id=room_id, department="neurology")
    await expert.expect("room.invite.sent")
    assert (await chen.expect("room.invited"))["room_id"] == room_id
    await chen.send(type="room.join", room_id=room_id)
    state = await chen.expect("room.state", timeout=10)
    assert {p["id"] for p in state["participants"]} == {"dr.li", "exp.zhang", "exp.chen"}
    assert await _refusals(store, "room.join.refused") == []


async def test_a_full_room_refuses_the_next_one(connect, store, monkeypatch):
    monkeypatch.setattr(rooms_module, "MAX_PARTICIPANTS", 3)
    _, expert, room_id = await _open_room(connect)
    li, chen = await connect("exp.li"), await connect("exp.chen")
    for name in ("exp.li", "exp.chen"):
        await expert.send(type="room.invite", room_id=room_id, username=name)
        await expert.expect("room.invite.sent")
    await li.send(type="room.join", room_id=room_id)
    await li.expect("room.state", timeout=10)
    await chen.send(type="room.join", room_id=room_id, id="full")
    err = await chen.expect("error", ref="full")
    assert err["code"] == "conflict" and "full" in err["message"]
    assert [(r["user"], r["code"]) for r in await _refusals(store, "room.join.refused")] == [
        ("exp.chen", "conflict")]
    assert len(await store.rooms.members(room_id)) == 3


async def test_a_second_connection_replaces_the_first(connect, store):
    _, expert, room_id = await _open_room(connect)
    again = await connect("exp.zhang")  # the expert reloads in another tab
    await again.send(type="room.join", room_id=room_id)
    await again.expect("room.state", timeout=10)
    assert (await expert.expect("room.replaced"))["room_id"] == room_id
    await expert.send(type="room.leave", room_id=room_id, id="old")
    assert (await expert.expect("error", ref="old"))["code"] == "not_found"
    member = await store.rooms.member(room_id, "exp.zhang")
    assert member is not None and member.state.value == "connected"  # the new one holds it
    replaced = await _refusals(store, "room.replaced")
    assert [(r["user"], r["room"]) for r in replaced] == [("exp.zhang", room_id)]


async def test_another_departments_expert_cannot_accept(connect, store):
    doctor, zhang = await connect("dr.li"), await connect("exp.zhang")
    chen = await connect("exp.chen")
    await doctor.send(type="consult.start", department="radiology", question="q")
    consult = (await doctor.expect("consult.created"))["consult"]
    await chen.send(type="consult.accept", consult_id=consult["id"], id="x")
    assert (await chen.expect("error", ref="x"))["code"] == "forbidden"
    await doctor.send(type="consult.accept", consult_id=consult["id"], id="y")
    assert (await doctor.expect("error", ref="y"))["code"] == "forbidden"
    refused = await _refusals(store, "consult.accept.refused")
    assert sorted((r["user"], r["consult"], r["code"]) for r in refused) == [
        ("dr.li", consult["id"], "forbidden"), ("exp.chen", consult["id"], "forbidden")]
    assert (await store.consults.get(consult["id"])).state.value == "ringing"
    await zhang.send(type="consult.accept", consult_id=consult["id"])
    assert (await zhang.expect("consult.accepted"))["consult"]["accepted_by"] == "exp.zhang"

"""The kind-neutral room seams other services build on: `RoomService.emit` (log + room.event
to every member), resuming from a last event id with nothing capped away, `close_room`."""

from __future__ import annotations

from server import appkeys
from server.realtime.room_policy import MDT_MAX_PARTICIPANTS


async def _mdt_room(store, room_id="mdt-test1", *invitees):
    room = await store.rooms.create(kind="mdt", ref="test1", room_id=room_id,
                                    max_participants=MDT_MAX_PARTICIPANTS)
    for user in invitees:
        await store.rooms.invite(room.id, user)
    return room


async def test_emit_logs_and_tells_every_member(client, store, page_sockets):
    room = await _mdt_room(store, "mdt-test1", "exp.zhang", "coord.liu")
    zhang, liu = await page_sockets("exp.zhang"), await page_sockets("coord.liu")
    for sock in (zhang, liu):
        await sock.send(type="room.join", room_id=room.id)
        state = await sock.expect("room.state", timeout=10)
        assert state["kind"] == "mdt" and state["consult"] is None
    rooms = client.app[appkeys.REALTIME].rooms
    event_id = await rooms.emit(room.id, "key_image.added", sop_instance_uid="1.2.3", frame=1)
    for sock in (zhang, liu):
        got = await sock.expect("room.event", room_id=room.id)
        assert got["event"]["id"] == event_id
        assert got["event"]["type"] == "key_image.added"
        assert got["event"]["sop_instance_uid"] == "1.2.3" and got["event"]["at"] > 0
    logged = await store.rooms.events(room.id)
    assert logged[-1]["id"] == event_id and logged[-1]["frame"] == 1


async def test_resume_gets_every_missed_event_in_pages(client, store, page_sockets):
    room = await _mdt_room(store, "mdt-test2", "exp.zhang")
    rooms = client.app[appkeys.REALTIME].rooms
    first = await rooms.emit(room.id, "chat", by="coord.liu", text="0")
    ids = [await rooms.emit(room.id, "chat", by="coord.liu", text=str(i))
           for i in range(1, 1201)]
    zhang = await page_sockets("exp.zhang")
    await zhang.send(type="room.join", room_id=room.id, last_event_id=first)
    await zhang.expect("room.state", timeout=10)
    got: list[str] = []
    while True:
        page = await zhang.expect("room.events", timeout=10)
        got += [e["id"] for e in page["events"] if e["type"] == "chat"]
        assert len(page["events"]) <= 500
        if not page["more"]:
            break
    assert got == ids  # all 1200, in order: an MDT room's log is not capped
    assert await store.rooms.last_event_id(room.id) != "0-0"


async def test_close_room_tells_members_and_refuses_joins(client, store, page_sockets):
    room = await _mdt_room(store, "mdt-test3", "exp.zhang", "exp.li")
    zhang = await page_sockets("exp.zhang")
    await zhang.send(type="room.join", room_id=room.id)
    await zhang.expect("room.state", timeout=10)
    rooms = client.app[appkeys.REALTIME].rooms
    assert await rooms.close_room(room.id, "concluded")
    closed = await zhang.expect("room.closed")
    assert closed == {"type": "room.closed", "room_id": room.id, "reason": "concluded"}
    assert not await rooms.close_room(room.id, "concluded")  # once
    assert not (await store.rooms.get(room.id)).open
    await zhang.send(type="room.join", room_id=room.id, id="again")
    assert (await zhang.expect("error", ref="again"))["code"] == "not_found"
    member = await store.rooms.member(room.id, "exp.zhang")
    assert member.state.value == "left" and member.reason == "room_closed"
    assert (await store.rooms.events(room.id))[-1]["type"] == "closed"


async def test_an_mdt_room_stays_open_when_empty(client, store, page_sockets):
    room = await _mdt_room(store, "mdt-test4", "exp.zhang")
    zhang = await page_sockets("exp.zhang")
    await zhang.send(type="room.join", room_id=room.id)
    await zhang.expect("room.state", timeout=10)
    await zhang.send(type="room.leave", room_id=room.id)
    await zhang.expect("room.left")
    assert (await store.rooms.get(room.id)).open
    assert (await store.rooms.get(room.id)).max_participants == 12


async def test_uninvited_and_admins_do_not_join_an_mdt_room(client, store, page_sockets):
    room = await _mdt_room(store, "mdt-test5", "exp.zhang")
    for user, code in (("dr.wang", "not_found"), ("admin", "forbidden")):
        sock = await page_sockets(user)
        await sock.send(type="room.join", room_id=room.id, id="j")
        assert (await sock.expect("error", ref="j"))["code"] == code

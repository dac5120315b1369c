"""An MDT room's shared view with real WebSocket clients: the presenter's changes reach every
follower in order and all end on the same state; stale updates are refused; exactly one
presenter under concurrent control.take; pointer, chat and the agenda; reconnect-and-resume
with no missed event."""

from __future__ import annotations

import asyncio

import pytest

from server import appkeys
from server.realtime.room_policy import MDT_MAX_PARTICIPANTS

ROOM = "mdt-live1"
MEMBERS = ("coord.liu", "exp.zhang", "exp.li", "exp.chen", "dr.li")
STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = STUDY + ".1"


def view(n: int, center: float = 40.0, width: float = 400.0) -> dict:
    return {
        "study_uid": STUDY, "series_uid": SERIES, "sop_instance_uid": f"{SERIES}.{n}",
        "frame": 1, "window": {"center": center, "width": width, "function": "LINEAR"},
        "zoom": 1.0, "pan": {"x": 0.0, "y": 0.0}, "rotation": 0, "flip_h": False,
        "flip_v": False, "invert": False, "cine": {"playing": False, "fps": 10},
        "showing": "images", "ecg": None,  # every key, as the room stores and sends it
    }


@pytest.fixture
async def room(store, more_people):
    created = await store.rooms.create(kind="mdt", ref="live1", room_id=ROOM,
                                       max_participants=MDT_MAX_PARTICIPANTS)
    for user in MEMBERS:
        await store.rooms.invite(created.id, user)
    return created


@pytest.fixture
async def joined(room, page_sockets):
    """Every member's page, in the room (room.state taken)."""
    socks = {}
    for user in MEMBERS:
        sock = await page_sockets(user)
        await sock.send(type="room.join", room_id=ROOM)
        state = await sock.expect("room.state", timeout=15)
        assert state["kind"] == "mdt"
        assert state["view"] == {"version": 0, "presenter": None, "state": None, "at": 0.0}
        socks[user] = sock
    return socks


async def _take(sock, ref="take", room_id=ROOM):
    await sock.send(type="control.take", room_id=room_id, id=ref)
    return await sock.expect("control.changed", ref=ref)


async def test_presenter_drives_every_follower_in_order(joined, store):
    presenter = joined["coord.liu"]
    took = await _take(presenter)
    version = took["version"]
    states = [view(i, center=40 + (i % 7) * 10, width=400 - (i % 3) * 50) for i in range(100)]
    for i, state in enumerate(states):  # pipelined: each names the version it replaces
        await presenter.send(type="view.update", room_id=ROOM, base_version=version + i,
                             state=state)
    final = version + len(states)
    for user in MEMBERS[1:]:
        seen: list[int] = []
        while True:
            msg = await joined[user].expect("view.state", timeout=15)
            seen.append(msg["version"])
            assert msg["presenter"] == "coord.liu"
            if msg["version"] == final:
                assert msg["state"] == states[-1]
                break
        assert seen == sorted(set(seen)), f"{user} saw versions out of order: {seen}"
    current = await store.room_views.get(ROOM)
    assert current.version == final and current.state == states[-1]


async def test_a_stale_update_is_refused_with_the_current_state(joined):
    presenter = joined["coord.liu"]
    took = await _take(presenter)
    v = took["version"]
    await presenter.send(type="view.update", room_id=ROOM, base_version=v, state=view(1),
                         id="first")
    applied = await presenter.expect("view.state", ref="first")
    assert applied["version"] == v + 1
    await presenter.send(type="view.update", room_id=ROOM, base_version=v, state=view(2),
                         id="stale")
    err = await presenter.expect("error", ref="stale")
    assert err["code"] == "stale_view"
    assert err["details"]["version"] == v + 1 and err["details"]["state"] == view(1)


async def test_only_the_presenter_updates_and_points(joined):
    await _take(joined["coord.liu"])
    zhang = joined["exp.zhang"]
    await zhang.send(type="view.update", room_id=ROOM, base_version=1, state=view(1), id="u")
    assert (await zhang.expect("error", ref="u"))["code"] == "forbidden"
    await zhang.send(type="pointer", room_id=ROOM, x=1, y=2, sop_instance_uid=SERIES + ".1",
                     id="p")
    assert (await zhang.expect("error", ref="p"))["code"] == "forbidden"
    await joined["coord.liu"].send(type="pointer", room_id=ROOM, x=10.5, y=20.25,
                                   sop_instance_uid=SERIES + ".1", frame=1)
    got = await zhang.expect("pointer")
    assert (got["by"], got["x"], got["y"]) == ("coord.liu", 10.5, 20.25)


async def test_bad_view_states_are_refused(joined):
    presenter = joined["coord.liu"]
    took = await _take(presenter)
    bad = [
        {k: v for k, v in view(1).items() if k != "cine"},  # a key missing
        {**view(1), "zoom": 0.0},
        {**view(1), "rotation": 45},
        {**view(1), "window": {"center": 1, "width": 0, "function": "LINEAR"}},
        {**view(1), "extra": 1},
        {**view(1), "frame": 0},
    ]
    for i, state in enumerate(bad):
        await presenter.send(type="view.update", room_id=ROOM, base_version=took["version"],
                             state=state, id=f"bad{i}")
        assert (await presenter.expect("error", ref=f"bad{i}"))["code"] == "invalid_message"


async def test_exactly_one_presenter_under_concurrent_takes(joined, store):
    contenders = [u for u in MEMBERS if u != "coord.liu"]
    for round_ in range(3):
        await asyncio.gather(*(joined[u].send(type="control.take", room_id=ROOM,
                                              id=f"t{round_}") for u in contenders))
        winners, losers = [], []
        for u in contenders:
            while True:
                msg = await joined[u].next(timeout=10)
                if msg.get("ref") == f"t{round_}":
                    break
            if msg["type"] == "control.changed":
                winners.append(u)
            else:
                assert msg["code"] == "conflict", msg
                losers.append(u)
        assert len(winners) == 1, winners
        current = await store.room_views.get(ROOM)
        assert current.presenter == winners[0]
        # The coordinator can always take; then hands back control to nobody.
        took = await _take(joined["coord.liu"], ref=f"c{round_}")
        assert took["presenter"] == "coord.liu"
        await joined["coord.liu"].send(type="control.release", room_id=ROOM, id=f"r{round_}")
        released = await joined["coord.liu"].expect("control.changed", ref=f"r{round_}")
        assert released["presenter"] is None
        for sock in joined.values():
            sock.backlog.clear()


async def test_request_handover_and_leaving_presenter(joined, store):
    coord, zhang, li = joined["coord.liu"], joined["exp.zhang"], joined["exp.li"]
    await _take(zhang)
    await li.send(type="control.request", room_id=ROOM)
    for sock in (zhang, coord):
        assert (await sock.expect("control.requested"))["by"] == "exp.li"
    await li.send(type="control.handover", room_id=ROOM, to="exp.li", id="h")
    assert (await li.expect("error", ref="h"))["code"] == "forbidden"  # not theirs to give
    await zhang.send(type="control.handover", room_id=ROOM, to="exp.li", id="h2")
    assert (await zhang.expect("control.changed", ref="h2"))["presenter"] == "exp.li"
    for name, sock in (("coord", coord), ("zhang", zhang), ("li", li)):
        try:
            await sock.expect("control.changed", presenter="exp.li")
        except TimeoutError:
            raise AssertionError((name, sock.backlog)) from None
    await li.send(type="room.leave", room_id=ROOM)
    await li.expect("room.left")
    gone = await coord.expect("control.changed", presenter=None)
    assert gone["by"] == "exp.li"
    assert (await store.room_views.get(ROOM)).presenter is None


async def test_chat_and_agenda(joined, store):
    coord, zhang = joined["coord.liu"], joined["exp.zhang"]
    await zhang.send(type="chat.send", room_id=ROOM, text="见第三张 slice 12", id="c")
    sent = await zhang.expect("chat.sent", ref="c")
    for sock in joined.values():
        ev = await sock.expect("room.event")
        assert ev["event"] == {**ev["event"], "id": sent["event_id"], "type": "chat",
                               "by": "exp.zhang", "text": "见第三张 slice 12"}
    await zhang.send(type="agenda.current", room_id=ROOM, case_id="case-2", id="a")
    assert (await zhang.expect("error", ref="a"))["code"] == "forbidden"
    await coord.send(type="agenda.current", room_id=ROOM, case_id="case-2")
    ev = await zhang.expect("room.event")
    assert ev["event"]["type"] == "case.current" and ev["event"]["case_id"] == "case-2"
    assert (await store.room_views.get(ROOM)).case_id == "case-2"


async def test_reconnect_resumes_with_nothing_missed(client, joined, page_sockets):
    coord = joined["coord.liu"]
    chen = joined["exp.chen"]
    took = await _take(coord)
    mark = (await chen.expect("room.event"))["event"]["id"]  # the control.changed event
    await chen.close()  # the link drops
    missed = []
    rooms = client.app[appkeys.REALTIME].rooms
    for i in range(30):
        if i % 5 == 0:  # chat from a page (2/s per page), the rest from other services
            await coord.send(type="chat.send", room_id=ROOM, text=f"m{i}", id=f"m{i}")
            missed.append((await coord.expect("chat.sent", ref=f"m{i}"))["event_id"])
        else:
            missed.append(await rooms.emit(ROOM, "chat", by="coord.liu", text=f"m{i}"))
    for i in range(5):
        await coord.send(type="view.update", room_id=ROOM, base_version=took["version"] + i,
                         state=view(i))
    await coord.expect("view.state", version=took["version"] + 5)
    again = await page_sockets("exp.chen")
    await again.send(type="room.join", room_id=ROOM, last_event_id=mark)
    state = await again.expect("room.state", timeout=15)
    assert state["view"]["version"] == took["version"] + 5
    assert state["view"]["state"] == view(4) and state["view"]["presenter"] == "coord.liu"
    events = []
    while True:
        page = await again.expect("room.events", timeout=10)
        events += page["events"]
        if not page["more"]:
            break
    chats = [e["id"] for e in events if e["type"] == "chat"]
    assert chats == missed
    assert state["last_event_id"] >= missed[-1]


async def test_a_late_joiner_gets_the_current_view(room, joined, page_sockets, store):
    coord = joined["coord.liu"]
    took = await _take(coord)
    await coord.send(type="view.update", room_id=ROOM, base_version=took["version"],
                     state=view(7), id="v")
    await coord.expect("view.state", ref="v")
    await store.rooms.invite(ROOM, "dr.wang")
    late = await page_sockets("dr.wang")
    await late.send(type="room.join", room_id=ROOM)
    state = await late.expect("room.state", timeout=15)
    assert state["view"]["state"] == view(7) and state["view"]["presenter"] == "coord.liu"


async def test_chat_is_rate_limited(joined):
    zhang = joined["exp.zhang"]
    for i in range(20):  # all at once: a burst of 10, then 2 a second
        await zhang.send(type="chat.send", room_id=ROOM, text=f"c{i}", id=f"c{i}")
    codes = {}
    while len(codes) < 20:
        reply = await zhang.next(timeout=10)
        if str(reply.get("ref", "")).startswith("c"):
            codes[reply["ref"]] = reply["type"] if reply["type"] != "error" else reply["code"]
    assert [codes[f"c{i}"] for i in range(10)] == ["chat.sent"] * 10
    assert "too_many_requests" in [codes[f"c{i}"] for i in range(10, 20)]


async def test_a_consult_room_has_no_shared_view(client, store, page_sockets):
    created = await store.rooms.create(kind="consult", ref="c1", room_id="consult-x")
    await store.rooms.invite(created.id, "exp.zhang")
    zhang = await page_sockets("exp.zhang")
    await zhang.send(type="room.join", room_id=created.id)
    state = await zhang.expect("room.state", timeout=15)
    assert "view" not in state
    await zhang.send(type="control.take", room_id=created.id, id="t")
    assert (await zhang.expect("error", ref="t"))["code"] == "forbidden"


async def test_with_a_scheduled_session_only_invitees_present_and_conclude_closes(
        client, auth, more_people, page_sockets, store):
    """A real MDT session (server/mdt/): its invitees join; the session's coordinator takes
    control; the agenda only takes the session's cases; concluding closes the room."""
    import time

    coord_h = await auth("coord.liu")
    resp = await client.post("/api/mdt", headers=coord_h, json={
        "title": "Thoracic MDT", "starts_at": int(time.time()) + 300, "duration_min": 60,
        "departments": ["radiology"], "experts": ["exp.zhang"], "clinics": ["hetang"],
        "lead_expert": "exp.zhang", "cases": []})
    body = await resp.json()
    assert resp.status == 201, body
    mdt = body["mdt"]
    assert mdt["state"] == "open"
    room_id = mdt["room_id"]
    socks = {}
    for user in ("coord.liu", "exp.zhang", "dr.wang"):
        socks[user] = await page_sockets(user)
        await socks[user].send(type="room.join", room_id=room_id)
        state = await socks[user].expect("room.state", timeout=15)
        assert state["mdt"]["id"] == mdt["id"] and state["view"]["version"] == 0
    assert (await store.mdt.get(mdt["id"])).state == "live"  # someone is in the room
    for user in ("exp.li", "dr.li"):  # not invited
        sock = await page_sockets(user)
        await sock.send(type="room.join", room_id=room_id, id="j")
        assert (await sock.expect("error", ref="j"))["code"] == "not_found"
    await socks["exp.zhang"].send(type="control.take", room_id=room_id, id="t")
    await socks["exp.zhang"].expect("control.changed", ref="t")
    took = await _take(socks["coord.liu"], room_id=room_id)  # a coordinator can always take
    assert took["presenter"] == "coord.liu"
    await socks["coord.liu"].send(type="view.update", room_id=room_id,
                                  base_version=took["version"], state=view(3))
    got = await socks["dr.wang"].expect("view.state", version=took["version"] + 1)
    assert got["state"] == view(3)
    await socks["coord.liu"].send(type="agenda.current", room_id=room_id, case_id="nope",
                                  id="a")
    assert (await socks["coord.liu"].expect("error", ref="a"))["code"] == "not_found"
    resp = await client.post(f"/api/mdt/{mdt['id']}/conclude", headers=coord_h)
    assert resp.status == 200, await resp.text()
    for sock in socks.values():
        assert (await sock.expect("room.closed", timeout=10))["reason"] == "concluded"

"""The page WebSocket: authentication, validation, and the consult flow (ring, atomic accept,
cancel) — without media. Media through the SFU is in test_consult_call.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.ws_client import PageSocket


@pytest.fixture
def connect(page_sockets, more_people):
    return page_sockets


async def test_socket_needs_authentication_first(client):
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="ping")
    err = await sock.expect("error")
    assert err["code"] == "unauthenticated"
    assert await sock.closed() == 4401
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token="not-a-token")
    assert (await sock.expect("error"))["code"] == "unauthenticated"
    assert await sock.closed() == 4401


async def test_bearer_header_also_authenticates(client, auth):
    sock = PageSocket(await client.ws_connect("/api/ws", headers=await auth("exp.zhang")))
    assert (await sock.expect("ready"))["role"] == "expert"
    await sock.close()


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        ("{not json", "invalid_message", "not valid JSON"),
        ("[1, 2]", "invalid_message", "JSON object"),
        ('{"type": "teleport"}', "invalid_message", "unknown message type"),
        ('{"type": "consult.start", "department": "radiology"}', "invalid_message", "question"),
        ('{"type": "room.invite", "room_id": "r1"}', "invalid_message", "exactly one"),
        ('{"type": "rtc.answer", "room_id": "r1", "sdp": "v=0 dummy", "x": 1}', "invalid_message",
         "Extra inputs"),
        ('{"type": "rtc.answer", "room_id": "nope", "sdp": "v=0 dummy sdp"}', "not_found",
         "room.join first"),
        ('{"type": "consult.accept", "consult_id": "abc"}', "not_found", "no such consult"),
    ],
)
async def test_malformed_messages_get_errors_and_the_socket_lives_on(connect, raw, code, words):
    sock = await connect("exp.zhang")
    await sock.ws.send_str(raw)
    err = await sock.expect("error")
    assert err["code"] == code and words in err["message"], err
    await sock.send(type="ping", id="p1")
    assert (await sock.expect("pong"))["ref"] == "p1"


async def test_errors_carry_the_message_id(connect):
    sock = await connect("dr.li")
    await sock.send(type="consult.accept", consult_id="zzz", id="m-7")
    err = await sock.expect("error")
    assert err["ref"] == "m-7" and err["code"] == "forbidden"


async def test_consult_rings_for_the_department_and_exactly_one_accepts(connect):
    doctor = await connect("dr.li")
    zhang, li, chen = [await connect(u) for u in ("exp.zhang", "exp.li", "exp.chen")]
    await doctor.send(type="consult.start", department="radiology", urgency="urgent",
                      question="Nodule in right lower lobe?", patient_name="Wang Wu",
                      patient_id="P-9")
    created = (await doctor.expect("consult.created"))["consult"]
    assert created["state"] == "ringing" and created["clinic"] == "qingshui"
    for expert in (zhang, li):
        ring = await expert.expect("consult.ringing")
        assert ring["consult"]["id"] == created["id"]
        assert ring["consult"]["question"] == "Nodule in right lower lobe?"
    # Neurology is not rung. Waiting on an event, not a timeout: the hub hands one published
    # message to all its local connections at once, so had chen been rung it would be queued
    # before this pong (one FIFO outbox per connection).
    await chen.send(type="ping", id="after-ring")
    await chen.expect("pong", ref="after-ring")
    assert not [m for m in chen.backlog if m["type"] == "consult.ringing"]

    # Both click at once: exactly one wins, atomically in Redis.
    await asyncio.gather(zhang.send(type="consult.accept", consult_id=created["id"]),
                         li.send(type="consult.accept", consult_id=created["id"]))
    outcomes = await asyncio.gather(*(_accept_outcome(e) for e in (zhang, li)))
    winners = [o for o in outcomes if o["type"] == "consult.accepted"]
    losers = [o for o in outcomes if o["type"] == "error"]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0]["code"] == "conflict" and "already accepted" in losers[0]["message"]
    accepted = (await doctor.expect("consult.accepted"))["consult"]
    assert accepted["room_id"] == winners[0]["consult"]["room_id"]
    assert accepted["accepted_by"] in ("exp.zhang", "exp.li")
    loser = li if winners[0]["consult"]["accepted_by"] == "exp.zhang" else zhang
    taken = await loser.expect("consult.taken")
    assert taken["consult_id"] == created["id"]


async def _accept_outcome(sock: PageSocket) -> dict:
    async with asyncio.timeout(5):
        while True:
            for i, m in enumerate(sock.backlog):
                if m["type"] in ("consult.accepted", "error"):
                    return sock.backlog.pop(i)
            try:
                return await sock.expect("consult.accepted", timeout=0.2)
            except TimeoutError:
                continue


async def test_cancel_stops_the_ringing(connect):
    doctor = await connect("dr.li")
    expert = await connect("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Fracture?")
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.expect("consult.ringing")
    await doctor.send(type="consult.cancel", consult_id=consult["id"])
    await doctor.expect("consult.cancelled", consult_id=consult["id"])
    await expert.expect("consult.cancelled", consult_id=consult["id"])
    await expert.send(type="consult.accept", consult_id=consult["id"])
    assert (await expert.expect("error"))["code"] == "conflict"
    other = await connect("dr.wang")  # another clinic's doctor cannot cancel it
    await other.send(type="consult.cancel", consult_id=consult["id"])
    assert (await other.expect("error"))["code"] == "not_found"


async def test_an_expert_who_signs_in_later_still_sees_it_ring(connect):
    doctor = await connect("dr.li")
    early = await connect("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Stroke?")
    consult = (await doctor.expect("consult.created"))["consult"]
    late = await connect("exp.li")
    assert (await late.expect("consult.ringing"))["consult"]["id"] == consult["id"]
    await early.close()


async def test_roles_and_clinics_are_enforced(connect, client, auth):
    expert = await connect("exp.zhang")
    await expert.send(type="consult.start", department="radiology", question="q")
    assert (await expert.expect("error"))["code"] == "forbidden"
    doctor = await connect("dr.li")
    await doctor.send(type="consult.start", department="cardiology", question="q")
    assert (await doctor.expect("error"))["code"] == "not_found"
    # Attaching another clinic's study is refused as if it did not exist.
    from tests.dicom_factory import ct_bytes, multipart_related

    body, ctype = multipart_related([ct_bytes(study_uid="1.2.3.4.5")])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**(await auth("dr.wang")), "Content-Type": ctype})
    assert resp.status == 200
    await doctor.send(type="consult.start", department="radiology", question="q",
                      study_uid="1.2.3.4.5")
    assert (await doctor.expect("error"))["code"] == "not_found"
    await doctor.send(type="room.join", room_id="deadbeef")
    assert (await doctor.expect("error"))["code"] == "not_found"


async def test_a_flooding_client_is_refused_then_cut_off(connect):
    flood = await connect("exp.zhang")
    calm = await connect("exp.li")
    for _ in range(300):
        await flood.send(type="ping")
    refused = await flood.expect("error")
    assert refused["code"] == "too_many_messages"
    assert await flood.closed(timeout=10) == 4429
    await calm.send(type="ping", id="still-here")
    assert (await calm.expect("pong"))["ref"] == "still-here"


async def test_a_kiosk_that_reconnects_learns_where_its_consult_stands(connect):
    doctor = await connect("dr.li")
    await connect("exp.li")  # someone of the department is online
    await doctor.send(type="consult.start", department="radiology", question="Head injury")
    consult = (await doctor.expect("consult.created"))["consult"]
    assert consult["clinic_name"] == "Qingshui Township"
    await doctor.close()
    again = await connect("dr.li")  # reloaded while waiting
    assert (await again.expect("consult.created"))["consult"]["id"] == consult["id"]
    expert = await connect("exp.zhang")
    await expert.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    await again.close()
    third = await connect("dr.li")  # dropped right when it was answered
    told = await third.expect("consult.accepted")
    assert told["consult"]["room_id"] == room_id

"""Departments show how many experts are online (API and a live push to clinic doctors); with
nobody online a consult is refused with `no_expert_online` unless the doctor leaves a request."""

from __future__ import annotations

import pytest

from server.store.directory import Role
from tests.integration.ws_client import PageSocket


@pytest.fixture
async def connect(page_sockets, store, password_hash):
    await store.directory.add_department("Respiratory", "respiratory")
    await store.directory.add_user("exp.li", role=Role.EXPERT, password_hash=password_hash,
                                   department="radiology")
    return page_sockets


def _counts(msg: dict) -> dict[str, int]:
    return {d["id"]: d["experts_online"] for d in msg["departments"]}


async def _counts_become(sock: PageSocket, expected: dict[str, int]) -> None:
    while _counts(await sock.expect("departments")) != expected:
        pass


async def test_online_counts_by_api_and_live_push(connect, client, auth):
    resp = await client.get("/api/departments", headers=await auth("dr.li"))
    assert resp.status == 200
    body = await resp.json()
    assert {d["id"]: d["experts_online"] for d in body["departments"]} == {
        "radiology": 0, "respiratory": 0}
    assert {d["id"]: d["name"] for d in body["departments"]}["respiratory"] == "Respiratory"
    doctor = await connect("dr.li")
    assert _counts(await doctor.expect("departments")) == {"radiology": 0, "respiratory": 0}
    zhang = await connect("exp.zhang")
    await _counts_become(doctor, {"radiology": 1, "respiratory": 0})
    second_tab = await connect("exp.zhang")  # the same expert twice is still one expert
    li = await connect("exp.li")
    await _counts_become(doctor, {"radiology": 2, "respiratory": 0})
    resp = await client.get("/api/departments", headers=await auth("exp.zhang"))
    assert {d["id"]: d["experts_online"] for d in (await resp.json())["departments"]} == {
        "radiology": 2, "respiratory": 0}
    await li.close()
    await _counts_become(doctor, {"radiology": 1, "respiratory": 0})
    await zhang.close()
    await second_tab.close()
    await _counts_become(doctor, {"radiology": 0, "respiratory": 0})
    assert (await client.get("/api/departments")).status == 401


async def test_nobody_online_is_said_or_a_request_is_left(connect):
    doctor = await connect("dr.li")
    await doctor.send(type="consult.start", department="respiratory", question="Cough", id="c")
    err = await doctor.expect("error", ref="c")
    assert err["code"] == "no_expert_online"
    assert err["details"] == {"department": "respiratory", "experts_online": 0}
    await doctor.send(type="consult.start", department="radiology", question="Nodule?",
                      leave_request=True, patient_name="Wang Wu")
    left = (await doctor.expect("consult.created"))["consult"]
    assert left["state"] == "requested" and left["ring_deadline"] == 0
    # An expert who comes online sees the request (not as ringing) and can take it.
    expert = await connect("exp.zhang")
    seen = (await expert.expect("consult.requested"))["consult"]
    assert seen["id"] == left["id"] and seen["patient_name"] == "Wang Wu"
    assert not [m for m in expert.backlog if m["type"] == "consult.ringing"]
    await expert.send(type="consult.accept", consult_id=left["id"])
    accepted = (await expert.expect("consult.accepted"))["consult"]
    assert accepted["state"] == "accepted" and accepted["room_id"]
    assert (await doctor.expect("consult.accepted"))["consult"]["id"] == left["id"]

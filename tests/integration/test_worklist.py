"""Reading requests (work items) through the real HTTP API and the page WebSocket: send, grant,
atomic claim under concurrency, release, lease lapse, head reassign, cancel, complete, counts,
and who sees what (a clinic never another's requests; an expert only their department's)."""

from __future__ import annotations

import asyncio
import re

import pytest
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_dataset, multipart_related, to_bytes
from tests.integration.conftest import login


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def li_study(client, auth, more_people):
    ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, await auth("dr.li"), ds)
    return ds


async def _request(client, headers, study_uid, priority="routine", department="radiology",
                   question="Pulmonary nodule?"):
    resp = await client.post("/api/worklist", headers=headers, json={
        "study_uid": study_uid, "question": question, "priority": priority,
        "department": department})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["item"]


async def _events(store, action: str) -> list[dict[str, str]]:
    return [e.fields for e in await store.audit.recent(500) if e.fields["action"] == action]


async def test_request_grants_the_study_and_lists_by_priority_then_age(
        client, auth, li_study, store, page_sockets):
    doctor = await auth("dr.li")
    expert = await auth("exp.zhang")
    exp_page = await page_sockets("exp.zhang")
    clinic_page = await page_sockets("dr.li")
    study = li_study.StudyInstanceUID
    # Before the request the expert cannot see the study.
    assert (await client.get(f"/dicomweb/studies/{study}/metadata", headers=expert)).status == 404
    routine = await _request(client, doctor, study, "routine")
    live = await exp_page.expect("worklist.item", action="created")
    assert live["item"]["id"] == routine["id"] and live["item"]["patient_name"]
    assert (await clinic_page.expect("worklist.item", action="created"))["item"]["id"] == \
        routine["id"]
    urgent = await _request(client, doctor, study, "urgent")
    emergency = await _request(client, doctor, study, "emergency")
    routine2 = await _request(client, doctor, study, "routine")
    assert routine["state"] == "scheduled" and routine["clinic"] == "qingshui"
    # UPS's own spelling beside ours (PS3.4 CC: Procedure Step State, Scheduled Procedure Step
    # Priority HIGH / MEDIUM / LOW).
    assert routine["procedure_step_state"] == "SCHEDULED"
    assert [i["scheduled_procedure_step_priority"] for i in (emergency, urgent, routine)] == [
        "HIGH", "MEDIUM", "LOW"]
    # The department's experts now read the study (grant kind "reading").
    assert (await client.get(f"/dicomweb/studies/{study}/metadata", headers=expert)).status == 200
    grants = await store.grants.of_user("exp.li", study_uid=study)
    assert {g.kind for g in grants} == {"reading"}
    # A neurologist was not granted it.
    assert not await store.grants.of_user("exp.chen", study_uid=study)

    resp = await client.get("/api/worklist", headers=expert)
    body = await resp.json()
    assert [i["id"] for i in body["items"]] == [emergency["id"], urgent["id"], routine["id"],
                                                routine2["id"]]
    assert body["counts"]["scheduled"] == 4
    assert body["counts"]["by_priority"] == {"emergency": 1, "urgent": 1, "routine": 2}
    resp = await client.get("/api/worklist?priority=urgent", headers=expert)
    assert [i["id"] for i in (await resp.json())["items"]] == [urgent["id"]]
    assert await _events(store, "worklist.request")
    assert await _events(store, "worklist.list")


async def test_twenty_experts_claim_at_once_exactly_one_wins(client, li_study, store,
                                                            password_hash):
    from server.store.directory import Role

    names = [f"exp.r{i:02d}" for i in range(20)]
    for n in names:
        await store.directory.add_user(n, role=Role.EXPERT, password_hash=password_hash,
                                       department="radiology")
    headers = [await login(client, n) for n in names]
    doctor = await login(client, "dr.li")
    items = [await _request(client, doctor, li_study.StudyInstanceUID) for _ in range(5)]
    for item in items:
        answers = await asyncio.gather(*[
            client.post(f"/api/worklist/{item['id']}/claim", headers=h) for h in headers])
        statuses = [a.status for a in answers]
        assert statuses.count(200) == 1, statuses
        assert statuses.count(409) == 19, statuses
        loser = await next(a for a in answers if a.status == 409).json()
        assert loser["error"]["code"] == "claim_conflict"
        winner = await next(a for a in answers if a.status == 200).json()
        assert winner["item"]["claim_token"] and winner["item"]["state"] == "in_progress"
        assert winner["item"]["procedure_step_state"] == "IN PROGRESS"
        stored = await store.worklist.get(item["id"])
        assert stored.claims == 1 and stored.claimed_by == winner["item"]["claimed_by"]


async def test_release_renew_complete_need_the_claim_token(client, auth, li_study, store):
    doctor, zhang, li = await auth("dr.li"), await auth("exp.zhang"), await auth("exp.li")
    item = await _request(client, doctor, li_study.StudyInstanceUID)
    claimed = await (await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang)).json()
    token = claimed["item"]["claim_token"]
    # The token is a UPS Transaction UID: a UID under 2.25 (PS3.5 B.2), named so beside.
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", token) and len(token) <= 64
    assert claimed["item"]["transaction_uid"] == token
    # Others see who holds it, never the token.
    other = await (await client.get(f"/api/worklist/{item['id']}", headers=li)).json()
    assert other["item"]["claimed_by"] == "exp.zhang" and other["item"]["claim_token"] == ""
    assert other["item"]["transaction_uid"] == ""
    resp = await client.post(f"/api/worklist/{item['id']}/release", headers=li,
                             json={"claim_token": "2.25.123"})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_claim_holder"
    resp = await client.post(f"/api/worklist/{item['id']}/release", headers=li,
                             json={"claim_token": "2.25.0123"})  # not a UID: a leading zero
    assert resp.status == 400
    resp = await client.post(f"/api/worklist/{item['id']}/release", headers=li,
                             json={"claim_token": "ab" * 16})
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_claim_holder"
    resp = await client.post(f"/api/worklist/{item['id']}/renew", headers=zhang,
                             json={"claim_token": token})
    assert resp.status == 200
    resp = await client.post(f"/api/worklist/{item['id']}/release", headers=zhang,
                             json={"claim_token": token})
    assert resp.status == 200 and (await resp.json())["item"]["state"] == "scheduled"
    # The old token is dead after a release; a new claim gets a new one.
    again = await (await client.post(f"/api/worklist/{item['id']}/claim", headers=li)).json()
    assert again["item"]["claim_token"] != token
    resp = await client.post(f"/api/worklist/{item['id']}/complete", headers=li,
                             json={"claim_token": token})
    assert resp.status == 409
    resp = await client.post(f"/api/worklist/{item['id']}/complete", headers=li,
                             json={"claim_token": again["item"]["claim_token"],
                                   "report_id": "r-1"})
    done = (await resp.json())["item"]
    assert resp.status == 200 and done["state"] == "completed" and done["report_id"] == "r-1"
    assert done["procedure_step_state"] == "COMPLETED"
    assert done["turnaround_s"] is not None
    resp = await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang)
    assert resp.status == 409
    listing = await (await client.get("/api/worklist?state=completed", headers=li)).json()
    assert [i["id"] for i in listing["items"]] == [item["id"]]
    assert listing["turnaround"]["completed_24h"] == 1
    assert listing["counts"]["completed_24h"] == 1


async def test_holder_and_complete_for_the_reports_module(client, auth, li_study):
    from server import appkeys

    service = client.server.app[appkeys.WORKLIST]
    doctor, zhang = await auth("dr.li"), await auth("exp.zhang")
    item = await _request(client, doctor, li_study.StudyInstanceUID)
    assert await service.holder(item["id"]) is None
    await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang)
    assert await service.holder(item["id"]) == "exp.zhang"
    assert await service.touch(item["id"], "exp.zhang")
    assert not await service.touch(item["id"], "exp.li")
    from server.errors import NotClaimHolder

    with pytest.raises(NotClaimHolder):
        await service.complete(item["id"], "exp.li", "rep-1")
    done = await service.complete(item["id"], "exp.zhang", "rep-1")
    assert done.state.value == "completed" and await service.holder(item["id"]) is None


async def test_an_unattended_claim_returns_to_the_list(server_with, li_study, store,
                                                       page_sockets):
    client = await server_with(worklist_lease_s=1)
    doctor, zhang = await login(client, "dr.li"), await login(client, "exp.zhang")
    item = await _request(client, doctor, li_study.StudyInstanceUID)
    page = await _socket(client, zhang, "exp.zhang")
    try:
        claimed = await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang)
        token = (await claimed.json())["item"]["claim_token"]
        lapsed = await page.expect("worklist.item", action="lapsed", timeout=10)
        assert lapsed["item"]["state"] == "scheduled" and lapsed["item"]["claimed_by"] == ""
        resp = await client.post(f"/api/worklist/{item['id']}/release", headers=zhang,
                                 json={"claim_token": token})
        assert resp.status == 409
        assert await _events(store, "worklist.lapse")
        # Claimable again.
        assert (await client.post(f"/api/worklist/{item['id']}/claim",
                                  headers=zhang)).status == 200
    finally:
        await page.close()


async def _socket(client, headers, username):
    from tests.integration.ws_client import PageSocket

    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token=headers["Authorization"].split()[1])
    await sock.expect("ready", user=username)
    return sock


async def test_head_reassigns_and_others_may_not(client, auth, li_study, store):
    doctor, zhang, li = await auth("dr.li"), await auth("exp.zhang"), await auth("exp.li")
    admin = await auth("admin")
    resp = await client.post("/api/admin/departments/radiology/head", headers=admin,
                             json={"username": "exp.chen"})
    assert resp.status == 400  # a neurologist cannot head radiology
    resp = await client.post("/api/admin/departments/radiology/head", headers=admin,
                             json={"username": "exp.zhang"})
    assert resp.status == 200 and (await resp.json())["head"] == "exp.zhang"
    item = await _request(client, doctor, li_study.StudyInstanceUID, "urgent")
    resp = await client.post(f"/api/worklist/{item['id']}/reassign", headers=li,
                             json={"to": "exp.li"})
    assert resp.status == 403
    resp = await client.post(f"/api/worklist/{item['id']}/reassign", headers=zhang,
                             json={"to": "exp.chen"})
    assert resp.status == 400
    resp = await client.post(f"/api/worklist/{item['id']}/reassign", headers=zhang,
                             json={"to": "exp.li"})
    moved = (await resp.json())["item"]
    assert resp.status == 200 and moved["claimed_by"] == "exp.li"
    assert moved["claim_token"] == ""  # the head is not the holder
    mine = await (await client.get("/api/worklist?mine=1", headers=li)).json()
    assert [i["id"] for i in mine["items"]] == [item["id"]] and mine["items"][0]["claim_token"]
    assert await _events(store, "worklist.reassign")
    # The clinic withdraws it; the department list no longer has it.
    resp = await client.post(f"/api/worklist/{item['id']}/cancel", headers=doctor,
                             json={"reason": "patient transferred"})
    canceled = (await resp.json())["item"]
    assert resp.status == 200 and canceled["state"] == "canceled"
    assert canceled["procedure_step_state"] == "CANCELED"  # UPS: one L
    assert (await (await client.get("/api/worklist", headers=li)).json())["items"] == []


async def test_who_sees_which_requests(client, auth, li_study, store):
    doctor, wang = await auth("dr.li"), await auth("dr.wang")
    chen, zhang = await auth("exp.chen"), await auth("exp.zhang")
    admin, coord = await auth("admin"), await auth("coord.liu")
    item = await _request(client, doctor, li_study.StudyInstanceUID)
    # Another clinic: not listed, not found, cannot cancel.
    assert (await (await client.get("/api/worklist", headers=wang)).json())["items"] == []
    assert (await client.get(f"/api/worklist/{item['id']}", headers=wang)).status == 404
    assert (await client.post(f"/api/worklist/{item['id']}/cancel", headers=wang,
                              json={"reason": "x"})).status == 404
    # Another department's expert: not listed, cannot list radiology, cannot claim.
    assert (await (await client.get("/api/worklist", headers=chen)).json())["items"] == []
    assert (await client.get("/api/worklist?department=radiology", headers=chen)).status == 403
    assert (await client.post(f"/api/worklist/{item['id']}/claim", headers=chen)).status == 404
    # A doctor cannot claim; an admin sees nothing; a coordinator sees all.
    assert (await client.post(f"/api/worklist/{item['id']}/claim", headers=doctor)).status == 403
    assert (await client.get("/api/worklist", headers=admin)).status == 403
    listed = await (await client.get("/api/worklist", headers=coord)).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    # A doctor cannot send another clinic's study, nor a study that does not exist.
    resp = await client.post("/api/worklist", headers=wang, json={
        "study_uid": li_study.StudyInstanceUID, "question": "q", "department": "radiology"})
    assert resp.status == 404
    resp = await client.post("/api/worklist", headers=doctor, json={
        "study_uid": li_study.StudyInstanceUID, "question": "q", "department": "nope"})
    assert resp.status == 404
    resp = await client.post("/api/worklist", headers=zhang, json={
        "study_uid": li_study.StudyInstanceUID, "question": "q", "department": "radiology"})
    assert resp.status == 403
    # Bad input is 4xx JSON.
    for bad in ({"study_uid": "x", "question": "q", "department": "radiology"},
                {"study_uid": "1.2", "question": "", "department": "radiology"},
                {"study_uid": "1.2", "question": "q", "department": "radiology",
                 "priority": "stat"}):
        resp = await client.post("/api/worklist", headers=doctor, json=bad)
        assert resp.status == 400, bad
    assert (await client.get("/api/worklist/zzz", headers=doctor)).status == 400
    assert (await client.get("/api/worklist?state=bogus", headers=doctor)).status == 400

"""Referrals (双向转诊) through the real HTTP API: configured routes only, the state machine, who
sees and does what (a clinic never sees another clinic's referrals), grants given and ended,
the fsync'd journal and its reindex, and the audit each step leaves."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydicom.uid import generate_uid

from server.clinical.referrals import ReferralService
from server.store.directory import Role
from server.store.grants import REFERRAL
from server.store.referrals import Direction
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


@pytest.fixture
async def routes(store, more_people, password_hash):
    await store.directory.add_user("audit.zhou", role=Role.AUDITOR, password_hash=password_hash)
    for d in Direction:
        await store.referrals.allow(d, "qingshui", "radiology")
    await store.referrals.allow(Direction.DOWN, "hetang", "radiology")


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def li_study(client, auth, routes):
    ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, await auth("dr.li"), ds)
    return ds


async def _refer_up(client, headers, ds=None, **changes) -> dict:
    body = {"direction": "up", "department": "radiology", "reason": "suspected stroke",
            "diagnosis": "左侧肢体无力", "study_uids": [ds.StudyInstanceUID] if ds else [],
            **changes}
    if ds is None:
        body.setdefault("patient_name", "Zhang^San")
        body.setdefault("patient_id", "QS-1")
    resp = await client.post("/api/referrals", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _study_status(client, headers, ds) -> int:
    resp = await client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", headers=headers)
    return resp.status


async def _act(client, headers, rid, action, note="", status=200) -> dict:
    resp = await client.post(f"/api/referrals/{rid}/{action}", json={"note": note},
                             headers=headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_only_configured_routes(client, auth, routes) -> None:
    wang = await auth("dr.wang")  # hetang has no up-route to radiology
    resp = await client.post("/api/referrals", headers=wang, json={
        "direction": "up", "department": "radiology", "reason": "x", "patient_id": "HT-1"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "referral_route_closed"
    chen = await auth("exp.chen")  # neurology refers down nowhere
    resp = await client.post("/api/referrals", headers=chen, json={
        "direction": "down", "clinic": "qingshui", "reason": "x", "care_plan": "rest",
        "patient_id": "QS-1"})
    assert resp.status == 403
    # an expert does not refer up, a doctor does not refer down
    resp = await client.post("/api/referrals", headers=await auth("exp.zhang"), json={
        "direction": "up", "department": "radiology", "reason": "x", "patient_id": "QS-1"})
    assert resp.status == 403
    resp = await client.get("/api/referrals/routes", headers=await auth("dr.li"))
    assert [(r["direction"], r["department"]) for r in (await resp.json())["routes"]] == \
        [("up", "radiology")]
    resp = await client.get("/api/referrals/routes", headers=await auth("exp.zhang"))
    assert sorted(r["clinic"] for r in (await resp.json())["routes"]) == ["hetang", "qingshui"]


async def test_up_referral_lifecycle_and_grants(client, auth, li_study, store, settings) -> None:
    li, zhang, exp_li = await auth("dr.li"), await auth("exp.zhang"), await auth("exp.li")
    chen = await auth("exp.chen")
    assert await _study_status(client, zhang, li_study) == 404
    r = await _refer_up(client, li, li_study)
    assert r["state"] == "requested" and r["side"] == "sender" and r["actions"] == ["cancel"]
    assert r["patient_id"] == li_study.PatientID  # taken from the attached study
    assert r["clinic_name"] == "Qingshui Township" and r["department_name"] == "Radiology"
    # the whole receiving department reads the images at once; another department does not
    assert await _study_status(client, zhang, li_study) == 200
    assert await _study_status(client, exp_li, li_study) == 200
    assert await _study_status(client, chen, li_study) == 404
    grants = await store.grants.of_user("exp.zhang", study_uid=li_study.StudyInstanceUID)
    assert [(g.kind, g.ref) for g in grants] == [(REFERRAL, r["id"])]

    seen = await client.get(f"/api/referrals/{r['id']}", headers=zhang)
    assert (await seen.json())["actions"] == ["accept", "decline"]
    await _act(client, li, r["id"], "accept", status=403)  # not the sender's step
    a = await _act(client, zhang, r["id"], "accept", "appointment tomorrow 9:00")
    assert a["state"] == "accepted" and a["actions"] == ["arrive"]
    again = await _act(client, exp_li, r["id"], "accept", status=409)
    assert again["error"]["code"] == "invalid_transition"
    await _act(client, zhang, r["id"], "complete", status=409)  # not arrived yet
    await _act(client, exp_li, r["id"], "arrive")
    done = await _act(client, zhang, r["id"], "complete", "discharged")
    assert done["state"] == "completed" and done["actions"] == []
    assert [s["state"] for s in done["history"]] == ["requested", "accepted", "arrived",
                                                    "completed"]
    assert done["history"][1]["note"] == "appointment tomorrow 9:00"
    assert done["version"] == 4
    await _act(client, li, r["id"], "cancel", status=409)  # over
    # completed: the grant runs out the grant TTL after completion
    grants = await store.grants.of_user("exp.zhang", study_uid=li_study.StudyInstanceUID)
    assert abs(grants[0].expires_at - (time.time() + settings.grant_ttl_s)) < 30

    # every version is in the fsync'd journal; the index comes back from it
    lines = (settings.referrals_dir / f"{r['id']}.jsonl").read_text().splitlines()
    assert [json.loads(x)["state"] for x in lines] == ["requested", "accepted", "arrived",
                                                      "completed"]
    await store.redis.delete(f"hz:referral:{r['id']}")
    assert await ReferralService(store, journal_dir=settings.referrals_dir).reindex() == 1
    back = await client.get(f"/api/referrals/{r['id']}", headers=li)
    assert (await back.json())["state"] == "completed"


async def test_reindex_after_redis_lost_them_brings_back_referrals_and_their_grants(
        client, auth, li_study, store, settings) -> None:
    """Redis loses the referrals and the grants (a wiped Redis): reindex restores an open
    referral with the receiving side's grant for what was left of its TTL, and none for a
    cancelled one."""
    li, zhang = await auth("dr.li"), await auth("exp.zhang")
    open_one = await _refer_up(client, li, li_study)
    accepted = await _act(client, zhang, open_one["id"], "accept", "bed ready")
    other_ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, li, other_ds)
    cancelled = await _refer_up(client, li, other_ds)
    await _act(client, li, cancelled["id"], "cancel", "family declined")
    before = await store.grants.of_user("exp.zhang", study_uid=li_study.StudyInstanceUID)
    assert [g.kind for g in before] == [REFERRAL]

    for pattern in ("hz:referral:*", "hz:clinic:*:referrals", "hz:department:*:referrals"):
        for key in [k async for k in store.redis.scan_iter(match=pattern)]:
            await store.redis.delete(key)
    for user in ("exp.zhang", "exp.li"):
        await store.redis.delete(f"hz:user:{user}:grants")
    assert await _study_status(client, zhang, li_study) == 404
    await asyncio.sleep(2.1)  # the server's per-user grant cache (2 s) forgets the old answer

    service = ReferralService(store, journal_dir=settings.referrals_dir)
    assert await service.reindex() == 2
    assert await service.reindex() == 0  # Redis holds them now: nothing rewritten
    back = await client.get(f"/api/referrals/{open_one['id']}", headers=li)
    assert (await back.json())["state"] == "accepted"
    assert await _study_status(client, zhang, li_study) == 200
    after = await store.grants.of_user("exp.zhang", study_uid=li_study.StudyInstanceUID)
    assert [g.kind for g in after] == [REFERRAL]
    assert abs(after[0].expires_at - (accepted["updated_at"] + settings.grant_ttl_s)) < 5
    assert await _study_status(client, zhang, other_ds) == 404


async def test_other_clinics_and_roles_see_nothing(client, auth, li_study) -> None:
    li = await auth("dr.li")
    r = await _refer_up(client, li, li_study)
    for user in ("dr.wang", "exp.chen"):
        h = await auth(user)
        assert (await client.get(f"/api/referrals/{r['id']}", headers=h)).status == 404
        page = await (await client.get("/api/referrals", headers=h)).json()
        assert page["referrals"] == [] and page["total"] == 0
        assert (await client.post(f"/api/referrals/{r['id']}/accept", json={},
                                  headers=h)).status == 404
    for user in ("coord.liu", "admin", "audit.zhou"):
        h = await auth(user)
        assert (await client.get(f"/api/referrals/{r['id']}", headers=h)).status == 404
        assert (await client.get("/api/referrals", headers=h)).status == 403
    page = await (await client.get("/api/referrals", headers=li)).json()
    assert [x["id"] for x in page["referrals"]] == [r["id"]]
    zhang = await (await client.get("/api/referrals?state=open", headers=await auth(
        "exp.zhang"))).json()
    assert [x["id"] for x in zhang["referrals"]] == [r["id"]]
    closed = await (await client.get("/api/referrals?state=closed", headers=li)).json()
    assert closed["total"] == 0
    assert (await client.get("/api/referrals?state=bogus", headers=li)).status == 400
    assert (await client.get("/api/referrals/zz", headers=li)).status == 400


async def test_decline_and_cancel_end_the_grants(client, auth, li_study, store) -> None:
    li, zhang = await auth("dr.li"), await auth("exp.zhang")
    r = await _refer_up(client, li, li_study)
    no_reason = await _act(client, zhang, r["id"], "decline", "", status=400)
    assert no_reason["error"]["code"] == "invalid_parameter"
    d = await _act(client, zhang, r["id"], "decline", "not our department: send to neurology")
    assert d["state"] == "declined"
    assert d["decline_reason"] == "not our department: send to neurology"
    store.grants._cache.clear()
    assert await _study_status(client, zhang, li_study) == 404

    r2 = await _refer_up(client, li, li_study)
    assert await _study_status(client, zhang, li_study) == 200
    await _act(client, zhang, r2["id"], "accept")
    await _act(client, zhang, r2["id"], "cancel", status=403)  # the referring side cancels
    c = await _act(client, li, r2["id"], "cancel", "patient went to the city")
    assert c["state"] == "cancelled"
    store.grants._cache.clear()
    assert await _study_status(client, zhang, li_study) == 404


async def test_down_referral_carries_the_care_plan_and_grants_the_clinic(
        client, auth, li_study) -> None:
    li, zhang, wang = await auth("dr.li"), await auth("exp.zhang"), await auth("dr.wang")
    up = await _refer_up(client, li, li_study)
    for step in ("accept", "arrive"):
        await _act(client, zhang, up["id"], step)
    body = {"direction": "down", "clinic": "qingshui", "reason": "rehabilitation",
            "parent": up["id"], "study_uids": [li_study.StudyInstanceUID]}
    resp = await client.post("/api/referrals", json=body, headers=zhang)
    assert resp.status == 400  # no care plan
    body["care_plan"] = "康复训练 3 个月；阿司匹林 100 mg qd"
    down = await (await client.post("/api/referrals", json=body, headers=zhang)).json()
    assert down["direction"] == "down" and down["side"] == "sender"
    assert down["patient_id"] == up["patient_id"] and down["parent"] == up["id"]
    seen = await (await client.get(f"/api/referrals/{down['id']}", headers=li)).json()
    assert seen["side"] == "receiver" and seen["care_plan"].startswith("康复训练")
    assert seen["actions"] == ["accept", "decline"]
    # back to hetang: the qingshui study is granted to hetang's doctors
    body.update(clinic="hetang", parent="")
    to_hetang = await (await client.post("/api/referrals", json=body, headers=zhang)).json()
    assert await _study_status(client, wang, li_study) == 200
    await _act(client, wang, to_hetang["id"], "accept")
    # a study the expert cannot read cannot be attached
    body["study_uids"] = [generate_uid()]
    assert (await client.post("/api/referrals", json=body, headers=zhang)).status == 404


async def test_a_study_of_another_clinic_cannot_be_attached(client, auth, li_study) -> None:
    wang_ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, await auth("dr.wang"), wang_ds)
    resp = await client.post("/api/referrals", headers=await auth("dr.li"), json={
        "direction": "up", "department": "radiology", "reason": "x",
        "study_uids": [wang_ds.StudyInstanceUID]})
    assert resp.status == 404


async def test_two_experts_accepting_at_once_one_wins(client, auth, li_study) -> None:
    li = await auth("dr.li")
    heads = [await auth("exp.zhang"), await auth("exp.li")]
    for _ in range(3):
        r = await _refer_up(client, li, li_study)
        answers = await asyncio.gather(*(client.post(f"/api/referrals/{r['id']}/accept",
                                                     json={}, headers=h) for h in heads))
        assert sorted(a.status for a in answers) == [200, 409]


async def test_every_step_is_audited_with_the_patient(client, auth, li_study, store) -> None:
    li, zhang = await auth("dr.li"), await auth("exp.zhang")
    r = await _refer_up(client, li, li_study)
    await client.get(f"/api/referrals/{r['id']}", headers=zhang)
    await _act(client, zhang, r["id"], "accept")
    events = [e.fields for e in await store.audit.recent(50)
              if e.fields["action"].startswith("referral.")]
    actions = [e["action"] for e in reversed(events)]
    assert actions == ["referral.create", "referral.view", "referral.accept"]
    for e in events:
        assert e["patient_id"] == li_study.PatientID and e["referral"] == r["id"]
        assert e["referral_clinic"] == "qingshui" and e["department"] == "radiology"


async def test_bad_bodies_are_400(client, auth, routes) -> None:
    li = await auth("dr.li")
    for body in ({"direction": "sideways", "reason": "x"},
                 {"direction": "up", "reason": "x"},
                 {"direction": "up", "department": "radiology", "reason": ""},
                 {"direction": "up", "department": "radiology", "reason": "x"},  # no patient
                 {"direction": "up", "department": "radiology", "reason": "x",
                  "patient_id": "1", "study_uids": ["not-a-uid"]},
                 {"direction": "up", "department": "radiology", "reason": "x",
                  "patient_id": "1", "extra": 1}):
        resp = await client.post("/api/referrals", json=body, headers=li)
        assert resp.status == 400, (body, await resp.text())
    resp = await client.post("/api/referrals", json={
        "direction": "up", "department": "nowhere", "reason": "x", "patient_id": "1"},
        headers=li)
    assert resp.status == 404


async def test_admin_configures_routes(client, auth, store) -> None:
    admin = await auth("admin")
    body = {"direction": "up", "clinic": "hetang", "department": "radiology"}
    resp = await client.post("/api/admin/referral-routes", json=body, headers=admin)
    assert resp.status == 200
    assert body in (await resp.json())["routes"]
    assert await store.referrals.allowed(Direction.UP, "hetang", "radiology")
    resp = await client.post("/api/admin/referral-routes/remove", json=body, headers=admin)
    assert body not in (await resp.json())["routes"]
    assert (await client.get("/api/admin/referral-routes",
                             headers=await auth("dr.li"))).status == 403
    bad = await client.post("/api/admin/referral-routes", headers=admin,
                            json={**body, "clinic": "nowhere"})
    assert bad.status == 400
    changes = [e.fields for e in await store.audit.recent(20)
               if e.fields["action"].startswith("admin.referral_route.")]
    assert [e["action"] for e in changes] == ["admin.referral_route.deny",
                                              "admin.referral_route.allow"]
    assert changes[0]["target_clinic"] == "hetang" and changes[0]["user"] == "admin"


async def test_both_sides_see_each_step_live_and_nobody_else(
        client, auth, li_study, page_sockets) -> None:
    li_page = await page_sockets("dr.li")
    zhang_page, exp_li_page = await page_sockets("exp.zhang"), await page_sockets("exp.li")
    outsiders = [await page_sockets("dr.wang"), await page_sockets("exp.chen")]
    li, zhang = await auth("dr.li"), await auth("exp.zhang")
    r = await _refer_up(client, li, li_study)
    for page in (zhang_page, exp_li_page):
        msg = await page.expect("notification")
        n = msg["notification"]
        assert n["kind"] == "referral.changed" and msg["unread"] >= 1
        assert n["data"]["referral_id"] == r["id"] and n["data"]["state"] == "requested"
        assert n["data"]["patient_name"] == r["patient_name"]
    await _act(client, zhang, r["id"], "accept")
    for page in (li_page, exp_li_page):
        msg = await page.expect("notification")
        assert msg["notification"]["data"]["state"] == "accepted"
        assert msg["notification"]["data"]["by"] == "exp.zhang"
    # the one who acted is not notified of their own step; outsiders hear nothing at all
    for page in (zhang_page, *outsiders):
        await page.send(type="ping")
        await page.expect("pong")
        assert not [m for m in page.backlog if m.get("type") == "notification"]
    # a page that was away asks for what it missed
    fresh = await page_sockets("dr.li")
    await fresh.send(type="notifications.since", after="0")
    items = (await fresh.expect("notifications"))["items"]
    assert [i["data"]["state"] for i in items if i["kind"] == "referral.changed"] == ["accepted"]


async def _signed_report(client, auth, study_uid: str) -> str:
    """The county radiology reads a Qingshui study and signs the report (the worklist flow)."""
    doctor, zhang = await auth("dr.li"), await auth("exp.zhang")
    item = (await (await client.post("/api/worklist", headers=doctor, json={
        "study_uid": study_uid, "question": "Haemorrhage?", "priority": "urgent",
        "department": "radiology"})).json())["item"]
    assert (await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang)).status == 200
    body = {"kind": "reading", "reading_request_id": item["id"]}
    report = await (await client.post("/api/reports", json=body, headers=zhang)).json()
    saved = await (await client.put(f"/api/reports/{report['id']}/draft", headers=zhang, json={
        "revision": 0, "content": {"findings": "右侧基底节区高密度影。", "impression": "脑出血。",
                                   "recommendation": "神经内科会诊。", "critical": False}})).json()
    signed = await client.post(f"/api/reports/{report['id']}/sign", headers=zhang,
                               json={"revision": saved["revision"]})
    assert signed.status == 200, await signed.text()
    return report["id"]


async def test_an_attached_report_is_readable_by_the_receiving_side(
        client, auth, li_study, store) -> None:
    await store.referrals.allow(Direction.UP, "qingshui", "neurology")
    rid = await _signed_report(client, auth, li_study.StudyInstanceUID)
    li, chen, wang = await auth("dr.li"), await auth("exp.chen"), await auth("dr.wang")
    assert (await client.get(f"/api/reports/{rid}", headers=chen)).status == 404
    # another clinic cannot pass on a report it may not read; a made-up id is no report
    await store.referrals.allow(Direction.UP, "hetang", "neurology")
    for who, report in ((wang, rid), (li, "0" * 16)):
        resp = await client.post("/api/referrals", headers=who, json={
            "direction": "up", "department": "neurology", "reason": "x", "patient_id": "P",
            "report_ids": [report]})
        assert resp.status == 404, await resp.text()
    r = await _refer_up(client, li, None, department="neurology", report_ids=[rid],
                        patient_name="", patient_id="")
    assert r["reports"] == [rid]
    assert r["studies"] == [{"clinic": "qingshui", "study_uid": li_study.StudyInstanceUID}]
    assert r["patient_id"] == li_study.PatientID
    assert (await client.get(f"/api/reports/{rid}", headers=chen)).status == 200
    assert await _study_status(client, chen, li_study) == 200

"""MDT sessions through the real HTTP API: proposals, scheduling rules, permissions (only
invitees see and join; a clinic never sees another clinic's patient), grants that start with the
invitation and end with the session, conflicts, conclusions, and the calendars parsed back by
`icalendar`."""

from __future__ import annotations

import asyncio
import time

import icalendar
import pytest
from pydicom.uid import generate_uid

from server import appkeys
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


async def _json(resp, status: int = 200):
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _wait_for(predicate, what: str, timeout: float = 6.0):
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(0.05)
    assert result, what
    return result


@pytest.fixture
async def world(client, auth, more_people):
    """dr.li's (Qingshui) and dr.wang's (Hetang) studies, each proposed for an MDT."""
    h = {u: await auth(u) for u in ("dr.li", "dr.wang", "exp.zhang", "exp.li", "exp.chen",
                                    "coord.liu", "admin")}
    li = ct_dataset(study_uid=generate_uid(), patient_id="QS-77", patient_name="Sun^Lan")
    wang = ct_dataset(study_uid=generate_uid(), patient_id="HT-12", patient_name="Zhou^Ming")
    await _upload(client, h["dr.li"], li)
    await _upload(client, h["dr.wang"], wang)
    p_li = (await _json(await client.post("/api/mdt/proposals", headers=h["dr.li"], json={
        "study_uids": [li.StudyInstanceUID], "reason": "Nodule 12 mm, growing",
        "departments": ["radiology"]}), 201))["proposal"]
    p_wang = (await _json(await client.post("/api/mdt/proposals", headers=h["dr.wang"], json={
        "study_uids": [wang.StudyInstanceUID], "reason": "Mass, staging",
        "departments": ["neurology"]}), 201))["proposal"]
    return {"h": h, "li": li, "wang": wang, "p_li": p_li, "p_wang": p_wang}


def _schedule(w, **over):
    body = {"title": "Thoracic MDT", "starts_at": int(time.time()) + 7200, "duration_min": 60,
            "departments": ["radiology"], "experts": ["exp.zhang", "exp.chen"],
            "clinics": ["qingshui"], "lead_expert": "exp.zhang",
            "cases": [{"proposal_id": w["p_li"]["id"]}, {"proposal_id": w["p_wang"]["id"]}]}
    body.update(over)
    return body


async def _create(client, w, **over):
    return await _json(await client.post("/api/mdt", headers=w["h"]["coord.liu"],
                                         json=_schedule(w, **over)), 201)


async def _meta_status(client, headers, ds) -> int:
    resp = await client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata",
                            headers=headers)
    return resp.status


async def test_proposals_carry_the_patient_and_the_coordinator_finds_them(client, world):
    h = world["h"]
    assert world["p_li"]["patient_id"] == "QS-77"
    assert world["p_li"]["patient_name"] == "Sun^Lan"
    assert world["p_li"]["clinic"] == "qingshui"
    found = await _json(await client.get("/api/mdt/proposals?q=sun", headers=h["coord.liu"]))
    assert [p["id"] for p in found["proposals"]] == [world["p_li"]["id"]]
    found = await _json(await client.get("/api/mdt/proposals?department=neurology",
                                          headers=h["coord.liu"]))
    assert [p["id"] for p in found["proposals"]] == [world["p_wang"]["id"]]
    # a doctor sees their clinic's proposals only
    mine = await _json(await client.get("/api/mdt/proposals", headers=h["dr.li"]))
    assert [p["id"] for p in mine["proposals"]] == [world["p_li"]["id"]]
    # a doctor cannot propose another clinic's study (it does not exist for them)
    resp = await client.post("/api/mdt/proposals", headers=h["dr.li"], json={
        "study_uids": [world["wang"].StudyInstanceUID], "reason": "x"})
    assert resp.status == 404
    # an expert without a grant cannot either; admins have no patient data
    resp = await client.post("/api/mdt/proposals", headers=h["exp.li"], json={
        "study_uids": [world["wang"].StudyInstanceUID], "reason": "x"})
    assert resp.status == 404
    assert (await client.get("/api/mdt/proposals", headers=h["admin"])).status == 403
    assert (await client.post("/api/mdt/proposals", headers=h["coord.liu"], json={
        "study_uids": [world["li"].StudyInstanceUID], "reason": "x"})).status == 403


async def test_schedule_invites_grants_and_hides_other_clinics_patients(client, world, store):
    h = world["h"]
    created = await _create(client, world)
    mdt = created["mdt"]
    assert mdt["state"] == "scheduled" and mdt["sequence"] == 0
    assert mdt["room_id"] == f"mdt-{mdt['id']}"
    # the cases' clinics are invited with the listed one; the experts' departments added
    assert sorted(mdt["clinics"]) == ["hetang", "qingshui"]
    assert sorted(mdt["departments"]) == ["neurology", "radiology"]
    assert [c["patient_id"] for c in mdt["cases"]] == ["QS-77", "HT-12"]
    # proposals are now on the agenda
    waiting = await _json(await client.get("/api/mdt/proposals", headers=h["coord.liu"]))
    assert waiting["proposals"] == []

    url = f"/api/mdt/{mdt['id']}"
    for expert in ("exp.zhang", "exp.chen"):
        seen = await _json(await client.get(url, headers=h[expert]))
        assert [c["patient_id"] for c in seen["mdt"]["cases"]] == ["QS-77", "HT-12"]
        assert not seen["may"]["join"]  # not open yet
        # the invitation grants both cases' studies
        assert await _meta_status(client, h[expert], world["li"]) == 200
        assert await _meta_status(client, h[expert], world["wang"]) == 200
    # Qingshui's doctor sees their case, and Hetang's only as a placeholder
    li_view = (await _json(await client.get(url, headers=h["dr.li"])))["mdt"]
    assert li_view["cases"][0]["patient_id"] == "QS-77"
    assert li_view["cases"][1] == {**li_view["cases"][1], "hidden": True, "patient_id": "",
                                   "patient_name": "", "study_uids": [], "clinic": ""}
    assert "Zhou" not in str(li_view) and "HT-12" not in str(li_view)
    assert await _meta_status(client, h["dr.li"], world["wang"]) == 404
    wang_view = (await _json(await client.get(url, headers=h["dr.wang"])))["mdt"]
    assert wang_view["cases"][0]["hidden"] and "QS-77" not in str(wang_view)
    # not invited: the session does not exist for them, and they read nothing
    assert (await client.get(url, headers=h["exp.li"])).status == 404
    assert await _meta_status(client, h["exp.li"], world["li"]) == 404
    assert (await client.get(url, headers=h["admin"])).status == 403
    # lists: an invited expert's and a clinic's include it, an uninvited expert's does not
    for who, count in (("exp.zhang", 1), ("dr.wang", 1), ("exp.li", 0), ("coord.liu", 1)):
        page = await _json(await client.get("/api/mdt", headers=h[who]))
        assert len(page["mdts"]) == count, who
    page = await _json(await client.get("/api/mdt", headers=h["dr.wang"]))
    assert "QS-77" not in str(page) and "Sun" not in str(page)
    # every view is audited
    actions = [e.fields["action"] for e in await store.audit.recent(50)]
    assert "mdt.view" in actions and "mdt.list" in actions and "mdt.schedule" in actions


async def test_only_coordinators_schedule_and_change(client, world):
    h = world["h"]
    for who in ("exp.zhang", "dr.li", "admin"):
        resp = await client.post("/api/mdt", headers=h[who], json=_schedule(world))
        assert resp.status == 403, who
    mdt = (await _create(client, world))["mdt"]
    for who in ("exp.zhang", "dr.li"):
        resp = await client.patch(f"/api/mdt/{mdt['id']}", headers=h[who], json={"title": "x"})
        assert resp.status == 403, who
        resp = await client.post(f"/api/mdt/{mdt['id']}/cancel", headers=h[who], json={})
        assert resp.status == 403, who


@pytest.mark.parametrize("over, field", [
    ({"starts_at": 1_000_000}, "past"),
    ({"title": "Case of Sun Lan"}, "patient"),
    ({"notes": "bring QS-77 films"}, "patient"),
    ({"experts": ["dr.li"]}, "expert"),
    ({"experts": ["nobody"]}, "expert"),
    ({"clinics": ["nowhere"]}, "clinic"),
    ({"lead_expert": "exp.li"}, "lead"),
    ({"duration_min": 5}, "duration"),
    ({"cases": [{}]}, "agenda"),
])
async def test_scheduling_rules_refuse_bad_sessions(client, world, over, field):
    resp = await client.post("/api/mdt", headers=world["h"]["coord.liu"],
                             json=_schedule(world, **over))
    body = await resp.json()
    assert resp.status == 400, (field, body)
    assert body["error"]["code"] == "invalid_parameter"


async def test_a_proposal_goes_on_one_agenda(client, world):
    await _create(client, world)
    resp = await client.post("/api/mdt", headers=world["h"]["coord.liu"], json=_schedule(world))
    assert resp.status == 400


async def test_conflicts_are_flagged_for_double_booked_invitees(client, world):
    h = world["h"]
    first = (await _create(client, world))["mdt"]
    second = await _create(client, world, title="Neuro MDT", cases=[], experts=["exp.chen"],
                           lead_expert="", starts_at=first["starts_at"] + 1800,
                           clinics=["hetang"])
    whos = {(c["who"], c["kind"], c["mdt_id"]) for c in second["conflicts"]}
    assert ("exp.chen", "expert", first["id"]) in whos
    assert ("hetang", "clinic", first["id"]) in whos
    assert ("coord.liu", "coordinator", first["id"]) in whos
    assert not any(c[0] == "exp.zhang" for c in whos)
    # the form's ask while editing; a later slot has none
    found = await _json(await client.post("/api/mdt/conflicts", headers=h["coord.liu"], json={
        "starts_at": first["starts_at"] + 5400, "duration_min": 30,
        "experts": ["exp.zhang"], "clinics": []}))
    assert found["conflicts"] == []
    assert (await client.post("/api/mdt/conflicts", headers=h["exp.zhang"], json={
        "starts_at": first["starts_at"]})).status == 403


async def test_edit_reschedule_uninvite_revokes_and_bumps_sequence(client, world):
    h = world["h"]
    mdt = (await _create(client, world))["mdt"]
    url = f"/api/mdt/{mdt['id']}"
    keep = mdt["cases"][0]["case_id"]
    changed = await _json(await client.patch(url, headers=h["coord.liu"], json={
        "starts_at": mdt["starts_at"] + 3600, "experts": ["exp.zhang"],
        "cases": [{"case_id": keep}]}))
    m = changed["mdt"]
    assert m["sequence"] == 1 and m["starts_at"] == mdt["starts_at"] + 3600
    assert [c["case_id"] for c in m["cases"]] == [keep]
    assert m["experts"] == ["exp.zhang"]
    # exp.chen is no longer invited: no session, no grant
    assert (await client.get(url, headers=h["exp.chen"])).status == 404

    async def chen_refused():
        return await _meta_status(client, h["exp.chen"], world["li"]) == 404
    await _wait_for(chen_refused, "uninvited expert's grant revoked")
    # Hetang's case left the agenda: exp.zhang keeps Qingshui's study only
    async def wang_refused():
        return await _meta_status(client, h["exp.zhang"], world["wang"]) == 404
    await _wait_for(wang_refused, "removed case's grant revoked")
    assert await _meta_status(client, h["exp.zhang"], world["li"]) == 200
    # the removed case's proposal waits again
    waiting = await _json(await client.get("/api/mdt/proposals", headers=h["coord.liu"]))
    assert [p["id"] for p in waiting["proposals"]] == [world["p_wang"]["id"]]
    # and can go back on
    again = await _json(await client.patch(url, headers=h["coord.liu"], json={
        "cases": [{"case_id": keep}, {"proposal_id": world["p_wang"]["id"]}]}))
    assert again["mdt"]["sequence"] == 2 and len(again["mdt"]["cases"]) == 2


def _events(ics: bytes) -> list:
    return list(icalendar.Calendar.from_ical(ics).walk("VEVENT"))


async def test_ics_uid_stable_sequence_increments_cancelled_kept(client, world):
    h = world["h"]
    mdt = (await _create(client, world))["mdt"]
    url = f"/api/mdt/{mdt['id']}.ics"
    resp = await client.get(url, headers=h["exp.zhang"])
    assert resp.status == 200 and resp.content_type == "text/calendar"
    first = _events(await resp.read())
    assert len(first) == 1
    uid = str(first[0]["UID"])
    assert uid == f"mdt-{mdt['id']}@huizhen"
    assert int(first[0]["SEQUENCE"]) == 0 and str(first[0]["STATUS"]) == "CONFIRMED"
    assert first[0].decoded("DTSTART").timestamp() == mdt["starts_at"]
    await _json(await client.patch(f"/api/mdt/{mdt['id']}", headers=h["coord.liu"],
                                   json={"starts_at": mdt["starts_at"] + 600}))
    second = _events(await (await client.get(url, headers=h["exp.zhang"])).read())
    assert str(second[0]["UID"]) == uid and int(second[0]["SEQUENCE"]) == 1
    assert second[0].decoded("DTSTART").timestamp() == mdt["starts_at"] + 600
    # the calendar carries no patient identifiers
    for ev in second:
        text = f"{ev['SUMMARY']}\n{ev['DESCRIPTION']}"
        for ident in ("Sun", "Lan", "QS-77", "Zhou", "HT-12"):
            assert ident not in text
    await _json(await client.post(f"/api/mdt/{mdt['id']}/cancel", headers=h["coord.liu"],
                                  json={"reason": "expert away"}))
    third = _events(await (await client.get(url, headers=h["exp.zhang"])).read())
    assert str(third[0]["UID"]) == uid and int(third[0]["SEQUENCE"]) == 2
    assert str(third[0]["STATUS"]) == "CANCELLED"
    assert (await client.get(url, headers=h["exp.li"])).status == 404


async def test_feed_at_an_unguessable_url_lists_the_users_sessions(client, world):
    h = world["h"]
    mdt = (await _create(client, world))["mdt"]
    other = (await _create(client, world, cases=[], experts=["exp.li"], lead_expert="",
                           clinics=["hetang"], title="Other MDT"))["mdt"]
    feed = await _json(await client.get("/api/mdt/calendar", headers=h["exp.zhang"]))
    assert feed["path"].startswith("/calendar/") and feed["path"].endswith(".ics")
    assert feed == await _json(await client.get("/api/mdt/calendar", headers=h["exp.zhang"]))
    resp = await client.get(feed["path"])  # no bearer token: calendar apps have none
    assert resp.status == 200, await resp.text()
    events = _events(await resp.read())
    assert [str(e["UID"]) for e in events] == [f"mdt-{mdt['id']}@huizhen"]
    # a clinic doctor's feed lists their clinic's sessions
    wang = await _json(await client.get("/api/mdt/calendar", headers=h["dr.wang"]))
    uids = {str(e["UID"]) for e in _events(await (await client.get(wang["path"])).read())}
    assert uids == {f"mdt-{mdt['id']}@huizhen", f"mdt-{other['id']}@huizhen"}
    # cancelled sessions stay, as CANCELLED
    await _json(await client.post(f"/api/mdt/{mdt['id']}/cancel", headers=h["coord.liu"],
                                  json={}))
    events = _events(await (await client.get(feed["path"])).read())
    assert [str(e["STATUS"]) for e in events] == ["CANCELLED"]
    # rotating ends the old URL; garbage tokens are 404
    rotated = await _json(await client.post("/api/mdt/calendar/rotate", headers=h["exp.zhang"]))
    assert rotated["path"] != feed["path"]
    assert (await client.get(feed["path"])).status == 404
    assert (await client.get(rotated["path"])).status == 200
    assert (await client.get("/calendar/" + "A" * 43 + ".ics")).status == 404
    assert (await client.get("/calendar/short.ics")).status == 404
    assert (await client.get("/api/mdt/calendar", headers=h["admin"])).status == 403


async def test_cancel_ends_the_grants(client, world):
    h = world["h"]
    mdt = (await _create(client, world))["mdt"]
    assert await _meta_status(client, h["exp.zhang"], world["li"]) == 200
    cancelled = await _json(await client.post(f"/api/mdt/{mdt['id']}/cancel",
                                              headers=h["coord.liu"], json={"reason": "ill"}))
    assert cancelled["mdt"]["state"] == "cancelled"

    async def refused():
        return await _meta_status(client, h["exp.zhang"], world["li"]) == 404
    await _wait_for(refused, "grant revoked with the cancel")
    # a cancelled session can no longer change
    resp = await client.patch(f"/api/mdt/{mdt['id']}", headers=h["coord.liu"],
                              json={"title": "again"})
    assert resp.status == 409
    # the proposals wait again
    waiting = await _json(await client.get("/api/mdt/proposals", headers=h["coord.liu"]))
    assert len(waiting["proposals"]) == 2


async def test_opens_fifteen_minutes_before_with_its_room(client, world, store):
    h = world["h"]
    soon = await _create(client, world, starts_at=int(time.time()) + 600)
    mdt = soon["mdt"]
    assert mdt["state"] == "open"
    room = await store.rooms.get(mdt["room_id"])
    assert room is not None and room.kind == "mdt" and room.open
    assert (await _json(await client.get(f"/api/mdt/{mdt['id']}", headers=h["exp.zhang"]))
            )["may"]["join"]
    assert (await _json(await client.get(f"/api/mdt/{mdt['id']}", headers=h["dr.wang"]))
            )["may"]["join"]
    # the sweeper opens a session whose time has come
    later = (await _create(client, world, cases=[], starts_at=int(time.time()) + 3600))["mdt"]
    service = client.app[appkeys.MDT]
    assert await service.sweep(now=time.time() + 3600 - 600) >= 1
    assert (await store.mdt.get(later["id"])).state == "open"


async def test_conclusions_by_coordinator_or_lead_expert_then_conclude(client, world, store):
    h = world["h"]
    mdt = (await _create(client, world, starts_at=int(time.time()) + 60))["mdt"]
    url = f"/api/mdt/{mdt['id']}"
    case = mdt["cases"][0]["case_id"]
    body = {"diagnosis": "Adenocarcinoma, T1b", "plan": "Lobectomy",
            "responsible_department": "radiology", "follow_up_date": "2027-01-15"}
    for who in ("exp.chen", "dr.li"):
        resp = await client.put(f"{url}/cases/{case}/conclusion", headers=h[who], json=body)
        assert resp.status == 403, who
    assert (await client.put(f"{url}/cases/{case}/conclusion", headers=h["exp.li"],
                             json=body)).status == 404
    recorded = await _json(await client.put(f"{url}/cases/{case}/conclusion",
                                            headers=h["exp.zhang"], json=body))
    c = recorded["mdt"]["cases"][0]["conclusion"]
    assert c["diagnosis"] == "Adenocarcinoma, T1b" and c["by"] == "exp.zhang"
    bad = await client.put(f"{url}/cases/{case}/conclusion", headers=h["coord.liu"],
                           json={**body, "follow_up_date": "2027-13-45"})
    assert bad.status == 400
    events = await store.rooms.events_since(mdt["room_id"])
    assert any(e.get("type") == "conclusion.recorded" for e in events), events
    concluded = await _json(await client.post(f"{url}/conclude", headers=h["coord.liu"]))
    assert concluded["mdt"]["state"] == "concluded"
    assert concluded["mdt"]["sequence"] == 1
    room = await store.rooms.get(mdt["room_id"])
    assert room is not None and not room.open
    # concluded: no more conclusions, no join
    assert (await client.put(f"{url}/cases/{case}/conclusion", headers=h["coord.liu"],
                             json=body)).status == 409
    assert not (await _json(await client.get(url, headers=h["exp.zhang"])))["may"]["join"]
    # Hetang's doctor never sees Qingshui's conclusion
    wang = await _json(await client.get(url, headers=h["dr.wang"]))
    assert "Adenocarcinoma" not in str(wang)


async def test_grants_end_a_grant_period_after_the_session(server_with, auth, more_people,
                                                          store):
    client = await server_with(grant_ttl_s=1)
    h = {u: {"Authorization": "Bearer " + (await (await client.post("/api/auth/login", json={
        "username": u, "password": "correct-horse-battery"})).json())["token"]}
        for u in ("dr.li", "exp.zhang", "coord.liu")}
    ds = ct_dataset(study_uid=generate_uid(), patient_id="QS-1", patient_name="Ma^Yun")
    await _upload(client, h["dr.li"], ds)
    p = (await _json(await client.post("/api/mdt/proposals", headers=h["dr.li"], json={
        "study_uids": [ds.StudyInstanceUID], "reason": "r"}), 201))["proposal"]
    mdt = (await _json(await client.post("/api/mdt", headers=h["coord.liu"], json={
        "title": "Short", "starts_at": int(time.time()) + 60, "duration_min": 15,
        "experts": ["exp.zhang"], "cases": [{"proposal_id": p["id"]}]}), 201))["mdt"]
    assert await _meta_status(client, h["exp.zhang"], ds) == 200
    await _json(await client.post(f"/api/mdt/{mdt['id']}/conclude", headers=h["coord.liu"]))
    # concluded: the grant lasts the grant period (1 s here) from now, then ends

    async def ended():
        return await _meta_status(client, h["exp.zhang"], ds) == 404
    await _wait_for(ended, "grant ended after the grant period")
    grants = await store.grants.of_user("exp.zhang", study_uid=ds.StudyInstanceUID)
    assert grants == []


async def test_invitees_join_the_room_conclusions_go_into_its_log_attendees_recorded(
        client, world, store, page_sockets):
    h = world["h"]
    zhang = await page_sockets("exp.zhang")
    wang = await page_sockets("dr.wang")
    created = await _create(client, world, starts_at=int(time.time()) + 300)
    mdt = created["mdt"]
    # the invitation arrives live on each invitee's page
    for sock in (zhang, wang):
        note = await sock.expect("notification", timeout=10)
        assert note["notification"]["kind"] == "mdt.invited"
        assert note["notification"]["data"]["mdt_id"] == mdt["id"]
        assert "Sun" not in str(note) and "QS-77" not in str(note)
    assert mdt["state"] == "open"
    room_id = mdt["room_id"]
    await zhang.send(type="room.join", room_id=room_id)
    state = await zhang.expect("room.state", timeout=10)
    assert state["kind"] == "mdt"
    assert [c["patient_id"] for c in state["mdt"]["cases"]] == ["QS-77", "HT-12"]
    await wang.send(type="room.join", room_id=room_id)
    state = await wang.expect("room.state", timeout=10)
    assert state["mdt"]["cases"][0]["hidden"] and "QS-77" not in str(state["mdt"])
    # only invitees join
    for user in ("exp.li", "dr.li"):
        sock = await page_sockets(user)
        if user == "dr.li":  # Qingshui is invited (its case is on the agenda)
            await sock.send(type="room.join", room_id=room_id)
            await sock.expect("room.state", timeout=10)
            await sock.send(type="room.leave", room_id=room_id)
            continue
        await sock.send(type="room.join", room_id=room_id, id="j")
        assert (await sock.expect("error", ref="j"))["code"] == "not_found"
    # someone is in the room: the sweeper marks it live
    service = client.app[appkeys.MDT]
    await service.sweep()
    assert (await store.mdt.get(mdt["id"])).state == "live"
    case = mdt["cases"][1]["case_id"]
    await _json(await client.put(f"/api/mdt/{mdt['id']}/cases/{case}/conclusion",
                                 headers=h["coord.liu"], json={
                                     "diagnosis": "Benign", "plan": "Follow up in 6 months",
                                     "responsible_department": "neurology"}))
    got = await zhang.expect("room.event", timeout=10)
    assert got["event"]["type"] == "conclusion.recorded" and got["event"]["case_id"] == case
    concluded = await _json(await client.post(f"/api/mdt/{mdt['id']}/conclude",
                                              headers=h["coord.liu"]))
    attendees = {a["username"] for a in concluded["mdt"]["attendees"]}
    assert attendees == {"exp.zhang", "dr.wang", "dr.li"}
    assert (await zhang.expect("room.closed", timeout=10))["reason"] == "concluded"
    # Hetang's doctor sees attendees of no other clinic
    seen = await _json(await client.get(f"/api/mdt/{mdt['id']}", headers=h["dr.wang"]))
    assert {a["username"] for a in seen["mdt"]["attendees"]} == {"exp.zhang", "dr.wang"}
    while (note := await wang.expect("notification", timeout=10))["notification"][
            "kind"] != "mdt.summary":
        pass
    assert note["notification"]["data"]["mdt_id"] == mdt["id"]


async def test_summary_document_and_pdf_per_viewer(client, world):
    h = world["h"]
    mdt = (await _create(client, world, starts_at=int(time.time()) + 60))["mdt"]
    url = f"/api/mdt/{mdt['id']}"
    assert (await client.get(f"{url}/summary", headers=h["coord.liu"])).status == 409
    for n, (case, dx) in enumerate(zip(mdt["cases"], ("Adenocarcinoma 腺癌", "Benign"),
                                       strict=True)):
        await _json(await client.put(f"{url}/cases/{case['case_id']}/conclusion",
                                     headers=h["coord.liu"], json={
                                         "diagnosis": dx, "plan": f"Plan {n}",
                                         "responsible_department": "radiology",
                                         "follow_up_date": "2027-03-01"}))
    await _json(await client.post(f"{url}/conclude", headers=h["coord.liu"]))
    full = await _json(await client.get(f"{url}/summary", headers=h["exp.zhang"]))
    text = str(full)
    assert full["subtitle"] == "Thoracic MDT"
    assert "Adenocarcinoma 腺癌" in text and "Benign" in text and "QS-77" in text
    # Hetang's doctor: their case only, nothing of Qingshui's patient
    theirs = await _json(await client.get(f"{url}/summary?lang=zh", headers=h["dr.wang"]))
    text = str(theirs)
    assert theirs["title"] == "多学科会诊（MDT）纪要"
    assert "Benign" in text and "HT-12" in text
    assert "Adenocarcinoma" not in text and "QS-77" not in text and "Sun" not in text
    assert (await client.get(f"{url}/summary", headers=h["exp.li"])).status == 404
    for who, lang in (("dr.wang", "zh"), ("coord.liu", "en")):
        resp = await client.get(f"{url}/summary.pdf?lang={lang}", headers=h[who])
        assert resp.status == 200 and resp.content_type == "application/pdf"
        assert (await resp.read()).startswith(b"%PDF")
    assert (await client.get(f"{url}/summary?lang=fr", headers=h["dr.wang"])).status == 400


async def test_a_stand_in_coordinator_reads_the_cases_once_in_the_room(
        client, world, store, page_sockets, password_hash):
    from server.store.directory import Role

    await store.directory.add_user("coord.wu", role=Role.COORDINATOR, password_hash=password_hash)
    wu_headers = await client.post("/api/auth/login", json={
        "username": "coord.wu", "password": "correct-horse-battery"})
    wu = {"Authorization": f"Bearer {(await wu_headers.json())['token']}"}
    mdt = (await _create(client, world, starts_at=int(time.time()) + 300))["mdt"]
    assert await _meta_status(client, wu, world["li"]) == 404  # not the session's coordinator
    sock = await page_sockets("coord.wu", wu)
    await sock.send(type="room.join", room_id=mdt["room_id"])
    await sock.expect("room.state", timeout=10)

    async def granted():
        return await _meta_status(client, wu, world["li"]) == 200
    await _wait_for(granted, "stand-in coordinator granted on joining")
    await _json(await client.post(f"/api/mdt/{mdt['id']}/cancel", headers=world["h"]["coord.liu"],
                                  json={}))

    async def revoked():
        return await _meta_status(client, wu, world["li"]) == 404
    await _wait_for(revoked, "stand-in's grant ends with the cancel")


async def test_summary_carries_the_rooms_key_images_of_the_viewers_cases(client, world, store):
    from server.store.annotations import KeyImage

    h = world["h"]
    mdt = (await _create(client, world, starts_at=int(time.time()) + 60))["mdt"]
    for ds, clinic, case in ((world["li"], "qingshui", mdt["cases"][0]),
                             (world["wang"], "hetang", mdt["cases"][1])):
        await store.key_images.add(KeyImage(
            id=f"k-{clinic}", clinic=clinic, study_uid=ds.StudyInstanceUID,
            series_uid=ds.SeriesInstanceUID, sop_instance_uid=ds.SOPInstanceUID, frame=1,
            by="exp.zhang", by_name="Zhang", at=time.time(), room_id=mdt["room_id"],
            case_id=case["case_id"], window={"center": 40, "width": 400}), per_study=50)
    await _json(await client.post(f"/api/mdt/{mdt['id']}/conclude", headers=h["coord.liu"]))
    full = await _json(await client.get(f"/api/mdt/{mdt['id']}/summary", headers=h["coord.liu"]))
    assert len(full["images"]) == 2
    assert all(i["src"].startswith("data:image/png;base64,") for i in full["images"])
    theirs = await _json(await client.get(f"/api/mdt/{mdt['id']}/summary",
                                          headers=h["dr.wang"]))
    assert [i["caption"] for i in theirs["images"]] == ["Case 2 · frame 1"]
    pdf = await client.get(f"/api/mdt/{mdt['id']}/summary.pdf", headers=h["dr.wang"])
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")

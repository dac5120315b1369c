"""Study grants through the real HTTP and WebSocket API: every authorization decision on studies
(own clinic, other clinic, no grant, consult grant, invited participant, expiry, revocation,
break-glass, admin) and the audit records each one leaves."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


@pytest.fixture
def connect(page_sockets, more_people):
    return page_sockets


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def li_study(client, auth):
    ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, await auth("dr.li"), ds)
    return ds


def _urls(ds) -> list[str]:
    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = f"{series}/instances/{ds.SOPInstanceUID}"
    return [study, f"{study}/series", f"{study}/metadata", f"{series}/instances",
            f"{instance}/metadata", f"{instance}/frames/1/rendered", f"{instance}/thumbnail"]


async def _listed(client, headers) -> list[str]:
    resp = await client.get("/dicomweb/studies", headers=headers)
    assert resp.status == 200
    return [s["0020000D"]["Value"][0] for s in await resp.json()]


async def _status(client, headers, ds) -> set[int]:
    return {(await client.get(u, headers=headers)).status for u in _urls(ds)}


async def _events(store, action: str, since: str) -> list[dict[str, str]]:
    return [e.fields for e in await store.audit.since(since) if e.fields["action"] == action]


async def _last_id(store) -> str:
    recent = await store.audit.recent(1)
    return recent[0].id if recent else "0"


async def _wait_for(predicate, what: str, timeout: float = 5.0):
    """Poll a condition that becomes true by itself (a cache running out)."""
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(0.05)
    assert result, what
    return result


async def _consult(connect, doctor: str, expert: str, study_uid: str) -> tuple[dict, dict]:
    """A consult carrying a study, accepted by `expert`: (consult, accepted message)."""
    doc = await connect(doctor)
    exp = await connect(expert)
    await doc.send(type="consult.start", department="radiology", question="Nodule?",
                   study_uid=study_uid)
    created = (await doc.expect("consult.created"))["consult"]
    await exp.expect("consult.ringing")
    await exp.send(type="consult.accept", consult_id=created["id"])
    accepted = await exp.expect("consult.accepted")
    return created, accepted["consult"]


# -- the doctor --------------------------------------------------------------------------------

async def test_doctor_of_another_clinic_gets_404_and_the_refusal_is_audited(
        client, auth, li_study, store):
    since = await _last_id(store)
    wang = await auth("dr.wang")
    assert await _status(client, wang, li_study) == {404}
    assert await _listed(client, wang) == []
    refused = await _events(store, "access.refused", since)
    assert len(refused) == len(_urls(li_study))
    for f in refused:
        assert f["user"] == "dr.wang" and f["role"] == "doctor" and f["clinic"] == "hetang"
        assert f["remote"] and f["study"] == li_study.StudyInstanceUID and f["path"]
    assert {f["path"] for f in refused} == set(_urls(li_study))


# -- experts and coordinators --------------------------------------------------------------------

async def test_expert_and_coordinator_without_grant_get_404_and_no_listing(
        client, auth, li_study, store):
    since = await _last_id(store)
    for user in ("exp.zhang", "coord.liu"):
        h = await auth(user)
        assert await _status(client, h, li_study) == {404}, user
        assert await _listed(client, h) == []
    refused = await _events(store, "access.refused", since)
    assert {f["user"] for f in refused} == {"exp.zhang", "coord.liu"}
    assert {f["why"] for f in refused} == {"no_grant"}


async def test_consult_grants_the_accepting_expert_only(client, auth, li_study, connect, store):
    zhang, li_expert = await auth("exp.zhang"), await auth("exp.li")
    assert await _status(client, zhang, li_study) == {404}  # cached negative must not linger
    _, accepted = await _consult(connect, "dr.li", "exp.zhang", li_study.StudyInstanceUID)
    assert accepted["accepted_by"] == "exp.zhang"
    assert await _status(client, zhang, li_study) == {200}
    assert await _listed(client, zhang) == [li_study.StudyInstanceUID]
    # The other radiology expert, who did not accept, and the coordinator: still nothing.
    assert await _status(client, li_expert, li_study) == {404}
    assert await _listed(client, await auth("coord.liu")) == []
    views = await _events(store, "wado.metadata", "0")
    mine = [f for f in views if f["user"] == "exp.zhang"]
    assert mine and all(f["via"] == "consult" and f["grant"] == accepted["id"]
                        and f["study_clinic"] == "qingshui" for f in mine)


async def test_invited_participants_are_granted(client, auth, li_study, connect):
    _, accepted = await _consult(connect, "dr.li", "exp.zhang", li_study.StudyInstanceUID)
    room_id = accepted["room_id"]
    zhang = await connect("exp.zhang")
    await zhang.send(type="room.join", room_id=room_id)
    await zhang.expect("room.state", room_id=room_id)
    # By username: granted when invited, before joining.
    chen = await auth("exp.chen")
    assert await _status(client, chen, li_study) == {404}
    chen_sock = await connect("exp.chen")
    await zhang.send(type="room.invite", room_id=room_id, username="exp.chen")
    await chen_sock.expect("room.invited", room_id=room_id)
    await _wait_for(lambda: _status_is(client, chen, li_study, {200}), "invitee granted")
    # A department invitation grants whoever of it joins.
    other = await auth("exp.li")
    assert await _status(client, other, li_study) == {404}
    await zhang.send(type="room.invite", room_id=room_id, department="radiology")
    li_sock = await connect("exp.li")
    await li_sock.send(type="room.join", room_id=room_id)
    await li_sock.expect("room.state", room_id=room_id)
    assert await _status(client, other, li_study) == {200}


async def _status_is(client, headers, ds, expected: set[int]) -> bool:
    return await _status(client, headers, ds) == expected


async def test_a_grant_expires_and_a_revoked_one_stops(client, auth, li_study, store):
    uid = li_study.StudyInstanceUID
    h = await auth("exp.zhang")
    grant = await store.grants.grant("exp.zhang", "qingshui", uid, kind="consult", ref="c-exp",
                                     ttl_s=1.0)
    assert await _status(client, h, li_study) == {200}  # now in the server's grant cache
    await asyncio.sleep(max(0.0, grant.expires_at - time.time()) + 0.05)
    assert await _status(client, h, li_study) == {404}  # expiry is checked on every use
    assert await _listed(client, h) == []
    await store.grants.grant("exp.zhang", "qingshui", uid, kind="mdt", ref="m1", ttl_s=600)
    assert await _status(client, h, li_study) == {200}  # any kind grants, no change in access.py
    assert await store.grants.revoke("exp.zhang", "qingshui", uid, kind="mdt") == 1
    # The server's cache trusts a positive answer for at most Grants.CACHE_TTL_S (2 s).
    await _wait_for(lambda: _status_is(client, h, li_study, {404}), "revocation", timeout=4)


async def test_admin_gets_no_patient_data_even_with_a_grant(client, auth, li_study, store):
    await store.grants.grant("admin", "qingshui", li_study.StudyInstanceUID, kind="consult",
                             ref="c1", ttl_s=600)
    h = await auth("admin")
    assert (await client.get("/dicomweb/studies", headers=h)).status == 403
    assert await _status(client, h, li_study) == {403}
    resp = await client.post(f"/api/studies/{li_study.StudyInstanceUID}/break-glass",
                             json={"reason": "curious admin"}, headers=h)
    assert resp.status == 403


# -- break-glass ---------------------------------------------------------------------------------

async def test_break_glass_needs_an_expert_and_a_reason(client, auth, li_study):
    url = f"/api/studies/{li_study.StudyInstanceUID}/break-glass"
    zhang = await auth("exp.zhang")
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x"}, {"reason": 5},
                 {"reason": "y" * 501}):
        resp = await client.post(url, json=body, headers=zhang)
        assert resp.status == 400, body
        assert (await resp.json())["error"]["code"] == "invalid_parameter"
    assert await _status(client, zhang, li_study) == {404}
    for user in ("coord.liu", "dr.wang", "dr.li"):
        resp = await client.post(url, json={"reason": "stroke, patient on the table"},
                                 headers=await auth(user))
        assert resp.status == 403, user
    resp = await client.post(f"/api/studies/{generate_uid()}/break-glass",
                             json={"reason": "no such study here"}, headers=zhang)
    assert resp.status == 404


async def test_break_glass_grants_briefly_and_every_view_is_marked(
        client, auth, li_study, store, more_people):
    since = await _last_id(store)
    zhang = await auth("exp.zhang")
    reason = "卒中急诊 stroke: CT needed now, consulting clinic unreachable"
    resp = await client.post(f"/api/studies/{li_study.StudyInstanceUID}/break-glass",
                             json={"reason": reason}, headers=zhang)
    assert resp.status == 200, await resp.text()
    grant = await resp.json()
    assert grant["clinic"] == "qingshui" and grant["kind"] == "break-glass"
    assert 3500 < grant["expires_at"] - time.time() <= 3600  # HUIZHEN_BREAK_GLASS_TTL_S
    assert await _status(client, zhang, li_study) == {200}
    assert await _listed(client, zhang) == [li_study.StudyInstanceUID]

    async def all_views():  # frame views are written behind (~20 ms)
        events = [e.fields for e in await store.audit.since(since)]
        views = [f for f in events if f["action"].startswith(("wado.", "qido.series"))
                 or f["action"] == "qido.instances"]
        return events if len(views) >= len(_urls(li_study)) else None

    events = await _wait_for(all_views, "every view audited")
    granted = [f for f in events if f["action"] == "break_glass.grant"]
    assert len(granted) == 1 and granted[0]["reason"] == reason
    assert granted[0]["user"] == "exp.zhang" and granted[0]["remote"]
    views = [f for f in events if f["action"].startswith(("wado.", "qido."))]
    # Every view of the study (QIDO series/instances, WADO, rendered, thumbnail) is marked.
    study_views = [f for f in views if f["action"] != "qido.studies"]
    assert len(study_views) == len(_urls(li_study))
    assert all(f["break_glass"] == "1" and f["reason"] == reason and f["via"] == "break-glass"
               for f in study_views)
    # Another expert is not let in by someone else's broken glass.
    assert await _status(client, await auth("exp.li"), li_study) == {404}


async def test_break_glass_on_a_uid_two_clinics_hold_asks_which(client, auth, store):
    uid = generate_uid()
    await _upload(client, await auth("dr.li"), ct_dataset(study_uid=uid))
    await _upload(client, await auth("dr.wang"), ct_dataset(study_uid=uid))
    zhang = await auth("exp.zhang")
    url = f"/api/studies/{uid}/break-glass"
    resp = await client.post(url, json={"reason": "which one is it"}, headers=zhang)
    assert resp.status == 409
    assert (await resp.json())["error"]["details"]["clinics"] == ["hetang", "qingshui"]
    resp = await client.post(url, json={"reason": "the Hetang one", "clinic": "hetang"},
                             headers=zhang)
    assert resp.status == 200 and (await resp.json())["clinic"] == "hetang"


# -- the same StudyInstanceUID in two clinics ---------------------------------------------------

async def test_grantee_of_both_copies_gets_the_most_recent_grant(client, auth, store):
    uid = generate_uid()
    li_ds = ct_dataset(study_uid=uid, patient_id="LI-7")
    wang_ds = ct_dataset(study_uid=uid, patient_id="WANG-7")
    await _upload(client, await auth("dr.li"), li_ds)
    await _upload(client, await auth("dr.wang"), wang_ds)
    h = await auth("exp.zhang")
    await store.grants.grant("exp.zhang", "qingshui", uid, kind="consult", ref="a", ttl_s=600)
    found = await (await client.get(f"/dicomweb/studies/{uid}/series", headers=h)).json()
    assert found[0]["0020000E"]["Value"] == [li_ds.SeriesInstanceUID]
    await store.grants.grant("exp.zhang", "hetang", uid, kind="consult", ref="b", ttl_s=600)

    async def series_shown():
        found = await (await client.get(f"/dicomweb/studies/{uid}/series", headers=h)).json()
        return found[0]["0020000E"]["Value"] == [wang_ds.SeriesInstanceUID]

    # A grant made elsewhere (here: not through this server) is seen within the server's grant
    # cache time for a UID it already holds a grant of (Grants.CACHE_TTL_S).
    await _wait_for(series_shown, "the newer grant wins")
    listed = await (await client.get("/dicomweb/studies", headers=h)).json()
    assert sorted(s["00100020"]["Value"][0] for s in listed) == ["LI-7", "WANG-7"]


# -- every documented audit record, per route, with clinic and device ---------------------------

async def test_documented_audit_records_counted_per_route(client, store, connect, auth):
    from tests.integration.conftest import PASSWORD

    _, device_token = await store.directory.add_device("kiosk 1", "qingshui")
    resp = await client.post("/api/auth/login", json={
        "username": "dr.li", "password": PASSWORD, "device_token": device_token})
    kiosk = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    device = (await (await client.get("/api/me", headers=kiosk)).json())["device"]
    since = await _last_id(store)

    stow_ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, kiosk, stow_ds)
    form_ds = ct_dataset(study_uid=generate_uid())
    import aiohttp
    form = aiohttp.FormData()
    form.add_field("files", to_bytes(form_ds), filename="a.dcm", content_type="application/dicom")
    assert (await client.post("/api/uploads", data=form, headers=kiosk)).status == 200
    assert (await client.get("/dicomweb/studies", headers=kiosk)).status == 200
    assert (await client.get("/dicomweb/studies?PatientID=none", headers=kiosk)).status == 200
    _, accepted = await _consult(
        lambda u: connect(u, kiosk if u == "dr.li" else None), "dr.li", "exp.zhang",
        stow_ds.StudyInstanceUID)
    zhang = await connect("exp.zhang")
    await zhang.send(type="room.join", room_id=accepted["room_id"])
    await zhang.expect("room.state")

    async def joined():  # room.join is written once the SFU has taken the participant
        events = [e.fields for e in await store.audit.since(since)]
        return events if any(f["action"] == "room.join" for f in events) else None

    events = await _wait_for(joined, "room.join audited")
    count: dict[str, int] = {}
    for f in events:
        if not f["action"].startswith("auth."):  # sign-ins of the sockets: test_auth's
            count[f["action"]] = count.get(f["action"], 0) + 1
    assert count == {"stow.store": 1, "upload.store": 1, "qido.studies": 2,
                     "consult.start": 1, "consult.accept": 1, "room.join": 1}, count
    by_action = {f["action"]: f for f in events}
    for action in ("stow.store", "upload.store", "qido.studies", "consult.start"):
        f = by_action[action]
        assert f["clinic"] == "qingshui" and f["device"] == device, (action, f)
        assert f["user"] == "dr.li" and f["remote"]
    assert by_action["stow.store"]["studies"] == stow_ds.StudyInstanceUID
    assert by_action["upload.store"]["studies"] == form_ds.StudyInstanceUID
    assert by_action["consult.start"]["study"] == stow_ds.StudyInstanceUID
    for action in ("consult.accept", "room.join"):
        f = by_action[action]
        assert f["user"] == "exp.zhang" and f["clinic"] == "" and "device" not in f, (action, f)
    assert by_action["room.join"]["study"] == stow_ds.StudyInstanceUID

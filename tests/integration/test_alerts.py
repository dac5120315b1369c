"""Critical-value alerts through the real HTTP API and page WebSockets: delivery to every page of
the clinic (never another clinic's), acknowledgement with a read-back seen live by the raising
expert, the action taken, the register and its CSV, escalation timing with short configured
schedules (each step once, timestamped), and the escalation of an unanswered consult."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest
from pydicom.uid import generate_uid

from server import appkeys
from server.store.directory import Role
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes
from tests.integration.conftest import login as _login
from tests.integration.ws_client import PageSocket

_TOKENS: dict[tuple[int, str], dict[str, str]] = {}


async def login(client, username: str) -> dict[str, str]:
    """Signed-in headers, one sign-in per user and server (argon2 is slow on purpose)."""
    key = (id(client), username)
    if key not in _TOKENS:
        _TOKENS[key] = await _login(client, username)
    return _TOKENS[key]


FINDING = "Large left pneumothorax, 4 cm rim, mediastinal shift"


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


async def _socket(client, username: str) -> PageSocket:
    headers = await login(client, username)
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token=headers["Authorization"].split()[1])
    await sock.expect("ready", user=username)
    return sock


@pytest.fixture
async def world(store, more_people, password_hash):
    """Besides `people`/`more_people`: a second doctor of Qingshui (dr.zhao) and a head of
    radiology (exp.li)."""
    await store.directory.add_user("dr.zhao", role=Role.DOCTOR, password_hash=password_hash,
                                   clinic="qingshui")
    await store.directory.set_department_head("radiology", "exp.li")


async def _claimed_item(client) -> dict:
    doctor, expert = await login(client, "dr.li"), await login(client, "exp.zhang")
    ds = ct_dataset(study_uid=generate_uid())
    await _upload(client, doctor, ds)
    resp = await client.post("/api/worklist", headers=doctor, json={
        "study_uid": ds.StudyInstanceUID, "question": "Chest pain", "priority": "emergency",
        "department": "radiology"})
    item = (await resp.json())["item"]
    resp = await client.post(f"/api/worklist/{item['id']}/claim", headers=expert)
    assert resp.status == 200
    return item


async def _raise(client, item_id: str, tier: str = "critical", who: str = "exp.zhang"):
    return await client.post("/api/alerts", headers=await login(client, who), json={
        "item_id": item_id, "tier": tier, "finding": FINDING})


async def test_delivered_to_every_page_of_the_clinic_acknowledged_with_a_read_back(
        client, world, store):
    item = await _claimed_item(client)
    kiosk, desk, zhao = (await _socket(client, "dr.li"), await _socket(client, "dr.li"),
                         await _socket(client, "dr.zhao"))
    other_clinic = await _socket(client, "dr.wang")
    raiser, neuro = await _socket(client, "exp.zhang"), await _socket(client, "exp.chen")
    sockets = [kiosk, desk, zhao, other_clinic, raiser, neuro]
    try:
        # Only the expert reading the case may raise on it.
        assert (await _raise(client, item["id"], who="exp.li")).status == 403
        assert (await _raise(client, item["id"], who="exp.chen")).status == 403
        resp = await _raise(client, item["id"])
        assert resp.status == 201, await resp.text()
        alert = (await resp.json())["alert"]
        assert alert["state"] == "raised" and alert["clinic"] == "qingshui"
        for page in (kiosk, desk, zhao):
            got = await page.expect("alert.raised")
            assert got["alert"]["id"] == alert["id"] and got["alert"]["finding"] == FINDING
        assert (await raiser.expect("alert.raised"))["alert"]["id"] == alert["id"]
        # Nothing reaches another clinic or another department.
        for page in (other_clinic, neuro):
            with pytest.raises(TimeoutError):
                await page.expect("alert.raised", timeout=0.5)
        dr_li, dr_wang = await login(client, "dr.li"), await login(client, "dr.wang")
        url = f"/api/alerts/{alert['id']}"
        assert (await client.get(url, headers=dr_wang)).status == 404
        assert (await client.get(url, headers=await login(client, "exp.chen"))).status == 404
        assert (await client.get(url, headers=await login(client, "admin"))).status == 403
        # Acknowledge: another clinic cannot; an expert cannot; a wrong read-back is refused.
        ack = f"{url}/acknowledge"
        assert (await client.post(ack, headers=dr_wang, json={"read_back": FINDING})).status \
            == 404
        assert (await client.post(ack, headers=await login(client, "exp.zhang"),
                                  json={"read_back": FINDING})).status == 403
        resp = await client.post(ack, headers=dr_li, json={
            "read_back": "Large left pneumothorax, 3 cm rim, mediastinal shift"})
        assert resp.status == 409 and (await resp.json())["error"]["code"] == \
            "read_back_mismatch"
        # The action cannot be recorded before the acknowledgement.
        assert (await client.post(f"{url}/handled", headers=dr_li,
                                  json={"action": "x"})).status == 409
        resp = await client.post(ack, headers=dr_li, json={
            "read_back": "large left pneumothorax 4 cm rim mediastinal shift",
            "receiver_name": "Dr Li Ming"})
        assert resp.status == 200, await resp.text()
        acked = (await resp.json())["alert"]
        assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "dr.li"
        assert acked["acknowledged_name"] == "Dr Li Ming" and acked["ack_delay_s"] >= 0
        # The raising expert sees it live, with the read-back; the other pages stop ringing.
        live = await raiser.expect("alert.acknowledged")
        assert live["alert"]["read_back"].startswith("large left") and \
            live["step"]["receiver"] == "Dr Li Ming"
        for page in (desk, zhao):
            assert (await page.expect("alert.acknowledged"))["alert"]["id"] == alert["id"]
        # Twice: 409.
        resp = await client.post(ack, headers=await login(client, "dr.zhao"),
                                 json={"read_back": FINDING})
        assert resp.status == 409
        resp = await client.post(f"{url}/handled", headers=dr_li,
                                 json={"action": "Chest drain inserted, transferred to county"})
        assert resp.status == 200 and (await resp.json())["alert"]["state"] == "handled"
        await raiser.expect("alert.handled")
        full = (await (await client.get(url, headers=dr_li)).json())["alert"]
        assert [e["step"] for e in full["timeline"]] == ["raised", "acknowledged", "handled"]
        at = [e["at"] for e in full["timeline"]]
        assert at == sorted(at)
        assert set(full["timeline"][0]["to"]) == {"dr.li", "dr.zhao"}
        # The fsync'd journal has every step.
        journal = client.server.app[appkeys.ALERTS].journal_path.read_text().splitlines()
        steps = [json.loads(x)["entry"]["step"] for x in journal
                 if json.loads(x)["alert"] == alert["id"]]
        assert steps == ["raised", "acknowledged", "handled"]
        actions = {e.fields["action"] for e in await store.audit.recent(200)}
        assert {"alert.raise", "alert.read_back_mismatch", "alert.acknowledge",
                "alert.handled", "alert.view"} <= actions
    finally:
        for s in sockets:
            await s.close()


async def test_a_page_that_connects_later_rings_for_what_is_open(client, world):
    item = await _claimed_item(client)
    alert = (await (await _raise(client, item["id"], "significant")).json())["alert"]
    page = await _socket(client, "dr.zhao")
    try:
        opened = await page.expect("alerts.open")
        assert [a["id"] for a in opened["alerts"]] == [alert["id"]]
        assert opened["alerts"][0]["tier"] == "significant"
    finally:
        await page.close()
    other = await _socket(client, "dr.wang")
    try:
        assert (await other.expect("alerts.open"))["alerts"] == []
    finally:
        await other.close()


async def test_register_filters_and_csv(client, world):
    item = await _claimed_item(client)
    first = (await (await _raise(client, item["id"])).json())["alert"]
    second = (await (await _raise(client, item["id"], "significant")).json())["alert"]
    dr_li, dr_wang = await login(client, "dr.li"), await login(client, "dr.wang")
    coord, chen = await login(client, "coord.liu"), await login(client, "exp.chen")

    async def ids(headers, query=""):
        resp = await client.get(f"/api/alerts{query}", headers=headers)
        assert resp.status == 200, await resp.text()
        return [a["id"] for a in (await resp.json())["alerts"]]

    assert await ids(dr_li) == [second["id"], first["id"]]
    assert await ids(dr_li, "?tier=critical") == [first["id"]]
    assert await ids(dr_wang) == []
    assert (await client.get("/api/alerts?clinic=qingshui", headers=dr_wang)).status == 403
    assert await ids(chen) == []
    assert await ids(coord, "?clinic=qingshui&department=radiology") == [second["id"],
                                                                         first["id"]]
    assert await ids(coord, "?clinic=hetang") == []
    assert await ids(coord, "?state=acknowledged") == []
    assert await ids(coord, "?from=2000-01-01&to=2000-01-02") == []
    assert (await client.get("/api/alerts?from=2020-13-45", headers=coord)).status == 400
    assert (await client.get("/api/alerts?state=bogus", headers=coord)).status == 400
    assert (await client.get("/api/alerts", headers=await login(client, "admin"))).status == 403
    resp = await client.get("/api/alerts.csv?tier=critical", headers=coord)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0][:3] == ["alert_id", "tier", "state"] and len(rows) == 2
    assert rows[1][0] == first["id"] and rows[1][9] == FINDING and "raised" in rows[1][-1]
    # Bad bodies are 400s, unknown ids 404.
    for bad in ({"finding": "x"}, {"item_id": item["id"], "finding": ""},
                {"item_id": item["id"], "consult_id": "abc", "finding": "x"},
                {"item_id": item["id"], "finding": "x", "tier": "mild"}):
        resp = await client.post("/api/alerts", headers=await login(client, "exp.zhang"),
                                 json=bad)
        assert resp.status == 400, (bad, await resp.text())
    resp = await client.post("/api/alerts", headers=await login(client, "exp.zhang"),
                             json={"consult_id": "nope", "finding": "x"})
    assert resp.status == 404
    assert (await client.get("/api/alerts/0123456789abcdef", headers=coord)).status == 404


async def test_unacknowledged_alert_escalates_on_schedule_each_step_once(
        server_with, world, store):
    client = await server_with(alert_escalation_s=(1, 2, 3))
    await store.directory.set_clinic_contacts("qingshui", ["dr.zhao"])
    item = await _claimed_item(client)
    kiosk, head, coord = (await _socket(client, "dr.li"), await _socket(client, "exp.li"),
                          await _socket(client, "coord.liu"))
    try:
        alert = (await (await _raise(client, item["id"])).json())["alert"]
        await kiosk.expect("alert.raised")
        one = await kiosk.expect("alert.escalated", timeout=6)
        assert one["alert"]["level"] == 1 and one["step"]["step"] == "renotified"
        two = await head.expect("alert.escalated", timeout=6)
        while two["alert"]["level"] < 2:
            two = await head.expect("alert.escalated", timeout=6)
        assert set(two["step"]["to"]) == {"dr.zhao", "exp.li"}
        three = await coord.expect("alert.escalated", timeout=6)
        assert three["alert"]["level"] == 3 and three["step"]["to"] == ["coord.liu"]
        await asyncio.sleep(1.5)  # past the schedule: nothing more fires
        full = await store.alerts.timeline(alert["id"])
        assert [e["step"] for e in full] == ["raised", "renotified", "escalated",
                                             "escalated_coordinator"]
        raised_at = full[0]["at"]
        for entry, due in zip(full[1:], (1, 2, 3), strict=True):
            assert entry["at"] >= raised_at + due - 0.01
            assert entry["at"] < raised_at + due + 3  # within a sweep or so
        assert not await store.alerts.undelivered(1e12)
        # The coordinator who was told may read it.
        coord_h = await login(client, "coord.liu")
        assert (await client.get(f"/api/alerts/{alert['id']}", headers=coord_h)).status == 200
        # A second alert acknowledged at once never escalates.
        quick = (await (await _raise(client, item["id"])).json())["alert"]
        resp = await client.post(f"/api/alerts/{quick['id']}/acknowledge",
                                 headers=await login(client, "dr.li"),
                                 json={"read_back": FINDING})
        assert resp.status == 200
        await asyncio.sleep(1.5)
        assert [e["step"] for e in await store.alerts.timeline(quick["id"])] == [
            "raised", "acknowledged"]
    finally:
        for s in (kiosk, head, coord):
            await s.close()


async def test_two_sweepers_never_fire_a_step_twice(server_with, world, store):
    """Two nodes' sweepers at once (the `escalation` lock), sweeps run at once without it (the
    level check), and a sweep repeated after a crash: one step each."""
    client = await server_with(alert_escalation_s=(1, 2, 3))
    item = await _claimed_item(client)
    alert = (await (await _raise(client, item["id"])).json())["alert"]
    service = client.server.app[appkeys.ALERTS]
    await client.server.app[appkeys.SWEEPER].close()  # its loops stop; we drive the sweeps
    from server.clinical.alerts import AlertService
    from server.sweeper import Sweeper

    other = AlertService(service.settings, store)
    await other.start(service.hub)
    later = alert["created_at"] + 1.2
    nodes = [Sweeper(store.locks) for _ in range(2)]
    for node, s in zip(nodes, (service, other), strict=True):
        node.register("escalation", lambda s=s: s.sweep(now=later), 60, lock_ttl_s=5)
    runs = await asyncio.gather(*[n.run("escalation") for n in nodes * 5])
    assert sum(r or 0 for r in runs) == 1, runs
    # Another node holds the lock: this one skips its run.
    assert await store.locks.acquire("escalation", "other-node", 5)
    assert await nodes[0].run("escalation") is None
    await store.locks.release("escalation", "other-node")
    assert await nodes[0].run("escalation") == 0
    # Without the lock the step's compare-and-set still records step 2 once.
    again = alert["created_at"] + 2.2
    fired = await asyncio.gather(*[s.sweep(now=again) for s in (service, other) * 5])
    assert sum(fired) == 1
    # A crash after the step's commit: its level check refuses the repeat.
    stale = await store.alerts.get(alert["id"])
    from dataclasses import replace

    assert not await store.alerts.record_step(replace(stale, level=1), {"at": again}, None, [])
    steps = [e["step"] for e in await store.alerts.timeline(alert["id"])]
    assert steps == ["raised", "renotified", "escalated"]


async def test_an_unanswered_consult_re_rings_then_tells_the_department_and_its_head(
        server_with, world, store):
    client = await server_with(consult_escalation_s=(1, 2), ring_timeout_s=30.0)
    doctor, expert = await _socket(client, "dr.li"), await _socket(client, "exp.zhang")
    try:
        await doctor.send(type="consult.start", department="radiology", question="Stroke?")
        created = (await doctor.expect("consult.created"))["consult"]
        first = await expert.expect("consult.ringing")
        assert "escalation" not in first
        again = await expert.expect("consult.ringing", timeout=6, escalation=1)
        assert again["consult"]["id"] == created["id"]
        assert (await doctor.expect("consult.escalated", timeout=6))["level"] == 1
        await expert.expect("consult.ringing", timeout=6, escalation=2)
        assert (await doctor.expect("consult.escalated", timeout=6, level=2))["to"] == \
            "department_and_head"
        # The whole department's inboxes (exp.li is also the head), online or not.
        inbox = await store.notifications.since("exp.li", "0")
        assert [n.kind for n in inbox].count("consult.escalated") == 1
        offline = await store.notifications.since("exp.zhang", "0")
        assert [n.kind for n in offline].count("consult.escalated") == 1
        audit = [e.fields for e in await store.audit.recent(200)
                 if e.fields["action"] == "consult.escalated"]
        assert sorted(int(e["level"]) for e in audit) == [1, 2]
        assert all(float(e["ts"]) >= created["created_at"] + int(e["level"]) - 0.01
                   for e in audit)
        await asyncio.sleep(1.2)
        assert len([e for e in await store.audit.recent(200)
                    if e.fields["action"] == "consult.escalated"]) == 2
    finally:
        await doctor.close()
        await expert.close()


async def test_the_report_carries_the_communication(client, world):
    """Who was told, when, and the read-back are printed with the report (its document)."""
    item = await _claimed_item(client)
    alert = (await (await _raise(client, item["id"])).json())["alert"]
    resp = await client.post(f"/api/alerts/{alert['id']}/acknowledge",
                             headers=await login(client, "dr.zhao"),
                             json={"read_back": FINDING, "receiver_name": "Dr Zhao"})
    assert resp.status == 200
    expert = await login(client, "exp.zhang")
    resp = await client.post("/api/reports", headers=expert,
                             json={"kind": "reading", "reading_request_id": item["id"]})
    assert resp.status in (200, 201), await resp.text()
    report = await resp.json()
    resp = await client.put(f"/api/reports/{report['id']}/draft", headers=expert, json={
        "revision": report["draft"]["revision"], "content": {
            "findings": "Left pneumothorax.", "impression": "Pneumothorax.",
            "recommendation": "Chest drain.", "critical": True}})
    saved = await resp.json()
    assert resp.status == 200, saved
    resp = await client.post(f"/api/reports/{report['id']}/sign", headers=expert,
                             json={"revision": saved["revision"]})
    assert resp.status == 200, await resp.text()
    service = client.server.app[appkeys.ALERTS]
    told = await service.communication(report["id"])
    assert [c["alert_id"] for c in told] == [alert["id"]]
    assert told[0]["read_back"] == FINDING and told[0]["acknowledged_by"] == "Dr Zhao"
    resp = await client.get(f"/api/reports/{report['id']}/document",
                            headers=await login(client, "dr.li"))
    assert resp.status == 200, await resp.text()
    text = json.dumps(await resp.json(), ensure_ascii=False)
    assert "Dr Zhao" in text and FINDING in text
    # The request is completed by the signature.
    done = await client.get(f"/api/worklist/{item['id']}", headers=expert)
    assert (await done.json())["item"]["state"] == "completed"


async def test_reindex_from_a_journal_with_a_repeated_step_a_torn_line_and_old_lines(
        server_with, world, store):
    """The journal as a crash can leave it: a step appended twice counts once, a torn last
    line is skipped, and lines written before they carried the whole alert still restore
    tier, clinic, finding, timeline and the next due time."""
    client = await server_with(alert_escalation_s=(1, 600, 900))
    item = await _claimed_item(client)
    alert = (await (await _raise(client, item["id"])).json())["alert"]
    service = client.server.app[appkeys.ALERTS]
    await client.server.app[appkeys.SWEEPER].close()  # we drive the sweeps
    assert await service.sweep(now=alert["created_at"] + 1.1) == 1
    journal = service.journal_path
    lines = journal.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    old = json.loads(lines[0])
    legacy_id = "0123456789abcdef"
    legacy = {k: v for k, v in old.items() if k != "record"} | {"alert": legacy_id}
    journal.write_bytes(b"".join([*lines, lines[1], json.dumps(legacy).encode() + b"\n",
                                  b'{"alert": "torn", "entr']))
    for key in [k async for k in store.redis.scan_iter(match="hz:*alert*")]:
        await store.redis.delete(key)

    assert await service.reindex() == (2, 2)
    back = await store.alerts.get(alert["id"])
    assert back is not None and back.level == 1 and back.state.value == "raised"
    assert [e["step"] for e in await store.alerts.timeline(alert["id"])] == [
        "raised", "renotified"]
    assert back.next_due == pytest.approx(alert["created_at"] + 600)
    assert back.patient_name == alert["patient_name"] and back.department == "radiology"
    restored = await store.alerts.get(legacy_id)
    assert restored is not None and restored.finding == FINDING and restored.level == 0
    assert restored.next_due == pytest.approx(old["entry"]["at"] + 1)
    # Nothing came due twice: step 2 is not due yet, so a sweep now fires nothing for it.
    assert await service.sweep(now=alert["created_at"] + 2) == 1  # the legacy one's step 1
    assert [e["step"] for e in await store.alerts.timeline(alert["id"])] == [
        "raised", "renotified"]

"""Attacks found by trying the hardened server as an attacker would (issue #7, "Why")."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile

import aiohttp
import pytest
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_dataset, multipart_related, to_bytes
from tests.integration.conftest import login
from tests.integration.ws_client import PageSocket


async def _page(client, username: str) -> PageSocket:
    token = (await login(client, username))["Authorization"].split()[1]
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token=token)
    await sock.expect("ready")
    return sock


# A Redis stream ID is two unsigned 64-bit numbers in ASCII digits. Unicode digits match a
# pattern's "\d" and 20+ digits overflow: both reached XRANGE and answered internal_error.
@pytest.mark.parametrize(
    "last_event_id", ["١-٠", "٣٣٣٣٣-1", "99999999999999999999999-0", "1-99999999999999999999999"]
)
async def test_a_room_join_with_a_malformed_last_event_id_is_invalid(client, last_event_id):
    doctor = await _page(client, "dr.li")
    expert = await _page(client, "exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="q")
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    await doctor.send(type="room.join", room_id=room_id, last_event_id=last_event_id, id="j1")
    err = await doctor.expect("error", ref="j1")
    assert err["code"] == "invalid_message" and "last_event_id" in err["message"], err
    # A well-formed one still works, and the socket lives on.
    await doctor.send(type="room.join", room_id=room_id, last_event_id="0-0", id="j2")
    assert (await doctor.expect("room.state"))["room_id"] == room_id
    for sock in (doctor, expert):
        await sock.close()


# Python's "\d" matches Unicode digits: "٢٠٢٤٠١٠١" passed as a date and was compared as text.
@pytest.mark.parametrize(
    "query",
    ["StudyDate=٢٠٢٤٠١٠١", "StudyDate=20240101-٢٠٢٤٠١٠١", "StudyTime=١٢٣٠", "StudyDate=20240101\n",
     "StudyDate=２０２４０１０１"],
)
async def test_qido_dates_and_times_are_ascii_digits(client, auth, query):
    key, _, value = query.partition("=")
    resp = await client.get("/dicomweb/studies", params={key: value}, headers=await auth("dr.li"))
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_parameter"
    good = "1230" if key == "StudyTime" else "20240101-"
    ok = await client.get("/dicomweb/studies", params={key: good}, headers=await auth("dr.li"))
    assert ok.status == 200


# A QIDO listing shows a break-glass study's patient name and ID: it is a break-glass view too,
# and an auditor listing break_glass=1 records must find it (it carried no mark).
async def test_a_qido_listing_of_a_break_glass_study_is_marked(client, auth, store):
    ds = ct_dataset(study_uid=generate_uid())
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**await auth("dr.li"), "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    zhang = await auth("exp.zhang")
    reason = "stroke: CT needed now"
    resp = await client.post(f"/api/studies/{ds.StudyInstanceUID}/break-glass",
                             json={"reason": reason}, headers=zhang)
    assert resp.status == 200, await resp.text()
    since = (await store.audit.recent(1))[0].id
    resp = await client.get("/dicomweb/studies", headers=zhang)
    assert [s["0020000D"]["Value"][0] for s in await resp.json()] == [ds.StudyInstanceUID]
    # The doctor's own listing of the same study is no break-glass view.
    resp = await client.get("/dicomweb/studies", headers=await auth("dr.li"))
    assert resp.status == 200
    listings = [e.fields for e in await store.audit.since(since)
                if e.fields["action"] == "qido.studies"]
    assert [f["user"] for f in listings] == ["exp.zhang", "dr.li"]
    expert, doctor = listings
    assert expert["break_glass"] == "1"
    assert expert["break_glass_studies"] == f"qingshui/{ds.StudyInstanceUID}"
    assert expert["reason"] == reason
    assert "break_glass" not in doctor


# Requests aiohttp cannot even parse (a request line over 8 KiB, a header line too long, a NUL
# in the target) were answered in text/plain echoing the client's bytes, without the security
# headers, and each one logged a stack trace at ERROR: one hostile client, one trace a request.
@pytest.mark.parametrize(
    "raw",
    [b"GET /dicomweb/studies?limit=" + b"9" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
     b"GET /\x00evil HTTP/1.1\r\nHost: x\r\n\r\n"],
)
async def test_unparsable_requests_get_a_json_400_and_no_trace_flood(client, caplog, raw):
    caplog.set_level(logging.INFO)
    for _ in range(30):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()  # the server closes after an error response
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split(" ")[1] == "400", answer[:300]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        assert headers["content-type"].startswith("application/json"), headers
        assert headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert json.loads(body)["error"]["code"] == "bad_request"
        assert b"aaaa" not in body and b"9999" not in body and b"evil" not in body
    traces = [r for r in caplog.records if r.exc_info]
    assert traces == []
    assert len([r for r in caplog.records if r.name == "aiohttp.server"]) <= 5
    resp = await client.get("/healthz")  # the server is fine
    assert resp.status == 200


# An empty zip (or one holding only folders) stored nothing and answered 200 with nothing to say.
@pytest.mark.parametrize("members", [[], ["scans/", "scans/ct/"]])
async def test_a_zip_with_no_files_is_a_clear_400(client, auth, members):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in members:
            zf.writestr(name, b"")
    form = aiohttp.FormData()
    form.add_field("files", archive.getvalue(), filename="empty.zip",
                   content_type="application/zip")
    resp = await client.post("/api/uploads", headers=await auth("dr.li"), data=form)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "bad_request"
    assert "no files" in error["message"]


# A wrong password typed on a kiosk was audited without the kiosk: an auditor could not tell
# which machine someone was guessing on (patient-data reads from it carry `device`).
async def test_a_failed_sign_in_on_a_kiosk_names_the_kiosk(client, store):
    device, token = await store.directory.add_device("kiosk 1", "qingshui")
    since = (await store.audit.recent(1) or [None])[0]
    for _ in range(11):  # 10 wrong passwords, then the lock
        resp = await client.post("/api/auth/login", json={
            "username": "dr.li", "password": "not-the-password", "device_token": token})
    assert resp.status == 429
    events = [e.fields for e in await store.audit.since(since.id if since else "0")
              if e.fields["action"] in ("auth.login_failed", "auth.login_locked")]
    assert [e["action"] for e in events] == ["auth.login_failed"] * 10 + ["auth.login_locked"]
    assert all(e["device"] == device.id and e["remote"] and e["user"] == "dr.li"
               for e in events), events

"""Consult opinions (会诊意见) through real HTTP and the page WebSocket: the expert of a consult
writes, autosaves, signs and amends it; the kiosk is told live and reads every version; the
paper forms (PDF, FHIR, print JSON) and /verify agree; a consult without one stays pending;
the index comes back from the files."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import stat

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pypdf import PdfReader

from server.clinical import report_files
from server.clinical.report_model import Version, canonical_json

CONTENT = {"findings": "右肺上叶见 12 mm 结节，边界清楚。", "advice": "建议胸外科门诊就诊。",
           "refer": True, "follow_up": "三个月后复查 CT。"}


async def _ended_consult(page_sockets, patient: str = "王小明") -> tuple[dict, object]:
    doctor, expert = await page_sockets("dr.li"), await page_sockets("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="Nodule?",
                      patient_name=patient, patient_id="QS-7")
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.expect("consult.accepted"))["consult"]["room_id"]
    for p in (doctor, expert):
        await p.send(type="room.join", room_id=room_id)
        await p.expect("room.state")
    for p in (doctor, expert):
        await p.send(type="room.leave", room_id=room_id)
        await p.expect("room.left")
    return consult, doctor


async def _json(resp, status: int = 200) -> dict:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_opinion_lifecycle(client, auth, page_sockets, settings, store):
    consult, doctor_page = await _ended_consult(page_sockets)
    expert, doctor, other = await auth("exp.zhang"), await auth("dr.li"), await auth("dr.wang")

    pending = await _json(await client.get("/api/reports", headers=expert))
    assert [p["consult_id"] for p in pending["opinions_pending"]] == [consult["id"]]
    history = await _json(await client.get("/api/consults", headers=doctor))
    assert history["consults"][0]["opinion_pending"] is True

    # Only the consult's expert opens its opinion; opening twice gives the same report.
    body = {"kind": "opinion", "consult_id": consult["id"]}
    refused = await client.post("/api/reports", json=body, headers=doctor)
    assert refused.status == 403
    report = await _json(await client.post("/api/reports", json=body, headers=expert))
    again = await _json(await client.post("/api/reports", json=body, headers=expert))
    assert again["id"] == report["id"] and report["status"] == "preliminary"
    rid = report["id"]
    assert report["draft"]["revision"] == 0 and report["may_edit"] is True
    # Nothing signed yet: the clinic does not see the draft.
    assert (await client.get(f"/api/reports/{rid}", headers=doctor)).status == 404

    # Autosave with the revision it is based on; a stale one is refused.
    saved = await _json(await client.put(f"/api/reports/{rid}/draft", headers=expert,
                                         json={"revision": 0, "content": CONTENT}))
    assert saved["revision"] == 1 and saved["content"]["advice"] == CONTENT["advice"]
    stale = await client.put(f"/api/reports/{rid}/draft", headers=expert,
                             json={"revision": 0, "content": {"advice": "other tab"}})
    assert stale.status == 409 and (await stale.json())["error"]["code"] == "draft_stale"
    draft_file = report_files.report_dir(
        settings.dicom_dir, Version.from_json({**saved, "format": "huizhen-report/1",
                                               "signature": None}).subject, rid) / "draft.json"
    assert draft_file.is_file()
    bad = await client.put(f"/api/reports/{rid}/draft", headers=expert,
                           json={"revision": 1, "content": {"impression": "x"}})
    assert bad.status == 400  # not a field of an opinion

    # Sign what was seen; the kiosk's page hears of it at once.
    old_sign = await client.post(f"/api/reports/{rid}/sign", json={"revision": 0},
                                 headers=expert)
    assert old_sign.status == 409
    v1 = await _json(await client.post(f"/api/reports/{rid}/sign", json={"revision": 1},
                                       headers=expert))
    assert v1["status"] == "final" and v1["version"] == 1 and v1["signer"] == "exp.zhang"
    note = await doctor_page.expect("notification", timeout=10)
    assert note["notification"]["kind"] == "opinion.final"
    assert note["notification"]["data"]["report_id"] == rid

    # The file beside the study: read-only, and its signature is SHA-256 of the canonical form.
    path = draft_file.parent / "v0001.json"
    assert path.is_file() and not draft_file.exists()
    assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    stored = report_files.read_version_file(path)
    import hashlib
    assert stored.signature == v1["signature"] == hashlib.sha256(
        canonical_json(stored.signed_payload())).hexdigest()

    # Signed is final: no more draft writes, no second signature.
    closed = await client.put(f"/api/reports/{rid}/draft", headers=expert,
                              json={"revision": 1, "content": CONTENT})
    assert closed.status == 409
    assert (await client.post(f"/api/reports/{rid}/sign", json={"revision": 1},
                              headers=expert)).status == 409

    # The clinic reads it; another clinic does not know it exists.
    seen = await _json(await client.get(f"/api/reports/{rid}", headers=doctor))
    assert seen["status"] == "final" and seen["draft"] is None and seen["may_edit"] is False
    assert (await client.get(f"/api/reports/{rid}", headers=other)).status == 404
    listed = await _json(await client.get("/api/reports", headers=doctor))
    assert [r["id"] for r in listed["reports"]] == [rid]
    assert (await _json(await client.get("/api/reports", headers=other)))["reports"] == []
    history = await _json(await client.get("/api/consults", headers=doctor))
    assert history["consults"][0]["opinion"]["report_id"] == rid
    assert history["consults"][0]["opinion_pending"] is False
    pending = await _json(await client.get("/api/reports", headers=expert))
    assert pending["opinions_pending"] == []

    # Amend: a new version naming what it supersedes; the old one stays readable.
    assert (await client.post(f"/api/reports/{rid}/amend", headers=doctor,
                              json={"reason": "typo in advice"})).status in (403, 404)
    draft2 = await _json(await client.post(f"/api/reports/{rid}/amend", headers=expert,
                                           json={"reason": "follow-up changed"}))
    assert draft2["version"] == 2 and draft2["supersedes"] == 1
    await _json(await client.put(f"/api/reports/{rid}/draft", headers=expert, json={
        "revision": 0, "content": {**CONTENT, "follow_up": "一个月后复查。"}}))
    v2 = await _json(await client.post(f"/api/reports/{rid}/sign", json={"revision": 1},
                                       headers=expert))
    assert v2["status"] == "amended" and v2["supersedes"] == 1
    full = await _json(await client.get(f"/api/reports/{rid}", headers=doctor))
    assert [(v["version"], v["status"], v["superseded_by"]) for v in full["versions"]] == [
        (1, "final", 2), (2, "amended", None)]
    assert full["versions"][0]["content"]["follow_up"] == CONTENT["follow_up"]

    # /verify (public): the old paper is authentic but superseded; the new one current.
    old = await _json(await client.get(f"/api/verify/{v1['verification_code']}"))
    assert old["authentic"] is True and old["current"] is False and old["superseded_by"] == 2
    assert "patient_name" not in old and "王小明" not in str(old)
    new = await _json(await client.get(
        f"/api/verify/{v2['verification_code'].lower().replace('-', '')}"))
    assert new["current"] is True and new["version"] == 2 and new["signer_name"]
    page = await client.get(f"/verify/{v1['verification_code']}")
    assert page.status == 200 and "superseded" in (await page.text())
    assert (await client.get("/api/verify/AAAA-BBBB-CCCC")).status == 404

    # Paper and FHIR of a chosen version.
    pdf = await client.get(f"/api/reports/{rid}/pdf?version=1&lang=zh", headers=doctor)
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    text = "".join("".join(p.extract_text().split())
                   for p in PdfReader(io.BytesIO(await pdf.read())).pages)
    for expected in ("会诊意见", "王小明", "建议胸外科门诊就诊。", v1["verification_code"],
                     "已被第2版取代", v1["signature"][:40]):
        assert expected in text, expected
    doc = await _json(await client.get(f"/api/reports/{rid}/document?lang=en", headers=doctor))
    assert doc["title"] == "Consultation opinion" and doc["watermark"] == ""
    assert doc["verification"]["url"].endswith(f"/verify/{v2['verification_code']}")
    fhir = await client.get(f"/api/reports/{rid}/fhir?version=2", headers=doctor)
    assert fhir.content_type == "application/fhir+json"
    raw = await fhir.json()
    resource = DiagnosticReport.model_validate(raw)
    assert resource.status == "amended" and resource.meta.versionId == "2"
    assert resource.conclusion == CONTENT["advice"]
    plain = base64.b64decode(raw["presentedForm"][0]["data"]).decode()
    assert "一个月后复查" in plain
    assert (await client.get(f"/api/reports/{rid}/pdf", headers=other)).status == 404

    # Every view of it was audited.
    actions = {e.fields["action"] for e in await store.audit.recent(200)}
    assert {"report.open", "report.draft", "report.sign", "report.amend", "report.view",
            "report.pdf", "report.fhir", "report.document", "verify.lookup"} <= actions

    # Redis loses the index; the files bring it back.
    service = client.app[__import__("server.api.reports", fromlist=["SERVICE"]).SERVICE]
    assert await store.reports.clear() > 0
    assert (await client.get(f"/api/reports/{rid}", headers=doctor)).status == 404
    assert await service.reindex() == (1, 0)
    back = await _json(await client.get(f"/api/reports/{rid}", headers=doctor))
    assert back["versions"] == full["versions"]
    assert (await _json(await client.get(
        f"/api/verify/{v1['verification_code']}")))["superseded_by"] == 2
    history = await _json(await client.get("/api/consults", headers=doctor))
    assert history["consults"][0]["opinion"]["version"] == 2


async def test_retract_and_concurrent_signatures(client, auth, page_sockets):
    consult, _ = await _ended_consult(page_sockets)
    expert = await auth("exp.zhang")
    rid = (await _json(await client.post("/api/reports", headers=expert, json={
        "kind": "opinion", "consult_id": consult["id"]})))["id"]
    await _json(await client.put(f"/api/reports/{rid}/draft", headers=expert,
                                 json={"revision": 0, "content": CONTENT}))
    # Five signatures at once: exactly one version 1.
    results = await asyncio.gather(*(client.post(f"/api/reports/{rid}/sign",
                                                 json={"revision": 1}, headers=expert)
                                     for _ in range(5)))
    assert sorted(r.status for r in results) == [200, 409, 409, 409, 409]
    empty_reason = await client.post(f"/api/reports/{rid}/retract", headers=expert,
                                     json={"reason": ""})
    assert empty_reason.status == 400
    gone = await _json(await client.post(f"/api/reports/{rid}/retract", headers=expert,
                                         json={"reason": "wrong patient"}))
    assert gone["status"] == "entered-in-error" and gone["supersedes"] == 1
    verdict = await _json(await client.get(f"/api/verify/{gone['verification_code']}"))
    assert verdict["withdrawn"] is True
    again = await client.post(f"/api/reports/{rid}/amend", headers=expert,
                              json={"reason": "after withdrawal"})
    assert again.status == 409


async def test_verify_is_rate_limited(server_with):
    client = await server_with(verify_per_window=3)
    codes = [(await client.get("/api/verify/AAAA-BBBB-CCCC")).status for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    page = await client.get("/verify/AAAA-BBBB-CCCC")
    assert page.status == 429 and page.headers.get("Retry-After")


async def test_signed_versions_go_into_the_study_as_sr(client, auth, page_sockets, settings):
    import aiohttp
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    from tests.dicom_factory import ct_bytes

    doctor_h, expert_h = await auth("dr.li"), await auth("exp.zhang")
    study_uid = generate_uid()
    form = aiohttp.FormData()
    for i in range(2):
        form.add_field("files", ct_bytes(study_uid=study_uid, instance_number=i + 1,
                                         patient_name="Wang^Xiaoming", patient_id="QS-7"),
                       filename=f"{i}.dcm", content_type="application/dicom")
    assert (await client.post("/api/uploads", data=form, headers=doctor_h)).status == 200
    doctor, expert = await page_sockets("dr.li"), await page_sockets("exp.zhang")
    await doctor.send(type="consult.start", department="radiology", question="CT?",
                      patient_name="Wang Xiaoming", patient_id="QS-7", study_uid=study_uid)
    consult = (await doctor.expect("consult.created"))["consult"]
    await expert.send(type="consult.accept", consult_id=consult["id"])
    await expert.expect("consult.accepted")
    rid = (await _json(await client.post("/api/reports", headers=expert_h, json={
        "kind": "opinion", "consult_id": consult["id"]})))["id"]
    series = await _json(await client.get(f"/dicomweb/studies/{study_uid}/series",
                                          headers=expert_h))
    ct_series = series[0]["0020000E"]["Value"][0]
    instances = await _json(await client.get(
        f"/dicomweb/studies/{study_uid}/series/{ct_series}/instances", headers=expert_h))
    key_sop = instances[0]["00080018"]["Value"][0]
    content = {**CONTENT, "key_images": [{"series_uid": ct_series, "sop_uid": key_sop,
                                          "frame": 1, "center": 40, "width": 400,
                                          "caption": "图 1"}]}
    await _json(await client.put(f"/api/reports/{rid}/draft", headers=expert_h,
                                 json={"revision": 0, "content": content}))
    v1 = await _json(await client.post(f"/api/reports/{rid}/sign", json={"revision": 1},
                                       headers=expert_h))

    async def sr_series_list(count: int) -> list:
        # Written into the study right after the signature is acknowledged.
        for _ in range(200):
            found = await _json(await client.get(
                f"/dicomweb/studies/{study_uid}/series?Modality=SR", headers=doctor_h))
            if found:
                instances = await _json(await client.get(
                    f"/dicomweb/studies/{study_uid}/series/{found[0]['0020000E']['Value'][0]}"
                    "/instances", headers=doctor_h))
                if len(instances) >= count:
                    return found
            await asyncio.sleep(0.05)
        raise AssertionError("no SR in the study")

    sr_series = await sr_series_list(1)
    assert len(sr_series) == 1
    sr_uid = sr_series[0]["0020000E"]["Value"][0]
    sr_instances = await _json(await client.get(
        f"/dicomweb/studies/{study_uid}/series/{sr_uid}/instances", headers=doctor_h))
    sop = sr_instances[0]["00080018"]["Value"][0]
    resp = await client.get(f"/dicomweb/studies/{study_uid}/series/{sr_uid}/instances/{sop}",
                            headers={**doctor_h, "Accept": "multipart/related; "
                                     "type=\"application/dicom\""})
    assert resp.status == 200
    body = await resp.read()
    start = body.index(b"DICM") - 128
    sr = hd.sr.EnhancedSR.from_dataset(pydicom.dcmread(io.BytesIO(body[start:]), force=True))
    assert sr.VerificationFlag == "VERIFIED" and sr.CompletionFlag == "COMPLETE"
    assert sr.StudyInstanceUID == study_uid and str(sr.PatientID) == "QS-7"
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: getattr(i, "TextValue", None)
             for i in sr.ContentSequence}
    assert texts["Finding"] == CONTENT["findings"] and texts["Impression"] == CONTENT["advice"]
    images = [i for i in sr.ContentSequence if i.ValueType == "IMAGE"]
    assert images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == key_sop
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName).startswith("exp.zhang") \
        or sr.VerifyingObserverSequence[0].VerifyingObserverName

    # The PDF carries the key image, rendered by the one renderer.
    pdf = await client.get(f"/api/reports/{rid}/pdf", headers=doctor_h)
    reader = PdfReader(io.BytesIO(await pdf.read()))
    assert sum(len(p.images) for p in reader.pages) == 1
    doc = await _json(await client.get(f"/api/reports/{rid}/document", headers=doctor_h))
    assert doc["images"][0]["src"].startswith("data:image/png;base64,")

    # An amendment adds a second SR naming the first as its predecessor.
    await _json(await client.post(f"/api/reports/{rid}/amend", headers=expert_h,
                                  json={"reason": "advice clarified", "status": "corrected"}))
    await _json(await client.put(f"/api/reports/{rid}/draft", headers=expert_h, json={
        "revision": 0, "content": {**content, "advice": "建议胸外科住院。"}}))
    v2 = await _json(await client.post(f"/api/reports/{rid}/sign", json={"revision": 1},
                                       headers=expert_h))
    assert v2["status"] == "corrected" and v1["version"] == 1
    await sr_series_list(2)
    sr_instances = await _json(await client.get(
        f"/dicomweb/studies/{study_uid}/series/{sr_uid}/instances", headers=doctor_h))
    assert len(sr_instances) == 2

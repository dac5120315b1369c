"""Reading reports on worklist requests (#10.2): only the expert holding the claim writes and
signs; signing completes the request and tells the clinic; readers of the department see it;
a critical value raised on it is printed with it; FHIR and /verify agree."""

from __future__ import annotations

import io

import aiohttp
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydicom.uid import generate_uid
from pypdf import PdfReader

from tests.dicom_factory import ct_bytes

CONTENT = {"findings": "左侧气胸，肺组织压缩约 60%。", "impression": "左侧张力性气胸。",
           "recommendation": "立即胸腔闭式引流。", "critical": True}


async def _json(resp, status: int = 200) -> dict:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _request(client, auth) -> tuple[str, str]:
    doctor = await auth("dr.li")
    study_uid = generate_uid()
    form = aiohttp.FormData()
    form.add_field("files", ct_bytes(study_uid=study_uid, patient_name="Zhao^Liu",
                                     patient_id="QS-9"), filename="a.dcm",
                   content_type="application/dicom")
    assert (await client.post("/api/uploads", data=form, headers=doctor)).status == 200
    item = await _json(await client.post("/api/worklist", headers=doctor, json={
        "study_uid": study_uid, "question": "Pneumothorax?", "priority": "emergency",
        "department": "radiology"}), 201)
    return item["item"]["id"], study_uid


async def test_reading_report_by_the_claim_holder(client, auth, more_people, page_sockets):
    item_id, study_uid = await _request(client, auth)
    zhang, li, chen = await auth("exp.zhang"), await auth("exp.li"), await auth("exp.chen")
    doctor, other = await auth("dr.li"), await auth("dr.wang")
    body = {"kind": "reading", "reading_request_id": item_id}
    # Nobody holds it yet: nobody writes it. Another department does not even see it.
    assert (await client.post("/api/reports", json=body, headers=zhang)).status == 403
    assert (await client.post("/api/reports", json=body, headers=chen)).status == 404
    claimed = (await _json(await client.post(f"/api/worklist/{item_id}/claim",
                                             headers=zhang)))["item"]
    report = await _json(await client.post("/api/reports", json=body, headers=zhang))
    rid = report["id"]
    assert report["subject"]["study_uid"] == study_uid and report["may_edit"] is True
    # A colleague of the department: nothing signed yet, so no report to see or write.
    assert (await client.post("/api/reports", json=body, headers=li)).status == 404
    assert (await client.put(f"/api/reports/{rid}/draft", headers=li, json={
        "revision": 0, "content": CONTENT})).status in (403, 404)

    saved = await _json(await client.put(f"/api/reports/{rid}/draft", headers=zhang,
                                         json={"revision": 0, "content": CONTENT}))
    kiosk = await page_sockets("dr.li")
    # The claim is released: its former holder may not sign any more.
    await _json(await client.post(f"/api/worklist/{item_id}/release", headers=zhang,
                                  json={"claim_token": claimed["claim_token"]}))
    refused = await client.post(f"/api/reports/{rid}/sign", headers=zhang,
                                json={"revision": saved["revision"]})
    assert refused.status == 403
    await _json(await client.post(f"/api/worklist/{item_id}/claim", headers=zhang))
    v1 = await _json(await client.post(f"/api/reports/{rid}/sign", headers=zhang,
                                       json={"revision": saved["revision"]}))
    assert v1["status"] == "final" and v1["content"]["critical"] is True

    # Signing completed the request and told the clinic.
    item = (await _json(await client.get(f"/api/worklist/{item_id}", headers=doctor)))["item"]
    assert item["state"] == "completed" and item["report_id"] == rid
    note = await kiosk.expect("notification", timeout=10)
    while note["notification"]["kind"] != "report.final":
        note = await kiosk.expect("notification", timeout=10)
    assert note["notification"]["data"]["critical"] is True

    # Readers: the clinic, the department's readers (reading grant); not another clinic.
    assert (await _json(await client.get(f"/api/reports/{rid}", headers=doctor)))["status"] == \
        "final"
    seen = await _json(await client.post("/api/reports", json=body, headers=li))
    assert seen["id"] == rid and seen["versions"] and seen["may_edit"] is False
    assert (await client.get(f"/api/reports/{rid}", headers=other)).status == 404
    assert (await client.get(f"/api/reports/{rid}", headers=chen)).status == 404

    # A critical value raised on the report is printed with it (who was told, the read-back).
    alert = await _json(await client.post("/api/alerts", headers=zhang, json={
        "tier": "critical", "finding": "左侧张力性气胸", "report_id": rid}), 201)
    alert = alert.get("alert", alert)
    await _json(await client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=doctor,
                                  json={"read_back": "左侧张力性气胸", "receiver_name": "李医生"}))
    pdf = await client.get(f"/api/reports/{rid}/pdf?lang=zh", headers=doctor)
    text = "".join("".join(p.extract_text().split())
                   for p in PdfReader(io.BytesIO(await pdf.read())).pages)
    for expected in ("影像诊断报告", "危急值", "左侧张力性气胸。", "立即胸腔闭式引流。",
                     "危急值通报记录", "复读", v1["verification_code"]):
        assert expected in text, expected
    shown = await _json(await client.get(f"/api/reports/{rid}", headers=doctor))
    assert shown["communication"][0]["read_back"] == "左侧张力性气胸"
    doc = await _json(await client.get(f"/api/reports/{rid}/document?lang=en", headers=doctor))
    assert doc["sections"][0]["heading"] == "Critical finding"
    assert doc["sections"][-1]["heading"] == "Critical value communication"

    fhir_resp = await client.get(f"/api/reports/{rid}/fhir", headers=doctor)
    assert fhir_resp.content_type == "application/fhir+json"
    fhir = await _json(fhir_resp)
    resource = DiagnosticReport.model_validate(fhir)
    # The clinically relevant time is the study's (its StudyTime has no zone: the date only);
    # the signing time is `issued`.
    assert fhir["effectiveDateTime"] == "2026-11-20" and fhir["issued"] == v1["signed_at"]
    pdf_form = next(f for f in fhir["presentedForm"] if f["contentType"] == "application/pdf")
    assert pdf_form["url"].endswith(f"/api/reports/{rid}/pdf?version=1")
    assert resource.status == "final" and resource.category[0].coding[0].code == "RAD"
    assert resource.basedOn[0].identifier.value == item_id
    assert {e["url"]: e.get("valueBoolean") for e in fhir["extension"]}[
        "urn:huizhen:fhir:critical-finding"] is True
    verdict = await _json(await client.get(f"/api/verify/{v1['verification_code']}"))
    assert verdict["authentic"] and verdict["current"] and verdict["kind"] == "reading"

    # Amending after completion is the signer's (the request is closed).
    assert (await client.post(f"/api/reports/{rid}/amend", headers=li,
                              json={"reason": "not mine"})).status == 403
    draft2 = await _json(await client.post(f"/api/reports/{rid}/amend", headers=zhang,
                                           json={"reason": "drain size added"}))
    assert draft2["version"] == 2

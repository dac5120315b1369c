"""ECG waveforms through the real API: STOW-RS and kiosk upload, index + screening, WADO-RS
metadata and bulk data, the compact viewer endpoint, authorisation and audit."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import aiohttp
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from media.ecg import compact, synthetic
from tests.dicom_factory import ct_bytes, multipart_related, read_multipart, to_bytes

FIXTURE = Path(get_testdata_file("waveform_ecg.dcm"))


def _base(ds: pydicom.Dataset) -> str:
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


async def _stow(client, h, *bodies: bytes) -> dict:
    body, ctype = multipart_related(list(bodies))
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**h, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_stow_index_screening_and_viewer_samples(client, auth, store):
    h = await auth("dr.li")
    fixture = pydicom.dcmread(FIXTURE)
    stemi_bytes = synthetic.ecg_bytes(synthetic.Spec("stemi", rate=80, seed=5))
    stemi = pydicom.dcmread(io.BytesIO(stemi_bytes))
    await _stow(client, h, FIXTURE.read_bytes(), stemi_bytes)

    resp = await client.get(_base(stemi) + "/ecg/summary", headers=h)
    assert resp.status == 200
    summary = await resp.json()
    assert summary["iod"] == "12-lead ECG" and summary["rate_hz"] == 500.0
    assert summary["screening"]["suspected_critical"] is True
    assert "st_elevation" in {r["code"] for r in summary["screening"]["reasons"]}
    resp = await client.get(_base(fixture) + "/ecg/summary", headers=h)
    fixture_summary = await resp.json()
    assert fixture_summary["screening"]["suspected_critical"] is False
    assert fixture_summary["measurements"]["qtc_ms"] == 370

    # The compact samples: gzip on the wire, values equal to pydicom's waveform_array.
    for ds, limit in ((stemi, 60_000), (fixture, 120_000)):
        resp = await client.get(_base(ds) + "/ecg",
                                headers={**h, "Accept-Encoding": "gzip"}, auto_decompress=False)
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        wire = await resp.read()
        assert len(wire) <= limit, len(wire)
        header, arrays = compact.decode(gzip.decompress(wire))
        assert header["screening"]["suspected_critical"] is (ds is stemi)
        for index, (g, arr) in enumerate(zip(header["groups"], arrays, strict=True)):
            values = np.stack([arr[:, k] * c["sensitivity"] * c["correction"] + c["baseline"]
                               for k, c in enumerate(g["channels"])], axis=1)
            np.testing.assert_array_equal(values, ds.waveform_array(index))
    plain = await client.get(_base(stemi) + "/ecg", headers={**h, "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert (await plain.read())[:4] == b"HZE1"

    # WADO-RS metadata names each group's Waveform Data by its path; bulk data serves it.
    resp = await client.get(_base(fixture) + "/metadata", headers=h)
    (meta,) = await resp.json()
    groups = meta["54000100"]["Value"]
    uri = groups[1]["54001010"]["BulkDataURI"]
    assert uri.endswith("/bulkdata/54000100/2/54001010")
    resp = await client.get(uri, headers={**h, "Accept": "multipart/related; "
                                          "type=application/octet-stream"})
    assert resp.status == 200
    ((_, value),) = await read_multipart(resp)
    assert value == fixture.WaveformSequence[1].WaveformData
    bad = await client.get(_base(fixture) + "/bulkdata/54000100/9/54001010", headers=h)
    assert bad.status == 404

    audited = [e.fields for e in await store.audit.recent(50)]
    assert any(f["action"] == "ecg.samples" and f["instance"] == stemi.SOPInstanceUID
               and f["user"] == "dr.li" for f in audited)


async def test_ecg_access_is_the_instance_access(client, auth, store):
    h = await auth("dr.li")
    stemi_bytes = synthetic.ecg_bytes(synthetic.Spec("stemi"))
    ds = pydicom.dcmread(io.BytesIO(stemi_bytes))
    await _stow(client, h, stemi_bytes)
    for user in ("dr.wang", "exp.zhang"):  # another clinic; an expert without a grant
        other = await auth(user)
        for suffix in ("/ecg", "/ecg/summary", "/bulkdata/54000100/1/54001010"):
            resp = await client.get(_base(ds) + suffix, headers=other)
            assert resp.status == 404, (user, suffix)
            assert (await resp.json())["error"]["code"] == "not_found"
    assert (await client.get(_base(ds) + "/ecg")).status == 401
    refused = [e.fields for e in await store.audit.recent(50)
               if e.fields.get("action") == "access.refused"]
    assert any(f["user"] == "dr.wang" for f in refused)


async def test_not_an_ecg_and_invalid_ecg(client, auth):
    h = await auth("dr.li")
    ct = ct_bytes()
    result = await _stow(client, h, ct)
    stored = result["00081199"]["Value"][0]
    url = stored["00081190"]["Value"][0]
    path = url[url.index("/dicomweb"):]
    resp = await client.get(path + "/ecg", headers=h)
    assert resp.status == 404
    ds = synthetic.ecg_dataset(synthetic.Spec("nsr"))
    ds.WaveformSequence[0].NumberOfWaveformChannels = 30
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 409
    failed = (await resp.json())["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [0xC000]


async def test_kiosk_upload_of_an_ecg(client, auth):
    h = await auth("dr.li")
    body = synthetic.ecg_bytes(synthetic.Spec("vt", rate=170))
    ds = pydicom.dcmread(io.BytesIO(body))
    form = aiohttp.FormData()
    form.add_field("files", body, filename="ecg.dcm", content_type="application/octet-stream")
    resp = await client.post("/api/uploads", data=form, headers=h)
    assert resp.status == 200, await resp.text()
    summary = await (await client.get(_base(ds) + "/ecg/summary", headers=h)).json()
    assert summary["screening"]["suspected_critical"] is True
    assert "vt" in {r["code"] for r in summary["screening"]["reasons"]}


async def test_new_ecgs_are_told_to_the_clinics_pages(client, auth, page_sockets):
    """`ecg.stored` (the kiosk's in-call list reloads on it): to the uploading clinic's pages for
    a kiosk upload and a STOW-RS of ECGs, with the instances' ids; not for a CT, not for a
    duplicate, and never to another clinic's pages."""
    li, wang = await auth("dr.li"), await auth("dr.wang")
    li_page, wang_page = await page_sockets("dr.li"), await page_sockets("dr.wang")
    body = synthetic.ecg_bytes(synthetic.Spec("nsr", seed=41))
    ds = pydicom.dcmread(io.BytesIO(body))
    form = aiohttp.FormData()
    form.add_field("files", body, filename="ecg.dcm", content_type="application/octet-stream")
    assert (await client.post("/api/uploads", data=form, headers=li)).status == 200
    told = await li_page.expect("ecg.stored")
    assert told == {"type": "ecg.stored", "clinic": "qingshui", "instances": [
        {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
         "sop_instance_uid": ds.SOPInstanceUID}]}
    # A CT and the same ECG again (a duplicate) tell nobody; the next new ECG does.
    await _stow(client, li, ct_bytes(), body)
    second = pydicom.dcmread(io.BytesIO(synthetic.ecg_bytes(synthetic.Spec("af_rvr", seed=42))))
    await _stow(client, li, to_bytes(second))
    told = await li_page.expect("ecg.stored")
    assert [i["sop_instance_uid"] for i in told["instances"]] == [second.SOPInstanceUID]
    # Hetang's doctor heard none of Qingshui's, only their own.
    await _stow(client, wang, FIXTURE.read_bytes())
    theirs = await wang_page.expect("ecg.stored")
    assert theirs["clinic"] == "hetang"
    assert [m for m in wang_page.backlog if m.get("type") == "ecg.stored"] == []
    assert [m for m in li_page.backlog if m.get("type") == "ecg.stored"] == []


async def test_ecg_reading_worklist_suspected_critical_first_alert_and_read_back(
        client, auth, store, page_sockets, password_hash):
    """The 'done when' of #11 through the API: a kiosk uploads a normal ECG and then an acute
    MI; both go onto the ECG readers' list, the MI first and flagged, the on-duty reader is
    notified; the reader claims it and raises the critical value; the clinic acknowledges it
    with a read-back."""
    from server.store.directory import Role

    await store.directory.add_department("ECG Reading Room", "ecg")
    await store.directory.add_user("exp.ecg", role=Role.EXPERT, password_hash=password_hash,
                                   department="ecg")
    reader_page = await page_sockets("exp.ecg")
    clinic_page = await page_sockets("dr.li")
    doctor = await auth("dr.li")
    reader = await auth("exp.ecg")

    async def upload(spec):
        body = synthetic.ecg_bytes(spec, patient_id=f"QS-{spec.condition}")
        form = aiohttp.FormData()
        form.add_field("files", body, filename="ecg.dcm", content_type="application/octet-stream")
        resp = await client.post("/api/uploads", data=form, headers=doctor)
        assert resp.status == 200, await resp.text()
        return pydicom.dcmread(io.BytesIO(body))

    normal = await upload(synthetic.Spec("nsr", seed=11))
    stemi = await upload(synthetic.Spec("stemi", rate=90, seed=12))
    # The on-duty reader is told at once (live, and in the inbox).
    live = await reader_page.expect("notification", timeout=10)
    while live["notification"]["kind"] != "ecg.suspected_critical":
        live = await reader_page.expect("notification", timeout=10)
    data = live["notification"]["data"]
    assert data["study_uid"] == stemi.StudyInstanceUID and "st_elevation" in data["reasons"]

    resp = await client.get("/api/worklist", params={"modality": "ECG"}, headers=reader)
    assert resp.status == 200, await resp.text()
    items = (await resp.json())["items"]
    assert [i["study_uid"] for i in items] == [stemi.StudyInstanceUID, normal.StudyInstanceUID]
    top = items[0]
    assert top["flags"].startswith("suspected_critical") and "st_elevation" in top["flags"]
    assert top["priority"] == "emergency" and items[1]["priority"] == "routine"
    assert items[1]["flags"] == "" and "SUSPECTED CRITICAL" in top["question"]
    # Another modality's filter hides them; the clinic sees its own requests.
    other = await client.get("/api/worklist", params={"modality": "CT"}, headers=reader)
    assert (await other.json())["items"] == []
    bad = await client.get("/api/worklist", params={"modality": "E C G"}, headers=reader)
    assert bad.status == 400
    # The reader may now read the ECG (granted by the request) and claims it.
    assert (await client.get(_base(stemi) + "/ecg", headers=reader)).status == 200
    resp = await client.post(f"/api/worklist/{top['id']}/claim", headers=reader)
    assert resp.status == 200, await resp.text()
    finding = "Acute anterior ST elevation myocardial infarction"
    resp = await client.post("/api/alerts", headers=reader, json={
        "finding": finding, "item_id": top["id"]})
    assert resp.status == 201, await resp.text()
    alert = (await resp.json())["alert"]
    assert (await clinic_page.expect("alert.raised", timeout=10))["alert"]["id"] == alert["id"]
    resp = await client.post(f"/api/alerts/{alert['id']}/acknowledge", headers=doctor, json={
        "read_back": "acute anterior ST elevation myocardial infarction",
        "receiver_name": "Dr Li"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["alert"]["state"] == "acknowledged"


async def test_no_ecg_department_no_reading_request(client, auth):
    h = await auth("dr.li")
    await _stow(client, h, synthetic.ecg_bytes(synthetic.Spec("vt", rate=170)))
    resp = await client.get("/api/worklist", headers=h)
    assert (await resp.json())["items"] == []


async def test_signed_ecg_report_prints_the_tracing_and_fields(
        client, auth, store, password_hash):
    """#11 item 4: the ECG report template, prefilled from the device, signed; its document and
    PDF hold the ECG fields and the tracing at true scale; the signature verifies."""
    from pypdf import PdfReader

    from media.ecg import tracing
    from server.store.directory import Role

    await store.directory.add_department("ECG Reading Room", "ecg")
    await store.directory.add_user("exp.ecg", role=Role.EXPERT, password_hash=password_hash,
                                   department="ecg")
    doctor, reader = await auth("dr.li"), await auth("exp.ecg")
    await _stow(client, doctor, FIXTURE.read_bytes())
    resp = await client.get("/api/worklist", params={"modality": "ECG"}, headers=reader)
    item = (await resp.json())["items"][0]
    assert (await client.post(f"/api/worklist/{item['id']}/claim", headers=reader)).status == 200
    resp = await client.post("/api/reports", headers=reader,
                             json={"kind": "reading", "reading_request_id": item["id"]})
    assert resp.status in (200, 201), await resp.text()
    report = await resp.json()
    rid, draft = report["id"], report["draft"]
    ecg = draft["content"]["ecg"]  # prefilled from the device's measurements
    assert ecg["rate"] and ecg["qrs"] and ecg["qtc"], ecg
    bad = await client.put(f"/api/reports/{rid}/draft", headers=reader, json={
        "revision": draft["revision"], "content": {**draft["content"],
                                                   "ecg": {**ecg, "rate": 1000}}})
    assert bad.status == 400
    content = {**draft["content"], "findings": "Sinus rhythm.", "impression": "Normal ECG.",
               "ecg": {**ecg, "rhythm": "Sinus rhythm 窦性心律", "st_t": "No ST-T changes",
                       "conclusion": "Normal ECG 正常心电图"}}
    resp = await client.put(f"/api/reports/{rid}/draft", headers=reader,
                            json={"revision": draft["revision"], "content": content})
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/api/reports/{rid}/sign", headers=reader,
                             json={"revision": (await resp.json())["revision"]})
    assert resp.status == 200, await resp.text()
    v1 = await resp.json()
    assert v1["content"]["ecg"]["rhythm"] == "Sinus rhythm 窦性心律"

    resp = await client.get(f"/api/reports/{rid}/document?lang=en", headers=doctor)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    section = next(s for s in doc["sections"] if s["heading"] == "ECG")
    rows = dict(map(tuple, section["rows"]))
    assert rows["Rhythm"] == "Sinus rhythm 窦性心律" and rows["QTc (ms)"] == str(ecg["qtc"])
    # The rhythm sheet (10 s after the 10 mm calibration lead-in), then the fixture's median
    # beats (1.2 s each, 3 × 4), both at true size.
    scaled = [i for i in doc["images"] if i.get("width_mm")]
    assert [(i["width_mm"], i["height_mm"]) for i in scaled] == [
        (260.0, 4 * tracing.ROW_MM), (tracing.medians_width_mm(1.2), 3 * tracing.ROW_MM)]
    assert "10 mm/mV" in scaled[0]["caption"] and "Median beats" in scaled[1]["caption"]
    resp = await client.get(f"/api/reports/{rid}/document?lang=en&gain=20", headers=doctor)
    assert "20 mm/mV" in (await resp.json())["images"][-2]["caption"]
    for bad_gain in ("15", "1e1", ""):
        resp = await client.get(f"/api/reports/{rid}/pdf", params={"gain": bad_gain},
                                headers=doctor)
        assert resp.status == 400 and (await resp.json())["error"]["code"], bad_gain

    resp = await client.get(f"/api/reports/{rid}/pdf?lang=en", headers=doctor)
    assert resp.status == 200, await resp.text()
    pdf = PdfReader(io.BytesIO(await resp.read()))
    text = "".join("".join(p.extract_text().split()) for p in pdf.pages)
    for expected in ("ECG", "Rhythm", "Sinusrhythm窦性心律", "QTc(ms)", str(ecg["qtc"]),
                     "NoST-Tchanges", "25mm/s"):
        assert expected in text, expected
    # The tracing's page: landscape, the image placed 250 mm wide (1 mm of grid = 1 mm).
    page = next(p for p in pdf.pages if p.images)
    assert float(page.mediabox.width) > float(page.mediabox.height)
    with_image = [p for p in pdf.pages if p.images and "25mm/s" in "".join(
        p.extract_text().split())]
    assert with_image
    content_stream = with_image[0].get_contents().get_data().decode("latin-1")
    # fpdf2 places an image with "w 0 0 h x y cm" in points: 260 mm = 737.01 pt, 140 mm =
    # 396.85 pt; the median beats' page 150 × 105 mm = 425.20 × 297.64 pt.
    assert "737.01 0 0 396.85 " in content_stream, content_stream[:400]
    medians = "".join(p.get_contents().get_data().decode("latin-1") for p in pdf.pages
                      if "Medianbeats" in "".join(p.extract_text().split()))
    assert "425.20 0 0 297.64 " in medians, medians[:400]

    verdict = await (await client.get(f"/api/verify/{v1['verification_code']}")).json()
    assert verdict["authentic"] and verdict["current"]

    # FHIR: an EKG study (LOINC 11524-6, category EC) whose measurements are contained
    # Observations with LOINC codes and UCUM quantities, each referenced from `result`.
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport
    from fhir.resources.R4B.observation import Observation

    resp = await client.get(f"/api/reports/{rid}/fhir", headers=doctor)
    assert resp.status == 200, await resp.text()
    raw = await resp.json()
    resource = DiagnosticReport.model_validate(raw)
    assert [(c.system, c.code, c.display) for c in resource.code.coding] == [
        ("http://loinc.org", "11524-6", "EKG study")]
    assert resource.category[0].coding[0].code == "EC"
    assert resource.category[0].coding[0].system == \
        "http://terminology.hl7.org/CodeSystem/v2-0074"
    observations = {}
    for item in resource.contained:
        obs = Observation.model_validate(item.model_dump())
        observations[obs.code.coding[0].code] = obs
    signed_ecg = v1["content"]["ecg"]
    expected = {"8867-4": ("rate", "/min"), "8625-6": ("pr", "ms"), "8633-0": ("qrs", "ms"),
                "8634-8": ("qt", "ms"), "8636-3": ("qtc", "ms"), "8626-4": ("p_axis", "deg"),
                "8632-2": ("axis", "deg"), "8638-9": ("t_axis", "deg")}
    assert set(observations) == set(expected)  # the fixture has every one of them
    for loinc, (field, ucum) in expected.items():
        obs = observations[loinc]
        assert obs.code.coding[0].system == "http://loinc.org"
        assert obs.valueQuantity.system == "http://unitsofmeasure.org"
        assert obs.valueQuantity.code == ucum
        assert float(obs.valueQuantity.value) == signed_ecg[field]
        assert obs.status == "final" and obs.subject.identifier.value == \
            resource.subject.identifier.value
    assert (observations["8626-4"].valueQuantity.value,
            observations["8638-9"].valueQuantity.value) == (74, 57)
    assert sorted(r.reference for r in resource.result) == sorted(
        f"#{o.id}" for o in observations.values())

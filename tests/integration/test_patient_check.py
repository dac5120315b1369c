"""A consult's attached study must be the named patient's: checked against the clinic's study
index, a mismatch needs the doctor's confirmation, is shown to the expert and is audited."""

from __future__ import annotations

import pytest

from tests.dicom_factory import ct_dataset, multipart_related, to_bytes
from tests.integration.ws_client import PageSocket

STUDY = "1.2.826.0.1.3680043.8.498.815"


@pytest.fixture
async def pages(client, auth):
    ds = ct_dataset(study_uid=STUDY, patient_id="QS-2024-0815")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Wang^Xiaoming=王^小明"
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**(await auth("dr.li")), "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    sockets = []
    for user in ("dr.li", "exp.zhang"):
        token = (await auth(user))["Authorization"].split()[1]
        sock = PageSocket(await client.ws_connect("/api/ws"))
        await sock.send(type="auth", token=token)
        await sock.expect("ready")
        sockets.append(sock)
    yield sockets
    for s in sockets:
        await s.close()


async def test_the_right_patient_matches(pages):
    doctor, expert = pages
    await doctor.send(type="consult.start", department="radiology", question="CT?",
                      patient_name="王小明", patient_id="QS-2024-0815", study_uid=STUDY)
    consult = (await doctor.expect("consult.created"))["consult"]
    assert consult["patient_check"] == "match"
    assert consult["study_patient_name"] == "Wang Xiaoming = 王小明"
    assert consult["study_patient_id"] == "QS-2024-0815"
    ringing = (await expert.expect("consult.ringing"))["consult"]
    assert ringing["has_study"] is True and ringing["patient_check"] == "match"


async def test_no_patient_given_is_filled_from_the_study_and_no_study_is_said(pages):
    doctor, _ = pages
    await doctor.send(type="consult.start", department="radiology", question="CT?",
                      study_uid=STUDY)
    consult = (await doctor.expect("consult.created"))["consult"]
    assert consult["patient_name"] == "Wang Xiaoming = 王小明"
    assert consult["patient_id"] == "QS-2024-0815" and consult["patient_check"] == "match"
    await doctor.send(type="consult.start", department="radiology", question="No images",
                      patient_name="李四")
    bare = (await doctor.expect("consult.created"))["consult"]
    assert bare["patient_check"] == "no_study" and bare["has_study"] is False


async def test_a_mismatch_needs_confirmation_is_shown_and_audited(pages, store):
    doctor, expert = pages
    await doctor.send(type="consult.start", department="radiology", question="CT?", id="s1",
                      patient_name="李小红", patient_id="QS-2024-0815", study_uid=STUDY)
    err = await doctor.expect("error", ref="s1")
    assert err["code"] == "patient_mismatch"
    assert err["details"] == {"study_patient_name": "Wang Xiaoming = 王小明",
                              "study_patient_id": "QS-2024-0815"}
    await doctor.send(type="consult.start", department="radiology", question="CT?", id="s2",
                      patient_name="王小明", patient_id="HT-0001", study_uid=STUDY)
    assert (await doctor.expect("error", ref="s2"))["code"] == "patient_mismatch"
    assert not [m for m in expert.backlog if m["type"] == "consult.ringing"]
    await doctor.send(type="consult.start", department="radiology", question="CT?",
                      patient_name="李小红", patient_id="QS-2024-0815", study_uid=STUDY,
                      confirm_patient_mismatch=True)
    consult = (await doctor.expect("consult.created"))["consult"]
    assert consult["patient_check"] == "mismatch_confirmed"
    assert consult["patient_name"] == "李小红"  # what the doctor said is kept, and shown beside
    ringing = (await expert.expect("consult.ringing"))["consult"]
    assert ringing["patient_check"] == "mismatch_confirmed"
    assert ringing["study_patient_name"] == "Wang Xiaoming = 王小明"
    audited = [e.fields for e in await store.audit.recent(50)
               if e.fields["action"] == "consult.patient_mismatch_confirmed"]
    assert len(audited) == 1
    a = audited[0]
    assert (a["user"], a["clinic"], a["consult"], a["study"]) == (
        "dr.li", "qingshui", consult["id"], STUDY)
    assert a["patient_name"] == "李小红" and a["study_patient_id"] == "QS-2024-0815"
    # The expert who accepts sees the same warning in the room.
    await expert.send(type="consult.accept", consult_id=consult["id"])
    accepted = (await expert.expect("consult.accepted"))["consult"]
    assert accepted["patient_check"] == "mismatch_confirmed"

"""An ECG sent into a live consult call (issue 11 item 6) through the real WebSocket and HTTP API:
`room.share` refused for another clinic's instance, a non-ECG, an expert and an unjoined room;
accepted -> the expert gets the stored `ecg.shared` event, is granted the ECG's study and fetches
its samples, while another clinic's doctor still cannot; every decision audited."""

from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from media.ecg import synthetic
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


async def _stow(client, headers, *bodies: bytes) -> None:
    body, ctype = multipart_related(list(bodies))
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


def _share(room_id: str, ds: pydicom.Dataset) -> dict:
    return {"type": "room.share", "room_id": room_id, "study_uid": ds.StudyInstanceUID,
            "series_uid": ds.SeriesInstanceUID, "sop_instance_uid": ds.SOPInstanceUID}


def _ecg_url(ds: pydicom.Dataset) -> str:
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/ecg")


async def accepted_consult(doc, exp, study_uid: str) -> str:
    """The doctor's page calls radiology about `study_uid` and the expert's accepts: the room."""
    await doc.send(type="consult.start", department="radiology", question="Chest pain",
                   study_uid=study_uid)
    created = (await doc.expect("consult.created"))["consult"]
    await exp.expect("consult.ringing")
    await exp.send(type="consult.accept", consult_id=created["id"])
    return (await exp.expect("consult.accepted"))["consult"]["room_id"]


async def _audited(store, action: str) -> list[dict[str, str]]:
    return [e.fields for e in await store.audit.since("0") if e.fields["action"] == action]


async def test_the_doctor_sends_an_ecg_into_the_call(client, auth, page_sockets, store,
                                                     more_people):
    li, wang, zhang = await auth("dr.li"), await auth("dr.wang"), await auth("exp.zhang")
    consult_study = ct_dataset(study_uid=generate_uid())
    await _stow(client, li, to_bytes(consult_study))
    ecg_bytes = synthetic.ecg_bytes(synthetic.Spec("stemi", rate=80, seed=3))
    ecg = pydicom.dcmread(io.BytesIO(ecg_bytes))
    await _stow(client, li, ecg_bytes)
    ct_only = ct_dataset(study_uid=generate_uid())
    await _stow(client, li, to_bytes(ct_only))
    hetang_ecg = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    await _stow(client, wang, to_bytes(hetang_ecg))

    doc = await page_sockets("dr.li")
    exp = await page_sockets("exp.zhang")
    room_id = await accepted_consult(doc, exp, consult_study.StudyInstanceUID)

    # Not in the room yet: refused.
    await doc.send(id="early", **_share(room_id, ecg))
    assert (await doc.expect("error", ref="early"))["code"] == "not_found"
    for sock in (doc, exp):
        await sock.send(type="room.join", room_id=room_id)
        await sock.expect("room.state", room_id=room_id)

    # The ECG is not the consult's study: the expert may not read it before the share.
    assert (await client.get(_ecg_url(ecg), headers=zhang)).status == 404

    refusals = {"other-clinic": (hetang_ecg, "not_found"),
                "not-ecg": (ct_only, "invalid_parameter")}
    for ref, (ds, code) in refusals.items():
        await doc.send(id=ref, **_share(room_id, ds))
        assert (await doc.expect("error", ref=ref))["code"] == code, ref
    # A wrong series for a real instance is as unknown as a missing one.
    wrong_series = {**_share(room_id, ecg), "series_uid": ct_only.SeriesInstanceUID}
    await doc.send(id="wrong-series", **wrong_series)
    assert (await doc.expect("error", ref="wrong-series"))["code"] == "not_found"
    # The expert cannot push anything into the doctor's call.
    await exp.send(id="by-expert", **_share(room_id, ecg))
    assert (await exp.expect("error", ref="by-expert"))["code"] == "forbidden"
    # Bad input is a validation error, never a 500.
    await doc.send(id="bad", type="room.share", room_id=room_id, study_uid="x",
                   series_uid="1", sop_instance_uid="1")
    assert (await doc.expect("error", ref="bad"))["code"] == "invalid_message"
    assert (await client.get(_ecg_url(ecg), headers=zhang)).status == 404

    await doc.send(id="ok", **_share(room_id, ecg))
    shared = await doc.expect("room.shared", ref="ok")
    got = await exp.expect("room.event", room_id=room_id)
    while got["event"]["type"] != "ecg.shared":
        got = await exp.expect("room.event", room_id=room_id)
    assert got["event"]["id"] == shared["event_id"]
    assert got["event"]["by"] == "dr.li"
    assert (got["event"]["study_uid"], got["event"]["series_uid"],
            got["event"]["sop_instance_uid"]) == (
        ecg.StudyInstanceUID, ecg.SeriesInstanceUID, ecg.SOPInstanceUID)

    # The expert fetches the samples; another clinic's doctor still cannot.
    resp = await client.get(_ecg_url(ecg), headers=zhang)
    assert resp.status == 200
    assert len(await resp.read()) > 1000
    assert (await client.get(_ecg_url(ecg), headers=wang)).status == 404
    # Granted exactly that study, not the CT the doctor did not share.
    ct_url = (f"/dicomweb/studies/{ct_only.StudyInstanceUID}/series/"
              f"{ct_only.SeriesInstanceUID}/instances/{ct_only.SOPInstanceUID}/metadata")
    assert (await client.get(ct_url, headers=zhang)).status == 404

    # A colleague invited after the share sees the ECG too (granted with the consult's study).
    chen = await auth("exp.chen")
    assert (await client.get(_ecg_url(ecg), headers=chen)).status == 404
    chen_sock = await page_sockets("exp.chen")
    await exp.send(type="room.invite", room_id=room_id, username="exp.chen")
    await chen_sock.expect("room.invited", room_id=room_id)
    await exp.expect("room.invite.sent", room_id=room_id)
    assert (await client.get(_ecg_url(ecg), headers=chen)).status == 200

    # Stored: a rejoining page gets it in the room's log.
    events = await store.rooms.events(room_id)
    assert [e for e in events if e["type"] == "ecg.shared"]
    done = await _audited(store, "room.share")
    assert len(done) == 1 and done[0]["to"] == "exp.zhang"
    assert done[0]["instance"] == ecg.SOPInstanceUID
    refused = await _audited(store, "room.share.refused")
    assert {f["code"] for f in refused} == {"not_found", "invalid_parameter", "forbidden"}
    assert len(refused) == 4  # other clinic, non-ECG, wrong series, expert

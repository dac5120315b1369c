"""An ECG in an MDT room's shared view (issue 11 item 6: "in an MDT, it follows the presenter
like an image") through the real HTTP and WebSocket API: the presenter shows an ECG of a study on
the agenda and the follower gets it (instance, gain, speed, lead zoom) with the image state kept;
a stale version is refused with the current state; an ECG of a study not on the agenda, an image
as an ECG, an unknown instance and bad input are refused (4xx, never an internal error), each
refusal audited; a late joiner is on the current ECG at once; switching back restores the
images."""

from __future__ import annotations

import io
import time

import pydicom
from pydicom.uid import generate_uid

from media.ecg import synthetic
from tests.dicom_factory import ct_dataset, to_bytes
from tests.integration.test_ecg_share import _audited, _stow, accepted_consult
from tests.integration.test_mdt import _json


def _image(ct: pydicom.Dataset, center: float = 40.0) -> dict:
    return {
        "study_uid": ct.StudyInstanceUID, "series_uid": ct.SeriesInstanceUID,
        "sop_instance_uid": ct.SOPInstanceUID, "frame": 1,
        "window": {"center": center, "width": 400.0, "function": "LINEAR"}, "zoom": 1.5,
        "pan": {"x": 0.1, "y": -0.2}, "rotation": 90, "flip_h": False, "flip_v": False,
        "invert": False, "cine": {"playing": False, "fps": 10},
    }


def _ecg(ds: pydicom.Dataset, gain: int = 20, speed: int = 25, lead: str | None = "V2") -> dict:
    return {"study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID,
            "sop_instance_uid": ds.SOPInstanceUID, "gain": gain, "speed": speed, "lead": lead}


def _ecg_ds(patient_id: str, condition: str = "stemi") -> pydicom.Dataset:
    body = synthetic.ecg_bytes(synthetic.Spec(condition, rate=80, seed=5), patient_id=patient_id,
                               patient_name="Sun^Lan")
    return pydicom.dcmread(io.BytesIO(body))



async def _update(presenter, room: str, version: int, state: dict, ref: str) -> int:
    """The presenter's view.update on `version`, accepted: the new version."""
    await presenter.send(type="view.update", room_id=room, base_version=version, state=state,
                         id=ref)
    return (await presenter.expect("view.state", ref=ref))["version"]


async def _refused(presenter, room: str, base_version: int, state: dict, ref: str) -> dict:
    """The presenter's view.update, answered with an error: that error."""
    await presenter.send(type="view.update", room_id=room, base_version=base_version,
                         state=state, id=ref)
    return await presenter.expect("error", ref=ref)

async def test_the_presenter_shows_an_ecg_of_the_agenda_and_every_follower_follows(
        client, auth, page_sockets, store, more_people):
    li, coord = await auth("dr.li"), await auth("coord.liu")
    ct = ct_dataset(study_uid=generate_uid(), patient_id="QS-91", patient_name="Sun^Lan")
    ecg = _ecg_ds("QS-91")
    await _stow(client, li, to_bytes(ct))
    await _stow(client, li, to_bytes(ecg))
    # the same clinic's ECG of another patient, not on this MDT's agenda
    other = _ecg_ds("QS-92", "nsr")
    await _stow(client, li, to_bytes(other))
    proposal = (await _json(await client.post("/api/mdt/proposals", headers=li, json={
        "study_uids": [ct.StudyInstanceUID, ecg.StudyInstanceUID],
        "reason": "Chest pain, ST elevation", "departments": ["radiology"]}), 201))["proposal"]
    mdt = (await _json(await client.post("/api/mdt", headers=coord, json={
        "title": "Chest pain MDT", "starts_at": int(time.time()) + 300, "duration_min": 60,
        "departments": ["radiology"], "experts": ["exp.zhang", "exp.chen"],
        "clinics": ["qingshui"], "cases": [{"proposal_id": proposal["id"]}]}), 201))["mdt"]
    assert mdt["state"] == "open"
    room = mdt["room_id"]

    presenter, follower = await page_sockets("coord.liu"), await page_sockets("exp.zhang")
    for sock in (presenter, follower):
        await sock.send(type="room.join", room_id=room)
        await sock.expect("room.state", room_id=room, timeout=10)
    await presenter.send(type="control.take", room_id=room, id="take")
    version = (await presenter.expect("control.changed", ref="take"))["version"]

    # the images first: the follower follows as ever (a state without the ECG shows images)
    version = await _update(presenter, room, version, _image(ct), "img")
    got = await follower.expect("view.state", room_id=room, version=version)
    assert got["state"]["showing"] == "images" and got["state"]["ecg"] is None

    # refused, before any change: an ECG of a study not on the agenda (403, as a shared mark
    # of another study), the agenda's CT named as an ECG (400), an instance the study does not
    # hold (404), and bad input (invalid_message)
    as_ecg = {**_ecg(ct), "study_uid": ct.StudyInstanceUID}
    unknown = {**_ecg(ecg), "sop_instance_uid": generate_uid()}
    for ref, member, code in (("other", _ecg(other), "forbidden"),
                              ("ct", as_ecg, "invalid_parameter"),
                              ("unknown", unknown, "not_found")):
        err = await _refused(presenter, room, version,
                             {**_image(ct), "showing": "ecg", "ecg": member}, ref)
        assert err["code"] == code, (ref, err)
    for ref, member in (("gain", _ecg(ecg, gain=15)), ("lead", _ecg(ecg, lead="V7")),
                        ("uid", {**_ecg(ecg), "study_uid": "1.02.3"})):
        err = await _refused(presenter, room, version,
                             {**_image(ct), "showing": "ecg", "ecg": member}, ref)
        assert err["code"] == "invalid_message", (ref, err)
    view = await store.room_views.get(room)
    assert view.version == version and view.state["showing"] == "images"
    refused = await _audited(store, "view.ecg.refused")
    assert sorted(f["code"] for f in refused) == ["forbidden", "invalid_parameter", "not_found"]
    assert {f["instance"] for f in refused} >= {other.SOPInstanceUID}

    # the presenter shows the agenda's ECG at 20 mm/mV with lead V2 zoomed: the follower gets
    # exactly that, and the image state beside it unchanged
    shown = {**_image(ct), "showing": "ecg", "ecg": _ecg(ecg)}
    version = await _update(presenter, room, version, shown, "ecg")
    got = await follower.expect("view.state", room_id=room, version=version)
    assert got["presenter"] == "coord.liu"
    assert got["state"] == shown
    # the follower may read what it is shown (the agenda's studies are granted to invitees)
    zhang = await auth("exp.zhang")
    resp = await client.get(f"/dicomweb/studies/{ecg.StudyInstanceUID}/series/"
                            f"{ecg.SeriesInstanceUID}/instances/{ecg.SOPInstanceUID}/ecg",
                            headers=zhang)
    assert resp.status == 200

    # a stale update is refused with the current (ECG) state to rebase on
    err = await _refused(presenter, room, version - 1, {**shown, "ecg": _ecg(ecg, gain=5)},
                         "stale")
    assert err["code"] == "stale_view"
    assert err["details"]["version"] == version and err["details"]["state"] == shown

    # the speed changes and the zoom goes back to all leads
    faster = {**shown, "ecg": _ecg(ecg, speed=50, lead=None)}
    version = await _update(presenter, room, version, faster, "fast")
    assert (await follower.expect("view.state", room_id=room, version=version))["state"] \
        == faster

    # a late joiner is on the current ECG at once
    late = await page_sockets("exp.chen")
    await late.send(type="room.join", room_id=room)
    joined = await late.expect("room.state", room_id=room, timeout=10)
    assert joined["view"]["version"] == version
    assert joined["view"]["presenter"] == "coord.liu"
    assert joined["view"]["state"] == faster

    # back to the images: the image state is the one before the ECG, the ECG kept beside it
    back = {**faster, "showing": "images"}
    version = await _update(presenter, room, version, back, "back")
    for sock in (follower, late):
        got = await sock.expect("view.state", room_id=room, version=version)
        assert got["state"]["showing"] == "images"
        assert {k: got["state"][k] for k in _image(ct)} == _image(ct)
        assert got["state"]["ecg"] == faster["ecg"]

    # a follower cannot put an ECG into the view (only the presenter drives it)
    await follower.send(type="view.update", room_id=room, base_version=version,
                        state=shown, id="not-mine")
    assert (await follower.expect("error", ref="not-mine"))["code"] == "forbidden"
    assert (await store.room_views.get(room)).version == version


async def test_a_consult_room_has_no_shared_ecg_view(client, auth, page_sockets, more_people):
    """view.update (with or without an ECG) stays an MDT room's: a consult call refuses it."""
    li = await auth("dr.li")
    ct = ct_dataset(study_uid=generate_uid())
    ecg = _ecg_ds("QS-93")
    await _stow(client, li, to_bytes(ct))
    await _stow(client, li, to_bytes(ecg))
    doc, exp = await page_sockets("dr.li"), await page_sockets("exp.zhang")
    room = await accepted_consult(doc, exp, ct.StudyInstanceUID)
    await doc.send(type="room.join", room_id=room)
    await doc.expect("room.state", room_id=room)
    await doc.send(type="view.update", room_id=room, base_version=0, id="v",
                   state={**_image(ct), "showing": "ecg", "ecg": _ecg(ecg)})
    assert (await doc.expect("error", ref="v"))["code"] == "forbidden"


async def test_an_ecg_only_agenda_shares_the_ecg_with_no_image_part(
        client, auth, page_sockets, store, more_people):
    """A cardiology MDT whose agenda holds ECGs only: the presenter shares the ECG with no image
    keys at all (there is no image state to keep), the follower and a late joiner get exactly
    that; showing "images" without the image keys, or half an image part, is still refused."""
    li, coord = await auth("dr.li"), await auth("coord.liu")
    ecg = _ecg_ds("QS-95")
    await _stow(client, li, to_bytes(ecg))
    proposal = (await _json(await client.post("/api/mdt/proposals", headers=li, json={
        "study_uids": [ecg.StudyInstanceUID], "reason": "Broad-complex tachycardia",
        "departments": ["radiology"]}), 201))["proposal"]
    mdt = (await _json(await client.post("/api/mdt", headers=coord, json={
        "title": "Cardiology MDT", "starts_at": int(time.time()) + 300, "duration_min": 60,
        "departments": ["radiology"], "experts": ["exp.zhang", "exp.chen"],
        "clinics": ["qingshui"], "cases": [{"proposal_id": proposal["id"]}]}), 201))["mdt"]
    room = mdt["room_id"]
    presenter, follower = await page_sockets("coord.liu"), await page_sockets("exp.zhang")
    for sock in (presenter, follower):
        await sock.send(type="room.join", room_id=room)
        await sock.expect("room.state", room_id=room, timeout=10)
    await presenter.send(type="control.take", room_id=room, id="take")
    version = (await presenter.expect("control.changed", ref="take"))["version"]

    # refused as ever: the images without their keys, half an image part beside the ECG
    for ref, state in (("no-images", {"showing": "images", "ecg": _ecg(ecg)}),
                       ("half", {"showing": "ecg", "ecg": _ecg(ecg), "frame": 1})):
        err = await _refused(presenter, room, version, state, ref)
        assert err["code"] == "invalid_message", (ref, err)
    assert (await store.room_views.get(room)).version == version

    shown = {"showing": "ecg", "ecg": _ecg(ecg, gain=10, lead=None)}
    version = await _update(presenter, room, version, shown, "ecg")
    got = await follower.expect("view.state", room_id=room, version=version)
    assert got["presenter"] == "coord.liu" and got["state"] == shown  # no image keys, not nulls
    assert (await store.room_views.get(room)).state == shown

    # a lead zoomed, then a late joiner is on it at once
    zoomed = {**shown, "ecg": _ecg(ecg, gain=20, lead="II")}
    version = await _update(presenter, room, version, zoomed, "zoom")
    assert (await follower.expect("view.state", room_id=room, version=version))["state"] \
        == zoomed
    late = await page_sockets("exp.chen")
    await late.send(type="room.join", room_id=room)
    joined = await late.expect("room.state", room_id=room, timeout=10)
    assert joined["view"]["version"] == version and joined["view"]["state"] == zoomed
    # the ECG is still checked against the agenda: another patient's ECG is refused
    other = _ecg_ds("QS-96", "nsr")
    await _stow(client, li, to_bytes(other))
    assert (await _refused(presenter, room, version, {"showing": "ecg", "ecg": _ecg(other)},
                           "other"))["code"] == "forbidden"

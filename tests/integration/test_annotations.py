"""Annotations, measurements and key images through the real HTTP API: server-side mm and HU on
the demo phantom against hand/pydicom values, who sees and who removes, bounds, audit."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from server.demo.phantom import cr_monochrome1_phantom, ct_phantom_series
from server.marks import service
from tests.dicom_factory import multipart_related, read_multipart, to_bytes


async def _upload(client, headers, datasets) -> None:
    body, ctype = multipart_related([to_bytes(ds) for ds in datasets])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def ct(client, auth):
    slices = list(ct_phantom_series(slices=2, size=64, patient_id="HZ-MARKS"))
    await _upload(client, await auth("dr.li"), slices)
    return slices[0]


def _url(ds, what: str = "annotations") -> str:
    return f"/api/studies/{ds.StudyInstanceUID}/{what}"


def _body(ds, kind: str, points, **extra) -> dict:
    return {"series_uid": ds.SeriesInstanceUID, "sop_instance_uid": ds.SOPInstanceUID,
            "frame": 1, "kind": kind, "points": points, **extra}


async def _audit_actions(store) -> list[str]:
    return [e.fields["action"] for e in await store.audit.recent(200)]


async def test_length_and_roi_measured_by_the_server(client, auth, ct, store) -> None:
    li = await auth("dr.li")
    spacing = float(ct.PixelSpacing[1])  # column spacing: a horizontal line
    resp = await client.post(_url(ct), json=_body(ct, "length", [[10, 20], [50, 20]]),
                             headers=li)
    assert resp.status == 201, await resp.text()
    line = await resp.json()
    assert line["author"] == "dr.li" and line["kind"] == "length"
    assert line["measurement"]["length_mm"] == pytest.approx(40 * spacing, abs=1e-3)
    assert line["measurement"]["calibrated"] is True
    assert line["measurement"]["spacing_source"] == "PixelSpacing"

    # An ellipse ROI: HU statistics against pydicom's pixel_array with an independent mask.
    resp = await client.post(_url(ct), json=_body(ct, "ellipse", [[16, 20], [48, 44]]),
                             headers=li)
    assert resp.status == 201, await resp.text()
    roi = (await resp.json())["measurement"]
    ref = pydicom.dcmread(io.BytesIO(to_bytes(ct)))
    hu = ref.pixel_array * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    inside = ((xx - 32) / 16) ** 2 + ((yy - 32) / 12) ** 2 <= 1
    assert roi["unit"] == "HU" and roi["count"] == int(inside.sum())
    assert roi["mean"] == pytest.approx(hu[inside].mean(), abs=1e-3)
    assert roi["sd"] == pytest.approx(hu[inside].std(), abs=1e-3)
    assert roi["min"] == hu[inside].min() and roi["max"] == hu[inside].max()
    assert roi["area_mm2"] == pytest.approx(np.pi * 16 * 12 * spacing * spacing, rel=1e-4)

    resp = await client.post(_url(ct), json=_body(ct, "angle", [[10, 10], [20, 10], [20, 30]]),
                             headers=li)
    assert (await resp.json())["measurement"]["angle_deg"] == pytest.approx(90)
    resp = await client.post(_url(ct), json=_body(ct, "text", [[5, 5]], text="病灶 lesion"),
                             headers=li)
    assert resp.status == 201 and (await resp.json())["measurement"] is None

    listed = await client.get(_url(ct), headers=li)
    assert listed.status == 200
    kinds = [a["kind"] for a in (await listed.json())["annotations"]]
    assert kinds == ["length", "ellipse", "angle", "text"]
    one = await client.get(_url(ct), params={"instance": ct.SOPInstanceUID}, headers=li)
    assert len((await one.json())["annotations"]) == 4
    actions = await _audit_actions(store)
    assert "annotations.list" in actions and "annotation.add" in actions


async def test_radiograph_length_is_not_calibrated(client, auth) -> None:
    cr = cr_monochrome1_phantom(rows=128, columns=110, patient_id="HZ-CR")
    li = await auth("dr.li")
    await _upload(client, li, [cr])
    resp = await client.post(_url(cr), json=_body(cr, "length", [[0, 0], [0, 100]]), headers=li)
    m = (await resp.json())["measurement"]
    assert m["spacing_source"] == "ImagerPixelSpacing" and m["calibrated"] is False
    assert m["length_mm"] == pytest.approx(100 * float(cr.ImagerPixelSpacing[0]), abs=1e-3)
    assert "detector" in m["note"]


async def test_who_sees_and_who_removes(client, auth, ct, store) -> None:
    li, wang, zhang = await auth("dr.li"), await auth("dr.wang"), await auth("exp.zhang")
    made = await (await client.post(_url(ct), json=_body(ct, "arrow", [[1, 1], [9, 9]]),
                                     headers=li)).json()
    # Another clinic's doctor and an expert without a grant: no such study.
    for headers in (wang, zhang):
        assert (await client.get(_url(ct), headers=headers)).status == 404
        resp = await client.post(_url(ct), json=_body(ct, "arrow", [[1, 1], [2, 2]]),
                                 headers=headers)
        assert resp.status == 404
    admin = await auth("admin")
    assert (await client.get(_url(ct), headers=admin)).status == 403
    # With a consult grant the expert sees it, adds their own, but cannot remove dr.li's.
    await store.grants.for_consult("c1", "qingshui", ct.StudyInstanceUID, ["exp.zhang"], "dr.li")
    seen = await (await client.get(_url(ct), headers=zhang)).json()
    assert [a["id"] for a in seen["annotations"]] == [made["id"]]
    theirs = await (await client.post(_url(ct), json=_body(ct, "length", [[1, 1], [5, 1]]),
                                      headers=zhang)).json()
    resp = await client.delete(f"{_url(ct)}/{made['id']}", headers=zhang)
    assert resp.status == 403
    assert (await client.delete(f"{_url(ct)}/{theirs['id']}", headers=li)).status == 403
    assert (await client.delete(f"{_url(ct)}/{made['id']}", headers=li)).status == 200
    assert (await client.delete(f"{_url(ct)}/{made['id']}", headers=li)).status == 404
    left = await (await client.get(_url(ct), headers=li)).json()
    assert [a["id"] for a in left["annotations"]] == [theirs["id"]]
    assert "annotation.remove" in await _audit_actions(store)
    assert (await client.delete(f"{_url(ct)}/not-an-id", headers=li)).status == 404


@pytest.mark.parametrize("body, status", [
    ({"kind": "length", "points": [[1, 1]]}, 400),
    ({"kind": "polygon", "points": [[i % 60, i // 60] for i in range(300)]}, 400),
    ({"kind": "polygon", "points": [[1, 1], [2, 2], [3, 3]]}, 400),  # no area
    ({"kind": "length", "points": [[1, 1], [65, 1]]}, 400),  # outside the 64x64 image
    ({"kind": "text", "points": [[1, 1]], "text": ""}, 400),
    ({"kind": "text", "points": [[1, 1]], "text": "x" * 501}, 400),
    ({"kind": "circle", "points": [[1, 1], [2, 2]]}, 400),
    ({"kind": "length", "points": [[1, 1], [2, 2]], "frame": 2}, 404),
    ({"kind": "length", "points": [[1, 1], [2, 2]], "room_id": "nosuchroom"}, 404),
    ({"kind": "length", "points": [[1, 1], [2, 2]], "extra": 1}, 400),
])
async def test_bad_annotations_are_4xx(client, auth, ct, body, status) -> None:
    resp = await client.post(_url(ct), json={**_body(ct, "length", []), **body},
                             headers=await auth("dr.li"))
    assert resp.status == status, await resp.text()
    assert "error" in await resp.json()


async def test_per_image_cap(client, auth, ct, monkeypatch) -> None:
    monkeypatch.setattr(service, "ANNOTATIONS_PER_IMAGE", 3)
    li = await auth("dr.li")
    for _ in range(3):
        resp = await client.post(_url(ct), json=_body(ct, "arrow", [[1, 1], [2, 2]]), headers=li)
        assert resp.status == 201
    resp = await client.post(_url(ct), json=_body(ct, "arrow", [[1, 1], [2, 2]]), headers=li)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "too_many_marks"


async def test_key_images(client, auth, ct, store) -> None:
    li, zhang = await auth("dr.li"), await auth("exp.zhang")
    body = {"series_uid": ct.SeriesInstanceUID, "sop_instance_uid": ct.SOPInstanceUID,
            "frame": 1, "window": {"center": 40, "width": 400, "function": "LINEAR"}}
    first = await client.post(_url(ct, "key-images"), json=body, headers=li)
    assert first.status == 201, await first.text()
    key = await first.json()
    assert key["by"] == "dr.li" and key["window"]["width"] == 400
    again = await client.post(_url(ct, "key-images"), json=body, headers=li)
    assert again.status == 200 and (await again.json())["id"] == key["id"]
    listed = await (await client.get(_url(ct, "key-images"), headers=li)).json()
    assert [k["id"] for k in listed["key_images"]] == [key["id"]]
    assert (await client.get(_url(ct, "key-images"), headers=zhang)).status == 404
    await store.grants.for_consult("c1", "qingshui", ct.StudyInstanceUID, ["exp.zhang"], "dr.li")
    assert (await client.delete(f"{_url(ct, 'key-images')}/{key['id']}",
                                headers=zhang)).status == 403
    assert (await client.delete(f"{_url(ct, 'key-images')}/{key['id']}",
                                headers=li)).status == 200
    assert (await (await client.get(_url(ct, "key-images"), headers=li)).json()) == {
        "key_images": []}
    bad = await client.post(_url(ct, "key-images"), json={**body, "frame": 5}, headers=li)
    assert bad.status == 404


async def _retrieve(client, headers, study: str, series: str, sop: str) -> pydicom.Dataset:
    resp = await client.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
                            headers={**headers, "Accept": "multipart/related; "
                                     "type=\"application/dicom\""})
    assert resp.status == 200, await resp.text()
    parts = await read_multipart(resp)
    return pydicom.dcmread(io.BytesIO(parts[0][1]))


async def test_measurement_report_and_kos_stored_into_the_study(client, auth, ct, store) -> None:
    li = await auth("dr.li")
    empty = await client.post(_url(ct, "measurement-report"), json={}, headers=li)
    assert empty.status == 409 and (await empty.json())["error"]["code"] == "nothing_to_export"
    line = await (await client.post(_url(ct), json=_body(ct, "length", [[10, 20], [50, 20]]),
                                    headers=li)).json()
    await client.post(_url(ct), json=_body(ct, "ellipse", [[16, 20], [48, 44]], text="结节"),
                      headers=li)
    resp = await client.post(_url(ct, "measurement-report"), json={}, headers=li)
    assert resp.status == 201, await resp.text()
    exported = await resp.json()
    assert exported["count"] == 2
    # QIDO lists the SR series in the study, WADO serves it.
    series = await (await client.get(f"/dicomweb/studies/{ct.StudyInstanceUID}/series",
                                     headers=li)).json()
    assert "SR" in [s["00080060"]["Value"][0] for s in series]
    sr = await _retrieve(client, li, ct.StudyInstanceUID, exported["series_uid"],
                         exported["sop_instance_uid"])
    assert sr.Modality == "SR" and sr.PatientID == ct.PatientID
    container = next(c for c in sr.ContentSequence
                     if c.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurements")
    groups = list(container.ContentSequence)
    ids = [next(i.TextValue for i in g.ContentSequence if i.ValueType == "TEXT") for g in groups]
    assert ids == ["Cornerstone3DTools@^0.1.0:Length", "Cornerstone3DTools@^0.1.0:EllipticalROI"]
    num = next(i for i in groups[0].ContentSequence if i.ValueType == "NUM")
    assert float(num.MeasuredValueSequence[0].NumericValue) == pytest.approx(
        line["measurement"]["length_mm"], abs=1e-3)
    assert "measurement_report.export" in await _audit_actions(store)

    # Key images as KOS, read back by pydicom from WADO.
    body = {"series_uid": ct.SeriesInstanceUID, "sop_instance_uid": ct.SOPInstanceUID}
    assert (await client.post(_url(ct, "key-images"), json=body, headers=li)).status == 201
    resp = await client.post(_url(ct, "key-object-selection"), json={"description": "MDT"},
                             headers=li)
    assert resp.status == 201, await resp.text()
    kos_ref = await resp.json()
    kos = await _retrieve(client, li, ct.StudyInstanceUID, kos_ref["series_uid"],
                          kos_ref["sop_instance_uid"])
    assert kos.Modality == "KO"
    images = [c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
              for c in kos.ContentSequence if c.ValueType == "IMAGE"]
    assert images == [ct.SOPInstanceUID]
    # Another clinic cannot export (or see) this study.
    wang = await auth("dr.wang")
    assert (await client.post(_url(ct, "key-object-selection"), json={},
                              headers=wang)).status == 404


@pytest.fixture
async def mdt_room(client, auth, ct, store, more_people):
    """A live MDT on the phantom study (Qingshui) with exp.zhang invited; the room open."""
    import time

    from server.realtime.room_policy import MDT_MAX_PARTICIPANTS
    from server.store.mdt import MdtCase, MdtSession

    now = int(time.time())
    await store.mdt.create(MdtSession(
        id="mk1", title="Tumour board", coordinator="coord.liu", state="live",
        starts_at=now - 60, duration_min=60, departments=["radiology"],
        experts=["exp.zhang", "exp.li"], clinics=["qingshui"],
        cases=[MdtCase("case1", "qingshui", "Demo", "HZ-MARKS", [ct.StudyInstanceUID])],
        room_id="mdt-mk1"))
    for user in ("exp.zhang", "exp.li", "coord.liu"):
        await store.grants.grant(user, "qingshui", ct.StudyInstanceUID, kind="mdt", ref="mk1",
                                 ttl_s=3600)
    await store.rooms.create(kind="mdt", ref="mk1", room_id="mdt-mk1",
                             max_participants=MDT_MAX_PARTICIPANTS)
    return "mdt-mk1"


async def _in_room(page_sockets, user: str, room: str):
    sock = await page_sockets(user)
    await sock.send(type="room.join", room_id=room)
    await sock.expect("room.state", timeout=15)
    return sock


async def _event(sock, kind: str) -> dict:
    while True:
        msg = await sock.expect("room.event", timeout=10)
        if msg["event"]["type"] == kind:
            return msg["event"]


async def test_marks_in_an_mdt_room_reach_every_participant(
        client, auth, ct, store, mdt_room, page_sockets) -> None:
    zhang_ws = await _in_room(page_sockets, "exp.zhang", mdt_room)
    li_ws = await _in_room(page_sockets, "dr.li", mdt_room)
    zhang = await auth("exp.zhang")
    resp = await client.post(_url(ct), json=_body(ct, "length", [[10, 20], [50, 20]],
                                                  room_id=mdt_room), headers=zhang)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    for sock in (zhang_ws, li_ws):
        ev = await _event(sock, "annotation.added")
        assert ev["annotation"]["id"] == made["id"]
        assert ev["annotation"]["measurement"]["length_mm"] == made["measurement"]["length_mm"]

    # Key images of an MDT room: the presenter (or the coordinator) marks them.
    body = {"series_uid": ct.SeriesInstanceUID, "sop_instance_uid": ct.SOPInstanceUID,
            "room_id": mdt_room, "case_id": "case1"}
    refused = await client.post(_url(ct, "key-images"), json=body, headers=zhang)
    assert refused.status == 403
    await zhang_ws.send(type="control.take", room_id=mdt_room, id="t")
    await zhang_ws.expect("control.changed", ref="t")
    resp = await client.post(_url(ct, "key-images"), json=body, headers=zhang)
    assert resp.status == 201, await resp.text()
    key = await resp.json()
    ev = await _event(li_ws, "key_image.added")
    assert ev["key_image"]["id"] == key["id"] and ev["key_image"]["case_id"] == "case1"
    assert [k.id for k in await store.key_images.list(mdt_room)] == [key["id"]]

    # Undo reaches the room; the room's minutes (its log) keep both events.
    assert (await client.delete(f"{_url(ct)}/{made['id']}", headers=zhang)).status == 200
    ev = await _event(li_ws, "annotation.removed")
    assert ev["annotation_id"] == made["id"]
    assert (await client.delete(f"{_url(ct, 'key-images')}/{key['id']}",
                                headers=zhang)).status == 200
    assert (await _event(li_ws, "key_image.removed"))["key_image_id"] == key["id"]
    assert await store.key_images.list(mdt_room) == []

    # A study that is not the room's is never shared into it; nor by a non-participant.
    other = next(iter(ct_phantom_series(slices=1, size=32, patient_id="HZ-OTHER", seed=3)))
    li = await auth("dr.li")
    await _upload(client, li, [other])
    resp = await client.post(_url(other), json=_body(other, "arrow", [[1, 1], [5, 5]],
                                                     room_id=mdt_room), headers=li)
    assert resp.status == 403
    exp_li = await auth("exp.li")  # invited, granted, but not in the room
    resp = await client.post(_url(ct), json=_body(ct, "arrow", [[1, 1], [5, 5]],
                                                  room_id=mdt_room), headers=exp_li)
    assert resp.status == 404

"""A slice at a window is rendered once for the whole room: the presenter's view change puts
it (and the next slices in the scroll direction) into the shared image cache, so the
followers' rendered fetches are cache hits."""

from __future__ import annotations

import asyncio

from pydicom.uid import generate_uid

from server import appkeys
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes

ROOM = "mdt-pf1"


def _state(study, series, sop, center=40):
    return {"study_uid": study, "series_uid": series, "sop_instance_uid": sop, "frame": 1,
            "window": {"center": center, "width": 400, "function": "LINEAR"}, "zoom": 1.0,
            "pan": {"x": 0.0, "y": 0.0}, "rotation": 0, "flip_h": False, "flip_v": False,
            "invert": False, "cine": {"playing": False, "fps": 10}}


async def _until(predicate, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_the_presenters_slice_and_the_next_ones_are_rendered_ahead(
        client, auth, store, page_sockets):
    study, series = generate_uid(), generate_uid()
    slices = [ct_dataset(study_uid=study, series_uid=series, z=float(i), instance_number=i + 1,
                         seed=i) for i in range(5)]
    doctor = await auth("dr.li")
    body, ctype = multipart_related([to_bytes(ds) for ds in slices])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**doctor, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    room = await store.rooms.create(kind="mdt", ref="pf1", room_id=ROOM, max_participants=12)
    await store.rooms.invite(room.id, "dr.li")
    sock = await page_sockets("dr.li")  # the clinic's doctor presents their own study
    await sock.send(type="room.join", room_id=ROOM)
    await sock.expect("room.state", timeout=15)
    await sock.send(type="control.take", room_id=ROOM, id="t")
    version = (await sock.expect("control.changed", ref="t"))["version"]
    stack = [r.sop_uid for r in await store.studies.instances("qingshui", study, series)]
    renderer = client.app[appkeys.RENDERER]
    for i in (0, 1):  # a scroll step at one window: the next two slices are rendered ahead
        await sock.send(type="view.update", room_id=ROOM, base_version=version + i,
                        state=_state(study, series, stack[i]), id=f"u{i}")
        await sock.expect("view.state", ref=f"u{i}")
    await _until(lambda: renderer.stats()["renders"] >= 4 and not renderer.stats()["inflight"])
    renders = renderer.stats()["renders"]
    assert renders == 4  # slices 0..3 at 40/400, each once
    for sop in stack[:4]:
        resp = await client.get(
            f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1/rendered",
            params={"window": "40,400,LINEAR"}, headers=doctor)
        assert resp.status == 200
        await resp.read()
    assert renderer.stats()["renders"] == renders  # all four were cache hits

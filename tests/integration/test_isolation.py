"""A clinic never sees another clinic's patients; admins see none; every read is audited."""

from __future__ import annotations

import asyncio

import pytest
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


@pytest.fixture
async def li_study(client, auth):
    ds = ct_dataset(study_uid=generate_uid())
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**(await auth("dr.li")), "Content-Type": ctype})
    assert resp.status == 200
    return ds


def _urls(ds):
    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = f"{series}/instances/{ds.SOPInstanceUID}"
    return [
        study, f"{study}/series", f"{study}/instances", f"{study}/metadata", f"{study}/thumbnail",
        series, f"{series}/instances", f"{series}/metadata", f"{series}/thumbnail",
        instance, f"{instance}/metadata", f"{instance}/rendered", f"{instance}/frames/1",
        f"{instance}/frames/1/rendered", f"{instance}/thumbnail", f"{instance}/bulkdata/7FE00010",
    ]


async def test_other_clinic_gets_404_everywhere(client, auth, li_study):
    h = await auth("dr.wang")
    listing = await client.get("/dicomweb/studies", headers=h)
    assert await listing.json() == []
    for url in _urls(li_study):
        resp = await client.get(url, headers=h)
        assert resp.status == 404, url
        assert (await resp.json())["error"]["code"] == "not_found"


async def grant(store, username, ds, clinic="qingshui"):
    await store.grants.grant(username, clinic, ds.StudyInstanceUID, kind="consult", ref="c1",
                             ttl_s=600)


async def test_own_clinic_and_granted_expert_and_coordinator_can_read(client, auth, li_study,
                                                                      store):
    for user in ("exp.zhang", "coord.liu"):
        await grant(store, user, li_study)
    for user in ("dr.li", "exp.zhang", "coord.liu"):
        h = await auth(user)
        for url in _urls(li_study):
            resp = await client.get(url, headers=h)
            assert resp.status == 200, (user, url, await resp.text())


async def test_admin_sees_no_patient_data(client, auth, li_study):
    h = await auth("admin")
    assert (await client.get("/dicomweb/studies", headers=h)).status == 403
    for url in _urls(li_study)[:3]:
        assert (await client.get(url, headers=h)).status == 403


async def test_every_read_is_audited(client, auth, li_study, store):
    await grant(store, "exp.zhang", li_study)
    h = await auth("exp.zhang")
    before = len(await store.audit.recent(1000))
    urls = _urls(li_study)
    for url in urls:
        assert (await client.get(url, headers=h)).status == 200
    # Frame views are flushed by the app within ~20 ms (write-behind); wait for them.
    for _ in range(100):
        events = (await store.audit.recent(1000))
        events = events[: len(events) - before]
        if len(events) >= len(urls):
            break
        await asyncio.sleep(0.02)
    assert len(events) == len(urls)
    for ev in events:
        f = ev.fields
        assert f["user"] == "exp.zhang" and f["role"] == "expert"
        assert f["remote"] and float(f["ts"]) > 0 and f["action"]
        assert f["via"] == "consult" and f["grant"] == "c1" and f["study_clinic"] == "qingshui"
        assert "break_glass" not in f
    actions = {ev.fields["action"] for ev in events}
    assert {"wado.rendered", "wado.metadata", "wado.frames", "wado.retrieve",
            "qido.series", "qido.instances", "wado.thumbnail", "wado.bulkdata"} <= actions
    rendered = next(ev for ev in events if ev.fields["action"] == "wado.rendered")
    assert rendered.fields["instance"] == li_study.SOPInstanceUID


async def test_denied_reads_are_not_served_and_other_users_unaffected(client, auth, li_study):
    wang, li = await auth("dr.wang"), await auth("dr.li")
    url = _urls(li_study)[-3]
    assert (await client.get(url, headers=wang)).status == 404
    assert (await client.get(url, headers=li)).status == 200


async def test_frame_views_are_refused_when_the_audit_log_is_unreachable(
        aiohttp_client, settings, li_study, tests_free_port):
    """A server whose Redis is gone keeps queueing frame views only up to a bound, then
    refuses them (503) rather than serving patient data it cannot audit."""
    from server.app import create_app
    from server.store import Store
    from server.store import audit as audit_module
    from tests.integration.conftest import login

    app_store = Store.from_url(settings.redis_url)
    client = await aiohttp_client(create_app(settings, app_store))
    h = await login(client, "dr.li")
    url = _urls(li_study)[-3]
    assert (await client.get(url, headers=h)).status == 200
    # Point the app's audit log at a dead Redis and shrink the bound for the test.
    app_store.audit._r = Store.from_url(f"redis://127.0.0.1:{tests_free_port}/0").redis
    old = audit_module.MAX_PENDING
    audit_module.MAX_PENDING = 5
    try:
        statuses = [(await client.get(url, headers=h)).status for _ in range(8)]
    finally:
        audit_module.MAX_PENDING = old
    assert statuses[0] == 200
    assert statuses[-1] == 503, statuses

"""The audit trail for people through the real HTTP API and the CLI: the auditor role (sees the
audit, nothing clinical), filters by user, patient, clinic, action, time and break-glass, paging
by stream id, CSV export (HTTP and `huizhen audit search --csv`), and no way to delete."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time

import pytest
from pydicom.uid import generate_uid

from server.store.directory import Role
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes


@pytest.fixture
async def auditor(store, more_people, password_hash):
    await store.directory.add_user("audit.zhou", role=Role.AUDITOR, password_hash=password_hash)


async def _upload(client, headers, ds) -> None:
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**headers, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()


@pytest.fixture
async def trail(client, auth, auditor):
    """Some history: dr.li uploads and reads, exp.zhang breaks the glass on it, dr.wang reads
    his own study."""
    li, zhang, wang = await auth("dr.li"), await auth("exp.zhang"), await auth("dr.wang")
    li_ds = ct_dataset(study_uid=generate_uid(), patient_id="QS-77")
    await _upload(client, li, li_ds)
    await client.get(f"/dicomweb/studies/{li_ds.StudyInstanceUID}/metadata", headers=li)
    resp = await client.post(f"/api/studies/{li_ds.StudyInstanceUID}/break-glass", headers=zhang,
                             json={"reason": "unconscious patient, no consult possible"})
    assert resp.status == 200, await resp.text()
    await client.get(f"/dicomweb/studies/{li_ds.StudyInstanceUID}/metadata", headers=zhang)
    wang_ds = ct_dataset(study_uid=generate_uid(), patient_id="HT-5")
    await _upload(client, wang, wang_ds)
    await client.get(f"/dicomweb/studies/{wang_ds.StudyInstanceUID}/metadata", headers=wang)
    return li_ds, wang_ds


async def _search(client, headers, **params) -> dict:
    resp = await client.get("/api/audit", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_only_auditors_read_the_audit_and_auditors_read_no_patient_data(
        client, auth, trail) -> None:
    li_ds, _ = trail
    for user in ("dr.li", "exp.zhang", "coord.liu", "admin"):
        h = await auth(user)
        assert (await client.get("/api/audit", headers=h)).status == 403
        assert (await client.get("/api/audit.csv", headers=h)).status == 403
    aud = await auth("audit.zhou")
    assert (await client.get("/api/audit", headers=aud)).status == 200
    # an auditor opens no images, lists no studies, edits nothing, breaks no glass
    assert (await client.get("/dicomweb/studies", headers=aud)).status == 403
    assert (await client.get(f"/dicomweb/studies/{li_ds.StudyInstanceUID}/metadata",
                             headers=aud)).status == 403
    assert (await client.post(f"/api/studies/{li_ds.StudyInstanceUID}/break-glass",
                              headers=aud, json={"reason": "just looking"})).status == 403
    assert (await client.get("/api/referrals", headers=aud)).status == 403
    assert (await client.get("/api/admin/users", headers=aud)).status == 403
    assert (await client.get("/api/consults", headers=aud)).status == 403
    # the application has no way to delete or trim the trail
    for method in ("DELETE", "POST", "PUT"):
        resp = await client.request(method, "/api/audit", headers=aud)
        assert resp.status == 405


async def test_filters(client, auth, trail) -> None:
    li_ds, _ = trail
    aud = await auth("audit.zhou")
    by_user = await _search(client, aud, user="exp.zhang")
    assert by_user["events"] and {e["user"] for e in by_user["events"]} == {"exp.zhang"}
    glass = await _search(client, aud, break_glass="1")
    assert glass["events"] and all(e["break_glass"] for e in glass["events"])
    assert {e["action"] for e in glass["events"]} == {"break_glass.grant", "wado.metadata"}
    assert all(e["details"]["reason"].startswith("unconscious") for e in glass["events"])
    actions = await _search(client, aud, action="break_glass.*")
    assert [e["action"] for e in actions["events"]] == ["break_glass.grant"]
    patient = await _search(client, aud, patient="QS-77")
    studies = {e["details"].get("study") or e["details"].get("studies")
               for e in patient["events"]}
    assert studies == {li_ds.StudyInstanceUID}
    assert "stow.store" in {e["action"] for e in patient["events"]}
    assert {e["user"] for e in patient["events"]} >= {"dr.li", "exp.zhang"}
    hetang = await _search(client, aud, clinic="hetang")
    assert hetang["events"] and {e["user"] for e in hetang["events"]} == {"dr.wang"}
    assert (await _search(client, aud, since="-1h"))["events"]
    assert (await _search(client, aud, until="-1h"))["events"] == []
    future = await _search(client, aud, since=str(int(time.time()) + 3600))
    assert future["events"] == [] and future["next"] is None
    for bad in ({"since": "yesterday"}, {"action": "a b"}, {"limit": "0"},
                {"limit": "501"}, {"before": "x"}, {"break_glass": "2"}):
        assert (await client.get("/api/audit", params=bad, headers=aud)).status == 400, bad


async def test_paging_by_stream_id_sees_every_event_once(client, auth, trail, store) -> None:
    aud = await auth("audit.zhou")
    everything = await _search(client, aud, limit="500")
    assert everything["next"] is None
    ids, before = [], None
    while True:
        params = {"limit": "3", **({"before": before} if before else {})}
        page = await _search(client, aud, **params)
        assert len(page["events"]) <= 3
        ids += [e["id"] for e in page["events"] if e["action"] != "audit.search"]
        if page["next"] is None:
            break
        before = page["next"]
    # newest first, no gap, no repeat (the searches themselves are audited meanwhile: left out)
    assert ids == [e["id"] for e in everything["events"] if e["action"] != "audit.search"]
    assert len(ids) == len(set(ids)) > 5
    searches = (await _search(client, aud, action="audit.search"))["events"]
    assert searches and searches[0]["user"] == "audit.zhou"


async def test_a_search_is_bounded(client, auth, auditor, store, monkeypatch) -> None:
    from server.store import audit as audit_store

    monkeypatch.setattr(audit_store, "MAX_SCAN", 50)
    for i in range(120):
        await store.audit.record(action="probe", user=f"u{i}", role="doctor", clinic=None,
                                 remote=None)
    aud = await auth("audit.zhou")
    page = await _search(client, aud, user="nobody")
    assert page["events"] == [] and page["scanned"] == 50 and page["next"]
    rest = await _search(client, aud, user="nobody", before=page["next"])
    assert rest["scanned"] <= 50


async def test_csv_export_over_http(client, auth, trail) -> None:
    aud = await auth("audit.zhou")
    resp = await client.get("/api/audit.csv", params={"break_glass": "1"}, headers=aud)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows and all(r["break_glass"] == "1" and r["user"] == "exp.zhang" for r in rows)


def _huizhen(env, *args):
    return subprocess.run([sys.executable, "-m", "server", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(360)  # three `huizhen` processes: slow to start on a loaded 2-core machine
async def test_cli_search_and_csv(client, auth, trail, tmp_path, settings, store) -> None:
    li_ds, _ = trail
    await store.audit.flush()
    env = {**os.environ, "HUIZHEN_REDIS_URL": settings.redis_url,
           "HUIZHEN_DATA_DIR": str(settings.data_dir), "HUIZHEN_SECRET_KEY": "k" * 40}
    r = _huizhen(env, "audit", "search", "--patient", "QS-77", "--action", "wado.*")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines and all(" wado." in x for x in lines)
    assert any("BREAK-GLASS" in x and "exp.zhang" in x for x in lines)
    out = tmp_path / "glass.csv"
    r = _huizhen(env, "audit", "search", "--break-glass", "--since", "1h", "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {row["user"] for row in rows} == {"exp.zhang"}
    assert {row["study"] for row in rows} == {li_ds.StudyInstanceUID}
    r = _huizhen(env, "audit", "search", "--since", "never")
    assert r.returncode == 2 and "since" in r.stderr
    # the export itself is in the trail
    last = [e.fields for e in await store.audit.recent(5) if e.fields["action"] == "audit.export"]
    assert last and last[0]["user"].startswith("cli:")


async def test_the_redis_prefilter_agrees_with_the_matcher(store) -> None:
    """Searches sift in Redis (Lua) before the Python matcher: for random events and queries
    the pages hold exactly what the matcher alone selects, newest first."""
    import random

    from server import audit_search as search

    rnd = random.Random(7)
    users, clinics = ["dr.li", "dr.wang", "exp.zhang"], ["qingshui", "hetang", ""]
    actions = ["wado.rendered", "wado.metadata", "qido.studies", "referral.accept", "auth.login"]
    for i in range(400):
        fields = {"study": f"1.2.{rnd.randrange(6)}", "patient_id": rnd.choice(["P1", "P2", ""]),
                  rnd.choice(["study_clinic", "device_clinic", "referral_clinic"]):
                      rnd.choice(clinics)}
        if rnd.random() < 0.1:
            fields.update(break_glass="1", break_glass_studies=f"hetang/1.2.{i % 6}")
        await store.audit.record(action=rnd.choice(actions), user=rnd.choice(users),
                                 role="doctor", clinic=rnd.choice(clinics), remote="x",
                                 **{k: v for k, v in fields.items() if v})
    everything = [e for e in await store.audit.since("0", count=1000)][::-1]
    for _ in range(60):
        q = search.AuditQuery(
            user=rnd.choice(["", *users]), clinic=rnd.choice(["", "qingshui", "hetang"]),
            patient=rnd.choice(["", "P1", "P9"]),
            actions=tuple(rnd.sample(["wado.*", "qido.studies", "referral.*", "auth.login"],
                                     rnd.randrange(3))),
            break_glass=rnd.random() < 0.3,
            patient_studies=frozenset(rnd.sample(["1.2.0", "1.2.1", "1.2.4"], rnd.randrange(3))))
        expected = [e.id for e in everything if q.matches(e.fields)]
        got, before = [], None
        while True:
            page = await search.search(store, q, before=before, limit=7)
            got += [e.id for e in page.events]
            if page.next is None:
                break
            before = page.next
        assert got == expected, q

"""Report drafts autosaved from many pages through two server nodes (two applications on one
Redis and one data directory, as two `huizhen serve` processes): each save names the revision
it is based on, is stored only if that is still the current one (Lua compare-and-set), and a
stale one gets 409 with the current revision. Every accepted save has its own revision, none is
lost, and the draft in Redis and in its fsync'd file is the one with the highest."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
from pydicom.uid import generate_uid

from server.app import create_app
from server.clinical import report_files
from server.clinical.report_model import Version
from server.store import Store
from tests.dicom_factory import ct_bytes
from tests.integration.conftest import login

WRITERS = 24


async def _json(resp, status: int = 200) -> dict:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _open_report(client, auth) -> str:
    doctor, zhang = await auth("dr.li"), await auth("exp.zhang")
    study_uid = generate_uid()
    form = aiohttp.FormData()
    form.add_field("files", ct_bytes(study_uid=study_uid), filename="a.dcm",
                   content_type="application/dicom")
    assert (await client.post("/api/uploads", data=form, headers=doctor)).status == 200
    item = (await _json(await client.post("/api/worklist", headers=doctor, json={
        "study_uid": study_uid, "question": "Nodule?", "priority": "routine",
        "department": "radiology"}), 201))["item"]
    await _json(await client.post(f"/api/worklist/{item['id']}/claim", headers=zhang))
    report = await _json(await client.post("/api/reports", headers=zhang, json={
        "kind": "reading", "reading_request_id": item["id"]}))
    assert report["draft"]["revision"] == 0
    return report["id"]


async def test_concurrent_autosaves_through_two_nodes_lose_nothing(
        aiohttp_client, client, auth, settings):
    other = await aiohttp_client(create_app(settings, Store.from_url(settings.redis_url)))
    nodes = [client, other]
    rid = await _open_report(client, auth)
    headers = [await auth("exp.zhang"), await login(other, "exp.zhang")]
    accepted: dict[int, int] = {}  # revision -> writer
    stale_answers: list[int] = []

    async def writer(i: int) -> None:
        """A page that autosaves once: on 409 it takes the revision the answer names (the
        editor merges onto that draft) and tries again."""
        node = i % 2
        revision = 0
        while True:
            await asyncio.sleep(random.random() * 0.02)
            resp = await nodes[node].put(f"/api/reports/{rid}/draft", headers=headers[node],
                                         json={"revision": revision, "content": {
                                             "findings": f"writer {i}", "impression": "x"}})
            body = await resp.json()
            if resp.status == 409:
                assert body["error"]["code"] == "draft_stale", body
                current = body["error"]["details"]["revision"]
                assert current > revision  # the answer carries a newer current revision
                stale_answers.append(current)
                revision = current
                node = 1 - node  # the next try may land on the other node
                continue
            assert resp.status == 200, body
            assert body["revision"] == revision + 1
            assert body["revision"] not in accepted, "two saves accepted at one revision"
            accepted[body["revision"]] = i
            return

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    # Every writer was accepted exactly once, at revisions 1..N: none silently overwritten.
    assert sorted(accepted) == list(range(1, WRITERS + 1))
    assert sorted(accepted.values()) == list(range(WRITERS))
    assert stale_answers, "no save ever raced another"
    last = accepted[WRITERS]
    for node, h in zip(nodes, headers, strict=True):
        report = await _json(await node.get(f"/api/reports/{rid}", headers=h))
        assert report["draft"]["revision"] == WRITERS
        assert report["draft"]["content"]["findings"] == f"writer {last}"
    # The fsync'd file, written by either node in whatever order they got there, holds the
    # newest too (an older save arriving late does not put it back).
    path = next((settings.data_dir / "dicom").glob(f"*/*/reports/{rid}/draft.json"))
    on_disk = json.loads(path.read_text())
    assert on_disk["revision"] == WRITERS and on_disk["content"]["findings"] == f"writer {last}"
    # A late write of an older revision is refused by the file itself.
    older = Version.from_json({**on_disk, "revision": WRITERS - 3,
                               "content": {**on_disk["content"], "findings": "late"}})
    assert not report_files.write_draft(settings.data_dir / "dicom", older)
    assert json.loads(path.read_text())["content"]["findings"] == f"writer {last}"

    # A save based on anything but the current revision is refused, and changes nothing.
    resp = await client.put(f"/api/reports/{rid}/draft", headers=headers[0],
                            json={"revision": WRITERS - 1, "content": {"findings": "stale"}})
    assert resp.status == 409
    assert (await resp.json())["error"]["details"]["revision"] == WRITERS
    report = await _json(await other.get(f"/api/reports/{rid}", headers=headers[1]))
    assert report["draft"]["content"]["findings"] == f"writer {last}"

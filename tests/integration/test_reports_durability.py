"""Signed reports are clinical records: every acknowledged signature survives `kill -9` of a
real `huizhen serve` while signatures are in flight, and the loss of its Redis index (what an
AOF `everysec` Redis can lose in a crash, or a wiped Redis): `huizhen reindex` brings every
version back from the fsync'd files, signatures intact."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess, run_reindex, short_data_dir
from tests.integration.ws_client import PageSocket

pytestmark = pytest.mark.timeout(300)
CONSULTS = 6


@pytest.fixture
def data_dir():
    path = short_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _redis_url(data_dir: Path) -> str:
    return f"unix://{data_dir / 'redis' / 'redis.sock'}"


async def _people(data_dir: Path, password_hash: str) -> None:
    store = Store.from_url(_redis_url(data_dir))
    try:
        await store.directory.add_clinic("Qingshui Township", "qingshui")
        await store.directory.add_department("Radiology", "radiology")
        await store.directory.add_user("dr.li", role=Role.DOCTOR, password_hash=password_hash,
                                       clinic="qingshui")
        await store.directory.add_user("exp.zhang", role=Role.EXPERT,
                                       password_hash=password_hash, department="radiology")
    finally:
        await store.close()


async def _login(session: aiohttp.ClientSession, url: str, user: str) -> dict[str, str]:
    async with session.post(f"{url}api/auth/login",
                            json={"username": user, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def _socket(session: aiohttp.ClientSession, url: str, headers: dict) -> PageSocket:
    sock = PageSocket(await session.ws_connect(f"{url}api/ws"))
    await sock.send(type="auth", token=headers["Authorization"].split()[1])
    await sock.expect("ready", timeout=20)
    return sock


async def _drafts(session, url, doctor_h, expert_h) -> list[str]:
    """CONSULTS accepted consults, each with an opinion draft saved (revision 1)."""
    doctor, expert = await _socket(session, url, doctor_h), await _socket(session, url, expert_h)
    ids = []
    for i in range(CONSULTS):
        await doctor.send(type="consult.start", department="radiology", question=f"Q{i}",
                          patient_name=f"病人{i}", patient_id=f"QS-{i}")
        consult = (await doctor.expect("consult.created", timeout=20))["consult"]
        await expert.send(type="consult.accept", consult_id=consult["id"])
        await expert.expect("consult.accepted", timeout=20)
        async with session.post(f"{url}api/reports", headers=expert_h, json={
                "kind": "opinion", "consult_id": consult["id"]}) as resp:
            assert resp.status == 200, await resp.text()
            rid = (await resp.json())["id"]
        async with session.put(f"{url}api/reports/{rid}/draft", headers=expert_h, json={
                "revision": 0, "content": {"advice": f"意见 {i}", "findings": "所见"}}) as resp:
            assert resp.status == 200, await resp.text()
        ids.append(rid)
    await doctor.close()
    await expert.close()
    return ids


async def test_acknowledged_signatures_survive_kill9_and_a_lost_index(data_dir, password_hash):
    port = free_port()
    env = ServeProcess.environment(data_dir, port)
    first = ServeProcess(data_dir, port, env)
    url = first.start()
    await _people(data_dir, password_hash)
    acknowledged: dict[str, dict] = {}
    async with aiohttp.ClientSession() as session:
        doctor_h, expert_h = await _login(session, url, "dr.li"), await _login(
            session, url, "exp.zhang")
        ids = await _drafts(session, url, doctor_h, expert_h)

        async def sign(rid: str) -> None:
            try:
                async with session.post(f"{url}api/reports/{rid}/sign", headers=expert_h,
                                        json={"revision": 1}) as resp:
                    if resp.status == 200:
                        acknowledged[rid] = await resp.json()
                    else:
                        assert resp.status < 500, await resp.text()
            except (TimeoutError, aiohttp.ClientError):
                pass  # cut by the kill: not acknowledged, so nothing is promised

        # Sign them all at once and kill the server as soon as the first answers arrived:
        # some signatures are acknowledged, others are cut off mid-way.
        tasks = [asyncio.ensure_future(sign(rid)) for rid in ids]
        for _ in range(400):
            if len(acknowledged) >= 2:
                break
            await asyncio.sleep(0.01)
        first.kill9()
        await asyncio.gather(*tasks)
        assert len(acknowledged) >= 2

        # The index is lost (everysec AOF's last second, or a wiped Redis): reports' keys gone.
        store = Store.from_url(_redis_url(data_dir))
        try:
            assert await store.reports.clear() > 0
        finally:
            await store.close()
        out = await run_reindex(env, _redis_url(data_dir))
        assert f"Reindexed {CONSULTS} reports" in out

        second = ServeProcess(data_dir, port, env)
        url = second.start()
        try:
            doctor_h = await _login(session, url, "dr.li")
            for rid, signed in acknowledged.items():
                async with session.get(f"{url}api/reports/{rid}", headers=doctor_h) as resp:
                    assert resp.status == 200, await resp.text()
                    report = await resp.json()
                assert report["versions"][0]["signature"] == signed["signature"]
                assert report["versions"][0]["content"] == signed["content"]
                async with session.get(
                        f"{url}api/verify/{signed['verification_code']}") as resp:
                    verdict = await resp.json()
                assert verdict["authentic"] is True and verdict["current"] is True
            # Unacknowledged ones are either signed whole or still the saved draft.
            expert_h = await _login(session, url, "exp.zhang")
            for rid in set(ids) - set(acknowledged):
                async with session.get(f"{url}api/reports/{rid}", headers=expert_h) as resp:
                    report = await resp.json()
                assert report["versions"] or report["draft"]["revision"] == 1
        finally:
            assert second.stop() == 0, second.output()
    assert os.path.isdir(data_dir / "dicom" / "qingshui" / "no-study" / "reports")

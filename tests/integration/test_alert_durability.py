"""Escalation of a critical alert across the faults of a real deployment: `huizhen serve` killed
with SIGKILL while a step comes due, then its embedded redis-server SIGKILLed (supervised
restart, AOF replay) while the next one does. Every step is recorded exactly once, none before
it was due, and the fsync'd journal holds each once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import redis
from pydicom.uid import generate_uid

from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.dicom_factory import ct_bytes, multipart_related
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess, short_data_dir

pytestmark = pytest.mark.timeout(300)

SCHEDULE = (6, 12, 18)
STEPS = ["raised", "renotified", "escalated", "escalated_coordinator"]


@pytest.fixture
def data_dir():
    path = short_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _socket(data_dir: Path) -> str:
    return str(data_dir / "redis" / "redis.sock")


async def _people(data_dir: Path, password_hash: str) -> None:
    store = Store.from_url(f"unix://{_socket(data_dir)}")
    try:
        d = store.directory
        await d.add_clinic("Qingshui Township", "qingshui")
        await d.add_department("Radiology", "radiology")
        for name, role, clinic, dept in (("dr.li", Role.DOCTOR, "qingshui", None),
                                         ("exp.zhang", Role.EXPERT, None, "radiology"),
                                         ("exp.li", Role.EXPERT, None, "radiology"),
                                         ("coord.liu", Role.COORDINATOR, None, None)):
            await d.add_user(name, role=role, password_hash=password_hash, clinic=clinic,
                             department=dept)
        await d.set_department_head("radiology", "exp.li")
    finally:
        await store.close()


async def _token(session: aiohttp.ClientSession, url: str, username: str) -> dict[str, str]:
    async with session.post(f"{url}api/auth/login",
                            json={"username": username, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def _timeline(session, url, h, alert_id) -> list[dict] | None:
    try:
        async with session.get(f"{url}api/alerts/{alert_id}", headers=h) as resp:
            if resp.status != 200:
                return None
            return (await resp.json())["alert"]["timeline"]
    except aiohttp.ClientConnectionError:
        return None


async def _wait_steps(session, url, h, alert_id, count: int, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        timeline = await _timeline(session, url, h, alert_id)
        if timeline is not None and len(timeline) >= count:
            return timeline
        assert time.monotonic() < deadline, timeline
        await asyncio.sleep(0.2)


def _redis_pid(data_dir: Path) -> int:
    client = redis.Redis(unix_socket_path=_socket(data_dir), socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


async def test_escalation_survives_server_kill_and_redis_restart(data_dir, password_hash):
    port = free_port()
    env = ServeProcess.environment(data_dir, port,
                                   HUIZHEN_ALERT_ESCALATION_S=",".join(map(str, SCHEDULE)))
    server = ServeProcess(data_dir, port, env)
    url = server.start()
    try:
        await _people(data_dir, password_hash)
        async with aiohttp.ClientSession() as session:
            doctor = await _token(session, url, "dr.li")
            expert = await _token(session, url, "exp.zhang")
            study = generate_uid()
            body, ctype = multipart_related([ct_bytes(study_uid=study)])
            async with session.post(f"{url}dicomweb/studies", data=body,
                                    headers={**doctor, "Content-Type": ctype}) as resp:
                assert resp.status == 200, await resp.text()
            async with session.post(f"{url}api/worklist", headers=doctor, json={
                    "study_uid": study, "question": "Trauma", "priority": "emergency",
                    "department": "radiology"}) as resp:
                item = (await resp.json())["item"]
            async with session.post(f"{url}api/worklist/{item['id']}/claim",
                                    headers=expert) as resp:
                assert resp.status == 200
            async with session.post(f"{url}api/alerts", headers=expert, json={
                    "item_id": item["id"], "finding": "Splenic rupture, free fluid"}) as resp:
                assert resp.status == 201, await resp.text()
                alert = (await resp.json())["alert"]
            raised_at = alert["created_at"]

            # 1. The server dies (SIGKILL) before the first step is due, and is down when it
            # comes due; the restarted server fires it (late, once).
            server.kill9()
            await asyncio.sleep(max(0.0, raised_at + SCHEDULE[0] + 0.5 - time.time()))
            url = server.start()
            coord = await _token(session, url, "coord.liu")
            timeline = await _wait_steps(session, url, coord, alert["id"], 2, 30)
            assert [e["step"] for e in timeline[:2]] == STEPS[:2]

            # 2. Redis is SIGKILLed just before the second step is due (supervised restart,
            # AOF replay); the second and third steps still fire once each.
            await asyncio.sleep(max(0.0, raised_at + SCHEDULE[1] - 0.7 - time.time()))
            os.kill(_redis_pid(data_dir), signal.SIGKILL)
            timeline = await _wait_steps(session, url, coord, alert["id"], 4, 60)
            await asyncio.sleep(2)  # past the whole schedule: nothing more may come
            timeline = await _wait_steps(session, url, coord, alert["id"], 4, 30)
            assert [e["step"] for e in timeline] == STEPS, timeline
            for entry, due in zip(timeline[1:], SCHEDULE, strict=True):
                assert entry["at"] >= raised_at + due - 0.01, (entry, due)
            assert [e["level"] for e in timeline[1:]] == [1, 2, 3]
            assert timeline[2]["to"] == ["exp.li"] and timeline[3]["to"] == ["coord.liu"]

            # Acknowledging now closes it; nothing is due any more.
            async with session.post(f"{url}api/alerts/{alert['id']}/acknowledge",
                                    headers=doctor, json={
                                        "read_back": "splenic rupture, free fluid"}) as resp:
                assert resp.status == 200, await resp.text()
    finally:
        assert server.stop() == 0, server.output()
    journal = (data_dir / "alerts" / "journal.jsonl").read_text().splitlines()
    steps = [json.loads(line)["entry"]["step"] for line in journal]
    assert steps == [*STEPS, "acknowledged"], steps

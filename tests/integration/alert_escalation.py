"""Helpers of the tests that escalate a critical alert through a real `huizhen serve` with its
embedded Redis (tests/integration/test_alert_durability.py, tests/process/test_alert_reindex.py):
the people an escalation reaches, sign-in, and waiting for the alert's timeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from pydicom.uid import generate_uid

from server.store import Store
from server.store.directory import Role
from tests.dicom_factory import ct_bytes, multipart_related

STEPS = ["raised", "renotified", "escalated", "escalated_coordinator"]


def embedded_redis_url(data_dir: Path) -> str:
    return f"unix://{data_dir / 'redis' / 'redis.sock'}"


async def seed_people(data_dir: Path, password_hash: str) -> None:
    """A clinic doctor, two radiology experts (exp.li the head), and a coordinator."""
    store = Store.from_url(embedded_redis_url(data_dir))
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


async def login(session: aiohttp.ClientSession, url: str, username: str, password: str
                ) -> dict[str, str]:
    async with session.post(f"{url}api/auth/login",
                            json={"username": username, "password": password}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def timeline(session: aiohttp.ClientSession, url: str, h: dict[str, str],
                   alert_id: str) -> list[dict] | None:
    """The alert's timeline, or None while the server cannot answer (restarting)."""
    try:
        async with session.get(f"{url}api/alerts/{alert_id}", headers=h) as resp:
            if resp.status != 200:
                return None
            return (await resp.json())["alert"]["timeline"]
    except aiohttp.ClientConnectionError:
        return None


async def wait_steps(session: aiohttp.ClientSession, url: str, h: dict[str, str],
                     alert_id: str, count: int, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await timeline(session, url, h, alert_id)
        if found is not None and len(found) >= count:
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def raise_on_new_study(session: aiohttp.ClientSession, url: str, doctor: dict[str, str],
                             expert: dict[str, str], finding: str) -> dict:
    """The clinic uploads a CT and sends it for reading, the expert claims it and raises a
    critical value on it; the alert as answered."""
    study = generate_uid()
    body, ctype = multipart_related([ct_bytes(study_uid=study)])
    async with session.post(f"{url}dicomweb/studies", data=body,
                            headers={**doctor, "Content-Type": ctype}) as resp:
        assert resp.status == 200, await resp.text()
    async with session.post(f"{url}api/worklist", headers=doctor, json={
            "study_uid": study, "question": "Trauma", "priority": "emergency",
            "department": "radiology"}) as resp:
        assert resp.status == 201, await resp.text()
        item = (await resp.json())["item"]
    async with session.post(f"{url}api/worklist/{item['id']}/claim", headers=expert) as resp:
        assert resp.status == 200, await resp.text()
    async with session.post(f"{url}api/alerts", headers=expert,
                            json={"item_id": item["id"], "finding": finding}) as resp:
        assert resp.status == 201, await resp.text()
        return (await resp.json())["alert"]

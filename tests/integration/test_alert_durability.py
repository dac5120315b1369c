"""Escalation of a critical alert across the faults of a real deployment: `huizhen serve` killed
with SIGKILL while a step comes due, then its embedded redis-server SIGKILLed (supervised
restart, AOF replay) while the next one does. Every step is recorded exactly once, none before
it was due, and the fsync'd journal holds each once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.conftest import free_port
from tests.integration.alert_escalation import (
    STEPS,
    embedded_redis_url,
    login,
    raise_on_new_study,
    seed_people,
    wait_steps,
)
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess

pytestmark = pytest.mark.timeout(300)

SCHEDULE = (6, 12, 18)


def _login(session: aiohttp.ClientSession, url: str, username: str):
    return login(session, url, username, PASSWORD)


def _redis_pid(data_dir: Path) -> int:
    client = redis.Redis.from_url(embedded_redis_url(data_dir), socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


async def test_escalation_survives_server_kill_and_redis_restart(serve_data_dir, password_hash):
    data_dir = serve_data_dir
    port = free_port()
    env = ServeProcess.environment(data_dir, port,
                                   HUIZHEN_ALERT_ESCALATION_S=",".join(map(str, SCHEDULE)))
    server = ServeProcess(data_dir, port, env)
    url = server.start()
    try:
        await seed_people(data_dir, password_hash)
        async with aiohttp.ClientSession() as session:
            doctor = await _login(session, url, "dr.li")
            expert = await _login(session, url, "exp.zhang")
            alert = await raise_on_new_study(session, url, doctor, expert,
                                             "Splenic rupture, free fluid")
            raised_at = alert["created_at"]

            # 1. The server dies (SIGKILL) before the first step is due, and is down when it
            # comes due; the restarted server fires it (late, once).
            server.kill9()
            await asyncio.sleep(max(0.0, raised_at + SCHEDULE[0] + 0.5 - time.time()))
            url = server.start()
            coord = await _login(session, url, "coord.liu")
            timeline = await wait_steps(session, url, coord, alert["id"], 2, 30)
            assert [e["step"] for e in timeline[:2]] == STEPS[:2]

            # 2. Redis is SIGKILLed just before the second step is due (supervised restart,
            # AOF replay); the second and third steps still fire once each.
            await asyncio.sleep(max(0.0, raised_at + SCHEDULE[1] - 0.7 - time.time()))
            os.kill(_redis_pid(data_dir), signal.SIGKILL)
            timeline = await wait_steps(session, url, coord, alert["id"], 4, 60)
            await asyncio.sleep(2)  # past the whole schedule: nothing more may come
            timeline = await wait_steps(session, url, coord, alert["id"], 4, 30)
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

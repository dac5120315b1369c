"""Critical-value alerts come back from their fsync'd journal when Redis loses everything: a
real `huizhen serve` raises alerts and escalates one partway, its Redis is FLUSHALLed, and
`huizhen reindex` (another process, while the server runs) rebuilds the register — states,
timelines, read-backs — and the due time of the next step, so escalation resumes where it was:
no journalled step is sent again, none is skipped."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import redis

from server.auth.passwords import hash_password
from server.store import keys
from tests.conftest import free_port
from tests.integration.alert_escalation import (
    STEPS,
    embedded_redis_url,
    login,
    raise_on_new_study,
    seed_people,
    wait_steps,
)
from tests.integration.serve_process import ServeProcess, run_reindex

pytestmark = pytest.mark.timeout(300)

PASSWORD = "alert-reindex-" + "p" * 12
DIGEST = hash_password(PASSWORD)
# Step 1 fires before Redis is wiped; steps 2 and 3 come due after the reindex.
SCHEDULE = (3, 20, 24)
FINDING = "Splenic rupture, free fluid 3 cm"


async def _alert(session, url, h, alert_id) -> dict:
    async with session.get(f"{url}api/alerts/{alert_id}", headers=h) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["alert"]


async def test_reindex_rebuilds_alerts_and_escalation_resumes_without_a_doubled_step(
        serve_data_dir):
    data_dir = serve_data_dir
    port = free_port()
    env = ServeProcess.environment(data_dir, port, HUIZHEN_LOG_LEVEL="WARNING",
                                   HUIZHEN_ALERT_ESCALATION_S=",".join(map(str, SCHEDULE)))
    server = ServeProcess(data_dir, port, env)
    url = server.start()
    wiped = redis.Redis.from_url(embedded_redis_url(data_dir), decode_responses=True)
    try:
        await seed_people(data_dir, DIGEST)
        async with aiohttp.ClientSession() as session:
            doctor = await login(session, url, "dr.li", PASSWORD)
            expert = await login(session, url, "exp.zhang", PASSWORD)
            open_alert = await raise_on_new_study(session, url, doctor, expert, FINDING)
            closed = await raise_on_new_study(session, url, doctor, expert,
                                              "Tension pneumothorax, left")
            async with session.post(f"{url}api/alerts/{closed['id']}/acknowledge",
                                    headers=doctor, json={
                                        "read_back": "tension pneumothorax left",
                                        "receiver_name": "李医生"}) as resp:
                assert resp.status == 200, await resp.text()
            async with session.post(f"{url}api/alerts/{closed['id']}/handled", headers=doctor,
                                    json={"action": "Chest drain, sent up"}) as resp:
                assert resp.status == 200, await resp.text()

            # Step 1 of the open alert fires; then Redis loses everything.
            coord = await login(session, url, "coord.liu", PASSWORD)
            before = await wait_steps(session, url, coord, open_alert["id"], 2, 20)
            assert [e["step"] for e in before] == STEPS[:2]
            closed_before = await _alert(session, url, coord, closed["id"])
            wiped.flushall()
            assert wiped.zcard(keys.ALERTS) == 0 and wiped.zcard(keys.ALERTS_DUE) == 0

            await seed_people(data_dir, DIGEST)
            redis_url = embedded_redis_url(data_dir)
            out = await run_reindex(env, redis_url)
            assert "Restored 2 of 2 critical-value alerts" in out, out
            # Run again (Redis holds them now): nothing is rewritten.
            assert "Restored 0 of 2 critical-value alerts" in await run_reindex(env, redis_url)

            # The register is back: state, level, timeline, read-back, due time.
            coord = await login(session, url, "coord.liu", PASSWORD)
            async with session.get(f"{url}api/alerts", headers=coord) as resp:
                assert resp.status == 200, await resp.text()
                register = {a["id"]: a for a in (await resp.json())["alerts"]}
            assert set(register) == {open_alert["id"], closed["id"]}
            back = register[closed["id"]]
            assert back["state"] == "handled"
            assert back["timeline"] == closed_before["timeline"]
            for field in ("acknowledged_by", "acknowledged_name", "acknowledged_at",
                          "read_back", "handled_by", "handled_at", "action_taken", "finding",
                          "patient_name", "study_uid", "department", "clinic_name"):
                assert back[field] == closed_before[field], field
            still = register[open_alert["id"]]
            assert still["state"] == "raised" and still["level"] >= 1
            assert [e["step"] for e in still["timeline"][:2]] == STEPS[:2]
            assert still["timeline"][:2] == before
            assert wiped.zscore(keys.ALERTS_DUE, closed["id"]) is None
            if still["level"] == 1:
                assert wiped.zscore(keys.ALERTS_DUE, open_alert["id"]) == pytest.approx(
                    open_alert["created_at"] + SCHEDULE[1])
            # The clinic's banner comes back for the open one only.
            assert wiped.zrange(keys.clinic_alerts_open("qingshui"), 0, -1) == [
                open_alert["id"]]

            # Escalation goes on from step 2: each step once, none early, none again.
            timeline = await wait_steps(session, url, coord, open_alert["id"], 4, 60)
            await asyncio.sleep(2)  # past the whole schedule: nothing more may come
            timeline = (await _alert(session, url, coord, open_alert["id"]))["timeline"]
            assert [e["step"] for e in timeline] == STEPS, timeline
            assert [e["level"] for e in timeline[1:]] == [1, 2, 3]
            for entry, due in zip(timeline[1:], SCHEDULE, strict=True):
                assert entry["at"] >= open_alert["created_at"] + due - 0.01, (entry, due)
            assert timeline[2]["to"] == ["exp.li"] and timeline[3]["to"] == ["coord.liu"]

            async with session.post(f"{url}api/alerts/{open_alert['id']}/acknowledge",
                                    headers=await login(session, url, "dr.li", PASSWORD),
                                    json={"read_back": FINDING.lower()}) as resp:
                assert resp.status == 200, await resp.text()
    finally:
        wiped.close()
        assert server.stop() == 0, server.output()
    journal = [json.loads(line) for line in
               (data_dir / "alerts" / "journal.jsonl").read_text().splitlines()]
    steps = [j["entry"]["step"] for j in journal if j["alert"] == open_alert["id"]]
    assert steps == [*STEPS, "acknowledged"], steps

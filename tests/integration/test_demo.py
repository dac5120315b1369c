"""`huizhen demo` as `make run` runs it: a county-like demo, and a re-run that adds nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Settings
from server.demo.seed import CLINICS, DEMO_MDT_ID, SAMPLES_CLINIC
from server.store import Store
from tests.integration.conftest import REDIS_DB

PASSWORD = "demo-password-123"
PN = "00100010"
PID = "00100020"
DESC = "00081030"


def _demo(env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "server", "demo", "--ct-slices", "3"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


async def _studies(client: TestClient, username: str) -> list[dict]:
    resp = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    token = (await resp.json())["token"]
    resp = await client.get("/dicomweb/studies?includefield=all",
                            headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_demo_rerun_reports_what_it_added_and_looks_like_a_county(tmp_path, redis_server,
                                                                       store):
    env = {**os.environ, "HUIZHEN_REDIS_URL": redis_server.url(REDIS_DB),
           "HUIZHEN_DATA_DIR": str(tmp_path), "HUIZHEN_SECRET_KEY": "k" * 40,
           "HUIZHEN_DEMO_PASSWORD": PASSWORD}
    first = _demo(env)
    added = int(re.search(r"(\d+) new instances", first).group(1))
    assert added >= 3 + 2  # the CT's slices and two radiographs, at least
    assert re.search(r"\b\d+ new accounts", first)
    assert "Open http" not in first  # the server is not listening yet; `serve` says when
    again = _demo(env)
    assert "0 new instances, 0 new accounts" in again, again

    settings = Settings.from_env(env)
    app = create_app(settings, Store.from_url(settings.redis_url))
    async with TestClient(TestServer(app)) as client:
        qingshui = await _studies(client, "dr.li")
        ids = {s[PID]["Value"][0] for s in qingshui}
        assert ids == {"QS-2024-0815", "QS-2024-0816", "QS-2025-0107", "QS-2025-0108"}
        ct = next(s for s in qingshui if s[PID]["Value"][0] == "QS-2024-0815")
        # a Chinese PN as a Chinese modality stores it: alphabetic and ideographic groups
        assert ct[PN]["Value"][0] == {"Alphabetic": "Wang^Xiaoming", "Ideographic": "王^小明"}
        assert not any("Test sample" in s.get(DESC, {}).get("Value", [""])[0] for s in qingshui)

        hetang = await _studies(client, "dr.wang")
        assert [s[PID]["Value"][0] for s in hetang] == ["HT-2023-0321"]

        samples = await _studies(client, "dr.test")
        assert samples, "pydicom's sample files are in their own clinic"
        for s in samples:
            assert s[DESC]["Value"][0].startswith("Test sample: ")
            assert s[PID]["Value"][0].startswith("SAMPLE-")
            assert s[PN]["Value"][0]["Ideographic"] == "测试^样例"
        # one scheduled MDT with two cases, and one more case waiting for the coordinator
        resp = await client.post("/api/auth/login",
                                 json={"username": "coord.liu", "password": PASSWORD})
        liu = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        upcoming = await (await client.get("/api/mdt", headers=liu)).json()
        assert [m["id"] for m in upcoming["mdts"]] == [DEMO_MDT_ID]
        assert upcoming["mdts"][0]["state"] == "scheduled"
        assert len(upcoming["mdts"][0]["cases"]) == 2
        waiting = await (await client.get("/api/mdt/proposals", headers=liu)).json()
        assert [p["patient_id"] for p in waiting["proposals"]] == ["QS-2024-0816"]
        # The county ECG centre's worklist: the demo's two ECGs as reading requests (once,
        # though the demo ran twice), the suspected-critical STEMI first.
        resp = await client.post("/api/auth/login",
                                 json={"username": "exp.huang", "password": PASSWORD})
        huang = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        resp = await client.get("/api/worklist", params={"modality": "ECG"}, headers=huang)
        assert resp.status == 200, await resp.text()
        items = (await resp.json())["items"]
        assert [(i["patient_id"], i["department"]) for i in items] == [
            ("QS-2025-0107", "ecg"), ("QS-2025-0108", "ecg")]
        assert items[0]["flags"].startswith("suspected_critical")
        assert items[0]["priority"] == "emergency" and not items[1]["flags"]
        departments = await (await client.get("/api/departments", headers=huang)).json()
        assert {"id": "ecg", "name": "心电图室 ECG Centre"}.items() <= next(
            d for d in departments["departments"] if d["id"] == "ecg").items()
        # The reader was told of the suspected-critical one in their inbox.
        inbox = await (await client.get("/api/notifications", headers=huang)).json()
        assert "ecg.suspected_critical" in {n["kind"] for n in inbox["notifications"]}
    assert "Test samples" in CLINICS[SAMPLES_CLINIC]

"""Reports benchmark: a reading report signed by the claiming expert → visible at the clinic.

Starts a private redis-server, `huizhen demo` and `huizhen serve` (bench/render.py's Stack),
connects the clinic's page WebSocket (dr.li, as the kiosk does), then for each of --reports
reading requests of the demo CT: the doctor requests it, exp.zhang claims it, opens the report,
saves the draft and signs it. Measured:

  sign       POST …/sign → 200 (the version written and fsync'd, indexed, request completed)
  delivered  POST …/sign sent → the `report.final` notification on the clinic's page
  pdf        GET …/pdf (Chinese text, font subset, fpdf2; thread pool)
  verify     GET /api/verify/{code} (public)

Output: one JSON document on stdout, then a one-line summary as the last line.

    .venv/bin/python bench/reports.py --reports 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import (  # the sibling module (bench/ is not a package)
    BenchError,
    Stack,
    huizhen_command,
    latency_stats,
    log,
    make_env,
    wait_healthy,
)


async def _login(session: aiohttp.ClientSession, base: str, user: str, password: str) -> dict:
    async with session.post(f"{base}/api/auth/login",
                            json={"username": user, "password": password}) as r:
        if r.status != 200:
            raise BenchError(f"login {user} -> {r.status}")
        return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def _json(resp: aiohttp.ClientResponse, want: int = 200) -> dict:
    if resp.status != want:
        raise BenchError(f"{resp.method} {resp.url.path} -> {resp.status}: {await resp.text()}")
    return await resp.json()


async def measure(stack: Stack, n: int) -> dict:
    base = stack.base_url
    results: dict[str, list[float]] = {"sign": [], "delivered": [], "pdf": [], "verify": []}
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, stack, 60)
        doctor = await _login(session, base, "dr.li", stack.password)
        expert = await _login(session, base, "exp.zhang", stack.password)
        async with session.get(f"{base}/dicomweb/studies?PatientID=QS-2024-0815",
                               headers=doctor) as r:
            study_uid = (await _json(r))[0]["0020000D"]["Value"][0]
        ws = await session.ws_connect(f"{base}/api/ws")
        await ws.send_json({"type": "auth", "token": doctor["Authorization"].split()[1]})
        arrived: dict[str, float] = {}
        seen = asyncio.Event()

        async def read() -> None:
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("type") == "notification":
                    note = data["notification"]
                    if note["kind"] == "report.final":
                        arrived[note["data"]["report_id"]] = time.perf_counter()
                        seen.set()

        reader = asyncio.ensure_future(read())
        for i in range(n):
            async with session.post(f"{base}/api/worklist", headers=doctor, json={
                    "study_uid": study_uid, "question": f"bench {i}", "priority": "routine",
                    "department": "radiology"}) as r:
                item = (await _json(r, 201))["item"]
            async with session.post(f"{base}/api/worklist/{item['id']}/claim",
                                    headers=expert) as r:
                await _json(r)
            async with session.post(f"{base}/api/reports", headers=expert, json={
                    "kind": "reading", "reading_request_id": item["id"]}) as r:
                rid = (await _json(r))["id"]
            async with session.put(f"{base}/api/reports/{rid}/draft", headers=expert, json={
                    "revision": 0, "content": {"findings": f"右肺上叶结节 {i} mm。",
                                               "impression": "肺结节。"}}) as r:
                await _json(r)
            t0 = time.perf_counter()
            async with session.post(f"{base}/api/reports/{rid}/sign", headers=expert,
                                    json={"revision": 1}) as r:
                signed = await _json(r)
            results["sign"].append((time.perf_counter() - t0) * 1000)
            async with asyncio.timeout(10):
                while rid not in arrived:
                    seen.clear()
                    await seen.wait()
            if rid not in arrived:
                raise BenchError(f"report {rid} never reached the clinic's page")
            results["delivered"].append((arrived[rid] - t0) * 1000)
            t1 = time.perf_counter()
            async with session.get(f"{base}/api/reports/{rid}/pdf", headers=doctor) as r:
                if r.status != 200:
                    raise BenchError(f"pdf -> {r.status}")
                await r.read()
            results["pdf"].append((time.perf_counter() - t1) * 1000)
            t2 = time.perf_counter()
            async with session.get(f"{base}/api/verify/{signed['verification_code']}") as r:
                await _json(r)
            results["verify"].append((time.perf_counter() - t2) * 1000)
            log(f"report {i + 1}/{n}: sign {results['sign'][-1]:.1f} ms, "
                f"delivered {results['delivered'][-1]:.1f} ms")
        reader.cancel()
        await ws.close()
    return {name: latency_stats(sorted(v)) for name, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=20)
    p.add_argument("--huizhen", default=None, help="the huizhen command (default: this tree)")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hz-bench-reports-"))
    password = secrets.token_urlsafe(12)
    stack = Stack(workdir=workdir, cmd=huizhen_command(args.huizhen),
                  env=make_env(workdir, password, "WARNING"), password=password)
    # /verify is rate-limited per address; the benchmark is one address.
    stack.env["HUIZHEN_VERIFY_PER_WINDOW"] = str(args.reports * 2 + 10)
    report: dict = {"config": {"reports": args.reports}}
    try:
        stack.start_redis()
        stack.seed_demo(300)
        stack.start_server()
        report["results"] = asyncio.run(measure(stack, args.reports))
    except BenchError as exc:
        report["error"] = str(exc)
    finally:
        stack.stop()
    print(json.dumps(report, indent=1))
    if "error" in report:
        print(f"reports: ERROR {report['error'].splitlines()[0]}")
        return 2
    r = report["results"]
    print(f"reports ({args.reports}): sign p50 {r['sign']['p50_ms']:.1f} ms p95 "
          f"{r['sign']['p95_ms']:.1f} ms; sign → clinic page p50 {r['delivered']['p50_ms']:.1f} "
          f"ms p95 {r['delivered']['p95_ms']:.1f} ms max {r['delivered']['max_ms']:.1f} ms; "
          f"PDF p50 {r['pdf']['p50_ms']:.0f} ms; verify p50 {r['verify']['p50_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

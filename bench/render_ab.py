"""A/B rendering benchmark: two builds of Huizhen side by side, requests alternating.

The machines we run on drift by 1.5x over minutes, so two builds measured one after the other
cannot be compared. This starts two complete stacks (each its own private redis-server,
`huizhen demo`, `huizhen serve`), one from a base source tree and one from the candidate, and
sends the SAME request sequence to both, alternating A/B per request (the order of each pair is
random), so both builds see the same machine at the same moment.

Phases (doctor `dr.li` by default, `--user` for another demo account):

  warm    one middle slice, decoded frame cached, a new window per request (render + encode)
  cached  the same slice and window again and again: image-cache hits, i.e. the floor of the
          rendered endpoint (auth, session check, grant/owner lookup, audit, HTTP)

    .venv/bin/python bench/render_ab.py --base-ref c205ed7        # base = a git commit
    .venv/bin/python bench/render_ab.py --base /path/to/tree      # base = a source tree

Output: one JSON document on stdout and a one-line summary as the last line (stderr has
progress). The ratio is candidate / base: 1.03 means the candidate is 3 % slower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from render import (  # the sibling module (bench/ is not a package)
    REPO,
    REQUEST_TIMEOUT_S,
    BenchError,
    Client,
    Series,
    Stack,
    Windows,
    bounded,
    find_ct_series,
    latency_stats,
    log,
    make_env,
    percentile,
    wait_healthy,
)


@contextlib.contextmanager
def base_tree(args: argparse.Namespace) -> Iterator[Path]:
    """The base build's source tree: given, or a temporary detached worktree of --base-ref."""
    if args.base:
        yield Path(args.base).resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="hz-ab-base-"))
    tree = tmp / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree),
                    args.base_ref], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False)
        shutil.rmtree(tmp, ignore_errors=True)


# The demo CT's PatientID, newest first: a base build from before the county demo data used
# the older one.
DEMO_CT_PATIENT_IDS = ("QS-2024-0815", "HZ-DEMO-0001")


async def find_demo_ct(client: Client) -> Series:
    for patient_id in DEMO_CT_PATIENT_IDS:
        with contextlib.suppress(BenchError):
            return await find_ct_series(client, patient_id)
    raise BenchError(f"no demo CT series under any of {DEMO_CT_PATIENT_IDS}")


def make_stack(tree: Path, name: str, password: str, log_level: str | None) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix=f"hz-ab-{name}-"))
    env = make_env(workdir, password, log_level)
    env["PYTHONPATH"] = str(tree)  # `python -m server` imports this build, not the venv's
    (workdir / "data").mkdir()
    return Stack(workdir=workdir, cmd=[sys.executable, "-m", "server"], env=env,
                 password=password, repo=tree)


async def login_as(session: aiohttp.ClientSession, base_url: str, user: str,
                   password: str) -> str:
    async with session.post(base_url + "/api/auth/login",
                            json={"username": user, "password": password}) as r:
        if r.status != 200:
            raise BenchError(f"login as {user} -> {r.status}: {(await r.text())[:300]}")
        return str((await r.json())["token"])


def summarize(lat: list[float]) -> dict[str, Any]:
    return latency_stats(lat)


async def alternate(clients: dict[str, Client], series: dict[str, Series], requests: int,
                    window_of: dict[str, Windows] | None, rng: random.Random
                    ) -> dict[str, list[float]]:
    """`requests` pairs of requests, one to each build per pair, in a random order per pair."""
    names = list(clients)
    lat: dict[str, list[float]] = {n: [] for n in names}
    errors: list[str] = []
    sops = {n: series[n].instances[len(series[n].instances) // 2] for n in names}
    for n in names:  # decode once before measuring
        await clients[n].render(series[n], sops[n], "40,400,linear", "image/jpeg", errors)
    for _ in range(requests):
        order = names[:]
        rng.shuffle(order)
        for n in order:
            window = window_of[n].next() if window_of else "40,400,linear"
            ms, _ = await clients[n].render(series[n], sops[n], window, "image/jpeg", errors)
            lat[n].append(ms)
    if errors:
        raise BenchError(f"{len(errors)} failed renders; first: {errors[0]}")
    return lat


async def measure(stacks: dict[str, Stack], args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=16, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    rng = random.Random(args.seed)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trust_env=False) as session:
        clients: dict[str, Client] = {}
        series: dict[str, Series] = {}
        for name, stack in stacks.items():
            await wait_healthy(session, stack, args.startup_timeout)
            token = await login_as(session, stack.base_url, args.user, stack.password)
            clients[name] = Client(session, stack.base_url, {"Authorization": f"Bearer {token}"})
            series[name] = await bounded(find_demo_ct(clients[name]), 60, "QIDO")
        out: dict[str, Any] = {"warm_rounds": [], "cached_rounds": []}
        windows = {n: Windows() for n in stacks}
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: {args.requests} warm + {args.requests} cached"
                " pairs")
            warm = await bounded(alternate(clients, series, args.requests, windows, rng),
                                 args.phase_timeout, "warm phase")
            cached = await bounded(alternate(clients, series, args.requests, None, rng),
                                   args.phase_timeout, "cached phase")
            out["warm_rounds"].append({n: summarize(v) for n, v in warm.items()})
            out["cached_rounds"].append({n: summarize(v) for n, v in cached.items()})
        return out


def ratios(rounds: list[dict[str, dict[str, Any]]], key: str) -> list[float]:
    return [round(r["candidate"][key] / r["base"][key], 3) for r in rounds]


def median(values: Sequence[float]) -> float:
    return round(percentile(sorted(values), 50), 3)


def summary_line(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"render A/B: ERROR {report['error'].splitlines()[0]}"
    w, c = report["ratio"]["warm_p50"], report["ratio"]["cached_p50"]
    wb = median([r["base"]["p50_ms"] for r in report["results"]["warm_rounds"]])
    wc = median([r["candidate"]["p50_ms"] for r in report["results"]["warm_rounds"]])
    return (f"render A/B ({report['config']['user']}): warm JPEG p50 base {wb:.2f} ms, "
            f"candidate {wc:.2f} ms, ratio {median(w):.3f} (rounds {min(w):.3f}-{max(w):.3f})"
            f" | cache-hit p50 ratio {median(c):.3f} (rounds {min(c):.3f}-{max(c):.3f})"
            f" | load1 {report['host']['loadavg_before'][0]:.2f}->"
            f"{report['host']['loadavg_after'][0]:.2f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "bench": "render_ab", "version": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"cpus": os.cpu_count(),
                 "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
    }
    stacks: dict[str, Stack] = {}
    with base_tree(args) as base:
        cand = Path(args.candidate).resolve() if args.candidate else REPO
        report["config"] = {"base": str(base), "base_ref": args.base_ref,
                            "candidate": str(cand), "user": args.user,
                            "rounds": args.rounds, "requests": args.requests}
        password = secrets.token_urlsafe(18)
        try:
            for name, tree in (("base", base), ("candidate", cand)):
                stack = stacks[name] = make_stack(tree, name, password, args.log_level)
                stack.start_redis()
                log(f"{name}: seeding demo data from {tree}")
                stack.seed_demo(args.demo_timeout)
                stack.start_server()
            results = asyncio.run(bounded(measure(stacks, args), args.timeout, "the benchmark"))
            report["results"] = results
            report["ratio"] = {
                "warm_p50": ratios(results["warm_rounds"], "p50_ms"),
                "warm_p95": ratios(results["warm_rounds"], "p95_ms"),
                "cached_p50": ratios(results["cached_rounds"], "p50_ms"),
            }
        except (BenchError, aiohttp.ClientError, TimeoutError,
                subprocess.CalledProcessError) as exc:
            report["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            for stack in stacks.values():
                stack.stop()
                shutil.rmtree(stack.workdir, ignore_errors=True)
    report["host"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--base", help="source tree of the base build")
    g.add_argument("--base-ref", help="git commit of the base build (a temporary worktree)")
    p.add_argument("--candidate", default=None, help="source tree of the candidate "
                   "(default: this checkout)")
    p.add_argument("--user", default="dr.li", help="demo account to render as")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=300, help="pairs per phase per round")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--demo-timeout", type=float, default=300.0)
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--phase-timeout", type=float, default=180.0)
    p.add_argument("--timeout", type=float, default=1200.0)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        p.error("--rounds and --requests must be >= 1")
    return args


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    report = run(args)
    print(json.dumps(report, indent=2))
    line = summary_line(report)
    print(line)
    return 2 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())

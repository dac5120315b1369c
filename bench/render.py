"""Rendering benchmark: server-side window/level over HTTP keep-alive on loopback.

Starts everything it needs and tears it down again:

* a private ``redis-server`` on a free 127.0.0.1 port (no persistence, temp dir),
* ``huizhen demo`` to seed the demo clinics, users and the 120-slice 512x512 phantom CT,
* ``huizhen serve`` on a free 127.0.0.1 port, polled until ``GET /healthz`` answers 200,

then logs in as ``dr.li`` (clinic qingshui owns the CT), finds the series by QIDO and measures

  cold   first render of every instance on the fresh server (read + decode + window + encode)
  warm   one middle slice, decoded frame cached, a NEW window per request (no image-cache hits);
         repeated --rounds times to show the spread
  scroll 1 and 8 concurrent clients, each passing through the whole stack at its own window
         (new per client and per pass) -> slices/s
  png    warm and 8-client scroll again with Accept: image/png

Output: one JSON document on stdout, then (unless --json-only) a one-line summary as the last
line. Progress goes to stderr. Exit status: 0 measured (targets may still fail; see "pass"),
1 a target failed and --strict was given, 2 the benchmark could not run.

    .venv/bin/python bench/render.py                 # full run, ~1 minute
    .venv/bin/python bench/render.py --slices-limit 40 --requests 100 --rounds 2   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEMO_USER = "dr.li"
DEMO_PATIENT_ID = "QS-2024-0815"  # the demo CT (server/demo/seed.py)

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
MODALITY = "00080060"
SERIES_INSTANCES = "00201209"
INSTANCE_NUMBER = "00200013"

MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}

# name, metric key, comparison, limit
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("warm JPEG p50 ms", "warm_jpeg.p50_ms", "<=", 2.0),
    ("warm JPEG p95 ms", "warm_jpeg.p95_ms", "<=", 4.0),
    ("cold JPEG p50 ms", "cold_jpeg.p50_ms", "<=", 6.0),
    ("8-client JPEG scroll slices/s", "scroll_jpeg_8.slices_per_s", ">=", 400.0),
)

REQUEST_TIMEOUT_S = 30.0
MAX_ERRORS_PER_PHASE = 10


class BenchError(RuntimeError):
    """The benchmark cannot continue (setup failed, server misbehaves)."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an ascending sequence."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float | int]:
    s = sorted(samples_ms)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "p50_ms": round(percentile(s, 50), 3),
        "p95_ms": round(percentile(s, 95), 3),
        "p99_ms": round(percentile(s, 99), 3),
        "mean_ms": round(sum(s) / len(s), 3),
        "min_ms": round(s[0], 3),
        "max_ms": round(s[-1], 3),
    }


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # skip "pid (comm) "; comm may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def huizhen_command(override: str | None) -> list[str]:
    if override:
        return shlex.split(override)
    script = Path(sys.executable).parent / "huizhen"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "server"]


def stop_process(proc: subprocess.Popen[Any] | None, name: str, grace_s: float = 10.0) -> None:
    """SIGTERM the process group we created, then SIGKILL after grace_s; never hangs."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within {grace_s:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def wait_for_redis(port: int, proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"redis-server exited early with status {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"redis-server on port {port} did not answer PING within {timeout_s:.0f}s")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Stack:
    """The processes and files of one benchmark run."""

    workdir: Path
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # The source tree the CLI runs from (cwd; bench/render_ab.py points it at another build).
    repo: Path = REPO
    password: str = ""
    base_url: str = ""
    redis: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None
    calibration: subprocess.Popen[bytes] | None = None
    calibration_url: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        port = free_port()
        rdir = self.workdir / "redis"
        rdir.mkdir()
        self.redis = subprocess.Popen(
            [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(rdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for_redis(port, self.redis)
        self.env["HUIZHEN_REDIS_URL"] = f"redis://{HOST}:{port}/0"

    def seed_demo(self, timeout_s: float) -> None:
        t0 = time.monotonic()
        try:
            done = subprocess.run(
                [*self.cmd, "demo"], env=self.env, cwd=self.repo, capture_output=True,
                timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"`huizhen demo` took longer than {timeout_s:.0f}s") from exc
        self.timings["demo_s"] = round(time.monotonic() - t0, 3)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
            raise BenchError(f"`huizhen demo` failed with status {done.returncode}:\n{out}")

    def start_server(self) -> None:
        port = free_port()
        self.env["HUIZHEN_PORT"] = str(port)
        self.base_url = f"http://{HOST}:{port}"
        self.server_log = self.workdir / "server.log"
        with self.server_log.open("wb") as out:
            self.server = subprocess.Popen(
                [*self.cmd, "serve"], env=self.env, cwd=self.repo, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def phase(self) -> Phase:
        """Start measuring a phase against the server (and its Redis) processes."""
        assert self.server is not None
        return Phase(self.server.pid, self.redis.pid if self.redis else None)

    def start_calibration(self) -> None:
        port = free_port()
        self.calibration_url = f"http://{HOST}:{port}"
        self.calibration = subprocess.Popen(
            [sys.executable, "-c", CALIBRATION_SERVER, HOST, str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def stop(self) -> None:
        stop_process(self.calibration, "calibration server", grace_s=5)
        stop_process(self.server, "huizhen serve")
        stop_process(self.redis, "redis-server")


#: Set by the benchmark itself; any other HUIZHEN_* (e.g. HUIZHEN_RENDER_THREADS,
#: HUIZHEN_FRAME_CACHE_MB) passes through to the server, so tuning can be compared.
OWN_ENV = ("HUIZHEN_DATA_DIR", "HUIZHEN_HOST", "HUIZHEN_PORT", "HUIZHEN_REDIS_URL",
           "HUIZHEN_SECRET_KEY", "HUIZHEN_DEMO_PASSWORD")


def tuning_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("HUIZHEN_") and k not in OWN_ENV}


def make_env(workdir: Path, password: str, log_level: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN_ENV}
    env.update(
        HUIZHEN_DATA_DIR=str(workdir / "data"),
        HUIZHEN_HOST=HOST,
        HUIZHEN_SECRET_KEY=secrets.token_urlsafe(32),
        HUIZHEN_DEMO_PASSWORD=password,
        PYTHONUNBUFFERED="1",
    )
    if log_level:
        env["HUIZHEN_LOG_LEVEL"] = log_level
    # loopback only: never route through a proxy
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


# --------------------------------------------------------------------------------------------
# HTTP client side
# --------------------------------------------------------------------------------------------


class Windows:
    """Hands out windows never used before in this run, all close to the CT soft-tissue window
    (40/400) so that every phase encodes images of similar content and size.

    Centre steps by 1 HU through [-10, 89]; after each 100 the width grows by 1 HU from 350, so
    every (centre, width) pair is unique and the server's rendered-image cache can never answer.
    """

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        n = self.n
        self.n += 1
        return f"{-10 + n % 100},{350 + n // 100},linear"


@dataclass
class Series:
    study: str
    series: str
    instances: list[str]


@dataclass
class Client:
    session: aiohttp.ClientSession
    base_url: str
    headers: dict[str, str]

    async def get_json(self, path: str, **params: str) -> Any:
        async with self.session.get(self.base_url + path, params=params or None,
                                    headers={**self.headers,
                                             "Accept": "application/dicom+json"}) as r:
            if r.status == 204:
                return []
            if r.status != 200:
                raise BenchError(f"GET {path} -> {r.status}: {(await r.text())[:300]}")
            return await r.json(content_type=None)

    def rendered_path(self, s: Series, sop: str) -> str:
        return (f"/dicomweb/studies/{s.study}/series/{s.series}/instances/{sop}"
                "/frames/1/rendered")

    async def render(self, s: Series, sop: str, window: str, media_type: str,
                     errors: list[str]) -> tuple[float, int]:
        """One rendered request; returns (latency ms, body bytes); errors are appended."""
        url = self.base_url + self.rendered_path(s, sop)
        params = {"window": window, "quality": "90"}
        headers = {**self.headers, "Accept": media_type}
        t0 = time.perf_counter()
        try:
            async with self.session.get(url, params=params, headers=headers) as r:
                body = await r.read()
                elapsed = (time.perf_counter() - t0) * 1000.0
                ctype = r.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) > MAX_ERRORS_PER_PHASE:
                raise BenchError(f"too many failed renders; first: {errors[0]}") from exc
            return (time.perf_counter() - t0) * 1000.0, 0
        if r.status != 200:
            errors.append(f"{r.status} {body[:200].decode(errors='replace')}")
        elif not ctype.startswith(media_type) or not body.startswith(MAGIC[media_type]):
            errors.append(f"unexpected body: Content-Type {ctype!r}, {len(body)} bytes")
        if len(errors) > MAX_ERRORS_PER_PHASE:
            raise BenchError(f"too many failed renders; first: {errors[0]}")
        return elapsed, len(body)


def uid_of(item: dict[str, Any], tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or []
    return str(values[0]) if values else None


def int_of(item: dict[str, Any], tag: str) -> int:
    values = item.get(tag, {}).get("Value") or []
    try:
        return int(values[0])
    except (IndexError, TypeError, ValueError):
        return 0


async def wait_healthy(session: aiohttp.ClientSession, stack: Stack, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        assert stack.server is not None
        if stack.server.poll() is not None:
            raise BenchError(
                f"`huizhen serve` exited with status {stack.server.returncode}; log tail:\n"
                + tail(stack.server_log or Path("/nonexistent"))
            )
        try:
            async with session.get(stack.base_url + "/healthz",
                                   timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.1)
    raise BenchError(f"/healthz not 200 within {timeout_s:.0f}s (last: {last}); log tail:\n"
                     + tail(stack.server_log or Path("/nonexistent")))


async def login(session: aiohttp.ClientSession, base_url: str, password: str) -> str:
    async with session.post(base_url + "/api/auth/login",
                            json={"username": DEMO_USER, "password": password}) as r:
        if r.status != 200:
            raise BenchError(f"login as {DEMO_USER} -> {r.status}: {(await r.text())[:300]}")
        token = (await r.json()).get("token")
    if not token:
        raise BenchError("login answered without a token")
    return str(token)


async def find_ct_series(client: Client, patient_id: str = DEMO_PATIENT_ID) -> Series:
    studies = await client.get_json("/dicomweb/studies", PatientID=patient_id)
    best: Series | None = None
    for study in studies:
        study_uid = uid_of(study, STUDY_UID)
        if not study_uid:
            continue
        for se in await client.get_json(f"/dicomweb/studies/{study_uid}/series"):
            series_uid = uid_of(se, SERIES_UID)
            modality = uid_of(se, MODALITY)
            if not series_uid or (modality and modality != "CT"):
                continue
            if best is not None and int_of(se, SERIES_INSTANCES) and \
                    int_of(se, SERIES_INSTANCES) <= len(best.instances):
                continue
            insts = await client.get_json(
                f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances")
            sops = [uid for uid in (uid_of(i, SOP_UID) for i in insts) if uid]
            if best is None or len(sops) > len(best.instances):
                best = Series(study_uid, series_uid, sops)
    if best is None or not best.instances:
        raise BenchError(f"no CT series found for PatientID {patient_id}")
    return best


@dataclass
class Phase:
    """Bookkeeping around one measured phase: server CPU, client CPU, wall time."""

    server_pid: int
    redis_pid: int | None = None
    images: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._srv0 = process_cpu_s(self.server_pid)
        self._redis0 = process_cpu_s(self.redis_pid) if self.redis_pid else None
        self._cli0 = self_cpu_s()
        self._t0 = time.perf_counter()

    def finish(self, **extra: Any) -> dict[str, Any]:
        wall = time.perf_counter() - self._t0
        srv1 = process_cpu_s(self.server_pid)
        out: dict[str, Any] = dict(extra)
        out["images"] = self.images
        out["wall_s"] = round(wall, 3)
        if self._srv0 is not None and srv1 is not None:
            srv = srv1 - self._srv0
            out["server_cpu_s"] = round(srv, 3)
            if self.images:
                out["server_cpu_ms_per_image"] = round(1000 * srv / self.images, 3)
        if self._redis0 is not None and self.redis_pid:
            redis1 = process_cpu_s(self.redis_pid)
            if redis1 is not None:
                out["redis_cpu_s"] = round(redis1 - self._redis0, 3)
        out["client_cpu_s"] = round(self_cpu_s() - self._cli0, 3)
        if self.images and self.bytes:
            out["mean_body_kb"] = round(self.bytes / self.images / 1024, 1)
        out["errors"] = len(self.errors)
        if self.errors:
            out["first_error"] = self.errors[0]
        return out


async def bounded(coro: Awaitable[Any], budget_s: float, what: str) -> Any:
    try:
        async with asyncio.timeout(budget_s):
            return await coro
    except TimeoutError:
        raise BenchError(f"{what} did not finish within {budget_s:.0f}s") from None


async def phase_cold(client: Client, s: Series, stack: Stack, media: str) -> dict[str, Any]:
    ph = stack.phase()
    lat: list[float] = []
    for sop in s.instances:
        ms, size = await client.render(s, sop, "40,400,linear", media, ph.errors)
        lat.append(ms)
        ph.images += 1
        ph.bytes += size
    return ph.finish(**latency_stats(lat))


async def phase_warm(client: Client, s: Series, stack: Stack, media: str, requests: int,
                     windows: Windows) -> dict[str, Any]:
    sop = s.instances[len(s.instances) // 2]
    errors: list[str] = []
    await client.render(s, sop, windows.next(), media, errors)  # make sure it is decoded
    ph = stack.phase()
    ph.errors = errors
    lat: list[float] = []
    for _ in range(requests):
        ms, size = await client.render(s, sop, windows.next(), media, ph.errors)
        lat.append(ms)
        ph.images += 1
        ph.bytes += size
    return ph.finish(**latency_stats(lat))


async def phase_scroll(client: Client, s: Series, stack: Stack, media: str, clients: int,
                       passes: int, windows: Windows) -> dict[str, Any]:
    ph = stack.phase()
    lat: list[float] = []
    # windows are assigned up front so that each (client, pass) has its own
    plan = [[windows.next() for _ in range(passes)] for _ in range(clients)]

    async def one_client(k: int) -> None:
        # start each client at a different place in the stack, as independent viewers would
        offset = (k * len(s.instances)) // clients
        order = s.instances[offset:] + s.instances[:offset]
        for window in plan[k]:
            for sop in order:
                ms, size = await client.render(s, sop, window, media, ph.errors)
                lat.append(ms)
                ph.images += 1
                ph.bytes += size

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    return ph.finish(clients=clients, passes=passes,
                     slices_per_s=round(ph.images / wall, 1) if wall > 0 else None,
                     **latency_stats(lat))


async def phase_cached(client: Client, s: Series, stack: Stack, media: str,
                       requests: int) -> dict[str, Any]:
    """The same slice and window again and again: rendered-image cache hits. The floor of the
    rendered endpoint (auth, index lookup, audit write, HTTP); warm minus this = render cost."""
    sop = s.instances[len(s.instances) // 2]
    errors: list[str] = []
    await client.render(s, sop, "40,400,linear", media, errors)
    ph = stack.phase()
    ph.errors = errors
    lat: list[float] = []
    for _ in range(requests):
        ms, size = await client.render(s, sop, "40,400,linear", media, ph.errors)
        lat.append(ms)
        ph.images += 1
        ph.bytes += size
    return ph.finish(**latency_stats(lat))


async def phase_baseline(client: Client, phase: Phase, requests: int,
                         path: str = "/api/me") -> dict[str, Any]:
    """GET /api/me: an authenticated request that renders nothing (HTTP, token, one Redis
    read). With the calibration server: a bare aiohttp handler, the machine's floor."""
    ph = phase
    lat: list[float] = []
    for _ in range(requests):
        t0 = time.perf_counter()
        async with client.session.get(client.base_url + path,
                                      headers=client.headers) as r:
            body = await r.read()
            lat.append((time.perf_counter() - t0) * 1000.0)
        if r.status != 200:
            ph.errors.append(f"{r.status} {body[:200].decode(errors='replace')}")
            if len(ph.errors) > MAX_ERRORS_PER_PHASE:
                raise BenchError(f"GET {path} keeps failing: {ph.errors[0]}")
        ph.images += 1
    out = ph.finish(**latency_stats(lat))
    out["requests"] = out.pop("images")
    if "server_cpu_ms_per_image" in out:
        out["server_cpu_ms_per_request"] = out.pop("server_cpu_ms_per_image")
    return out


CALIBRATION_SERVER = """
import sys
from aiohttp import web

async def hello(request):
    return web.json_response({"ok": True})

app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), access_log=None, print=None)
"""


async def calibrate(session: aiohttp.ClientSession, stack: Stack,
                    requests: int) -> dict[str, Any]:
    """Same client, same loopback, a bare aiohttp app: how fast this machine is right now."""
    proc = stack.calibration
    assert proc is not None
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise BenchError("the calibration server exited early")
        try:
            async with session.get(stack.calibration_url + "/") as r:
                if r.status == 200:
                    break
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise BenchError("the calibration server did not start within 20s")
        await asyncio.sleep(0.1)
    return await phase_baseline(Client(session, stack.calibration_url, {}), Phase(proc.pid),
                                requests, "/")


def lookup(results: dict[str, Any], dotted: str) -> float | None:
    node: Any = results
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) else None


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, key, op, limit in TARGETS:
        value = lookup(results, key)
        ok = value is not None and (value <= limit if op == "<=" else value >= limit)
        phase = results.get(key.split(".")[0], {})
        if isinstance(phase, dict) and phase.get("errors"):
            ok = False
        out.append({"name": name, "metric": key, "value": value, "op": op, "limit": limit,
                    "pass": ok})
    return out


async def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trust_env=False) as session:
        t0 = time.monotonic()
        await wait_healthy(session, stack, args.startup_timeout)
        stack.timings["server_ready_s"] = round(time.monotonic() - t0, 3)
        assert stack.server is not None
        pid = stack.server.pid
        cpu_after_start = process_cpu_s(pid)

        token = await login(session, stack.base_url, stack.password)
        client = Client(session, stack.base_url, {"Authorization": f"Bearer {token}"})
        full = await bounded(find_ct_series(client), 60, "QIDO")
        used = full.instances[: args.slices_limit] if args.slices_limit else full.instances
        s = Series(full.study, full.series, used)
        log(f"CT series {s.series}: {len(full.instances)} instances, using {len(used)}")

        windows = Windows()
        results: dict[str, Any] = {}
        budget = args.phase_timeout

        log("cold: first render of each instance")
        results["cold_jpeg"] = await bounded(
            phase_cold(client, s, stack, "image/jpeg"), budget, "cold phase")

        rounds = []
        for r in range(args.rounds):
            log(f"warm JPEG round {r + 1}/{args.rounds}: {args.requests} new windows")
            rounds.append(await bounded(
                phase_warm(client, s, stack, "image/jpeg", args.requests, windows), budget,
                "warm phase"))
        results["warm_jpeg"] = pool_rounds(rounds)

        log(f"context: {args.requests} image-cache hits, {args.requests} x GET /api/me")
        results["cached_jpeg"] = await bounded(
            phase_cached(client, s, stack, "image/jpeg", args.requests), budget, "cached phase")
        results["baseline_api_me"] = await bounded(
            phase_baseline(client, stack.phase(), args.requests), budget, "baseline phase")

        for n in (1, 8):
            log(f"scroll JPEG, {n} client(s) x {args.passes} pass(es)")
            results[f"scroll_jpeg_{n}"] = await bounded(
                phase_scroll(client, s, stack, "image/jpeg", n, args.passes, windows), budget,
                "scroll phase")

        log("PNG: warm + 8-client scroll")
        png_rounds = [await bounded(
            phase_warm(client, s, stack, "image/png", args.requests, windows), budget,
            "warm PNG phase")]
        results["warm_png"] = pool_rounds(png_rounds)
        results["scroll_png_8"] = await bounded(
            phase_scroll(client, s, stack, "image/png", 8, args.passes, windows), budget,
            "PNG scroll phase")

        if args.calibrate:
            log(f"calibration: {args.requests} x GET / on a bare aiohttp app")
            results["calibration_bare_aiohttp"] = await bounded(
                calibrate(session, stack, args.requests), budget, "calibration")

        cpu_end = process_cpu_s(pid)
        server_info = {
            "pid": pid,
            "cpu_s_startup": cpu_after_start,
            "cpu_s_total": cpu_end,
            "cpu_s_measured": (round(cpu_end - cpu_after_start, 3)
                               if cpu_end is not None and cpu_after_start is not None else None),
        }
        series_info = {"study_uid": s.study, "series_uid": s.series,
                       "instances_in_series": len(full.instances),
                       "instances_used": len(used),
                       "unique_windows_used": windows.n}
        return {"results": results, "server": server_info, "series": series_info}


def pool_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures over rounds (target checks use these) plus each round for the spread."""
    pooled_lat: dict[str, Any] = {}
    keys = ("p50_ms", "p95_ms", "mean_ms")
    for k in keys:
        vals = [r[k] for r in rounds if k in r]
        if vals:
            # median of rounds for p50/p95/mean: robust against one noisy round
            vals.sort()
            pooled_lat[k] = vals[len(vals) // 2]
    spread = {k: [r.get(k) for r in rounds] for k in keys}
    return {
        **pooled_lat,
        "rounds": len(rounds),
        "images": sum(r.get("images", 0) for r in rounds),
        "errors": sum(r.get("errors", 0) for r in rounds),
        "server_cpu_ms_per_image": _median([r.get("server_cpu_ms_per_image") for r in rounds]),
        "mean_body_kb": _median([r.get("mean_body_kb") for r in rounds]),
        "per_round": spread,
        "round_detail": rounds,
    }


def _median(values: list[Any]) -> float | None:
    vals = sorted(v for v in values if isinstance(v, int | float))
    return vals[len(vals) // 2] if vals else None


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _fmt(v: Any, nd: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def summary_line(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"render bench: ERROR {report['error'].splitlines()[0]}"
    r = report["results"]
    t = {x["metric"]: x for x in report["targets"]}

    def mark(metric: str) -> str:
        return "PASS" if t[metric]["pass"] else "FAIL"

    w, c, s8 = r["warm_jpeg"], r["cold_jpeg"], r["scroll_jpeg_8"]
    load0 = report["host"]["loadavg_before"][0]
    load1 = report["host"]["loadavg_after"][0]
    verdict = "ALL PASS" if report["pass"] else "SOME FAIL"
    return (
        f"render bench: warm JPEG p50 {_fmt(w.get('p50_ms'))} ms [{mark('warm_jpeg.p50_ms')}]"
        f" p95 {_fmt(w.get('p95_ms'))} ms [{mark('warm_jpeg.p95_ms')}]"
        f" | cold p50 {_fmt(c.get('p50_ms'))} ms [{mark('cold_jpeg.p50_ms')}]"
        f" | scroll 1c {_fmt(r['scroll_jpeg_1'].get('slices_per_s'), 0)}/s"
        f" 8c {_fmt(s8.get('slices_per_s'), 0)}/s [{mark('scroll_jpeg_8.slices_per_s')}]"
        f" | PNG warm p50 {_fmt(r['warm_png'].get('p50_ms'))} ms"
        f" 8c {_fmt(r['scroll_png_8'].get('slices_per_s'), 0)}/s"
        f" | load1 {load0:.2f}->{load1:.2f} on {report['host']['cpus']} CPUs | {verdict}"
    )


def human_table(report: dict[str, Any]) -> Iterator[str]:
    r = report["results"]
    yield f"{'phase':<26}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'slices/s':>10}" \
          f"{'srv ms/img':>11}{'KB':>7}"
    for name, ph in r.items():
        n = ph.get("images", ph.get("requests", 0))
        cpu = ph.get("server_cpu_ms_per_image", ph.get("server_cpu_ms_per_request"))
        yield (f"{name:<26}{n:>6}{_fmt(ph.get('p50_ms')):>9}"
               f"{_fmt(ph.get('p95_ms')):>9}{_fmt(ph.get('mean_ms')):>9}"
               f"{_fmt(ph.get('slices_per_s'), 0):>10}"
               f"{_fmt(cpu):>11}"
               f"{_fmt(ph.get('mean_body_kb'), 0):>7}")
    w = r["warm_jpeg"]["per_round"]
    yield "warm JPEG rounds p50: " + ", ".join(_fmt(v) for v in w["p50_ms"]) + \
          " | p95: " + ", ".join(_fmt(v) for v in w["p95_ms"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="warm JPEG rounds (default 3)")
    p.add_argument("--requests", type=int, default=300,
                   help="requests per warm round, each with a new window (default 300)")
    p.add_argument("--passes", type=int, default=2,
                   help="passes through the stack per scroll client (default 2)")
    p.add_argument("--slices-limit", type=int, default=0,
                   help="use only the first N instances for cold/scroll (default: all)")
    p.add_argument("--json-only", action="store_true", help="print only the JSON document")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    p.add_argument("--huizhen", default=None,
                   help="command that runs the CLI (default: .venv/bin/huizhen, else "
                        "'python -m server')")
    p.add_argument("--log-level", default=None,
                   help="HUIZHEN_LOG_LEVEL for the server (default: the server's own)")
    p.add_argument("--demo-timeout", type=float, default=300.0)
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--phase-timeout", type=float, default=180.0,
                   help="upper bound for any one measured phase (s)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="upper bound for the whole measurement (s)")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="skip the bare-aiohttp calibration (the machine's HTTP floor)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temp dir (server log, data) for inspection")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.requests < 1 or args.passes < 1 or args.slices_limit < 0:
        p.error("--rounds, --requests and --passes must be >= 1; --slices-limit >= 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hz-bench-"))
    password = secrets.token_urlsafe(18)
    stack = Stack(workdir=workdir, cmd=huizhen_command(args.huizhen), password=password,
                  env=make_env(workdir, password, args.log_level))
    report: dict[str, Any] = {
        "bench": "render",
        "version": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {"rounds": args.rounds, "requests": args.requests, "passes": args.passes,
                   "slices_limit": args.slices_limit, "quality": 90,
                   "command": " ".join(stack.cmd), "server_env": tuning_env()},
    }
    try:
        log(f"temp dir {workdir}")
        (workdir / "data").mkdir()
        stack.start_redis()
        log("seeding demo data (huizhen demo)")
        stack.seed_demo(args.demo_timeout)
        log(f"demo seeded in {stack.timings['demo_s']:.1f}s; starting huizhen serve")
        stack.start_server()
        if args.calibrate:
            stack.start_calibration()
        measured = asyncio.run(bounded(measure(stack, args), args.timeout, "the benchmark"))
        report.update(measured)
        report["targets"] = evaluate_targets(report["results"])
        report["pass"] = all(t["pass"] for t in report["targets"])
    except (BenchError, aiohttp.ClientError, TimeoutError) as exc:
        report["error"] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BenchError) \
            else str(exc)
        if stack.server is not None:
            report["server_exit_status"] = stack.server.poll()  # None: still running
            report["server_log_tail"] = tail(stack.server_log or Path("/nonexistent"), 60)
    finally:
        stack.stop()
        report["host"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        report["timings"] = stack.timings
        if args.keep:
            report["workdir"] = str(workdir)
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _terminated(signum: int, _frame: object) -> None:
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C so the finally clause stops the
    # children: they run in their own sessions and would otherwise outlive us.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    report = run(args)
    print(json.dumps(report, indent=2))
    if "error" in report:
        log(report["error"])
    elif not args.json_only:
        for line in human_table(report):
            log(line)
    if not args.json_only:
        print(summary_line(report))
    if "error" in report:
        return 2
    return 1 if args.strict and not report["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())

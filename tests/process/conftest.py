"""A real `python -m server serve` process (default limits), for tests that measure the server's
own memory: peak resident size (VmHWM) read from /proc, reset between steps via clear_refs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 23  # not 21 (the browser tests' odd_server) nor 22 (test_mdt_two_processes)
MiB = 2**20


@dataclass(frozen=True)
class ServerProcess:
    url: str
    pid: int
    token: str
    data_dir: Path

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")

    def reset_peak(self) -> int:
        """Start a new peak measurement (clear_refs 5 resets VmHWM to VmRSS); returns VmRSS."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
        timeout: float = 120,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method,
            headers={"Authorization": f"Bearer {self.token}", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def _add_doctor(redis_url: str, password: str) -> None:
    """What `huizhen clinic add` and `huizhen user add` do, without two more interpreters."""
    import asyncio

    from server.auth.passwords import hash_password
    from server.store import Store
    from server.store.directory import Role

    async def add() -> None:
        store = Store.from_url(redis_url)
        try:
            await store.directory.add_clinic("Qingshui Township", "qingshui")
            await store.directory.add_user("dr.mem", role=Role.DOCTOR, clinic="qingshui",
                                           password_hash=hash_password(password))
        finally:
            await store.close()

    asyncio.run(add())


@pytest.fixture(scope="module")
def server_process(redis_server) -> Iterator[ServerProcess]:
    import redis

    redis.Redis.from_url(redis_server.url(REDIS_DB)).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="hz-process-"))
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HUIZHEN_DATA_DIR": str(data_dir),
        "HUIZHEN_REDIS_URL": redis_server.url(REDIS_DB),
        "HUIZHEN_SECRET_KEY": secrets.token_urlsafe(32),
        "HUIZHEN_PORT": str(port),
        "HUIZHEN_HOST": "127.0.0.1",
        "HUIZHEN_LOG_LEVEL": "WARNING",
    }
    for name in ("HUIZHEN_MAX_UPLOAD_MB", "HUIZHEN_MAX_FRAME_PIXELS", "HUIZHEN_MAX_IMAGE_PIXELS"):
        env.pop(name, None)  # the defaults are what is measured
    _add_doctor(redis_server.url(REDIS_DB), password)
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < end, log_path.read_text()[-4000:]
            time.sleep(0.2)
        login = urllib.request.Request(
            f"{url}/api/auth/login", method="POST",
            data=json.dumps({"username": "dr.mem", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=30) as r:
            token = json.loads(r.read())["token"]
        yield ServerProcess(url, proc.pid, token, data_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(data_dir, ignore_errors=True)

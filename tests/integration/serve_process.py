"""A real `huizhen serve` process for tests of what only a whole process shows: the embedded
Redis and its supervision, files at rest, TLS, and signals."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def short_data_dir() -> Path:
    # The embedded Redis listens on a unix socket under the data dir: keep the path short.
    return Path(tempfile.mkdtemp(prefix="hz-", dir="/tmp"))


@dataclass
class ServeProcess:
    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)

    @classmethod
    def environment(cls, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUIZHEN_")}
        env.update({
            "HUIZHEN_DATA_DIR": str(data_dir),
            "HUIZHEN_PORT": str(port),
            "HUIZHEN_HOST": "127.0.0.1",
            "HUIZHEN_SECRET_KEY": "serve-process-secret-" + "k" * 32,
            "HUIZHEN_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
        })
        env.update(extra)
        return env

    def start(self, timeout_s: float = 60.0) -> str:
        """Start and wait for the 'Open URL' line; returns the URL printed."""
        self.lines.clear()
        self._queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], cwd=REPO, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self.wait_for_line("Open ", timeout_s).split("Open ", 1)[1].strip()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, needle: str, timeout_s: float = 30.0) -> str:
        """The first output line (from now on, or already seen) that contains `needle`."""
        for line in self.lines:
            if needle in line:
                return line
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} in server output:\n" + "\n".join(self.lines))
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"server exited ({self.proc.wait()}) before {needle!r}:\n"
                    + "\n".join(self.lines))
            self.lines.append(line)
            if needle in line:
                return line

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """A clean shutdown (SIGTERM, as systemd and Docker send); returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return "\n".join(self.lines)
            if line is not None:
                self.lines.append(line)


def process_gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for a parent that is not the test."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def run_reindex(env: dict[str, str], redis_url: str) -> str:
    """`huizhen reindex` as its own process against `redis_url`; its output (exit code 0)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "reindex", env={**env, "HUIZHEN_REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()

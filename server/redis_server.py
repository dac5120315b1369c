"""The embedded default: a private redis-server child with AOF, its data under HUIZHEN_DATA_DIR.

It listens on a unix socket in the data dir (no TCP port to collide with or expose). A CLI command
run while `huizhen serve` is up reuses the running server instead of starting a second one on the
same files.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

from server.errors import ConfigurationError
from server.log import event

log = logging.getLogger(__name__)

_UNIX_PATH_MAX = 100  # sockaddr_un holds 108 bytes; keep a margin


class EmbeddedRedis:
    def __init__(
        self, directory: Path, binary: str = "redis-server", appendfsync: str = "everysec"
    ) -> None:
        self.directory = directory
        self.binary = binary
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None
        self.socket_path = directory / "redis.sock"
        if len(str(self.socket_path)) > _UNIX_PATH_MAX:
            raise ConfigurationError(
                f"HUIZHEN_DATA_DIR is too deep for a unix socket ({self.socket_path}); "
                "use a shorter path or set HUIZHEN_REDIS_URL"
            )

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 10.0) -> str:
        """Start (or reuse) the private server; returns its URL."""
        if self._alive():
            event(log, "embedded_redis_reused", socket=self.socket_path)
            return self.url
        binary = shutil.which(self.binary)
        if binary is None:
            raise ConfigurationError(
                "redis-server is not installed; `make run` installs it, or set HUIZHEN_REDIS_URL"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        args = [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.directory),
            # Clinical records: every write is on disk before Redis answers.
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not self._alive():
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ConfigurationError(f"redis-server exited at start: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError("redis-server did not answer within 10 s")
            time.sleep(0.05)
        event(log, "embedded_redis_started", pid=self._proc.pid, socket=self.socket_path)
        return self.url

    def stop(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        event(log, "embedded_redis_stopped", pid=proc.pid)

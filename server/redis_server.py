"""The embedded default: a private redis-server child with AOF, its data under HUIZHEN_DATA_DIR.

It listens on a unix socket in the data dir (no TCP port to collide with or expose). A CLI command
run while `huizhen serve` is up borrows the running server instead of starting a second one on
the same files.

`huizhen serve` owns it (`own=True`): a server found running without a live `huizhen serve` is
the orphan of a killed one and is adopted (configured like a fresh one, stopped on a clean
shutdown); and it is supervised: when redis-server dies, a watcher thread reaps it and starts a
new one with backoff (the AOF replays). Meanwhile requests answer 503 (server/errors.py), and
redis-py reconnects on its own once the socket answers again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import redis

from server.errors import ConfigurationError
from server.log import event

log = logging.getLogger(__name__)

_UNIX_PATH_MAX = 100  # sockaddr_un holds 108 bytes; keep a margin
# Restart delays: quick first (a SIGKILL is over at once), capped so a broken binary or a full
# disk does not become a fork loop.
BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# An adopted server is not our child (no wait()): it is watched by pinging it.
_ADOPTED_POLL_S = 0.5
# Files Redis writes (AOF, log) are created under this umask: readable by the owner only.
FILE_UMASK = 0o077


class EmbeddedRedis:
    def __init__(
        self, directory: Path, binary: str = "redis-server", appendfsync: str = "everysec"
    ) -> None:
        self.directory = directory
        self.binary = binary
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        self._owner = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0
        self.socket_path = directory / "redis.sock"
        if len(str(self.socket_path)) > _UNIX_PATH_MAX:
            raise ConfigurationError(
                f"HUIZHEN_DATA_DIR is too deep for a unix socket ({self.socket_path}); "
                "use a shorter path or set HUIZHEN_REDIS_URL"
            )

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """The redis-server process this object owns (a child or an adopted orphan)."""
        if self._proc is not None:
            return self._proc.pid
        return self._adopted_pid

    def _client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        client = self._client()
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 10.0, *, own: bool = False) -> str:
        """Start (or reuse) the private server; returns its URL.

        own=True (huizhen serve): a running server is adopted, and stop() ends it."""
        self._owner = own
        if self._alive():
            if own:
                self._adopt()
            else:
                event(log, "embedded_redis_reused", socket=self.socket_path)
            return self.url
        self._spawn(timeout_s)
        return self.url

    def _adopt(self) -> None:
        client = self._client()
        try:
            info = client.info("server")
            # Whatever it was started with, it now runs with this configuration.
            client.config_set("appendfsync", self.appendfsync)
        finally:
            client.close()
        self._adopted_pid = int(info["process_id"])
        event(log, "embedded_redis_adopted", pid=self._adopted_pid, socket=self.socket_path)

    def _spawn(self, timeout_s: float) -> None:
        binary = shutil.which(self.binary)
        if binary is None:
            raise ConfigurationError(
                "redis-server is not installed; `make run` installs it, or set HUIZHEN_REDIS_URL"
            )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
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
            "--appendonly",
            "yes",
            # everysec (default): writes reach the kernel before Redis answers, so a crash of
            # Redis or Huizhen loses nothing acknowledged; only a power cut can lose ~1 s.
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, umask=FILE_UMASK
        )
        self._proc = proc
        deadline = time.monotonic() + timeout_s
        while not self._alive():
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                self._proc = None
                raise ConfigurationError(f"redis-server exited at start: {err.strip()}")
            if time.monotonic() > deadline:
                self._proc = None
                proc.kill()
                proc.wait()
                raise ConfigurationError(f"redis-server did not answer within {timeout_s:g} s")
            time.sleep(0.05)
        event(log, "embedded_redis_started", pid=proc.pid, socket=self.socket_path,
              appendfsync=self.appendfsync)

    # -- supervision (huizhen serve) ------------------------------------------------------------

    def supervise(self) -> None:
        """Watch the server from a thread and restart it whenever it dies, until stop()."""
        if self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="hz-redis-watch", daemon=True)
        self._watcher.start()

    def _wait_for_death(self) -> int | None:
        proc = self._proc
        if proc is not None:
            return proc.wait()  # reaps it: no zombie is left behind
        while not self._stopping.wait(_ADOPTED_POLL_S):
            if not self._alive():
                return None
        return None

    def _watch(self) -> None:
        while not self._stopping.is_set():
            pid = self.pid
            returncode = self._wait_for_death()
            if self._stopping.is_set():
                return
            event(log, "embedded_redis_died", logging.ERROR, pid=pid, returncode=returncode)
            self._restart()

    def _restart(self) -> None:
        for attempt in range(10**9):
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._proc, self._adopted_pid = None, None
                try:
                    self._spawn(timeout_s=30.0)
                except ConfigurationError as exc:
                    event(log, "embedded_redis_restart_failed", logging.ERROR,
                          attempt=attempt + 1, error=exc.message)
                    continue
            self.restarts += 1
            event(log, "embedded_redis_restarted", pid=self.pid, attempt=attempt + 1)
            return

    # -- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server if this object owns it (started it, or adopted it)."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
            adopted, self._adopted_pid = self._adopted_pid, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            event(log, "embedded_redis_stopped", pid=proc.pid)
        elif adopted is not None and self._owner:
            self._shutdown_adopted(adopted)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
            self._watcher = None

    def _shutdown_adopted(self, pid: int) -> None:
        # Not our child: SIGTERM would do, but SHUTDOWN also says why in redis.log.
        client = self._client()
        try:
            client.shutdown()
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        event(log, "embedded_redis_stopped", pid=pid, adopted=True)

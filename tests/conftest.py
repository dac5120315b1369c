"""Session-wide test infrastructure: a private redis-server on a free port.

Tests never touch the machine's shared Redis. `$HUIZHEN_TEST_REDIS_URL` points the suite at an
existing server instead (CI with a managed Redis).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from tests.netns import NetnsUnavailable, enter_private_netns, interfaces

# CI (CI=true) runs every property test on the same examples, so a submission is judged on a
# repeatable suite; a developer's run explores new examples each time (and keeps what fails in
# .hypothesis/ for the next run).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """The whole session runs in a private network namespace holding only `lo`: WebRTC peers,
    Chromium and coturn can then reach nothing but loopback, whatever ICE decides."""
    if os.environ.get("HUIZHEN_TEST_REDIS_URL", "").startswith(("redis://", "rediss://")):
        # An external Redis over TCP is not reachable from a private namespace.
        return
    try:
        enter_private_netns()
    except NetnsUnavailable as exc:
        pytest.exit(f"{exc}; run the tests as root or enable unprivileged user namespaces", 2)
    assert interfaces() == ["lo"], interfaces()


@pytest.hookimpl(hookwrapper=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: object):
    """A test past its timeout (pytest-timeout's signal method) first prints every asyncio task
    of the loop it is stuck in, with its stack: a hang in an async fixture's teardown is a task
    waiting on another, which the thread stacks pytest-timeout prints do not show."""
    yield
    import signal

    handler = signal.getsignal(signal.SIGALRM)
    if not callable(handler):
        return

    def dump_tasks_then(signum: int, frame: object) -> None:
        import asyncio
        import sys

        loop = asyncio._get_running_loop()
        if loop is not None:
            out = sys.__stderr__
            print(f"\n+++ asyncio tasks of {item.nodeid} at its timeout +++", file=out)
            for task in asyncio.all_tasks(loop):
                print(f"task {task.get_name()}:", file=out)
                # the whole await chain (Task.print_stack shows only the outermost frame)
                aw: object = task.get_coro()
                frame = None
                for _ in range(40):
                    caller, frame = frame, getattr(aw, "cr_frame", None) \
                        or getattr(aw, "gi_frame", None) or getattr(aw, "ag_frame", None)
                    if frame is None and type(aw).__name__ == "async_generator_asend":
                        # an async fixture's teardown: the generator is in the caller's locals
                        agen = next((v for v in (caller.f_locals if caller else {}).values()
                                     if getattr(v, "ag_frame", None) is not None), None)
                        aw, frame = agen, getattr(agen, "ag_frame", None)
                    if frame is None:
                        if aw is not None:
                            print(f"    awaiting {aw!r}"[:300], file=out)
                        break
                    print(f"    {frame.f_code.co_filename}:{frame.f_lineno} "
                          f"{frame.f_code.co_name}", file=out)
                    aw = getattr(aw, "cr_await", None) or getattr(aw, "gi_yieldfrom", None) \
                        or getattr(aw, "ag_await", None)
            out.flush()
        handler(signum, frame)

    signal.signal(signal.SIGALRM, dump_tasks_then)


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_redis(url: str, deadline_s: float = 10.0) -> None:
    client = redis.Redis.from_url(url)
    end = time.monotonic() + deadline_s
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for the whole session (databases are split between test kinds)."""
    external = os.environ.get("HUIZHEN_TEST_REDIS_URL")
    if external:
        parsed = redis.connection.parse_url(external)
        yield RedisServer(parsed.get("host", "127.0.0.1"), int(parsed.get("port", 6379)))
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server is not installed: run `make test`, which installs it", 2)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hz-test-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--databases", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_redis(f"redis://127.0.0.1:{port}/0")
        yield RedisServer("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def serve_data_dir() -> Iterator[Path]:
    """A data dir for a real `huizhen serve` with its embedded Redis (whose unix socket path
    must stay short), removed afterwards."""
    from tests.integration.serve_process import short_data_dir

    path = short_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/browser/ is a browser test (tests/run.py runs them in their own
    process), and browser tests go last: Playwright's sync API keeps an event loop running for
    the rest of the session, which the asyncio tests must not share."""
    for item in items:
        if "tests/browser/" in item.nodeid.replace(os.sep, "/") or item.nodeid.startswith(
                "browser/"):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

"""`make test`: the whole suite in two concurrent pytest processes, so it fits the 10-minute
budget on 2 cores.

The browser tests run in one process of their own, one at a time: Playwright's sync API keeps an
event loop on its thread for the rest of a process, which asyncio tests must not share, and
Chromium pages are the heaviest thing the suite runs. Everything else runs beside them on
`--workers` pytest-xdist workers (whole files per worker: module fixtures stay together). Each
process, and each xdist worker, starts its own private redis-server and its own private network
namespace (tests/conftest.py), so they share nothing. With `$HUIZHEN_TEST_REDIS_URL` (one shared
external Redis) the non-browser tests run in one worker: their databases are fixed numbers.

The non-browser workers run at a lower CPU priority (nice 5): the browser tests time real
WebRTC calls (ICE checks, DTLS, first decoded frame) against wall-clock deadlines, the unit and
integration tests only against their own results, so on 2 shared cores the calls go first.

A stuck test must fail by name, never stall the run:
- pytest-timeout's signal method fails the test in its own worker and the worker carries on
  (the thread method ends the worker process; pytest-xdist 3.8's loadfile scheduler then waits
  forever for the replacement, pytest-dev/pytest-xdist#784/#1323);
- `--max-worker-restart=0`: a worker that dies anyway (a segfault) fails the run at once with
  the test it was running, instead of a replacement that may never be given work;
- `faulthandler_timeout` prints every thread's stack shortly before the timeout fires;
- a watchdog ends a pytest process that has printed nothing for `--quiet-limit` seconds.

The browser process's output is kept in a file and printed when it ends; the exit status is
non-zero if either process failed. Arguments after `--` go to both pytest runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO


def _lower_priority() -> None:
    os.nice(5)


class Watched:
    """A pytest process whose output is copied to `sink`; it is ended (its whole process group)
    when it has printed nothing for `quiet_limit` seconds."""

    def __init__(self, cmd: list[str], sink: IO[str], quiet_limit: float, name: str,
                 nice: bool = False) -> None:
        self.name = name
        self.quiet_limit = quiet_limit
        self.stalled = False
        self._sink = sink
        self._last = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True, preexec_fn=_lower_priority if nice else None)
        self._reader = threading.Thread(target=self._copy, daemon=True)
        self._reader.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        # pytest's progress dots arrive without newlines: copy what arrives, as it arrives
        while chunk := self.proc.stdout.read(1):
            self._last = time.monotonic()
            self._sink.write(chunk)
            self._sink.flush()

    def wait(self) -> int:
        while self.proc.poll() is None:
            if time.monotonic() - self._last > self.quiet_limit:
                self.stalled = True
                self._sink.write(f"\n== {self.name}: no output for {self.quiet_limit:.0f} s; "
                                 "interrupting it ==\n")
                # SIGINT first: pytest then prints where it was stuck and the summary so far;
                # SIGTERM and SIGKILL for a process that does not answer it.
                for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, sig)
                    try:
                        self.proc.wait(timeout=grace)
                        break
                    except subprocess.TimeoutExpired:
                        continue
                break
            time.sleep(1)
        self._reader.join(timeout=5)
        return 1 if self.stalled else self.proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="xdist workers for the non-browser tests (default 2)")
    parser.add_argument("--quiet-limit", type=float, default=300.0,
                        help="end a pytest process silent for this many seconds (default 300)")
    parser.add_argument("pytest_args", nargs="*", help="passed to both pytest runs")
    args = parser.parse_args(argv)
    python = sys.executable
    workers = 0 if os.environ.get("HUIZHEN_TEST_REDIS_URL") else args.workers
    common = ["-q", "-p", "no:cacheprovider", "-o", "timeout_method=signal",
              "-o", "faulthandler_timeout=110"]
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w+", prefix="hz-browser-tests-", suffix=".log") as log:
        browser = Watched([python, "-m", "pytest", "-m", "browser", *common, *args.pytest_args],
                          log, args.quiet_limit, "browser tests")
        rest_cmd = [python, "-m", "pytest", "-m", "not browser", *common]
        if workers > 1:
            rest_cmd += ["-n", str(workers), "--dist", "loadfile", "--max-worker-restart=0"]
        rest = Watched([*rest_cmd, *args.pytest_args], sys.stdout, args.quiet_limit,
                       "non-browser tests", nice=True).wait()
        print(f"\n== non-browser tests done in {time.monotonic() - started:.0f} s "
              f"(exit {rest}); waiting for the browser tests ==", flush=True)
        browser_rc = browser.wait()
        log.seek(0)
        print("\n== browser tests ==")
        sys.stdout.write(log.read())
    print(f"\n== whole suite: {time.monotonic() - started:.0f} s; non-browser exit {rest}, "
          f"browser exit {browser_rc} ==")
    # pytest's 5 means "no tests collected" (e.g. a -k that selects only one kind).
    return 0 if all(rc in (0, 5) for rc in (rest, browser_rc)) and (rest, browser_rc) != (5, 5) \
        else 1


if __name__ == "__main__":
    sys.exit(main())

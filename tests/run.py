"""`make test`: the whole suite in two concurrent pytest processes, so it fits the 10-minute
budget on 2 cores.

The browser tests run in one process of their own, one at a time: Playwright's sync API keeps an
event loop on its thread for the rest of a process, which asyncio tests must not share, and
Chromium pages are the heaviest thing the suite runs. Everything else runs beside them on
`--workers` pytest-xdist workers (whole files per worker: module fixtures stay together). Each
process, and each xdist worker, starts its own private redis-server and its own private network
namespace (tests/conftest.py), so they share nothing. With `$HUIZHEN_TEST_REDIS_URL` (one shared
external Redis) the non-browser tests run in one worker: their databases are fixed numbers.

The browser process's output is kept in a file and printed when it ends; the exit status is
non-zero if either process failed. Arguments after `--` go to both pytest runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2,
                        help="xdist workers for the non-browser tests (default 2)")
    parser.add_argument("pytest_args", nargs="*", help="passed to both pytest runs")
    args = parser.parse_args(argv)
    python = sys.executable
    workers = 0 if os.environ.get("HUIZHEN_TEST_REDIS_URL") else args.workers
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w+", prefix="hz-browser-tests-", suffix=".log") as log:
        browser = subprocess.Popen(
            [python, "-m", "pytest", "-q", "-m", "browser", "-p", "no:cacheprovider",
             *args.pytest_args],
            stdout=log, stderr=subprocess.STDOUT)
        rest_cmd = [python, "-m", "pytest", "-q", "-m", "not browser", "-p", "no:cacheprovider"]
        if workers > 1:
            # A test stuck past its timeout ends its worker with every thread's stack printed
            # (xdist reports it and starts another worker) instead of stalling the whole run.
            rest_cmd += ["-n", str(workers), "--dist", "loadfile", "-o", "timeout_method=thread"]
        rest = subprocess.call([*rest_cmd, *args.pytest_args])
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

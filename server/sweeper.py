"""The one periodic sweeper of a process: every domain's background sweep (worklist lease
expiry, alert and consult escalation, consult ring timeouts, experts' presence, room presence,
MDT opening) is registered here with its interval, instead of each service running its own
loop.

Each registered sweep runs in its own task, every `interval_s` after the previous run ended
(a slow sweep delays only itself). A sweep that must run on one node at a time names a lock
TTL: the sweeper then takes `hz:sweep:{name}:lock` (server/store/locks.py) before each run and
skips the run when another node holds it. The sweeps themselves stay idempotent
(compare-and-set steps), so the lock saves work and duplicate deliveries, not the records.

A failing sweep (Redis restarting) is logged through the rate-limited helper and the next one
catches up. Closing waits at most `CLOSE_TIMEOUT_S`: a Redis call that swallows the
cancellation must not hold the application's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from server.log_throttle import REALTIME as LOG_THROTTLE
from server.store.locks import Locks

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0

SweepFn = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Sweep:
    name: str
    sweep: SweepFn
    interval_s: float
    lock_ttl_s: float | None = None  # one node at a time when set


class Sweeping(Protocol):
    """A domain with periodic work: it registers its sweeps, the sweeper runs them."""

    def register_sweeps(self, sweeper: Sweeper) -> None: ...


class Sweeper:
    def __init__(self, locks: Locks | None = None) -> None:
        self._locks = locks
        self._node = secrets.token_hex(8)
        self._sweeps: dict[str, Sweep] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._closing = False

    def register(self, name: str, sweep: SweepFn, interval_s: float, *,
                 lock_ttl_s: float | None = None) -> None:
        """Run `sweep` every `interval_s` (from `start`, or at once if started already)."""
        if name in self._sweeps:
            raise ValueError(f"sweep {name!r} is registered already")
        if lock_ttl_s is not None and self._locks is None:
            raise ValueError(f"sweep {name!r} needs a lock but the sweeper has no store")
        self._sweeps[name] = Sweep(name, sweep, interval_s, lock_ttl_s)
        if self._started and not self._closing:
            self._tasks[name] = asyncio.create_task(self._loop(self._sweeps[name]))

    @property
    def names(self) -> list[str]:
        return list(self._sweeps)

    def start(self) -> None:
        self._started = True
        for sweep in self._sweeps.values():
            if sweep.name not in self._tasks:
                self._tasks[sweep.name] = asyncio.create_task(self._loop(sweep))

    async def close(self) -> None:
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, name: str) -> object | None:
        """One run of a registered sweep, under its lock if it has one (None: another node
        holds the lock). What the loop calls; tests call it to drive a sweep."""
        sweep = self._sweeps[name]
        if sweep.lock_ttl_s is None:
            return await sweep.sweep()
        assert self._locks is not None
        token = f"{self._node}:{secrets.token_hex(4)}"
        acquired: bool | None = None  # None: no answer (cancelled mid-call; it may be set)
        try:
            acquired = await self._locks.acquire(name, token, sweep.lock_ttl_s)
            if not acquired:
                return None
            return await sweep.sweep()
        finally:
            if acquired is not False:
                # Compare-and-delete with this run's token: frees only our own lock, so a
                # close that cancelled the SET before its reply leaves nothing held for the
                # TTL; shielded, so a close cancelling the release itself does not either.
                await asyncio.shield(self._locks.release(name, token))

    async def _loop(self, sweep: Sweep) -> None:
        while not self._closing:
            await asyncio.sleep(sweep.interval_s)
            if self._closing:
                return
            try:
                await self.run(sweep.name)
            except Exception:
                suppressed = LOG_THROTTLE.allow(f"sweep_failed:{sweep.name}")
                if suppressed is not None:
                    log.exception("sweep_failed", extra={"fields": {
                        "sweep": sweep.name, "suppressed": suppressed}})

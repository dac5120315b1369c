"""A service's periodic sweep (lease expiry, escalation steps): one background task per node
calling `sweep` every `interval_s` until closed.

A failing sweep (Redis restarting) is logged through the rate-limited helper and the next one
catches up; the sweeps themselves are idempotent and hold their own Redis locks. Closing waits
at most `CLOSE_TIMEOUT_S`: a Redis call that swallows the cancellation must not hold the
application's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from server.log_throttle import REALTIME as LOG_THROTTLE

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


class Sweeper:
    def __init__(self, name: str, sweep: Callable[[], Awaitable[object]],
                 interval_s: float) -> None:
        self.name = name
        self._sweep = sweep
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._task

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.interval_s)
            if self._closing:
                return
            try:
                await self._sweep()
            except Exception:
                suppressed = LOG_THROTTLE.allow(f"{self.name}_failed")
                if suppressed is not None:
                    log.exception(f"{self.name}_failed",
                                  extra={"fields": {"suppressed": suppressed}})

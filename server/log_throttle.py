"""Rate-limited logging: a hostile client that sends one bad message after another must not turn
each one into a log line (or a stack trace). Each key may log `burst` times per `window_s`; what
is suppressed meanwhile is counted and reported on the next line that gets through."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0


class LogThrottle:
    """`allow(key)` answers None (do not log) or how many lines of that key were suppressed
    since the last one logged (log it, e.g. as a `suppressed=` field)."""

    def __init__(self, burst: int = 5, window_s: float = 60.0, max_keys: int = 1024) -> None:
        self.burst, self.window_s, self.max_keys = burst, window_s, max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> int | None:
        now = time.monotonic() if now is None else now
        w = self._windows.get(key)
        if w is None or now - w.start >= self.window_s:
            carried = w.suppressed if w is not None else 0
            w = self._windows[key] = _Window(start=now)
            w.logged = 1
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:  # bounded memory whatever the keys
                self._windows.popitem(last=False)
            return carried
        if w.logged < self.burst:
            w.logged += 1
            carried, w.suppressed = w.suppressed, 0
            return carried
        w.suppressed += 1
        return None


# One per process, shared by the real-time plane (WebSocket handler, rooms, SFU glue).
REALTIME = LogThrottle()

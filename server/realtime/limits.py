"""Bounds on the page WebSockets one process holds (see docs/signaling.md, Limits)."""

from __future__ import annotations


class SocketLimits:
    """Bounds on what page WebSockets may hold in this process: at most `per_user` open
    connections per user (the extra one is refused with 4409), and at most `unauthenticated`
    upgrades still waiting for their auth message (further upgrades get HTTP 429)."""

    def __init__(self, per_user: int, unauthenticated: int) -> None:
        self.max_per_user, self.max_unauthenticated = per_user, unauthenticated
        self.per_user: dict[str, int] = {}
        self.unauthenticated = 0

    def acquire(self, username: str) -> bool:
        held = self.per_user.get(username, 0)
        if held >= self.max_per_user:
            return False
        self.per_user[username] = held + 1
        return True

    def release(self, username: str) -> None:
        held = self.per_user.get(username, 0) - 1
        if held > 0:
            self.per_user[username] = held
        else:
            self.per_user.pop(username, None)

"""Is a token's session still live? Checked on every request and every few seconds on a socket.

The answer comes from Redis (`server/store/sessions.py`: one pipelined round trip) and is cached
in-process for `STALENESS_S` per session, so a scrolling viewer sending dozens of requests a
second costs one dict lookup each and one round trip per session every two seconds. Ending a
session through this process (logout, password change, disable from the admin API) also drops
the cached answers at once; an end decided elsewhere (the CLI, another server process) is seen
within `STALENESS_S` on HTTP and within `STALENESS_S + WATCH_INTERVAL_S` on an open WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from server.auth.principal import Principal
from server.errors import HuizhenError, SessionEnded, TokenExpired, Unauthenticated
from server.log import event
from server.store.sessions import Sessions, SessionState

log = logging.getLogger(__name__)

STALENESS_S = 2.0
WATCH_INTERVAL_S = 2.0
CACHE_ENTRIES = 20_000


def _reason(principal: Principal, state: SessionState) -> str | None:
    if not state.user_exists:
        return "this account no longer exists"
    if state.disabled:
        return "this account is disabled"
    if principal.generation != state.generation:
        return "this session was ended (password changed or account disabled): sign in again"
    if state.ended:
        return "this session was signed out"
    if state.device_revoked:
        return "this kiosk's device token was revoked"
    return None


class SessionGuard:
    def __init__(self, sessions: Sessions, staleness_s: float = STALENESS_S) -> None:
        self._sessions = sessions
        self.staleness_s = staleness_s
        # token id -> (monotonic deadline, username, reason it is ended or None)
        self._cache: dict[str, tuple[float, str, str | None]] = {}

    async def check(self, principal: Principal) -> None:
        """Raise Unauthenticated (401) unless the principal's session is live."""
        if principal.expires_at and time.time() >= principal.expires_at:
            raise TokenExpired("the token has expired: sign in again")
        now = time.monotonic()
        hit = self._cache.get(principal.token_id)
        if hit is None or hit[0] <= now:
            state = await self._sessions.state(
                principal.username, principal.token_id, principal.device
            )
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            hit = (now + self.staleness_s, principal.username, _reason(principal, state))
            self._cache[principal.token_id] = hit
        if hit[2] is not None:
            raise SessionEnded(hit[2])

    def forget_session(self, token_id: str) -> None:
        self._cache.pop(token_id, None)

    def forget_user(self, username: str) -> None:
        for token_id in [t for t, entry in self._cache.items() if entry[1] == username]:
            del self._cache[token_id]

    def forget_all(self) -> None:
        """After a device revocation (sessions of a device are not indexed here)."""
        self._cache.clear()

    async def end(self, principal: Principal) -> None:
        await self._sessions.end(principal.token_id, principal.expires_at)
        self.forget_session(principal.token_id)

    async def watch(
        self, principal: Principal, on_end: Callable[[HuizhenError], Awaitable[None]],
        interval_s: float = WATCH_INTERVAL_S,
    ) -> None:
        """Re-check an open connection's session until it ends, then call `on_end` once."""
        while True:
            wait = interval_s
            if principal.expires_at:
                wait = max(0.0, min(wait, principal.expires_at - time.time()))
            await asyncio.sleep(wait)
            try:
                await self.check(principal)
            except Unauthenticated as err:
                await on_end(err)
                return
            except (RedisError, OSError) as exc:
                # Redis unreachable: keep the connection; the next tick asks again.
                event(log, "session_check_failed", logging.WARNING, user=principal.username,
                      error=type(exc).__name__)

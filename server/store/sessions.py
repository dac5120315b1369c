"""Session state in Redis: what ends a signed-in session before its token expires.

A token names its user, its session generation (`gen`), its id (`jti`) and, on a kiosk, its
device. A session is live while the user exists, is not disabled and still has that generation
(a password change or a disable bumps it, ending every older session at once), its id was not
ended by a logout, and its kiosk device was not revoked. One pipelined round trip reads all of
it; `server/auth/sessions.py` caches the answer for a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from server.store import keys


@dataclass(frozen=True)
class SessionState:
    user_exists: bool
    disabled: bool
    generation: int
    ended: bool
    device_revoked: bool


class Sessions:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def state(self, username: str, token_id: str, device: str | None) -> SessionState:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.user(username), "username", "disabled", "session_gen")
            pipe.exists(keys.session_ended(token_id))
            if device:
                pipe.sismember(keys.DEVICES_REVOKED, device)
            replies = await pipe.execute()
        (name, disabled, gen), ended = replies[0], replies[1]
        return SessionState(
            user_exists=name is not None,
            disabled=disabled == "1",
            generation=int(gen or 0),
            ended=bool(ended),
            device_revoked=bool(replies[2]) if device else False,
        )

    async def end(self, token_id: str, expires_at: int) -> None:
        """End one session (logout). The marker lives as long as the token could."""
        ttl = max(1, int(expires_at - time.time()) + 1)
        await self._r.set(keys.session_ended(token_id), "1", ex=ttl)

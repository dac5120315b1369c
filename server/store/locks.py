"""Locks one node at a time holds for a while (a periodic sweep): `SET NX PX` with a random
token, released by compare-and-delete so a node whose lock expired never frees the next
holder's. A node that dies holding one loses it after the TTL."""

from __future__ import annotations

from redis.asyncio import Redis

from server.store import keys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Locks:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, name: str, token: str, ttl_s: float) -> bool:
        return bool(await self._r.set(keys.sweep_lock(name), token, nx=True,
                                      px=max(1, int(ttl_s * 1000))))

    async def release(self, name: str, token: str) -> None:
        await self._release(keys=[keys.sweep_lock(name)], args=[token])

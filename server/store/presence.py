"""Which experts are online, per department, for every node: a sorted set of usernames scored
by when their presence expires. Each node refreshes its own connected experts every few
seconds, so a node that dies stops counting within `ttl_s`."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from server.store import keys


class ExpertPresence:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def online(self, department: str, username: str, ttl_s: float) -> None:
        await self._r.zadd(keys.department_experts_online(department),
                           {username: time.time() + ttl_s})

    async def offline(self, department: str, username: str) -> None:
        await self._r.zrem(keys.department_experts_online(department), username)

    async def counts(self, departments: list[str]) -> dict[str, int]:
        """Experts online per department (expired entries are dropped on the way)."""
        if not departments:
            return {}
        now = time.time()
        async with self._r.pipeline(transaction=False) as pipe:
            for d in departments:
                pipe.zremrangebyscore(keys.department_experts_online(d), "-inf", now)
                pipe.zcard(keys.department_experts_online(d))
            found = await pipe.execute()
        return {d: int(n) for d, n in zip(departments, found[1::2], strict=True)}

"""The audit stream: every read of patient data, who did it, from where (a Redis Stream)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from server.store import keys


@dataclass(frozen=True)
class AuditEvent:
    id: str
    fields: dict[str, str]


class AuditLog:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def record(
        self,
        *,
        action: str,
        user: str,
        role: str,
        clinic: str | None,
        remote: str | None,
        **resource: Any,
    ) -> str:
        # Never trimmed: the audit trail is a clinical record. Export/retention is an ops task.
        fields = {
            "ts": f"{time.time():.3f}",
            "action": action,
            "user": user,
            "role": role,
            "clinic": clinic or "",
            "remote": remote or "",
        }
        fields.update({k: str(v) for k, v in resource.items() if v is not None})
        return await self._r.xadd(keys.AUDIT, fields)

    async def recent(self, count: int = 100) -> list[AuditEvent]:
        rows = await self._r.xrevrange(keys.AUDIT, count=count)
        return [AuditEvent(id=i, fields=f) for i, f in rows]

    async def since(self, last_id: str = "0", count: int = 1000) -> list[AuditEvent]:
        rows = await self._r.xrange(
            keys.AUDIT, min=f"({last_id}" if last_id != "0" else "-", count=count
        )
        return [AuditEvent(id=i, fields=f) for i, f in rows]

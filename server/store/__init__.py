"""The one Redis access layer: every read and write of Huizhen state goes through `Store`."""

from __future__ import annotations

from redis.asyncio import Redis

from server.store.audit import AuditLog
from server.store.consults import Consults
from server.store.directory import Directory
from server.store.login_limits import LoginLimits
from server.store.presence import ExpertPresence
from server.store.rooms import Rooms
from server.store.sessions import Sessions
from server.store.study_index import StudyIndex


class Store:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.directory = Directory(redis)
        self.studies = StudyIndex(redis)
        self.audit = AuditLog(redis)
        self.consults = Consults(redis)
        self.rooms = Rooms(redis)
        self.presence = ExpertPresence(redis)
        self.sessions = Sessions(redis)
        self.login_limits = LoginLimits(redis)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(Redis.from_url(url, decode_responses=True, health_check_interval=30))

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        try:
            await self.audit.close()
        finally:
            await self.redis.aclose()

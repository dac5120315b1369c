"""The one Redis access layer: every read and write of Huizhen state goes through `Store`."""

from __future__ import annotations

from redis.asyncio import Redis

from server.store.audit import AuditLog
from server.store.consults import Consult, Consults
from server.store.directory import Directory
from server.store.grants import Grants
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
        self.grants = Grants(redis)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(Redis.from_url(url, decode_responses=True, health_check_interval=30))

    async def grant_consult_study(
        self, consult: Consult, usernames: list[str], by: str = ""
    ) -> None:
        """A consult's study for these users (see Grants.for_consult)."""
        await self.grants.for_consult(consult.id, consult.clinic, consult.study_uid, usernames, by)

    async def grant_room_study(self, room_id: str, usernames: list[str], by: str = "") -> None:
        """The study of the consult a room is for, if any, for these users."""
        room = await self.rooms.get(room_id)
        consult = await self.consults.get(room.consult_id) if room and room.consult_id else None
        if consult is not None:
            await self.grant_consult_study(consult, usernames, by)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        try:
            await self.audit.close()
        finally:
            await self.redis.aclose()

"""The one Redis access layer: every read and write of Huizhen state goes through `Store`."""

from __future__ import annotations

from redis.asyncio import Redis

from server.store import keys
from server.store.alerts import Alerts, ConsultEscalations
from server.store.annotations import Annotations, KeyImages
from server.store.audit import AuditLog
from server.store.consults import Consult, Consults
from server.store.directory import Directory
from server.store.grants import Grant, Grants
from server.store.locks import Locks
from server.store.login_limits import LoginLimits
from server.store.mdt import MdtStore
from server.store.notifications import Inboxes
from server.store.presence import ExpertPresence
from server.store.referrals import Referrals
from server.store.reports import Reports
from server.store.room_views import RoomViews
from server.store.rooms import Room, Rooms
from server.store.sessions import Sessions
from server.store.study_index import InstanceRecord, StudyIndex
from server.store.worklist import Worklist


class Store:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.directory = Directory(redis)
        self.studies = StudyIndex(redis)
        self.audit = AuditLog(redis)
        self.consults = Consults(redis)
        self.rooms = Rooms(redis)
        self.room_views = RoomViews(redis)
        self.presence = ExpertPresence(redis)
        self.sessions = Sessions(redis)
        self.login_limits = LoginLimits(redis)
        self.reports = Reports(redis)
        self.grants = Grants(redis)
        self.notifications = Inboxes(redis)
        self.mdt = MdtStore(redis)
        self.worklist = Worklist(redis)
        self.alerts = Alerts(redis)
        self.consult_escalations = ConsultEscalations(redis)
        self.annotations = Annotations(redis)
        self.key_images = KeyImages(redis)
        self.referrals = Referrals(redis)
        self.locks = Locks(redis)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(Redis.from_url(url, decode_responses=True, health_check_interval=30))

    async def grant_consult_study(
        self, consult: Consult, usernames: list[str], by: str = ""
    ) -> None:
        """A consult's study for these users (see Grants.for_consult)."""
        await self.grants.for_consult(consult.id, consult.clinic, consult.study_uid, usernames, by)

    async def grant_room_study(self, room_id: str, usernames: list[str], by: str = "") -> None:
        """The study of the consult a room is for, if any, for these users; and the studies of
        the ECGs the doctor sent into the call (events `ecg.shared`, all of the consult's clinic:
        server/realtime/live.py), so an expert invited or joining later sees them too."""
        room = await self.rooms.get(room_id)
        consult = await self.consults.get(room.consult_id) if room and room.consult_id else None
        if consult is not None:
            await self.grant_consult_study(consult, usernames, by)
            shared = {str(e["study_uid"]) for e in await self.rooms.events(room_id)
                      if e["type"] == "ecg.shared" and e.get("study_uid")}
            for study_uid in sorted(shared - {consult.study_uid}):
                await self.grants.for_consult(consult.id, consult.clinic, study_uid, usernames, by)

    async def room_studies(self, room: Room) -> set[tuple[str, str]]:
        """The studies (clinic, StudyInstanceUID) a room is about: its consult's, or its MDT
        cases' (the session's agenda)."""
        if room.kind == "consult" and room.consult_id:
            consult = await self.consults.get(room.consult_id)
            return {(consult.clinic, consult.study_uid)} if consult and consult.study_uid else set()
        if room.kind == "mdt":
            session = await self.mdt.get(room.ref) if room.ref else None
            if session is None:
                return set()
            return {study for case in session.cases for study in case.studies()}
        return set()

    async def granted_instance(
        self, username: str, study_uid: str, sop_uid: str
    ) -> tuple[list[Grant], InstanceRecord | None]:
        """A user's live grants of a UID and the instance of the clinic their newest grant
        names, in one round trip when the grant cache has seen that grant before (the hot path
        of a grantee's viewer: grants re-read every Grants.CACHE_TTL_S in the same pipeline as
        the instance), none while both caches are fresh. The caller (access.py) decides."""
        grants = self.grants.cached(username, study_uid)
        if grants is not None:
            return grants, await self.studies.instance(grants[0].clinic, study_uid, sop_uid)
        hint = self.grants.hint(username, study_uid)
        if hint is None or self.studies.hot_instance(hint, study_uid, sop_uid) is not None:
            grants = await self.grants.of_user(username, study_uid=study_uid)
            if not grants:
                return [], None
            return grants, await self.studies.instance(grants[0].clinic, study_uid, sop_uid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.user_grants(username))
            pipe.hget(keys.study_instances(hint, study_uid), sop_uid)
            raw, value = await pipe.execute()
        grants = self.grants.load(username, raw, study_uid)
        record = self.studies.remember(hint, study_uid, sop_uid, value)
        if grants and grants[0].clinic != hint:  # a newer grant names another clinic's study
            record = await self.studies.instance(grants[0].clinic, study_uid, sop_uid)
        return grants, record

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def close(self) -> None:
        try:
            await self.audit.close()
        finally:
            await self.redis.aclose()

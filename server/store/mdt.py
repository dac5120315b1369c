"""MDT sessions and proposals in Redis, and the calendar feed tokens.

A session is one JSON document (`hz:mdt:ID`), changed only through `MdtStore.update`, which
reads, applies a function and writes back under WATCH (a concurrent change makes it retry), then
keeps the listings in step: `hz:mdts` (every session by start), `hz:user:U:mdts` (the
coordinator's and each invited expert's) and `hz:clinic:C:mdts` (each invited clinic's).

What the fields mean and which changes are allowed is the domain's (server/mdt/); who may see
or do what is decided in server/auth/access.py (`MdtSession.may_join` asks it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from server.errors import Conflict, NotFound
from server.store import keys

if TYPE_CHECKING:
    from server.auth.principal import Principal

SCHEDULED, OPEN, LIVE, CONCLUDED, CANCELLED = "scheduled", "open", "live", "concluded", "cancelled"
STATES = (SCHEDULED, OPEN, LIVE, CONCLUDED, CANCELLED)
ACTIVE_STATES = (SCHEDULED, OPEN, LIVE)
ROOM_PREFIX = "mdt-"
PROPOSED, SCHEDULED_PROPOSAL, WITHDRAWN = "proposed", "scheduled", "withdrawn"
_UPDATE_RETRIES = 20


@dataclass(frozen=True)
class Conclusion:
    diagnosis: str
    plan: str
    responsible_department: str
    follow_up_date: str  # YYYY-MM-DD, or "" for none
    by: str
    at: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conclusion:
        return cls(str(d.get("diagnosis", "")), str(d.get("plan", "")),
                   str(d.get("responsible_department", "")), str(d.get("follow_up_date", "")),
                   str(d.get("by", "")), float(d.get("at", 0)))


@dataclass(frozen=True)
class MdtCase:
    case_id: str
    clinic: str
    patient_name: str
    patient_id: str
    study_uids: list[str]
    proposal_id: str = ""
    question: str = ""  # why it is on the agenda (the proposal's reason)
    conclusion: Conclusion | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MdtCase:
        c = d.get("conclusion")
        return cls(d["case_id"], d["clinic"], d.get("patient_name", ""), d.get("patient_id", ""),
                   list(d.get("study_uids", [])), d.get("proposal_id", ""),
                   d.get("question", ""), Conclusion.from_dict(c) if c else None)

    def studies(self) -> list[tuple[str, str]]:
        return [(self.clinic, uid) for uid in self.study_uids]

    def public(self, show_patient: bool) -> dict[str, Any]:
        """The case as a viewer sees it: another clinic's case is only a placeholder (no
        patient, no studies, no conclusion: a clinic never sees another clinic's patients)."""
        if not show_patient:
            return {"case_id": self.case_id, "hidden": True, "clinic": "", "patient_name": "",
                    "patient_id": "", "study_uids": [], "proposal_id": "", "question": "",
                    "conclusion": None}
        d = asdict(self)
        d["hidden"] = False
        return d


@dataclass(frozen=True)
class Attendee:
    username: str
    display_name: str
    role: str
    clinic: str | None
    department: str | None
    joined_at: float


@dataclass(frozen=True)
class MdtSession:
    id: str
    title: str
    coordinator: str
    state: str
    starts_at: int  # unix seconds
    duration_min: int
    departments: list[str]
    experts: list[str]
    clinics: list[str]
    cases: list[MdtCase]
    lead_expert: str = ""
    sequence: int = 0  # iCalendar SEQUENCE: bumped by every change an invitee's calendar shows
    room_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    notes: str = ""  # free text for invitees (no patient identifiers: shown in calendars)
    cancel_reason: str = ""
    opened_at: float = 0.0
    live_at: float = 0.0
    concluded_at: float = 0.0
    attendees: list[Attendee] = field(default_factory=list)

    @property
    def ends_at(self) -> int:
        return self.starts_at + 60 * self.duration_min

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def studies(self) -> list[tuple[str, str]]:
        """Every (clinic, StudyInstanceUID) on the agenda, each once."""
        return list(dict.fromkeys(s for c in self.cases for s in c.studies()))

    def case(self, case_id: str) -> MdtCase | None:
        return next((c for c in self.cases if c.case_id == case_id), None)

    def may_join(self, principal: Principal) -> bool:
        """The room policy's question (server/realtime): decided in access.py."""
        from server.auth import access

        return access.may_join_mdt(principal, self)

    def public(self, viewer: Principal | None = None) -> dict[str, Any]:
        """The session as `viewer` may see it (no viewer: as a coordinator sees it). A clinic
        doctor sees their own clinic's cases in full and other clinics' as placeholders."""
        from server.auth import access

        d = asdict(self)
        d["cases"] = [c.public(viewer is None or access.may_see_mdt_case(viewer, c))
                      for c in self.cases]
        d["ends_at"] = self.ends_at
        d["joinable_from"] = self.starts_at - JOIN_EARLY_S
        if viewer is not None and not access.sees_all_mdt_cases(viewer):
            d["attendees"] = [a for a in d["attendees"] if a["clinic"] in (None, viewer.clinic)]
        return d

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> MdtSession:
        d = json.loads(raw)
        d["cases"] = [MdtCase.from_dict(c) for c in d.get("cases", [])]
        d["attendees"] = [Attendee(**a) for a in d.get("attendees", [])]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


#: The join button shows, and the room opens, this long before the start.
JOIN_EARLY_S = 15 * 60


@dataclass(frozen=True)
class Proposal:
    """A case proposed for an MDT by a doctor (their clinic's study) or an expert (a study
    granted to them); a coordinator puts it on an agenda."""

    id: str
    by: str
    by_role: str
    clinic: str  # the studies' clinic
    patient_name: str
    patient_id: str
    study_uids: list[str]
    reason: str
    departments: list[str]
    created_at: float
    state: str = PROPOSED  # proposed | scheduled | withdrawn
    mdt_id: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: str) -> Proposal:
        d = json.loads(raw)
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def _listings(s: MdtSession) -> tuple[set[str], set[str]]:
    users = {s.coordinator, *s.experts}
    return {u for u in users if u}, set(s.clinics)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MdtStore:
    def __init__(self, redis: Redis) -> None:
        self._r = redis

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    # sessions ------------------------------------------------------------------------------
    async def create(self, session: MdtSession) -> MdtSession:
        users, clinics = _listings(session)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(keys.mdt(session.id), session.to_json(), nx=True)
            pipe.zadd(keys.MDTS, {session.id: session.starts_at})
            for u in users:
                pipe.zadd(keys.user_mdts(u), {session.id: session.starts_at})
            for c in clinics:
                pipe.zadd(keys.clinic_mdts(c), {session.id: session.starts_at})
            created, *_ = await pipe.execute()
        if not created:
            raise Conflict(f"MDT session {session.id} already exists")
        return session

    async def get(self, mdt_id: str) -> MdtSession | None:
        raw = await self._r.get(keys.mdt(mdt_id))
        return MdtSession.from_json(raw) if raw else None

    async def require(self, mdt_id: str) -> MdtSession:
        session = await self.get(mdt_id)
        if session is None:
            raise NotFound("no such MDT session")
        return session

    async def many(self, ids: list[str]) -> list[MdtSession]:
        if not ids:
            return []
        raws = await self._r.mget([keys.mdt(i) for i in ids])
        return [MdtSession.from_json(r) for r in raws if r]

    async def update(
        self, mdt_id: str,
        change: Callable[[MdtSession], MdtSession | Awaitable[MdtSession]],
    ) -> tuple[MdtSession, MdtSession]:
        """Apply `change` to the stored session atomically (retried when another writer got
        there first; `change` may raise to refuse). Returns (before, after)."""
        key = keys.mdt(mdt_id)
        for _ in range(_UPDATE_RETRIES):
            async with self._r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise NotFound("no such MDT session")
                    before = MdtSession.from_json(raw)
                    after = change(before)
                    if not isinstance(after, MdtSession):
                        after = await after
                    after = replace(after, updated_at=time.time())
                    old_users, old_clinics = _listings(before)
                    new_users, new_clinics = _listings(after)
                    pipe.multi()
                    pipe.set(key, after.to_json())
                    pipe.zadd(keys.MDTS, {mdt_id: after.starts_at})
                    for u in old_users - new_users:
                        pipe.zrem(keys.user_mdts(u), mdt_id)
                    for c in old_clinics - new_clinics:
                        pipe.zrem(keys.clinic_mdts(c), mdt_id)
                    for u in new_users:
                        pipe.zadd(keys.user_mdts(u), {mdt_id: after.starts_at})
                    for c in new_clinics:
                        pipe.zadd(keys.clinic_mdts(c), {mdt_id: after.starts_at})
                    await pipe.execute()
                    return before, after
                except WatchError:
                    continue
        raise Conflict("the MDT session is being changed by someone else: try again")

    async def ids_between(self, start: float, end: float, *, user: str | None = None,
                          clinic: str | None = None, newest_first: bool = False,
                          offset: int = 0, limit: int = 500) -> list[str]:
        """Session ids starting in [start, end] from one listing (all, a user's, a clinic's)."""
        key = (keys.user_mdts(user) if user else keys.clinic_mdts(clinic) if clinic
               else keys.MDTS)
        if newest_first:
            return list(await self._r.zrevrangebyscore(key, end, start, start=offset,
                                                       num=limit))
        return list(await self._r.zrangebyscore(key, start, end, start=offset, num=limit))

    async def count_between(self, start: float, end: float, *, user: str | None = None,
                            clinic: str | None = None) -> int:
        key = (keys.user_mdts(user) if user else keys.clinic_mdts(clinic) if clinic
               else keys.MDTS)
        return int(await self._r.zcount(key, start, end))

    # proposals -----------------------------------------------------------------------------
    async def add_proposal(self, proposal: Proposal) -> Proposal:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(keys.mdt_proposal(proposal.id), json.dumps(proposal.public(),
                                                                 ensure_ascii=False))
            pipe.zadd(keys.MDT_PROPOSALS, {proposal.id: proposal.created_at})
            pipe.zadd(keys.clinic_mdt_proposals(proposal.clinic),
                      {proposal.id: proposal.created_at})
            pipe.zadd(keys.user_mdt_proposals(proposal.by), {proposal.id: proposal.created_at})
            await pipe.execute()
        return proposal

    async def proposal(self, proposal_id: str) -> Proposal | None:
        raw = await self._r.get(keys.mdt_proposal(proposal_id))
        return Proposal.from_json(raw) if raw else None

    async def proposals(self, *, clinic: str | None = None, user: str | None = None,
                        limit: int = 1000) -> list[Proposal]:
        """Newest first: all, a clinic's or one proposer's (at most `limit`)."""
        key = (keys.clinic_mdt_proposals(clinic) if clinic else
               keys.user_mdt_proposals(user) if user else keys.MDT_PROPOSALS)
        ids = await self._r.zrevrange(key, 0, limit - 1)
        if not ids:
            return []
        raws = await self._r.mget([keys.mdt_proposal(i) for i in ids])
        return [Proposal.from_json(r) for r in raws if r]

    async def set_proposal(self, proposal_id: str, *, state: str, mdt_id: str = "") -> None:
        """Mark a proposal scheduled (on an agenda), back to proposed, or withdrawn."""
        key = keys.mdt_proposal(proposal_id)
        for _ in range(_UPDATE_RETRIES):
            async with self._r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return
                    p = replace(Proposal.from_json(raw), state=state, mdt_id=mdt_id)
                    pipe.multi()
                    pipe.set(key, json.dumps(p.public(), ensure_ascii=False))
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    # calendar feed tokens ------------------------------------------------------------------
    async def calendar_token(self, username: str, *, rotate: bool = False) -> str:
        """The user's feed token (made on first ask; `rotate` replaces it: the old URL stops)."""
        current = await self._r.get(keys.user_calendar(username))
        if current and not rotate:
            return current
        token = secrets.token_urlsafe(32)
        async with self._r.pipeline(transaction=True) as pipe:
            if current:
                pipe.delete(keys.calendar_token(token_digest(current)))
            pipe.set(keys.calendar_token(token_digest(token)), username)
            pipe.set(keys.user_calendar(username), token)
            await pipe.execute()
        return token

    async def calendar_user(self, token: str) -> str | None:
        return await self._r.get(keys.calendar_token(token_digest(token)))

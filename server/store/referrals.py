"""Referrals (双向转诊) and the routes institutions may refer along: their Redis layout.

A referral is between one township clinic and one county-hospital department: `up` (the clinic
sends a patient to the department) or `down` (the department sends them back for
rehabilitation, with the care plan). The document is one JSON value in a hash with its
`version`; every change is a compare-and-set on that version (Lua), so two people acting at once
cannot both win (one gets 409 and sees the new state). Each referral is listed in its clinic's and
its department's sorted set (by creation time): what each side's list pages through.

Routes: which clinic may refer up to which department and which department down to which clinic
are a relation of the directory, `hz:referral-routes` (members `up:CLINIC:DEPT`,
`down:DEPT:CLINIC`), set by `huizhen referral allow|deny`, the admin API, and the demo seed.
The domain rules (state machine, grants, notifications) are in server/clinical/referrals.py; who
may do what in server/auth/access.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from server.errors import Conflict
from server.store import keys


class Direction(StrEnum):
    UP = "up"  # clinic -> county department
    DOWN = "down"  # county department -> clinic (rehabilitation, with the care plan)


class ReferralState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ARRIVED = "arrived"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


#: States after which nothing changes (and the receiving side's grants end).
FINAL = frozenset({ReferralState.DECLINED, ReferralState.COMPLETED, ReferralState.CANCELLED})


@dataclass(frozen=True)
class StudyRef:
    clinic: str
    study_uid: str


@dataclass(frozen=True)
class Step:
    state: str
    at: float
    by: str
    by_name: str = ""
    note: str = ""


@dataclass(frozen=True)
class Referral:
    id: str
    direction: Direction
    clinic: str  # the township clinic (sender of an up-referral, receiver of a down-referral)
    department: str  # the county department (receiver of up, sender of down)
    state: ReferralState
    patient_name: str
    patient_id: str
    reason: str
    created_by: str
    created_at: float
    updated_at: float
    version: int = 1
    diagnosis: str = ""  # preliminary diagnosis (up) / discharge diagnosis (down)
    care_plan: str = ""  # down: rehabilitation plan the clinic follows
    studies: tuple[StudyRef, ...] = ()
    reports: tuple[str, ...] = ()
    parent: str = ""  # a down-referral answering an up-referral
    decline_reason: str = ""
    clinic_name: str = ""
    department_name: str = ""
    created_by_name: str = ""
    history: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def sender_is_clinic(self) -> bool:
        return self.direction is Direction.UP

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["direction"] = self.direction.value
        data["state"] = self.state.value
        data["studies"] = [asdict(s) for s in self.studies]
        data["reports"] = list(self.reports)
        data["history"] = [asdict(s) for s in self.history]
        return data

    def to_json(self) -> str:
        return json.dumps(self.public(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Referral:
        d = json.loads(text)
        return cls(
            id=d["id"], direction=Direction(d["direction"]), clinic=d["clinic"],
            department=d["department"], state=ReferralState(d["state"]),
            patient_name=d.get("patient_name", ""), patient_id=d.get("patient_id", ""),
            reason=d.get("reason", ""), created_by=d["created_by"],
            created_at=float(d["created_at"]), updated_at=float(d["updated_at"]),
            version=int(d["version"]), diagnosis=d.get("diagnosis", ""),
            care_plan=d.get("care_plan", ""),
            studies=tuple(StudyRef(s["clinic"], s["study_uid"]) for s in d.get("studies", [])),
            reports=tuple(d.get("reports", [])), parent=d.get("parent", ""),
            decline_reason=d.get("decline_reason", ""), clinic_name=d.get("clinic_name", ""),
            department_name=d.get("department_name", ""),
            created_by_name=d.get("created_by_name", ""),
            history=tuple(Step(**s) for s in d.get("history", [])),
        )

    def moved(self, state: ReferralState, by: str, by_name: str, note: str = "",
              **changes: Any) -> Referral:
        now = time.time()
        step = Step(state.value, now, by, by_name, note)
        return replace(self, state=state, updated_at=now, version=self.version + 1,
                       history=(*self.history, step), **changes)


# KEYS: doc hash, clinic index, department index. ARGV: id, score, json. 0: exists.
_CREATE = """
if redis.call('HSETNX', KEYS[1], 'version', '1') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

# KEYS: doc hash. ARGV: expected version, new version, json. Returns 1, or the current version
# (as a string) when someone else moved it first.
_REPLACE = """
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return -1 end
if v ~= ARGV[1] then return v end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'doc', ARGV[3])
return 1
"""


class StaleReferral(Conflict):
    code = "stale_referral"


def route_member(direction: Direction, clinic: str, department: str) -> str:
    if direction is Direction.UP:
        return f"up:{clinic}:{department}"
    return f"down:{department}:{clinic}"


@dataclass(frozen=True)
class Route:
    direction: Direction
    clinic: str
    department: str

    def public(self) -> dict[str, str]:
        return {"direction": self.direction.value, "clinic": self.clinic,
                "department": self.department}


def _route(member: str) -> Route | None:
    kind, _, rest = member.partition(":")
    a, _, b = rest.partition(":")
    if kind == "up" and a and b:
        return Route(Direction.UP, a, b)
    if kind == "down" and a and b:
        return Route(Direction.DOWN, b, a)
    return None


class Referrals:
    """The referral documents and each side's index."""

    MAX_SCAN = 5000

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._create = redis.register_script(_CREATE)
        self._replace = redis.register_script(_REPLACE)

    async def create(self, referral: Referral) -> None:
        ok = await self._create(
            keys=[keys.referral(referral.id), keys.clinic_referrals(referral.clinic),
                  keys.department_referrals(referral.department)],
            args=[referral.id, referral.created_at, referral.to_json()],
        )
        if not ok:
            raise Conflict(f"referral {referral.id} already exists")

    async def get(self, referral_id: str) -> Referral | None:
        doc = await self._r.hget(keys.referral(referral_id), "doc")
        return Referral.from_json(doc) if doc else None

    async def replace(self, old: Referral, new: Referral) -> None:
        """Store `new` if the referral is still at `old.version` (StaleReferral otherwise)."""
        result = await self._replace(keys=[keys.referral(old.id)],
                                     args=[old.version, new.version, new.to_json()])
        if int(result) != 1:
            raise StaleReferral("the referral was changed meanwhile; reload it",
                                version=int(result))

    async def restore(self, referral: Referral) -> bool:
        """Put a referral read back from its journal (reindex): newer versions only."""
        current = await self.get(referral.id)
        if current is not None and current.version >= referral.version:
            return False
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.referral(referral.id),
                      mapping={"version": referral.version, "doc": referral.to_json()})
            pipe.zadd(keys.clinic_referrals(referral.clinic), {referral.id: referral.created_at})
            pipe.zadd(keys.department_referrals(referral.department),
                      {referral.id: referral.created_at})
            await pipe.execute()
        return True

    async def page(
        self, scope: tuple[str, str], *, limit: int, offset: int,
        states: frozenset[str] | None = None, direction: str | None = None,
    ) -> tuple[list[Referral], int]:
        """One side's referrals, newest first: (page, total matching). Without filters the page
        is read straight from the index; with them at most MAX_SCAN newest are looked at."""
        kind, ident = scope
        index = keys.clinic_referrals(ident) if kind == "clinic" else \
            keys.department_referrals(ident)
        if states is None and direction is None:
            total = int(await self._r.zcard(index))
            ids = await self._r.zrevrange(index, offset, offset + limit - 1)
            return await self._many(ids), total
        matched: list[Referral] = []
        scanned = 0
        chunk = 200
        while scanned < self.MAX_SCAN:
            ids = await self._r.zrevrange(index, scanned, scanned + chunk - 1)
            if not ids:
                break
            scanned += len(ids)
            for r in await self._many(ids):
                if (states is None or r.state.value in states) and \
                        (direction is None or r.direction.value == direction):
                    matched.append(r)
        return matched[offset:offset + limit], len(matched)

    async def _many(self, ids: list[str]) -> list[Referral]:
        if not ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(keys.referral(i), "doc")
            docs = await pipe.execute()
        return [Referral.from_json(d) for d in docs if d]

    # routes --------------------------------------------------------------------------------
    async def allow(self, direction: Direction, clinic: str, department: str) -> bool:
        return bool(await self._r.sadd(keys.REFERRAL_ROUTES,
                                       route_member(direction, clinic, department)))

    async def deny(self, direction: Direction, clinic: str, department: str) -> bool:
        return bool(await self._r.srem(keys.REFERRAL_ROUTES,
                                       route_member(direction, clinic, department)))

    async def allowed(self, direction: Direction, clinic: str, department: str) -> bool:
        return bool(await self._r.sismember(keys.REFERRAL_ROUTES,
                                            route_member(direction, clinic, department)))

    async def routes(self) -> list[Route]:
        members = sorted(await self._r.smembers(keys.REFERRAL_ROUTES))
        return [r for r in (_route(m) for m in members) if r is not None]

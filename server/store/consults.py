"""Consult requests: a clinic doctor asks a department for an expert; exactly one accepts."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from enum import StrEnum

from redis.asyncio import Redis

from server.errors import Conflict, NotFound
from server.store import keys
from server.store.records import from_hash, to_hash


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ConsultState(StrEnum):
    RINGING = "ringing"
    # Left for the department with nobody online: no ringing timeout, experts see it when they
    # sign in and accept it like a ringing one.
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    UNANSWERED = "unanswered"  # rang for HUIZHEN_RING_TIMEOUT_S without an answer
    ENDED = "ended"


WAITING = (ConsultState.RINGING, ConsultState.REQUESTED)


class Outcome(StrEnum):
    """How a consult ended, for its history (empty while it is not over)."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNANSWERED = "unanswered"
    DROPPED = "dropped"  # the room closed because the last participants' links timed out


class RingRefused(Exception):
    """The doctor has too many consults waiting, or started too many lately."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Consult:
    id: str
    clinic: str
    clinic_name: str
    doctor: str
    department: str
    urgency: Urgency
    question: str
    patient_name: str
    patient_id: str
    study_uid: str
    state: ConsultState
    created_at: float
    accepted_by: str = ""
    room_id: str = ""
    doctor_name: str = ""
    # Unix time after which a ringing consult is unanswered (0: none, e.g. a left request).
    ring_deadline: float = 0.0
    accepted_at: float = 0.0
    ended_at: float = 0.0
    outcome: str = ""
    # Does the attached study belong to this patient? match | mismatch_confirmed | no_study.
    patient_check: str = ""
    study_patient_name: str = ""
    study_patient_id: str = ""

    @property
    def has_study(self) -> bool:
        return bool(self.study_uid)

    def public(self) -> dict:
        data = asdict(self)
        data["urgency"] = self.urgency.value
        data["state"] = self.state.value
        data["has_study"] = self.has_study
        return data

    def record(self) -> dict[str, str]:
        """The Redis hash fields."""
        return to_hash(self)

    @classmethod
    def from_record(cls, data: dict[str, str]) -> Consult:
        return from_hash(cls, data)


# Creation checks the doctor's limits in the same step: at most ARGV[1] consults waiting
# (ringing or requested) and ARGV[2] starts per hour. 1: created, 0: too many waiting,
# -1: too many starts.
_CREATE = """
if redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[1]) then return 0 end
local starts = redis.call('INCR', KEYS[6])
if starts == 1 then redis.call('EXPIRE', KEYS[6], 3600) end
if starts > tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
if tonumber(ARGV[5]) > 0 then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3]) end
redis.call('SADD', KEYS[5], ARGV[3])
return 1
"""
# Accept is one atomic step: of several experts clicking at once exactly one gets the room.
_ACCEPT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'ringing' and state ~= 'requested' then
  return redis.call('HGET', KEYS[1], 'accepted_by') or ''
end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'accepted_by', ARGV[1], 'room_id', ARGV[2],
           'accepted_at', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[3])
return 1
"""
# Cancel (by the doctor) and expiry (by the sweeper of any node) both end a waiting consult.
_FINISH_WAITING = """
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('ZREM', KEYS[3], ARGV[1])
if state ~= 'ringing' and (state ~= 'requested' or ARGV[4] == 'ringing') then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'outcome', ARGV[2], 'ended_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""
_END = """
if redis.call('HGET', KEYS[1], 'state') ~= 'accepted' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ended', 'outcome', ARGV[1], 'ended_at', ARGV[2])
return 1
"""


class Consults:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._create = redis.register_script(_CREATE)
        self._accept = redis.register_script(_ACCEPT)
        self._finish_waiting = redis.register_script(_FINISH_WAITING)
        self._end = redis.register_script(_END)

    async def create(
        self, *, clinic: str, clinic_name: str, doctor: str, department: str, urgency: Urgency,
        question: str,
        patient_name: str = "", patient_id: str = "", study_uid: str = "",
        doctor_name: str = "", ring_timeout_s: float = 0.0, requested: bool = False,
        max_waiting: int = 3, starts_per_hour: int = 30, patient_check: str = "",
        study_patient_name: str = "", study_patient_id: str = "",
    ) -> Consult:
        """A new consult, ringing for `ring_timeout_s` (or left as a request). RingRefused when
        the doctor is over a limit."""
        now = time.time()
        consult = Consult(
            id=secrets.token_hex(8), clinic=clinic, clinic_name=clinic_name, doctor=doctor,
            department=department,
            urgency=urgency, question=question, patient_name=patient_name,
            patient_id=patient_id, study_uid=study_uid,
            state=ConsultState.REQUESTED if requested else ConsultState.RINGING,
            created_at=now, doctor_name=doctor_name or doctor,
            ring_deadline=0.0 if requested else now + ring_timeout_s,
            patient_check=patient_check, study_patient_name=study_patient_name,
            study_patient_id=study_patient_id,
        )
        flat = [x for kv in consult.record().items() for x in kv]
        result = await self._create(
            keys=[keys.consult(consult.id), keys.department_ringing(department),
                  keys.clinic_consults(clinic), keys.CONSULTS_RING_DEADLINES,
                  keys.doctor_waiting(doctor), keys.doctor_starts(doctor)],
            args=[max_waiting, starts_per_hour, consult.id, repr(now),
                  repr(consult.ring_deadline), *flat],
        )
        if result == 0:
            raise RingRefused("waiting")
        if result == -1:
            raise RingRefused("rate")
        return consult

    async def get(self, consult_id: str) -> Consult | None:
        data = await self._r.hgetall(keys.consult(consult_id))
        if not data:
            return None
        return Consult.from_record(data)

    async def require(self, consult_id: str) -> Consult:
        consult = await self.get(consult_id)
        if consult is None:
            raise NotFound("no such consult")
        return consult

    async def ringing(self, department: str) -> list[Consult]:
        """The department's waiting consults (ringing or left as a request), oldest first."""
        ids = await self._r.zrange(keys.department_ringing(department), 0, -1)
        found = [await self.get(i) for i in ids]
        return [c for c in found if c is not None and c.state in WAITING]

    async def of_clinic(self, clinic: str, count: int = 50, offset: int = 0) -> list[Consult]:
        """The clinic's most recent consults, newest first."""
        ids = await self._r.zrevrange(keys.clinic_consults(clinic), offset, offset + count - 1)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def count_of_clinic(self, clinic: str) -> int:
        return int(await self._r.zcard(keys.clinic_consults(clinic)))

    async def accept(self, consult: Consult, expert: str, room_id: str) -> Consult:
        result = await self._accept(
            keys=[keys.consult(consult.id), keys.department_ringing(consult.department),
                  keys.CONSULTS_RING_DEADLINES, keys.doctor_waiting(consult.doctor)],
            args=[expert, room_id, consult.id, repr(time.time())],
        )
        if result != 1:
            taken_by = str(result or "")
            raise Conflict(
                f"this consult was already accepted by {taken_by}"
                if taken_by else "this consult is no longer waiting"
            )
        return await self.require(consult.id)

    async def cancel(self, consult: Consult) -> bool:
        return await self._finish(consult, ConsultState.CANCELLED, "any")

    async def expire(self, consult: Consult) -> bool:
        """Ringing → unanswered, exactly once whichever node's sweeper gets there first."""
        return await self._finish(consult, ConsultState.UNANSWERED, "ringing")

    async def _finish(self, consult: Consult, state: ConsultState, only: str) -> bool:
        return bool(await self._finish_waiting(
            keys=[keys.consult(consult.id), keys.department_ringing(consult.department),
                  keys.CONSULTS_RING_DEADLINES, keys.doctor_waiting(consult.doctor)],
            args=[consult.id, state.value, repr(time.time()), only],
        ))

    async def due(self, now: float | None = None, count: int = 100) -> list[str]:
        """Ringing consults whose deadline has passed."""
        return list(await self._r.zrangebyscore(
            keys.CONSULTS_RING_DEADLINES, "-inf", time.time() if now is None else now,
            start=0, num=count))

    async def forget_deadline(self, consult_id: str) -> None:
        await self._r.zrem(keys.CONSULTS_RING_DEADLINES, consult_id)

    async def end(self, consult_id: str, outcome: Outcome = Outcome.COMPLETED) -> bool:
        return bool(await self._end(keys=[keys.consult(consult_id)],
                                    args=[outcome.value, repr(time.time())]))

    async def note_joined(self, consult_id: str, username: str) -> None:
        """Experts' history lists the consults they joined."""
        consult = await self.get(consult_id)
        if consult is not None:
            await self._r.zadd(keys.user_consults(username), {consult_id: consult.created_at})

    async def of_user(self, username: str, count: int = 50, offset: int = 0) -> list[Consult]:
        ids = await self._r.zrevrange(keys.user_consults(username), offset, offset + count - 1)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def count_of_user(self, username: str) -> int:
        return int(await self._r.zcard(keys.user_consults(username)))


def encode(consult: Consult) -> str:
    return json.dumps(consult.public(), ensure_ascii=False)

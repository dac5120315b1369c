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


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ConsultState(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    ENDED = "ended"


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

    def public(self) -> dict:
        data = asdict(self)
        data["urgency"] = self.urgency.value
        data["state"] = self.state.value
        return data


# Accept is one atomic step: of several experts clicking at once exactly one gets the room.
_ACCEPT = """
if redis.call('HGET', KEYS[1], 'state') ~= 'ringing' then
  return redis.call('HGET', KEYS[1], 'accepted_by') or ''
end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'accepted_by', ARGV[1], 'room_id', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""
_CANCEL = """
if redis.call('HGET', KEYS[1], 'state') ~= 'ringing' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled')
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class Consults:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._accept = redis.register_script(_ACCEPT)
        self._cancel = redis.register_script(_CANCEL)

    async def create(
        self, *, clinic: str, clinic_name: str, doctor: str, department: str, urgency: Urgency,
        question: str,
        patient_name: str = "", patient_id: str = "", study_uid: str = "",
    ) -> Consult:
        consult = Consult(
            id=secrets.token_hex(8), clinic=clinic, clinic_name=clinic_name, doctor=doctor,
            department=department,
            urgency=urgency, question=question, patient_name=patient_name,
            patient_id=patient_id, study_uid=study_uid, state=ConsultState.RINGING,
            created_at=time.time(),
        )
        record = {k: repr(v) if isinstance(v, float) else v for k, v in consult.public().items()}
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.consult(consult.id), mapping=record)
            pipe.zadd(keys.department_ringing(department), {consult.id: consult.created_at})
            pipe.zadd(keys.clinic_consults(clinic), {consult.id: consult.created_at})
            await pipe.execute()
        return consult

    async def get(self, consult_id: str) -> Consult | None:
        data = await self._r.hgetall(keys.consult(consult_id))
        if not data:
            return None
        return Consult(
            id=data["id"], clinic=data["clinic"], clinic_name=data.get("clinic_name", ""),
            doctor=data["doctor"],
            department=data["department"], urgency=Urgency(data["urgency"]),
            question=data["question"], patient_name=data.get("patient_name", ""),
            patient_id=data.get("patient_id", ""), study_uid=data.get("study_uid", ""),
            state=ConsultState(data["state"]), created_at=float(data["created_at"]),
            accepted_by=data.get("accepted_by", ""), room_id=data.get("room_id", ""),
        )

    async def require(self, consult_id: str) -> Consult:
        consult = await self.get(consult_id)
        if consult is None:
            raise NotFound("no such consult")
        return consult

    async def ringing(self, department: str) -> list[Consult]:
        ids = await self._r.zrange(keys.department_ringing(department), 0, -1)
        found = [await self.get(i) for i in ids]
        return [c for c in found if c is not None and c.state is ConsultState.RINGING]

    async def of_clinic(self, clinic: str, count: int = 50) -> list[Consult]:
        """The clinic's most recent consults, newest first."""
        ids = await self._r.zrevrange(keys.clinic_consults(clinic), 0, count - 1)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def accept(self, consult: Consult, expert: str, room_id: str) -> Consult:
        result = await self._accept(
            keys=[keys.consult(consult.id), keys.department_ringing(consult.department)],
            args=[expert, room_id, consult.id],
        )
        if result != 1:
            taken_by = str(result or "")
            raise Conflict(
                f"this consult was already accepted by {taken_by}"
                if taken_by else "this consult is no longer waiting"
            )
        return await self.require(consult.id)

    async def cancel(self, consult: Consult) -> bool:
        return bool(await self._cancel(
            keys=[keys.consult(consult.id), keys.department_ringing(consult.department)],
            args=[consult.id],
        ))

    async def end(self, consult_id: str) -> None:
        await self._r.hset(keys.consult(consult_id), "state", ConsultState.ENDED.value)


def encode(consult: Consult) -> str:
    return json.dumps(consult.public(), ensure_ascii=False)

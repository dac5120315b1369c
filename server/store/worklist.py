"""Reading requests as work items, after DICOM UPS (PS3.4 Annex CC): a clinic asks a department
to read a study; one of its experts claims it; the claim ends in a report (completed), is
released or lapses back to the list, or the request is cancelled.

States are UPS's Procedure Step States, in lower case: `scheduled` → `in_progress` →
`completed` | `canceled`. A claim carries a claim token, a UPS Transaction UID: only its
holder (who got the token) may release, renew or complete the item. Every transition is one Lua
script, so of many experts claiming at once exactly one wins, and a lease that lapses while its
holder renews is either renewed or returned, never both.

Layout: one hash per item (`hz:work:ID`); the department's open items in a sorted set scored
priority first, then age (`hz:department:D:worklist`); its finished ones by end time; the
clinic's requests by time; claims by lease expiry (`hz:worklist:leases`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from server.errors import ClaimConflict as ClaimLost
from server.errors import Conflict, NotFound
from server.errors import NotClaimHolder as NotHolder
from server.store import keys
from server.store.records import from_hash, to_hash


class Priority(StrEnum):
    """The clinic's words for urgency; `ups` is UPS's Scheduled Procedure Step Priority
    (0074,1200), whose enumerated values are HIGH / MEDIUM / LOW (STAT is the Requested
    Procedure Priority's, not UPS's)."""

    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        return {"emergency": 0, "urgent": 1, "routine": 2}[self.value]

    @property
    def ups(self) -> str:
        return {"emergency": "HIGH", "urgent": "MEDIUM", "routine": "LOW"}[self.value]


class ItemState(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELED = "canceled"  # UPS spells it so

    @property
    def ups(self) -> str:
        """UPS's Procedure Step State (0074,1000) spelling: SCHEDULED, IN PROGRESS (a space),
        COMPLETED, CANCELED."""
        return self.value.replace("_", " ").upper()


OPEN = (ItemState.SCHEDULED, ItemState.IN_PROGRESS)
# Order inside a department's open list: priority rank, then creation time (< 1e10 s).
_RANK_SCALE = 1e10


def transaction_uid() -> str:
    """A new claim token, formed as UPS's Transaction UID (0008,1195) is: a UID under the
    UUID arc 2.25 (PS3.5 B.2) with 128 random bits, so it is both unguessable and a UID."""
    return f"2.25.{int.from_bytes(secrets.token_bytes(16), 'big')}"


def open_score(priority: Priority, created_at: float) -> float:
    return priority.rank * _RANK_SCALE + created_at


@dataclass(frozen=True)
class WorkItem:
    id: str
    clinic: str
    clinic_name: str
    requester: str
    requester_name: str
    department: str
    priority: Priority
    question: str
    study_uid: str
    patient_name: str
    patient_id: str
    study_description: str
    modalities: str
    state: ItemState
    created_at: float
    claimed_by: str = ""
    claim_token: str = ""
    claimed_at: float = 0.0
    first_claimed_at: float = 0.0
    lease_until: float = 0.0
    claims: int = 0
    completed_at: float = 0.0
    canceled_at: float = 0.0
    canceled_by: str = ""
    cancel_reason: str = ""
    report_id: str = ""
    reassigned_by: str = ""
    version: int = 0
    #: Comma-separated: "suspected_critical" and the ECG pre-screening's reason codes when the
    #: study's ECG was flagged on ingest (media/ecg/screening.py); sorts the item first.
    flags: str = ""

    @property
    def suspected_critical(self) -> bool:
        return "suspected_critical" in self.flags.split(",")

    @property
    def open(self) -> bool:
        return self.state in OPEN

    def holder(self) -> str | None:
        """Who holds the claim (None: nobody, or the item is over)."""
        return (self.claimed_by or None) if self.state is ItemState.IN_PROGRESS else None

    def turnaround_s(self) -> float | None:
        return self.completed_at - self.created_at if self.completed_at else None

    def wait_s(self, now: float | None = None) -> float:
        """From the request to its first claim (or until now while nobody claimed it)."""
        end = self.first_claimed_at or (now if now is not None else time.time())
        return max(0.0, end - self.created_at)

    def public(self, viewer: str | None = None) -> dict[str, Any]:
        """What a page shows; the claim token only to its holder."""
        data = asdict(self)
        data["priority"] = self.priority.value
        data["state"] = self.state.value
        # The same two values in UPS's own spelling, for clients that speak UPS-RS.
        data["procedure_step_state"] = self.state.ups
        data["scheduled_procedure_step_priority"] = self.priority.ups
        if viewer is None or viewer != self.claimed_by:
            data["claim_token"] = ""
        data["transaction_uid"] = data["claim_token"]  # UPS's name for it, same value
        data["turnaround_s"] = self.turnaround_s()
        data["wait_s"] = round(self.wait_s(), 1)
        return data

    def record(self) -> dict[str, str]:
        """The Redis hash fields."""
        return to_hash(self)

    @classmethod
    def from_record(cls, data: dict[str, str]) -> WorkItem:
        return from_hash(cls, data)


# KEYS: item, leases. ARGV: token, user, now, lease_until, item id.
# {1, holder}: claimed; {0, state, holder}: not scheduled (who holds it).
_CLAIM = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {-1, '', ''} end
if st ~= 'scheduled' then
  return {0, st, redis.call('HGET', KEYS[1], 'claimed_by') or ''}
end
redis.call('HSET', KEYS[1], 'state', 'in_progress', 'claimed_by', ARGV[2],
           'claim_token', ARGV[1], 'claimed_at', ARGV[3], 'lease_until', ARGV[4])
if tonumber(redis.call('HGET', KEYS[1], 'first_claimed_at') or '0') == 0 then
  redis.call('HSET', KEYS[1], 'first_claimed_at', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'claims', 1)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return {1, 'in_progress', ARGV[2], redis.call('HGETALL', KEYS[1])}
"""

# Back to the list. KEYS: item, leases. ARGV: token, now, item id, mode ('release' | 'lapse').
# 1 done; 0 not in progress; -1 another token; -2 (lapse) renewed meanwhile.
_UNCLAIM = """
if redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return 0
end
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[1] then return -1 end
if ARGV[4] == 'lapse' and tonumber(redis.call('HGET', KEYS[1], 'lease_until')) > tonumber(ARGV[2])
then return -2 end
redis.call('HSET', KEYS[1], 'state', 'scheduled', 'claimed_by', '', 'claim_token', '',
           'claimed_at', '0', 'lease_until', '0')
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZREM', KEYS[2], ARGV[3])
return 1
"""

# KEYS: item, leases. ARGV: token, lease_until, item id. 1 renewed; 0 not in progress; -1 token.
_RENEW = """
if redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' then return 0 end
if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# The head gives the item to an expert (scheduled or in progress). KEYS: item, leases.
# ARGV: new token, to, now, lease_until, item id, by. 1 done; 0 over.
_REASSIGN = """
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'scheduled' and st ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'in_progress', 'claimed_by', ARGV[2],
           'claim_token', ARGV[1], 'claimed_at', ARGV[3], 'lease_until', ARGV[4],
           'reassigned_by', ARGV[6])
if tonumber(redis.call('HGET', KEYS[1], 'first_claimed_at') or '0') == 0 then
  redis.call('HSET', KEYS[1], 'first_claimed_at', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'claims', 1)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""

# Completed (by the holder, token checked) or canceled (token '' : any open state).
# KEYS: item, leases, department open, department done. ARGV: token, now, item id, state,
# then field/value pairs to set. 1 done; 0 not open / not in progress; -1 another token.
_FINISH = """
local st = redis.call('HGET', KEYS[1], 'state')
if ARGV[4] == 'completed' then
  if st ~= 'in_progress' then return 0 end
  if redis.call('HGET', KEYS[1], 'claim_token') ~= ARGV[1] then return -1 end
elseif st ~= 'scheduled' and st ~= 'in_progress' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'lease_until', '0', unpack(ARGV, 5))
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
return 1
"""


class Worklist:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._claim = redis.register_script(_CLAIM)
        self._unclaim = redis.register_script(_UNCLAIM)
        self._renew = redis.register_script(_RENEW)
        self._reassign = redis.register_script(_REASSIGN)
        self._finish = redis.register_script(_FINISH)

    async def create(self, item: WorkItem) -> WorkItem:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.work_item(item.id), mapping=item.record())
            pipe.zadd(keys.department_worklist(item.department),
                      {item.id: open_score(item.priority, item.created_at)})
            pipe.zadd(keys.clinic_worklist(item.clinic), {item.id: item.created_at})
            await pipe.execute()
        return item

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    async def get(self, item_id: str) -> WorkItem | None:
        data = await self._r.hgetall(keys.work_item(item_id))
        return WorkItem.from_record(data) if data else None

    async def require(self, item_id: str) -> WorkItem:
        item = await self.get(item_id)
        if item is None:
            raise NotFound("no such reading request")
        return item

    async def many(self, ids: list[str]) -> list[WorkItem]:
        if not ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(keys.work_item(i))
            rows = await pipe.execute()
        return [WorkItem.from_record(r) for r in rows if r]

    async def open_of_department(self, department: str, limit: int = 2000) -> list[WorkItem]:
        """Open items, highest priority first, then oldest first."""
        ids = await self._r.zrange(keys.department_worklist(department), 0, limit - 1)
        return await self.many(list(ids))

    async def done_of_department(self, department: str, limit: int = 100,
                                 since: float = 0.0) -> list[WorkItem]:
        """Finished items, most recently ended first."""
        ids = await self._r.zrevrangebyscore(keys.department_worklist_done(department), "+inf",
                                             since, start=0, num=limit)
        return await self.many(list(ids))

    async def of_clinic(self, clinic: str, limit: int = 200) -> list[WorkItem]:
        ids = await self._r.zrevrange(keys.clinic_worklist(clinic), 0, limit - 1)
        return await self.many(list(ids))

    async def claim(self, item_id: str, username: str, lease_s: float) -> WorkItem:
        now = time.time()
        token = transaction_uid()
        ok, state, holder, *rest = await self._claim(
            keys=[keys.work_item(item_id), keys.WORKLIST_LEASES],
            args=[token, username, repr(now), repr(now + lease_s), item_id])
        if int(ok) == -1:
            raise NotFound("no such reading request")
        if int(ok) != 1:
            if state == ItemState.IN_PROGRESS.value:
                raise ClaimLost(f"already claimed by {holder}", state=state, holder=holder)
            raise ClaimLost(f"this request is {state}, not waiting to be read", state=state,
                            holder=holder)
        flat = rest[0] if rest else []
        return WorkItem.from_record(dict(zip(flat[::2], flat[1::2], strict=True)))

    async def release(self, item_id: str, token: str) -> WorkItem:
        result = await self._unclaim(keys=[keys.work_item(item_id), keys.WORKLIST_LEASES],
                                     args=[token, repr(time.time()), item_id, "release"])
        self._token_result(int(result))
        return await self.require(item_id)

    async def lapse(self, item_id: str) -> WorkItem | None:
        """Return a claim whose lease has run out to the list (None: renewed, or not claimed)."""
        item = await self.get(item_id)
        if item is None or item.state is not ItemState.IN_PROGRESS:
            await self._r.zrem(keys.WORKLIST_LEASES, item_id)
            return None
        result = await self._unclaim(keys=[keys.work_item(item_id), keys.WORKLIST_LEASES],
                                     args=[item.claim_token, repr(time.time()), item_id, "lapse"])
        return replace(item) if int(result) == 1 else None

    async def renew(self, item_id: str, token: str, lease_s: float) -> WorkItem:
        result = await self._renew(keys=[keys.work_item(item_id), keys.WORKLIST_LEASES],
                                   args=[token, repr(time.time() + lease_s), item_id])
        self._token_result(int(result))
        return await self.require(item_id)

    async def reassign(self, item_id: str, to: str, by: str, lease_s: float) -> WorkItem:
        now = time.time()
        result = await self._reassign(
            keys=[keys.work_item(item_id), keys.WORKLIST_LEASES],
            args=[transaction_uid(), to, repr(now), repr(now + lease_s), item_id, by])
        if int(result) != 1:
            raise Conflict("this request is over: it cannot be reassigned")
        return await self.require(item_id)

    async def complete(self, item: WorkItem, token: str, report_id: str = "") -> WorkItem:
        now = time.time()
        result = await self._finish(
            keys=[keys.work_item(item.id), keys.WORKLIST_LEASES,
                  keys.department_worklist(item.department),
                  keys.department_worklist_done(item.department)],
            args=[token, repr(now), item.id, ItemState.COMPLETED.value,
                  "completed_at", repr(now), "report_id", report_id])
        self._token_result(int(result))
        return await self.require(item.id)

    async def cancel(self, item: WorkItem, by: str, reason: str) -> WorkItem:
        now = time.time()
        result = await self._finish(
            keys=[keys.work_item(item.id), keys.WORKLIST_LEASES,
                  keys.department_worklist(item.department),
                  keys.department_worklist_done(item.department)],
            args=["", repr(now), item.id, ItemState.CANCELED.value,
                  "canceled_at", repr(now), "canceled_by", by, "cancel_reason", reason])
        if int(result) != 1:
            raise Conflict("this request is already over")
        return await self.require(item.id)

    async def lapsed(self, now: float | None = None, count: int = 100) -> list[str]:
        """Items whose claim lease has run out."""
        return list(await self._r.zrangebyscore(
            keys.WORKLIST_LEASES, "-inf", time.time() if now is None else now,
            start=0, num=count))

    async def counts(self, department: str, since: float) -> dict[str, int]:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.department_worklist(department))
            pipe.zcount(keys.department_worklist_done(department), since, "+inf")
            total, done = await pipe.execute()
        return {"open": int(total), "finished_since": int(done)}

    @staticmethod
    def _token_result(result: int) -> None:
        if result == 0:
            raise NotHolder("this request is not claimed (it was released or lapsed)")
        if result == -1:
            raise NotHolder("the claim token is not this request's current one: it was "
                            "released, lapsed or reassigned")

"""Critical-value alerts (危急值) in Redis: the alert, its timeline, its escalation schedule.

An alert is `raised` → `acknowledged` (a doctor of the clinic, with a read-back) → `handled`
(the action taken recorded). While it is `raised`, its next escalation step is due at a time
in `hz:alerts:due`; a step is one Lua script that checks the alert is still unacknowledged and
still at the level the sweeper read, then raises the level, appends the step to the timeline,
schedules the next one and puts the step in the delivery outbox — all or nothing, so a step is
recorded exactly once whichever node sweeps, and however often a crashed sweep is retried.

Layout: `hz:alert:ID` hash; `hz:alert:ID:timeline` list of JSON steps {at, step, by, to, ...};
`hz:alerts` (every alert by time: the register), per clinic / department / report; the clinic's
open ones; `hz:alerts:due` (alert → due time of its next step); `hz:escalation:outbox`
(`kind:id:level` → when committed; removed once delivered).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from server.errors import Conflict, NotFound
from server.store import keys
from server.store.records import from_hash, to_hash


class Tier(StrEnum):
    CRITICAL = "critical"  # 危急值
    SIGNIFICANT = "significant"  # 重大阳性


class AlertState(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    HANDLED = "handled"


@dataclass(frozen=True)
class Alert:
    id: str
    tier: Tier
    state: AlertState
    clinic: str
    clinic_name: str
    department: str
    raised_by: str
    raised_by_name: str
    source: str  # report | consult | item
    source_id: str
    report_id: str
    consult_id: str
    item_id: str
    study_uid: str
    patient_name: str
    patient_id: str
    finding: str
    created_at: float
    level: int = 0  # escalation steps done
    next_due: float = 0.0
    told: str = ""  # comma-separated usernames told by escalation beyond the clinic
    acknowledged_by: str = ""
    acknowledged_name: str = ""
    acknowledged_at: float = 0.0
    read_back: str = ""
    handled_by: str = ""
    handled_name: str = ""
    handled_at: float = 0.0
    action_taken: str = ""

    @property
    def told_users(self) -> list[str]:
        return [u for u in self.told.split(",") if u]

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["tier"] = self.tier.value
        data["state"] = self.state.value
        data["told"] = self.told_users
        data["ack_delay_s"] = (round(self.acknowledged_at - self.created_at, 1)
                               if self.acknowledged_at else None)
        return data

    def record(self) -> dict[str, str]:
        """The Redis hash fields."""
        return to_hash(self)

    @classmethod
    def from_record(cls, data: dict[str, str]) -> Alert:
        return from_hash(cls, data)


# One escalation step. KEYS: alert, timeline, due, outbox. ARGV: expected level, now, step JSON,
# next due ('' : none), alert id, usernames told (comma-separated, '' : none), outbox member.
# 1: recorded; 0: acknowledged meanwhile, or this level already done.
_STEP = """
if redis.call('HGET', KEYS[1], 'state') ~= 'raised' then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'level') or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'level', tonumber(ARGV[1]) + 1)
redis.call('RPUSH', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  redis.call('HSET', KEYS[1], 'next_due', ARGV[4])
else
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('HSET', KEYS[1], 'next_due', '0')
end
if ARGV[6] ~= '' then
  local told = redis.call('HGET', KEYS[1], 'told') or ''
  if told == '' then told = ARGV[6] else told = told .. ',' .. ARGV[6] end
  redis.call('HSET', KEYS[1], 'told', told)
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[7])
return 1
"""

# Acknowledge. KEYS: alert, timeline, due, clinic open. ARGV: now, user, name, read-back,
# step JSON, alert id. {1}: done; {0, state, by}: not raised.
_ACK = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {-1, '', ''} end
if st ~= 'raised' then return {0, st, redis.call('HGET', KEYS[1], 'acknowledged_by') or ''} end
redis.call('HSET', KEYS[1], 'state', 'acknowledged', 'acknowledged_at', ARGV[1],
           'acknowledged_by', ARGV[2], 'acknowledged_name', ARGV[3], 'read_back', ARGV[4],
           'next_due', '0')
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('ZREM', KEYS[4], ARGV[6])
return {1, 'acknowledged', ARGV[2]}
"""

# Handled. KEYS: alert, timeline. ARGV: now, user, name, action, step JSON.
_HANDLED = """
local st = redis.call('HGET', KEYS[1], 'state')
if st ~= 'acknowledged' then return st or '' end
redis.call('HSET', KEYS[1], 'state', 'handled', 'handled_at', ARGV[1], 'handled_by', ARGV[2],
           'handled_name', ARGV[3], 'action_taken', ARGV[4])
redis.call('RPUSH', KEYS[2], ARGV[5])
return 'ok'
"""

def _write(pipe: Pipeline, alert: Alert, timeline: list[dict[str, Any]]) -> None:
    """An alert's hash, timeline and indexes, queued on a MULTI (create and restore)."""
    pipe.hset(keys.alert(alert.id), mapping=alert.record())
    pipe.rpush(keys.alert_timeline(alert.id),
               *(json.dumps(e, ensure_ascii=False) for e in timeline))
    when = {alert.id: alert.created_at}
    pipe.zadd(keys.ALERTS, when)
    pipe.zadd(keys.clinic_alerts(alert.clinic), when)
    if alert.department:
        pipe.zadd(keys.department_alerts(alert.department), when)
    for ref in (alert.report_id, alert.item_id and f"item:{alert.item_id}",
                alert.consult_id and f"consult:{alert.consult_id}"):
        if ref:
            pipe.zadd(keys.report_alerts(ref), when)
    if alert.state is AlertState.RAISED:
        pipe.zadd(keys.clinic_alerts_open(alert.clinic), when)
    else:
        pipe.zrem(keys.clinic_alerts_open(alert.clinic), alert.id)
    if alert.state is AlertState.RAISED and alert.next_due:
        pipe.zadd(keys.ALERTS_DUE, {alert.id: alert.next_due})
    else:
        pipe.zrem(keys.ALERTS_DUE, alert.id)


def step(name: str, by: str = "", to: list[str] | None = None, at: float | None = None,
         **extra: Any) -> dict[str, Any]:
    """One timeline entry: when, what, by whom, who was told."""
    entry: dict[str, Any] = {"at": time.time() if at is None else at, "step": name, "by": by,
                             "to": to or []}
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


class Alerts:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._step = redis.register_script(_STEP)
        self._ack = redis.register_script(_ACK)
        self._handled = redis.register_script(_HANDLED)

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    async def create(self, alert: Alert, first: dict[str, Any], first_due: float) -> Alert:
        async with self._r.pipeline(transaction=True) as pipe:
            _write(pipe, replace(alert, next_due=first_due), [first])
            await pipe.execute()
        return await self.require(alert.id)

    async def restore(self, alert: Alert, timeline: list[dict[str, Any]]) -> bool:
        """Reindex: put back an alert rebuilt from the journal — its hash, timeline, indexes
        and (while raised) its next due time — unless Redis already holds as much of its
        timeline (then Redis is as new as the journal, or newer). True if written."""
        key = keys.alert_timeline(alert.id)
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH: a sweep or an acknowledgement of this alert between the length
                    # check and the write makes the write retry, not clobber it.
                    await pipe.watch(key)
                    if int(await pipe.llen(key)) >= len(timeline):
                        await pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.delete(keys.alert(alert.id), key)
                    _write(pipe, alert, timeline)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def get(self, alert_id: str) -> Alert | None:
        data = await self._r.hgetall(keys.alert(alert_id))
        return Alert.from_record(data) if data else None

    async def require(self, alert_id: str) -> Alert:
        alert = await self.get(alert_id)
        if alert is None:
            raise NotFound("no such alert")
        return alert

    async def many(self, ids: list[str]) -> list[Alert]:
        if not ids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(keys.alert(i))
            rows = await pipe.execute()
        return [Alert.from_record(r) for r in rows if r]

    async def timeline(self, alert_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in await self._r.lrange(keys.alert_timeline(alert_id), 0, -1)]

    async def timelines(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not ids:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.lrange(keys.alert_timeline(i), 0, -1)
            rows = await pipe.execute()
        return {i: [json.loads(x) for x in r] for i, r in zip(ids, rows, strict=True)}

    async def open_of_clinic(self, clinic: str) -> list[Alert]:
        ids = await self._r.zrange(keys.clinic_alerts_open(clinic), 0, 199)
        return [a for a in await self.many(list(ids)) if a.state is AlertState.RAISED]

    async def listing(self, *, clinic: str | None = None, department: str | None = None,
                      since: float = 0.0, until: float = float("inf"), limit: int = 500
                      ) -> list[Alert]:
        """Newest first, from the narrowest index the filters allow."""
        key = (keys.clinic_alerts(clinic) if clinic else
               keys.department_alerts(department) if department else keys.ALERTS)
        ids = await self._r.zrevrangebyscore(key, "+inf" if until == float("inf") else until,
                                             since, start=0, num=limit)
        return await self.many(list(ids))

    async def of_report(self, report_id: str, item_id: str = "", consult_id: str = ""
                        ) -> list[Alert]:
        """Alerts raised on a report, or on the reading request or consult it is for."""
        refs = [report_id, item_id and f"item:{item_id}", consult_id and f"consult:{consult_id}"]
        found: dict[str, float] = {}
        for ref in refs:
            if ref:
                found.update(await self._r.zrange(keys.report_alerts(ref), 0, -1,
                                                  withscores=True))
        return await self.many(sorted(found, key=found.__getitem__))

    async def acknowledge(self, alert: Alert, user: str, name: str, read_back: str,
                          entry: dict[str, Any]) -> Alert:
        ok, state, by = await self._ack(
            keys=[keys.alert(alert.id), keys.alert_timeline(alert.id), keys.ALERTS_DUE,
                  keys.clinic_alerts_open(alert.clinic)],
            args=[repr(entry["at"]), user, name, read_back,
                  json.dumps(entry, ensure_ascii=False), alert.id])
        if int(ok) == -1:
            raise NotFound("no such alert")
        if int(ok) != 1:
            raise Conflict(f"this alert was already {state}" + (f" by {by}" if by else ""),
                           state=state, by=by)
        return await self.require(alert.id)

    async def handled(self, alert: Alert, user: str, name: str, action: str,
                      entry: dict[str, Any]) -> Alert:
        result = await self._handled(
            keys=[keys.alert(alert.id), keys.alert_timeline(alert.id)],
            args=[repr(entry["at"]), user, name, action, json.dumps(entry, ensure_ascii=False)])
        if result != "ok":
            raise Conflict("acknowledge the alert first" if result == "raised"
                           else "the action taken is already recorded", state=result)
        return await self.require(alert.id)

    # escalation ---------------------------------------------------------------------------
    async def due(self, now: float | None = None, count: int = 100) -> list[str]:
        return list(await self._r.zrangebyscore(
            keys.ALERTS_DUE, "-inf", time.time() if now is None else now, start=0, num=count))

    async def record_step(self, alert: Alert, entry: dict[str, Any], next_due: float | None,
                          told: list[str]) -> bool:
        """Level `alert.level` → +1 with this timeline entry, exactly once (see module doc)."""
        return bool(await self._step(
            keys=[keys.alert(alert.id), keys.alert_timeline(alert.id), keys.ALERTS_DUE,
                  keys.ESCALATION_OUTBOX],
            args=[alert.level, repr(entry["at"]), json.dumps(entry, ensure_ascii=False),
                  "" if next_due is None else repr(next_due), alert.id, ",".join(told),
                  f"alert:{alert.id}:{alert.level + 1}"]))

    async def outbox_add(self, member: str, at: float) -> None:
        await self._r.zadd(keys.ESCALATION_OUTBOX, {member: at})

    async def delivered(self, member: str) -> None:
        await self._r.zrem(keys.ESCALATION_OUTBOX, member)

    async def undelivered(self, older_than: float) -> list[str]:
        """Steps committed before `older_than` whose delivery no node confirmed (it died)."""
        return list(await self._r.zrangebyscore(keys.ESCALATION_OUTBOX, "-inf", older_than,
                                                start=0, num=100))


# One escalation step of a ringing consult. KEYS: consult, outbox. ARGV: expected level, now,
# outbox member. 1: recorded; 0: answered/ended meanwhile, or this level already done.
_CONSULT_STEP = """
if redis.call('HGET', KEYS[1], 'state') ~= 'ringing' then return 0 end
local level = tonumber(redis.call('HGET', KEYS[1], 'escalation_level') or '0')
if level ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'escalation_level', level + 1, 'escalated_at_' .. (level + 1), ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class ConsultEscalations:
    """Escalation steps of unanswered consult requests, kept on the consult's own hash."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._step = redis.register_script(_CONSULT_STEP)

    async def ringing(self, count: int = 1000) -> list[str]:
        return list(await self._r.zrange(keys.CONSULTS_RING_DEADLINES, 0, count - 1))

    async def level(self, consult_id: str) -> int:
        return int(await self._r.hget(keys.consult(consult_id), "escalation_level") or 0)

    async def record_step(self, consult_id: str, level: int, now: float) -> bool:
        return bool(await self._step(
            keys=[keys.consult(consult_id), keys.ESCALATION_OUTBOX],
            args=[level, repr(now), f"consult:{consult_id}:{level + 1}"]))

"""The audit stream: every read of patient data, who did it, from where (a Redis Stream).

Two ways in, one stream. `record` writes before it returns: logins, uploads, consults, searches.
`record_soon` is for the highest-volume reads — every frame a scrolling viewer renders: the event
is queued before the response is sent and a writer flushes the queue every `FLUSH_INTERVAL_S`
as one script call that appends the whole batch (one command to build and one reply to parse
instead of one per event: the event loop is the scarce resource of a scrolling server). That
costs a fraction of a round trip per frame; what could be lost is the
last ~20 ms of frame views if the process is killed outright (a clean shutdown flushes all).
When Redis cannot take the events the queue stops growing at `MAX_PENDING` and further views
are refused, so nothing is ever served unaudited for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.errors import ServiceUnavailable
from server.log import event
from server.store import keys

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.02
MAX_PENDING = 20_000
FLUSH_BATCH = 500

#: ARGV: for each event, its field count then field, value, ... Appends them in order.
_APPEND_BATCH = """
local i = 1
local n = 0
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + 2 * count))
  i = i + 1 + 2 * count
  n = n + 1
end
return n
"""


@dataclass(frozen=True)
class AuditEvent:
    id: str
    fields: dict[str, str]


def _fields(action: str, user: str, role: str, clinic: str | None, remote: str | None,
            resource: dict[str, Any]) -> dict[str, str]:
    fields = {
        "ts": f"{time.time():.3f}",
        "action": action,
        "user": user,
        "role": role,
        "clinic": clinic or "",
        "remote": remote or "",
    }
    fields.update({k: str(v) for k, v in resource.items() if v is not None})
    return fields


#: One chunk of a search, filtered inside Redis so only the matches cross the wire (reading
#: 50,000 events into Python costs seconds; scanning them here costs milliseconds, 1000 per
#: call so no call holds Redis for long). KEYS: the stream. ARGV: high, low, count, user,
#: break_glass ('1' or ''), clinic, patient id, actions (comma-separated, exact or prefix*),
#: then the patient's StudyInstanceUIDs. Returns {last id looked at, how many, matches}. The
#: caller re-checks every match with the Python matcher (the one definition of a match).
_SEARCH_CHUNK = """
local rows = redis.call('XREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])
local user, glass, clinic, patient = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local acts = {}
for a in string.gmatch(ARGV[8], '[^,]+') do table.insert(acts, a) end
local studies = {}
for i = 9, #ARGV do studies[ARGV[i]] = true end
local out = {}
for _, row in ipairs(rows) do
  local f = {}
  local kv = row[2]
  for i = 1, #kv, 2 do f[kv[i]] = kv[i + 1] end
  local ok = true
  if user ~= '' and f['user'] ~= user then ok = false end
  if ok and glass == '1' and f['break_glass'] ~= '1' then ok = false end
  if ok and #acts > 0 then
    local a = f['action'] or ''
    local any = false
    for _, p in ipairs(acts) do
      if p == '*' or p == a or (string.sub(p, -1) == '*'
          and string.sub(a, 1, #p - 1) == string.sub(p, 1, #p - 1)) then
        any = true
        break
      end
    end
    ok = any
  end
  if ok and clinic ~= '' then
    ok = f['clinic'] == clinic or f['study_clinic'] == clinic or f['device_clinic'] == clinic
      or f['referral_clinic'] == clinic
  end
  if ok and patient ~= '' then
    local hit = f['patient_id'] == patient
    if not hit then
      for _, k in ipairs({'study', 'studies', 'break_glass_studies'}) do
        local v = f[k]
        if v then
          for item in string.gmatch(v, '[^,]+') do
            if studies[string.match(item, '([^/]*)$')] then
              hit = true
              break
            end
          end
        end
        if hit then break end
      end
    end
    ok = hit
  end
  if ok then table.insert(out, row) end
end
local last = ''
if #rows > 0 then last = rows[#rows][1] end
return {last, #rows, out}
"""


@dataclass(frozen=True)
class Prefilter:
    """The part of a search Redis can decide by itself (server/audit_search.py builds it)."""

    user: str = ""
    break_glass: bool = False
    clinic: str = ""
    patient: str = ""
    actions: tuple[str, ...] = ()
    patient_studies: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return [self.user, "1" if self.break_glass else "", self.clinic, self.patient,
                ",".join(self.actions), *self.patient_studies]


@dataclass(frozen=True)
class AuditPage:
    """One page of a search, newest first. `next`: the id to continue before (None: the range
    is exhausted); `scanned`: how many events were looked at for this page."""

    events: list[AuditEvent]
    next: str | None
    scanned: int


#: A search looks at no more than this many events per call (then says where to go on).
MAX_SCAN = 50_000
_CHUNK = 1000


class AuditLog:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._pending: list[dict[str, str]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._append_batch = redis.register_script(_APPEND_BATCH)
        self._flush_lock = asyncio.Lock()
        self._search_chunk = redis.register_script(_SEARCH_CHUNK)

    async def record(
        self, *, action: str, user: str, role: str, clinic: str | None, remote: str | None,
        **resource: Any,
    ) -> str:
        # Never trimmed here: only the operator's `huizhen audit prune` removes entries, and
        # only archived ones past the retention minimum (server/audit_archive.py).
        return await self._r.xadd(keys.AUDIT, _fields(action, user, role, clinic, remote, resource))

    def record_soon(
        self, *, action: str, user: str, role: str, clinic: str | None, remote: str | None,
        **resource: Any,
    ) -> None:
        if len(self._pending) >= MAX_PENDING:
            raise ServiceUnavailable("the audit log cannot be written right now; try again soon")
        self._pending.append(_fields(action, user, role, clinic, remote, resource))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        while self._pending:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        # One flush at a time (writer, recent(), since()): batches land in queue order.
        async with self._flush_lock:
            while self._pending:
                # Bounded calls: a long backlog must not stall Redis for everyone else.
                batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
                args: list[str | int] = []
                for fields in batch:
                    args.append(len(fields))
                    for item in fields.items():
                        args.extend(item)
                try:
                    # client=: the script follows this log's connection, not the one it was
                    # registered with.
                    await self._append_batch(keys=[keys.AUDIT], args=args, client=self._r)
                except (RedisError, OSError) as exc:
                    # Keep them, oldest first, for the next attempt.
                    self._pending = batch + self._pending
                    event(log, "audit_flush_failed", logging.ERROR, pending=len(self._pending),
                          error=type(exc).__name__)
                    await asyncio.sleep(0.5)
                    return
                except BaseException:
                    # Cancelled mid-call (shutdown): keep them for close() to write or count.
                    self._pending = batch + self._pending
                    raise

    async def close(self) -> None:
        """Flush what is queued (bounded: a dead Redis must not hang shutdown)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.flush()
        if self._pending:
            event(log, "audit_events_lost", logging.ERROR, count=len(self._pending))

    async def recent(self, count: int = 100) -> list[AuditEvent]:
        await self.flush()
        rows = await self._r.xrevrange(keys.AUDIT, count=count)
        return [AuditEvent(id=i, fields=f) for i, f in rows]

    async def since(self, last_id: str = "0", count: int = 1000) -> list[AuditEvent]:
        await self.flush()
        rows = await self._r.xrange(keys.AUDIT, min=f"({last_id}" if last_id != "0" else "-",
                                    count=count)
        return [AuditEvent(id=i, fields=f) for i, f in rows]

    async def search(
        self, match: Callable[[dict[str, str]], bool], *, before: str | None = None,
        since_ms: int | None = None, until_ms: int | None = None, limit: int = 100,
        scan_limit: int | None = None, prefilter: Prefilter | None = None,
    ) -> AuditPage:
        """Events for which `match(fields)` holds, newest first, between since_ms and
        until_ms (stream ids are milliseconds: the range is an XREVRANGE, not a scan of the
        whole stream) and before the id `before` (exclusive: the previous page's `next`).
        Bounded: at most `limit` events, at most `scan_limit` looked at. `prefilter`: what
        Redis may sift first (only matches come back), `match` still decides."""
        await self.flush()
        scan_limit = MAX_SCAN if scan_limit is None else scan_limit
        high = f"({before}" if before else (str(until_ms) if until_ms is not None else "+")
        low = str(since_ms) if since_ms is not None else "-"
        found: list[AuditEvent] = []
        scanned = 0
        while scanned < scan_limit:
            count = min(_CHUNK, scan_limit - scanned)
            if prefilter is not None:
                last, seen, rows = await self._search_chunk(
                    keys=[keys.AUDIT], args=[high, low, count, *prefilter.args()],
                    client=self._r)
                rows = [(i, dict(zip(kv[::2], kv[1::2], strict=True))) for i, kv in rows]
                seen = int(seen)
            else:
                # nothing to sift: (nearly) every event is a match, read no more than needed
                count = min(count, max(limit - len(found), 1))
                rows = await self._r.xrevrange(keys.AUDIT, max=high, min=low, count=count)
                seen = len(rows)
                last = rows[-1][0] if rows else ""
            if not seen:
                return AuditPage(found, None, scanned)
            for event_id, fields in rows:
                if match(fields):
                    found.append(AuditEvent(event_id, fields))
                    if len(found) >= limit:
                        # the events after this one in the chunk were looked at, not shown:
                        # the next page starts right after it
                        return AuditPage(found, event_id, scanned + seen)
            scanned += seen
            high = f"({last}"
        return AuditPage(found, high[1:], scanned)

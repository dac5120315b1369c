"""The Redis index of reports and consult opinions (the files are the record:
server/clinical/report_files.py; `huizhen reindex` rebuilds this from them).

Per report: a hash (`header` = the first version's subject/kind/author, `current` = newest
signed version number, `status`, `draft` JSON and its `revision`) and a hash of signed versions
by number. Lists: per study, per clinic (signed only, newest first), per author (everything);
one report per reading request and per consult (SET NX); verification code → version.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from server.clinical.report_model import Report, Status, Version
from server.store import keys


class DraftConflict(Exception):
    """The draft was saved meanwhile (another tab, another node): `revision` is the newest."""

    def __init__(self, revision: int) -> None:
        super().__init__(revision)
        self.revision = revision


# KEYS: report, request-or-consult mapping (or a dummy), author list.
# ARGV: id, header json, draft json, now. Returns the id of the report for this request.
_CREATE = """
if KEYS[2] ~= '' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return existing end
  redis.call('SET', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[1], 'header', ARGV[2], 'draft', ARGV[3], 'revision', '0',
           'status', 'preliminary', 'current', '0', 'updated_at', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return ARGV[1]
"""
# KEYS: report. ARGV: base revision, draft json. The new revision, or -(revision) - 1 when the
# stored draft is another revision, or -1 when there is no draft (signed meanwhile).
_SAVE_DRAFT = """
if redis.call('HEXISTS', KEYS[1], 'draft') == 0 then return -1 end
local rev = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if rev ~= tonumber(ARGV[1]) then return -1 - rev end
redis.call('HSET', KEYS[1], 'draft', ARGV[2], 'revision', tostring(rev + 1))
return rev + 1
"""
# KEYS: report. ARGV: draft json. 1: started; 0: a draft is open already.
_START_DRAFT = """
if redis.call('HEXISTS', KEYS[1], 'header') == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'draft') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'draft', ARGV[1], 'revision', '0')
return 1
"""
# KEYS: report, versions, study list, clinic list, author list, code. ARGV: number, version
# json, status, score (unix time), id, header json. Idempotent (reindex runs it per file).
_INDEX_SIGNED = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[1], 'header') == 0 then
  redis.call('HSET', KEYS[1], 'header', ARGV[6], 'revision', '0')
end
local current = tonumber(redis.call('HGET', KEYS[1], 'current') or '0')
if tonumber(ARGV[1]) >= current then
  redis.call('HSET', KEYS[1], 'current', ARGV[1], 'status', ARGV[3], 'updated_at', ARGV[4])
  local draft = redis.call('HGET', KEYS[1], 'draft')
  if draft and tonumber(cjson.decode(draft)['version']) <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], 'draft')
  end
end
if KEYS[3] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[5])
redis.call('SET', KEYS[6], ARGV[5] .. ':' .. ARGV[1])
return 1
"""


@dataclass(frozen=True)
class CodeTarget:
    report_id: str
    version: int


class Reports:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._create = redis.register_script(_CREATE)
        self._save_draft = redis.register_script(_SAVE_DRAFT)
        self._start_draft = redis.register_script(_START_DRAFT)
        self._index_signed = redis.register_script(_INDEX_SIGNED)

    async def create(self, draft: Version) -> str:
        """Index a new report's first draft; returns the id of the report of its reading
        request or consult (an existing one when there is one: one report each)."""
        s = draft.subject
        mapping = (keys.report_for_request(s.reading_request_id) if s.reading_request_id
                   else keys.report_for_consult(s.consult_id) if s.consult_id else "")
        return str(await self._create(
            keys=[keys.report(draft.report_id), mapping, keys.reports_of_author(draft.author)],
            args=[draft.report_id, _header(draft), _dump(draft), repr(time.time())]))

    async def save_draft(self, draft: Version, base_revision: int) -> int:
        """Store the draft if the stored one is still `base_revision`; the new revision
        (DraftConflict otherwise)."""
        result = int(await self._save_draft(
            keys=[keys.report(draft.report_id)], args=[base_revision, _dump(draft)]))
        if result < 0:
            raise DraftConflict(-1 - result)
        return result

    async def start_draft(self, draft: Version) -> bool:
        """A new draft (an amendment) unless one is open; False if one is."""
        return int(await self._start_draft(keys=[keys.report(draft.report_id)],
                                           args=[_dump(draft)])) == 1

    async def index_signed(self, version: Version) -> None:
        s = version.subject
        score = time.time()
        await self._index_signed(
            keys=[keys.report(version.report_id), keys.report_versions(version.report_id),
                  keys.reports_of_study(s.clinic, s.study_uid) if s.study_uid else "",
                  keys.reports_of_clinic(s.clinic), keys.reports_of_author(version.author),
                  keys.report_code(version.verification_code)],
            args=[version.version, _dump(version), version.status.value, repr(score),
                  version.report_id, _header(version)])

    async def index_draft(self, draft: Version) -> None:
        """Reindex: a draft read from its file."""
        await self._r.hset(keys.report(draft.report_id), mapping={
            "draft": _dump(draft), "revision": str(draft.revision)})
        await self._r.hsetnx(keys.report(draft.report_id), "header", _header(draft))
        await self._r.hsetnx(keys.report(draft.report_id), "current", "0")
        await self._r.hsetnx(keys.report(draft.report_id), "status",
                             Status.PRELIMINARY.value)
        await self._r.zadd(keys.reports_of_author(draft.author),
                           {draft.report_id: draft.updated_at or draft.created_at})

    async def index_mapping(self, report: Report) -> None:
        s = report.subject
        if s.reading_request_id:
            await self._r.set(keys.report_for_request(s.reading_request_id), report.id)
        if s.consult_id:
            await self._r.set(keys.report_for_consult(s.consult_id), report.id)

    async def get(self, report_id: str) -> Report | None:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.report(report_id))
            pipe.hgetall(keys.report_versions(report_id))
            head, versions = await pipe.execute()
        if not head:
            return None
        signed = sorted((Version.from_json(json.loads(v)) for v in versions.values()),
                        key=lambda v: v.version)
        draft = Version.from_json(json.loads(head["draft"])) if head.get("draft") else None
        if draft is not None:
            draft = _with_revision(draft, int(head.get("revision") or 0))
        if not signed and draft is None:
            return None
        return Report(tuple(signed), draft)

    async def for_request(self, request_id: str) -> str | None:
        return await self._r.get(keys.report_for_request(request_id))

    async def for_consult(self, consult_id: str) -> str | None:
        return await self._r.get(keys.report_for_consult(consult_id))

    async def for_consults(self, consult_ids: list[str]) -> dict[str, str]:
        if not consult_ids:
            return {}
        found = await self._r.mget([keys.report_for_consult(c) for c in consult_ids])
        return {c: r for c, r in zip(consult_ids, found, strict=True) if r}

    async def by_code(self, code: str) -> CodeTarget | None:
        raw = await self._r.get(keys.report_code(code))
        if not raw:
            return None
        report_id, _, number = raw.partition(":")
        return CodeTarget(report_id, int(number))

    async def of_clinic(self, clinic: str, limit: int, offset: int) -> tuple[list[str], int]:
        key = keys.reports_of_clinic(clinic)
        return (list(await self._r.zrevrange(key, offset, offset + limit - 1)),
                int(await self._r.zcard(key)))

    async def of_author(self, username: str, limit: int, offset: int) -> tuple[list[str], int]:
        key = keys.reports_of_author(username)
        return (list(await self._r.zrevrange(key, offset, offset + limit - 1)),
                int(await self._r.zcard(key)))

    async def of_study(self, clinic: str, study_uid: str) -> list[str]:
        return list(await self._r.zrevrange(keys.reports_of_study(clinic, study_uid), 0, 99))

    async def clear(self) -> int:
        """Drop the whole index (reindex rebuilds it from the files)."""
        removed = 0
        for pattern in keys.REPORT_KEY_PATTERNS:
            batch: list[str] = []
            async for key in self._r.scan_iter(match=pattern, count=500):
                if ":verify-attempts:" in key:
                    continue
                batch.append(key)
                if len(batch) >= 500:
                    removed += await self._r.delete(*batch)
                    batch = []
            if batch:
                removed += await self._r.delete(*batch)
        return removed

    async def verify_attempt(self, bucket: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Count one /verify lookup from an address; (allowed, retry_after_s)."""
        key = keys.verify_attempts(bucket)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.incr(key).expire(key, window_s, nx=True).ttl(key)
            count, _, ttl = await pipe.execute()
        if int(count) > limit:
            return False, max(1, int(ttl) if int(ttl) > 0 else window_s)
        return True, 0


def _dump(version: Version) -> str:
    return json.dumps(version.to_json(), ensure_ascii=False)


def _header(version: Version) -> str:
    return json.dumps({"kind": version.kind.value, "author": version.author,
                       "subject": version.subject.to_json()}, ensure_ascii=False)


def _with_revision(draft: Version, revision: int) -> Version:
    return replace(draft, revision=revision)

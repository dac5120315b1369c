"""Study grants: who, beyond the study's own clinic, may read a study, why, and until when.

A grant names one study — (clinic, StudyInstanceUID) — one user, a `kind` (what granted it:
`consult`, `mdt` (an MDT session's invitees), `break-glass`, `demo`; reading requests add
theirs) and a `ref` (the consult, meeting or request id), and expires. Whether a grant lets
someone read is decided in `server/auth/access.py` alone; this module only stores them.

Layout: one hash per user, `hz:user:NAME:grants`, field `CLINIC/UID` -> JSON list of that
user's grants on that study. One HGETALL answers every question the hot path asks (may they read
this UID, of which clinic, is it break-glass) and lists the studies QIDO shows them. The key
expires with its latest grant; expired entries are dropped whenever the field is written.

Reads are cached in-process per user for CACHE_TTL_S, and only positive answers are served from
the cache: a new grant works at once, a revoked one stops within CACHE_TTL_S, an expired one at
its expiry (each use compares `expires_at` with the clock).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from server.store import keys

CONSULT = "consult"
READING = "reading"  # a reading request (work item) for its department's experts
BREAK_GLASS = "break-glass"
DEMO = "demo"
MDT = "mdt"  # ref = the MDT session id; each invitee x each case study (server/mdt/)
REFERRAL = "referral"  # a referral's studies for its receiving side (ref: referral id)

DEFAULT_TTL_S = 7 * 24 * 3600
DEFAULT_BREAK_GLASS_TTL_S = 3600


@dataclass(frozen=True)
class Grant:
    username: str
    clinic: str
    study_uid: str
    kind: str
    ref: str
    granted_at: float
    expires_at: float
    by: str = ""  # who caused it (the expert who broke the glass, the inviter, ...)
    reason: str = ""  # break-glass: what the expert wrote

    def live(self, now: float) -> bool:
        return self.expires_at > now


# Upsert one grant (same kind and ref replaced, expired ones dropped) and let the key live as
# long as its latest grant. ARGV: field, grant JSON, now, expires_at in ms.
_GRANT = """
local list = {}
local g = cjson.decode(ARGV[2])
local now = tonumber(ARGV[3])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  for _, x in ipairs(cjson.decode(raw)) do
    if x['expires_at'] > now and not (x['kind'] == g['kind'] and x['ref'] == g['ref']) then
      table.insert(list, x)
    end
  end
end
table.insert(list, g)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(list))
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[4], 'GT')
end
return #list
"""

# Remove grants of one kind (and ref, unless ARGV[3] is empty). ARGV: field, kind, ref, now.
_REVOKE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local list = {}
local removed = 0
for _, x in ipairs(cjson.decode(raw)) do
  if x['kind'] == ARGV[2] and (ARGV[3] == '' or x['ref'] == ARGV[3]) then
    removed = removed + 1
  elseif x['expires_at'] > tonumber(ARGV[4]) then
    table.insert(list, x)
  end
end
if #list == 0 then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(list)) end
return removed
"""


def _field(clinic: str, study_uid: str) -> str:
    return f"{clinic}/{study_uid}"


class Grants:
    CACHE_TTL_S = 2.0
    CACHE_USERS = 10_000

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._grant = redis.register_script(_GRANT)
        self._revoke = redis.register_script(_REVOKE)
        self._cache: OrderedDict[str, tuple[float, list[Grant]]] = OrderedDict()
        self.ttl_s: float = DEFAULT_TTL_S
        self.break_glass_ttl_s: float = DEFAULT_BREAK_GLASS_TTL_S

    def configure(self, *, ttl_s: float, break_glass_ttl_s: float) -> None:
        self.ttl_s, self.break_glass_ttl_s = ttl_s, break_glass_ttl_s

    async def grant(
        self, username: str, clinic: str, study_uid: str, *, kind: str, ref: str,
        ttl_s: float, by: str = "", reason: str = "",
    ) -> Grant:
        now = time.time()
        grant = Grant(username, clinic, study_uid, kind, ref, now, now + ttl_s, by, reason)
        record = {k: v for k, v in asdict(grant).items()
                  if k not in ("username", "clinic", "study_uid")}
        await self._grant(
            keys=[keys.user_grants(username)],
            args=[_field(clinic, study_uid), json.dumps(record, ensure_ascii=False), now,
                  int(grant.expires_at * 1000)],
        )
        self._cache.pop(username, None)
        return grant

    async def break_glass(
        self, username: str, clinic: str, study_uid: str, reason: str
    ) -> Grant:
        return await self.grant(username, clinic, study_uid, kind=BREAK_GLASS,
                                ref=secrets.token_hex(8), ttl_s=self.break_glass_ttl_s,
                                by=username, reason=reason)

    async def for_consult(
        self, consult_id: str, clinic: str, study_uid: str, usernames: list[str], by: str = ""
    ) -> None:
        """The consult's study for each user, for HUIZHEN_GRANT_TTL_S from now (called when
        they accept, are invited, join, and again when the room closes: so the room's life plus
        the TTL). A consult without a study grants nothing."""
        if not study_uid:
            return
        for username in usernames:
            await self.grant(username, clinic, study_uid, kind=CONSULT, ref=consult_id,
                             ttl_s=self.ttl_s, by=by)

    async def for_mdt(
        self, mdt_id: str, studies: list[tuple[str, str]], usernames: list[str], *,
        ttl_s: float, by: str = "",
    ) -> int:
        """An MDT session's case studies ((clinic, UID) pairs) for each invitee, until `ttl_s`
        from now (the caller passes the session's end plus the grant period). Granting again
        replaces the earlier grant of the same session (same kind and ref). One pipelined round
        trip for all of them (a full agenda is a few thousand grants)."""
        now = time.time()
        expires = now + ttl_s
        record = json.dumps({"kind": MDT, "ref": mdt_id, "granted_at": now,
                             "expires_at": expires, "by": by, "reason": ""})
        count = 0
        async with self._r.pipeline(transaction=False) as pipe:
            for username in usernames:
                for clinic, study_uid in studies:
                    await self._grant(keys=[keys.user_grants(username)],
                                      args=[_field(clinic, study_uid), record, now,
                                            int(expires * 1000)], client=pipe)
                    count += 1
            if count:
                await pipe.execute()
        for username in usernames:
            self._cache.pop(username, None)
        return count

    async def revoke_mdt(
        self, mdt_id: str, studies: list[tuple[str, str]], usernames: list[str]
    ) -> int:
        """Take an MDT session's grants back (cancelled, uninvited, case removed): one
        pipelined round trip. Returns how many were removed."""
        if not studies or not usernames:
            return 0
        now = time.time()
        async with self._r.pipeline(transaction=False) as pipe:
            for username in usernames:
                for clinic, study_uid in studies:
                    await self._revoke(keys=[keys.user_grants(username)],
                                       args=[_field(clinic, study_uid), MDT, mdt_id, now],
                                       client=pipe)
            removed = await pipe.execute()
        for username in usernames:
            self._cache.pop(username, None)
        return sum(int(r) for r in removed)

    async def revoke(
        self, username: str, clinic: str, study_uid: str, *, kind: str, ref: str = ""
    ) -> int:
        removed = await self._revoke(
            keys=[keys.user_grants(username)],
            args=[_field(clinic, study_uid), kind, ref, time.time()],
        )
        self._cache.pop(username, None)
        return int(removed)

    def cached(self, username: str, study_uid: str) -> list[Grant] | None:
        """Live grants of one UID from the in-process cache while it is fresh; None: ask Redis."""
        hot = self._cache.get(username)
        if hot is None or time.monotonic() - hot[0] >= self.CACHE_TTL_S:
            return None
        now = time.time()
        found = [g for g in hot[1] if g.study_uid == study_uid and g.live(now)]
        if not found:
            return None
        self._cache.move_to_end(username)
        return found

    def hint(self, username: str, study_uid: str) -> str | None:
        """The clinic of the newest grant of this UID the cache last saw (fresh or not): where
        the instance most likely is, so it can be fetched in the same round trip."""
        hot = self._cache.get(username)
        if hot is None:
            return None
        return next((g.clinic for g in hot[1] if g.study_uid == study_uid), None)

    def load(self, username: str, raw: dict[str, str], study_uid: str | None = None
             ) -> list[Grant]:
        """Parse an HGETALL of the user's grants, cache it, return the live ones (of a UID)."""
        now = time.time()
        grants: list[Grant] = []
        for field, value in raw.items():
            clinic, _, uid = field.partition("/")
            for g in json.loads(value):
                grants.append(Grant(username=username, clinic=clinic, study_uid=uid,
                                    kind=g["kind"], ref=g["ref"],
                                    granted_at=float(g["granted_at"]),
                                    expires_at=float(g["expires_at"]),
                                    by=g.get("by", ""), reason=g.get("reason", "")))
        grants = sorted((g for g in grants if g.live(now)), key=lambda g: -g.granted_at)
        self._cache[username] = (time.monotonic(), grants)
        self._cache.move_to_end(username)
        if len(self._cache) > self.CACHE_USERS:
            self._cache.popitem(last=False)
        return [g for g in grants if study_uid is None or g.study_uid == study_uid]

    async def of_user(self, username: str, *, study_uid: str | None = None) -> list[Grant]:
        """The user's live grants (of one StudyInstanceUID, any clinic, if given), newest
        first. Served from the in-process cache only when it holds a live grant for the ask."""
        if study_uid is not None and (found := self.cached(username, study_uid)) is not None:
            return found
        return self.load(username, await self._r.hgetall(keys.user_grants(username)), study_uid)

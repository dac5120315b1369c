"""Each user's notifications: a capped Redis Stream (their inbox) and how far they have read it.

A stream, not a pub/sub message alone, so a page that was closed or whose link dropped gets what
it missed (`since`), and the badge count survives a reload. The inbox keeps the newest
`INBOX_KEPT` entries; the count of unread ones is bounded by that too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from server.store import keys

INBOX_KEPT = 500
MAX_PAGE = 200

# KEYS: inbox, read marker. ARGV: kind, at, data (JSON), kept.
# Appends one entry and returns [id, unread] in one round trip per user.
_ADD = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
                      'kind', ARGV[1], 'at', ARGV[2], 'data', ARGV[3])
local mark = redis.call('GET', KEYS[2]) or '0'
local unread = #redis.call('XRANGE', KEYS[1], '(' .. mark, '+', 'COUNT', ARGV[4])
return {id, unread}
"""

# KEYS: inbox, read marker. ARGV: up_to (a stream id, or '+' for everything).
# Moves the marker forward only (two pages marking read in either order agree).
_MARK_READ = """
local up_to = ARGV[1]
if up_to == '+' then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last == 0 then return 0 end
  up_to = last[1][1]
end
local mark = redis.call('GET', KEYS[2]) or '0-0'
local function parts(s)
  local a, b = string.match(s, '^(%d+)-?(%d*)$')
  return tonumber(a) or 0, tonumber(b ~= '' and b or '0') or 0
end
local ma, mb = parts(mark)
local ua, ub = parts(up_to)
if ua > ma or (ua == ma and ub > mb) then
  redis.call('SET', KEYS[2], up_to)
  mark = up_to
end
return #redis.call('XRANGE', KEYS[1], '(' .. mark, '+', 'COUNT', ARGV[2])
"""


@dataclass(frozen=True)
class Notification:
    id: str
    kind: str
    at: float
    data: dict = field(default_factory=dict)
    read: bool = False

    def public(self) -> dict:
        return {"id": self.id, "kind": self.kind, "at": self.at, "data": self.data,
                "read": self.read}


class Inboxes:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._add = redis.register_script(_ADD)
        self._mark = redis.register_script(_MARK_READ)

    async def add(
        self, usernames: list[str], kind: str, data: dict
    ) -> dict[str, tuple[Notification, int]]:
        """Append one notification to each inbox; returns each user's entry and unread count."""
        at = round(time.time(), 3)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        pipe = self._r.pipeline(transaction=False)
        for name in usernames:
            await self._add(keys=[keys.user_inbox(name), keys.user_inbox_read(name)],
                            args=[kind, at, payload, INBOX_KEPT], client=pipe)
        replies = await pipe.execute()
        return {
            name: (Notification(entry_id, kind, at, data), int(unread))
            for name, (entry_id, unread) in zip(usernames, replies, strict=True)
        }

    async def since(
        self, username: str, after: str = "0", limit: int = 50
    ) -> list[Notification]:
        """Entries after `after` (exclusive), oldest first, at most `limit`."""
        limit = max(1, min(limit, MAX_PAGE))
        start = f"({after}" if after not in ("", "0", "0-0") else "-"
        pipe = self._r.pipeline(transaction=False)
        pipe.xrange(keys.user_inbox(username), start, "+", count=limit)
        pipe.get(keys.user_inbox_read(username))
        entries, mark = await pipe.execute()
        return [_entry(i, f, mark) for i, f in entries]

    async def latest(self, username: str, limit: int = 50) -> list[Notification]:
        """The newest `limit` entries, newest first (the badge's list)."""
        limit = max(1, min(limit, MAX_PAGE))
        pipe = self._r.pipeline(transaction=False)
        pipe.xrevrange(keys.user_inbox(username), "+", "-", count=limit)
        pipe.get(keys.user_inbox_read(username))
        entries, mark = await pipe.execute()
        return [_entry(i, f, mark) for i, f in entries]

    async def unread(self, username: str) -> tuple[int, str]:
        """How many entries are unread, and the newest entry's id ('' for an empty inbox)."""
        mark = await self._r.get(keys.user_inbox_read(username)) or "0"
        pipe = self._r.pipeline(transaction=False)
        pipe.xrange(keys.user_inbox(username), f"({mark}" if mark != "0" else "-", "+",
                    count=INBOX_KEPT)
        pipe.xrevrange(keys.user_inbox(username), "+", "-", count=1)
        unread, last = await pipe.execute()
        return len(unread), (last[0][0] if last else "")

    async def mark_read(self, username: str, up_to: str) -> int:
        """Everything up to `up_to` (a stream id, or '+') is read; returns the unread count."""
        return int(await self._mark(
            keys=[keys.user_inbox(username), keys.user_inbox_read(username)],
            args=[up_to, INBOX_KEPT]))


def _entry(entry_id: str, fields: dict[str, str], mark: str | None) -> Notification:
    try:
        data = json.loads(fields.get("data") or "{}")
    except json.JSONDecodeError:
        data = {}
    return Notification(entry_id, fields.get("kind", ""), float(fields.get("at") or 0), data,
                        read=_not_after(entry_id, mark or "0-0"))


def _not_after(entry_id: str, mark: str) -> bool:
    def parts(s: str) -> tuple[int, int]:
        a, _, b = s.partition("-")
        return int(a or 0), int(b or 0)

    return parts(entry_id) <= parts(mark)

"""Rooms of any kind (a consult call, an MDT meeting): members, presence with TTL heartbeats,
invitations and a per-room event stream, all under the room's hash tag `{room:ID}`. What a kind
allows (who joins, invites, presents, closes) is its policy's (server/realtime/room_policy.py);
a room only knows its `kind` and `ref` (the consult or MDT session it is for).

Presence is a key with a TTL equal to the reconnect grace period: a participant whose heartbeats
stop (dropped 4G link, server restart) stays "reconnecting" until the key expires, then has left.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from enum import StrEnum

from redis.asyncio import Redis

from server.errors import Conflict, NotFound
from server.store import keys

MAX_PARTICIPANTS = 8  # the default capacity (a consult); a kind may ask for more (MDT: 12)
EVENTS_KEPT = 1000  # the default stream length; an MDT room keeps its whole log (the minutes)
EVENTS_PAGE = 500  # XRANGE page size when reading a log through
# Field names an event's own fields may not take (they are the event's envelope).
RESERVED_EVENT_FIELDS = frozenset({"id", "type", "at", "ts"})


class MemberState(StrEnum):
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    LEFT = "left"


class MediaState(StrEnum):
    """The member's server-side peer connection: media flows only when `connected`."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(frozen=True)
class Member:
    id: str  # the username: one identity per room, so a rejoin restores the same place
    display_name: str
    role: str
    clinic: str | None
    department: str | None
    joined_at: float
    state: MemberState = MemberState.CONNECTED
    media: MediaState = MediaState.CONNECTING
    reason: str = ""  # why they left (hung_up, signed_out, timed_out); empty otherwise

    def public(self) -> dict:
        return {**asdict(self), "state": self.state.value, "media": self.media.value}


@dataclass(frozen=True)
class Room:
    id: str
    kind: str  # "consult" | "mdt"
    ref: str  # the id of what the room is for: a consult id, an MDT session id
    created_at: float
    open: bool
    max_participants: int = MAX_PARTICIPANTS

    @property
    def consult_id(self) -> str:
        """The consult of a consult room ("" for any other kind)."""
        return self.ref if self.kind == "consult" else ""


# Adding a member checks the room's capacity in the same step.
_ADD_MEMBER = """
local limit = tonumber(redis.call('HGET', KEYS[2], 'max_participants') or ARGV[3])
local members = redis.call('HGETALL', KEYS[1])
local active = 0
local present = false
for i = 1, #members, 2 do
  if members[i] == ARGV[1] then present = true end
  local m = cjson.decode(members[i + 1])
  if m['state'] ~= 'left' then active = active + 1 end
end
if not present and active >= limit then return -limit end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


_UPDATE_MEMBER = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local m = cjson.decode(raw)
for i = 2, #ARGV, 2 do m[ARGV[i]] = ARGV[i + 1] end
raw = cjson.encode(m)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return raw
"""


class Rooms:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._add_member = redis.register_script(_ADD_MEMBER)
        self._update_member = redis.register_script(_UPDATE_MEMBER)

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(8)

    async def create(
        self, *, kind: str, ref: str = "", room_id: str | None = None,
        max_participants: int | None = None, consult_id: str = "",
    ) -> Room:
        """A new open room (`consult_id` is the older spelling of `ref` for a consult)."""
        room = Room(room_id or self.new_id(), kind, ref or consult_id, time.time(), True,
                    max_participants or MAX_PARTICIPANTS)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.room(room.id), mapping=_room_fields(room))
            pipe.sadd(keys.OPEN_ROOMS, room.id)
            await pipe.execute()
        return room

    async def get(self, room_id: str) -> Room | None:
        data = await self._r.hgetall(keys.room(room_id))
        if not data:
            return None
        return Room(data["id"], data["kind"], data.get("ref") or data.get("consult_id", ""),
                    float(data["created_at"]), data.get("open") == "1",
                    int(data.get("max_participants") or MAX_PARTICIPANTS))

    async def require_open(self, room_id: str) -> Room:
        room = await self.get(room_id)
        if room is None or not room.open:
            raise NotFound("no such open room")
        return room

    async def close(self, room_id: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hset(keys.room(room_id), "open", "0")
            pipe.srem(keys.OPEN_ROOMS, room_id)
            await pipe.execute()

    async def open_rooms(self) -> list[str]:
        return sorted(await self._r.smembers(keys.OPEN_ROOMS))

    # members and presence -------------------------------------------------------------------
    async def put_member(self, room_id: str, member: Member) -> None:
        ok = await self._add_member(
            keys=[keys.room_members(room_id), keys.room(room_id)],
            args=[member.id, json.dumps(member.public(), ensure_ascii=False), MAX_PARTICIPANTS],
        )
        if ok != 1:
            raise Conflict(f"the room is full ({-int(ok)} participants)")

    async def member(self, room_id: str, member_id: str) -> Member | None:
        raw = await self._r.hget(keys.room_members(room_id), member_id)
        return _member(raw) if raw else None

    async def set_state(
        self, room_id: str, member_id: str, state: MemberState | None = None, *,
        media: MediaState | None = None, reason: str | None = None,
    ) -> Member | None:
        changes: list[str] = []
        for name, value in (("state", state), ("media", media), ("reason", reason)):
            if value is not None:
                changes += [name, str(value)]
        # One atomic step: a media update racing a leave must not undo it.
        raw = await self._update_member(keys=[keys.room_members(room_id)],
                                        args=[member_id, *changes])
        return _member(raw) if raw else None

    async def members(self, room_id: str) -> list[Member]:
        raw = await self._r.hgetall(keys.room_members(room_id))
        return sorted((_member(v) for v in raw.values()), key=lambda m: m.joined_at)

    async def touch(self, room_id: str, member_id: str, ttl_s: float) -> None:
        await self._r.set(keys.room_presence(room_id, member_id), "1", px=int(ttl_s * 1000))

    async def present(self, room_id: str, member_ids: list[str]) -> dict[str, bool]:
        if not member_ids:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for m in member_ids:
                pipe.exists(keys.room_presence(room_id, m))
            found = await pipe.execute()
        return {m: bool(n) for m, n in zip(member_ids, found, strict=True)}

    async def forget_presence(self, room_id: str, member_id: str) -> None:
        await self._r.delete(keys.room_presence(room_id, member_id))

    # invitations ------------------------------------------------------------------------------
    async def invite(self, room_id: str, invitee: str) -> None:
        """`invitee` is a username or `department:ID`."""
        await self._r.sadd(keys.room_invites(room_id), invitee)

    async def invited(self, room_id: str, username: str, department: str | None) -> bool:
        candidates = [username] + ([f"department:{department}"] if department else [])
        async with self._r.pipeline(transaction=False) as pipe:
            for c in candidates:
                pipe.sismember(keys.room_invites(room_id), c)
            return any(await pipe.execute())

    # the room's event stream --------------------------------------------------------------------
    async def append_event(self, room_id: str, event_type: str, **fields: object) -> str:
        return await self.append(room_id, event_type, fields)

    async def append(
        self, room_id: str, event_type: str, fields: dict[str, object], *,
        kept: int | None = EVENTS_KEPT, at: float | None = None,
    ) -> str:
        """Append one event; `kept=None` keeps the whole log (an MDT's minutes)."""
        clash = RESERVED_EVENT_FIELDS & fields.keys()
        if clash:
            raise ValueError(f"event fields may not be named {sorted(clash)}")
        data = {"type": event_type, "ts": f"{at or time.time():.3f}",
                "data": json.dumps(fields, ensure_ascii=False, default=str)}
        if kept is None:
            return await self._r.xadd(keys.room_events(room_id), data)
        return await self._r.xadd(keys.room_events(room_id), data, maxlen=kept,
                                  approximate=True)

    async def events(
        self, room_id: str, after: str = "0", count: int | None = None
    ) -> list[dict]:
        """The events after `after` ("0": from the start), oldest first: every one of them
        (read page by page), or at most `count`."""
        out: list[dict] = []
        start = "-" if after in ("", "0", "0-0") else f"({after}"
        while count is None or len(out) < count:
            page = EVENTS_PAGE if count is None else min(EVENTS_PAGE, count - len(out))
            rows = await self._r.xrange(keys.room_events(room_id), min=start, count=page)
            out += [_event(i, f) for i, f in rows]
            if len(rows) < page:
                break
            start = f"({rows[-1][0]}"
        return out

    async def events_since(self, room_id: str, last_id: str = "0", count: int = 200) -> list[dict]:
        return await self.events(room_id, last_id, count)

    async def last_event_id(self, room_id: str) -> str:
        """The newest event's id ("0-0" for an empty log)."""
        rows = await self._r.xrevrange(keys.room_events(room_id), count=1)
        return rows[0][0] if rows else "0-0"


def _event(event_id: str, f: dict[str, str]) -> dict:
    ts = float(f["ts"])
    return {"id": event_id, "type": f["type"], "ts": ts, "at": ts, **json.loads(f["data"])}


def _room_fields(room: Room) -> dict[str, str]:
    return {
        "id": room.id, "kind": room.kind, "ref": room.ref,
        "consult_id": room.consult_id,  # read by older code; "" for other kinds
        "created_at": repr(room.created_at), "open": "1",
        "max_participants": str(room.max_participants),
    }


def _member(raw: str) -> Member:
    data = json.loads(raw)
    data["state"] = MemberState(data["state"])
    data["media"] = MediaState(data.get("media", MediaState.CONNECTING.value))
    return Member(**data)

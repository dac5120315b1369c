"""A live room's shared view (an MDT): who presents, the view state and its version, the
current agenda case — one hash under the room's tag, `hz:{room:ID}:view`.

Every change is one Lua script: the version compare-and-set (a stale `base_version` is refused
and told the current version and state, as FHIRcast content sharing does), and exactly one
presenter under any concurrency. The scripts also PUBLISH the resulting `view.state` /
`control.changed` on the room channel, so the order every node sees is the order of the
versions (no publish after the fact can overtake another).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from redis.asyncio import Redis

from server.store import keys

# ARGV: user, base_version, state_json, at, channel, room_id_json, user_json
_UPDATE = """
local v = redis.call('HMGET', KEYS[1], 'version', 'presenter', 'state', 'at')
local version = tonumber(v[1]) or 0
local presenter = v[2] or ''
if presenter ~= ARGV[1] then
  return {-1, tostring(version), presenter, v[3] or '', v[4] or ''}
end
if tonumber(ARGV[2]) ~= version then
  return {0, tostring(version), presenter, v[3] or '', v[4] or ''}
end
version = version + 1
redis.call('HSET', KEYS[1], 'version', version, 'state', ARGV[3], 'at', ARGV[4])
redis.call('PUBLISH', ARGV[5], '{"type":"view.state","room_id":' .. ARGV[6] ..
  ',"version":' .. string.format('%d', version) .. ',"presenter":' .. ARGV[7] ..
  ',"state":' .. ARGV[3] .. ',"at":' .. ARGV[4] .. '}')
return {1, tostring(version), presenter, '', ARGV[4]}
"""

# ARGV: op (take|handover|release|drop), user, to, coordinator (1|0), at, channel,
#       room_id_json, user_json
_CONTROL = """
local v = redis.call('HMGET', KEYS[1], 'version', 'presenter')
local version = tonumber(v[1]) or 0
local presenter = v[2] or ''
local op, user = ARGV[1], ARGV[2]
local coordinator = ARGV[4] == '1'
local new
if op == 'take' then
  if presenter ~= '' and presenter ~= user and not coordinator then
    return {0, presenter, tostring(version)}
  end
  new = user
elseif op == 'handover' then
  if presenter ~= user and not coordinator then return {0, presenter, tostring(version)} end
  new = ARGV[3]
elseif op == 'release' then
  if presenter ~= user and not coordinator then return {0, presenter, tostring(version)} end
  new = ''
else -- drop: the presenter left the room
  if presenter ~= user then return {2, presenter, tostring(version)} end
  new = ''
end
if new == presenter then return {2, presenter, tostring(version)} end
version = version + 1
redis.call('HSET', KEYS[1], 'version', version, 'presenter', new, 'at', ARGV[5])
local shown = 'null'
if new ~= '' then shown = cjson.encode(new) end
redis.call('PUBLISH', ARGV[6], '{"type":"control.changed","room_id":' .. ARGV[7] ..
  ',"presenter":' .. shown .. ',"by":' .. ARGV[8] .. ',"version":' ..
  string.format('%d', version) .. '}')
return {1, new, tostring(version)}
"""


class UpdateResult(IntEnum):
    NOT_PRESENTER = -1
    STALE = 0
    APPLIED = 1


class ControlResult(IntEnum):
    REFUSED = 0
    CHANGED = 1
    UNCHANGED = 2


@dataclass(frozen=True)
class View:
    version: int
    presenter: str | None
    state: dict[str, Any] | None
    at: float
    case_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {"version": self.version, "presenter": self.presenter, "state": self.state,
                "at": self.at}


@dataclass(frozen=True)
class Update:
    result: UpdateResult
    version: int
    presenter: str | None
    state: dict[str, Any] | None  # the current one, when refused
    at: float


@dataclass(frozen=True)
class Control:
    result: ControlResult
    presenter: str | None
    version: int


class RoomViews:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._update = redis.register_script(_UPDATE)
        self._control = redis.register_script(_CONTROL)

    async def get(self, room_id: str) -> View:
        raw = await self._r.hmget(keys.room_view(room_id),
                                  ["version", "presenter", "state", "at", "case_id"])
        version, presenter, state, at, case_id = raw
        return View(int(version or 0), presenter or None, json.loads(state) if state else None,
                    float(at or 0), case_id or None)

    async def update(
        self, room_id: str, user: str, base_version: int, state_json: str, at: float
    ) -> Update:
        """Set the state if `user` presents and `base_version` is the current version; the
        new `view.state` is published on the room channel in the same step."""
        code, version, presenter, state, stamp = await self._update(
            keys=[keys.room_view(room_id)],
            args=[user, base_version, state_json, f"{at:.3f}", keys.channel_room(room_id),
                  json.dumps(room_id), json.dumps(user)])
        return Update(UpdateResult(int(code)), int(version), presenter or None,
                      json.loads(state) if state else None, float(stamp or 0))

    async def control(
        self, room_id: str, op: str, user: str, *, to: str = "", coordinator: bool = False,
        at: float, by: str | None = None,
    ) -> Control:
        """take / handover / release / drop, atomically (one presenter at most); a change
        bumps the version and publishes `control.changed` on the room channel."""
        code, presenter, version = await self._control(
            keys=[keys.room_view(room_id)],
            args=[op, user, to, "1" if coordinator else "0", f"{at:.3f}",
                  keys.channel_room(room_id), json.dumps(room_id), json.dumps(by or user)])
        return Control(ControlResult(int(code)), presenter or None, int(version))

    async def set_case(self, room_id: str, case_id: str) -> None:
        await self._r.hset(keys.room_view(room_id), "case_id", case_id)

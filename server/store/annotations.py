"""Annotations and key images of a study's images, with their author and time.

Both live under the study's hash tag (`{study:CLINIC:UID}`): a clinic's marks never meet another
clinic's study of the same UID. A key image marked in a room is also copied under the room's tag
(`{room:ID}:key-images`) so the room's minutes list it without knowing the studies. Records are
immutable once written; undo deletes them. Who may add, see or delete is decided by
server/auth/access.py, never here.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from server.store import keys

KINDS = ("arrow", "text", "length", "angle", "ellipse", "polygon")

# 1 stored, 0 the image holds the per-image maximum, -1 the study holds the per-study maximum.
_ADD_ANNOTATION = """
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') >= tonumber(ARGV[4]) then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""

_REMOVE_ANNOTATION = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""

# The same frame marked twice in one room (or outside rooms) is one key image: returns the
# existing record's JSON, else stores ARGV[2] (false when the study holds the maximum).
_ADD_KEY_IMAGE = """
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  local k = cjson.decode(raw)
  if k['sop_instance_uid'] == ARGV[3] and tostring(k['frame']) == ARGV[4]
     and k['room_id'] == ARGV[5] then return raw end
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""


def new_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Annotation:
    id: str
    clinic: str  # the study's clinic (never shown: it is the study's identity, not a field)
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    frame: int
    kind: str
    points: list[list[float]]
    text: str
    author: str
    author_name: str
    at: float
    room_id: str = ""
    measurement: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["clinic"]
        data["room_id"] = self.room_id or None
        return data

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Annotation:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class KeyImage:
    id: str
    clinic: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    frame: int
    by: str
    by_name: str
    at: float
    room_id: str = ""
    case_id: str = ""
    window: dict[str, Any] | None = None  # {center, width, function} the presenter used
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["clinic"], data["extra"]
        data["room_id"] = self.room_id or None
        data["case_id"] = self.case_id or None
        return data

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> KeyImage:
        return cls(**json.loads(raw))


class TooMany(Exception):
    """The image or study already holds the maximum number of marks."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(f"{scope} holds {limit}")
        self.scope = scope
        self.limit = limit


class Annotations:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._add = redis.register_script(_ADD_ANNOTATION)
        self._remove = redis.register_script(_REMOVE_ANNOTATION)

    async def add(self, a: Annotation, *, per_image: int, per_study: int) -> None:
        """Store `a`; TooMany when its image (or study) is full."""
        result = await self._add(
            keys=[keys.study_annotations(a.clinic, a.study_uid),
                  keys.study_annotation_counts(a.clinic, a.study_uid)],
            args=[a.id, a.sop_instance_uid, a.to_json(), per_image, per_study],
        )
        if result == 0:
            raise TooMany("image", per_image)
        if result == -1:
            raise TooMany("study", per_study)

    async def get(self, clinic: str, study_uid: str, annotation_id: str) -> Annotation | None:
        raw = await self._r.hget(keys.study_annotations(clinic, study_uid), annotation_id)
        return Annotation.from_json(raw) if raw else None

    async def of_study(self, clinic: str, study_uid: str, sop_uid: str | None = None
                       ) -> list[Annotation]:
        """The study's annotations (of one image when `sop_uid`), oldest first."""
        raw = await self._r.hvals(keys.study_annotations(clinic, study_uid))
        found = [Annotation.from_json(v) for v in raw]
        if sop_uid is not None:
            found = [a for a in found if a.sop_instance_uid == sop_uid]
        return sorted(found, key=lambda a: (a.at, a.id))

    async def remove(self, a: Annotation) -> bool:
        return bool(await self._remove(
            keys=[keys.study_annotations(a.clinic, a.study_uid),
                  keys.study_annotation_counts(a.clinic, a.study_uid)],
            args=[a.id, a.sop_instance_uid],
        ))


class KeyImages:
    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._add = redis.register_script(_ADD_KEY_IMAGE)

    async def add(self, k: KeyImage, *, per_study: int) -> tuple[KeyImage, bool]:
        """Store `k` (and its room copy): (the key image, True) — or the one already marked on
        that frame in that room, False. TooMany when the study is full."""
        raw = await self._add(
            keys=[keys.study_key_images(k.clinic, k.study_uid)],
            args=[k.id, k.to_json(), k.sop_instance_uid, str(k.frame), k.room_id, per_study],
        )
        if raw is None:
            raise TooMany("study", per_study)
        stored = KeyImage.from_json(raw)
        if stored.id != k.id:
            return stored, False
        if k.room_id:
            await self._r.hset(keys.room_key_images(k.room_id), k.id, raw)
        return stored, True

    async def get(self, clinic: str, study_uid: str, key_image_id: str) -> KeyImage | None:
        raw = await self._r.hget(keys.study_key_images(clinic, study_uid), key_image_id)
        return KeyImage.from_json(raw) if raw else None

    async def of_study(self, clinic: str, study_uid: str) -> list[KeyImage]:
        raw = await self._r.hvals(keys.study_key_images(clinic, study_uid))
        return sorted((KeyImage.from_json(v) for v in raw), key=lambda k: (k.at, k.id))

    async def list(self, room_id: str) -> list[KeyImage]:
        """A room's key images, oldest first (the MDT summary reads these)."""
        raw = await self._r.hvals(keys.room_key_images(room_id))
        return sorted((KeyImage.from_json(v) for v in raw), key=lambda k: (k.at, k.id))

    async def remove(self, k: KeyImage) -> bool:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hdel(keys.study_key_images(k.clinic, k.study_uid), k.id)
            if k.room_id:
                pipe.hdel(keys.room_key_images(k.room_id), k.id)
            removed = await pipe.execute()
        return bool(removed[0])


def now() -> float:
    return time.time()

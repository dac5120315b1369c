"""The study index: what QIDO-RS and the viewer need, rebuilt from the files on disk at will.

Layout per study (all under the `{study:UID}` hash tag):
  study      hash   clinic, attrs (DICOM JSON of study-level attributes)
  series     hash   SeriesInstanceUID -> DICOM JSON of series-level attributes
  instances  hash   SOPInstanceUID -> JSON {series, path, sort, attrs}
  stack:SE   zset   SOPInstanceUIDs of a series scored by position along the slice normal
Global listings `hz:studies` and `hz:clinic:C:studies` are zsets scored by study date-time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from server.errors import Conflict
from server.store import keys

DicomJson = dict[str, dict[str, Any]]

# One atomic step per instance: the study's owner is checked and the instance added together,
# so two clinics racing on one StudyInstanceUID cannot both win. Returns 1 stored, 0 duplicate,
# -1 study owned by another clinic.
_INDEX_INSTANCE = """
local owner = redis.call('HGET', KEYS[1], 'clinic')
if owner and owner ~= ARGV[1] then return -1 end
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return 0 end
if not owner then
  redis.call('HSET', KEYS[1], 'clinic', ARGV[1], 'attrs', ARGV[2])
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[9])
  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[9])
end
redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class IndexEntry:
    """One instance as the index stores it; built at ingest or reindex from the file."""

    clinic: str
    study_uid: str
    series_uid: str
    sop_uid: str
    path: str  # relative to the DICOM directory
    sort_key: float
    study_date_key: float
    study_attrs: DicomJson
    series_attrs: DicomJson
    instance_attrs: DicomJson


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    clinic: str
    attrs: DicomJson
    series_count: int = 0
    instance_count: int = 0
    modalities: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    attrs: DicomJson
    instance_count: int = 0


@dataclass(frozen=True)
class InstanceRecord:
    study_uid: str
    series_uid: str
    sop_uid: str
    path: str
    attrs: DicomJson


class StudyIndex:
    # Instances and their owner never change once indexed (STOW is idempotent, nothing is
    # deleted yet), so the hot path keeps them in-process. When deletion arrives it must
    # invalidate these entries on every node (pub/sub), or they would outlive the data.
    HOT_ENTRIES = 20_000

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._index_script = redis.register_script(_INDEX_INSTANCE)
        self._hot: OrderedDict[tuple[str, str], tuple[str, InstanceRecord]] = OrderedDict()

    async def add(self, entry: IndexEntry) -> bool:
        """Index one instance. False when it was already there (idempotent STOW)."""
        instance_json = json.dumps(
            {
                "series": entry.series_uid,
                "path": entry.path,
                "sort": entry.sort_key,
                "attrs": entry.instance_attrs,
            },
            separators=(",", ":"),
        )
        result = await self._index_script(
            keys=[
                keys.study(entry.study_uid),
                keys.study_series(entry.study_uid),
                keys.study_instances(entry.study_uid),
                keys.series_stack(entry.study_uid, entry.series_uid),
                keys.STUDIES,
                keys.clinic_studies(entry.clinic),
            ],
            args=[
                entry.clinic,
                json.dumps(entry.study_attrs, separators=(",", ":")),
                entry.series_uid,
                json.dumps(entry.series_attrs, separators=(",", ":")),
                entry.sop_uid,
                instance_json,
                entry.sort_key,
                entry.study_date_key,
                entry.study_uid,
            ],
        )
        if int(result) < 0:
            raise Conflict("this StudyInstanceUID already belongs to another clinic")
        return int(result) == 1

    async def has_instance(self, study_uid: str, sop_uid: str) -> bool:
        return bool(await self._r.hexists(keys.study_instances(study_uid), sop_uid))

    async def study_owner(self, study_uid: str) -> str | None:
        return await self._r.hget(keys.study(study_uid), "clinic")

    async def study_uids(self, clinic: str | None) -> list[str]:
        """Newest first; `clinic=None` lists every study."""
        key = keys.STUDIES if clinic is None else keys.clinic_studies(clinic)
        return list(await self._r.zrevrange(key, 0, -1))

    async def studies(self, uids: list[str]) -> list[StudyRecord]:
        if not uids:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.hgetall(keys.study(uid))
                pipe.hlen(keys.study_instances(uid))
                pipe.hvals(keys.study_series(uid))
            raw = await pipe.execute()
        records = []
        for i, uid in enumerate(uids):
            study, count, series = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
            if not study:
                continue
            modalities = sorted(
                {m for s in series for m in json.loads(s).get("00080060", {}).get("Value", [])}
            )
            records.append(
                StudyRecord(
                    study_uid=uid,
                    clinic=study["clinic"],
                    attrs=json.loads(study["attrs"]),
                    series_count=len(series),
                    instance_count=int(count),
                    modalities=modalities,
                )
            )
        return records

    async def study(self, study_uid: str) -> StudyRecord | None:
        found = await self.studies([study_uid])
        return found[0] if found else None

    async def series(self, study_uid: str) -> list[SeriesRecord]:
        raw = await self._r.hgetall(keys.study_series(study_uid))
        uids = sorted(raw)
        async with self._r.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.zcard(keys.series_stack(study_uid, uid))
            counts = await pipe.execute()
        records = [
            SeriesRecord(study_uid, uid, json.loads(raw[uid]), int(n))
            for uid, n in zip(uids, counts, strict=True)
        ]
        return sorted(records, key=_series_number)

    async def instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Instances in stack order (position along the slice normal, else instance number)."""
        series_uids = (
            [series_uid] if series_uid else [s.series_uid for s in await self.series(study_uid)]
        )
        records: list[InstanceRecord] = []
        for se in series_uids:
            sops = await self._r.zrange(keys.series_stack(study_uid, se), 0, -1)
            if not sops:
                continue
            values = await self._r.hmget(keys.study_instances(study_uid), sops)
            records.extend(
                _instance(study_uid, sop, value)
                for sop, value in zip(sops, values, strict=True)
                if value
            )
        return records

    async def instance(self, study_uid: str, sop_uid: str) -> InstanceRecord | None:
        value = await self._r.hget(keys.study_instances(study_uid), sop_uid)
        return _instance(study_uid, sop_uid, value) if value else None

    async def study_and_instance(
        self, study_uid: str, sop_uid: str
    ) -> tuple[str | None, InstanceRecord | None]:
        """Owner clinic and instance: the hot path of every rendered frame. One round trip the
        first time, none after."""
        key = (study_uid, sop_uid)
        hot = self._hot.get(key)
        if hot is not None:
            self._hot.move_to_end(key)
            return hot
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hget(keys.study(study_uid), "clinic")
            pipe.hget(keys.study_instances(study_uid), sop_uid)
            owner, value = await pipe.execute()
        record = _instance(study_uid, sop_uid, value) if value else None
        if owner is not None and record is not None:
            self._hot[key] = (owner, record)
            if len(self._hot) > self.HOT_ENTRIES:
                self._hot.popitem(last=False)
        return owner, record

    async def clear(self) -> int:
        """Drop the whole index (reindex rebuilds it from the files)."""
        self._hot.clear()
        removed = 0
        async for key in self._r.scan_iter(match=f"{keys.PREFIX}:{{study:*", count=1000):
            removed += await self._r.delete(key)
        async for key in self._r.scan_iter(match=keys.clinic_studies("*"), count=1000):
            await self._r.delete(key)
        await self._r.delete(keys.STUDIES)
        return removed


def _instance(study_uid: str, sop_uid: str, value: str) -> InstanceRecord:
    data = json.loads(value)
    return InstanceRecord(study_uid, data["series"], sop_uid, data["path"], data["attrs"])


def _series_number(record: SeriesRecord) -> tuple[int, str]:
    values = record.attrs.get("00200011", {}).get("Value") or [0]
    try:
        return int(values[0]), record.series_uid
    except (TypeError, ValueError):
        return 0, record.series_uid

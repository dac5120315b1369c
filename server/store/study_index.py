"""The study index: what QIDO-RS and the viewer need, rebuilt from the files on disk at will.

A study is a clinic's: (clinic, StudyInstanceUID). The same UID uploaded by two clinics is two
studies that never meet (neither upload can see, block or squat the other).

Layout per study (all under the `{study:CLINIC:UID}` hash tag):
  study      hash   clinic, attrs (DICOM JSON of study-level attributes)
  series     hash   SeriesInstanceUID -> DICOM JSON of series-level attributes
  instances  hash   SOPInstanceUID -> JSON {series, path, sort, attrs}
  stack:SE   zset   SOPInstanceUIDs of a series scored by position along the slice normal
`hz:clinic:C:studies` lists a clinic's StudyInstanceUIDs scored by study date-time;
`hz:study-clinics:UID` is the set of clinics holding a UID (break-glass looks it up).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from server.store import keys

DicomJson = dict[str, dict[str, Any]]

# One atomic step per instance: the study record and the instance appear together. Returns 1
# stored, 0 duplicate (the first stored instance of a SOP Instance UID stays).
_INDEX_INSTANCE = """
if redis.call('HEXISTS', KEYS[3], ARGV[5]) == 1 then return 0 end
if redis.call('HSETNX', KEYS[1], 'clinic', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'attrs', ARGV[2])
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[9])
  redis.call('SADD', KEYS[6], ARGV[1])
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
    #: An ECG's summary and pre-screening (media/ecg), computed at ingest from the file.
    ecg: dict[str, Any] | None = None


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
    clinic: str
    study_uid: str
    series_uid: str
    sop_uid: str
    path: str
    attrs: DicomJson
    ecg: dict[str, Any] | None = None


class StudyIndex:
    # The hot path keeps instances in-process. An entry is trusted for HOT_TTL_S, then looked
    # up again (one round trip per instance per HOT_TTL_S): so a `huizhen reindex` run by another
    # process, on any node, leaves no stale owner or path for longer than that.
    HOT_ENTRIES = 20_000
    HOT_TTL_S = 2.0

    def __init__(self, redis: Redis) -> None:
        self._r = redis
        self._index_script = redis.register_script(_INDEX_INSTANCE)
        self._hot: OrderedDict[tuple[str, str, str], tuple[float, InstanceRecord]] = OrderedDict()

    async def add(self, entry: IndexEntry) -> bool:
        """Index one instance. False when it was already there (idempotent STOW)."""
        fields: dict[str, Any] = {
            "series": entry.series_uid,
            "path": entry.path,
            "sort": entry.sort_key,
            "attrs": entry.instance_attrs,
        }
        if entry.ecg is not None:
            fields["ecg"] = entry.ecg
        instance_json = json.dumps(fields, separators=(",", ":"))
        c, uid = entry.clinic, entry.study_uid
        result = await self._index_script(
            keys=[
                keys.study(c, uid),
                keys.study_series(c, uid),
                keys.study_instances(c, uid),
                keys.series_stack(c, uid, entry.series_uid),
                keys.clinic_studies(c),
                keys.study_clinics(uid),
            ],
            args=[
                c,
                json.dumps(entry.study_attrs, separators=(",", ":")),
                entry.series_uid,
                json.dumps(entry.series_attrs, separators=(",", ":")),
                entry.sop_uid,
                instance_json,
                entry.sort_key,
                entry.study_date_key,
                uid,
            ],
        )
        return int(result) == 1

    async def has_instance(self, clinic: str, study_uid: str, sop_uid: str) -> bool:
        return bool(await self._r.hexists(keys.study_instances(clinic, study_uid), sop_uid))

    async def study_owner(self, clinic: str, study_uid: str) -> str | None:
        """`clinic` when it holds a study of this UID, else None."""
        return await self._r.hget(keys.study(clinic, study_uid), "clinic")

    async def clinics_holding(self, study_uid: str) -> list[str]:
        return sorted(await self._r.smembers(keys.study_clinics(study_uid)))

    async def study_uids(self, clinic: str) -> list[str]:
        """A clinic's studies, newest first."""
        return list(await self._r.zrevrange(keys.clinic_studies(clinic), 0, -1))

    async def studies(self, refs: list[tuple[str, str]]) -> list[StudyRecord]:
        """Studies by (clinic, StudyInstanceUID), in the order given; missing ones are left out."""
        if not refs:
            return []
        async with self._r.pipeline(transaction=False) as pipe:
            for c, uid in refs:
                pipe.hgetall(keys.study(c, uid))
                pipe.hlen(keys.study_instances(c, uid))
                pipe.hvals(keys.study_series(c, uid))
            raw = await pipe.execute()
        records = []
        for i, (_, uid) in enumerate(refs):
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

    async def studies_of_patient(self, patient_id: str, clinics: list[str],
                                 limit: int = 100_000) -> set[str]:
        """StudyInstanceUIDs whose PatientID is `patient_id` in these clinics (the audit's
        patient filter). A scan of at most `limit` studies, 500 per round trip."""
        found: set[str] = set()
        seen = 0
        for clinic in clinics:
            start = 0
            while seen < limit:
                uids = await self._r.zrange(keys.clinic_studies(clinic), start, start + 499)
                if not uids:
                    break
                start += len(uids)
                seen += len(uids)
                async with self._r.pipeline(transaction=False) as pipe:
                    for uid in uids:
                        pipe.hget(keys.study(clinic, uid), "attrs")
                    attrs = await pipe.execute()
                for uid, raw in zip(uids, attrs, strict=True):
                    if raw and patient_id in (json.loads(raw).get("00100020", {})
                                              .get("Value") or []):
                        found.add(uid)
        return found

    async def study(self, clinic: str, study_uid: str) -> StudyRecord | None:
        found = await self.studies([(clinic, study_uid)])
        return found[0] if found else None

    async def series(self, clinic: str, study_uid: str) -> list[SeriesRecord]:
        raw = await self._r.hgetall(keys.study_series(clinic, study_uid))
        uids = sorted(raw)
        async with self._r.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.zcard(keys.series_stack(clinic, study_uid, uid))
            counts = await pipe.execute()
        records = [
            SeriesRecord(study_uid, uid, json.loads(raw[uid]), int(n))
            for uid, n in zip(uids, counts, strict=True)
        ]
        return sorted(records, key=_series_number)

    async def instances(
        self, clinic: str, study_uid: str, series_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Instances in stack order (position along the slice normal, else instance number)."""
        series_uids = (
            [series_uid]
            if series_uid
            else [s.series_uid for s in await self.series(clinic, study_uid)]
        )
        records: list[InstanceRecord] = []
        for se in series_uids:
            sops = await self._r.zrange(keys.series_stack(clinic, study_uid, se), 0, -1)
            if not sops:
                continue
            values = await self._r.hmget(keys.study_instances(clinic, study_uid), sops)
            records.extend(
                _instance(clinic, study_uid, sop, value)
                for sop, value in zip(sops, values, strict=True)
                if value
            )
        return records

    async def instance(self, clinic: str, study_uid: str, sop_uid: str) -> InstanceRecord | None:
        """The hot path of every rendered frame: one round trip the first time, then none for
        HOT_TTL_S."""
        key = (clinic, study_uid, sop_uid)
        now = time.monotonic()
        hot = self._hot.get(key)
        if hot is not None and now - hot[0] < self.HOT_TTL_S:
            self._hot.move_to_end(key)
            return hot[1]
        value = await self._r.hget(keys.study_instances(clinic, study_uid), sop_uid)
        return self.remember(clinic, study_uid, sop_uid, value)

    def hot_instance(self, clinic: str, study_uid: str, sop_uid: str) -> InstanceRecord | None:
        hot = self._hot.get((clinic, study_uid, sop_uid))
        if hot is not None and time.monotonic() - hot[0] < self.HOT_TTL_S:
            return hot[1]
        return None

    def remember(
        self, clinic: str, study_uid: str, sop_uid: str, value: str | None
    ) -> InstanceRecord | None:
        """Keep an instance just read from Redis (`value`: its hash field) in the hot cache."""
        key = (clinic, study_uid, sop_uid)
        if value is None:
            self._hot.pop(key, None)
            return None
        record = _instance(clinic, study_uid, sop_uid, value)
        self._hot[key] = (time.monotonic(), record)
        self._hot.move_to_end(key)
        if len(self._hot) > self.HOT_ENTRIES:
            self._hot.popitem(last=False)
        return record

    async def clear(self) -> int:
        """Drop the whole index (reindex rebuilds it from the files). Grants are not index data:
        they stay."""
        self._hot.clear()
        removed = 0
        async for key in self._r.scan_iter(match=f"{keys.PREFIX}:{{study:*", count=1000):
            removed += await self._r.delete(key)
        for pattern in (keys.clinic_studies("*"), keys.study_clinics("*")):
            async for key in self._r.scan_iter(match=pattern, count=1000):
                await self._r.delete(key)
        return removed


def _instance(clinic: str, study_uid: str, sop_uid: str, value: str) -> InstanceRecord:
    data = json.loads(value)
    return InstanceRecord(clinic, study_uid, data["series"], sop_uid, data["path"], data["attrs"],
                          data.get("ecg"))


def _series_number(record: SeriesRecord) -> tuple[int, str]:
    values = record.attrs.get("00200011", {}).get("Value") or [0]
    try:
        return int(values[0]), record.series_uid
    except (TypeError, ValueError):
        return 0, record.series_uid

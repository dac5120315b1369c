"""A study's annotations as a DICOM SR Measurement Report, its key images as a KOS document,
stored into the study through the one ingest path (so QIDO/WADO serve them and a PACS or OHIF
reading the study finds them). Headers are read, the document built and encoded in the pool."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from media.imaging import sr_export
from server.auth.principal import Principal
from server.errors import Conflict, HuizhenError
from server.ingest import Ingestor, SpooledFile, StoredInstance
from server.log import event
from server.store import Store
from server.store.annotations import Annotation, KeyImage

log = logging.getLogger(__name__)


class NothingToExport(Conflict):
    code = "nothing_to_export"


@dataclass(frozen=True)
class Exported:
    sop_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    count: int  # annotations or key images in it

    def public(self) -> dict[str, object]:
        return {"series_uid": self.series_instance_uid,
                "sop_instance_uid": self.sop_instance_uid, "sop_class_uid": self.sop_class_uid,
                "count": self.count}


def _headers(paths: dict[str, Path]) -> dict[str, Dataset]:
    return {sop: pydicom.dcmread(path, stop_before_pixels=True) for sop, path in paths.items()}


def _write(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def _mark(a: Annotation) -> sr_export.Mark:
    return sr_export.Mark(id=a.id, sop_instance_uid=a.sop_instance_uid, frame=a.frame,
                          kind=a.kind, points=a.points, text=a.text, measurement=a.measurement)


class Exporter:
    def __init__(self, store: Store, ingestor: Ingestor, dicom_dir: Path) -> None:
        self.store = store
        self.ingestor = ingestor
        self.dicom_dir = dicom_dir

    async def _paths(self, clinic: str, study_uid: str, sops: Sequence[str]) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for sop in dict.fromkeys(sops):
            record = await self.store.studies.instance(clinic, study_uid, sop)
            if record is not None:  # an instance removed since: its marks are left out
                paths[sop] = self.dicom_dir / record.path
        return paths

    async def _store(self, clinic: str, study_uid: str, ds: Dataset) -> StoredInstance:
        loop = asyncio.get_running_loop()
        async with self.ingestor.spool() as (spool, _budget):
            path = spool.new_path()
            await loop.run_in_executor(self.ingestor.executor, _write, ds, path)
            spooled = SpooledFile(path, "export")
            spool.files.append(spooled)
            result = await self.ingestor.ingest(clinic, [spooled], study_uid=study_uid)
        if not result.stored:
            failed = result.failed[0]
            raise HuizhenError(f"the export could not be stored: {failed.message}",
                               code=failed.code)
        return result.stored[0]

    async def measurement_report(self, who: Principal, clinic: str, study_uid: str,
                                 room_id: str = "") -> Exported:
        marks = await self.store.annotations.of_study(clinic, study_uid)
        if room_id:
            marks = [a for a in marks if a.room_id == room_id]
        paths = await self._paths(clinic, study_uid, [a.sop_instance_uid for a in marks])
        marks = [a for a in marks if a.sop_instance_uid in paths]
        if not marks:
            raise NothingToExport("there are no annotations to export")
        loop = asyncio.get_running_loop()
        executor = self.ingestor.executor
        headers = await loop.run_in_executor(executor, _headers, paths)
        series, sop = generate_uid(), generate_uid()
        ds = await loop.run_in_executor(executor, lambda: sr_export.measurement_report(
            headers, [_mark(a) for a in marks], observer=who.username, series_uid=series,
            sop_uid=sop))
        stored = await self._store(clinic, study_uid, ds)
        event(log, "measurement_report_stored", study=study_uid, sop=sop, count=len(marks))
        return Exported(stored.sop_instance_uid, stored.series_instance_uid,
                        stored.sop_class_uid, len(marks))

    async def key_object_selection(self, who: Principal, clinic: str, study_uid: str,
                                   room_id: str = "", description: str = "") -> Exported:
        keys: list[KeyImage] = await self.store.key_images.of_study(clinic, study_uid)
        if room_id:
            keys = [k for k in keys if k.room_id == room_id]
        paths = await self._paths(clinic, study_uid, [k.sop_instance_uid for k in keys])
        if not paths:
            raise NothingToExport("there are no key images to export")
        loop = asyncio.get_running_loop()
        executor = self.ingestor.executor
        headers = await loop.run_in_executor(executor, _headers, paths)
        series, sop = generate_uid(), generate_uid()
        ds = await loop.run_in_executor(executor, lambda: sr_export.key_object_selection(
            list(headers.values()), observer=who.username, series_uid=series, sop_uid=sop,
            description=description))
        stored = await self._store(clinic, study_uid, ds)
        event(log, "key_object_selection_stored", study=study_uid, sop=sop, count=len(paths))
        return Exported(stored.sop_instance_uid, stored.series_instance_uid,
                        stored.sop_class_uid, len(paths))

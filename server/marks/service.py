"""Annotations and key images: validation, server-side measurement, storage, room events.

No HTTP here (server/api/annotations.py is the thin layer): the caller has already decided,
through server/auth/access.py, which study of which clinic the principal may see. Measurements
are computed from the stored pixels in the thread pool, at most MAX_CONCURRENT_MEASURES at a
time per process so a burst of ROIs never starves the renderer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError

from media.imaging import measurements as m
from media.imaging.errors import InvalidDicomError
from media.imaging.image_model import ImageModel
from media.imaging.pixel_decoder import DecodedFrame
from media.imaging.renderer import Renderer
from server.auth import access
from server.auth.principal import Principal
from server.errors import Conflict, InvalidParameter, NotFound
from server.log import event
from server.realtime.room_policy import policy
from server.store import Store
from server.store.annotations import KINDS, Annotation, KeyImage, TooMany, new_id, now
from server.store.rooms import MemberState, Room
from server.store.study_index import InstanceRecord

log = logging.getLogger(__name__)

#: Points each kind takes (min, max). A polygon's cap bounds the scanline fill's cost.
POINTS: dict[str, tuple[int, int]] = {
    "arrow": (2, 2), "text": (1, 1), "length": (2, 2), "angle": (3, 3), "ellipse": (2, 2),
    "polygon": (3, 256),
}
MAX_TEXT = 500
ANNOTATIONS_PER_IMAGE = 100
ANNOTATIONS_PER_STUDY = 2000
KEY_IMAGES_PER_STUDY = 200
MAX_CONCURRENT_MEASURES = 2
MEASURED = ("length", "angle", "ellipse", "polygon")
ROI = ("ellipse", "polygon")

#: Emits a stored room event: (room_id, event_type, **fields) -> event id (H1's rooms.emit).
Emit = Callable[..., Awaitable[Any]]


class TooManyMarks(Conflict):
    code = "too_many_marks"


@dataclass(frozen=True)
class ImageHeader:
    """What a measurement needs from the header besides the image model."""

    spacing: tuple[m.Spacing, ...]  # one per frame, or one for all
    unit: str

    def spacing_of(self, frame: int) -> m.Spacing:
        return self.spacing[0] if len(self.spacing) == 1 else self.spacing[frame - 1]


@functools.lru_cache(maxsize=512)
def _read_header(path: str, mtime_ns: int) -> ImageHeader:
    """Spacing and unit of a stored file (thread pool; a stored file never changes, the mtime
    only guards a reindexed replacement)."""
    try:
        ds: Dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (PydicomInvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InvalidDicomError(f"the file could not be read as DICOM: {exc}") from exc
    frames = int(ds.get("NumberOfFrames") or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == frames and frames > 1:
        spacing = tuple(m.spacing_from_dataset(ds, f) for f in range(1, frames + 1))
        if all(s == spacing[0] for s in spacing):
            spacing = spacing[:1]
    else:
        spacing = (m.spacing_from_dataset(ds, 1),)
    return ImageHeader(spacing, m.modality_unit(ds))


def read_header(path: str | os.PathLike[str]) -> ImageHeader:
    key = os.fspath(path)
    return _read_header(key, os.stat(key).st_mtime_ns)


class StoredValues:
    """The frame's stored values (monochrome) from the renderer's cached representation, made
    only for the block asked for (`values[r0:r1, c0:c1]`): never a copy of the whole frame."""

    def __init__(self, decoded: DecodedFrame) -> None:
        self.decoded = decoded

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        d = self.decoded
        if d.index is not None:
            return d.index[key].astype(np.int64) + d.domain_min
        assert d.stored is not None
        return d.stored[key]


def _compute(kind: str, points: list[list[float]], header: ImageHeader, model: ImageModel,
             decoded: DecodedFrame | None, frame: int) -> dict[str, Any] | None:
    stored = StoredValues(decoded) if decoded is not None and model.is_monochrome else None
    transform = model.transform(frame) if model.is_monochrome and model.transforms else None
    try:
        result = m.measure(kind, points, header.spacing_of(frame), rows=model.rows,
                           columns=model.columns, stored=stored, transform=transform,
                           unit=header.unit)
    except m.MeasurementError as exc:
        raise InvalidParameter(f"{kind}: {exc}") from exc
    return None if result is None else result.public()


@dataclass(frozen=True)
class NewAnnotation:
    series_uid: str
    sop_instance_uid: str
    frame: int
    kind: str
    points: list[list[float]]
    text: str = ""
    room_id: str = ""


@dataclass(frozen=True)
class NewKeyImage:
    series_uid: str
    sop_instance_uid: str
    frame: int
    room_id: str = ""
    case_id: str = ""
    window: dict[str, Any] | None = None
    note: str = ""


class Marks:
    def __init__(self, store: Store, renderer: Renderer, executor: Executor, dicom_dir: Path,
                 emit: Emit | None = None) -> None:
        self.store = store
        self.renderer = renderer
        self.executor = executor
        self.dicom_dir = dicom_dir
        self.emit = emit
        self._measures = asyncio.Semaphore(MAX_CONCURRENT_MEASURES)

    # --- rooms ---------------------------------------------------------------------------------

    async def check_room(self, who: Principal, room_id: str, study: tuple[str, str]) -> Room:
        """A mark may carry a room only if the author is in that open room and the study is
        the room's (access.require_room_share decides)."""
        room = await self.store.rooms.get(room_id)
        member = await self.store.rooms.member(room_id, who.username) if room else None
        studies = await self.store.room_studies(room) if room else set()
        access.require_room_share(
            who, is_member=member is not None and member.state is not MemberState.LEFT,
            room_open=bool(room and room.open), room_studies=studies, study=study)
        assert room is not None
        return room

    async def _emit(self, room_id: str, event_type: str, **fields: Any) -> None:
        if room_id and self.emit is not None:
            await self.emit(room_id, event_type, **fields)

    # --- measurement ---------------------------------------------------------------------------

    async def measure(self, path: Path, frame: int, kind: str, points: list[list[float]]
                      ) -> dict[str, Any] | None:
        """Validate the points against the image and measure them from the stored pixels."""
        loop = asyncio.get_running_loop()
        async with self._measures:
            if kind in ROI:
                model, decoded = await self.renderer.decoded_frame(path, frame)
            else:
                model = await self.renderer.image_model(path)
                decoded = None
            if not model.has_pixels:
                raise InvalidParameter("this instance has no image to annotate")
            if not 1 <= frame <= model.frames:
                raise NotFound(f"frame {frame} does not exist; the image has {model.frames}")
            for col, row in points:
                if not (0 <= col <= model.columns and 0 <= row <= model.rows):
                    raise InvalidParameter(
                        f"point ({col}, {row}) is outside the image (0-{model.columns} columns, "
                        f"0-{model.rows} rows)")
            if kind not in MEASURED:
                return None
            header = await loop.run_in_executor(self.executor, read_header, path)
            return await loop.run_in_executor(
                self.executor, _compute, kind, points, header, model, decoded, frame)

    # --- annotations ---------------------------------------------------------------------------

    async def add_annotation(self, who: Principal, clinic: str, record: InstanceRecord,
                             new: NewAnnotation) -> Annotation:
        if new.kind not in KINDS:
            raise InvalidParameter(f"kind must be one of {', '.join(KINDS)}")
        low, high = POINTS[new.kind]
        if not low <= len(new.points) <= high:
            raise InvalidParameter(f"a {new.kind} takes {low}" + (
                f" to {high}" if high != low else "") + " points")
        # one line of plain text: control characters (newlines included) become spaces
        text = "".join(" " if ord(ch) < 0x20 or ch == "\x7f" else ch for ch in new.text).strip()
        if len(text) > MAX_TEXT:
            raise InvalidParameter(f"text is limited to {MAX_TEXT} characters")
        if new.kind == "text" and not text:
            raise InvalidParameter("a text annotation needs its text")
        if new.room_id:
            await self.check_room(who, new.room_id, (clinic, record.study_uid))
        measurement = await self.measure(
            self.dicom_dir / record.path, new.frame, new.kind, new.points)
        user = await self.store.directory.get_user(who.username)
        annotation = Annotation(
            id=new_id(), clinic=clinic, study_uid=record.study_uid, series_uid=record.series_uid,
            sop_instance_uid=record.sop_uid, frame=new.frame, kind=new.kind,
            points=[[float(c), float(r)] for c, r in new.points], text=text,
            author=who.username, author_name=user.display_name if user else who.username,
            at=now(), room_id=new.room_id, measurement=measurement,
        )
        try:
            await self.store.annotations.add(annotation, per_image=ANNOTATIONS_PER_IMAGE,
                                             per_study=ANNOTATIONS_PER_STUDY)
        except TooMany as exc:
            raise TooManyMarks(f"the {exc.scope} already holds {exc.limit} annotations",
                               limit=exc.limit, scope=exc.scope) from None
        event(log, "annotation_added", study=record.study_uid, kind=new.kind, by=who.username,
              room=new.room_id or None)
        await self._emit(new.room_id, "annotation.added", annotation=annotation.public())
        return annotation

    async def remove_annotation(self, who: Principal, clinic: str, study_uid: str,
                                annotation_id: str) -> Annotation:
        annotation = await self.store.annotations.get(clinic, study_uid, annotation_id)
        if annotation is None:
            raise NotFound("no such annotation")
        access.require_author(who, annotation.author, "annotation")
        if not await self.store.annotations.remove(annotation):
            raise NotFound("no such annotation")
        await self._emit(annotation.room_id, "annotation.removed", annotation_id=annotation.id,
                         study_uid=study_uid, sop_instance_uid=annotation.sop_instance_uid,
                         by=who.username)
        return annotation

    # --- key images ----------------------------------------------------------------------------

    async def add_key_image(self, who: Principal, clinic: str, record: InstanceRecord,
                            new: NewKeyImage) -> tuple[KeyImage, bool]:
        if new.room_id:
            room = await self.check_room(who, new.room_id, (clinic, record.study_uid))
            view = await self.store.room_views.get(room.id)
            access.require_key_image_marker(
                who, kind=room.kind, presenter=view.presenter,
                coordinator=await policy(room.kind).is_coordinator(self.store, room, who))
        model = await self.renderer.image_model(self.dicom_dir / record.path)
        if not model.has_pixels or not 1 <= new.frame <= model.frames:
            raise NotFound(f"frame {new.frame} does not exist in this instance")
        user = await self.store.directory.get_user(who.username)
        key = KeyImage(
            id=new_id(), clinic=clinic, study_uid=record.study_uid, series_uid=record.series_uid,
            sop_instance_uid=record.sop_uid, frame=new.frame, by=who.username,
            by_name=user.display_name if user else who.username, at=now(),
            room_id=new.room_id, case_id=new.case_id, window=new.window, note=new.note.strip(),
        )
        try:
            stored, created = await self.store.key_images.add(key, per_study=KEY_IMAGES_PER_STUDY)
        except TooMany as exc:
            raise TooManyMarks(f"the study already holds {exc.limit} key images",
                               limit=exc.limit, scope=exc.scope) from None
        if created:
            await self._emit(new.room_id, "key_image.added", key_image=stored.public())
        return stored, created

    async def remove_key_image(self, who: Principal, clinic: str, study_uid: str,
                               key_image_id: str) -> KeyImage:
        key = await self.store.key_images.get(clinic, study_uid, key_image_id)
        if key is None:
            raise NotFound("no such key image")
        access.require_author(who, key.by, "key image")
        if not await self.store.key_images.remove(key):
            raise NotFound("no such key image")
        await self._emit(key.room_id, "key_image.removed", key_image_id=key.id,
                         study_uid=study_uid, sop_instance_uid=key.sop_instance_uid,
                         by=who.username)
        return key

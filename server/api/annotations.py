"""Annotations, measurements and key images on a study's images; SR / KOS export.

  GET    /api/studies/{study}/annotations[?instance=UID]   everyone who may see the study
  POST   /api/studies/{study}/annotations                  measured by the server (mm, HU)
  DELETE /api/studies/{study}/annotations/{annotation_id}  its author only (undo)
  GET    /api/studies/{study}/key-images
  POST   /api/studies/{study}/key-images
  DELETE /api/studies/{study}/key-images/{key_image_id}    its author only
  POST   /api/studies/{study}/measurement-report          DICOM SR TID 1500 into the study
  POST   /api/studies/{study}/key-object-selection        DICOM KOS into the study

Who may see the study is decided by server/auth/access.py (through dicomweb/resources.py); every
read and write is audited. The work is in server/marks/service.py.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.dicomweb.resources import audit, authorized_instance, authorized_study, uid_param
from server.errors import InvalidParameter, NotFound
from server.marks import service
from server.marks.export import Exporter
from server.marks.service import Marks, NewAnnotation, NewKeyImage

MARKS: web.AppKey[Marks] = web.AppKey("marks", Marks)
EXPORTER: web.AppKey[Exporter] = web.AppKey("marks_exporter", Exporter)

_ID = re.compile(r"[0-9a-f]{16}")
_ROOM_ID = r"^[A-Za-z0-9_.:-]{1,64}$"
_UID_FIELD = {"min_length": 1, "max_length": 64, "pattern": r"^[0-9.]+$"}


class AnnotationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_uid: str = Field(**_UID_FIELD)
    sop_instance_uid: str = Field(**_UID_FIELD)
    frame: int = Field(default=1, ge=1, le=2**31 - 1)
    kind: Literal["arrow", "text", "length", "angle", "ellipse", "polygon"]
    points: list[tuple[float, float]] = Field(
        min_length=1, max_length=service.POINTS["polygon"][1],
        description="image pixel coordinates [column, row]; (0,0) is the top left corner of "
                    "the top left pixel (DICOM SCOORD)")
    text: str = Field(default="", max_length=service.MAX_TEXT)
    room_id: str | None = Field(default=None, pattern=_ROOM_ID)


class WindowValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    center: float = Field(ge=-1e7, le=1e7)
    width: float = Field(gt=0, le=1e7)
    function: Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"] = "LINEAR"


class KeyImageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_uid: str = Field(**_UID_FIELD)
    sop_instance_uid: str = Field(**_UID_FIELD)
    frame: int = Field(default=1, ge=1, le=2**31 - 1)
    room_id: str | None = Field(default=None, pattern=_ROOM_ID)
    case_id: str | None = Field(default=None, max_length=64, pattern=_ROOM_ID)
    window: WindowValue | None = None
    note: str = Field(default="", max_length=service.MAX_TEXT)


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str | None = Field(default=None, pattern=_ROOM_ID,
                                description="only the marks made in this room")
    description: str = Field(default="", max_length=service.MAX_TEXT)


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise NotFound(f"no such {name.removesuffix('_id').replace('_', ' ')}")
    return value


async def list_annotations(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    instance = request.query.get("instance")
    if instance is not None and not re.fullmatch(r"[0-9.]{1,64}", instance):
        raise InvalidParameter("instance must be a SOPInstanceUID")
    study = await authorized_study(request, study_uid)
    found = await request.app[appkeys.STORE].annotations.of_study(study.clinic, study_uid,
                                                                  instance)
    await audit(request, "annotations.list", study=study_uid, instance=instance,
                count=len(found))
    return web.json_response({"annotations": [a.public() for a in found]})


async def add_annotation(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    body = await read_json(request, AnnotationCreate)
    record = await authorized_instance(request, study_uid, body.series_uid,
                                       body.sop_instance_uid)
    annotation = await request.app[MARKS].add_annotation(
        principal(request), record.clinic, record, NewAnnotation(
            series_uid=body.series_uid, sop_instance_uid=body.sop_instance_uid,
            frame=body.frame, kind=body.kind, points=[list(p) for p in body.points],
            text=body.text, room_id=body.room_id or ""))
    await audit(request, "annotation.add", study=study_uid, series=record.series_uid,
                instance=record.sop_uid, frame=body.frame, annotation=annotation.id,
                kind=body.kind, room=body.room_id or "")
    return web.json_response(annotation.public(), status=201)


async def remove_annotation(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    annotation_id = _id(request, "annotation_id")
    study = await authorized_study(request, study_uid)
    removed = await request.app[MARKS].remove_annotation(
        principal(request), study.clinic, study_uid, annotation_id)
    await audit(request, "annotation.remove", study=study_uid, annotation=annotation_id,
                instance=removed.sop_instance_uid, room=removed.room_id)
    return web.json_response({"removed": annotation_id})


async def list_key_images(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    study = await authorized_study(request, study_uid)
    found = await request.app[appkeys.STORE].key_images.of_study(study.clinic, study_uid)
    room = request.query.get("room_id")
    if room is not None:
        found = [k for k in found if k.room_id == room]
    await audit(request, "key_images.list", study=study_uid, count=len(found))
    return web.json_response({"key_images": [k.public() for k in found]})


async def add_key_image(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    body = await read_json(request, KeyImageCreate)
    record = await authorized_instance(request, study_uid, body.series_uid,
                                       body.sop_instance_uid)
    key, created = await request.app[MARKS].add_key_image(
        principal(request), record.clinic, record, NewKeyImage(
            series_uid=body.series_uid, sop_instance_uid=body.sop_instance_uid,
            frame=body.frame, room_id=body.room_id or "", case_id=body.case_id or "",
            window=body.window.model_dump() if body.window else None, note=body.note))
    await audit(request, "key_image.add", study=study_uid, series=record.series_uid,
                instance=record.sop_uid, frame=body.frame, key_image=key.id,
                room=body.room_id or "", created=int(created))
    return web.json_response(key.public(), status=201 if created else 200)


async def remove_key_image(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    key_image_id = _id(request, "key_image_id")
    study = await authorized_study(request, study_uid)
    removed = await request.app[MARKS].remove_key_image(
        principal(request), study.clinic, study_uid, key_image_id)
    await audit(request, "key_image.remove", study=study_uid, key_image=key_image_id,
                instance=removed.sop_instance_uid, room=removed.room_id)
    return web.json_response({"removed": key_image_id})


async def export_measurement_report(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    body = await read_json(request, ExportRequest)
    study = await authorized_study(request, study_uid)
    exported = await request.app[EXPORTER].measurement_report(
        principal(request), study.clinic, study_uid, body.room_id or "")
    await audit(request, "measurement_report.export", study=study_uid,
                instance=exported.sop_instance_uid, count=exported.count,
                room=body.room_id or "")
    return web.json_response(exported.public(), status=201)


async def export_key_object_selection(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    body = await read_json(request, ExportRequest)
    study = await authorized_study(request, study_uid)
    exported = await request.app[EXPORTER].key_object_selection(
        principal(request), study.clinic, study_uid, body.room_id or "", body.description)
    await audit(request, "key_object_selection.export", study=study_uid,
                instance=exported.sop_instance_uid, count=exported.count,
                room=body.room_id or "")
    return web.json_response(exported.public(), status=201)


def _emitter(app: web.Application) -> service.Emit:
    async def emit(room_id: str, event_type: str, **fields: Any) -> Any:
        # Looked up per call: the realtime plane starts with the application.
        return await app[appkeys.REALTIME].rooms.emit(room_id, event_type, **fields)

    return emit


def setup(app: web.Application) -> None:
    app[MARKS] = Marks(app[appkeys.STORE], app[appkeys.RENDERER], app[appkeys.EXECUTOR],
                       app[appkeys.SETTINGS].dicom_dir, emit=_emitter(app))
    app[EXPORTER] = Exporter(app[appkeys.STORE], app[appkeys.INGESTOR],
                             app[appkeys.SETTINGS].dicom_dir)
    app.router.add_post("/api/studies/{study}/measurement-report", export_measurement_report)
    app.router.add_post("/api/studies/{study}/key-object-selection",
                        export_key_object_selection)
    app.router.add_get("/api/studies/{study}/annotations", list_annotations)
    app.router.add_post("/api/studies/{study}/annotations", add_annotation)
    app.router.add_delete("/api/studies/{study}/annotations/{annotation_id}", remove_annotation)
    app.router.add_get("/api/studies/{study}/key-images", list_key_images)
    app.router.add_post("/api/studies/{study}/key-images", add_key_image)
    app.router.add_delete("/api/studies/{study}/key-images/{key_image_id}", remove_key_image)

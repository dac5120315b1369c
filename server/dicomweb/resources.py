"""Finding a DICOMweb resource for the caller: look up, authorise, audit. Shared by QIDO/WADO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from server import appkeys
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb.attributes import is_uid
from server.errors import InvalidParameter, NotFound
from server.store.study_index import InstanceRecord, StudyRecord


def uid_param(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not is_uid(value):
        raise InvalidParameter(f"{name} {value!r} is not a valid DICOM UID")
    return value


def base_url(request: web.Request) -> str:
    """Where DICOMweb is, for RetrieveURL / BulkDataURI: HUIZHEN_PUBLIC_URL when set, else a
    path-absolute reference the client resolves against the origin it used. Never the Host
    header: a forged one would put an attacker's host into stored or cached URLs."""
    public = request.app[appkeys.SETTINGS].public_url
    return f"{public}/dicomweb" if public else "/dicomweb"


def _who(request: web.Request) -> dict[str, Any]:
    """The audit fields that say who read, from where."""
    who = principal(request)
    return {"user": who.username, "role": who.role.value, "clinic": who.clinic,
            "remote": request.remote, "device": who.device}


def audit_soon(request: web.Request, action: str, **resource: object) -> None:
    """Queue the audit event of a frame view (see AuditLog.record_soon)."""
    request.app[appkeys.STORE].audit.record_soon(action=action, **_who(request), **resource)


async def audit(request: web.Request, action: str, **resource: object) -> None:
    """Write who read which patient data; a failure here fails the request (no silent reads)."""
    await request.app[appkeys.STORE].audit.record(action=action, **_who(request), **resource)


async def authorized_study(request: web.Request, study_uid: str) -> StudyRecord:
    study = await request.app[appkeys.STORE].studies.study(study_uid)
    access.check_study(principal(request), study.clinic if study else None)
    assert study is not None
    return study


async def authorized_instance(
    request: web.Request, study_uid: str, series_uid: str, sop_uid: str
) -> InstanceRecord:
    owner, record = await request.app[appkeys.STORE].studies.study_and_instance(study_uid, sop_uid)
    access.check_study(principal(request), owner)
    if record is None or record.series_uid != series_uid:
        raise NotFound("no such instance in this series")
    return record


def file_path(request: web.Request, record: InstanceRecord) -> Path:
    return request.app[appkeys.SETTINGS].dicom_dir / record.path

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


_ACCESS = web.RequestKey("huizhen.study_access", access.StudyAccess)


def _who(request: web.Request) -> dict[str, Any]:
    """The audit fields that say who read, from where (and under which grant)."""
    who = principal(request)
    fields = {"user": who.username, "role": who.role.value, "clinic": who.clinic,
              "remote": request.remote, "device": who.device}
    granted: access.StudyAccess | None = request.get(_ACCESS)
    if granted is not None:
        fields.update(granted.audit_fields())
    return fields


def audit_soon(request: web.Request, action: str, **resource: object) -> None:
    """Queue the audit event of a frame view (see AuditLog.record_soon)."""
    request.app[appkeys.STORE].audit.record_soon(action=action, **_who(request), **resource)


async def audit(request: web.Request, action: str, **resource: object) -> None:
    """Write who read which patient data; a failure here fails the request (no silent reads)."""
    await request.app[appkeys.STORE].audit.record(action=action, **_who(request), **resource)


async def _resolve(request: web.Request, study_uid: str, sop_uid: str | None = None
                   ) -> tuple[access.StudyAccess, InstanceRecord | None]:
    """Which study of this UID the caller may read (server/auth/access.py decides), with the
    instance when one is named. The caller's own clinic costs one lookup (none when hot); a
    grantee's grants come in the same round trip as the instance (Store.granted_instance)."""
    who = principal(request)
    studies = request.app[appkeys.STORE].studies
    clinic = access.own_clinic(who)
    if clinic is not None:
        if sop_uid is not None:
            record = await studies.instance(clinic, study_uid, sop_uid)
            if record is not None:
                return access.by_clinic(who, study_uid), record
        elif await studies.study_owner(clinic, study_uid) is not None:
            return access.by_clinic(who, study_uid), None
    store = request.app[appkeys.STORE]
    record = None
    if sop_uid is not None:
        grants, record = await store.granted_instance(who.username, study_uid, sop_uid)
    else:
        grants = await store.grants.of_user(who.username, study_uid=study_uid)
    granted = access.by_grant(who, study_uid, grants)
    if granted is None:
        await _refused(request, study_uid, sop_uid, "no_grant" if clinic is None else "no_study")
    assert granted is not None
    if record is not None and record.clinic != granted.clinic:
        record = await studies.instance(granted.clinic, study_uid, sop_uid or "")
    return granted, record


async def _refused(request: web.Request, study_uid: str, sop_uid: str | None, why: str) -> None:
    """A read that found nothing the caller may see: audited like a read, then 404."""
    await audit(request, "access.refused", study=study_uid, instance=sop_uid, why=why,
                path=request.path)
    raise NotFound("no such study")


async def authorized_study(request: web.Request, study_uid: str) -> StudyRecord:
    granted, _ = await _resolve(request, study_uid)
    study = await request.app[appkeys.STORE].studies.study(granted.clinic, study_uid)
    if study is None:  # granted, but the study is gone (reindex without its files)
        await _refused(request, study_uid, None, "no_study")
    assert study is not None
    request[_ACCESS] = granted
    return study


async def authorized_instance(
    request: web.Request, study_uid: str, series_uid: str, sop_uid: str
) -> InstanceRecord:
    granted, record = await _resolve(request, study_uid, sop_uid)
    if record is None or record.series_uid != series_uid:
        await _refused(request, study_uid, sop_uid, "no_instance")
    assert record is not None
    request[_ACCESS] = granted
    return record


def file_path(request: web.Request, record: InstanceRecord) -> Path:
    return request.app[appkeys.SETTINGS].dicom_dir / record.path

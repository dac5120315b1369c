"""QIDO-RS: search for studies, series and instances (PS3.18 §10.6)."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb.query import (
    LIMIT_WARNING,
    MODALITIES_IN_STUDY,
    Level,
    matches_all,
    more_than_shown,
    page,
    parse_query,
    select,
)
from server.dicomweb.resources import audit, authorized_study, base_url, uid_param
from server.store.study_index import DicomJson, StudyRecord

DICOM_JSON = "application/dicom+json"


def _json(payload: list[DicomJson], capped: bool = False) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if capped:
        headers["Warning"] = LIMIT_WARNING
    return web.json_response(payload, content_type=DICOM_JSON, headers=headers)


def _ui(value: str) -> dict:
    return {"vr": "UI", "Value": [value]}


def _count(n: int) -> dict:
    return {"vr": "IS", "Value": [n]}


async def search_studies(request: web.Request) -> web.Response:
    query = parse_query(request.query, [Level.STUDY])
    store = request.app[appkeys.STORE]
    who = principal(request)
    clinic = access.own_clinic(who)
    own = await store.studies.study_uids(clinic) if clinic is not None else []
    shown_refs = access.visible(who, own, await store.grants.of_user(who.username))
    records = await store.studies.studies([(a.clinic, a.study_uid) for a in shown_refs])
    access_of = {(a.clinic, a.study_uid): a for a in shown_refs}
    if clinic is None or len(records) > len(own):
        # Granted studies join the clinic's: newest study first over all of them.
        records.sort(key=_study_datetime, reverse=True)
    results = []
    accesses: list[access.StudyAccess] = []  # one per result, for the audit
    for rec in records:
        attrs = {**rec.attrs, MODALITIES_IN_STUDY: {"vr": "CS", "Value": rec.modalities}}
        if not matches_all(attrs, query.filters):
            continue
        extra = {
            MODALITIES_IN_STUDY: {"vr": "CS", "Value": rec.modalities},
            "00201206": _count(rec.series_count),
            "00201208": _count(rec.instance_count),
            "00081190": {"vr": "UR", "Value": [f"{base_url(request)}/studies/{rec.study_uid}"]},
        }
        results.append(select(attrs, Level.STUDY, query, extra))
        accesses.append(access_of[(rec.clinic, rec.study_uid)])
    shown = page(results, query)
    await audit(
        request,
        "qido.studies",
        query=request.query_string,
        returned=len(shown),
        studies=",".join(_first(r, "0020000D") for r in shown),
        **access.listing_audit_fields(page(accesses, query)),
    )
    return _json(shown, more_than_shown(results, query))


async def search_series(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    query = parse_query(request.query, [Level.SERIES])
    study = await authorized_study(request, study_uid)
    series = await request.app[appkeys.STORE].studies.series(study.clinic, study_uid)
    results = []
    for rec in series:
        attrs = {**study.attrs, **rec.attrs}
        if not matches_all(attrs, query.filters):
            continue
        extra = {
            "0020000D": _ui(study_uid),
            "00201209": _count(rec.instance_count),
            "00081190": {
                "vr": "UR",
                "Value": [f"{base_url(request)}/studies/{study_uid}/series/{rec.series_uid}"],
            },
        }
        results.append(select(attrs, Level.SERIES, query, extra))
    shown = page(results, query)
    await audit(request, "qido.series", study=study_uid, returned=len(shown))
    return _json(shown, more_than_shown(results, query))


async def search_instances(request: web.Request) -> web.Response:
    study_uid = uid_param(request, "study")
    series_uid = uid_param(request, "series") if "series" in request.match_info else None
    query = parse_query(request.query, [Level.SERIES, Level.INSTANCE])
    study = await authorized_study(request, study_uid)
    store = request.app[appkeys.STORE]
    series_attrs = {
        s.series_uid: s.attrs for s in await store.studies.series(study.clinic, study_uid)
    }
    results = []
    for rec in await store.studies.instances(study.clinic, study_uid, series_uid):
        attrs = {**study.attrs, **series_attrs.get(rec.series_uid, {}), **rec.attrs}
        if not matches_all(attrs, query.filters):
            continue
        url = (
            f"{base_url(request)}/studies/{study_uid}/series/{rec.series_uid}"
            f"/instances/{rec.sop_uid}"
        )
        extra = {
            "0020000D": _ui(study_uid),
            "0020000E": _ui(rec.series_uid),
            "00081190": {"vr": "UR", "Value": [url]},
        }
        results.append(select(attrs, Level.INSTANCE, query, extra))
    shown = page(results, query)
    await audit(request, "qido.instances", study=study_uid, series=series_uid, returned=len(shown))
    return _json(shown, more_than_shown(results, query))


def _study_datetime(rec: StudyRecord) -> tuple[str, str]:
    return _first(rec.attrs, "00080020"), _first(rec.attrs, "00080030")


def _first(attrs: DicomJson, tag: str) -> str:
    values = attrs.get(tag, {}).get("Value") or [""]
    return str(values[0])

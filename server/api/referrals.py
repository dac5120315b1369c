"""Referrals (双向转诊) over HTTP: thin handlers around server/clinical/referrals.py.

Who sees and does what is decided in server/auth/access.py; every read and change is audited
(`referral.*`, with the patient and both sides' ids, so the audit page can filter by them).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth import access
from server.auth.middleware import principal
from server.clinical.referrals import ACTIONS, NewReferral, ReferralService
from server.dicomweb.resources import audit
from server.errors import InvalidParameter
from server.params import parse_int
from server.store.referrals import Direction, Referral, Route

MAX_LIMIT = 100
_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_UID = r"^[0-9]+(\.[0-9]+)*$"
_REPORT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_REFERRAL_ID = r"^[0-9a-f]{16}$"


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: Direction
    department: str | None = Field(default=None, pattern=_ID,
                                   description="up: the county department referred to")
    clinic: str | None = Field(default=None, pattern=_ID,
                               description="down: the clinic referred back to")
    reason: str = Field(min_length=1, max_length=2000)
    diagnosis: str = Field(default="", max_length=1000,
                           description="preliminary diagnosis (up) / diagnosis (down)")
    care_plan: str = Field(default="", max_length=4000,
                           description="down: the rehabilitation plan (required)")
    patient_name: str = Field(default="", max_length=200)
    patient_id: str = Field(default="", max_length=64)
    study_uids: list[str] = Field(default_factory=list, max_length=20)
    report_ids: list[str] = Field(default_factory=list, max_length=20)
    parent: str = Field(default="", pattern=r"^([0-9a-f]{16})?$",
                        description="down: the up-referral this one answers")


class ReferralAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1000,
                      description="decline: the reason (required); otherwise optional")


class ReferralRouteChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    direction: Direction
    clinic: str = Field(pattern=_ID)
    department: str = Field(pattern=_ID)


def _service(request: web.Request) -> ReferralService:
    return request.app[appkeys.REFERRALS]


def _referral_id(request: web.Request) -> str:
    value = request.match_info["referral_id"]
    if len(value) != 16 or not all(c in "0123456789abcdef" for c in value):
        raise InvalidParameter("a referral id is 16 hex digits")
    return value


def _fields(r: Referral) -> dict[str, object]:
    """What the audit of a referral names: the patient, both sides, the studies."""
    return {"referral": r.id, "direction": r.direction.value, "patient_id": r.patient_id,
            "referral_clinic": r.clinic, "department": r.department, "state": r.state.value,
            "studies": ",".join(s.study_uid for s in r.studies) or None}


async def list_referrals(request: web.Request) -> web.Response:
    who = principal(request)
    limit = parse_int(request.query.get("limit", "20"), "limit", minimum=1, maximum=MAX_LIMIT)
    offset = parse_int(request.query.get("offset", "0"), "offset", maximum=100_000)
    page = await _service(request).page(
        who, limit=limit, offset=offset, state=request.query.get("state") or None,
        direction=request.query.get("direction") or None)
    # Patients' names are on this list: audited like any other read of patient data.
    await audit(request, "referral.list", count=len(page["referrals"]), offset=offset,
                scope=":".join(access.referral_scope(who)))
    return web.json_response(page)


async def create_referral(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, ReferralCreate)
    counterpart = body.department if body.direction is Direction.UP else body.clinic
    if not counterpart:
        raise InvalidParameter("an up-referral names its department, a down-referral its clinic")
    for uid in body.study_uids:
        if len(uid) > 64 or not uid or not all(c.isdigit() or c == "." for c in uid) \
                or not uid.isascii():
            raise InvalidParameter(f"{uid[:70]!r} is not a StudyInstanceUID")
    for rid in body.report_ids:
        if not rid.isascii() or len(rid) > 64 or not rid or \
                not all(c.isalnum() or c in "._-" for c in rid):
            raise InvalidParameter("a report id is up to 64 letters, digits, '.', '_', '-'")
    referral = await _service(request).create(who, NewReferral(
        direction=body.direction, counterpart=counterpart, reason=body.reason,
        patient_name=body.patient_name, patient_id=body.patient_id, diagnosis=body.diagnosis,
        care_plan=body.care_plan, study_uids=tuple(body.study_uids),
        report_ids=tuple(body.report_ids), parent=body.parent))
    await audit(request, "referral.create", **_fields(referral))
    return web.json_response(_service(request).view(referral, who), status=201)


async def get_referral(request: web.Request) -> web.Response:
    who = principal(request)
    referral, _side = await _service(request).get(who, _referral_id(request))
    await audit(request, "referral.view", **_fields(referral))
    return web.json_response(_service(request).view(referral, who))


def _action_handler(action: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        who = principal(request)
        referral_id = _referral_id(request)
        body = await read_json(request, ReferralAction) if request.body_exists \
            else ReferralAction()
        referral = await _service(request).act(who, referral_id, action, body.note)
        await audit(request, f"referral.{action}", **_fields(referral),
                    note=body.note or None)
        return web.json_response(_service(request).view(referral, who))

    handler.__name__ = f"referral_{action}"
    return handler


async def referral_routes(request: web.Request) -> web.Response:
    """Where the caller may refer to (for the referral form)."""
    return web.json_response({"routes": await _service(request).routes_for(principal(request))})


# admin: the configured routes ------------------------------------------------------------------


def _admin(request: web.Request) -> None:
    access.require_admin(principal(request))


def _routes_view(routes: list[Route]) -> web.Response:
    return web.json_response({"routes": [r.public() for r in routes]})


async def admin_routes(request: web.Request) -> web.Response:
    _admin(request)
    return _routes_view(await request.app[appkeys.STORE].referrals.routes())


async def _change_route(request: web.Request, allow: bool) -> web.Response:
    from server.api.security_audit import audit_principal

    who = principal(request)
    access.require_admin(who)
    body = await read_json(request, ReferralRouteChange)
    store = request.app[appkeys.STORE]
    if await store.directory.get_clinic(body.clinic) is None:
        raise InvalidParameter(f"no clinic {body.clinic!r}")
    if await store.directory.get_department(body.department) is None:
        raise InvalidParameter(f"no department {body.department!r}")
    if allow:
        await store.referrals.allow(body.direction, body.clinic, body.department)
    else:
        await store.referrals.deny(body.direction, body.clinic, body.department)
    await audit_principal(request, who, "admin.referral_route." + ("allow" if allow else "deny"),
                          direction=body.direction.value, target_clinic=body.clinic,
                          department=body.department)
    return _routes_view(await store.referrals.routes())


async def admin_allow_route(request: web.Request) -> web.Response:
    return await _change_route(request, True)


async def admin_deny_route(request: web.Request) -> web.Response:
    return await _change_route(request, False)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/referrals", list_referrals)
    r.add_post("/api/referrals", create_referral)
    r.add_get("/api/referrals/routes", referral_routes)
    r.add_get("/api/referrals/{referral_id}", get_referral)
    for action in ACTIONS:
        r.add_post(f"/api/referrals/{{referral_id}}/{action}", _action_handler(action))
    r.add_get("/api/admin/referral-routes", admin_routes)
    r.add_post("/api/admin/referral-routes", admin_allow_route)
    r.add_post("/api/admin/referral-routes/remove", admin_deny_route)

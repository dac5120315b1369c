"""GET /api/openapi.json: the OpenAPI 3.1 description of every HTTP route of the server.

The document is written here by hand, route by route, and a test (tests/unit/test_openapi.py)
compares it with the routes the application registers: a route added without an entry in
`PATHS` fails the suite. The same document drives the schemathesis fuzzing in
tests/integration/test_fuzz_http.py, so parameters and bodies listed here are the ones fuzzed.

It is public (no token): it describes no patient data and nothing that is not in the source
repository, and a viewer integrator (OHIF) needs it before it has a token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server import appkeys
from server.api.admin_routes import (
    ClinicCreate,
    DepartmentCreate,
    DepartmentHead,
    DeviceCreate,
    PasswordReset,
    UserCreate,
)
from server.api.alerts import AlertAcknowledge, AlertHandled, AlertRaise
from server.api.annotations import AnnotationCreate, ExportRequest, KeyImageCreate
from server.api.auth_routes import LoginRequest, PasswordChange
from server.api.notifications import MarkRead
from server.api.referrals import ReferralAction, ReferralCreate, ReferralRouteChange
from server.api.reports import Amend, CreateReport, Retract, SaveDraft, SignDraft
from server.api.studies import BreakGlassRequest
from server.api.worklist import (
    CancelBody,
    ClaimTokenBody,
    CompleteBody,
    ReadingRequestBody,
    ReassignBody,
)
from server.mdt.models import (
    CancelRequest,
    ConclusionIn,
    ConflictQuery,
    MdtChange,
    MdtCreate,
    ProposalCreate,
)

Operation = dict[str, Any]

# Routes served but not described: they are not part of the JSON/DICOMweb API.
UNDOCUMENTED: dict[tuple[str, str], str] = {
    ("GET", "/"): "redirect to the pages",
    ("GET", "/ui/"): "the pages (static files)",
    ("GET", "/api/ws"): "the page WebSocket, described in docs/signaling.md",
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}

_ERRORS = {"default": {"$ref": "#/components/responses/Error"}}
_UID = {"type": "string", "maxLength": 64}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _UID,
            "description": description}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False,
            "schema": schema or {"type": "string"}, "description": description}


STUDY = _path_param("study", "StudyInstanceUID")
SERIES = _path_param("series", "SeriesInstanceUID")
INSTANCE = _path_param("instance", "SOPInstanceUID")

_QIDO_COMMON = [
    _query("limit", "at most this many results (capped at 1000)", {"type": "string"}),
    _query("offset", "skip this many results", {"type": "string"}),
    _query("includefield", "keywords or tags to add, or 'all'"),
    _query("fuzzymatching", "true or false (names always match case-insensitively)"),
    _query("accept", "PS3.18 8.3.3.1: media types in place of the Accept header "
           "(application/dicom+json)"),
]
_QIDO_STUDY = [
    _query("StudyInstanceUID", "one UID or a comma-separated list"),
    _query("PatientID", "exact"),
    _query("PatientName", "'*' and '?' wildcards, case-insensitive"),
    _query("StudyDate", "YYYYMMDD or a range A-B, -B, A-"),
    _query("StudyTime", "HHMMSS or a range"),
    _query("AccessionNumber", "exact"),
    _query("ModalitiesInStudy", "one modality or a comma-separated list"),
]
_QIDO_SERIES = [
    _query("Modality", "exact"),
    _query("SeriesInstanceUID", "one UID or a list"),
    _query("SeriesNumber", "exact"),
]
_QIDO_INSTANCE = [
    _query("SOPInstanceUID", "one UID or a list"),
    _query("SOPClassUID", "exact"),
    _query("InstanceNumber", "exact"),
]
_RENDER = [
    _query("window", "center,width[,LINEAR|LINEAR_EXACT|SIGMOID] (PS3.18 spelling accepted)"),
    _query("quality", "1-100"),
    _query("viewport", "width,height in pixels (fit inside, never upscaled)"),
    _query("iccprofile", "no, yes or srgb"),
    _query("accept", "PS3.18 8.3.3.1: media types in place of the Accept header"),
]

_DICOM_JSON = {"application/dicom+json": {"schema": {"type": "array",
                                                     "items": {"type": "object"}}}}


def _get(summary: str, params: list[dict[str, Any]], content: dict[str, Any],
         tag: str = "dicomweb") -> Operation:
    return {"summary": summary, "tags": [tag], "parameters": params,
            "responses": {"200": {"description": "OK", "content": content}, **_ERRORS}}


def _retrieve(params: list[dict[str, Any]]) -> Operation:
    return _get("WADO-RS retrieve (multipart/related; type=application/dicom)", params,
                {"multipart/related": {"schema": {"type": "string", "format": "binary"}}})


def _metadata(params: list[dict[str, Any]]) -> Operation:
    return _get("WADO-RS metadata with BulkDataURIs", params, _DICOM_JSON)


def _thumbnail(params: list[dict[str, Any]]) -> Operation:
    return _get("thumbnail (middle slice, 128x128 by default)", params + _RENDER, _IMAGE)


def _stow(params: list[dict[str, Any]]) -> Operation:
    return {
        "summary": "STOW-RS store (multipart/related; type=application/dicom)",
        "tags": ["dicomweb"],
        "parameters": params,
        "requestBody": {"required": True, "content": {
            "multipart/related": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {
            "200": {"description": "all stored", "content": _DICOM_JSON},
            "202": {"description": "some failed", "content": _DICOM_JSON},
            "409": {"description": "none stored (FailedSOPSequence says why)",
                    "content": _DICOM_JSON},
            **_ERRORS,
        },
    }


_IMAGE = {t: {"schema": {"type": "string", "format": "binary"}}
          for t in ("image/jpeg", "image/png", "image/gif", "image/webp")}
_S, _SS, _SSI = [STUDY], [STUDY, SERIES], [STUDY, SERIES, INSTANCE]

def _admin_op(summary: str, schema: str | None = None, status: str = "200",
              params: list[dict[str, Any]] | None = None, answer: str = "object") -> Operation:
    op: Operation = {
        "summary": summary, "tags": ["admin"], "parameters": params or [],
        "responses": {status: {"description": "OK", "content": {"application/json": {
            "schema": {"type": answer}}}}, **_ERRORS},
    }
    if schema:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return op


_USERNAME = {"name": "username", "in": "path", "required": True,
             "schema": {"type": "string", "maxLength": 64}, "description": "the user"}
_DEVICE_ID = {"name": "device_id", "in": "path", "required": True,
              "schema": {"type": "string", "maxLength": 32}, "description": "the kiosk's id"}

# Admin accounts only (403 for every other role); every change audited as admin.*.
_ADMIN_PATHS: dict[str, dict[str, Operation]] = {
    "/api/admin/clinics": {
        "get": _admin_op("clinics", answer="array"),
        "post": _admin_op("add a clinic", "ClinicCreate", "201"),
    },
    "/api/admin/departments": {
        "get": _admin_op("departments", answer="array"),
        "post": _admin_op("add a department", "DepartmentCreate", "201"),
    },
    "/api/admin/departments/{department_id}/head": {"post": _admin_op(
        "set (or clear, with \"\") the head of a department: one of its experts",
        "DepartmentHead", params=[{"name": "department_id", "in": "path", "required": True,
                                   "schema": {"type": "string", "maxLength": 64},
                                   "description": "the department"}])},
    "/api/admin/users": {
        "get": _admin_op("users with role, clinic/department and disabled state", answer="array"),
        "post": _admin_op("add a user", "UserCreate", "201"),
    },
    "/api/admin/users/{username}/disable": {"post": _admin_op(
        "disable a user: no sign-in, every session ends", params=[_USERNAME])},
    "/api/admin/users/{username}/enable": {"post": _admin_op(
        "enable a user (old sessions stay ended)", params=[_USERNAME])},
    "/api/admin/users/{username}/password": {"post": _admin_op(
        "reset a user's password (their sessions end)", "PasswordReset", params=[_USERNAME])},
    "/api/admin/devices": {
        "get": _admin_op("kiosk devices with clinic and state (never their tokens)",
                         answer="array"),
        "post": _admin_op("register a kiosk; the answer carries its token, shown once",
                          "DeviceCreate", "201"),
    },
    "/api/admin/devices/{device_id}/revoke": {"post": _admin_op(
        "revoke a kiosk: its token stops signing in, its sessions end", params=[_DEVICE_ID])},
}

_HEX16 = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
_MDT_ID = {"name": "mdt", "in": "path", "required": True, "schema": _HEX16,
           "description": "the MDT session's id"}
_CASE_ID = {"name": "case", "in": "path", "required": True, "schema": _HEX16,
            "description": "a case of the session's agenda"}
_PROPOSAL_ID = {"name": "proposal", "in": "path", "required": True, "schema": _HEX16,
                "description": "the proposal's id"}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "string", "pattern": "^[0-9]{1,3}$"}, "description": "1 to 100"}
_LANG = {"name": "lang", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["en", "zh"]}, "description": "en (default), zh"}


def _mdt_op(summary: str, schema: str | None = None, status: str = "200",
            params: list[dict[str, Any]] | None = None,
            content: dict[str, Any] | None = None) -> Operation:
    op: Operation = {
        "summary": summary, "tags": ["mdt"], "parameters": params or [],
        "responses": {status: {"description": "OK", "content": content or {
            "application/json": {"schema": {"type": "object"}}}}, **_ERRORS},
    }
    if schema:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return op


_ICS = {"text/calendar": {"schema": {"type": "string"}}}
# MDT sessions (docs/api.md "MDT"): who may do what is decided in server/auth/access.py.
_MDT_PATHS: dict[str, dict[str, Operation]] = {
    "/api/mdt": {
        "get": _mdt_op("MDT sessions the caller may see: upcoming (soonest first) or past",
                       params=[_query("scope", "upcoming (default) or past",
                                      {"type": "string", "enum": ["upcoming", "past"]}),
                               _LIMIT,
                               {"name": "offset", "in": "query", "required": False,
                                "schema": {"type": "string", "pattern": "^[0-9]{1,6}$"},
                                "description": "0 to 100000"}]),
        "post": _mdt_op("schedule an MDT session (coordinators); the answer flags the "
                        "invitees' time conflicts", "MdtCreate", "201"),
    },
    "/api/mdt/directory": {"get": _mdt_op(
        "whom a coordinator can invite: departments with their experts, clinics")},
    "/api/mdt/conflicts": {"post": _mdt_op(
        "the invitees a planned time would double-book (coordinators)", "ConflictQuery")},
    "/api/mdt/proposals": {
        "get": _mdt_op("proposed cases: a coordinator searches all, a doctor sees their "
                       "clinic's, an expert their own",
                       params=[_query("q", "text in the patient's name or ID, reason, clinic"),
                               _query("state", "proposed (default), scheduled, withdrawn, all",
                                      {"type": "string", "enum": [
                                          "proposed", "scheduled", "withdrawn", "all"]}),
                               _query("department", "proposed to this department"), _LIMIT]),
        "post": _mdt_op("propose a case (studies of one patient) for an MDT (doctors, experts)",
                        "ProposalCreate", "201"),
    },
    "/api/mdt/proposals/{proposal}/withdraw": {"post": _mdt_op(
        "withdraw a proposal not yet on an agenda", params=[_PROPOSAL_ID])},
    "/api/mdt/calendar": {"get": _mdt_op(
        "the caller's calendar feed URL (made on first ask)")},
    "/api/mdt/calendar/rotate": {"post": _mdt_op(
        "a new calendar feed URL; the old one stops working")},
    "/api/mdt/{mdt}": {
        "get": _mdt_op("one MDT session as the caller may see it (another clinic's cases are "
                       "placeholders to a doctor), what they may do, conflicts",
                       params=[_MDT_ID]),
        "patch": _mdt_op("edit or reschedule (coordinators; SEQUENCE goes up)", "MdtChange",
                         params=[_MDT_ID]),
    },
    "/api/mdt/{mdt}.ics": {"get": _mdt_op("the session as iCalendar", params=[_MDT_ID],
                                          content=_ICS)},
    "/api/mdt/{mdt}/summary": {"get": _mdt_op(
        "the concluded session's summary for the printable page (a clinic's doctor: their "
        "clinic's cases only)", params=[_MDT_ID, _LANG])},
    "/api/mdt/{mdt}/summary.pdf": {"get": _mdt_op(
        "the summary as PDF (Chinese text embedded, key images)", params=[_MDT_ID, _LANG],
        content={"application/pdf": {"schema": {"type": "string", "format": "binary"}}})},
    "/api/mdt/{mdt}/cancel": {"post": _mdt_op(
        "cancel (coordinators): grants end, calendars show STATUS:CANCELLED", "CancelRequest",
        params=[_MDT_ID])},
    "/api/mdt/{mdt}/open": {"post": _mdt_op(
        "open the room early (it opens by itself 15 minutes before the start)",
        params=[_MDT_ID])},
    "/api/mdt/{mdt}/conclude": {"post": _mdt_op(
        "conclude (coordinator or lead expert): attendees recorded, room closed, summary "
        "ready", params=[_MDT_ID])},
    "/api/mdt/{mdt}/cases/{case}/conclusion": {"put": _mdt_op(
        "record a case's conclusion (coordinator or lead expert)", "ConclusionIn",
        params=[_MDT_ID, _CASE_ID])},
    "/calendar/{token}.ics": {"get": {
        "summary": "a user's MDT calendar feed (public: the token in the path is the "
                   "credential; no patient in it)",
        "tags": ["mdt"], "security": [],
        "parameters": [{"name": "token", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 64},
                        "description": "the feed token"}],
        "responses": {"200": {"description": "iCalendar", "content": _ICS}, **_ERRORS},
    }},
}

def _json_op(summary: str, tag: str, schema: str | None = None, status: str = "200",
             params: list[dict[str, Any]] | None = None,
             required: list[str] | None = None) -> Operation:
    op: Operation = {
        "summary": summary, "tags": [tag], "parameters": params or [],
        "responses": {status: {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object", "required": required or []}}}}, **_ERRORS},
    }
    if schema:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return op


_ITEM_ID = {"name": "item_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "description": "the reading request"}
_ID_QUERY = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}

# Reading requests (work items, after DICOM UPS): server/clinical/worklist.py.
_WORKLIST_PATHS: dict[str, dict[str, Operation]] = {
    "/api/worklist": {
        "get": _json_op(
            "reading requests by priority then age, with counts and turn-around times: a "
            "doctor's clinic's, an expert's department's, a coordinator's (any department)",
            "worklist", params=[
                _query("department", "a department (coordinators; an expert's own)", _ID_QUERY),
                _query("state", "open (default), scheduled, in_progress, completed, canceled "
                       "or all", {"type": "string", "enum": ["open", "scheduled",
                                                             "in_progress", "completed",
                                                             "canceled", "all"]}),
                _query("priority", "routine, urgent or emergency",
                       {"type": "string", "enum": ["routine", "urgent", "emergency"]}),
                _query("clinic", "only this clinic's requests", _ID_QUERY),
                _query("modality", "only studies holding this modality (ECG: the ECG "
                       "reading list; suspected-critical ECGs come first anyway)",
                       {"type": "string", "pattern": "^[A-Za-z0-9]{1,16}$"}),
                _query("mine", "1: only the caller's claims", {"type": "string",
                                                               "enum": ["0", "1"]}),
                _query("limit", "1 to 500 (default 200)",
                       {"type": "string", "pattern": "^[0-9]{1,3}$"}),
            ], required=["items", "counts", "turnaround"]),
        "post": _json_op("a clinic doctor sends one of the clinic's studies for reading "
                         "(grants it to the department's experts)", "worklist",
                         "ReadingRequestBody", "201", required=["item"]),
    },
    "/api/worklist/{item_id}": {"get": _json_op("one reading request", "worklist",
                                                params=[_ITEM_ID], required=["item"])},
    "/api/worklist/{item_id}/claim": {"post": _json_op(
        "claim it (atomic: of many experts exactly one wins); the answer's item carries the "
        "claim token", "worklist", params=[_ITEM_ID], required=["item"])},
    "/api/worklist/{item_id}/release": {"post": _json_op(
        "give the claim back to the list", "worklist", "ClaimTokenBody", params=[_ITEM_ID],
        required=["item"])},
    "/api/worklist/{item_id}/renew": {"post": _json_op(
        "renew the claim's lease (HUIZHEN_WORKLIST_LEASE_S)", "worklist", "ClaimTokenBody",
        params=[_ITEM_ID], required=["item"])},
    "/api/worklist/{item_id}/reassign": {"post": _json_op(
        "the department's head gives the request to one of its experts", "worklist",
        "ReassignBody", params=[_ITEM_ID], required=["item"])},
    "/api/worklist/{item_id}/cancel": {"post": _json_op(
        "the requesting clinic withdraws it, or the department's head declines it",
        "worklist", "CancelBody", params=[_ITEM_ID], required=["item"])},
    "/api/worklist/{item_id}/complete": {"post": _json_op(
        "the claim's holder completes it (normally the final report does)", "worklist",
        "CompleteBody", params=[_ITEM_ID], required=["item"])},
}

_ALERT_ID = {"name": "alert_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "description": "the alert"}
_DAY = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_REGISTER_QUERY = [
    _query("clinic", "one clinic (a doctor: their own)", _ID_QUERY),
    _query("department", "the raising department (an expert: their own)", _ID_QUERY),
    _query("state", "open (not yet handled), raised, acknowledged, handled or all (default)",
           {"type": "string", "enum": ["open", "raised", "acknowledged", "handled", "all"]}),
    _query("tier", "critical or significant", {"type": "string",
                                               "enum": ["critical", "significant"]}),
    _query("from", "raised on or after this UTC day (YYYY-MM-DD)", _DAY),
    _query("to", "raised on or before this UTC day", _DAY),
    _query("limit", "1 to 2000 (default 500)", {"type": "string", "pattern": "^[0-9]{1,4}$"}),
]

# Critical-value alerts: server/clinical/alerts.py.
_ALERT_PATHS: dict[str, dict[str, Operation]] = {
    "/api/alerts": {
        "get": _json_op("the critical-value register (统一登记): every alert the caller may "
                        "see, newest first, each with its timeline", "alerts",
                        params=_REGISTER_QUERY, required=["alerts", "total"]),
        "post": _json_op("an expert raises a critical-value alert (tier critical or "
                         "significant) on a report, a reading request or a consult; every "
                         "page of the clinic is told at once", "alerts", "AlertRaise", "201",
                         required=["alert"]),
    },
    "/api/alerts.csv": {"get": {
        "summary": "the register as CSV (UTF-8 with BOM), same filters", "tags": ["alerts"],
        "parameters": _REGISTER_QUERY,
        "responses": {"200": {"description": "CSV", "content": {"text/csv": {
            "schema": {"type": "string"}}}}, **_ERRORS}}},
    "/api/alerts/{alert_id}": {"get": _json_op("one alert with its timeline", "alerts",
                                               params=[_ALERT_ID], required=["alert"])},
    "/api/alerts/{alert_id}/acknowledge": {"post": _json_op(
        "a doctor of the clinic acknowledges, reading the finding back (409 "
        "read_back_mismatch when it does not repeat it)", "alerts", "AlertAcknowledge",
        params=[_ALERT_ID], required=["alert"])},
    "/api/alerts/{alert_id}/handled": {"post": _json_op(
        "the clinic records the action taken (after the acknowledgement)", "alerts",
        "AlertHandled", params=[_ALERT_ID], required=["alert"])},
}

def _json_op(summary: str, tag: str, *, schema: str | None = None, status: str = "200",
             params: list[dict[str, Any]] | None = None, answer: str = "object",
             body_required: bool = True) -> Operation:
    op: Operation = {
        "summary": summary, "tags": [tag], "parameters": params or [],
        "responses": {status: {"description": "OK", "content": {"application/json": {
            "schema": {"type": answer}}}}, **_ERRORS},
    }
    if schema:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return op


_REFERRAL_ID = {"name": "referral_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                "description": "the referral"}
_PAGE = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": "^[0-9]{1,3}$"}, "description": "1 to 100"},
    {"name": "offset", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": "^[0-9]{1,6}$"}, "description": "0 to 100000"},
]
_REFERRAL_STEPS = {
    "accept": "the receiving side accepts a requested referral",
    "decline": "the receiving side declines a requested referral (note: the reason, required)",
    "arrive": "the receiving side records the patient's arrival",
    "complete": "the receiving side completes the referral (grants run out after the TTL)",
    "cancel": "the referring side cancels a requested or accepted referral",
}
# Referrals (双向转诊): the two sides only (a clinic's doctors, a department's experts).
_REFERRAL_PATHS: dict[str, dict[str, Operation]] = {
    "/api/referrals": {
        "get": _json_op("the caller's side's referrals, newest first", "referrals", params=[
            *_PAGE,
            _query("state", "a state, or open / closed"),
            _query("direction", "up or down"),
        ]),
        "post": _json_op("refer a patient up (doctor) or down (expert) along a configured route",
                         "referrals", schema="ReferralCreate", status="201"),
    },
    "/api/referrals/routes": {"get": _json_op(
        "where the caller may refer to (configured routes from their clinic/department)",
        "referrals")},
    "/api/referrals/{referral_id}": {"get": _json_op(
        "one referral with its history and the caller's possible actions", "referrals",
        params=[_REFERRAL_ID])},
    **{f"/api/referrals/{{referral_id}}/{action}": {"post": _json_op(
        text, "referrals", schema="ReferralAction", params=[_REFERRAL_ID],
        body_required=False)} for action, text in _REFERRAL_STEPS.items()},
    "/api/admin/referral-routes": {
        "get": _admin_op("the configured referral routes"),
        "post": _admin_op("allow a route (up: clinic to department; down: department to "
                          "clinic)", "ReferralRouteChange"),
    },
    "/api/admin/referral-routes/remove": {"post": _admin_op(
        "remove a route (existing referrals go on)", "ReferralRouteChange")},
}
_AUDIT_QUERY = [
    _query("user", "the acting account, exact"),
    _query("patient", "a PatientID (events naming it or one of its studies)"),
    _query("clinic", "actor's, study's, kiosk's or referral's clinic"),
    _query("action", "exact or prefix* (comma-separated)"),
    _query("since", "unix seconds, ISO 8601, or -15m / -2h / -7d"),
    _query("until", "unix seconds, ISO 8601, or -15m / -2h / -7d"),
    _query("break_glass", "1: only break-glass views"),
    _query("before", "continue before this event id (the previous page's next)",
           {"type": "string", "maxLength": 41}),
]
_AUDIT_PATHS: dict[str, dict[str, Operation]] = {
    "/api/audit": {"get": _json_op(
        "search the audit trail (auditors): newest first, one page, with the next cursor",
        "audit", params=[*_AUDIT_QUERY, _query("limit", "1 to 500 (default 100)")])},
    "/api/audit.csv": {"get": {
        "summary": "the matching audit events as CSV (auditors; at most 100000 rows)",
        "tags": ["audit"],
        "parameters": [*_AUDIT_QUERY, _query("limit", "1 to 100000")],
        "responses": {"200": {"description": "CSV", "content": {"text/csv": {
            "schema": {"type": "string"}}}}, **_ERRORS},
    }},
}

# Every route the application registers (method in lower case), except UNDOCUMENTED.
# Adding a route? Add its entry here (tests/unit/test_openapi.py fails until you do).
PATHS: dict[str, dict[str, Operation]] = {
    "/healthz": {"get": {
        "summary": "200 while Redis answers, 503 otherwise (for load balancers)",
        "tags": ["operations"], "security": [],
        "responses": {
            "200": {"description": "healthy", "content": {"application/json": {
                "schema": {"type": "object"}}}},
            "503": {"description": "Redis unreachable"},
        },
    }},
    "/api/openapi.json": {"get": {
        "summary": "this document", "tags": ["operations"], "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {
            "application/json": {"schema": {"type": "object"}}}}},
    }},
    "/api/auth/login": {"post": {
        "summary": "sign in (on a clinic kiosk, with its device token)",
        "tags": ["auth"], "security": [],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/LoginRequest"}}}},
        "responses": {
            "200": {"description": "a bearer token", "content": {"application/json": {
                "schema": {"type": "object", "required": ["token", "expires_at", "user"]}}}},
            **_ERRORS,
        },
    }},
    "/api/auth/logout": {"post": {
        "summary": "end the presented session (its token stops working at once)",
        "tags": ["auth"],
        "responses": {"200": {"description": "signed out", "content": {"application/json": {
            "schema": {"type": "object"}}}}, **_ERRORS},
    }},
    "/api/auth/password": {"post": {
        "summary": "change one's own password; ends every older session, returns a fresh token",
        "tags": ["auth"],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PasswordChange"}}}},
        "responses": {
            "200": {"description": "a fresh bearer token", "content": {"application/json": {
                "schema": {"type": "object", "required": ["token", "expires_at", "user"]}}}},
            **_ERRORS,
        },
    }},
    **_ADMIN_PATHS,
    **_REFERRAL_PATHS,
    **_AUDIT_PATHS,
    **_WORKLIST_PATHS,
    **_ALERT_PATHS,
    **_MDT_PATHS,
    "/api/me": {"get": {
        "summary": "the signed-in user", "tags": ["auth"],
        "responses": {"200": {"description": "the user", "content": {"application/json": {
            "schema": {"type": "object"}}}}, **_ERRORS},
    }},
    "/api/presets": {"get": {
        "summary": "window presets with English and Chinese labels", "tags": ["imaging"],
        "responses": {"200": {"description": "presets", "content": {"application/json": {
            "schema": {"type": "array", "items": {"type": "object"}}}}}, **_ERRORS},
    }},
    "/api/consults": {"get": {
        "summary": "consult history, newest first: a doctor's clinic's, or the ones an expert "
                   "or coordinator joined",
        "tags": ["consults"],
        "parameters": [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,3}$"},
             "description": "1 to 100 (default 20)"},
            {"name": "offset", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,6}$"},
             "description": "0 to 100000 (default 0)"},
        ],
        "responses": {"200": {"description": "one page", "content": {"application/json": {
            "schema": {"type": "object",
                       "required": ["consults", "total", "limit", "offset"]}}}}, **_ERRORS},
    }},
    "/api/notifications": {"get": {
        "summary": "the caller's own notifications: the newest first, or (with `after`) the ones "
                   "after that id, oldest first; with the unread count",
        "tags": ["notifications"],
        "parameters": [
            _query("after", "a notification id: list the ones after it (a page catching up)",
                   {"type": "string", "pattern": "^(0|[0-9]{1,19}-[0-9]{1,19})$"}),
            _query("limit", "1 to 200 (default 50)",
                   {"type": "string", "pattern": "^[0-9]{1,3}$"}),
        ],
        "responses": {"200": {"description": "one page", "content": {"application/json": {
            "schema": {"type": "object", "required": ["notifications", "unread", "last_id"]}}}},
            **_ERRORS},
    }},
    "/api/notifications/read": {"post": {
        "summary": "mark the caller's notifications read up to an id (or '+': all)",
        "tags": ["notifications"],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/MarkRead"}}}},
        "responses": {"200": {"description": "the unread count after", "content": {
            "application/json": {"schema": {"type": "object", "required": ["unread"]}}}},
            **_ERRORS},
    }},
    "/api/departments": {"get": {
        "summary": "departments with how many of their experts are online now",
        "tags": ["consults"],
        "responses": {"200": {"description": "departments", "content": {"application/json": {
            "schema": {"type": "object", "required": ["departments"], "properties": {
                "departments": {"type": "array", "items": {
                    "type": "object", "required": ["id", "name", "experts_online"],
                    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                   "experts_online": {"type": "integer", "minimum": 0}}}}}}}}},
            **_ERRORS},
    }},
    "/api/uploads": {"post": {
        "summary": "a kiosk's form upload (DICOM files or zips in the field 'files')",
        "tags": ["imaging"],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "properties": {"files": {"type": "array",
                                     "items": {"type": "string", "format": "binary"}}},
        }}}},
        "responses": {"200": {"description": "stored and failed files", "content": {
            "application/json": {"schema": {"type": "object"}}}}, **_ERRORS},
    }},
    "/api/studies/{study}/break-glass": {"post": {
        "summary": "emergency access: an expert opens a study without a grant, giving a reason "
                   "(granted for HUIZHEN_BREAK_GLASS_TTL_S; the grant and every view audited)",
        "tags": ["imaging"],
        "parameters": [STUDY],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/BreakGlassRequest"}}}},
        "responses": {"200": {"description": "the grant", "content": {"application/json": {
            "schema": {"type": "object",
                       "required": ["study_uid", "clinic", "kind", "ref", "expires_at"]}}}},
                      **_ERRORS},
    }},
    "/dicomweb/studies": {
        "get": _get("QIDO-RS search for studies", _QIDO_STUDY + _QIDO_COMMON, _DICOM_JSON),
        "post": _stow([]),
    },
    "/dicomweb/studies/{study}": {"get": _retrieve(_S), "post": _stow(_S)},
    "/dicomweb/studies/{study}/metadata": {"get": _metadata(_S)},
    "/dicomweb/studies/{study}/thumbnail": {"get": _thumbnail(_S)},
    "/dicomweb/studies/{study}/series": {"get": _get(
        "QIDO-RS search for series of a study", _S + _QIDO_SERIES + _QIDO_COMMON, _DICOM_JSON)},
    "/dicomweb/studies/{study}/instances": {"get": _get(
        "QIDO-RS search for instances of a study",
        _S + _QIDO_SERIES + _QIDO_INSTANCE + _QIDO_COMMON, _DICOM_JSON)},
    "/dicomweb/studies/{study}/series/{series}": {"get": _retrieve(_SS)},
    "/dicomweb/studies/{study}/series/{series}/metadata": {"get": _metadata(_SS)},
    "/dicomweb/studies/{study}/series/{series}/thumbnail": {"get": _thumbnail(_SS)},
    "/dicomweb/studies/{study}/series/{series}/instances": {"get": _get(
        "QIDO-RS search for instances of a series", _SS + _QIDO_INSTANCE + _QIDO_COMMON,
        _DICOM_JSON)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}": {"get": _retrieve(_SSI)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata": {
        "get": _metadata(_SSI)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail": {
        "get": _thumbnail(_SSI)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered": {"get": _get(
        "the instance rendered (first frame)", _SSI + _RENDER, _IMAGE)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered": {
        "get": _get("one frame rendered",
                    [*_SSI, {"name": "frame", "in": "path", "required": True,
                             "schema": {"type": "string"}}, *_RENDER], _IMAGE)},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}": {
        "get": _get("frames as multipart/related; type=application/octet-stream",
                    [*_SSI, {"name": "frames", "in": "path", "required": True,
                             "schema": {"type": "string"},
                             "description": "frame numbers, comma-separated, from 1"}],
                    {"multipart/related": {"schema": {"type": "string", "format": "binary"}}})},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}": {
        "get": _get("one bulk data element (a BulkDataURI of the metadata)",
                    [*_SSI, {"name": "tag", "in": "path", "required": True,
                             "schema": {"type": "string"}}],
                    {"multipart/related": {"schema": {"type": "string", "format": "binary"}}})},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulkdata/{seq}/{item}/{tag}": {
        "get": _get("a bulk data element inside a sequence item (an ECG's Waveform Data of one "
                    "multiplex group: bulkdata/54000100/{group}/54001010)",
                    [*_SSI, {"name": "seq", "in": "path", "required": True,
                             "schema": {"type": "string"}},
                     {"name": "item", "in": "path", "required": True,
                      "schema": {"type": "string"}, "description": "item number, from 1"},
                     {"name": "tag", "in": "path", "required": True,
                      "schema": {"type": "string"}}],
                    {"multipart/related": {"schema": {"type": "string", "format": "binary"}}})},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/ecg": {
        "get": _get("an ECG's samples for the viewer: HZE1 binary (JSON header + delta-coded "
                    "int16 per channel, gzip when accepted); see docs/api.md",
                    _SSI, {"application/vnd.huizhen.ecg": {
                        "schema": {"type": "string", "format": "binary"}}})},
    "/dicomweb/studies/{study}/series/{series}/instances/{instance}/ecg/summary": {
        "get": _get("an ECG's index summary: acquisition, device, rate, duration, the device's "
                    "measurements and statements, the pre-screening result",
                    _SSI, {"application/json": {"schema": {"type": "object"}}})},
}


_REPORT_ID = {"name": "report_id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
              "description": "the report's id"}
_REPORT_VERSION = _query("version", "a signed version number (default: the newest)",
                         {"type": "string", "pattern": "^[0-9]{1,6}$"})
_REPORT_LANG = _query("lang", "en or zh (default zh)", {"type": "string", "enum": ["en", "zh"]})
_REPORT_GAIN = _query("gain", "mm/mV of an ECG report's printed tracing (default 10)",
                      {"type": "string", "enum": ["5", "10", "20"]})
_CODE = {"name": "code", "in": "path", "required": True,
         "schema": {"type": "string", "maxLength": 40},
         "description": "the verification code printed on the report (case and dashes free)"}


def _report_op(summary: str, body: str | None = None, content_type: str = "application/json",
               params: list[dict[str, Any]] | None = None, public: bool = False) -> Operation:
    op: Operation = {
        "summary": summary, "tags": ["reports"], "parameters": params or [],
        "responses": {"200": {"description": "OK", "content": {content_type: {
            "schema": {"type": "string", "format": "binary"} if content_type in (
                "application/pdf", "text/html") else {"type": "object"}}}}, **_ERRORS},
    }
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if public:
        op["security"] = []
    return op


# Reports and consult opinions (server/api/reports.py; docs/api.md "Reports").
_REPORT_PATHS: dict[str, dict[str, Operation]] = {
    "/api/reports": {
        "get": _report_op("the caller's reports: a doctor the clinic's signed ones, an expert "
                          "their own, with the consults still waiting for their opinion",
                          params=[_query("limit", "1 to 100 (default 20)",
                                         {"type": "string", "pattern": "^[0-9]{1,3}$"}),
                                  _query("offset", "0 to 100000",
                                         {"type": "string", "pattern": "^[0-9]{1,6}$"})]),
        "post": _report_op("open the report of a reading request (the claim holder) or the "
                           "opinion of a consult (its expert): an empty draft, or the existing "
                           "report", "CreateReport"),
    },
    "/api/reports/{report_id}": {"get": _report_op(
        "a report: every signed version (superseded_by), the draft for its writer",
        params=[_REPORT_ID])},
    "/api/reports/{report_id}/draft": {"put": _report_op(
        "autosave the draft; `revision` is the one it is based on (409 draft_stale if not)",
        "SaveDraft", params=[_REPORT_ID])},
    "/api/reports/{report_id}/sign": {"post": _report_op(
        "sign the draft at `revision`: final, amended or corrected; written and fsync'd before "
        "the answer", "SignDraft", params=[_REPORT_ID])},
    "/api/reports/{report_id}/amend": {"post": _report_op(
        "open an amendment (a draft of the next version that supersedes the current one)",
        "Amend", params=[_REPORT_ID])},
    "/api/reports/{report_id}/retract": {"post": _report_op(
        "withdraw the report: a signed version entered-in-error", "Retract",
        params=[_REPORT_ID])},
    "/api/reports/{report_id}/document": {"get": _report_op(
        "a signed version as the printable page's document (client_web/print.html)",
        params=[_REPORT_ID, _REPORT_VERSION, _REPORT_LANG, _REPORT_GAIN])},
    "/api/reports/{report_id}/pdf": {"get": _report_op(
        "a signed version as PDF (Chinese text embedded, key images, verification code)",
        content_type="application/pdf",
        params=[_REPORT_ID, _REPORT_VERSION, _REPORT_LANG, _REPORT_GAIN])},
    "/api/reports/{report_id}/fhir": {"get": _report_op(
        "a signed version as a FHIR R4 DiagnosticReport", content_type="application/fhir+json",
        params=[_REPORT_ID, _REPORT_VERSION])},
    "/api/verify/{code}": {"get": _report_op(
        "public, rate-limited: is the report with this code authentic and current (signer, "
        "time, version, superseded) — no patient data", params=[_CODE], public=True)},
    "/verify/{code}": {"get": _report_op(
        "the same as a page for people holding the paper", content_type="text/html",
        params=[_CODE], public=True)},
}
PATHS.update(_REPORT_PATHS)


def _marks_op(summary: str, schema: str | None = None, status: str = "200",
              params: list[dict[str, Any]] | None = None) -> Operation:
    op: Operation = {
        "summary": summary, "tags": ["annotations"], "parameters": params or [STUDY],
        "responses": {status: {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object"}}}}, **_ERRORS},
    }
    if schema:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return op


def _mark_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 16}, "description": "the mark's id"}


# Annotations, measurements and key images (server/api/annotations.py): everyone who may see the
# study sees them; only the author removes one. Every read and write audited.
_MARKS_PATHS: dict[str, dict[str, Operation]] = {
    "/api/studies/{study}/annotations": {
        "get": _marks_op("the study's annotations with their measurements (one image with "
                         "?instance=UID)",
                         params=[STUDY, _query("instance", "SOPInstanceUID")]),
        "post": _marks_op("add an annotation; the server measures it from the stored pixels "
                          "(mm from Pixel/Imager Pixel Spacing, ROI area and mean/SD/min/max in "
                          "modality units)", "AnnotationCreate", "201"),
    },
    "/api/studies/{study}/annotations/{annotation_id}": {"delete": _marks_op(
        "remove one's own annotation (undo)", params=[STUDY, _mark_id("annotation_id")])},
    "/api/studies/{study}/key-images": {
        "get": _marks_op("the study's key images (of one room with ?room_id=)",
                         params=[STUDY, _query("room_id", "a room's id")]),
        "post": _marks_op("mark a key image (201; 200 when that frame is already marked in "
                          "that room)", "KeyImageCreate", "201"),
    },
    "/api/studies/{study}/key-images/{key_image_id}": {"delete": _marks_op(
        "remove one's own key image", params=[STUDY, _mark_id("key_image_id")])},
    "/api/studies/{study}/measurement-report": {"post": _marks_op(
        "store the study's annotations (or one room's) into the study as a DICOM SR "
        "Measurement Report (TID 1500, tracking identifiers OHIF reads)", "ExportRequest",
        "201")},
    "/api/studies/{study}/key-object-selection": {"post": _marks_op(
        "store the study's key images (or one room's) into the study as a DICOM Key Object "
        "Selection document (Of Interest, 113000 DCM)", "ExportRequest", "201")},
}
PATHS.update(_MARKS_PATHS)


def _component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """JSON schemas of request models, their nested models lifted beside them (a `$ref` in a
    component resolves from the document's root, not from a `$defs` inside it)."""
    out: dict[str, Any] = {}
    for m in models:
        schema = m.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[m.__name__] = schema
    return out


def document(public_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; `servers` is HUIZHEN_PUBLIC_URL when set, else relative."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Huizhen",
            "version": "1",
            "description": "Tele-consultation and tele-imaging: sign-in, kiosk uploads and "
            "DICOMweb (PS3.18). Errors are JSON {error: {code, message}}; see docs/api.md.",
        },
        "servers": [{"url": (public_url or "").rstrip("/") or "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {
                "Error": _ERROR,
                "LoginRequest": LoginRequest.model_json_schema(),
                "PasswordChange": PasswordChange.model_json_schema(),
                **{m.__name__: m.model_json_schema() for m in (
                    ClinicCreate, DepartmentCreate, UserCreate, PasswordReset, DeviceCreate,
                    DepartmentHead)},
                **{m.__name__: m.model_json_schema() for m in (
                    ReadingRequestBody, ClaimTokenBody, CompleteBody, ReassignBody,
                    CancelBody, AlertRaise, AlertAcknowledge, AlertHandled)},
                "BreakGlassRequest": BreakGlassRequest.model_json_schema(),
                **{m.__name__: m.model_json_schema() for m in (
                    ReferralCreate, ReferralAction, ReferralRouteChange)},
                "MarkRead": MarkRead.model_json_schema(),
                **{m.__name__: m.model_json_schema() for m in (
                    CreateReport, SaveDraft, SignDraft, Amend, Retract)},
                **_component_schemas(MdtCreate, MdtChange, ConflictQuery, CancelRequest,
                                     ConclusionIn, ProposalCreate),
                **_component_schemas(AnnotationCreate, KeyImageCreate, ExportRequest),
            },
            "responses": {"Error": {"description": "an error", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    return web.json_response(document(settings.public_url))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)

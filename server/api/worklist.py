"""/api/worklist: reading requests (work items) — send, list, claim, release, renew, reassign,
cancel, complete. Thin: server/clinical/worklist.py holds the rules, access.py decides."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.clinical.worklist import MAX_LIST, STATE_FILTERS, ListFilter, ReadingRequest
from server.errors import InvalidParameter
from server.params import parse_int
from server.store.worklist import Priority, WorkItem

_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# A claim token is a Transaction UID (2.25.<digits>); hex ones were issued before it was.
_TOKEN = Annotated[str, Field(min_length=1, max_length=64,
                              pattern=r"^([0-9a-f]{1,64}|2\.25\.(0|[1-9][0-9]{0,38}))$")]


class ReadingRequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    study_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")
    question: str = Field(min_length=1, max_length=2000)
    priority: Priority = Priority.ROUTINE
    department: str = Field(pattern=_ID)


class ClaimTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim_token: _TOKEN


class CompleteBody(ClaimTokenBody):
    report_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9._-]*$")


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=_ID)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


def _item_id(request: web.Request) -> str:
    value = request.match_info["item_id"]
    if len(value) != 16 or not all(c in "0123456789abcdef" for c in value):
        raise InvalidParameter("a reading request id is 16 hex digits")
    return value


def _answer(item: WorkItem, viewer: str, status: int = 200) -> web.Response:
    return web.json_response({"item": item.public(viewer)}, status=status)


async def create(request: web.Request) -> web.Response:
    body = await read_json(request, ReadingRequestBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].request(
        who, ReadingRequest(body.study_uid, body.question.strip(), body.priority,
                            body.department), request.remote)
    return _answer(item, who.username, 201)


async def listing(request: web.Request) -> web.Response:
    q = request.query
    state = q.get("state", "open")
    if state not in STATE_FILTERS:
        raise InvalidParameter(f"state is one of {', '.join(STATE_FILTERS)}")
    priority = q.get("priority") or None
    if priority is not None and priority not in {p.value for p in Priority}:
        raise InvalidParameter("priority is routine, urgent or emergency")
    for name in ("department", "clinic"):
        value = q.get(name)
        if value is not None and value != "" and not _valid_id(value):
            raise InvalidParameter(f"{name} is an id of a-z, 0-9, '.', '_' or '-'")
    modality = q.get("modality") or None
    if modality is not None and not (modality.isascii() and modality.isalnum()
                                     and len(modality) <= 16):
        raise InvalidParameter("modality is a DICOM modality code such as ECG or CT")
    flt = ListFilter(
        department=q.get("department") or None, state=state,
        priority=Priority(priority) if priority else None, clinic=q.get("clinic") or None,
        mine=q.get("mine") in ("1", "true"), modality=modality.upper() if modality else None,
        limit=parse_int(q.get("limit", "200"), "limit", minimum=1, maximum=MAX_LIST))
    who = principal(request)
    return web.json_response(
        await request.app[appkeys.WORKLIST].listing(who, flt, request.remote))


async def get_item(request: web.Request) -> web.Response:
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].get(who, _item_id(request), request.remote)
    return _answer(item, who.username)


async def claim(request: web.Request) -> web.Response:
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].claim(who, _item_id(request), request.remote)
    return _answer(item, who.username)


async def release(request: web.Request) -> web.Response:
    body = await read_json(request, ClaimTokenBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].release(who, _item_id(request),
                                                       body.claim_token, request.remote)
    return _answer(item, who.username)


async def renew(request: web.Request) -> web.Response:
    body = await read_json(request, ClaimTokenBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].renew(who, _item_id(request), body.claim_token)
    return _answer(item, who.username)


async def reassign(request: web.Request) -> web.Response:
    body = await read_json(request, ReassignBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].reassign(who, _item_id(request), body.to,
                                                        request.remote)
    return _answer(item, who.username)


async def cancel(request: web.Request) -> web.Response:
    body = await read_json(request, CancelBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].cancel(who, _item_id(request),
                                                      body.reason.strip(), request.remote)
    return _answer(item, who.username)


async def complete(request: web.Request) -> web.Response:
    body = await read_json(request, CompleteBody)
    who = principal(request)
    item = await request.app[appkeys.WORKLIST].complete_with_token(
        who, _item_id(request), body.claim_token, body.report_id, request.remote)
    return _answer(item, who.username)


def _valid_id(value: str) -> bool:
    return re.fullmatch(_ID, value) is not None


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/worklist", listing)
    r.add_post("/api/worklist", create)
    r.add_get("/api/worklist/{item_id}", get_item)
    r.add_post("/api/worklist/{item_id}/claim", claim)
    r.add_post("/api/worklist/{item_id}/release", release)
    r.add_post("/api/worklist/{item_id}/renew", renew)
    r.add_post("/api/worklist/{item_id}/reassign", reassign)
    r.add_post("/api/worklist/{item_id}/cancel", cancel)
    r.add_post("/api/worklist/{item_id}/complete", complete)

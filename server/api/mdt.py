"""/api/mdt/...: MDT sessions, proposals and calendars over HTTP (thin: server/mdt/ does the
work, server/auth/access.py decides, every view of a session or a proposal is audited).

The calendar feed `/calendar/{token}.ics` is public — calendar apps send no bearer token — and
the token in its path is the credential (256 bits, rotatable); it lists no patient.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.dicomweb.resources import audit
from server.documents import DocumentError, render_pdf_async
from server.errors import InvalidParameter
from server.mdt.models import (
    CancelRequest,
    ConclusionIn,
    ConflictQuery,
    MdtChange,
    MdtCreate,
    ProposalCreate,
)
from server.mdt.service import MdtService
from server.params import parse_int

ID = "{mdt:[0-9a-f]{16}}"
PROPOSAL = "{proposal:[0-9a-f]{16}}"
CASE = "{case:[0-9a-f]{16}}"
MAX_LIMIT = 100
_ICS = "text/calendar"


def _service(request: web.Request) -> MdtService:
    return request.app[appkeys.MDT]


def _limit(request: web.Request, default: int = 20) -> int:
    return parse_int(request.query.get("limit", str(default)), "limit", minimum=1,
                     maximum=MAX_LIMIT)


def _text(request: web.Request, name: str, limit: int = 200) -> str:
    value = request.query.get(name, "")
    if len(value) > limit:
        raise InvalidParameter(f"{name} is at most {limit} characters")
    return value


async def list_mdts(request: web.Request) -> web.Response:
    scope = request.query.get("scope", "upcoming")
    if scope not in ("upcoming", "past"):
        raise InvalidParameter("scope is 'upcoming' or 'past'")
    offset = parse_int(request.query.get("offset", "0"), "offset", maximum=100_000)
    page = await _service(request).list(principal(request), scope=scope,
                                        limit=_limit(request), offset=offset)
    await audit(request, "mdt.list", scope=scope, count=len(page["mdts"]), offset=offset)
    return web.json_response(page)


async def create_mdt(request: web.Request) -> web.Response:
    body = await read_json(request, MdtCreate)
    service = _service(request)
    session, conflicts = await service.create(principal(request), body)
    await audit(request, "mdt.schedule", mdt=session.id, cases=len(session.cases))
    view = await service.view(principal(request), session)
    return web.json_response({**view, "conflicts": conflicts}, status=201)


async def get_mdt(request: web.Request) -> web.Response:
    service = _service(request)
    session = await service.get(principal(request), request.match_info["mdt"])
    await audit(request, "mdt.view", mdt=session.id)
    return web.json_response(await service.view(principal(request), session))


async def change_mdt(request: web.Request) -> web.Response:
    body = await read_json(request, MdtChange)
    service = _service(request)
    session, conflicts = await service.update(principal(request), request.match_info["mdt"],
                                              body)
    await audit(request, "mdt.change", mdt=session.id, sequence=session.sequence)
    view = await service.view(principal(request), session)
    return web.json_response({**view, "conflicts": conflicts})


async def cancel_mdt(request: web.Request) -> web.Response:
    body = await read_json(request, CancelRequest)
    service = _service(request)
    session = await service.cancel(principal(request), request.match_info["mdt"], body.reason)
    await audit(request, "mdt.cancel", mdt=session.id)
    return web.json_response(await service.view(principal(request), session))


async def open_mdt(request: web.Request) -> web.Response:
    service = _service(request)
    session = await service.open(principal(request), request.match_info["mdt"])
    await audit(request, "mdt.open", mdt=session.id)
    return web.json_response(await service.view(principal(request), session))


async def conclude_mdt(request: web.Request) -> web.Response:
    service = _service(request)
    session = await service.conclude(principal(request), request.match_info["mdt"])
    await audit(request, "mdt.conclude", mdt=session.id, attendees=len(session.attendees))
    return web.json_response(await service.view(principal(request), session))


async def record_conclusion(request: web.Request) -> web.Response:
    body = await read_json(request, ConclusionIn)
    service = _service(request)
    session, case = await service.record_conclusion(
        principal(request), request.match_info["mdt"], request.match_info["case"], body)
    await audit(request, "mdt.conclusion", mdt=session.id, case=case.case_id,
                case_clinic=case.clinic)
    return web.json_response(await service.view(principal(request), session))


async def session_ics(request: web.Request) -> web.Response:
    mdt_id = request.match_info["mdt"]
    data = await _service(request).session_ics(principal(request), mdt_id)
    await audit(request, "mdt.calendar", mdt=mdt_id)
    return web.Response(body=data, content_type=_ICS, charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="mdt-{mdt_id}.ics"',
        "Cache-Control": "no-store"})


def _lang(request: web.Request) -> str:
    lang = request.query.get("lang", "en")
    if lang not in ("en", "zh"):
        raise InvalidParameter("lang is en or zh")
    return lang


async def summary_document(request: web.Request) -> web.Response:
    """The printable page's JSON (client_web/print.html?src=this path)."""
    mdt_id = request.match_info["mdt"]
    doc = await _service(request).summary(principal(request), mdt_id, _lang(request))
    await audit(request, "mdt.summary", mdt=mdt_id)
    return web.json_response(doc.to_json(), headers={"Cache-Control": "no-store"})


async def summary_pdf(request: web.Request) -> web.Response:
    mdt_id = request.match_info["mdt"]
    doc = await _service(request).summary(principal(request), mdt_id, _lang(request))
    try:
        pdf = await render_pdf_async(doc, request.app[appkeys.EXECUTOR])
    except DocumentError as exc:
        raise InvalidParameter(f"the PDF cannot be made: {exc}") from exc
    await audit(request, "mdt.summary.pdf", mdt=mdt_id)
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="mdt-{mdt_id}-summary.pdf"',
        "Cache-Control": "no-store"})


async def directory(request: web.Request) -> web.Response:
    return web.json_response(await _service(request).directory(principal(request)))


async def conflicts(request: web.Request) -> web.Response:
    body = await read_json(request, ConflictQuery)
    found = await _service(request).conflicts(principal(request), body)
    return web.json_response({"conflicts": found})


async def list_proposals(request: web.Request) -> web.Response:
    state = request.query.get("state", "proposed")
    if state not in ("proposed", "scheduled", "withdrawn", "all"):
        raise InvalidParameter("state is proposed, scheduled, withdrawn or all")
    found = await _service(request).proposals(
        principal(request), q=_text(request, "q"), state=state,
        department=_text(request, "department", 64), limit=_limit(request, 50))
    await audit(request, "mdt.proposals.list", count=len(found), state=state)
    return web.json_response({"proposals": [p.public() for p in found]})


async def propose(request: web.Request) -> web.Response:
    body = await read_json(request, ProposalCreate)
    proposal = await _service(request).propose(principal(request), body)
    await audit(request, "mdt.propose", proposal=proposal.id, study_clinic=proposal.clinic,
                studies=",".join(proposal.study_uids))
    return web.json_response({"proposal": proposal.public()}, status=201)


async def withdraw_proposal(request: web.Request) -> web.Response:
    proposal = await _service(request).withdraw(principal(request),
                                                request.match_info["proposal"])
    await audit(request, "mdt.proposal.withdraw", proposal=proposal.id)
    return web.json_response({"proposal": proposal.public()})


async def _feed_answer(request: web.Request, rotate: bool) -> web.Response:
    path = await _service(request).feed_path(principal(request), rotate=rotate)
    base = (request.app[appkeys.SETTINGS].public_url or "").rstrip("/")
    if not base:
        base = f"{request.scheme}://{request.host}"
    if rotate:
        await audit(request, "mdt.calendar.rotate")
    return web.json_response({"path": path, "url": base + path})


async def my_calendar(request: web.Request) -> web.Response:
    return await _feed_answer(request, rotate=False)


async def rotate_calendar(request: web.Request) -> web.Response:
    return await _feed_answer(request, rotate=True)


async def calendar_feed(request: web.Request) -> web.Response:
    """Public: the token is the credential. Read by calendar apps; every fetch is audited under
    the feed's owner (it lists their meetings, no patients)."""
    username, data = await _service(request).feed(request.match_info["token"])
    await request.app[appkeys.STORE].audit.record(
        action="mdt.feed", user=username, role="", clinic=None, remote=request.remote)
    return web.Response(body=data, content_type=_ICS, charset="utf-8",
                        headers={"Cache-Control": "private, max-age=60"})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/mdt", list_mdts)
    r.add_post("/api/mdt", create_mdt)
    r.add_get("/api/mdt/directory", directory)
    r.add_post("/api/mdt/conflicts", conflicts)
    r.add_get("/api/mdt/proposals", list_proposals)
    r.add_post("/api/mdt/proposals", propose)
    r.add_post(f"/api/mdt/proposals/{PROPOSAL}/withdraw", withdraw_proposal)
    r.add_get("/api/mdt/calendar", my_calendar)
    r.add_post("/api/mdt/calendar/rotate", rotate_calendar)
    r.add_get(f"/api/mdt/{ID}.ics", session_ics)
    r.add_get(f"/api/mdt/{ID}/summary", summary_document)
    r.add_get(f"/api/mdt/{ID}/summary.pdf", summary_pdf)
    r.add_get(f"/api/mdt/{ID}", get_mdt)
    r.add_patch(f"/api/mdt/{ID}", change_mdt)
    r.add_post(f"/api/mdt/{ID}/cancel", cancel_mdt)
    r.add_post(f"/api/mdt/{ID}/open", open_mdt)
    r.add_post(f"/api/mdt/{ID}/conclude", conclude_mdt)
    r.add_put(f"/api/mdt/{ID}/cases/{CASE}/conclusion", record_conclusion)
    r.add_get("/calendar/{token}.ics", calendar_feed)


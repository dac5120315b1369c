"""GET /api/consults: consult history, newest first, paged (who sees what: auth/access.py)."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb.resources import audit
from server.params import parse_int

MAX_LIMIT = 100


async def consults(request: web.Request) -> web.Response:
    scope = access.consult_history_scope(principal(request))
    limit = parse_int(request.query.get("limit", "20"), "limit", minimum=1, maximum=MAX_LIMIT)
    offset = parse_int(request.query.get("offset", "0"), "offset", maximum=100_000)
    page = await request.app[appkeys.REALTIME].consults.history(scope, limit, offset)
    # Patients' names are on this page: who looked is audited like any other read.
    await audit(request, "consults.list", count=len(page["consults"]), offset=offset)
    return web.json_response(page)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/consults", consults)

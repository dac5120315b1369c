"""GET /api/departments: the departments a kiosk can call, with how many experts are online."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth import access
from server.auth.middleware import principal


async def departments(request: web.Request) -> web.Response:
    access.require_directory_reader(principal(request))
    listing = await request.app[appkeys.REALTIME].consults.departments()
    return web.json_response({"departments": listing})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/departments", departments)

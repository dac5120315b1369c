"""The web apps in client_web/, served as plain files under /ui/ (no build step)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

CLIENT_WEB = Path(__file__).resolve().parents[2] / "client_web"


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CLIENT_WEB / "index.html")


def setup(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/ui/", index)
    if CLIENT_WEB.is_dir():
        app.router.add_static("/ui/", CLIENT_WEB, follow_symlinks=False, append_version=False)

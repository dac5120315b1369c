"""The web apps in client_web/, served as plain files under /ui/ (no build step)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from aiohttp import web

CLIENT_WEB = Path(__file__).resolve().parents[2] / "client_web"
NOT_FOUND_PAGE = CLIENT_WEB / "404.html"


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CLIENT_WEB / "index.html")


@cache
def _not_found_body() -> bytes:
    return NOT_FOUND_PAGE.read_bytes()  # read once: a shipped file, changed only by a deploy


def _not_found_page() -> web.Response:
    # A browser shows this page; the static handler's bare 404 made it download an empty file.
    return web.Response(body=_not_found_body(), status=404, content_type="text/html",
                        charset="utf-8")


@web.middleware
async def ui_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown /ui/ paths (and directories, which are not pages) get the 404 page; everything
    else, /api/ and /dicomweb/ included, keeps its JSON errors."""
    if not request.path.startswith("/ui/"):
        return await handler(request)
    filename = request.match_info.get("filename")
    # The static handler finds a missing file only when it sends it (an empty 404 by then).
    # One stat of a small local directory; the handler still does its own traversal checks.
    if filename is not None and not (CLIENT_WEB / filename).is_file():
        return _not_found_page()
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPForbidden):
        return _not_found_page()


def setup(app: web.Application) -> None:
    app.router.add_get("/", root)
    app.router.add_get("/ui/", index)
    if CLIENT_WEB.is_dir():
        app.router.add_static("/ui/", CLIENT_WEB, follow_symlinks=False, append_version=False)
    # Innermost (after the error and auth middlewares): it sees the static handler's answer.
    app.middlewares.append(ui_not_found)

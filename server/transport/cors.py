"""CORS for DICOMweb, so a viewer served from another origin (OHIF) can use it with a bearer token.

Only origins listed in HUIZHEN_CORS_ORIGINS are allowed (default: none, and then no CORS header
is ever sent). A preflight is answered here, before authentication: browsers send it without
the Authorization header. No credentials mode: the token travels in a header, never a cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server import appkeys

PREFIX = "/dicomweb/"
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Accept, Content-Type"
EXPOSED_HEADERS = "Content-Location, Content-Type, Warning, X-Window"
MAX_AGE_S = "600"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None or not request.path.startswith(PREFIX):
        return None
    allowed = request.app[appkeys.SETTINGS].cors_origins
    return origin if origin in allowed else None


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        origin = _allowed_origin(request)
        if origin is None:
            # No CORS headers: the browser refuses the cross-origin request.
            return web.json_response(
                {"error": {"code": "forbidden", "message": "this origin may not use the API"}},
                status=403,
                headers={"Vary": "Origin"},
            )
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": MAX_AGE_S,
                "Vary": "Origin",
            },
        )
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response to an allowed origin, errors included (so the viewer can read them)."""
    if response.headers.get("Access-Control-Allow-Origin"):
        return
    origin = _allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    vary = response.headers.getall("Vary", [])
    if request.path.startswith(PREFIX) and "Origin" in request.headers and "Origin" not in vary:
        response.headers.add("Vary", "Origin")


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_cors_headers)

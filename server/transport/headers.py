"""Security headers on every response (pages, API, DICOMweb, errors), and no version on `Server`.

The pages load only same-origin ES modules and stylesheets, draw rendered frames from `blob:`
URLs, play camera streams (`mediastream:`/`blob:`), and open their WebSocket on the same origin
(CSP 3 `'self'` matches ws:/wss: of the page's own origin). Nothing inline is allowed.
"""

from __future__ import annotations

import logging

from aiohttp import web, web_protocol, web_response
from aiohttp.http_exceptions import HttpProcessingError

from server.errors import unparsable_request
from server.log import event
from server.log_throttle import LogThrottle
from server.transport.proxies import is_secure

log = logging.getLogger(__name__)

SERVER_NAME = "Huizhen"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

_ALWAYS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Older browsers that ignore frame-ancestors.
    "X-Frame-Options": "DENY",
    # URLs carry study UIDs: never hand them to another site.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}
# Two years, as the HSTS preload list asks; only sent on a secure request (RFC 6797 §7.2).
HSTS = "max-age=63072000; includeSubDomains"

# aiohttp writes `Server: Python/3.x aiohttp/3.x` with setdefault, also on the responses its
# protocol layer makes for unparsable requests (which never reach on_response_prepare).
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]

# Requests the parser refuses never reach the app: aiohttp answered them in text/plain echoing
# the client's bytes, without the headers above, and logged each with a stack trace at ERROR.
# Its protocol layer has no hook for that answer, so its error handler is wrapped here.
_PROTOCOL_LOG = LogThrottle()
_aiohttp_handle_error = web_protocol.RequestHandler.handle_error


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
        return _aiohttp_handle_error(self, request, status, exc, message)
    suppressed = _PROTOCOL_LOG.allow(type(exc).__name__)
    if suppressed is not None:
        event(log, "unparsable_request", logging.WARNING, remote=request.remote,
              error=type(exc).__name__, suppressed=suppressed)
    response = unparsable_request(exc)
    response.headers.update(_ALWAYS)
    response.force_close()
    return response


web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    for name, value in _ALWAYS.items():
        headers.setdefault(name, value)
    headers["Server"] = SERVER_NAME
    if is_secure(request):
        headers["Strict-Transport-Security"] = HSTS


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)

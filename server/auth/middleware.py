"""Authenticate every request except the few public routes; the principal lands on the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.auth.principal import Principal
from server.auth.sessions import SessionGuard
from server.auth.tokens import TokenService
from server.errors import Unauthenticated

PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
TOKENS_KEY: web.AppKey[TokenService] = web.AppKey("tokens", TokenService)
SESSIONS_KEY: web.AppKey[SessionGuard] = web.AppKey("sessions", SessionGuard)

# /api/ws authenticates inside the handler: browsers cannot send headers on a WebSocket.
_PUBLIC_EXACT = {
    "/", "/healthz", "/api/auth/login", "/favicon.ico", "/api/ws", "/api/openapi.json"
}
# /verify/{code}: anyone holding a printed report checks it (rate-limited, no patient data).
# /calendar/{token}.ics: calendar apps send no header; the unguessable token is the credential.
_PUBLIC_PREFIXES = ("/ui/", "/verify/", "/api/verify/", "/calendar/")


def is_public(path: str) -> bool:
    return path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("this route needs an 'Authorization: Bearer <token>' header")
    return token.strip()


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not is_public(request.path):
        who = request.app[TOKENS_KEY].verify(bearer_token(request))
        await request.app[SESSIONS_KEY].check(who)  # cached: a dict lookup on the hot path
        request[PRINCIPAL_KEY] = who
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]

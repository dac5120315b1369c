"""GET /healthz: no token; 200 while Redis answers, 503 otherwise (for load balancers)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from redis.exceptions import RedisError

from server import appkeys
from server.errors import RETRY_AFTER_S


async def healthz(request: web.Request) -> web.Response:
    store = request.app[appkeys.STORE]
    try:
        async with asyncio.timeout(2):
            await store.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        return web.json_response(
            {"status": "unavailable", "redis": "unreachable", "detail": type(exc).__name__},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return web.json_response({"status": "ok", "redis": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)

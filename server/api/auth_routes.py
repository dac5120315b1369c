"""POST /api/auth/login (password, optionally on a clinic kiosk) and GET /api/me."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.auth.passwords import verify_password
from server.auth.principal import Principal
from server.errors import Forbidden, InvalidCredentials, TooManyRequests
from server.log import event
from server.store.directory import Role

log = logging.getLogger(__name__)

MAX_FAILURES = 10
FAILURE_WINDOW_S = 15 * 60


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    # A clinic kiosk sends its device token too, binding the session to that kiosk's clinic.
    device_token: str | None = Field(default=None, max_length=200)


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginRequest)
    store = request.app[appkeys.STORE]
    directory = store.directory
    if await directory.login_failures(body.username) >= MAX_FAILURES:
        raise TooManyRequests("too many failed sign-ins for this account: wait 15 minutes")
    user = await directory.get_user(body.username)
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(
        request.app[appkeys.EXECUTOR],
        verify_password,
        user.password_hash if user else None,
        body.password,
    )
    if not ok or user is None or user.disabled:
        await directory.note_login_failure(body.username, FAILURE_WINDOW_S)
        event(log, "login_failed", username=body.username, remote=request.remote)
        raise InvalidCredentials("wrong username or password")
    device_id = None
    if body.device_token:
        device = await directory.device_for_token(body.device_token)
        if device is None:
            raise InvalidCredentials("this kiosk's device token is not registered")
        if user.role is not Role.DOCTOR or user.clinic != device.clinic:
            raise Forbidden("this kiosk belongs to another clinic")
        device_id = device.id
    await directory.clear_login_failures(body.username)
    who = Principal(user.username, user.role, user.clinic, user.department, device_id)
    token, expires = request.app[appkeys.TOKENS].issue(who)
    event(log, "login_ok", username=user.username, role=user.role.value, device=device_id)
    return web.json_response({"token": token, "expires_at": expires, "user": user.public()})


async def me(request: web.Request) -> web.Response:
    who = principal(request)
    user = await request.app[appkeys.STORE].directory.get_user(who.username)
    if user is None or user.disabled:
        raise InvalidCredentials("this account no longer exists")
    return web.json_response({**user.public(), "device": who.device})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/login", login)
    app.router.add_get("/api/me", me)

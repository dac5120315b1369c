"""Sign-in and sessions: POST /api/auth/login (password, optionally on a clinic kiosk),
POST /api/auth/logout, POST /api/auth/password, GET /api/me.

Every attempt is counted before its password is checked (`server/store/login_limits.py`), and
every outcome is audited.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.api.security_audit import audit_principal, audit_security
from server.auth.middleware import principal
from server.auth.passwords import hash_password, verify_password
from server.auth.principal import Principal
from server.errors import (
    Forbidden,
    InvalidCredentials,
    InvalidParameter,
    TooManyRequests,
)
from server.log import event
from server.store.directory import Role, User
from server.store.login_limits import Verdict

log = logging.getLogger(__name__)

class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    # A clinic kiosk sends its device token too, binding the session to that kiosk's clinic.
    device_token: str | None = Field(default=None, max_length=200)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


def _locked(verdict: Verdict) -> TooManyRequests:
    minutes = (verdict.retry_after_s + 59) // 60
    return TooManyRequests(
        f"too many failed sign-ins: try again in {minutes} minute{'s' if minutes != 1 else ''}",
        retry_after_s=verdict.retry_after_s,
    )


async def _check_password(request: web.Request, user: User | None, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        request.app[appkeys.EXECUTOR], verify_password,
        user.password_hash if user else None, password,
    )


def _issue(request: web.Request, user: User, device_id: str | None) -> tuple[str, int]:
    who = Principal(user.username, user.role, user.clinic, user.department, device_id)
    return request.app[appkeys.TOKENS].issue(who, generation=user.session_generation)


async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginRequest)
    store = request.app[appkeys.STORE]
    user = await store.directory.get_user(body.username)
    # The kiosk, when a valid device token came: every outcome's audit names the machine.
    device = None
    if body.device_token:
        device = await store.directory.device_for_token(body.device_token)
    kiosk = device.id if device is not None else None
    # Counted before the password is checked; unknown names count only per address.
    verdict = await store.login_limits.attempt(user.username if user else None, request.remote)
    if not verdict.allowed:
        if verdict.newly_locked:
            await audit_security(request, "auth.login_locked", user=body.username,
                                 role=user.role.value if user else "", device=kiosk,
                                 retry_after_s=verdict.retry_after_s)
        event(log, "login_locked", username=body.username, remote=request.remote)
        raise _locked(verdict)
    ok = await _check_password(request, user, body.password)
    if not ok or user is None or user.disabled:
        reason = "unknown_user" if user is None else "disabled" if ok else "wrong_password"
        await audit_security(request, "auth.login_failed", user=body.username,
                             role=user.role.value if user else "",
                             clinic=user.clinic if user else None, device=kiosk,
                             reason=reason)
        event(log, "login_failed", username=body.username, remote=request.remote, reason=reason)
        raise InvalidCredentials("wrong username or password")
    device_id = None
    if body.device_token:
        if device is None:
            await audit_security(request, "auth.login_failed", user=user.username,
                                 role=user.role.value, clinic=user.clinic, reason="device_token")
            raise InvalidCredentials("this kiosk's device token is not registered or revoked")
        if user.role is not Role.DOCTOR or user.clinic != device.clinic:
            await audit_security(request, "auth.login_failed", user=user.username,
                                 role=user.role.value, clinic=user.clinic, device=device.id,
                                 reason="device_clinic")
            raise Forbidden("this kiosk belongs to another clinic")
        device_id = device.id
    await store.login_limits.succeeded(user.username, request.remote)
    token, expires = _issue(request, user, device_id)
    await audit_security(request, "auth.login", user=user.username, role=user.role.value,
                         clinic=user.clinic, device=device_id)
    event(log, "login_ok", username=user.username, role=user.role.value, device=device_id)
    return web.json_response({"token": token, "expires_at": expires, "user": user.public()})


async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    await request.app[appkeys.SESSIONS].end(who)
    await audit_principal(request, who, "auth.logout")
    event(log, "logout", username=who.username)
    return web.json_response({"signed_out": True})


async def change_password(request: web.Request) -> web.Response:
    """Change one's own password; every older session ends, the caller gets a fresh token."""
    who = principal(request)
    body = await read_json(request, PasswordChange)
    store = request.app[appkeys.STORE]
    user = await store.directory.get_user(who.username)
    if user is None or user.disabled:
        raise InvalidCredentials("this account no longer exists")
    # A stolen token must not become an unlimited password oracle: same limits as sign-in.
    verdict = await store.login_limits.attempt(user.username, request.remote)
    if not verdict.allowed:
        raise _locked(verdict)
    if not await _check_password(request, user, body.old_password):
        await audit_principal(request, who, "auth.password_failed")
        raise InvalidCredentials("the current password is wrong")
    await store.login_limits.succeeded(user.username, request.remote)
    try:
        new_hash = await asyncio.get_running_loop().run_in_executor(
            request.app[appkeys.EXECUTOR], hash_password, body.new_password)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from exc
    generation = await store.directory.change_password(user.username, new_hash)
    request.app[appkeys.SESSIONS].forget_user(user.username)
    refreshed = User(**{**user.__dict__, "session_generation": generation})
    token, expires = _issue(request, refreshed, who.device)
    await audit_principal(request, who, "auth.password_changed")
    event(log, "password_changed", username=user.username)
    return web.json_response({"token": token, "expires_at": expires, "user": user.public()})


async def me(request: web.Request) -> web.Response:
    who = principal(request)
    user = await request.app[appkeys.STORE].directory.get_user(who.username)
    if user is None or user.disabled:
        raise InvalidCredentials("this account no longer exists")
    return web.json_response({**user.public(), "device": who.device})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_post("/api/auth/password", change_password)
    app.router.add_get("/api/me", me)

"""The admin API under /api/admin/: clinics, departments, users and kiosk devices — what the
`huizhen` operator commands do, for the admin page. Admin accounts only (`access.require_admin`);
no patient data is reachable from here. Every change is audited as `admin.*` with the admin's
"who, from where"."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.api.security_audit import audit_principal
from server.auth import access
from server.auth.middleware import principal
from server.auth.passwords import hash_password
from server.auth.principal import Principal
from server.errors import Conflict, InvalidParameter, NotFound
from server.store.directory import Role, User, check_id

_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class ClinicCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, pattern=_ID)


class DepartmentCreate(ClinicCreate):
    pass


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=_ID)
    role: Role
    password: str = Field(min_length=8, max_length=1024)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    clinic: str | None = Field(default=None, pattern=_ID)
    department: str | None = Field(default=None, pattern=_ID)


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=8, max_length=1024)


class DepartmentHead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(default="", pattern=r"^$|" + _ID)


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    clinic: str = Field(pattern=_ID)


def _admin(request: web.Request) -> Principal:
    who = principal(request)
    access.require_admin(who)
    return who


def _user_view(user: User) -> dict[str, Any]:
    return {**user.public(), "disabled": user.disabled}


def _path_id(request: web.Request, name: str, kind: str) -> str:
    return check_id(kind, request.match_info[name])


async def _hash(request: web.Request, password: str) -> str:
    try:
        return await asyncio.get_running_loop().run_in_executor(
            request.app[appkeys.EXECUTOR], hash_password, password)
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from exc


# clinics and departments ---------------------------------------------------------------------


async def list_clinics(request: web.Request) -> web.Response:
    _admin(request)
    clinics = await request.app[appkeys.STORE].directory.clinics()
    return web.json_response([{"id": c.id, "name": c.name} for c in clinics])


async def add_clinic(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await read_json(request, ClinicCreate)
    clinic = await request.app[appkeys.STORE].directory.add_clinic(body.name, body.id)
    await audit_principal(request, who, "admin.clinic.add", target=clinic.id)
    return web.json_response({"id": clinic.id, "name": clinic.name}, status=201)


async def list_departments(request: web.Request) -> web.Response:
    _admin(request)
    departments = await request.app[appkeys.STORE].directory.departments()
    return web.json_response([{"id": d.id, "name": d.name, "head": d.head}
                              for d in departments])


async def set_department_head(request: web.Request) -> web.Response:
    who = _admin(request)
    department = _path_id(request, "department_id", "department")
    body = await read_json(request, DepartmentHead)
    dept = await request.app[appkeys.STORE].directory.set_department_head(department,
                                                                          body.username)
    await audit_principal(request, who, "admin.department.head", target=dept.id, head=dept.head)
    return web.json_response({"id": dept.id, "name": dept.name, "head": dept.head})


async def add_department(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await read_json(request, DepartmentCreate)
    dept = await request.app[appkeys.STORE].directory.add_department(body.name, body.id)
    await audit_principal(request, who, "admin.department.add", target=dept.id)
    return web.json_response({"id": dept.id, "name": dept.name}, status=201)


# users ---------------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    _admin(request)
    users = await request.app[appkeys.STORE].directory.users()
    return web.json_response([_user_view(u) for u in users])


async def add_user(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await read_json(request, UserCreate)
    pw_hash = await _hash(request, body.password)
    user = await request.app[appkeys.STORE].directory.add_user(
        body.username, role=body.role, password_hash=pw_hash, display_name=body.display_name,
        clinic=body.clinic, department=body.department,
    )
    await audit_principal(request, who, "admin.user.add", target=user.username,
                          target_role=user.role.value)
    return web.json_response(_user_view(user), status=201)


async def _set_disabled(request: web.Request, disabled: bool) -> web.Response:
    who = _admin(request)
    username = _path_id(request, "username", "user")
    if disabled and username == who.username:
        raise Conflict("an admin cannot disable their own account (ask another admin)")
    user = await request.app[appkeys.STORE].directory.set_disabled(username, disabled)
    request.app[appkeys.SESSIONS].forget_user(username)
    action = "admin.user.disable" if disabled else "admin.user.enable"
    await audit_principal(request, who, action, target=username)
    return web.json_response(_user_view(user))


async def disable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, True)


async def enable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, False)


async def reset_password(request: web.Request) -> web.Response:
    who = _admin(request)
    username = _path_id(request, "username", "user")
    body = await read_json(request, PasswordReset)
    directory = request.app[appkeys.STORE].directory
    user = await directory.get_user(username)
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    await directory.change_password(username, await _hash(request, body.password))
    request.app[appkeys.SESSIONS].forget_user(username)
    await audit_principal(request, who, "admin.user.password", target=username)
    return web.json_response(_user_view(user))


# kiosk devices -------------------------------------------------------------------------------


async def list_devices(request: web.Request) -> web.Response:
    _admin(request)
    devices = await request.app[appkeys.STORE].directory.devices()
    return web.json_response([d.public() for d in devices])


async def add_device(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await read_json(request, DeviceCreate)
    device, token = await request.app[appkeys.STORE].directory.add_device(body.name, body.clinic)
    await audit_principal(request, who, "admin.device.add", target=device.id,
                          device_clinic=device.clinic)
    # The token is shown this once; only its SHA-256 is kept.
    return web.json_response({**device.public(), "token": token}, status=201)


async def revoke_device(request: web.Request) -> web.Response:
    who = _admin(request)
    device_id = request.match_info["device_id"]
    if not device_id.isascii() or not device_id.isalnum() or len(device_id) > 32:
        raise InvalidParameter("a kiosk id is up to 32 letters and digits")
    device = await request.app[appkeys.STORE].directory.revoke_device(device_id, by_name=False)
    request.app[appkeys.SESSIONS].forget_all()
    await audit_principal(request, who, "admin.device.revoke", target=device.id,
                          device_clinic=device.clinic)
    return web.json_response(device.public())


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/admin/clinics", list_clinics)
    r.add_post("/api/admin/clinics", add_clinic)
    r.add_get("/api/admin/departments", list_departments)
    r.add_post("/api/admin/departments", add_department)
    r.add_post("/api/admin/departments/{department_id}/head", set_department_head)
    r.add_get("/api/admin/users", list_users)
    r.add_post("/api/admin/users", add_user)
    r.add_post("/api/admin/users/{username}/disable", disable_user)
    r.add_post("/api/admin/users/{username}/enable", enable_user)
    r.add_post("/api/admin/users/{username}/password", reset_password)
    r.add_get("/api/admin/devices", list_devices)
    r.add_post("/api/admin/devices", add_device)
    r.add_post("/api/admin/devices/{device_id}/revoke", revoke_device)

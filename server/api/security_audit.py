"""Audit records of security events (sign-in, sessions, account and kiosk administration).

The same "who, from where" fields as patient-data reads (`server/dicomweb/resources.py`):
user, role, clinic, remote, device; then what happened.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.principal import Principal


async def audit_security(
    request: web.Request, action: str, *, user: str, role: str = "", clinic: str | None = None,
    device: str | None = None, **resource: object,
) -> None:
    await request.app[appkeys.STORE].audit.record(
        action=action, user=user, role=role, clinic=clinic, remote=request.remote, device=device,
        **resource,
    )


async def audit_principal(
    request: web.Request, who: Principal, action: str, **resource: object
) -> None:
    await audit_security(request, action, user=who.username, role=who.role.value,
                         clinic=who.clinic, device=who.device, **resource)

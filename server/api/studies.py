"""POST /api/studies/{study}/break-glass: an expert opens a study they hold no grant for.

The emergency path of the access policy (server/auth/access.py): the expert gives a reason, gets
a short grant (HUIZHEN_BREAK_GLASS_TTL_S), and the grant itself and every view under it are
audited with `break_glass=1` and the reason, so an auditor can review each one.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth import access
from server.auth.middleware import principal
from server.dicomweb.resources import audit, uid_param
from server.errors import Conflict, NotFound
from server.store.directory import Role


class BreakGlassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=access.MAX_REASON_CHARS * 4)
    # Only needed when clinics hold studies of one StudyInstanceUID (the answer lists them).
    clinic: str | None = Field(default=None, max_length=64)


async def break_glass(request: web.Request) -> web.Response:
    who = principal(request)
    access.require_role(who, Role.EXPERT)
    study_uid = uid_param(request, "study")
    body = await read_json(request, BreakGlassRequest)
    reason = access.break_glass_reason(who, body.reason)
    store = request.app[appkeys.STORE]
    holding = await store.studies.clinics_holding(study_uid)
    if body.clinic is not None:
        holding = [c for c in holding if c == body.clinic]
    if not holding:
        await audit(request, "break_glass.refused", study=study_uid, reason=reason,
                    why="no_study", break_glass=1)
        raise NotFound("no such study")
    if len(holding) > 1:
        await audit(request, "break_glass.refused", study=study_uid, reason=reason,
                    why="ambiguous", break_glass=1)
        raise Conflict("clinics hold studies of this StudyInstanceUID: name one in 'clinic'",
                       clinics=holding)
    grant = await store.grants.break_glass(who.username, holding[0], study_uid, reason)
    await audit(request, "break_glass.grant", study=study_uid, study_clinic=grant.clinic,
                grant=grant.ref, expires_at=f"{grant.expires_at:.0f}", reason=reason,
                break_glass=1)
    return web.json_response({
        "study_uid": study_uid, "clinic": grant.clinic, "kind": grant.kind, "ref": grant.ref,
        "expires_at": grant.expires_at,
    })


def setup(app: web.Application) -> None:
    app.router.add_post("/api/studies/{study}/break-glass", break_glass)

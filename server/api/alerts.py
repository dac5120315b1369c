"""/api/alerts: critical-value alerts — raise, acknowledge with a read-back, record the action
taken, the register (统一登记) with timelines, and its CSV export. Thin: the rules are in
server/clinical/alerts.py, the decisions in access.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth.middleware import principal
from server.clinical.alerts import STATES, RaiseRequest, RegisterFilter
from server.errors import InvalidParameter
from server.params import parse_int
from server.store.alerts import Alert, Tier

_REF = r"^$|^[A-Za-z0-9._-]{1,64}$"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class AlertRaise(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: Tier = Tier.CRITICAL
    finding: str = Field(min_length=1, max_length=1000)
    report_id: str = Field(default="", pattern=_REF)
    consult_id: str = Field(default="", pattern=_REF)
    item_id: str = Field(default="", pattern=_REF)


class AlertAcknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read_back: str = Field(min_length=1, max_length=1000)
    receiver_name: str = Field(default="", max_length=100)


class AlertHandled(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=2000)


def _alert_id(request: web.Request) -> str:
    value = request.match_info["alert_id"]
    if len(value) != 16 or not all(c in "0123456789abcdef" for c in value):
        raise InvalidParameter("an alert id is 16 hex digits")
    return value


def _answer(alert: Alert, status: int = 200) -> web.Response:
    return web.json_response({"alert": alert.public()}, status=status)


async def raise_alert(request: web.Request) -> web.Response:
    body = await read_json(request, AlertRaise)
    alert = await request.app[appkeys.ALERTS].raise_alert(
        principal(request), RaiseRequest(body.tier, body.finding.strip(), body.report_id,
                                         body.consult_id, body.item_id), request.remote)
    return _answer(alert, 201)


async def acknowledge(request: web.Request) -> web.Response:
    body = await read_json(request, AlertAcknowledge)
    alert = await request.app[appkeys.ALERTS].acknowledge(
        principal(request), _alert_id(request), body.read_back, body.receiver_name,
        request.remote)
    return _answer(alert)


async def handled(request: web.Request) -> web.Response:
    body = await read_json(request, AlertHandled)
    alert = await request.app[appkeys.ALERTS].handled(
        principal(request), _alert_id(request), body.action.strip(), request.remote)
    return _answer(alert)


async def get_alert(request: web.Request) -> web.Response:
    found = await request.app[appkeys.ALERTS].get(principal(request), _alert_id(request),
                                                  request.remote)
    return web.json_response({"alert": found})


def _day(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise InvalidParameter(f"{name} is a date YYYY-MM-DD")
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidParameter(f"{name} is not a date: {text}") from exc


def _filter(request: web.Request) -> RegisterFilter:
    q = request.query
    state = q.get("state") or "all"
    if state not in STATES:
        raise InvalidParameter(f"state is one of {', '.join(STATES)}")
    tier = q.get("tier") or None
    if tier is not None and tier not in {t.value for t in Tier}:
        raise InvalidParameter("tier is critical or significant")
    for name in ("clinic", "department"):
        value = q.get(name)
        if value and not _ID.fullmatch(value):
            raise InvalidParameter(f"{name} is an id of a-z, 0-9, '.', '_' or '-'")
    start, end = _day(q.get("from"), "from"), _day(q.get("to"), "to")
    return RegisterFilter(
        clinic=q.get("clinic") or None, department=q.get("department") or None, state=state,
        tier=Tier(tier) if tier else None,
        since=start.timestamp() if start else 0.0,
        until=(end + timedelta(days=1)).timestamp() if end else float("inf"),
        limit=parse_int(q.get("limit", "500"), "limit", minimum=1, maximum=2000))


async def register(request: web.Request) -> web.Response:
    rows = await request.app[appkeys.ALERTS].register(principal(request), _filter(request),
                                                      request.remote)
    return web.json_response({"alerts": rows, "total": len(rows)})


async def register_csv(request: web.Request) -> web.Response:
    service = request.app[appkeys.ALERTS]
    rows = await service.register(principal(request), _filter(request), request.remote)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return web.Response(
        body=("\ufeff" + service.csv_of(rows)).encode(),  # BOM: Excel opens Chinese as UTF-8
        content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="critical-values-{stamp}.csv"'})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/alerts", register)
    r.add_post("/api/alerts", raise_alert)
    r.add_get("/api/alerts.csv", register_csv)
    r.add_get("/api/alerts/{alert_id}", get_alert)
    r.add_post("/api/alerts/{alert_id}/acknowledge", acknowledge)
    r.add_post("/api/alerts/{alert_id}/handled", handled)

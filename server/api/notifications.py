"""GET /api/notifications, POST /api/notifications/read: the caller's own inbox (the badge).

The page WebSocket pushes each new notification as it happens (docs/signaling.md); these routes
serve the list behind the badge and a page that was closed for a while.
"""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import appkeys
from server.api.json_body import read_json
from server.auth import access
from server.auth.middleware import principal
from server.errors import InvalidParameter
from server.params import parse_int

MAX_LIMIT = 200
_STREAM_ID = re.compile(r"^(0|[0-9]{1,19}-[0-9]{1,19})$")


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A notification id, or "+" for everything so far.
    up_to: Annotated[str, Field(max_length=39, pattern=r"^(\+|[0-9]{1,19}-[0-9]{1,19})$")]


async def notifications(request: web.Request) -> web.Response:
    owner = access.notification_inbox(principal(request))
    limit = parse_int(request.query.get("limit", "50"), "limit", minimum=1, maximum=MAX_LIMIT)
    after = request.query.get("after")
    inboxes = request.app[appkeys.STORE].notifications
    if after is None:
        items = await inboxes.latest(owner, limit)  # newest first: the badge's list
    else:
        if not _STREAM_ID.match(after):
            raise InvalidParameter("after: a notification id such as 1733100000000-0")
        items = await inboxes.since(owner, after, limit)  # oldest first: catching up
    unread, last_id = await inboxes.unread(owner)
    return web.json_response({"notifications": [n.public() for n in items],
                              "unread": unread, "last_id": last_id})


async def mark_read(request: web.Request) -> web.Response:
    owner = access.notification_inbox(principal(request))
    body = await read_json(request, MarkRead)
    unread = await request.app[appkeys.STORE].notifications.mark_read(owner, body.up_to)
    return web.json_response({"unread": unread})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/notifications", notifications)
    app.router.add_post("/api/notifications/read", mark_read)

"""GET /api/ws: the page WebSocket (kiosk, expert, coordinator) carrying consult events and room
signaling. Authenticated before anything else: an `Authorization: Bearer` header, or — since
browsers cannot set headers on a WebSocket — an `auth` message first, within a few seconds.
A malformed or forbidden message gets an `error` reply; the connection and everyone else go on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from aiohttp import WSMessage, WSMsgType, web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server import appkeys
from server.auth.middleware import bearer_token
from server.auth.principal import Principal
from server.errors import HuizhenError, InvalidMessage, TooManyRequests, Unauthenticated
from server.log import event
from server.log_throttle import REALTIME as LOG_THROTTLE
from server.realtime import messages as m
from server.realtime import outbound as out
from server.realtime.hub import Connection
from server.realtime.services import Realtime
from server.store import keys
from server.store.directory import Role

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 10.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FLOODING = 4429
CLOSE_TOO_MANY_CONNECTIONS = 4409


class MessageBudget:
    """Token bucket per connection: a page sends a few messages a second; a runaway or hostile
    client is answered with errors, then disconnected, without costing anyone else."""

    def __init__(self, rate: float = 20.0, burst: float = 60.0, max_refused: int = 200) -> None:
        self.rate, self.burst, self.max_refused = rate, burst, max_refused
        self.tokens = burst
        self.refused = 0
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.refused > self.max_refused


LIVE_RATE, LIVE_BURST = 100.0, 200.0
# `type` first, as every client writes it: the check is a prefix match, no JSON parse before the
# budget (a message whose type comes later simply counts against the general budget).
_LIVE_PREFIX = re.compile(r'\s*\{\s*"type"\s*:\s*"(?:view\.update|pointer)"')


def _is_live(raw: WSMessage) -> bool:
    return raw.type == WSMsgType.TEXT and _LIVE_PREFIX.match(raw.data, 0, 48) is not None


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> Principal | None:
    who = await _token_principal(request, ws)
    if who is not None:
        await request.app[appkeys.SESSIONS].check(who)  # a revoked session cannot connect
    return who


async def _token_principal(request: web.Request, ws: web.WebSocketResponse) -> Principal | None:
    tokens = request.app[appkeys.TOKENS]
    if "Authorization" in request.headers:
        return tokens.verify(bearer_token(request))
    try:
        first = await ws.receive(timeout=AUTH_TIMEOUT_S)
    except TimeoutError:
        raise Unauthenticated("send {\"type\": \"auth\", \"token\": …} first") from None
    if first.type != WSMsgType.TEXT:
        return None
    msg = m.parse(first.data)
    if not isinstance(msg, m.Auth):
        raise Unauthenticated("the first message must be auth")
    return tokens.verify(msg.token)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    services = request.app[appkeys.REALTIME]
    limits = services.limits
    if limits.unauthenticated >= limits.max_unauthenticated:
        # Refused before the upgrade: a flood of idle sockets costs one HTTP answer each.
        raise TooManyRequests("too many connections are waiting to authenticate; retry shortly")
    limits.unauthenticated += 1
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=m.MAX_MESSAGE_BYTES)
    try:
        await ws.prepare(request)
        principal = await _authenticate(request, ws)
    except HuizhenError as err:
        await ws.send_json(m.error(err.code, err.message))
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=err.code.encode())
        return ws
    finally:
        limits.unauthenticated -= 1
    if principal is None:
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=b"unauthenticated")
        return ws
    if not limits.acquire(principal.username):
        event(log, "ws_refused_too_many", logging.WARNING, user=principal.username,
              remote=request.remote, limit=limits.max_per_user)
        await ws.send_json(m.error(
            "too_many_connections",
            f"this account already has {limits.max_per_user} open connections; close a page"))
        await ws.close(code=CLOSE_TOO_MANY_CONNECTIONS, message=b"too many connections")
        return ws
    try:
        return await _serve(request, ws, services, principal)
    finally:
        limits.release(principal.username)


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, services: Realtime, principal: Principal
) -> web.WebSocketResponse:
    conn = Connection(ws, principal, request.remote)
    conn.start()
    try:
        if principal.role is Role.DOCTOR and principal.clinic:
            # Every page of the clinic's doctors: critical alerts and its reading requests.
            await services.hub.subscribe(conn, keys.channel_clinic(principal.clinic))
        # `ready` once subscribed, before what the page must know at once (ringing consults,
        # departments online, its own waiting consult): docs/signaling.md.
        await services.consults.on_connect(
            conn, out.Ready(user=principal.username, role=principal.role.value))
    except BaseException:
        await services.hub.drop(conn)
        await conn.stop()
        raise
    unread, last_id = await services.notifier.store.notifications.unread(principal.username)
    conn.send(out.NotificationsUnread(count=unread, last_id=last_id))
    await request.app[appkeys.ALERTS].on_connect(conn)  # open critical alerts ring at once
    event(log, "ws_connected", user=principal.username, remote=request.remote)
    budget = MessageBudget()
    # A presenter's view.update (at most one per animation frame) and pointer moves have a
    # budget of their own, so driving the shared view never starves the page's other messages.
    live_budget = MessageBudget(rate=LIVE_RATE, burst=LIVE_BURST)

    async def session_ended(err: HuizhenError) -> None:
        # Logout, password change, disable, kiosk revoked, or the token's own expiry.
        conn.send(m.error(err.code, err.message))
        await conn.stop()
        await ws.close(code=CLOSE_UNAUTHENTICATED, message=err.code.encode())
        event(log, "ws_session_ended", user=principal.username, code=err.code)

    watcher = asyncio.create_task(request.app[appkeys.SESSIONS].watch(principal, session_ended))
    try:
        async for raw in ws:
            bucket = live_budget if _is_live(raw) else budget
            if not bucket.take():
                if bucket.exhausted:
                    await conn.stop()  # what was already queued still goes out
                    await ws.close(code=CLOSE_FLOODING, message=b"too many messages")
                    break
                if bucket.refused % 50 == 1:  # one notice per burst, not one per message
                    conn.send(m.error("too_many_messages",
                                      f"slow down: over {bucket.rate:g} messages a second"))
                continue
            if raw.type == WSMsgType.TEXT:
                await _handle(services, conn, raw.data)
            elif raw.type == WSMsgType.BINARY:
                conn.send(m.error("invalid_message", "binary messages are not accepted"))
            elif raw.type == WSMsgType.ERROR:
                break
    finally:
        watcher.cancel()
        await services.rooms.disconnected(conn)
        services.live.disconnected(conn)
        await services.consults.disconnected(conn)
        await services.hub.drop(conn)
        await conn.stop()
        event(log, "ws_closed", user=principal.username, code=ws.close_code)
    return ws


async def _handle(services: Realtime, conn: Connection, text: str) -> None:
    ref = None
    try:
        msg = m.parse(text)
        ref = msg.id
        reply = await _dispatch(services, conn, msg)
        if reply is not None:
            conn.send(reply.model_copy(update={"ref": ref}) if ref else reply)
    except InvalidMessage as err:
        conn.send(m.error(err.code, err.message, err.details.get("ref") or ref))
    except HuizhenError as err:
        conn.send(m.error(err.code, err.message, ref, err.details))
    except (asyncio.CancelledError, GeneratorExit):
        raise
    except (RedisConnectionError, RedisTimeoutError):
        # Redis restarting (supervised) or unreachable: the page may retry; not a server bug.
        conn.send(m.error("service_unavailable",
                          "the database is unreachable for a moment; retry shortly", ref))
    except Exception:
        # A bug reachable by input must not become one stack trace per message.
        suppressed = LOG_THROTTLE.allow("ws_message_failed")
        if suppressed is not None:
            log.exception("ws_message_failed", extra={"fields": {"suppressed": suppressed}})
        conn.send(m.error("internal_error", "the server could not handle this message", ref))


async def _dispatch(services: Realtime, conn: Connection, msg: m.Inbound) -> out.Out | None:
    match msg:
        case m.Ping():
            await services.rooms.heartbeat(conn)
            return out.Pong()
        case m.Auth():
            return out.Error(code="invalid_message", message="already authenticated")
        case m.ConsultStart():
            consult = await services.consults.begin(conn, msg)
            return out.ConsultCreated(consult=consult.public())
        case m.ConsultCancel():
            consult = await services.consults.cancel(conn, msg)
            return out.ConsultCancelled(consult_id=consult.id, consult=consult.public())
        case m.ConsultAccept():
            consult = await services.consults.accept(conn, msg)
            return out.ConsultAccepted(consult=consult.public())
        case m.RoomJoin():
            await services.rooms.join(conn, msg.room_id, msg.last_event_id)
            return None  # room.state was sent; rtc.offer follows
        case m.RoomLeave():
            await services.rooms.leave(conn, msg.room_id, msg.reason)
            return out.RoomLeft(room_id=msg.room_id)
        case m.RoomInvite():
            await services.rooms.invite(conn, msg)
            return out.RoomInviteSent(room_id=msg.room_id)
        case m.RtcAnswer():
            await services.rooms.answer(conn, msg)
            return None
        case m.RtcCandidate():
            await services.rooms.candidate(conn, msg)
            return None
        case m.ViewUpdate():
            return await services.live.update(conn, msg)
        case m.ControlTake() | m.ControlHandover() | m.ControlRelease():
            return await services.live.control(conn, msg)
        case m.ControlRequest():
            await services.live.request(conn, msg)
            return None
        case m.PointerMove():
            await services.live.pointer(conn, msg)
            return None
        case m.ChatSend():
            return await services.live.chat(conn, msg)
        case m.RoomShare():
            return await services.live.share_ecg(conn, msg)
        case m.AgendaCurrent():
            await services.live.agenda(conn, msg)
            return None
        case m.NotificationsSince():
            items = await services.notifier.store.notifications.since(
                conn.principal.username, msg.after, msg.limit)
            return out.Notifications(items=[n.public() for n in items])
    return out.Error(code="invalid_message", message=f"unhandled message {msg.type}")


def setup(app: web.Application) -> None:
    app.router.add_get("/api/ws", websocket)

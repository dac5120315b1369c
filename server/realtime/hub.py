"""Who is connected to this node, and delivery of events to them from any node.

Each page WebSocket is a `Connection` with its own bounded outbound queue and writer task, so a
slow 4G client never holds up anyone else. Events travel between nodes over Redis pub/sub: a
node subscribes to a channel while at least one of its connections wants it.

A live room's `view.state` is not queued behind itself: a connection holds at most one unsent
view.state per room, the newest (a follower that falls behind jumps to the newest state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.auth.principal import Principal
from server.log import event
from server.realtime.outbound import Out

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 256
#: The longest a shutdown waits for the pub/sub listener, and then for its connection to close.
CLOSE_TIMEOUT_S = 5.0
VIEW_STATE = "view.state"
_background: set[asyncio.Task[object]] = set()


def spawn(coro) -> asyncio.Task:  # type: ignore[no-untyped-def]
    """Fire-and-forget with a reference held until done (asyncio keeps only weak ones)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    principal: Principal
    remote: str | None = None
    rooms: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    _outbox: asyncio.Queue[str | _ViewSlot | None] = field(
        default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    _writer: asyncio.Task[None] | None = None
    # room -> (version, text) of the newest view.state not yet written; its slot is queued.
    _views: dict[str, tuple[int, str]] = field(default_factory=dict)
    _view_sent: dict[str, int] = field(default_factory=dict)
    coalesced: int = 0  # view.states replaced by a newer one before they went out

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, message: dict | Out) -> None:
        """Queue a message; a client that cannot keep up is disconnected, not waited for."""
        data = message.to_json() if isinstance(message, Out) else message
        self.deliver(data, json.dumps(data, ensure_ascii=False))

    def deliver(self, data: dict, text: str) -> None:
        """Queue `text`, the wire form of `data` (encoded once for every connection)."""
        if data.get("type") == VIEW_STATE and isinstance(data.get("version"), int):
            self._send_view(str(data.get("room_id")), data["version"], text)
            return
        self._put(text)

    def _send_view(self, room_id: str, version: int, text: str) -> None:
        pending = self._views.get(room_id)
        if pending is not None:  # its slot is still queued: it carries the newest instead
            if version > pending[0]:
                self._views[room_id] = (version, text)
            self.coalesced += 1
            return
        if version <= self._view_sent.get(room_id, -1):
            return  # this page already has that state or a newer one
        self._views[room_id] = (version, text)
        self._put(_ViewSlot(room_id))

    def view_sent(self, room_id: str, version: int) -> None:
        """The page was given this version otherwise (in room.state)."""
        self._view_sent[room_id] = max(version, self._view_sent.get(room_id, -1))

    def _put(self, item: str | _ViewSlot) -> None:
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            event(log, "ws_outbox_full", logging.WARNING, user=self.principal.username)
            spawn(self.ws.close(code=4408, message=b"too slow"))

    async def _write_loop(self) -> None:
        while (item := await self._outbox.get()) is not None:
            if isinstance(item, _ViewSlot):
                version, text = self._views.pop(item.room_id)
                self._view_sent[item.room_id] = version
            else:
                text = item
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def stop(self) -> None:
        if self._writer is None:
            return
        if self._outbox.full():
            self._writer.cancel()
        else:
            self._outbox.put_nowait(None)  # let queued messages go out first
        # Bounded: a page that reads nothing (its socket buffer full) must not hold us here.
        await asyncio.wait({self._writer}, timeout=CLOSE_TIMEOUT_S)
        if not self._writer.done():
            self._writer.cancel()
            await asyncio.wait({self._writer}, timeout=CLOSE_TIMEOUT_S)
        if self._writer.done() and not self._writer.cancelled() and self._writer.exception():
            event(log, "ws_writer_failed", logging.WARNING,
                  error=type(self._writer.exception()).__name__)


@dataclass(frozen=True)
class _ViewSlot:
    """A place in the outbox for a room's newest view.state (filled in when written)."""

    room_id: str


class Hub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._local: dict[str, set[Connection]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = False

    async def start(self) -> None:
        # Subscriptions come with the first connections; Redis may even be down right now
        # (the server still starts and /healthz says 503 until it is back).
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        """Bounded: a shutdown must not wait forever on the listener or on Redis."""
        self._closing = True
        if self._listener:
            # The flag ends the loop even if a cancellation is swallowed inside redis-py's
            # read; cancel again while it has not finished, within the bound.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    while not self._listener.done():
                        self._listener.cancel()
                        await asyncio.wait({self._listener}, timeout=0.5)
            if not self._listener.done():
                event(log, "pubsub_listener_stuck", logging.WARNING)
        try:
            # PubSub.aclose() can wait forever for the transport to close (redis-py#3941).
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pubsub.aclose()
        except (TimeoutError, RedisError, OSError) as exc:
            event(log, "pubsub_close_slow", logging.WARNING, error=type(exc).__name__)
            if self._pubsub.connection is not None:
                await self._pubsub.connection.disconnect(nowait=True)

    async def subscribe(self, conn: Connection, channel: str) -> None:
        async with self._lock:
            first = not self._local[channel]
            self._local[channel].add(conn)
            conn.channels.add(channel)
            if first:
                await self._pubsub.subscribe(channel)

    async def unsubscribe(self, conn: Connection, channel: str) -> None:
        async with self._lock:
            members = self._local.get(channel)
            conn.channels.discard(channel)
            if members is None:
                return
            members.discard(conn)
            if not members:
                del self._local[channel]
                with contextlib.suppress(RedisError, ConnectionError):
                    await self._pubsub.unsubscribe(channel)

    async def drop(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            await self.unsubscribe(conn, channel)

    async def publish(self, channel: str, message: dict | Out, exclude: str = "") -> None:
        """To every connection subscribed to `channel` on any node (but `exclude`'s)."""
        data = message.to_json() if isinstance(message, Out) else dict(message)
        if exclude:
            data["_exclude"] = exclude
        await self._redis.publish(channel, json.dumps(data, ensure_ascii=False))

    def deliver_local(self, channel: str, message: Out, skip: Connection | None = None) -> None:
        """Hand a message to this node's subscribers of `channel` now, without the round trip
        through Redis (its published copy follows; a view.state copy is then dropped by each
        connection as a version it already has)."""
        data = message.to_json()
        text = json.dumps(data, ensure_ascii=False)
        for conn in self.local(channel):
            if conn is not skip:
                conn.deliver(data, text)

    def local(self, channel: str) -> set[Connection]:
        return set(self._local.get(channel, ()))

    async def _listen(self) -> None:
        while not self._closing:
            if not self._pubsub.subscribed:
                await asyncio.sleep(0.2)
                continue
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, ConnectionError) as exc:
                event(log, "pubsub_error", logging.WARNING, error=type(exc).__name__)
                await asyncio.sleep(1)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            channel = msg["channel"]
            try:
                payload = json.loads(msg["data"])
            except (TypeError, json.JSONDecodeError):
                continue
            if not isinstance(payload, dict):
                continue
            exclude = payload.pop("_exclude", None)
            text = json.dumps(payload, ensure_ascii=False) if exclude else msg["data"]
            for conn in self.local(channel):
                if exclude and conn.principal.username == exclude:
                    continue
                conn.deliver(payload, text)

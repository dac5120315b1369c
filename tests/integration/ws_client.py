"""A test client for the page WebSocket: a background reader runs callbacks for every message
(e.g. answering rtc.offer) and queues them for tests to `expect`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

Callback = Callable[[dict[str, Any]], Awaitable[None]]


class PageSocket:
    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []
        self.callbacks: list[Callback] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                break
            data = msg.json()
            for callback in self.callbacks:
                await callback(data)
            self._queue.put_nowait(data)
        self._queue.put_nowait(None)

    async def send(self, **message: Any) -> None:
        await self.ws.send_json(message)

    async def expect(self, type_: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        def fits(m: dict[str, Any]) -> bool:
            return m.get("type") == type_ and all(m.get(k) == v for k, v in fields.items())

        for i, m in enumerate(self.backlog):
            if fits(m):
                return self.backlog.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                m = await self._queue.get()
                if m is None:
                    raise ConnectionError(f"socket closed ({self.ws.close_code}) waiting {type_}")
                if fits(m):
                    return m
                self.backlog.append(m)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message not yet taken by `expect`."""
        if self.backlog:
            return self.backlog.pop(0)
        async with asyncio.timeout(timeout):
            m = await self._queue.get()
        if m is None:
            raise ConnectionError(f"socket closed ({self.ws.close_code})")
        return m

    async def closed(self, timeout: float = 5.0) -> int | None:
        async with asyncio.timeout(timeout):
            while (m := await self._queue.get()) is not None:
                self.backlog.append(m)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

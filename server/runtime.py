"""Opening the configured Redis for a command: HUIZHEN_REDIS_URL, or the embedded private server
(reused when `huizhen serve` already runs it, started and stopped around the command otherwise)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.config import Settings
from server.redis_server import EmbeddedRedis
from server.store import Store


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(
            settings.redis_dir, settings.redis_server_binary, settings.redis_appendfsync
        )
        url = embedded.start()
    store = Store.from_url(url)
    try:
        await store.ping()
        yield store
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()

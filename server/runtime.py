"""Reaching the configured Redis: HUIZHEN_REDIS_URL, or the embedded private server (reused when
`huizhen serve` already runs it, started and stopped around the command otherwise)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from server.config import Settings
from server.redis_server import EmbeddedRedis
from server.store import Store


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """The URL to use while the block runs; an embedded server started here stops after it."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(
        settings.redis_dir, settings.redis_server_binary, settings.redis_appendfsync
    )
    try:
        yield embedded.start()
    finally:
        embedded.stop()


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    with redis_url(settings) as url:
        store = Store.from_url(url)
        try:
            await store.ping()
            yield store
        finally:
            await store.close()

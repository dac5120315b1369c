"""Reaching the configured Redis: HUIZHEN_REDIS_URL, or the embedded private server (borrowed
when `huizhen serve` already runs it, started and stopped around the command otherwise); and the
data dir every command works in (private to the account, one `huizhen serve` at a time)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import IO

from server.config import Settings
from server.errors import ConfigurationError
from server.redis_server import FILE_UMASK, EmbeddedRedis
from server.store import Store


def prepare_data_dir(settings: Settings) -> None:
    """Files created from here on are owner-only (0600, directories 0700), and the data dir
    itself is 0700, so DICOM files, sidecars, spool files and the AOF are nobody else's."""
    os.umask(FILE_UMASK)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)


@contextmanager
def serve_lock(settings: Settings) -> Iterator[IO[str]]:
    """Held while `huizhen serve` runs: a second one on the same data dir is refused, and a
    server started after a `kill -9` knows the Redis it finds is an orphan to adopt. The kernel
    drops the lock with the process, however it ends."""
    path = settings.data_dir / "serve.lock"
    fh = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigurationError(
                f"another `huizhen serve` is running on {settings.data_dir}"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield fh
    finally:
        fh.close()


@contextmanager
def redis_url(settings: Settings, *, own: bool = False) -> Iterator[str]:
    """The URL to use while the block runs; an embedded server started here stops after it.

    own=True (huizhen serve, under serve_lock): the embedded server is supervised (restarted when
    it dies) and stopped after the block even when it was found running (an orphan)."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(
        settings.redis_dir, settings.redis_server_binary, settings.redis_appendfsync
    )
    try:
        url = embedded.start(own=own)
        if own:
            embedded.supervise()
        yield url
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

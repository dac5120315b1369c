"""Audit retention for the operator: export old audit entries to a verified archive, then prune
from the stream exactly what an archive holds (`huizhen audit export` / `huizhen audit prune`).

The application only appends to the audit stream (server/store/audit.py); this module is the one
place that removes entries, and only the CLI imports it (tests/unit/test_audit_append_only.py).

Archive: gzip JSON lines, one `{"id": ..., "fields": {...}}` per entry, oldest first (fields are
nested so a field named `id` cannot collide). Beside it `<archive>.manifest.json`: the format,
the stream, the bound, first/last id, count and the SHA-256 of the archive's bytes. Both are
fsync'd, and renamed into place only when complete, so a crash leaves no half archive that looks
whole. Everything streams in chunks of `chunk` entries (XRANGE ... COUNT): memory is bounded by
the chunk, never by the stream.

Prune removes an entry only when (a) it is older than the bound asked for, (b) the bound is
older than the retention minimum, (c) the archive's hash matches its manifest, its lines are
well-formed, strictly increasing and agree with the manifest, and every stream entry in the
archived range is in the archive with the same fields. It removes with XDEL of exactly the
archived ids, not XTRIM MINID: MINID drops everything below an id, including any entry the
archive does not hold (one restored or added with an explicit id, or an archive that is a
subset); XDEL cannot remove what was not archived, and a rerun after a crash is harmless (ids
already gone count zero). Deleting a contiguous old range frees whole stream nodes, so memory
is reclaimed as with XTRIM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from redis.asyncio import Redis

from server.clinical.report_files import fsync_dir
from server.errors import HuizhenError
from server.store import keys

FORMAT = "huizhen-audit-archive/1"
DEFAULT_CHUNK = 1000
MAX_CHUNK = 10_000
_ID_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)
_HASH_BLOCK = 1 << 20


class ArchiveError(HuizhenError):
    """The archive is missing, unreadable, does not verify, or the prune is not allowed."""

    code = "audit_archive"


@dataclass(frozen=True)
class Manifest:
    format: str
    stream: str
    before_ms: int
    first_id: str
    last_id: str
    count: int
    sha256: str
    created_utc: str


@dataclass(frozen=True)
class PruneResult:
    sha256: str
    first_id: str | None
    last_id: str | None
    count: int


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".manifest.json")


def _id_key(entry_id: str) -> tuple[int, int]:
    m = _ID_RE.fullmatch(entry_id)
    if m is None:
        raise ArchiveError(f"bad stream id {entry_id!r} in the archive")
    return int(m.group(1)), int(m.group(2))


class _HashingFile(io.RawIOBase):
    """The archive's bytes go to the file and the hash in one pass (no re-read to hash)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        return self.raw.write(view)


class _Writer:
    """A gzip JSON-lines archive being written to `<out>.partial` (blocking: run in a thread)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        # "x": never overwrite, not even a partial one another export is writing
        self.raw = open(self.partial, "xb")  # noqa: SIM115 - closed in finish/abort
        self.hashing = _HashingFile(self.raw)
        # mtime=0: the same entries give the same bytes (and hash)
        self.gz = gzip.GzipFile(fileobj=self.hashing, mode="wb", mtime=0)

    def write(self, rows: list[tuple[str, dict[str, str]]]) -> None:
        self.gz.write("".join(
            json.dumps({"id": i, "fields": f}, ensure_ascii=False, sort_keys=True,
                       separators=(",", ":")) + "\n" for i, f in rows).encode("utf-8"))

    def finish(self, manifest: dict[str, Any]) -> Manifest:
        self.gz.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        final = Manifest(**manifest, sha256=self.hashing.sha.hexdigest())
        os.rename(self.partial, self.out)
        mpath = manifest_path(self.out)
        mpartial = mpath.with_name(mpath.name + ".partial")
        with open(mpartial, "x", encoding="utf-8") as fh:
            json.dump(asdict(final), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(mpartial, mpath)
        # both renames durable: the archive exists after a power loss iff the command said so
        fsync_dir(self.out.parent)
        return final

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.gz.close()
        with contextlib.suppress(OSError):
            self.raw.close()
        with contextlib.suppress(OSError):
            self.partial.unlink()


def _start(out: Path) -> _Writer:
    if out.exists() or manifest_path(out).exists():
        raise ArchiveError(f"{out} or its manifest exists already; archives are never overwritten")
    if not out.parent.is_dir():
        raise ArchiveError(f"directory {out.parent} does not exist")
    try:
        return _Writer(out)
    except FileExistsError:
        raise ArchiveError(f"{out}.partial exists: another export is writing it, or one "
                           "was interrupted (remove it)") from None


def check_chunk(chunk: int) -> int:
    if not 1 <= chunk <= MAX_CHUNK:
        raise ArchiveError(f"--chunk must be between 1 and {MAX_CHUNK}")
    return chunk


async def export(redis: Redis, out: Path, *, before_ms: int,
                 chunk: int = DEFAULT_CHUNK) -> Manifest | None:
    """Every entry with an id before `before_ms`, oldest first, into `out` and its manifest.
    None (and no file) when there is none."""
    check_chunk(chunk)
    writer = await asyncio.to_thread(_start, out)
    first = last = None
    count = 0
    low = "-"
    try:
        while True:
            rows = await redis.xrange(keys.AUDIT, min=low, max=f"({before_ms}-0", count=chunk)
            if not rows:
                break
            await asyncio.to_thread(writer.write, rows)
            first = first or rows[0][0]
            last = rows[-1][0]
            count += len(rows)
            low = f"({last}"
        if first is None or last is None:
            await asyncio.to_thread(writer.abort)
            return None
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return await asyncio.to_thread(writer.finish, {
            "format": FORMAT, "stream": keys.AUDIT, "before_ms": before_ms, "first_id": first,
            "last_id": last, "count": count, "created_utc": created})
    except BaseException:
        await asyncio.to_thread(writer.abort)
        raise


# -- reading and verifying an archive --------------------------------------------------------


def read_manifest(archive: Path) -> Manifest:
    mpath = manifest_path(archive)
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except FileNotFoundError:
        raise ArchiveError(f"no manifest {mpath} beside the archive") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ArchiveError(f"manifest {mpath} is unreadable: {exc}") from None
    if manifest.format != FORMAT:
        raise ArchiveError(f"manifest {mpath}: unknown format {manifest.format!r}")
    if manifest.stream != keys.AUDIT:
        raise ArchiveError(f"the archive is of stream {manifest.stream!r}, not {keys.AUDIT!r}")
    return manifest


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def _entries(archive: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The archive's entries in order, one line at a time; malformed or out-of-order lines
    raise ArchiveError."""
    previous: tuple[int, int] | None = None
    try:
        with gzip.open(archive, "rt", encoding="utf-8", newline="\n") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    item = json.loads(line)
                    entry_id, fields = item["id"], item["fields"]
                except (ValueError, KeyError, TypeError):
                    raise ArchiveError(
                        f"{archive}: line {number} is not an archive entry") from None
                if not isinstance(entry_id, str) or not isinstance(fields, dict) or not all(
                        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
                    raise ArchiveError(f"{archive}: line {number} is not an archive entry")
                key = _id_key(entry_id)
                if previous is not None and key <= previous:
                    raise ArchiveError(f"{archive}: line {number}: ids not increasing")
                previous = key
                yield entry_id, fields
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # gzip.BadGzipFile is an OSError
        raise ArchiveError(f"{archive} is not a readable gzip archive: {exc}") from None


def verify(archive: Path) -> Manifest:
    """The manifest, once the archive's hash, every line, the count and the first/last ids agree
    with it (one full read; blocking: run in a thread)."""
    manifest = read_manifest(archive)
    try:
        digest = _file_sha256(archive)
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive {archive}: {exc}") from None
    if digest != manifest.sha256:
        raise ArchiveError(f"{archive}: SHA-256 {digest} does not match the manifest's "
                           f"{manifest.sha256}; the archive was changed or is another one")
    count, first, last = 0, None, None
    for entry_id, _ in _entries(archive):
        if _id_key(entry_id)[0] >= manifest.before_ms:
            raise ArchiveError(f"{archive}: entry {entry_id} is not before the manifest's bound")
        first = first or entry_id
        last = entry_id
        count += 1
    if (count, first, last) != (manifest.count, manifest.first_id, manifest.last_id):
        raise ArchiveError(f"{archive}: holds {count} entries {first}..{last}, the manifest says "
                           f"{manifest.count} entries {manifest.first_id}..{manifest.last_id}")
    return manifest


class _Chunks:
    """The archive's entries before a bound, `size` at a time, read in a thread each."""

    def __init__(self, archive: Path, before_ms: int, size: int) -> None:
        self._it = _entries(archive)
        self._before_ms = before_ms
        self._size = size
        self._done = False

    def _next(self) -> list[tuple[str, dict[str, str]]]:
        out: list[tuple[str, dict[str, str]]] = []
        while not self._done and len(out) < self._size:
            item = next(self._it, None)
            # ids increase: the first at or past the bound ends the range
            if item is None or _id_key(item[0])[0] >= self._before_ms:
                self._done = True
                self._it.close()
                break
            out.append(item)
        return out

    async def next(self) -> list[tuple[str, dict[str, str]]]:
        return await asyncio.to_thread(self._next)


async def prune(redis: Redis, archive: Path, *, before_ms: int, retention_days: int,
                chunk: int = DEFAULT_CHUNK, now: float | None = None) -> PruneResult:
    """Remove from the stream the archived entries older than `before_ms` (see the module
    docstring for when it refuses: ArchiveError, nothing removed)."""
    check_chunk(chunk)
    now = time.time() if now is None else now
    floor_ms = int((now - retention_days * 86400) * 1000)
    if before_ms > floor_ms:
        floor = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(floor_ms / 1000))
        raise ArchiveError(
            f"the bound is inside the retention minimum of {retention_days} days "
            f"(HUIZHEN_AUDIT_RETENTION_DAYS): only entries before {floor} may be pruned")
    manifest = await asyncio.to_thread(verify, archive)
    # Pass 1, nothing removed yet: every stream entry in the archived range is in the archive,
    # with the same fields (the right archive, complete), checked chunk by chunk.
    first = last = None
    present = 0
    chunks = _Chunks(archive, before_ms, chunk)
    low = None
    while batch := await chunks.next():
        archived = dict(batch)
        low = batch[0][0] if low is None else low
        # one more than the chunk holds: an entry the archive lacks shows up, however many
        rows = await redis.xrange(keys.AUDIT, min=low, max=batch[-1][0], count=len(batch) + 1)
        for entry_id, fields in rows:
            if entry_id not in archived:
                raise ArchiveError(f"the stream holds {entry_id}, which the archive lacks "
                                   "in its range: not this stream's complete export")
            if archived[entry_id] != fields:
                raise ArchiveError(f"entry {entry_id} differs between the stream and the archive")
            first = first or entry_id
            last = entry_id
            present += 1
        low = f"({batch[-1][0]}"
    # Pass 2: the same ids, exactly. Nothing new can have appeared in the checked range since:
    # XADD only takes ids above the stream's last one.
    removed = 0
    chunks = _Chunks(archive, before_ms, chunk)
    while batch := await chunks.next():
        removed += int(await redis.xdel(keys.AUDIT, *(i for i, _ in batch)))
    return PruneResult(manifest.sha256, first, last, removed)

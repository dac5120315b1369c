"""Audit retention through the real CLI and a real redis-server: `huizhen audit export` writes
exactly the old entries to a gzip JSON-lines archive with a verifiable manifest, in bounded
chunks; `huizhen audit prune` removes exactly the archived old entries and refuses (exit 2,
nothing removed) without a valid archive, with a tampered one, or inside the retention
minimum. Both are audited."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from server import audit_archive
from server.store import keys
from tests.integration.test_cli import _huizhen

#: 2025-01-01T00:00:00Z: entries this old are past any retention minimum at test time.
OLD_MS = 1_735_689_600_000
DAY_MS = 86_400_000
BOUND = "2026-01-01"
BOUND_MS = 1_767_225_600_000


def _env(tmp_path: Path, redis_server, **extra: str) -> dict[str, str]:
    return {**os.environ, "HUIZHEN_REDIS_URL": redis_server.url(1),
            "HUIZHEN_DATA_DIR": str(tmp_path / "var"), "HUIZHEN_SECRET_KEY": "k" * 40, **extra}


async def _seed(store, ms_list: list[int], pad: int = 0) -> list[str]:
    """Entries with explicit old ids (what months of a running server leave behind)."""
    ids = []
    async with store.redis.pipeline(transaction=False) as pipe:
        for n, ms in enumerate(ms_list):
            pipe.xadd(keys.AUDIT, {"ts": f"{ms / 1000:.3f}", "action": "wado.retrieve",
                                   "user": "dr.李", "role": "expert", "clinic": "qingshui",
                                   "id": f"field-named-id-{n}", "study": "1.2.3." + str(n),
                                   "pad": "x" * pad}, id=f"{ms}-{n}")
        ids = await pipe.execute()
    return ids


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _write_archive(path: Path, entries: list[dict]) -> None:
    path.unlink()
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in entries)


async def _stream(store) -> list[tuple[str, dict[str, str]]]:
    return await store.redis.xrange(keys.AUDIT)


async def test_export_writes_every_old_entry_oldest_first_with_a_manifest(
        tmp_path, redis_server, store):
    old = await _seed(store, [OLD_MS + n * DAY_MS for n in range(60)])
    await store.audit.record(action="auth.login", user="dr.li", role="doctor", clinic="qingshui",
                             remote="10.0.0.1")  # now: after the bound
    out = tmp_path / "audit-2025.jsonl.gz"
    env = _env(tmp_path, redis_server)
    r = _huizhen(env, "audit", "export", "--before", BOUND, "--out", str(out), "--chunk", "7")
    assert r.returncode == 0, r.stderr
    assert f"60 entries {old[0]}..{old[-1]}" in r.stdout
    expected = [{"id": i, "fields": f} for i, f in await store.redis.xrange(
        keys.AUDIT, max=f"({BOUND_MS}-0")]
    assert len(expected) == 60
    assert _lines(out) == expected  # every field (incl. one named "id"), oldest first
    manifest = json.loads(audit_archive.manifest_path(out).read_text())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (manifest["count"], manifest["first_id"], manifest["last_id"]) == (60, old[0], old[-1])
    assert manifest["before_ms"] == BOUND_MS and manifest["stream"] == keys.AUDIT
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        out.name, out.name + ".manifest.json"]  # no .partial left
    [archived] = [f for _, f in await _stream(store) if f["action"] == "audit.archive"]
    assert archived["user"].startswith("cli:") and archived["role"] == "operator"
    assert (archived["count"], archived["first_id"], archived["last_id"]) == (
        "60", old[0], old[-1])
    assert archived["sha256"] == manifest["sha256"] and archived["file"] == str(out)
    # archives are never overwritten; a bound in the future is no closed range
    r = _huizhen(env, "audit", "export", "--before", BOUND, "--out", str(out))
    assert r.returncode == 2 and "never overwritten" in r.stderr
    r = _huizhen(env, "audit", "export", "--before", "2999-01-01", "--out", str(tmp_path / "f"))
    assert r.returncode == 2 and "future" in r.stderr
    r = _huizhen(env, "audit", "export", "--before", "2020-01-01", "--out", str(tmp_path / "e"))
    assert r.returncode == 0 and "nothing written" in r.stdout and not (tmp_path / "e").exists()
    r = _huizhen(env, "audit", "export", "--before", "yesterday", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "--before" in r.stderr


async def test_prune_refuses_without_a_valid_archive_or_inside_the_retention_minimum(
        tmp_path, redis_server, store):
    await _seed(store, [OLD_MS + n * DAY_MS for n in range(20)])
    out = tmp_path / "a.jsonl.gz"
    env = _env(tmp_path, redis_server)
    assert _huizhen(env, "audit", "export", "--before", BOUND, "--out", str(out)).returncode == 0
    genuine = out.read_bytes()
    mpath = audit_archive.manifest_path(out)
    manifest = json.loads(mpath.read_text())
    length = await store.redis.xlen(keys.AUDIT)

    def refused(expect: str, archive: Path = out, before: str = BOUND, **extra: str) -> None:
        r = _huizhen(_env(tmp_path, redis_server, **extra), "audit", "prune",
                     "--before", before, "--archive", str(archive))
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert expect in r.stderr, r.stderr

    refused("no manifest", tmp_path / "missing.jsonl.gz")
    bare = tmp_path / "bare.jsonl.gz"
    bare.write_bytes(genuine)
    refused("no manifest", bare)
    # inside the retention minimum: 180 days by default, raised by the setting
    refused("retention minimum", before="30d")
    refused("retention minimum", before="179d")
    refused("retention minimum", HUIZHEN_AUDIT_RETENTION_DAYS="400")
    r = _huizhen(_env(tmp_path, redis_server, HUIZHEN_AUDIT_RETENTION_DAYS="30"), "audit",
                 "prune", "--before", BOUND, "--archive", str(out))
    assert r.returncode == 2 and "at least 180" in r.stderr  # cannot be lowered below the law
    # tampered: one field changed, the manifest's hash no longer matches
    entries = _lines(out)
    entries[3]["fields"]["user"] = "someone.else"
    _write_archive(out, entries)
    refused("SHA-256")
    # tampered and re-hashed: the archive no longer agrees with the stream
    mpath.write_text(json.dumps({**manifest, "sha256": hashlib.sha256(
        out.read_bytes()).hexdigest()}))
    refused("differs between the stream and the archive")
    # an entry left out (count and hash made to fit): not the stream's complete export
    entries = _lines(bare)
    del entries[5]
    _write_archive(out, entries)
    mpath.write_text(json.dumps({**manifest, "count": 19, "sha256": hashlib.sha256(
        out.read_bytes()).hexdigest()}))
    refused("which the archive lacks")
    # a manifest whose count disagrees with its archive
    mpath.write_text(json.dumps({**manifest, "sha256": hashlib.sha256(
        out.read_bytes()).hexdigest()}))
    refused("the manifest says")
    assert await store.redis.xlen(keys.AUDIT) == length  # nothing removed, nothing audited
    assert not [f for _, f in await _stream(store) if f["action"] == "audit.prune"]


async def test_prune_removes_exactly_the_archived_old_entries(tmp_path, redis_server, store):
    early = await _seed(store, [OLD_MS + n * DAY_MS for n in range(100)])  # 2025-01-01 on
    # 2026-02 and 2026-03: past the archive's bound, still past the retention minimum
    later = await _seed(store, [BOUND_MS + (40 + n) * DAY_MS for n in range(10)])
    await store.audit.record(action="auth.login", user="dr.li", role="doctor", clinic="qingshui",
                             remote="10.0.0.1")
    out = tmp_path / "a.jsonl.gz"
    env = _env(tmp_path, redis_server)
    assert _huizhen(env, "audit", "export", "--before", BOUND, "--out", str(out),
                    "--chunk", "9").returncode == 0
    kept_before = [(i, f) for i, f in await _stream(store) if i not in early]
    # a bound earlier than the archive's: only the archived entries before it (Jan-Feb 2025)
    r = _huizhen(env, "audit", "prune", "--before", "2025-03-01", "--archive", str(out),
                 "--chunk", "8")
    assert r.returncode == 0, r.stderr
    remaining = [i for i, _ in await _stream(store)]
    assert [i for i in early if i in remaining] == early[59:]  # 59 days: Jan 1 .. Feb 28
    r = _huizhen(env, "audit", "prune", "--before", BOUND, "--archive", str(out), "--chunk", "8")
    assert r.returncode == 0, r.stderr
    assert f"41 archived entries {early[59]}..{early[-1]} removed" in r.stdout
    stream = await _stream(store)
    assert not {i for i, _ in stream} & set(early)
    assert stream[:len(kept_before)] == kept_before  # the rest untouched, in order
    assert [i for i, _ in stream[:10]] == later
    prunes = [f for _, f in stream if f["action"] == "audit.prune"]
    assert [(p["count"], p["first_id"], p["last_id"]) for p in prunes] == [
        ("59", early[0], early[58]), ("41", early[59], early[-1])]
    assert all(p["user"].startswith("cli:") and p["before"] for p in prunes)
    # again: nothing left to remove, said and audited; the archive itself is kept
    r = _huizhen(env, "audit", "prune", "--before", BOUND, "--archive", str(out))
    assert r.returncode == 0 and "nothing to remove" in r.stdout
    assert len(_lines(out)) == 100


async def test_export_and_prune_of_20000_entries_are_chunked(tmp_path, redis_server, store):
    """A large stream goes through in bounded steps: many XRANGE calls of the chunk size from
    the CLI, and in-process the peak Python memory stays far below the stream's size."""
    pad = 1000
    await _seed(store, [OLD_MS + n * 1000 for n in range(20_000)], pad=pad)
    env = _env(tmp_path, redis_server)
    await store.redis.config_resetstat()
    out = tmp_path / "big.jsonl.gz"
    r = _huizhen(env, "audit", "export", "--before", BOUND, "--out", str(out), "--chunk", "500")
    assert r.returncode == 0, r.stderr
    stats = await store.redis.info("commandstats")
    assert stats["cmdstat_xrange"]["calls"] >= 20_000 // 500
    assert json.loads(audit_archive.manifest_path(out).read_text())["count"] == 20_000
    stream_bytes = 20_000 * pad
    again = tmp_path / "again.jsonl.gz"
    tracemalloc.start()
    try:
        manifest = await audit_archive.export(store.redis, again, before_ms=BOUND_MS, chunk=200)
        _, export_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = await audit_archive.prune(store.redis, again, before_ms=BOUND_MS,
                                           retention_days=180, chunk=200)
        _, prune_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest is not None and manifest.count == 20_000
    assert again.read_bytes() == out.read_bytes()  # same entries, same bytes (gzip mtime 0)
    assert result.count == 20_000 and await store.redis.xlen(keys.AUDIT) == 1  # audit.archive
    # chunk 200 peaks near 1.5 MB (threads, gzip, one chunk); reading it whole takes > 20 MB
    assert export_peak < stream_bytes / 6, export_peak
    assert prune_peak < stream_bytes / 6, prune_peak


@pytest.mark.parametrize("chunk", ["0", "10001"])
def test_the_chunk_is_bounded(tmp_path, redis_server, chunk):
    r = _huizhen(_env(tmp_path, redis_server), "audit", "export", "--before", BOUND,
                 "--out", str(tmp_path / "x"), "--chunk", chunk)
    assert r.returncode == 2 and "--chunk" in r.stderr

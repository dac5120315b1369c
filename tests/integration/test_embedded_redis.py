"""The embedded default, as `huizhen serve` runs it: files at rest, the AOF fsync policy, and the
faults of a real deployment (redis-server SIGKILLed, the server SIGKILLed) under load."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
from pathlib import Path

import aiohttp
import pytest
import redis
from pydicom.uid import generate_uid

from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.dicom_factory import ct_bytes, multipart_related
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess, process_gone, short_data_dir

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def data_dir():
    path = short_data_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _socket(data_dir: Path) -> str:
    return str(data_dir / "redis" / "redis.sock")


def _redis(data_dir: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=_socket(data_dir), socket_timeout=2)


def _redis_pid(data_dir: Path) -> int:
    client = _redis(data_dir)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


async def _people(data_dir: Path, password_hash: str) -> None:
    store = Store.from_url(f"unix://{_socket(data_dir)}")
    try:
        if await store.directory.get_user("dr.li") is None:
            await store.directory.add_clinic("Qingshui Township", "qingshui")
            await store.directory.add_user("dr.li", role=Role.DOCTOR,
                                           password_hash=password_hash, clinic="qingshui")
    finally:
        await store.close()


async def _token(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.post(f"{url}api/auth/login",
                            json={"username": "dr.li", "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_at_rest_are_private_and_appendfsync_is_honoured(data_dir, password_hash):
    port = free_port()
    server = ServeProcess(data_dir, port, ServeProcess.environment(
        data_dir, port, HUIZHEN_REDIS_APPENDFSYNC="always"))
    url = server.start()
    try:
        # Printed once the site listens: the very first request succeeds.
        assert url == f"http://127.0.0.1:{port}/"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}healthz") as resp:
                assert resp.status == 200
            client = _redis(data_dir)
            # The configured value reached redis-server (the default would be everysec).
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            client.close()
            await _people(data_dir, password_hash)
            h = await _token(session, url)

            spool_modes: list[int] = []
            payload = ct_bytes(rows=512, columns=512)
            form = multipart_related([payload])

            async def slow_body():
                # Half the upload, then look at the spool file the server is writing.
                body, _ = form
                yield body[: len(body) // 2]
                for _ in range(200):
                    files = [p for p in (data_dir / "tmp").rglob("*") if p.is_file()]
                    if files:
                        spool_modes.extend(_mode(p) for p in files)
                        spool_modes.append(_mode(data_dir / "tmp"))
                        break
                    await asyncio.sleep(0.02)
                yield body[len(body) // 2:]

            async with session.post(f"{url}dicomweb/studies", data=slow_body(),
                                    headers={**h, "Content-Type": form[1]}) as resp:
                assert resp.status == 200, await resp.text()
            assert spool_modes and all(m & 0o077 == 0 for m in spool_modes), spool_modes
    finally:
        assert server.stop() == 0, server.output()

    assert _mode(data_dir) == 0o700
    dicoms = list((data_dir / "dicom").rglob("*.dcm"))
    sidecars = list((data_dir / "dicom").rglob("*.model.json"))
    aofs = [p for p in (data_dir / "redis").rglob("*") if p.is_file() and ".aof" in p.name]
    assert dicoms and sidecars and aofs
    for path in (*dicoms, *sidecars, *aofs, data_dir / "serve.lock"):
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for directory in (p for p in data_dir.rglob("*") if p.is_dir()):
        assert _mode(directory) & 0o077 == 0, (directory, oct(_mode(directory)))


class Load:
    """Uploads (one new instance each) and QIDO searches in a loop; records every status."""

    def __init__(self, session: aiohttp.ClientSession, url: str, h: dict[str, str]) -> None:
        self.session, self.url, self.h = session, url, h
        self.study = generate_uid()
        self.acknowledged: list[str] = []
        self.statuses: list[int] = []
        self.unavailable_without_retry_after = 0
        self.stop = asyncio.Event()

    async def _record(self, resp: aiohttp.ClientResponse) -> None:
        self.statuses.append(resp.status)
        if resp.status == 503:
            body = await resp.json()
            assert body["error"]["code"] == "service_unavailable"
            if "Retry-After" not in resp.headers:
                self.unavailable_without_retry_after += 1

    async def uploads(self) -> None:
        while not self.stop.is_set():
            sop = generate_uid()
            body, ctype = multipart_related([ct_bytes(study_uid=self.study, sop_uid=sop)])
            try:
                async with self.session.post(f"{self.url}dicomweb/studies", data=body,
                                             headers={**self.h, "Content-Type": ctype}) as resp:
                    await self._record(resp)
                    if resp.status == 200:
                        self.acknowledged.append(sop)
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)  # the server itself was killed

    async def searches(self) -> None:
        while not self.stop.is_set():
            try:
                async with self.session.get(f"{self.url}dicomweb/studies",
                                            headers=self.h) as resp:
                    await self._record(resp)
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)

    def tasks(self) -> list[asyncio.Task]:
        return [asyncio.create_task(self.uploads()), asyncio.create_task(self.searches()),
                asyncio.create_task(self.searches())]

    async def until(self, predicate, timeout_s: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, self.statuses[-20:]
            await asyncio.sleep(0.02)


async def _stored_sops(session, url, h, study) -> set[str]:
    async with session.get(f"{url}dicomweb/studies/{study}/instances", headers=h) as resp:
        assert resp.status == 200, await resp.text()
        return {row["00080018"]["Value"][0] for row in await resp.json()}


async def test_redis_sigkill_under_load_503_then_recovery(data_dir, password_hash):
    port = free_port()
    server = ServeProcess(data_dir, port, ServeProcess.environment(data_dir, port))
    url = server.start()
    try:
        client = _redis(data_dir)
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
        await _people(data_dir, password_hash)
        async with aiohttp.ClientSession() as session:
            h = await _token(session, url)
            load = Load(session, url, h)
            tasks = load.tasks()
            await load.until(lambda: len(load.acknowledged) >= 5)
            old_pid = _redis_pid(data_dir)
            os.kill(old_pid, signal.SIGKILL)
            mark = len(load.statuses)
            # Requests during the outage answer 503; then the supervisor's restart heals it.
            await load.until(lambda: 503 in load.statuses[mark:])
            server.wait_for_line("embedded_redis_restarted")
            acked = len(load.acknowledged)
            await load.until(lambda: len(load.acknowledged) >= acked + 5)
            load.stop.set()
            await asyncio.gather(*tasks)

            assert 500 not in load.statuses, load.statuses
            assert set(load.statuses) <= {200, 503}, set(load.statuses)
            assert load.unavailable_without_retry_after == 0
            # The dead child was reaped (no zombie), and a new one serves.
            assert process_gone(old_pid)
            assert _redis_pid(data_dir) != old_pid
            async with session.get(f"{url}healthz") as resp:
                assert resp.status == 200
            # Nothing acknowledged was lost: the AOF replayed every indexed instance.
            stored = await _stored_sops(session, url, h, load.study)
            assert set(load.acknowledged) <= stored
    finally:
        assert server.stop() == 0, server.output()
    assert not (data_dir / "redis" / "redis.sock").exists()


async def test_server_kill9_orphan_adopted_then_stopped_on_clean_shutdown(data_dir, password_hash):
    port = free_port()
    env = ServeProcess.environment(data_dir, port)
    first = ServeProcess(data_dir, port, env)
    url = first.start()
    await _people(data_dir, password_hash)
    orphan = _redis_pid(data_dir)
    async with aiohttp.ClientSession() as session:
        h = await _token(session, url)
        load = Load(session, url, h)
        tasks = load.tasks()
        await load.until(lambda: len(load.acknowledged) >= 5)
        first.kill9()
        load.stop.set()
        await asyncio.gather(*tasks)
        assert 500 not in load.statuses
        # The orphan keeps running without its parent.
        assert not process_gone(orphan)

        second = ServeProcess(data_dir, port, env)
        try:
            url = second.start()
            second.wait_for_line("embedded_redis_adopted")
            assert _redis_pid(data_dir) == orphan  # reused, not a second server on the files
            h = await _token(session, url)
            stored = await _stored_sops(session, url, h, load.study)
            assert set(load.acknowledged) <= stored
            # A second `huizhen serve` on the same data dir is refused while this one runs.
            third = ServeProcess(data_dir, free_port(), env)
            with pytest.raises(AssertionError, match="another `huizhen serve` is running"):
                third.start(timeout_s=30)
            assert _redis_pid(data_dir) == orphan
        finally:
            assert second.stop() == 0, second.output()
    # Adopted means owned: the clean shutdown stopped it.
    for _ in range(200):
        if process_gone(orphan):
            break
        await asyncio.sleep(0.05)
    assert process_gone(orphan)
    assert not (data_dir / "redis" / "redis.sock").exists()

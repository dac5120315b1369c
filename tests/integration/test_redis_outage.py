"""An external Redis (HUIZHEN_REDIS_URL) that goes away and comes back: requests answer 503 with
Retry-After meanwhile (HTTP and WebSocket, never 500 or internal_error), and the server recovers
by itself without a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import tempfile

import pytest
import redis

from server.app import create_app
from server.store import Store
from tests.conftest import _wait_for_redis, free_port
from tests.integration.conftest import login

pytestmark = pytest.mark.timeout(120)


class RedisProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hz-outage-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_redis(self.url)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def external_redis():
    server = RedisProcess()
    server.start()
    yield server
    if server.proc and server.proc.poll() is None:
        server.kill()
    shutil.rmtree(server.dir, ignore_errors=True)


async def test_external_redis_outage_503_then_recovery(
    aiohttp_client, settings, external_redis, password_hash
) -> None:
    s = dataclasses.replace(settings, redis_url=external_redis.url)
    seed = Store.from_url(s.redis_url)
    await seed.directory.add_clinic("Qingshui Township", "qingshui")
    from server.store.directory import Role

    await seed.directory.add_user("dr.li", role=Role.DOCTOR, password_hash=password_hash,
                                  clinic="qingshui")
    await seed.close()
    client = await aiohttp_client(create_app(s, Store.from_url(s.redis_url)))
    h = await login(client, "dr.li")
    ws = await client.ws_connect("/api/ws", headers=h)
    while (await ws.receive_json(timeout=10))["type"] != "ready":
        pass
    assert (await client.get("/dicomweb/studies", headers=h)).status == 200

    external_redis.kill()
    for path in ("/dicomweb/studies", "/api/me", "/healthz"):
        resp = await client.get(path, headers=h)
        assert resp.status == 503, (path, await resp.text())
        assert resp.headers["Retry-After"].isdigit()
        body = await resp.json()
        assert "internal_error" not in str(body)
    resp = await client.post("/api/auth/login", json={"username": "dr.li", "password": "x" * 9})
    assert resp.status == 503
    await ws.send_json({"type": "consult.start", "department": "radiology", "question": "q",
                        "id": "during"})
    while (reply := await ws.receive_json(timeout=10)).get("ref") != "during":
        pass
    assert reply["type"] == "error" and reply["code"] == "service_unavailable", reply

    external_redis.start()  # same port, same AOF: the data is back
    for _ in range(200):
        resp = await client.get("/dicomweb/studies", headers=h)
        if resp.status == 200:
            break
        assert resp.status == 503
        await asyncio.sleep(0.05)
    assert resp.status == 200
    assert (await client.get("/healthz")).status == 200
    await ws.send_json({"type": "ping", "id": "after"})
    while (reply := await ws.receive_json(timeout=10)).get("ref") != "after":
        pass
    assert reply["type"] == "pong"
    await ws.close()
    redis.Redis.from_url(external_redis.url).close()

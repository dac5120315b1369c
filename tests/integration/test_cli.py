"""The operator CLI works against the same Redis and data dir as the server, before it runs."""

from __future__ import annotations

import os
import subprocess
import sys

from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.config import Settings
from server.redis_server import EmbeddedRedis
from server.store import Store


def _huizhen(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", *args], env=env, input=stdin, capture_output=True,
        text=True, timeout=60,
    )


async def test_clinic_and_user_commands_then_login(tmp_path, redis_server, store):
    env = {**os.environ, "HUIZHEN_REDIS_URL": redis_server.url(1),
           "HUIZHEN_DATA_DIR": str(tmp_path), "HUIZHEN_SECRET_KEY": "k" * 40}
    r = _huizhen(env, "clinic", "add", "Shuangxi Township", "--id", "shuangxi")
    assert r.returncode == 0, r.stderr
    r = _huizhen(env, "user", "add", "dr.zhou", "--role", "doctor", "--clinic", "shuangxi",
                 "--password", "s3cret-pass")
    assert r.returncode == 0, r.stderr
    r = _huizhen(env, "user", "add", "dr.x", "--role", "doctor", "--clinic", "nowhere",
                 "--password", "s3cret-pass")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _huizhen(env, "user", "add", "dr.y", "--role", "doctor", "--password", "short")
    assert r.returncode == 2
    r = _huizhen(env, "device", "add", "kiosk", "--clinic", "shuangxi")
    assert r.returncode == 0 and "hzd_" in r.stdout
    settings = Settings.from_env(env)
    app = create_app(settings, Store.from_url(settings.redis_url))
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/api/auth/login",
                                 json={"username": "dr.zhou", "password": "s3cret-pass"})
        assert resp.status == 200
        assert (await resp.json())["user"]["clinic"] == "shuangxi"


def test_embedded_redis_keeps_an_append_only_file(tmp_path):
    embedded = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    url = embedded.start()
    try:
        import redis

        client = redis.Redis.from_url(url)
        client.set("hz:probe", "1")
        assert client.config_get("appendfsync")["appendfsync"] == "always"
        client.close()
        # A second user of the same data dir reuses the running server.
        assert EmbeddedRedis(tmp_path / "redis").start() == url
    finally:
        embedded.stop()
    assert any((tmp_path / "redis").rglob("*.aof*"))
    again = EmbeddedRedis(tmp_path / "redis")
    again.start()
    try:
        import redis

        assert redis.Redis.from_url(again.url).get("hz:probe") == b"1"  # survived the restart
    finally:
        again.stop()

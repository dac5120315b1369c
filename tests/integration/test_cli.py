"""The operator CLI works against the same Redis and data dir as the server, before it runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
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


# 13 CLI processes, each importing the server: ~20 s quiet, past the default 120 s at load 16.
@pytest.mark.timeout(300)
async def test_user_and_device_commands_end_sessions(tmp_path, redis_server, store,
                                                     password_hash):
    """disable/enable/password/list and device list/revoke, against a running app."""
    from tests.integration.test_sessions import HTTP_DEADLINE_S, bearer, refused_within

    env = {**os.environ, "HUIZHEN_REDIS_URL": redis_server.url(1),
           "HUIZHEN_DATA_DIR": str(tmp_path), "HUIZHEN_SECRET_KEY": "k" * 40}
    for args in (("clinic", "add", "Shuangxi", "--id", "shuangxi"),
                 ("user", "add", "dr.zhou", "--role", "doctor", "--clinic", "shuangxi",
                  "--password", "s3cret-pass")):
        assert _huizhen(env, *args).returncode == 0
    r = _huizhen(env, "device", "add", "Shuangxi kiosk", "--clinic", "shuangxi")
    device_token = r.stdout.split()[-1]
    settings = Settings.from_env(env)
    app = create_app(settings, Store.from_url(settings.redis_url))
    async with TestClient(TestServer(app)) as client:
        async def sign_in(password: str, **extra: str) -> str:
            resp = await client.post("/api/auth/login",
                                     json={"username": "dr.zhou", "password": password, **extra})
            assert resp.status == 200, await resp.text()
            return (await resp.json())["token"]

        token = await sign_in("s3cret-pass")
        r = _huizhen(env, "user", "list")
        assert r.returncode == 0
        assert "dr.zhou\tdoctor\tshuangxi\tenabled" in r.stdout
        r = _huizhen(env, "user", "disable", "dr.zhou")
        assert r.returncode == 0, r.stderr
        assert (await refused_within(client, bearer(token), HTTP_DEADLINE_S))["code"] == (
            "session_ended")
        bad = await client.post("/api/auth/login",
                                json={"username": "dr.zhou", "password": "s3cret-pass"})
        assert bad.status == 401
        assert "dr.zhou\tdoctor\tshuangxi\tdisabled" in _huizhen(env, "user", "list").stdout
        assert _huizhen(env, "user", "disable", "nobody").returncode == 2
        assert _huizhen(env, "user", "enable", "dr.zhou").returncode == 0
        token = await sign_in("s3cret-pass")
        # a new password from standard input ends the older session
        r = _huizhen(env, "user", "password", "dr.zhou", "--password", "-", stdin="n3w-secret\n")
        assert r.returncode == 0, r.stderr
        await refused_within(client, bearer(token), HTTP_DEADLINE_S)
        assert _huizhen(env, "user", "password", "dr.zhou", "--password", "short").returncode == 2
        kiosk = await sign_in("n3w-secret", device_token=device_token)
        r = _huizhen(env, "device", "list")
        [row] = [line for line in r.stdout.splitlines() if "Shuangxi kiosk" in line]
        device_id, clinic, state = row.split("\t")[:3]
        assert (clinic, state) == ("shuangxi", "active")
        r = _huizhen(env, "device", "revoke", "Shuangxi kiosk")
        assert r.returncode == 0 and device_id in r.stdout
        await refused_within(client, bearer(kiosk), HTTP_DEADLINE_S)
        assert f"{device_id}\tshuangxi\trevoked" in _huizhen(env, "device", "list").stdout
        assert _huizhen(env, "device", "revoke", device_id).returncode == 2  # already revoked
        denied = await client.post("/api/auth/login", json={
            "username": "dr.zhou", "password": "n3w-secret", "device_token": device_token})
        assert denied.status == 401
    actions = [e.fields for e in await store.audit.since()
               if e.fields["action"].startswith("admin.")]
    assert [a["action"] for a in actions] == [
        "admin.clinic.add", "admin.user.add", "admin.device.add", "admin.user.disable",
        "admin.user.enable", "admin.user.password", "admin.device.revoke"]
    assert all(a["role"] == "operator" and a["user"].startswith("cli:") for a in actions)
    assert actions[3]["target"] == "dr.zhou" and actions[6]["target"] == device_id


async def test_department_head_contacts_and_on_duty_commands(tmp_path, redis_server, store):
    env = {**os.environ, "HUIZHEN_REDIS_URL": redis_server.url(1),
           "HUIZHEN_DATA_DIR": str(tmp_path), "HUIZHEN_SECRET_KEY": "k" * 40}
    for args in (("clinic", "add", "Shuangxi", "--id", "shuangxi"),
                 ("department", "add", "Radiology", "--id", "radiology"),
                 ("user", "add", "exp.a", "--role", "expert", "--department", "radiology",
                  "--password", "s3cret-pass"),
                 ("user", "add", "dr.a", "--role", "doctor", "--clinic", "shuangxi",
                  "--password", "s3cret-pass"),
                 ("user", "add", "co.a", "--role", "coordinator", "--password", "s3cret-pass")):
        r = _huizhen(env, *args)
        assert r.returncode == 0, r.stderr
    r = _huizhen(env, "department", "head", "radiology", "dr.a")
    assert r.returncode == 2 and "one of its experts" in r.stderr
    r = _huizhen(env, "department", "head", "radiology", "exp.a")
    assert r.returncode == 0, r.stderr
    assert "head=exp.a" in _huizhen(env, "department", "list").stdout
    assert (await store.directory.get_department("radiology")).head == "exp.a"
    r = _huizhen(env, "clinic", "contacts", "shuangxi", "dr.a")
    assert r.returncode == 0 and await store.directory.clinic_contacts("shuangxi") == ["dr.a"]
    assert _huizhen(env, "clinic", "contacts", "shuangxi", "exp.a").returncode == 2
    r = _huizhen(env, "coordinator", "on-duty", "co.a")
    assert r.returncode == 0 and await store.directory.on_duty() == ["co.a"]
    events = [e.fields["action"] for e in await store.audit.recent(50)]
    assert {"admin.department.head", "admin.clinic.contacts",
            "admin.coordinators.on_duty"} <= set(events)

"""Sign-in, tokens, throttling, kiosk devices, and the rule that every route needs a token."""

from __future__ import annotations

import pytest

from server.auth.principal import Principal
from server.auth.tokens import TokenService
from server.store.directory import Role
from tests.integration.conftest import PASSWORD


async def test_login_returns_signed_token_and_user(client):
    resp = await client.post("/api/auth/login", json={"username": "dr.li", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"] == {
        "username": "dr.li", "display_name": "dr.li", "role": "doctor", "clinic": "qingshui",
        "department": None,
    }
    assert body["token"].count(".") == 2 and body["expires_at"] > 0
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert (await me.json())["username"] == "dr.li"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"username": "dr.li", "password": "wrong-password"}, 401, "invalid_credentials"),
        ({"username": "nobody", "password": PASSWORD}, 401, "invalid_credentials"),
        ({"username": "dr.li"}, 400, "invalid_parameter"),
        ({"username": "dr.li", "password": PASSWORD, "extra": 1}, 400, "invalid_parameter"),
        ([1, 2], 400, "invalid_parameter"),
    ],
)
async def test_bad_logins_get_clear_json_errors(client, payload, status, code):
    resp = await client.post("/api/auth/login", json=payload)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


async def test_login_needs_json(client):
    resp = await client.post("/api/auth/login", data=b"username=dr.li",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert "application/json" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/auth/login", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_repeated_failures_lock_the_account_for_a_while(client):
    for _ in range(10):
        r = await client.post("/api/auth/login",
                              json={"username": "dr.li", "password": "nope-nope"})
        assert r.status == 401
    r = await client.post("/api/auth/login", json={"username": "dr.li", "password": PASSWORD})
    assert r.status == 429
    assert (await r.json())["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize(
    "path",
    ["/api/me", "/api/presets", "/dicomweb/studies", "/dicomweb/studies/1.2.3/series",
     "/dicomweb/studies/1.2.3/series/1.2.4/instances/1.2.5/frames/1/rendered"],
)
async def test_every_route_needs_a_token(client, path):
    for headers in ({}, {"Authorization": "Bearer not.a.token"}, {"Authorization": "Basic abc"}):
        resp = await client.get(path, headers=headers)
        assert resp.status == 401, path
        assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_expired_token_is_refused_with_its_own_code(client, settings):
    tokens = TokenService(settings.secret_key, ttl_s=60)
    token, _ = tokens.issue(Principal("dr.li", Role.DOCTOR, "qingshui"), now=1_000_000)
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "token_expired"


async def test_token_signed_with_another_key_is_refused(client):
    forged, _ = TokenService("another-secret-" + "y" * 32, 600).issue(
        Principal("dr.li", Role.COORDINATOR))
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status == 401


async def test_public_routes_need_no_token(client):
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/"


async def test_kiosk_device_binds_session_to_its_clinic(client, store):
    _, token = await store.directory.add_device("kiosk 1", "qingshui")
    ok = await client.post("/api/auth/login", json={
        "username": "dr.li", "password": PASSWORD, "device_token": token})
    assert ok.status == 200
    me = await client.get("/api/me", headers={
        "Authorization": f"Bearer {(await ok.json())['token']}"})
    assert (await me.json())["device"]
    other = await client.post("/api/auth/login", json={
        "username": "dr.wang", "password": PASSWORD, "device_token": token})
    assert other.status == 403
    unknown = await client.post("/api/auth/login", json={
        "username": "dr.li", "password": PASSWORD, "device_token": "hzd_unknown"})
    assert unknown.status == 401


async def test_health_reports_unreachable_redis(aiohttp_client, settings, tests_free_port):
    from server.app import create_app
    from server.store import Store

    dead = Store.from_url(f"redis://127.0.0.1:{tests_free_port}/0")
    client = await aiohttp_client(create_app(settings, dead))
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["redis"] == "unreachable"

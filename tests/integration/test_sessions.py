"""Sessions that end: logout, password change, disabled users, revoked kiosks, expiry — over
HTTP and on an open page WebSocket (closed with 4401) — and sign-in limits under concurrency."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from server.auth.principal import Principal
from server.auth.sessions import STALENESS_S, WATCH_INTERVAL_S
from server.auth.tokens import TokenService
from server.store import keys
from server.store.directory import Role
from server.store.login_limits import MAX_PER_USER_ADDRESS
from tests.integration.conftest import PASSWORD
from tests.integration.ws_client import PageSocket

# How long an end decided outside this server process may take to be seen (plus slack for a
# loaded test machine): the cache staleness on HTTP, staleness + re-check interval on a socket.
HTTP_DEADLINE_S = STALENESS_S + 3
WS_DEADLINE_S = STALENESS_S + WATCH_INTERVAL_S + 3


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(client, username: str, password: str = PASSWORD, **extra) -> dict:
    resp = await client.post("/api/auth/login",
                             json={"username": username, "password": password, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def refused_within(client, headers: dict[str, str], deadline_s: float) -> dict:
    """Poll an authenticated route until it answers 401; fail if that takes over `deadline_s`.
    (/api/presets: it looks at nothing but the session, unlike /api/me.)"""
    end = time.monotonic() + deadline_s
    while True:
        resp = await client.get("/api/presets", headers=headers)
        if resp.status == 401:
            return (await resp.json())["error"]
        assert resp.status == 200
        assert time.monotonic() < end, "the session was still live after the deadline"
        await asyncio.sleep(0.1)


async def audit_actions(store, action: str) -> list[dict[str, str]]:
    return [e.fields for e in await store.audit.since() if e.fields["action"] == action]


async def open_socket(client, token: str) -> PageSocket:
    sock = PageSocket(await client.ws_connect("/api/ws"))
    await sock.send(type="auth", token=token)
    await sock.expect("ready")
    return sock


# -- logout ----------------------------------------------------------------------------------


async def test_logout_ends_only_the_presented_session(client, store):
    first = await sign_in(client, "dr.li")
    second = await sign_in(client, "dr.li")
    resp = await client.post("/api/auth/logout", headers=bearer(first["token"]))
    assert resp.status == 200
    again = await client.get("/api/me", headers=bearer(first["token"]))
    assert again.status == 401  # at once: this process forgot its cached answer
    assert (await again.json())["error"]["code"] == "session_ended"
    assert (await client.get("/api/me", headers=bearer(second["token"]))).status == 200
    [record] = await audit_actions(store, "auth.logout")
    assert record["user"] == "dr.li" and record["role"] == "doctor"
    assert record["clinic"] == "qingshui" and record["remote"] == "127.0.0.1"


async def test_logout_closes_the_open_socket_with_4401(client):
    token = (await sign_in(client, "exp.zhang"))["token"]
    sock = await open_socket(client, token)
    assert (await client.post("/api/auth/logout", headers=bearer(token))).status == 200
    err = await sock.expect("error", timeout=WS_DEADLINE_S)
    assert err["code"] == "session_ended"
    assert await sock.closed() == 4401
    # and the ended token cannot open a new one
    again = PageSocket(await client.ws_connect("/api/ws"))
    await again.send(type="auth", token=token)
    assert (await again.expect("error"))["code"] == "session_ended"
    assert await again.closed() == 4401


async def test_an_expiring_token_closes_its_socket(client, settings):
    tokens = TokenService(settings.secret_key, ttl_s=2)
    token, _ = tokens.issue(Principal("exp.zhang", Role.EXPERT, department="radiology"))
    sock = await open_socket(client, token)
    err = await sock.expect("error", timeout=WS_DEADLINE_S)
    assert err["code"] == "token_expired"
    assert await sock.closed() == 4401


# -- password change -------------------------------------------------------------------------


async def test_password_change_ends_every_older_session(client, store):
    a = await sign_in(client, "dr.li")
    b = await sign_in(client, "dr.li")
    sock = await open_socket(client, b["token"])
    wrong = await client.post("/api/auth/password", headers=bearer(a["token"]),
                              json={"old_password": "not-it-at-all", "new_password": "n3w-pass-wd"})
    assert wrong.status == 401
    assert (await client.get("/api/me", headers=bearer(a["token"]))).status == 200
    short = await client.post("/api/auth/password", headers=bearer(a["token"]),
                              json={"old_password": PASSWORD, "new_password": "short"})
    assert short.status == 400
    resp = await client.post("/api/auth/password", headers=bearer(a["token"]),
                             json={"old_password": PASSWORD, "new_password": "n3w-pass-wd"})
    assert resp.status == 200, await resp.text()
    fresh = (await resp.json())["token"]
    for old in (a["token"], b["token"]):
        r = await client.get("/api/me", headers=bearer(old))
        assert r.status == 401 and (await r.json())["error"]["code"] == "session_ended"
    assert (await client.get("/api/me", headers=bearer(fresh))).status == 200
    assert (await sock.expect("error", timeout=WS_DEADLINE_S))["code"] == "session_ended"
    assert await sock.closed() == 4401
    old_pw = await client.post("/api/auth/login",
                               json={"username": "dr.li", "password": PASSWORD})
    assert old_pw.status == 401
    await sign_in(client, "dr.li", "n3w-pass-wd")
    assert len(await audit_actions(store, "auth.password_changed")) == 1
    assert len(await audit_actions(store, "auth.password_failed")) == 1


# -- ended elsewhere (CLI, another server process): seen within the cache staleness ----------


async def test_disabled_user_loses_every_session_and_cannot_sign_in(client, store):
    token = (await sign_in(client, "dr.li"))["token"]
    sock = await open_socket(client, token)
    assert (await client.get("/api/me", headers=bearer(token))).status == 200
    await store.directory.set_disabled("dr.li", True)  # as `huizhen user disable` does
    err = await refused_within(client, bearer(token), HTTP_DEADLINE_S)
    assert err["code"] == "session_ended"
    assert (await sock.expect("error", timeout=WS_DEADLINE_S))["code"] == "session_ended"
    assert await sock.closed() == 4401
    r = await client.post("/api/auth/login", json={"username": "dr.li", "password": PASSWORD})
    assert r.status == 401
    [failed] = await audit_actions(store, "auth.login_failed")
    assert failed["reason"] == "disabled"
    await store.directory.set_disabled("dr.li", False)
    await sign_in(client, "dr.li")
    # re-enabling does not bring the old session back
    assert (await client.get("/api/me", headers=bearer(token))).status == 401


async def test_revoked_kiosk_loses_its_sessions_and_its_token(client, store):
    device, device_token = await store.directory.add_device("Qingshui kiosk 1", "qingshui")
    kiosk = (await sign_in(client, "dr.li", device_token=device_token))["token"]
    desk = (await sign_in(client, "dr.li"))["token"]
    revoked = await store.directory.revoke_device(device.id)
    assert revoked.revoked_at > 0
    await refused_within(client, bearer(kiosk), HTTP_DEADLINE_S)
    assert (await client.get("/api/me", headers=bearer(desk))).status == 200
    r = await client.post("/api/auth/login", json={
        "username": "dr.li", "password": PASSWORD, "device_token": device_token})
    assert r.status == 401
    assert [d.revoked_at > 0 for d in await store.directory.devices()] == [True]


# -- sign-in limits --------------------------------------------------------------------------


async def test_parallel_wrong_passwords_check_at_most_the_limit(client, store):
    attempts = [client.post("/api/auth/login",
                            json={"username": "dr.li", "password": f"wrong-{i:04d}"})
                for i in range(40)]
    statuses = sorted(r.status for r in await asyncio.gather(*attempts))
    assert statuses == [401] * MAX_PER_USER_ADDRESS + [429] * (40 - MAX_PER_USER_ADDRESS)
    # each checked password leaves one auth.login_failed; the refused ones were never checked
    assert len(await audit_actions(store, "auth.login_failed")) == MAX_PER_USER_ADDRESS
    [locked] = await audit_actions(store, "auth.login_locked")
    assert locked["user"] == "dr.li" and locked["remote"] == "127.0.0.1"
    r = await client.post("/api/auth/login", json={"username": "dr.li", "password": PASSWORD})
    assert r.status == 429
    body = await r.json()
    wait = body["error"]["details"]["retry_after_s"]
    assert 0 < wait <= 15 * 60 and r.headers["Retry-After"] == str(wait)


async def test_a_lock_from_one_address_leaves_other_addresses_free(client, store):
    for _ in range(MAX_PER_USER_ADDRESS):
        r = await client.post("/api/auth/login", json={"username": "dr.li", "password": "nope-x"})
        assert r.status == 401
    r = await client.post("/api/auth/login", json={"username": "dr.li", "password": PASSWORD})
    assert r.status == 429
    # 127.0.0.2 is another loopback address: a real other client address, no header forged
    url = client.make_url("/api/auth/login")
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (aiohttp.ClientSession(connector=connector) as other,
                other.post(url, json={"username": "dr.li", "password": PASSWORD}) as resp):
        assert resp.status == 200, await resp.text()
    logins = await audit_actions(store, "auth.login")
    assert [e["remote"] for e in logins] == ["127.0.0.2"]


async def test_unknown_names_create_no_key_per_name(client, store):
    for i in range(12):
        r = await client.post("/api/auth/login",
                              json={"username": f"nobody-{i}", "password": "whatever-1"})
        assert r.status == 401
    names = [k async for k in store.redis.scan_iter(match="hz:login-attempts:*")]
    assert names == [keys.login_attempts_address("127.0.0.1")]
    assert await store.redis.get(names[0]) == "12"


async def test_a_success_does_not_count_against_the_address(client, store):
    for _ in range(3):
        await sign_in(client, "dr.li")
    assert await store.redis.get(keys.login_attempts_address("127.0.0.1")) == "0"
    assert len(await audit_actions(store, "auth.login")) == 3


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_large_login_body_is_refused_early(client, chunked):
    payload = b'{"username": "dr.li", "password": "' + b"x" * (1024 * 1024) + b'"}'
    if chunked:
        async def gen():
            for i in range(0, len(payload), 65536):
                yield payload[i:i + 65536]
        data = gen()
    else:
        data = payload
    resp = await client.post("/api/auth/login", data=data,
                             headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_the_session_check_is_cached_on_the_hot_path(client, store):
    """Fifty requests with one token: one session read per staleness window, not one per
    request (HMGET of the user hash is the session read; /api/presets reads nothing else)."""
    token = (await sign_in(client, "dr.li"))["token"]

    async def session_reads() -> int:
        stats = await store.redis.info("commandstats")
        return int(stats.get("cmdstat_hmget", {}).get("calls", 0))

    before = await session_reads()
    started = time.monotonic()
    for _ in range(50):
        assert (await client.get("/api/presets", headers=bearer(token))).status == 200
    reads = await session_reads() - before
    # one read per staleness window the loop spanned (+1 for a window turning over)
    windows = int((time.monotonic() - started) / STALENESS_S) + 1
    assert 1 <= reads <= windows + 1 < 50, (reads, windows)


async def test_an_address_guessing_many_names_is_locked(client, store):
    from server import appkeys

    limits = client.app[appkeys.STORE].login_limits
    limits.per_address = 5  # the same code path as the default 100, reached in fewer attempts
    for i in range(5):
        r = await client.post("/api/auth/login",
                              json={"username": f"guess-{i}", "password": "whatever-1"})
        assert r.status == 401
    for name in ("guess-99", "dr.wang"):  # any name, even an existing user, from this address
        r = await client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status == 429
        assert int(r.headers["Retry-After"]) > 0
    [locked] = await audit_actions(store, "auth.login_locked")  # audited once per lock
    assert locked["remote"] == "127.0.0.1"
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (aiohttp.ClientSession(connector=connector) as other,
                other.post(client.make_url("/api/auth/login"),
                           json={"username": "dr.wang", "password": PASSWORD}) as resp):
        assert resp.status == 200

"""Security headers, CORS, HUIZHEN_PUBLIC_URL, trusted proxies and the JWT message, through the
real HTTP API of an app on a loopback port."""

from __future__ import annotations

import asyncio
import dataclasses
from ipaddress import ip_network

import pytest
from pydicom.uid import generate_uid

from server.app import create_app
from server.config import Settings
from server.store import Store
from server.transport.proxies import real_client
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes
from tests.integration.conftest import login

VIEWER = "https://viewer.example.org"


@pytest.fixture
def make_client(aiohttp_client, settings, store, people):
    async def make(**changes):
        s = dataclasses.replace(settings, **changes)
        return await aiohttp_client(create_app(s, Store.from_url(s.redis_url)))

    return make


async def _study(client, h) -> str:
    study = generate_uid()
    body, ctype = multipart_related([to_bytes(ct_dataset(study_uid=study))])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    return study


async def test_security_headers_on_pages_api_and_errors(client, auth) -> None:
    h = await auth("dr.li")
    for path, headers, status in (
        ("/ui/", {}, 200),
        ("/ui/js/pages/app.js", {}, 200),
        ("/api/me", {}, 401),
        ("/api/presets", h, 200),
        ("/dicomweb/studies", h, 200),
        ("/no/such/route", h, 404),
    ):
        resp = await client.get(path, headers=headers)
        assert resp.status == status, path
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Server"] == "Huizhen", path
        # Plain HTTP: no HSTS (RFC 6797 forbids it on insecure transport).
        assert "Strict-Transport-Security" not in resp.headers


async def test_server_header_has_no_version_on_protocol_errors(client) -> None:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = (await reader.read(4096)).decode(errors="replace")
    writer.close()
    assert head.split("\r\n")[0].split(" ")[1] == "400", head
    server = [line for line in head.split("\r\n") if line.lower().startswith("server:")]
    assert server == ["Server: Huizhen"], head


async def test_jwt_library_messages_are_not_echoed(client) -> None:
    for token in ("abc", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."):
        resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 401
        error = (await resp.json())["error"]
        assert error == {"code": "unauthenticated",
                         "message": "the token is not valid: sign in again"}


async def test_cors_off_by_default(client) -> None:
    resp = await client.options("/dicomweb/studies", headers={
        "Origin": VIEWER, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_for_listed_origins_only(make_client) -> None:
    client = await make_client(cors_origins=(VIEWER,))
    h = await login(client, "dr.li")
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    # The preflight carries no token and is answered anyway.
    resp = await client.options("/dicomweb/studies", headers={"Origin": VIEWER, **preflight})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers
    resp = await client.get("/dicomweb/studies", headers={"Origin": VIEWER, **h})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == VIEWER
    assert "Origin" in resp.headers.getall("Vary")
    # Errors are readable by the viewer too.
    resp = await client.get("/dicomweb/studies", headers={"Origin": VIEWER})
    assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == VIEWER
    # Another origin gets no CORS header at all.
    evil = "https://evil.example"
    resp = await client.options("/dicomweb/studies", headers={"Origin": evil, **preflight})
    assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/dicomweb/studies", headers={"Origin": evil, **h})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    # Only DICOMweb is shared: sign-in and the pages stay same-origin.
    resp = await client.options("/api/auth/login", headers={"Origin": VIEWER, **preflight})
    assert resp.status == 403


async def test_urls_never_echo_the_host_header(client, auth) -> None:
    h = await auth("dr.li")
    study = await _study(client, h)
    resp = await client.get("/dicomweb/studies", headers={**h, "Host": "evil.example",
                                                          "X-Forwarded-Host": "evil.example"})
    text = await resp.text()
    assert "evil" not in text
    (row,) = await resp.json()
    assert row["00081190"]["Value"] == [f"/dicomweb/studies/{study}"]


async def test_public_url_in_every_absolute_url(make_client) -> None:
    public = "https://pacs.example.org:8443"
    client = await make_client(public_url=public)
    h = await login(client, "dr.li")
    study = generate_uid()
    body, ctype = multipart_related([to_bytes(ct_dataset(study_uid=study))])
    resp = await client.post("/dicomweb/studies", data=body,
                             headers={**h, "Content-Type": ctype, "Host": "evil.example"})
    stow = await resp.json()
    assert stow["00081190"]["Value"] == [f"{public}/dicomweb/studies/{study}"]
    retrieve = stow["00081199"]["Value"][0]["00081190"]["Value"][0]
    assert retrieve.startswith(f"{public}/dicomweb/studies/{study}/series/")
    (row,) = await (await client.get("/dicomweb/studies", headers=h)).json()
    assert row["00081190"]["Value"] == [f"{public}/dicomweb/studies/{study}"]
    (series,) = await (await client.get(f"/dicomweb/studies/{study}/series", headers=h)).json()
    series_uid = series["0020000E"]["Value"][0]
    meta = await (await client.get(f"/dicomweb/studies/{study}/metadata", headers=h)).json()
    assert meta[0]["7FE00010"]["BulkDataURI"].startswith(
        f"{public}/dicomweb/studies/{study}/series/{series_uid}/instances/")
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["servers"] == [{"url": public}]


async def _audited_remote(store, action: str) -> str:
    for ev in await store.audit.recent(20):
        if ev.fields.get("action") == action:
            return ev.fields.get("remote", "")
    raise AssertionError(f"no {action} audit event")


async def test_forwarded_for_ignored_without_trusted_proxies(client, auth, store) -> None:
    h = await auth("dr.li")
    resp = await client.get("/dicomweb/studies", headers={
        **h, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert resp.status == 200
    assert "Strict-Transport-Security" not in resp.headers
    assert await _audited_remote(store, "qido.studies") == "127.0.0.1"


async def test_trusted_proxy_gives_the_real_client_to_the_audit(
    make_client, store, tmp_path
) -> None:
    # Parsed from the environment as a deployment sets it (the type the middleware gets).
    trusted = Settings.from_env({"HUIZHEN_TRUSTED_PROXIES": "127.0.0.0/8, ::1",
                                 "HUIZHEN_DATA_DIR": str(tmp_path),
                                 "HUIZHEN_SECRET_KEY": "k" * 40}).trusted_proxies
    assert trusted == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    client = await make_client(trusted_proxies=trusted)
    h = await login(client, "dr.li")
    # Sign-in is counted against the real client too.
    resp = await client.post("/api/auth/login", headers={"X-Forwarded-For": "203.0.113.9"},
                             json={"username": "dr.li", "password": "wrong-password"})
    assert resp.status == 401
    # The client forged a first address; the proxy appended the one it saw.
    resp = await client.get("/dicomweb/studies", headers={
        **h, "X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"})
    assert resp.status == 200
    # The proxy terminated TLS: the request counts as secure (HSTS).
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    assert await _audited_remote(store, "qido.studies") == "203.0.113.9"


def test_real_client_walks_from_the_right() -> None:
    nets = [ip_network("10.0.0.0/8"), ip_network("::1/128")]
    assert real_client("10.0.0.2", ["1.2.3.4, 10.0.0.7"], nets) == "1.2.3.4"
    assert real_client("10.0.0.2", ["6.6.6.6, 1.2.3.4"], nets) == "1.2.3.4"
    assert real_client("10.0.0.2", ["6.6.6.6", "1.2.3.4:5555"], nets) == "1.2.3.4"
    assert real_client("::1", ["[2001:db8::1]:443"], nets) == "2001:db8::1"
    assert real_client("8.8.8.8", ["1.2.3.4"], nets) == "8.8.8.8"  # untrusted peer
    assert real_client("10.0.0.2", ["not-an-ip"], nets) == "10.0.0.2"
    assert real_client("10.0.0.2", [], nets) == "10.0.0.2"

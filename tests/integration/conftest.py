"""An in-process Huizhen app on a test port, its own Redis database and data dir per test."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.auth.passwords import hash_password
from server.config import Settings
from server.store import Store
from server.store.directory import Role
from tests.integration.ws_client import PageSocket

PASSWORD = "correct-horse-battery"
REDIS_DB = 1


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def settings(tmp_path, redis_server) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        redis_url=redis_server.url(REDIS_DB),
        secret_key="test-secret-key-" + "x" * 32,
        max_upload_mb=4,
        max_image_pixels=50_000_000,
        render_threads=2,
    )


@pytest.fixture
async def store(settings) -> Store:
    store = Store.from_url(settings.redis_url)
    await store.redis.flushdb()
    yield store
    await store.redis.flushdb()
    await store.close()


@pytest.fixture
async def people(store, password_hash) -> None:
    """Two clinics, one department, and one user of every role."""
    d = store.directory
    await d.add_clinic("Qingshui Township", "qingshui")
    await d.add_clinic("Hetang Township", "hetang")
    await d.add_department("Radiology", "radiology")
    for username, role, clinic, dept in (
        ("dr.li", Role.DOCTOR, "qingshui", None),
        ("dr.wang", Role.DOCTOR, "hetang", None),
        ("exp.zhang", Role.EXPERT, None, "radiology"),
        ("coord.liu", Role.COORDINATOR, None, None),
        ("admin", Role.ADMIN, None, None),
    ):
        await d.add_user(username, role=role, password_hash=password_hash, clinic=clinic,
                         department=dept)


@pytest.fixture
async def client(aiohttp_client, settings, store, people) -> TestClient:
    # create_app's cleanup closes the store it is given; hand it its own connection.
    return await aiohttp_client(create_app(settings, Store.from_url(settings.redis_url)))


async def login(client: TestClient, username: str) -> dict[str, str]:
    resp = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@pytest.fixture
async def auth(client):
    async def headers(username: str) -> dict[str, str]:
        return await login(client, username)

    return headers


@pytest.fixture
async def more_people(store, password_hash, people) -> None:
    """Beside `people`: a Neurology department, a second radiologist (exp.li) and a neurologist
    (exp.chen), for invitations, races and other departments."""
    await store.directory.add_department("Neurology", "neurology")
    await store.directory.add_user("exp.li", role=Role.EXPERT, password_hash=password_hash,
                                   department="radiology")
    await store.directory.add_user("exp.chen", role=Role.EXPERT, password_hash=password_hash,
                                   department="neurology")


@pytest.fixture
async def page_sockets(client, auth):
    """`await page_sockets("dr.li")`: a page WebSocket signed in as that user (or with the
    given bearer `headers`), past `ready`; every one is closed after the test."""
    sockets: list[PageSocket] = []

    async def open_socket(username: str, headers: dict | None = None) -> PageSocket:
        token = (headers or await auth(username))["Authorization"].split()[1]
        sock = PageSocket(await client.ws_connect("/api/ws"))
        await sock.send(type="auth", token=token)
        await sock.expect("ready", user=username)
        sockets.append(sock)
        return sock

    yield open_socket
    for s in sockets:
        await s.close()


@pytest.fixture
def tests_free_port() -> int:
    from tests.conftest import free_port

    return free_port()


@pytest.fixture
async def server_with(aiohttp_client, settings, store, people):
    """A server with some settings changed: `await server_with(ws_max_per_user=2)`."""

    async def make(**changes):
        s = dataclasses.replace(settings, **changes)
        return await aiohttp_client(create_app(s, Store.from_url(s.redis_url)))

    return make

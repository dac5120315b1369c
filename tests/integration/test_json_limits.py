"""JSON bodies through the real API (login is one JSON route): bounded, never a 500."""

from __future__ import annotations

import pytest

from server.api.json_body import MAX_JSON_BODY
from tests.integration.conftest import PASSWORD

LOGIN = "/api/auth/login"
JSON = {"Content-Type": "application/json"}


async def test_a_body_over_64_kib_is_413_before_it_is_read(client):
    body = b'{"username": "dr.li", "password": "' + b"x" * MAX_JSON_BODY + b'"}'
    resp = await client.post(LOGIN, data=body, headers=JSON)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_a_chunked_body_is_counted_as_it_arrives(client):
    async def chunks():
        yield b'{"username": "dr.li", "password": "'
        for _ in range(64):
            yield b"x" * 4096  # 256 KiB in all, no Content-Length
        yield b'"}'

    resp = await client.post(LOGIN, data=chunks(), headers=JSON)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_a_body_at_the_limit_is_read(client):
    pad = MAX_JSON_BODY - len(b'{"username": "dr.li", "password": ""}')
    resp = await client.post(
        LOGIN, data=b'{"username": "dr.li", "password": "' + b"x" * pad + b'"}', headers=JSON
    )
    assert resp.status in (400, 401)  # read and judged, not refused for its size
    assert (await resp.json())["error"]["code"] != "payload_too_large"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"username": ' * 4_000 + b"1" + b"}" * 4_000,
        b'{"username": "dr.li", "password": ' + b"9" * 5000 + b"}",
        b'{"username": "dr.li", "password": 1e999999}',
        b'{"username": "dr.li", "password": NaN}',
        b'{"username": "\xc3\x28", "password": "x"}',
        b'{"username": "dr.li", "password": "' + PASSWORD.encode() + b'"',
    ],
)
async def test_hostile_json_is_a_400_with_a_json_body(client, body):
    resp = await client.post(LOGIN, data=body, headers=JSON)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_json" and error["message"]

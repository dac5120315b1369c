"""GET /api/openapi.json is served without a token and is the document of server/api/openapi.py."""

from __future__ import annotations

from server.api import openapi


async def test_openapi_is_public_and_lists_the_routes(client) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == set(openapi.PATHS)
    assert doc["servers"] == [{"url": "/"}]

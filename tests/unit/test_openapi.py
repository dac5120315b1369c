"""The OpenAPI document (server/api/openapi.py) names exactly the routes the application serves."""

from __future__ import annotations

import re

from aiohttp import web

from server.api import openapi
from server.app import create_app
from server.config import Settings
from server.store import Store

_METHODS = ("get", "put", "post", "delete", "patch")


def _registered(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        routes.add((route.method, resource.canonical))
    return routes


def _app(tmp_path) -> web.Application:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 40, redis_url="redis://127.0.0.1:1")
    # No Redis is contacted: the store connects lazily and the app is never started.
    return create_app(settings, Store.from_url(settings.redis_url))


def test_every_registered_route_is_documented_and_nothing_else(tmp_path) -> None:
    registered = _registered(_app(tmp_path)) - set(openapi.UNDOCUMENTED)
    documented = {
        (method.upper(), path)
        for path, ops in openapi.PATHS.items()
        for method in ops
        if method in _METHODS
    }
    missing = sorted(registered - documented)
    assert not missing, (
        "routes served but missing from the OpenAPI document: "
        + ", ".join(f"{m} {p}" for m, p in missing)
        + " — add each under PATHS in server/api/openapi.py (parameters, body, responses; "
        "the fuzz test uses them), or to UNDOCUMENTED there if it is not part of the API"
    )
    stale = sorted(documented - registered)
    assert not stale, (
        "server/api/openapi.py PATHS documents routes the app does not serve: "
        + ", ".join(f"{m} {p}" for m, p in stale)
    )


def test_path_parameters_match_the_template() -> None:
    for path, ops in openapi.PATHS.items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}: path parameters {declared}"


def test_document_is_valid_openapi_3_1() -> None:
    import schemathesis

    doc = openapi.document("https://pacs.example.org")
    assert doc["openapi"] == "3.1.0"
    assert doc["servers"] == [{"url": "https://pacs.example.org"}]
    schema = schemathesis.openapi.from_dict(doc)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in openapi.PATHS.values())
    assert openapi.document(None)["servers"] == [{"url": "/"}]

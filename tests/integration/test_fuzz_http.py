"""Property-based fuzzing of the whole HTTP API from its OpenAPI document (schemathesis +
hypothesis), against a real `huizhen serve` on loopback, with real tokens of every role.

Every operation in /api/openapi.json gets positive (schema-valid) and negative (schema-violating)
requests. The property: no answer is a 5xx, and no body says `internal_error`. Path parameters
may also be the UIDs of a real study, so rendering, frames, metadata and QIDO parameters are
fuzzed against real data, not only against 404s. A route added to server/api/openapi.py is
fuzzed here without further work.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import time
from collections import Counter
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from pydicom.uid import generate_uid
from schemathesis import GenerationMode

from server.store import Store
from server.store.directory import Role
from tests.conftest import free_port
from tests.dicom_factory import ct_bytes, multipart_related
from tests.integration.conftest import PASSWORD
from tests.integration.serve_process import ServeProcess, short_data_dir

pytestmark = pytest.mark.timeout(600)

REDIS_DB = 9
MIN_REQUESTS = 2000
# Spread over the operations (those without inputs stop early: nothing to vary). Operations
# that hash a password (argon2, tens of ms of CPU each, and a logout costs a new sign-in) get
# fewer, so the whole suite stays within its time on 2 cores.
TARGET_REQUESTS = int(os.environ.get("HZ_FUZZ_REQUESTS", "2200"))
EXPENSIVE = {"POST /api/auth/login", "POST /api/auth/logout", "POST /api/auth/password"}
EXPENSIVE_EXAMPLES = 20
ROLES = ("dr.li", "dr.wang", "exp.zhang", "coord.liu", "admin", "kiosk")


@schemathesis.serializer("multipart/related", "application/dicom")
def _raw_bytes(ctx: Any, value: Any) -> dict[str, Any]:
    # The fuzzer's binary strings go out as they are: garbage multipart and DICOM bodies.
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode("utf-8", "surrogatepass")}


async def _seed(redis_url: str, password_hash: str) -> str:
    store = Store.from_url(redis_url)
    try:
        await store.redis.flushdb()
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
        _, device_token = await d.add_device("fuzz kiosk", "qingshui")
        return device_token
    finally:
        await store.close()


class Tokens:
    """A real token per role; renewed if a fuzzed request ended its session (logout...)."""

    def __init__(self, url: str, device_token: str) -> None:
        self.url, self.device_token = url, device_token
        self._tokens: dict[str, str] = {}
        self.renewed = 0

    def login(self, role: str) -> str:
        body: dict[str, str] = {"username": "dr.li" if role == "kiosk" else role,
                                "password": PASSWORD}
        if role == "kiosk":
            body["device_token"] = self.device_token
        # From an address of its own: the fuzzed sign-ins must not lock out the fuzzer's.
        resp = requests.post(f"{self.url}api/auth/login", json=body, timeout=30,
                             headers={"X-Forwarded-For": "198.19.0.1"})
        assert resp.status_code == 200, f"renewing the {role} token: {resp.text}"
        self._tokens[role] = resp.json()["token"]
        return self._tokens[role]

    def get(self, role: str) -> str:
        return self._tokens.get(role) or self.login(role)

    def renew(self, role: str) -> None:
        self.renewed += 1
        self.login(role)


@pytest.fixture(scope="module")
def fuzz_server(redis_server, password_hash):
    redis_url = redis_server.url(REDIS_DB)
    device_token = asyncio.run(_seed(redis_url, password_hash))
    data_dir = short_data_dir()
    port = free_port()
    server = ServeProcess(data_dir, port, ServeProcess.environment(
        data_dir, port, HUIZHEN_REDIS_URL=redis_url, HUIZHEN_LOG_LEVEL="WARNING",
        HUIZHEN_MAX_UPLOAD_MB="8",
        # The fuzzer speaks for many clients (X-Forwarded-For), so sign-in limits per address
        # apply to the fuzzed requests and not to the token renewals.
        HUIZHEN_TRUSTED_PROXIES="127.0.0.0/8"))
    url = server.start()
    try:
        tokens = Tokens(url, device_token)
        try:
            for role in ROLES:
                tokens.get(role)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{server.output()[-4000:]}") from None
        study, series, sop = generate_uid(), generate_uid(), generate_uid()
        body, ctype = multipart_related(
            [ct_bytes(study_uid=study, series_uid=series, sop_uid=sop, rows=64, columns=64)])
        resp = requests.post(f"{url}dicomweb/studies", data=body, timeout=30, headers={
            "Authorization": f"Bearer {tokens.get('dr.li')}", "Content-Type": ctype})
        assert resp.status_code == 200, resp.text
        yield {"url": url, "tokens": tokens, "server": server,
               "uids": {"study": study, "series": series, "instance": sop}}
    finally:
        assert server.stop() == 0, server.output()
        shutil.rmtree(data_dir, ignore_errors=True)


def _with_real_uids(doc: dict[str, Any], uids: dict[str, str]) -> dict[str, Any]:
    """The served document, with path parameters that may also be the real study's UIDs (and
    frame numbers that exist), so generation reaches past the 404s."""
    doc = copy.deepcopy(doc)
    real = {**{k: str(v) for k, v in uids.items()}, "frame": "1", "frames": "1",
            "tag": "7FE00010"}
    for ops in doc["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] in real:
                    param["schema"] = {"anyOf": [{"enum": [real[param["name"]]]},
                                                 param["schema"]]}
    return doc


def _strategy(operation: Any) -> st.SearchStrategy:
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # nothing to negate (no parameters, no body)
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


def test_fuzz_every_operation_no_5xx(fuzz_server) -> None:
    url, tokens = fuzz_server["url"], fuzz_server["tokens"]
    served = requests.get(f"{url}api/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(_with_real_uids(served, fuzz_server["uids"]))
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()

    only = os.environ.get("HZ_FUZZ_ONLY")
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if not only or only in op.label]
    cheap = [op for op in operations if op.label not in EXPENSIVE]
    budget = TARGET_REQUESTS - EXPENSIVE_EXAMPLES * (len(operations) - len(cheap))
    per_operation = max(20, -(-budget // max(1, len(cheap))))
    clients = iter(range(10**9))
    for operation in operations:
        examples = EXPENSIVE_EXAMPLES if operation.label in EXPENSIVE else per_operation

        @hypothesis.settings(
            max_examples=examples, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
            print_blob=True,
        )
        @given(case=_strategy(operation), role=st.sampled_from(ROLES))
        def run(case: Any, role: str) -> None:
            headers = {"Authorization": f"Bearer {tokens.get(role)}",
                       "X-Forwarded-For": f"198.18.{next(clients) % 64}.1"}
            response = case.call(base_url=url.rstrip("/"), session=session, headers=headers,
                                 timeout=60)
            statuses[response.status_code] += 1
            body = response.content[:4096].decode("utf-8", "replace")
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {body[:500]}")
            assert "internal_error" not in body, body[:500]
            if response.status_code == 401 and "auth/login" not in case.path:
                tokens.renew(role)  # this request ended the session it carried

        started, before = time.monotonic(), sum(statuses.values())
        try:
            run()
        except Exception as exc:  # AssertionError, or hypothesis' own (flaky, grouped)
            failures.append(f"{operation.label}: {exc!r}"[:3000])
        print(f"{operation.label}: {sum(statuses.values()) - before} requests in "
              f"{time.monotonic() - started:.1f} s")

    total = sum(statuses.values())
    if failures:
        # The server's side of each failure (its log has the traceback).
        failures.append(fuzz_server["server"].output()[-6000:])
    assert not failures, "\n".join(failures)
    assert 500 not in statuses and 503 not in statuses
    if not only:
        assert total >= MIN_REQUESTS, f"only {total} requests were generated: {dict(statuses)}"
        # The fuzz reached real data too, not only refusals.
        assert statuses[200] > 100, dict(statuses)

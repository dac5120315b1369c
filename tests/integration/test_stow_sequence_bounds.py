"""A file of millions of tiny nested items in defined-length sequences is refused with a JSON 4xx
through STOW-RS and the kiosk upload, after a bounded parse, while other uploads are served."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from media.imaging import validation
from tests.dicom_factory import ct_bytes, multipart_related, with_nested_items

STOW = "/dicomweb/studies"


@pytest.fixture
def settings(settings):
    # The crafted file is 28 MB: over the suite's 4 MiB upload limit, which would refuse it
    # before validation.
    return dataclasses.replace(settings, max_upload_mb=64)


@pytest.fixture(scope="module")
def nested() -> bytes:
    return with_nested_items(1_000_000)  # 2,000,000 items


def _stored(settings) -> list:
    return sorted(p for p in settings.dicom_dir.rglob("*.dcm") if p.is_file())


def _form(name: str, data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("files", data, filename=name, content_type="application/octet-stream")
    return form


async def test_nested_items_are_refused_through_stow_and_others_are_served(
    client, auth, settings, nested
):
    h = await auth("dr.li")
    body, ctype = multipart_related([nested])
    bad = client.post(STOW, data=body, headers={**h, "Content-Type": ctype})
    good_body, good_type = multipart_related([ct_bytes()])
    good = client.post(STOW, data=good_body, headers={**h, "Content-Type": good_type})
    bad_resp, good_resp = await asyncio.gather(bad, good)
    assert good_resp.status == 200, await good_resp.text()
    assert bad_resp.status == 409, await bad_resp.text()
    failed = (await bad_resp.json())["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xC000]
    assert "too many elements or sequence items" in failed[0]["00000902"]["Value"][0]
    assert len(_stored(settings)) == 1


async def test_nested_items_are_refused_through_the_kiosk_upload(client, auth, settings, nested):
    h = await auth("dr.li")
    resp = await client.post("/api/uploads", headers=h, data=_form("nested.dcm", nested))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "nothing_stored"
    assert body["failed"][0]["error"]["code"] == "invalid_dicom"
    assert "too many elements or sequence items" in body["failed"][0]["error"]["message"]
    resp = await client.post("/api/uploads", headers=h, data=_form("ok.dcm", ct_bytes()))
    assert resp.status == 200, await resp.text()
    assert len(_stored(settings)) == 1


async def test_a_deep_nest_is_refused_by_the_bytes_it_copies(client, auth, settings, monkeypatch):
    monkeypatch.setattr(validation, "MAX_SEQUENCE_BYTES", 4 * 2**20)
    h = await auth("dr.li")
    resp = await client.post("/api/uploads", headers=h,
                             data=_form("deep.dcm", with_nested_items(20_000, depth=4)))
    assert resp.status == 400
    failed = (await resp.json())["failed"][0]["error"]
    assert failed["code"] == "image_too_large" and "sequences nest" in failed["message"]
    assert _stored(settings) == []

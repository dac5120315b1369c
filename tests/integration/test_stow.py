"""STOW-RS and the kiosk upload: valid input is stored once; bad input is refused clearly and
leaves nothing behind."""

from __future__ import annotations

import io
import zipfile

import aiohttp
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_bytes, ct_dataset, multipart_related, to_bytes

STOW = "/dicomweb/studies"


def _files(settings) -> list:
    """Stored DICOM files (each may have its rendering-model sidecar beside it)."""
    return sorted(p for p in settings.dicom_dir.rglob("*.dcm") if p.is_file())


def _leftover_temp(settings) -> list:
    tmp = settings.data_dir / "tmp"
    return list(tmp.rglob("*")) if tmp.exists() else []


async def _stow(client, headers, parts, url=STOW):
    body, ctype = multipart_related(parts)
    return await client.post(url, data=body, headers={**headers, "Content-Type": ctype})


def _seq(body, tag):
    return body.get(tag, {}).get("Value", [])


async def test_stow_stores_and_reports_each_instance(client, auth, settings, store):
    h = await auth("dr.li")
    study = generate_uid()
    parts = [ct_bytes(study_uid=study, z=float(i), instance_number=i) for i in range(3)]
    resp = await _stow(client, h, parts)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/dicom+json"
    body = await resp.json()
    assert len(_seq(body, "00081199")) == 3
    assert "00081198" not in body
    assert body["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{study}")
    assert len(_files(settings)) == 3
    assert all(study in str(p) and "qingshui" in str(p) for p in _files(settings))
    assert _leftover_temp(settings) == []


async def test_repeated_sop_instance_is_idempotent(client, auth, settings):
    h = await auth("dr.li")
    part = ct_bytes()
    assert (await _stow(client, h, [part])).status == 200
    again = await _stow(client, h, [part])
    assert again.status == 200
    item = _seq(await again.json(), "00081199")[0]
    assert item["00081155"]["Value"] == [pydicom.dcmread(io.BytesIO(part)).SOPInstanceUID]
    # No Warning Reason: 0xB007 means "does not match the SOP Class", not "stored before".
    assert "00081196" not in item
    assert len(_files(settings)) == 1


async def test_bad_instances_fail_alone_and_leave_nothing(client, auth, settings):
    h = await auth("dr.li")
    good = ct_bytes()
    truncated = ct_bytes()[:-500]
    no_uid = ct_dataset()
    del no_uid.SOPInstanceUID
    huge = ct_dataset(rows=8000, columns=8000)
    huge.PixelData = b"\0\0" * 4  # dimensions alone are absurd; validation must not trust them
    resp = await _stow(client, h, [good, b"this is not dicom at all", truncated,
                                   to_bytes(no_uid), to_bytes(huge)])
    assert resp.status == 202
    body = await resp.json()
    failed = _seq(body, "00081198")
    assert len(_seq(body, "00081199")) == 1 and len(failed) == 4
    reasons = [f["00081197"]["Value"][0] for f in failed]
    assert reasons[0] == 0xC000 and reasons[1] == 0xC000 and reasons[2] == 0xC000
    assert reasons[3] in (0xA700, 0xC000)
    assert all(f["00000902"]["Value"][0] for f in failed)  # a human-readable comment each
    assert len(_files(settings)) == 1
    assert _leftover_temp(settings) == []


async def test_all_failed_is_409_with_reasons(client, auth, settings):
    h = await auth("dr.li")
    resp = await _stow(client, h, [b"\0" * 200])
    assert resp.status == 409
    assert _seq(await resp.json(), "00081198")
    assert _files(settings) == []


async def test_unsupported_transfer_syntax_is_refused(client, auth, settings):
    h = await auth("dr.li")
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    ds.PixelData = encapsulate([b"\x00" * 64])
    resp = await _stow(client, h, [to_bytes(ds)])
    assert resp.status == 409
    failed = _seq(await resp.json(), "00081198")[0]
    assert failed["00081197"]["Value"] == [0xC122]
    assert _files(settings) == []


async def test_oversized_upload_is_413_and_stores_nothing(client, auth, settings, store):
    h = await auth("dr.li")
    parts = [ct_bytes(rows=512, columns=512, seed=i) for i in range(9)]  # ~4.5 MiB > 4 MiB
    body, ctype = multipart_related(parts)

    async def chunks():
        # Streamed without Content-Length: the limit must hold while reading, too.
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    resp = await client.post(STOW, data=chunks(), headers={**h, "Content-Type": ctype})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    resp = await client.post(STOW, data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 413
    assert _files(settings) == [] and _leftover_temp(settings) == []
    assert await store.studies.study_uids("qingshui") == []
    assert (await client.get("/healthz")).status == 200  # still serving


async def test_wrong_content_types_are_415(client, auth):
    h = await auth("dr.li")
    resp = await client.post(STOW, data=b"{}", headers={**h, "Content-Type": "application/json"})
    assert resp.status == 415
    assert "multipart/related" in (await resp.json())["error"]["message"]
    body, ctype = multipart_related([b"x"], part_type="application/dicom+json")
    resp = await client.post(STOW, data=body, headers={**h, "Content-Type": ctype.replace(
        'type="application/dicom+json"', 'type="application/dicom"')})
    assert resp.status == 415
    resp = await client.post(STOW, data=b"", headers={
        **h, "Content-Type": 'multipart/related; type="application/dicom"'})
    assert resp.status == 400


async def test_only_clinic_doctors_store(client, auth):
    for user in ("exp.zhang", "coord.liu", "admin"):
        resp = await _stow(client, await auth(user), [ct_bytes()])
        assert resp.status == 403, user


async def test_one_study_uid_from_two_clinics_is_two_studies(client, auth, settings):
    """Neither upload reveals or blocks the other (no 409 oracle, no UID squatting)."""
    study = generate_uid()
    li, wang = await auth("dr.li"), await auth("dr.wang")
    li_sop, wang_sop = generate_uid(), generate_uid()
    ds_li = ct_dataset(study_uid=study, sop_uid=li_sop)
    ds_li.PatientID = "LI-1"
    ds_wang = ct_dataset(study_uid=study, sop_uid=wang_sop)
    ds_wang.PatientID = "WANG-1"
    assert (await _stow(client, li, [to_bytes(ds_li)])).status == 200
    resp = await _stow(client, wang, [to_bytes(ds_wang)])
    assert resp.status == 200, await resp.text()
    assert "00081198" not in await resp.json()
    for h, own, other, pid in ((li, li_sop, wang_sop, "LI-1"), (wang, wang_sop, li_sop, "WANG-1")):
        found = await (await client.get(f"{STOW}?StudyInstanceUID={study}", headers=h)).json()
        assert [s["00100020"]["Value"] for s in found] == [[pid]]
        inst = await (await client.get(f"{STOW}/{study}/instances", headers=h)).json()
        assert [i["00080018"]["Value"][0] for i in inst] == [own]
        series = inst[0]["0020000E"]["Value"][0]
        url = f"{STOW}/{study}/series/{series}/instances/{other}/metadata"
        assert (await client.get(url, headers=h)).status == 404
    paths = {str(p.relative_to(settings.dicom_dir)).split("/")[0] for p in _files(settings)}
    assert paths == {"qingshui", "hetang"}


async def test_stow_to_a_study_url_refuses_other_studies(client, auth):
    h = await auth("dr.li")
    study = generate_uid()
    resp = await _stow(client, h, [ct_bytes(study_uid=study), ct_bytes()],
                       url=f"{STOW}/{study}")
    assert resp.status == 202
    assert len(_seq(await resp.json(), "00081198")) == 1


async def test_single_part_application_dicom_body(client, auth):
    h = await auth("dr.li")
    resp = await client.post(STOW, data=ct_bytes(),
                             headers={**h, "Content-Type": "application/dicom"})
    assert resp.status == 200


# -- kiosk form upload ---------------------------------------------------------------------------

def _form(files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field("files", data, filename=name, content_type="application/octet-stream")
    return form


async def test_kiosk_upload_of_files_and_zip(client, auth, settings):
    h = await auth("dr.li")
    study = generate_uid()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            zf.writestr(f"CT/IM{i}", ct_bytes(study_uid=study, z=float(i)))
        zf.writestr("__MACOSX/._IM0", b"junk")
        zf.writestr("DICOMDIR", b"ignored")
        zf.writestr("notes.txt", b"not dicom")
    resp = await client.post("/api/uploads", headers=h, data=_form([
        ("one.dcm", ct_bytes(study_uid=study, z=9.0)), ("study.zip", archive.getvalue())]))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert len(body["stored"]) == 4
    assert [f["file"] for f in body["failed"]] == ["study.zip:notes.txt"]
    assert body["failed"][0]["error"]["code"] == "invalid_dicom"
    assert len(_files(settings)) == 4


async def test_kiosk_upload_errors(client, auth, settings):
    h = await auth("dr.li")
    resp = await client.post("/api/uploads", headers=h, data=_form([("x.dcm", b"garbage")]))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "nothing_stored" and body["failed"]
    resp = await client.post("/api/uploads", headers=h, json={"files": []})
    assert resp.status == 415
    # A multipart form without the 'files' field: read, and refused for what it lacks.
    no_files = aiohttp.FormData()
    no_files.add_field("other", b"x", filename="other.txt")
    resp = await client.post("/api/uploads", headers=h, data=no_files)
    assert resp.status == 400
    assert "form field 'files'" in (await resp.json())["error"]["message"]
    # A plain (urlencoded) form is not multipart at all.
    resp = await client.post("/api/uploads", headers=h, data=aiohttp.FormData({"other": "x"}))
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (6 * 2**20))  # inflates past the 4 MiB limit
    resp = await client.post("/api/uploads", headers=h, data=_form([("bomb.zip", bomb.getvalue())]))
    assert resp.status == 413
    assert _files(settings) == [] and _leftover_temp(settings) == []
    resp = await client.post("/api/uploads", headers=await auth("exp.zhang"),
                             data=_form([("one.dcm", ct_bytes())]))
    assert resp.status == 403


async def test_stored_instances_keep_their_rendering_model_beside_them(client, auth, settings):
    from media.imaging.model_sidecar import read_sidecar

    h = await auth("dr.li")
    resp = await _stow(client, h, [ct_bytes()])
    assert resp.status == 200
    (stored,) = _files(settings)
    model = read_sidecar(stored)
    assert model is not None and (model.rows, model.columns) == (32, 32)


# -- Deflated data sets: inflated once, streaming, under the upload limit -----------------------


def _deflated(ds) -> bytes:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return to_bytes(ds)


async def test_a_deflated_instance_is_stored_inflated_and_reads_back(client, auth, settings):
    import numpy as np
    import pydicom

    h = await auth("dr.li")
    ds = ct_dataset(rows=64, columns=64, seed=3)
    resp = await _stow(client, h, [_deflated(ds)])
    assert resp.status == 200, await resp.text()
    (stored,) = _files(settings)
    on_disk = pydicom.dcmread(stored)
    assert on_disk.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # lossless, PS3.5 A.5
    assert on_disk.PixelData == ds.PixelData
    url = _seq(await resp.json(), "00081199")[0]["00081190"]["Value"][0]
    path = url.split("://", 1)[1].split("/", 1)[1] if "://" in url else url
    path = "/" + path.lstrip("/")
    frames = await client.get(path + "/frames/1", headers=h)
    reader = aiohttp.MultipartReader.from_response(frames)
    part = await reader.next()
    assert np.array_equal(np.frombuffer(await part.read(), "<i2"),
                          ds.pixel_array.ravel())
    assert _leftover_temp(settings) == []


async def test_a_deflate_bomb_is_refused_per_instance_and_leaves_nothing(client, auth, settings):
    """6 MiB of zeros deflate to ~6 KiB: over the 4 MiB limit once inflated (test settings)."""
    h = await auth("dr.li")
    ds = ct_dataset(rows=32, columns=32)
    ds.Rows, ds.Columns = 1536, 2048
    ds.PixelData = bytes(1536 * 2048 * 2)
    bomb = _deflated(ds)
    assert len(bomb) < 64 * 1024
    resp = await _stow(client, h, [bomb, ct_bytes()])
    assert resp.status == 202, await resp.text()
    failed = _seq(await resp.json(), "00081198")
    assert failed[0]["00081197"]["Value"] == [0xA700]
    assert "inflates to more than 4 MiB" in failed[0]["00000902"]["Value"][0]
    resp = await client.post("/api/uploads", headers=h, data=_form([("bomb.dcm", bomb)]))
    assert resp.status == 400
    body = await resp.json()
    assert body["failed"][0]["error"]["code"] == "image_too_large"
    assert len(_files(settings)) == 1 and _leftover_temp(settings) == []


# -- request-level limits: parts, part headers, chunked bodies, crash leftovers -------------------


async def test_parts_per_request_are_capped(client, auth, settings, monkeypatch):
    from server.dicomweb import stow

    monkeypatch.setattr(stow, "MAX_PARTS", 3)
    h = await auth("dr.li")
    resp = await _stow(client, h, [ct_bytes() for _ in range(4)])
    assert resp.status == 413
    assert "at most 3 parts" in (await resp.json())["error"]["message"]
    assert _files(settings) == [] and _leftover_temp(settings) == []
    form = _form([(f"{i}.dcm", ct_bytes()) for i in range(4)])
    resp = await client.post("/api/uploads", headers=h, data=form)
    assert resp.status == 413
    assert (await _stow(client, h, [ct_bytes() for _ in range(3)])).status == 200


async def test_part_headers_count_against_the_upload_limit(client, auth, settings):
    """Empty parts with ~800 KB of headers each: only the headers can exceed 4 MiB."""
    h = await auth("dr.li")
    boundary = "b0undary"
    pad = "".join(f"X-Pad-{i}: {'x' * 7900}\r\n" for i in range(100))
    part = f"--{boundary}\r\nContent-Type: application/dicom\r\n{pad}\r\n\r\n".encode()
    body = part * 6 + f"--{boundary}--\r\n".encode()
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'

    async def chunked():  # no Content-Length either
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    resp = await client.post(STOW, data=chunked(), headers={**h, "Content-Type": ctype})
    assert resp.status == 413, await resp.text()
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert _leftover_temp(settings) == []


async def test_chunked_bodies_count_against_the_upload_limit(client, auth, settings):
    h = await auth("dr.li")
    one = ct_bytes(rows=512, columns=512)  # ~0.5 MiB each, 10 of them: over 4 MiB
    body, ctype = multipart_related([ct_bytes(rows=512, columns=512) for _ in range(10)])

    async def chunked():
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    resp = await client.post(STOW, data=chunked(), headers={**h, "Content-Type": ctype})
    assert resp.status == 413
    assert _files(settings) == [] and _leftover_temp(settings) == []

    async def single():
        for _ in range(10):
            yield one

    resp = await client.post(STOW, data=single(),
                             headers={**h, "Content-Type": "application/dicom"})
    assert resp.status == 413
    form = (b'--f\r\nContent-Disposition: form-data; name="comment"\r\n\r\n'
            + b"x" * (5 * 2**20)
            + b'\r\n--f\r\nContent-Disposition: form-data; name="files"; filename="one.dcm"\r\n'
            + b"\r\n" + ct_bytes() + b"\r\n--f--\r\n")

    async def chunked_form():
        for i in range(0, len(form), 65536):
            yield form[i:i + 65536]

    resp = await client.post("/api/uploads", data=chunked_form(),
                             headers={**h, "Content-Type": "multipart/form-data; boundary=f"})
    assert resp.status == 413  # a field nobody keeps is still counted
    assert _files(settings) == [] and _leftover_temp(settings) == []


@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\nContent-Type: application/dicom\r\nX-Long: " + b"x" * 20_000
        + b"\r\n\r\nDICM\r\n--b--\r\n",
        b"--b\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(500)) + b"\r\nx\r\n--b--\r\n",
        b"--b\r\nContent-Type: application/dicom\r\nno colon here\r\n\r\nx\r\n--b--\r\n",
        b"--not-the-boundary\r\n\r\nx\r\n",
    ],
)
async def test_malformed_multipart_is_a_4xx_with_a_json_body(client, auth, settings, body):
    h = await auth("dr.li")
    ctype = 'multipart/related; type="application/dicom"; boundary=b'
    resp = await client.post(STOW, data=body, headers={**h, "Content-Type": ctype})
    assert 400 <= resp.status < 500, await resp.text()
    assert (await resp.json())["error"]["message"] or (await resp.json()).get("00081198")
    assert _files(settings) == [] and _leftover_temp(settings) == []


async def test_spool_leftovers_of_a_dead_process_are_removed_at_start(settings, store):
    import os
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from server.ingest import Ingestor

    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = settings.data_dir / "tmp"
    for name in (f"upload-{dead.pid}-abc", "upload-0123456789abcdef", f"upload-{os.getpid()}-x"):
        (tmp / name).mkdir(parents=True)
        (tmp / name / "000000-part").write_bytes(b"half an upload")
    with ThreadPoolExecutor(1) as pool:
        Ingestor(settings, store, pool)
    assert sorted(p.name for p in tmp.iterdir()) == [f"upload-{os.getpid()}-x"]


# -- zip uploads: every unreadable archive is a clear 4xx with a JSON body ----------------------


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _patch_headers(data: bytes, *, flags: int | None = None, method: int | None = None) -> bytes:
    """Rewrite every local and central header (what a tool writing that feature would do)."""
    buf = bytearray(data)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = buf.find(signature)
        while pos != -1:
            if flags is not None:
                buf[pos + flag_at:pos + flag_at + 2] = flags.to_bytes(2, "little")
            if method is not None:
                buf[pos + flag_at + 2:pos + flag_at + 4] = method.to_bytes(2, "little")
            pos = buf.find(signature, pos + 4)
    return bytes(buf)


def _corrupt_deflate(data: bytes) -> bytes:
    buf = bytearray(data)
    start = 30 + len("a.dcm")  # the first member's data, after its local header
    for i in range(start + 10, start + 60):
        buf[i] ^= 0x5A
    return bytes(buf)


@pytest.mark.parametrize(
    ("archive", "status", "code"),
    [
        (_patch_headers(_zip({"a.dcm": ct_bytes()}), flags=0x1), 400, "invalid_archive"),
        (_patch_headers(_zip({"a.dcm": ct_bytes()}), method=9), 415, "unsupported_archive"),
        (_patch_headers(_zip({"a.dcm": ct_bytes()}), method=98), 415, "unsupported_archive"),
        (_corrupt_deflate(_zip({"a.dcm": ct_bytes()})), 400, "invalid_archive"),
        (_zip({"a.dcm": ct_bytes()})[:-30], 400, "invalid_archive"),
        (b"PK\x03\x04" + b"\0" * 200, 400, "invalid_archive"),
    ],
    ids=["encrypted", "deflate64", "ppmd", "corrupt-data", "truncated", "garbage"],
)
async def test_unreadable_zips_are_clear_4xx(client, auth, settings, archive, status, code):
    h = await auth("dr.li")
    resp = await client.post("/api/uploads", headers=h, data=_form([("study.zip", archive)]))
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == code and "study.zip" in error["message"]
    assert _files(settings) == [] and _leftover_temp(settings) == []


async def test_nested_zips_and_every_compression_method(client, auth, settings, monkeypatch):
    h = await auth("dr.li")
    inner = _zip({"inner.dcm": ct_bytes()})
    members = {"ok.dcm": ct_bytes(), "inner.zip": inner}
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        members[f"m{method}.dcm"] = ct_bytes()
    archive = _zip(members, zipfile.ZIP_LZMA)
    resp = await client.post("/api/uploads", headers=h, data=_form([
        ("study.zip", archive),
        ("bz.zip", _zip({"b.dcm": ct_bytes()}, zipfile.ZIP_BZIP2)),
        ("st.zip", _zip({"s.dcm": ct_bytes()}, zipfile.ZIP_STORED)),
    ]))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert len(body["stored"]) == 6
    assert [(f["file"], f["error"]["code"]) for f in body["failed"]] == [
        ("study.zip:inner.zip", "nested_archive")
    ]
    from server import ingest

    monkeypatch.setattr(ingest, "MAX_ZIP_ENTRIES", 2)
    resp = await client.post("/api/uploads", headers=h, data=_form([("study.zip", archive)]))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"

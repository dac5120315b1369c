"""The index stays true to the files: concurrent uploads of one SOP Instance UID with different
bytes, and `huizhen reindex` run by another process while the server serves (its in-process
caches must not keep a stale owner or path)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time

import pydicom
from pydicom.uid import generate_uid

from server.store import keys
from server.store.study_index import StudyIndex
from tests.dicom_factory import ct_dataset, multipart_related, to_bytes

STOW = "/dicomweb/studies"


async def _stow(client, headers, data: bytes):
    body, ctype = multipart_related([data])
    return await client.post(STOW, data=body, headers={**headers, "Content-Type": ctype})


async def test_concurrent_uploads_of_one_sop_with_different_bytes(client, auth, settings, store):
    h = await auth("dr.li")
    for round_no in range(6):
        study, series, sop = generate_uid(), generate_uid(), generate_uid()
        variants = []
        for i in range(4):
            ds = ct_dataset(study_uid=study, series_uid=series, sop_uid=sop,
                            patient_name=f"Variant^{i}", z=float(i))
            variants.append(to_bytes(ds))
        responses = await asyncio.gather(*(_stow(client, h, v) for v in variants))
        assert [r.status for r in responses] == [200] * 4, round_no
        bodies = [await r.json() for r in responses]
        # One of them stored it; the others are answered as the repeat: stored, with no
        # Warning Reason (PS3.18's say the object differs from the SOP Class or was coerced).
        for b in bodies:
            item = b["00081199"]["Value"][0]
            assert item["00081155"]["Value"] == [sop] and "00081196" not in item, round_no
        files = [p for p in settings.dicom_dir.rglob("*.dcm") if sop in p.name]
        assert len(files) == 1
        on_disk = files[0].read_bytes()
        assert on_disk in variants, "the file is one upload's bytes, whole"
        winner = variants.index(on_disk)
        # The index entry describes that same file: name and slice position of the winner.
        record = await store.studies.instance("qingshui", study, sop)
        assert record is not None and settings.dicom_dir / record.path == files[0]
        sort = await store.redis.zscore(keys.series_stack("qingshui", study, series), sop)
        assert sort == float(winner)  # the slice position of the file's bytes
        found = await (await client.get(f"{STOW}?StudyInstanceUID={study}", headers=h)).json()
        assert found[0]["00100010"]["Value"][0]["Alphabetic"] == f"Variant^{winner}"
        meta = await (await client.get(f"{STOW}/{study}/series/{series}/instances/{sop}/metadata",
                                       headers=h)).json()
        assert meta[0]["00100010"]["Value"][0]["Alphabetic"] == f"Variant^{winner}"
        assert meta[0]["00200032"]["Value"][2] == float(winner)
    assert not any(p.is_file() for p in (settings.data_dir / "tmp").rglob("*"))


async def _reindex(settings) -> str:
    env = {**os.environ, "HUIZHEN_REDIS_URL": settings.redis_url,
           "HUIZHEN_DATA_DIR": str(settings.data_dir),
           "HUIZHEN_SECRET_KEY": settings.secret_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "reindex", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_reindex_by_another_process_leaves_no_stale_owner_or_path(
        client, auth, settings, store):
    li, wang = await auth("dr.li"), await auth("dr.wang")
    ds = ct_dataset(study_uid=generate_uid())
    assert (await _stow(client, li, to_bytes(ds))).status == 200
    url = (f"{STOW}/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
           f"{ds.SOPInstanceUID}/rendered")
    assert (await client.get(url, headers=li)).status == 200  # the server now holds it hot
    assert (await client.get(url, headers=wang)).status == 404
    # An operator moves the study to the other clinic's folder and reindexes, server running.
    src = settings.dicom_dir / "qingshui" / ds.StudyInstanceUID
    dst = settings.dicom_dir / "hetang" / ds.StudyInstanceUID
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dst)
    await _reindex(settings)
    done = time.monotonic()
    statuses: list[tuple[int, int]] = []
    while True:
        pair = ((await client.get(url, headers=li)).status,
                (await client.get(url, headers=wang)).status)
        statuses.append(pair)
        if pair == (404, 200):
            break
        assert time.monotonic() - done < StudyIndex.HOT_TTL_S + 1.0, statuses
        await asyncio.sleep(0.05)
    # Never a 500 on the way, and never the old clinic served once the cache entry was re-read.
    assert all(s in (200, 404) for pair in statuses for s in pair), statuses
    moved = pydicom.dcmread(next(dst.rglob("*.dcm")))
    assert moved.SOPInstanceUID == ds.SOPInstanceUID
    found = await (await client.get(STOW, headers=wang)).json()
    assert [s["0020000D"]["Value"][0] for s in found] == [ds.StudyInstanceUID]
    assert await (await client.get(STOW, headers=li)).json() == []

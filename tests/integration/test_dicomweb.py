"""QIDO-RS, WADO-RS (instances, metadata, frames, rendered, thumbnails) through the real API."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicom_factory import ct_bytes, ct_dataset, multipart_related, read_multipart, to_bytes


@pytest.fixture
async def corpus(client, auth):
    """Two studies of clinic qingshui: a 5-slice CT uploaded out of order and an MR."""
    h = await auth("dr.li")
    ct, ct_series, mr = generate_uid(), generate_uid(), generate_uid()
    order = [3, 0, 4, 1, 2]
    datasets = [
        ct_dataset(study_uid=ct, series_uid=ct_series, z=-10.0 * i, instance_number=5 - i, seed=i)
        for i in order
    ]
    datasets.append(ct_dataset(study_uid=mr, patient_id="P-0002", patient_name="Li^Si",
                               study_date="20250103", modality="MR", accession="A2",
                               description="MR Brain"))
    body, ctype = multipart_related([to_bytes(d) for d in datasets])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    return {"headers": h, "ct": ct, "ct_series": ct_series, "mr": mr, "datasets": datasets}


def _values(items, tag):
    return [i[tag]["Value"][0] for i in items]


async def _qido(client, h, path, **params):
    resp = await client.get(path, params=params, headers=h)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/dicom+json"
    return await resp.json()


async def test_qido_studies_matching(client, corpus):
    h, ct, mr = corpus["headers"], corpus["ct"], corpus["mr"]
    q = "/dicomweb/studies"
    everything = await _qido(client, h, q)
    assert _values(everything, "0020000D") == [ct, mr]  # newest study date first
    ct_row = everything[0]
    assert ct_row["00201206"]["Value"] == [1] and ct_row["00201208"]["Value"] == [5]
    assert ct_row["00080061"]["Value"] == ["CT"]
    assert ct_row["00100010"]["Value"][0]["Alphabetic"] == "Zhang^San"
    cases = [
        ({"PatientID": "P-0002"}, [mr]),
        ({"PatientName": "zhang*"}, [ct]),
        ({"00100010": "*si"}, [mr]),
        ({"PatientName": "L?^Si"}, [mr]),
        ({"StudyDate": "20250101-20251231"}, [mr]),
        ({"StudyDate": "20260101-"}, [ct]),
        ({"StudyDate": "-20250103"}, [mr]),
        ({"StudyDate": "20261120"}, [ct]),
        ({"ModalitiesInStudy": "MR"}, [mr]),
        ({"ModalitiesInStudy": "CT,MR"}, [ct, mr]),
        ({"StudyInstanceUID": f"{mr},{ct}"}, [ct, mr]),
        ({"AccessionNumber": "A1"}, [ct]),
        ({"StudyDescription": "*brain*"}, [mr]),
        ({"limit": "1"}, [ct]),
        ({"limit": "1", "offset": "1"}, [mr]),
        ({"offset": "5"}, []),
    ]
    for params, expected in cases:
        assert _values(await _qido(client, h, q, **params), "0020000D") == expected, params


async def test_qido_includefield(client, corpus):
    h = corpus["headers"]
    series = await _qido(client, h, f"/dicomweb/studies/{corpus['ct']}/series")
    assert "00100020" not in series[0]
    series = await _qido(client, h, f"/dicomweb/studies/{corpus['ct']}/series",
                         includefield="PatientID,00080020")
    assert series[0]["00100020"]["Value"] == ["P-0001"] and "00080020" in series[0]
    every = await _qido(client, h, f"/dicomweb/studies/{corpus['ct']}/instances",
                        includefield="all")
    assert "00100010" in every[0] and "00080060" in every[0]


@pytest.mark.parametrize(
    "params",
    [{"limit": "-1"}, {"offset": "x"}, {"StudyDate": "2026-11-20"}, {"NoSuchKeyword": "1"},
     {"includefield": "NotAKeyword"}, {"Rows": "512"}, {"fuzzymatching": "maybe"},
     # Numbers are ASCII digits of bounded length: int() would take these (or choke on them).
     {"limit": "١٠"}, {"offset": "1" * 5000}, {"limit": " 5"}, {"offset": "1_0"}],
)
async def test_qido_invalid_parameters_are_400(client, corpus, params):
    resp = await client.get("/dicomweb/studies", params=params, headers=corpus["headers"])
    assert resp.status == 400
    assert (await resp.json())["error"]["message"]


async def test_series_and_instances_in_stack_order(client, corpus):
    h, ct, se = corpus["headers"], corpus["ct"], corpus["ct_series"]
    series = await _qido(client, h, f"/dicomweb/studies/{ct}/series")
    assert _values(series, "0020000E") == [se]
    assert series[0]["00201209"]["Value"] == [5] and series[0]["00080060"]["Value"] == ["CT"]
    instances = await _qido(client, h, f"/dicomweb/studies/{ct}/series/{se}/instances")
    z = [i["00200032"]["Value"][2] for i in instances]
    assert z == sorted(z)  # ordered along the normal, whatever the upload order was
    assert _values(instances, "00200013") == [1, 2, 3, 4, 5]
    assert instances[0]["00081190"]["Value"][0].endswith(instances[0]["00080018"]["Value"][0])
    only = await _qido(client, h, f"/dicomweb/studies/{ct}/instances", InstanceNumber="3")
    assert _values(only, "00200013") == [3]


async def test_unknown_uids_are_404_and_malformed_400(client, corpus):
    h, ct, se = corpus["headers"], corpus["ct"], corpus["ct_series"]
    sop = corpus["datasets"][0].SOPInstanceUID
    for path in (f"/dicomweb/studies/{generate_uid()}/series",
                 f"/dicomweb/studies/{ct}/series/{se}/instances/{generate_uid()}/metadata",
                 f"/dicomweb/studies/{ct}/series/{generate_uid()}/instances/{sop}/rendered"):
        resp = await client.get(path, headers=h)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/dicomweb/studies/not-a-uid/series", headers=h)
    assert resp.status == 400


def _instance_url(corpus, i=0):
    ds = corpus["datasets"][i]
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


async def test_wado_retrieve_instance_and_study(client, corpus):
    h = corpus["headers"]
    resp = await client.get(_instance_url(corpus), headers={
        **h, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert resp.status == 200
    parts = await read_multipart(resp)
    assert len(parts) == 1
    ds = pydicom.dcmread(io.BytesIO(parts[0][1]))
    assert ds.SOPInstanceUID == corpus["datasets"][0].SOPInstanceUID
    assert np.array_equal(ds.pixel_array, corpus["datasets"][0].pixel_array)
    resp = await client.get(f"/dicomweb/studies/{corpus['ct']}", headers=h)
    parts = await read_multipart(resp)
    assert len(parts) == 5
    resp = await client.get(_instance_url(corpus), headers={**h, "Accept": "application/json"})
    assert resp.status == 406
    jpeg_baseline = "1.2.840.10008.1.2.4.50"
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={jpeg_baseline}'
    resp = await client.get(_instance_url(corpus), headers={**h, "Accept": accept})
    assert resp.status == 406


async def test_wado_metadata_has_bulkdata_uris(client, corpus):
    h = corpus["headers"]
    resp = await client.get(_instance_url(corpus) + "/metadata", headers=h)
    assert resp.status == 200 and resp.content_type == "application/dicom+json"
    (meta,) = await resp.json()
    assert meta["00080018"]["Value"] == [corpus["datasets"][0].SOPInstanceUID]
    assert meta["7FE00010"]["BulkDataURI"].endswith("/frames/1")
    assert "InlineBinary" not in meta["7FE00010"]
    assert meta["00020010"]["Value"] == ["1.2.840.10008.1.2.1"]
    series = await client.get(
        f"/dicomweb/studies/{corpus['ct']}/series/{corpus['ct_series']}/metadata", headers=h)
    assert len(await series.json()) == 5


async def test_wado_frames_are_native_pixel_bytes(client, corpus):
    h = corpus["headers"]
    resp = await client.get(_instance_url(corpus) + "/frames/1", headers={
        **h, "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'})
    assert resp.status == 200
    parts = await read_multipart(resp)
    assert parts[0][1] == corpus["datasets"][0].PixelData
    for bad, status in (("0", 400), ("1,x", 400), ("2", 404), ("٣", 400), ("1" * 5000, 400),
                        ("+1", 400), ("1,,2", 400)):
        resp = await client.get(_instance_url(corpus) + f"/frames/{bad}", headers=h)
        assert resp.status == status, bad


def _linear(hu: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR to 8 bits."""
    return np.clip(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)


def _decoded(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body))).astype(float)


async def test_rendered_jpeg_png_and_window(client, corpus):
    h = corpus["headers"]
    url = _instance_url(corpus) + "/frames/1/rendered"
    hu = corpus["datasets"][0].pixel_array.astype(float)
    jpeg = await client.get(url, headers={**h, "Accept": "image/jpeg"})
    assert jpeg.status == 200 and jpeg.content_type == "image/jpeg"
    assert jpeg.headers["X-Window"].startswith("40,400")  # the file's own first window
    jpeg_pixels = _decoded(await jpeg.read())
    assert jpeg_pixels.shape == hu.shape
    # Lossy, but the picture: close on average, never far anywhere.
    error = np.abs(jpeg_pixels - _linear(hu, 40, 400))
    assert error.mean() < 6 and np.percentile(error, 99) < 40
    png = await client.get(url, params={"window": "0,2000,linear"},
                           headers={**h, "Accept": "image/png"})
    assert png.status == 200 and png.content_type == "image/png"
    assert png.headers["X-Window"] == "0,2000,LINEAR"
    image = _decoded(await png.read())
    assert np.abs(image - _linear(hu, 0, 2000)).max() <= 1.0
    small = await client.get(url, params={"viewport": "16,16", "window": "0,2000"},
                             headers={**h, "Accept": "image/png"})
    shrunk = _decoded(await small.read())
    assert shrunk.shape == (16, 16)
    # The full-size render resampled as docs/imaging.md says (Pillow BILINEAR, antialiased).
    resized = Image.fromarray(image.astype(np.uint8)).resize((16, 16), Image.Resampling.BILINEAR)
    assert np.abs(shrunk - np.asarray(resized, dtype=float)).max() <= 1.0
    whole = await client.get(_instance_url(corpus) + "/rendered", params={"window": "0,2000"},
                             headers={**h, "Accept": "image/png"})
    assert whole.status == 200
    assert np.array_equal(_decoded(await whole.read()), image)  # the instance's frame 1


@pytest.mark.parametrize(
    ("params", "accept", "status"),
    [
        ({"window": "40"}, "image/jpeg", 400),
        ({"window": "40,0"}, "image/jpeg", 400),
        ({"window": "40,400,cubic"}, "image/jpeg", 400),
        ({"quality": "0"}, "image/jpeg", 400),
        ({"viewport": "10"}, "image/jpeg", 400),
        ({"viewport": "0,10"}, "image/jpeg", 400),
        ({"bogus": "1"}, "image/jpeg", 400),
        ({"quality": "٩٠"}, "image/jpeg", 400),
        ({"quality": "9" * 5000}, "image/jpeg", 400),
        ({"viewport": "١٠,10"}, "image/jpeg", 400),
        ({"viewport": "10," + "1" * 5000}, "image/jpeg", 400),
        ({"window": "٤٠,400"}, "image/jpeg", 400),
        ({"window": "1" * 5000 + ",400"}, "image/jpeg", 400),
        ({"window": "40,400,linear_exact,x"}, "image/jpeg", 400),
        ({}, "image/tiff", 406),
        ({}, "application/dicom", 406),
    ],
)
async def test_rendered_bad_requests(client, corpus, params, accept, status):
    resp = await client.get(_instance_url(corpus) + "/frames/1/rendered", params=params,
                            headers={**corpus["headers"], "Accept": accept})
    assert resp.status == status
    assert (await resp.json())["error"]["message"]


async def test_rendered_accepts_ps3_18_window_functions(client, corpus):
    """PS3.18 spells them linear, linear-exact, sigmoid; the DICOM terms are accepted too."""
    url = _instance_url(corpus) + "/frames/1/rendered"
    h = {**corpus["headers"], "Accept": "image/png"}
    bodies = {}
    for function, applied in (("linear", "LINEAR"), ("linear-exact", "LINEAR_EXACT"),
                              ("sigmoid", "SIGMOID"), ("LINEAR_EXACT", "LINEAR_EXACT")):
        resp = await client.get(url, params={"window": f"0,2000,{function}"}, headers=h)
        assert resp.status == 200, (function, await resp.text())
        assert resp.headers["X-Window"] == f"0,2000,{applied}"
        bodies[function] = np.asarray(Image.open(io.BytesIO(await resp.read())))
    assert np.array_equal(bodies["linear-exact"], bodies["LINEAR_EXACT"])
    hu = corpus["datasets"][0].pixel_array.astype(float)
    # PS3.3 C.11.2.1.3.2 LINEAR_EXACT for c=0, w=2000.
    expected = np.clip((hu - 0) / 2000 + 0.5, 0, 1) * 255
    assert np.abs(bodies["linear-exact"].astype(float) - expected).max() <= 1.0
    assert not np.array_equal(bodies["sigmoid"], bodies["linear-exact"])


async def test_bulkdata_tag_is_eight_hex_digits(client, corpus):
    h = corpus["headers"]
    resp = await client.get(_instance_url(corpus) + "/bulkdata/7fe00010", headers=h)
    assert resp.status == 200
    ((_, payload),) = await read_multipart(resp)
    assert payload == corpus["datasets"][0].PixelData
    resp = await client.get(_instance_url(corpus) + "/bulkdata/00091001", headers=h)
    assert resp.status == 404
    for bad in ("0x7FE0010", "7FE0_010", "٧FE00010", "7FE00010" * 100):
        resp = await client.get(_instance_url(corpus) + f"/bulkdata/{bad}", headers=h)
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["code"] == "invalid_parameter"


async def test_rendered_frame_out_of_range(client, corpus):
    resp = await client.get(_instance_url(corpus) + "/frames/7/rendered",
                            headers=corpus["headers"])
    assert resp.status == 404


async def test_thumbnails(client, corpus):
    h = corpus["headers"]
    for url in (f"/dicomweb/studies/{corpus['ct']}/thumbnail",
                f"/dicomweb/studies/{corpus['ct']}/series/{corpus['ct_series']}/thumbnail",
                _instance_url(corpus) + "/thumbnail"):
        resp = await client.get(url, headers=h)
        assert resp.status == 200 and resp.content_type == "image/jpeg", url
        thumb = _decoded(await resp.read())
        assert thumb.shape == (32, 32)  # never upscaled: the 32x32 slice fits 128x128 as is
        # The series' middle slice (or the instance itself), in its own 40,400 window.
        ds = (corpus["datasets"][0] if url.startswith(_instance_url(corpus))
              else sorted(corpus["datasets"][:5], key=lambda d: d.ImagePositionPatient[2])[2])
        error = np.abs(thumb - _linear(ds.pixel_array.astype(float), 40, 400))
        assert error.mean() < 12, url  # quality 75 JPEG of noise


async def test_reindex_rebuilds_the_same_index(client, corpus, settings, store):
    from concurrent.futures import ThreadPoolExecutor

    from server.ingest import Ingestor

    h = corpus["headers"]
    before = await _qido(client, h, f"/dicomweb/studies/{corpus['ct']}/instances")
    await store.studies.clear()
    assert await _qido(client, h, "/dicomweb/studies") == []
    with ThreadPoolExecutor(2) as pool:
        indexed, bad = await Ingestor(settings, store, pool).reindex()
    assert (indexed, bad) == (6, 0)
    assert await _qido(client, h, f"/dicomweb/studies/{corpus['ct']}/instances") == before


async def test_compressed_instance_transcodes_for_default_accept(client, auth):
    from pydicom.data import get_testdata_file

    h = await auth("dr.li")
    data = Path(get_testdata_file("JPEG2000.dcm")).read_bytes()
    body, ctype = multipart_related([data])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200
    url = (await resp.json())["00081199"]["Value"][0]["00081190"]["Value"][0]
    # Without HUIZHEN_PUBLIC_URL the RetrieveURL is path-absolute (never the Host header).
    assert url.startswith("/dicomweb/studies/")
    path = url.lstrip("/")
    resp = await client.get("/" + path, headers=h)
    part_headers, payload = (await read_multipart(resp))[0]
    assert "1.2.840.10008.1.2.1" in part_headers["content-type"]
    ds = pydicom.dcmread(io.BytesIO(payload))
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    rendered = await client.get("/" + path + "/frames/1/rendered",
                                params={"window": "0,2000"}, headers={**h, "Accept": "image/png"})
    assert rendered.status == 200
    original = pydicom.dcmread(get_testdata_file("JPEG2000.dcm"))
    hu = original.pixel_array * float(original.get("RescaleSlope", 1)) + float(
        original.get("RescaleIntercept", 0))
    assert np.abs(_decoded(await rendered.read()) - _linear(hu, 0, 2000)).max() <= 1.0


async def test_stow_and_rendered_with_bytes_helper(client, auth):
    h = await auth("dr.li")
    one = ct_bytes(rows=16, columns=16)
    body, ctype = multipart_related([one])
    assert (await client.post("/dicomweb/studies", data=body,
                              headers={**h, "Content-Type": ctype})).status == 200


# -- retrieval streams one decoded frame at a time; decoded bytes per response are capped --------


@pytest.mark.parametrize(
    "name",
    ["JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_bigendian.dcm",
     "MR_small_implicit.dcm", "MR_small_RLE.dcm", "rtdose_rle.dcm"],
)
async def test_transcoded_retrieve_equals_pydicoms_decompress(client, auth, name):
    import aiohttp
    from pydicom.data import get_testdata_file

    source = get_testdata_file(name)
    if source is None:
        pytest.fail(f"pydicom's test file {name} is missing")
    h = await auth("dr.li")
    data = Path(source).read_bytes()
    body, ctype = multipart_related([data])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    url = (await resp.json())["00081199"]["Value"][0]["00081190"]["Value"][0]
    resp = await client.get(url, headers=h)
    assert resp.status == 200
    reader = aiohttp.MultipartReader.from_response(resp)
    part = await reader.next()
    assert "1.2.840.10008.1.2.1" in part.headers["Content-Type"]
    got = pydicom.dcmread(io.BytesIO(await part.read()))
    assert await reader.next() is None
    expected = pydicom.dcmread(source)
    if expected.file_meta.TransferSyntaxUID.is_compressed:
        expected.decompress(generate_instance_uid=False)
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert got.PhotometricInterpretation == expected.PhotometricInterpretation
    assert got.SOPInstanceUID == expected.SOPInstanceUID
    assert np.array_equal(got.pixel_array, expected.pixel_array)


async def test_frames_response_is_capped_before_it_starts(aiohttp_client, settings, store,
                                                         people):
    import dataclasses

    from server.app import create_app
    from server.store import Store
    from tests.integration.conftest import login

    small = dataclasses.replace(settings, max_response_mb=1)
    client = await aiohttp_client(create_app(small, Store.from_url(small.redis_url)))
    h = await login(client, "dr.li")
    ds = ct_dataset(rows=512, columns=512)  # 512 KiB per frame
    body, ctype = multipart_related([to_bytes(ds)])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200
    url = (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}/frames/")
    resp = await client.get(url + "1,1,1", headers=h)
    assert resp.status == 413
    assert "HUIZHEN_MAX_RESPONSE_MB" in (await resp.json())["error"]["message"]
    resp = await client.get(url + "1,1", headers=h)
    assert resp.status == 200
    import aiohttp

    reader = aiohttp.MultipartReader.from_response(resp)
    payloads = []
    while (part := await reader.next()) is not None:
        payloads.append(await part.read())
    assert payloads == [ds.PixelData, ds.PixelData]


async def test_the_accept_query_parameter_stands_for_the_header(client, corpus):
    """PS3.18 8.3.3.1: `accept=` in the URL (a browser link cannot set the header) is the
    Accept header; what it names is negotiated as the header would be."""
    h = corpus["headers"]
    url = _instance_url(corpus) + "/frames/1/rendered"
    png = await client.get(url, params={"accept": "image/png"}, headers={**h, "Accept": "*/*"})
    assert png.status == 200 and png.content_type == "image/png"
    assert (await png.read()).startswith(b"\x89PNG")
    tiff = await client.get(url, params={"accept": "image/tiff"}, headers=h)
    assert tiff.status == 406 and (await tiff.json())["error"]["code"] == "not_acceptable"
    stored = await client.get(_instance_url(corpus), headers=h, params={
        "accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert stored.status == 200 and len(await read_multipart(stored)) == 1
    assert (await client.get(_instance_url(corpus), headers=h,
                             params={"accept": "application/json"})).status == 406
    found = await _qido(client, h, "/dicomweb/studies", accept="application/dicom+json",
                        StudyInstanceUID=corpus["ct"])
    assert _values(found, "0020000D") == [corpus["ct"]]
    xml = await client.get("/dicomweb/studies", params={"accept": "application/dicom+xml"},
                           headers=h)
    assert xml.status == 406 and (await xml.json())["error"]["code"] == "not_acceptable"


async def test_a_limit_over_the_maximum_is_capped_with_a_warning(client, corpus, monkeypatch):
    """PS3.18 10.6.3.3.1: when the server's maximum (lowered here to 2) cuts matches off, the
    response says so in a Warning header; the client's own limit never does."""
    from server.dicomweb import query

    monkeypatch.setattr(query, "MAX_LIMIT", 2)
    h = corpus["headers"]
    url = f"/dicomweb/studies/{corpus['ct']}/instances"
    capped = await client.get(url, params={"limit": "10"}, headers=h)
    assert capped.status == 200 and len(await capped.json()) == 2
    assert capped.headers["Warning"].startswith("299 ")
    assert "Additional results can be requested" in capped.headers["Warning"]
    own = await client.get(url, params={"limit": "2"}, headers=h)
    assert len(await own.json()) == 2 and "Warning" not in own.headers
    rest = await client.get(url, params={"limit": "10", "offset": "4"}, headers=h)
    assert len(await rest.json()) == 1 and "Warning" not in rest.headers


async def test_rendered_gif_is_the_png_pixels(client, corpus):
    """PS3.18 8.7.4: GIF is one of the single-frame rendered types a server must offer; a
    grayscale frame fits its 256-entry palette exactly, so it decodes to the PNG's pixels."""
    url = _instance_url(corpus) + "/frames/1/rendered"
    h = corpus["headers"]
    gif = await client.get(url, params={"window": "40,400"}, headers={**h, "Accept": "image/gif"})
    assert gif.status == 200 and gif.content_type == "image/gif"
    body = await gif.read()
    assert body[:6] in (b"GIF87a", b"GIF89a")
    png = await client.get(url, params={"window": "40,400"}, headers={**h, "Accept": "image/png"})
    as_png = np.asarray(Image.open(io.BytesIO(await png.read())).convert("L"))
    as_gif = np.asarray(Image.open(io.BytesIO(body)).convert("L"))
    assert np.array_equal(as_gif, as_png)

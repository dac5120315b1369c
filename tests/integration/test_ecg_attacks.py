"""Adversarial ECG waveform IODs through the real ingest (STOW-RS and the kiosk upload) and the
ECG resources: each bad instance gets its own 4xx reason and leaves nothing behind, the good
ones of the same request are stored and served, and nothing answers 500.

The ECG resources: Accept negotiation and PS3.18 spelling on WADO-RS bulk data, malformed
queries refused the same whoever asks (no oracle), another clinic's ECG 404, a grant opens it,
every view audited; image resources of an ECG answer 4xx.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import aiohttp
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from media.ecg import compact, synthetic, waveform
from tests.dicom_factory import multipart_related, read_multipart, to_bytes


def _base(ds: pydicom.Dataset) -> str:
    return (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def _seq(body: dict, tag: str) -> list[dict]:
    return body.get(tag, {}).get("Value", [])


def _ecg(seed: int, condition: str = "nsr", seconds: float = 4) -> Dataset:
    return synthetic.ecg_dataset(synthetic.Spec(condition, seconds=seconds, seed=seed))


def _group(ds: Dataset) -> Dataset:
    return ds.WaveformSequence[0]


def _set(keyword: str, value: object, *, channel: int | None = None) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        item = _group(ds) if channel is None else _group(ds).ChannelDefinitionSequence[channel]
        setattr(item, keyword, value)
    return change


def _drop(keyword: str, channel: int) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        delattr(_group(ds).ChannelDefinitionSequence[channel], keyword)
    return change


def _as_pixels(ds: Dataset) -> None:
    """A waveform IOD that also carries an image."""
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(64)


def _general_8bit(ds: Dataset) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = waveform.GENERAL_ECG
    g = _group(ds)
    g.WaveformData = (np.frombuffer(g.WaveformData, "<i2") // 64).astype(np.int8).tobytes()
    g.WaveformBitsAllocated = 8
    g.WaveformSampleInterpretation = "SB"


def _bits(bits: int, interpretation: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        g = _group(ds)
        dtype = {8: "<i1", 16: "<i2", 32: "<i4", 64: "<i8"}[bits]
        g.WaveformData = np.frombuffer(g.WaveformData, "<i2").astype(dtype).tobytes()
        g.WaveformBitsAllocated = bits
        g.WaveformSampleInterpretation = interpretation
    return change


#: (name, change, failure reason, words of the message)
BAD: list[tuple[str, Callable[[Dataset], None], int, str]] = [
    ("no channels", _set("NumberOfWaveformChannels", 0), 0xC000, "channels"),
    ("too many channels", _set("NumberOfWaveformChannels", 65535), 0xC000, "channels"),
    ("too many samples", _set("NumberOfWaveformSamples", 2**32 - 1), 0xC000, "samples"),
    ("short data", _set("NumberOfWaveformSamples", 2001), 0xC000, "waveform data has"),
    ("8 SB in a 12-lead", _bits(8, "SB"), 0xC000, "bits"),
    ("32 SL", _bits(32, "SL"), 0xC000, "bits"),
    ("64 SV", _bits(64, "SV"), 0xC000, "bits"),
    ("16 US", _set("WaveformSampleInterpretation", "US"), 0xC000, "bits"),
    ("16 MB", _set("WaveformSampleInterpretation", "MB"), 0xC000, "bits"),
    ("16 AB", _set("WaveformSampleInterpretation", "AB"), 0xC000, "bits"),
    ("16 UL", _set("WaveformSampleInterpretation", "UL"), 0xC000, "bits"),
    ("General ECG 8 SB", _general_8bit, 0xC000, "bits"),
    ("rate 0", _set("SamplingFrequency", 0), 0xC000, "sampling frequency"),
    ("rate negative", _set("SamplingFrequency", -500), 0xC000, "sampling frequency"),
    ("rate NaN", _set("SamplingFrequency", "NaN"), 0xC000, "finite"),
    ("rate absurd", _set("SamplingFrequency", "1e300"), 0xC000, "sampling frequency"),
    ("time offset inf", _set("MultiplexGroupTimeOffset", "inf"), 0xC000, "time offset"),
    ("time offset twice", _set("MultiplexGroupTimeOffset", ["1", "2"]), 0xC000, "time offset"),
    ("many groups", lambda ds: ds.WaveformSequence.extend(
        [copy.deepcopy(_group(ds)) for _ in range(6)]), 0xC000, "multiplex groups"),
    ("no channel source", _drop("ChannelSourceSequence", 3), 0xC000, "channel source"),
    ("sensitivity 0", _set("ChannelSensitivity", 0, channel=2), 0xC000, "sensitivity"),
    ("no sensitivity", _drop("ChannelSensitivity", 2), 0xC000, "sensitivity is missing"),
    ("no sensitivity units", _drop("ChannelSensitivityUnitsSequence", 2), 0xC000, "units"),
    ("correction 1e-12", _set("ChannelSensitivityCorrectionFactor", "1e-12", channel=1),
     0xC000, "sensitivity"),
    ("correction NaN", _set("ChannelSensitivityCorrectionFactor", "NaN", channel=1),
     0xC000, "finite"),
    ("pixels too", _as_pixels, 0xC000, "no pixel data"),
    ("no waveform", lambda ds: delattr(ds, "WaveformSequence"), 0xC000, "waveform sequence"),
]


def _bad_bytes() -> list[tuple[str, bytes, int, str]]:
    out = []
    for seed, (name, change, reason, words) in enumerate(BAD, start=1):
        ds = _ecg(seed)
        change(ds)
        out.append((name, to_bytes(ds), reason, words))
    return out


async def test_adversarial_waveforms_through_stow_are_refused_one_by_one(client, auth, settings):
    h = await auth("dr.li")
    bad = _bad_bytes()
    good = _ecg(99, "stemi", seconds=10)
    body, ctype = multipart_related([b for _, b, _, _ in bad] + [to_bytes(good)])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 202, await resp.text()  # some stored, some failed (PS3.18 10.5.3)
    result = await resp.json()
    failed = _seq(result, "00081198")
    assert len(failed) == len(bad)
    for (name, _, reason, _words), item in zip(bad, failed, strict=True):
        assert item["00081197"]["Value"] == [reason], name
        # Error Comment is an LO (64 characters): the kiosk test reads the whole messages.
        assert item["00000902"]["Value"][0].startswith("part "), name
    (stored,) = _seq(result, "00081199")
    assert stored["00081155"]["Value"] == [good.SOPInstanceUID]
    # Nothing of the refused ones on disk; the good one is served.
    files = list(settings.dicom_dir.rglob("*.dcm"))
    assert len(files) == 1
    summary = await (await client.get(_base(good) + "/ecg/summary", headers=h)).json()
    assert summary["screening"]["suspected_critical"] is True


def _file_name(name: str) -> str:
    return name.replace(" ", "_") + ".dcm"  # the form client would percent-encode a space


async def test_adversarial_waveforms_through_the_kiosk_upload(client, auth):
    h = await auth("dr.li")
    bad = _bad_bytes()
    good = _ecg(98)
    form = aiohttp.FormData()
    for name, body, _, _ in bad:
        form.add_field("files", body, filename=_file_name(name),
                       content_type="application/octet-stream")
    form.add_field("files", to_bytes(good), filename="good.dcm",
                   content_type="application/octet-stream")
    resp = await client.post("/api/uploads", data=form, headers=h)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert [s["sop_instance_uid"] for s in result["stored"]] == [good.SOPInstanceUID]
    by_file = {f["file"]: f["error"] for f in result["failed"]}
    for name, _, reason, words in bad:
        error = by_file[_file_name(name)]
        assert error["code"] == ("invalid_dicom" if reason == 0xC000 else "image_too_large")
        assert words in error["message"].lower(), (name, error)
    # Only bad files: 400 with the reasons, never a 500.
    form = aiohttp.FormData()
    form.add_field("files", bad[0][1], filename="bad.dcm", content_type="application/dicom")
    resp = await client.post("/api/uploads", data=form, headers=h)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "nothing_stored"


async def test_a_deflate_bomb_of_a_waveform_and_a_big_endian_one(client, auth, settings):
    """12 channels x 200,000 zero samples (4.8 MB) deflate to a few KB: over the 4 MiB upload
    limit once inflated. An Explicit VR Big Endian ECG is refused (its OW would be swapped)."""
    h = await auth("dr.li")
    ds = _ecg(7)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = waveform.AMBULATORY_ECG
    del ds.WaveformSequence[1]
    g = _group(ds)
    g.NumberOfWaveformSamples = 200_000
    g.WaveformData = bytes(12 * 200_000 * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    bomb = to_bytes(ds)
    assert len(bomb) < 64 * 1024
    big = _ecg(8)
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    buf = io.BytesIO()
    big.save_as(buf, implicit_vr=False, little_endian=False, enforce_file_format=True)
    body, ctype = multipart_related([bomb, buf.getvalue()])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 409, await resp.text()
    bomb_fail, big_fail = _seq(await resp.json(), "00081198")
    assert bomb_fail["00081197"]["Value"] == [0xA700]
    assert "inflates to more than 4 MiB" in bomb_fail["00000902"]["Value"][0]
    assert "big endian" in big_fail["00000902"]["Value"][0].lower()
    assert not list(settings.dicom_dir.rglob("*.dcm"))


async def test_valid_odd_waveforms_are_stored_and_served_safely(client, auth):
    """Valid per PS3.3 yet unusual: a negative correction factor, a mV unit, 13 channels (one
    unnamed by the ECG lead list), annotations naming channels that do not exist, an
    ambulatory 8-bit SB recording and a General ECG at 200 Hz."""
    h = await auth("dr.li")
    odd = _ecg(11)
    channels = _group(odd).ChannelDefinitionSequence
    channels[0].ChannelSensitivityCorrectionFactor = "-1"
    for c in channels:
        c.ChannelSensitivity = f"{float(c.ChannelSensitivity) / 1000:.6g}"
        c.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
    for note in odd.WaveformAnnotationSequence:
        note.ReferencedWaveformChannels = [9, 99]
    extra = copy.deepcopy(channels[1])
    source = extra.ChannelSourceSequence[0]
    source.CodeValue, source.CodingSchemeDesignator = "ESO", "99LOCAL"
    source.CodeMeaning = "Esophageal lead"
    g = _group(odd)
    raw = np.frombuffer(g.WaveformData, "<i2").reshape(-1, 12)
    g.WaveformData = np.concatenate([raw, raw[:, 1:2]], axis=1).tobytes()
    channels.append(extra)
    g.NumberOfWaveformChannels = 13
    holter = _ecg(12)
    holter.SOPClassUID = holter.file_meta.MediaStorageSOPClassUID = waveform.AMBULATORY_ECG
    del holter.WaveformSequence[1]
    _bits(8, "SB")(holter)
    general = _ecg(13)
    general.SOPClassUID = general.file_meta.MediaStorageSOPClassUID = waveform.GENERAL_ECG
    _group(general).SamplingFrequency = 200
    body, ctype = multipart_related([to_bytes(x) for x in (odd, holter, general)])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 200, await resp.text()
    for ds in (odd, holter, general):
        resp = await client.get(_base(ds) + "/ecg", headers=h)
        assert resp.status == 200
        header, arrays = compact.decode(await resp.read())
        for index, (group, arr) in enumerate(zip(header["groups"], arrays, strict=True)):
            values = np.stack([arr[:, k] * c["sensitivity"] * c["correction"] + c["baseline"]
                               for k, c in enumerate(group["channels"])], axis=1)
            np.testing.assert_array_equal(values, ds.waveform_array(index))
    summary = await (await client.get(_base(odd) + "/ecg/summary", headers=h)).json()
    assert summary["leads"][-1] == "Esophageal lead"
    assert summary["statements"]  # annotations with impossible channel references still read


async def test_ecg_resources_negotiation_queries_and_ps318_spelling(client, auth, store):
    h = await auth("dr.li")
    ds = _ecg(21)
    body, ctype = multipart_related([to_bytes(ds)])
    assert (await client.post("/dicomweb/studies", data=body,
                              headers={**h, "Content-Type": ctype})).status == 200
    base = _base(ds)
    other = await auth("dr.wang")
    # Malformed queries and unacceptable media types: the same answer for the owner and for
    # another clinic, before anything is looked up.
    for who in (h, other):
        for suffix, accept, status in (
            ("/ecg?x=1", "*/*", 400),
            ("/ecg/summary?lang=en", "*/*", 400),
            ("/ecg", "application/json", 406),
            ("/ecg/summary", "application/vnd.huizhen.ecg", 406),
            ("/bulkdata/54000100/1/54001010", "application/dicom", 406),
            ("/bulkdata/54000100/1/54001010", 'multipart/related; type="image/jpeg"', 406),
            ("/bulkdata/54000100/x/54001010", "*/*", 400),
            ("/bulkdata/54000100/0/54001010", "*/*", 400),
            ("/bulkdata/5400010/1/54001010", "*/*", 400),
        ):
            resp = await client.get(base + suffix, headers={**who, "Accept": accept})
            assert resp.status == status, (suffix, accept, resp.status)
            assert (await resp.json())["error"]["code"]
    # PS3.18 8.7.3 bulk data: multipart/related; type="application/octet-stream".
    for accept in ('multipart/related; type="application/octet-stream"',
                   "multipart/related; type=application/octet-stream",
                   "application/octet-stream", "*/*"):
        resp = await client.get(base + "/bulkdata/54000100/1/54001010",
                                headers={**h, "Accept": accept})
        assert resp.status == 200, accept
        ctype = resp.headers["Content-Type"]
        assert ctype.startswith('multipart/related; type="application/octet-stream"; boundary=')
        ((headers, value),) = await read_multipart(resp)
        assert headers["content-type"].startswith("application/octet-stream")
        assert headers["content-location"].endswith(base + "/bulkdata/54000100/1/54001010")
        assert value == _group(ds).WaveformData
    # An ECG has no image: the image resources answer 4xx, not 500 (also a study or series
    # holding nothing but the ECG).
    series = base.rsplit("/instances/", 1)[0]
    study = series.rsplit("/series/", 1)[0]
    for url in (base + "/rendered", base + "/frames/1/rendered", base + "/thumbnail",
                base + "/frames/1", series + "/thumbnail", study + "/thumbnail"):
        resp = await client.get(url, headers=h)
        assert 400 <= resp.status < 500, (url, resp.status)
    # The instance itself, as stored and transcoded to Explicit VR Little Endian.
    for ts in ("*", "1.2.840.10008.1.2.1"):
        resp = await client.get(base, headers={
            **h, "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={ts}'})
        assert resp.status == 200, ts
        ((_, value),) = await read_multipart(resp)
        again = pydicom.dcmread(io.BytesIO(value))
        np.testing.assert_array_equal(again.waveform_array(0), ds.waveform_array(0))
    # Another clinic: 404 exactly as for an instance that does not exist.
    missing = base.rsplit("/", 1)[0] + "/1.2.3.4.5"
    for suffix in ("/ecg", "/ecg/summary", "/metadata", "/bulkdata/54000100/1/54001010"):
        theirs = await client.get(base + suffix, headers=other)
        nothing = await client.get(missing + suffix, headers=h)
        assert theirs.status == nothing.status == 404, suffix
        assert (await theirs.json())["error"] == (await nothing.json())["error"] | {
            "message": (await theirs.json())["error"]["message"]}


async def test_a_grant_opens_the_ecg_and_every_view_is_audited(client, auth, store):
    h = await auth("dr.li")
    ds = _ecg(31, "vt", seconds=10)
    body, ctype = multipart_related([to_bytes(ds)])
    assert (await client.post("/dicomweb/studies", data=body,
                              headers={**h, "Content-Type": ctype})).status == 200
    expert = await auth("exp.zhang")
    assert (await client.get(_base(ds) + "/ecg", headers=expert)).status == 404
    await store.grants.grant("exp.zhang", "qingshui", ds.StudyInstanceUID, kind="consult",
                             ref="c-ecg", ttl_s=600)
    views = {"/ecg": "ecg.samples", "/ecg/summary": "ecg.summary", "/metadata": "wado.metadata",
             "/bulkdata/54000100/1/54001010": "wado.bulkdata"}
    for suffix in views:
        resp = await client.get(_base(ds) + suffix, headers=expert)
        assert resp.status == 200, suffix
        await resp.read()
    audited = [e.fields for e in await store.audit.recent(100)]
    for action in views.values():
        assert any(f.get("action") == action and f.get("user") == "exp.zhang"
                   and ds.StudyInstanceUID in (f.get("study") or "") for f in audited), action


async def test_a_long_recording_is_refused_by_the_viewer_format_before_reading(
        client, auth, monkeypatch):
    """Over the compact format's sample budget: 413 from the index, and the bulk data (the
    way to read it) still serves it."""
    monkeypatch.setattr(compact, "MAX_SAMPLES", 10_000)
    h = await auth("dr.li")
    ds = _ecg(41)  # 12 x 2000 + 12 x 600 samples
    body, ctype = multipart_related([to_bytes(ds)])
    assert (await client.post("/dicomweb/studies", data=body,
                              headers={**h, "Content-Type": ctype})).status == 200
    resp = await client.get(_base(ds) + "/ecg", headers=h)
    assert resp.status == 413
    assert "bulk data" in (await resp.json())["error"]["message"]
    resp = await client.get(_base(ds) + "/bulkdata/54000100/1/54001010", headers=h)
    assert resp.status == 200


@pytest.mark.parametrize("count", [1, 3])
async def test_many_annotations_and_group_sequences_stay_bounded(client, auth, count,
                                                                 monkeypatch):
    """The annotation cap (lowered here) refuses a flood of annotation items with 0xA700."""
    monkeypatch.setattr(waveform, "MAX_ANNOTATIONS", 100)
    h = await auth("dr.li")
    datasets = []
    for k in range(count):
        ds = _ecg(50 + k)
        note = ds.WaveformAnnotationSequence[0]
        ds.WaveformAnnotationSequence = Sequence([copy.deepcopy(note) for _ in range(101)])
        datasets.append(ds)
    body, ctype = multipart_related([to_bytes(x) for x in datasets])
    resp = await client.post("/dicomweb/studies", data=body, headers={**h, "Content-Type": ctype})
    assert resp.status == 409
    for item in _seq(await resp.json(), "00081198"):
        assert item["00081197"]["Value"] == [0xA700]

"""The ECG report template (issue #11 item 4): validation, prefill from the index, signatures of
reports with and without it, and the tracing raster's scale (px per mm, per mV)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from media.ecg import synthetic, tracing, waveform
from media.ecg.waveform import Channel, Group
from server.clinical.report_model import (
    ECG,
    ContentError,
    Kind,
    Status,
    Subject,
    Version,
    canonical_json,
    clean_content,
    ecg_prefill,
    empty_content,
)

SUBJECT = Subject("c1", "Clinic", "1.2.3", "Zhao^Liu", "P1", "ecg")


def _version(content: dict) -> Version:
    return Version(report_id="r1", kind=Kind.READING, version=1, status=Status.PRELIMINARY,
                   subject=SUBJECT, author="exp", content=content, created_at=1.0)


def test_clean_ecg_bounds_and_lengths():
    ok = clean_content(Kind.READING, {"findings": "x", ECG: {"rhythm": "Sinus", "rate": 72,
                                                             "qtc": 430, "axis": -30}})
    assert ok[ECG] == {"rhythm": "Sinus", "rate": 72, "pr": None, "qrs": None, "qt": None,
                       "qtc": 430, "axis": -30, "st_t": "", "conclusion": ""}
    for bad in ({"rate": 401}, {"rate": 72.5}, {"axis": -181}, {"pr": True}, {"qt": "400"},
                {"rhythm": "x" * 201}, {"conclusion": "\x00"}, {"heart": 1}, []):
        with pytest.raises(ContentError):
            clean_content(Kind.READING, {ECG: bad})
    with pytest.raises(ContentError):  # an opinion has no ECG template
        clean_content(Kind.OPINION, {ECG: {}})
    # Without it (or null) the content is exactly as before the template existed.
    assert clean_content(Kind.READING, {"findings": "x"}) == {**empty_content(Kind.READING),
                                                              "findings": "x"}
    assert ECG not in clean_content(Kind.READING, {ECG: None})


def test_old_signatures_unchanged_and_new_ones_cover_the_ecg():
    old = _version(clean_content(Kind.READING, {"findings": "a", "impression": "b"}))
    signed = old.sign("exp", "Dr", at=0.0, code="0000-0000-0000")
    # The pre-template payload: the hash over exactly the content it always had.
    assert ECG not in signed.content
    assert canonical_json(signed.content) == (
        b'{"critical":false,"findings":"a","impression":"b","key_images":[],'
        b'"recommendation":""}')
    assert signed.intact() and Version.from_json(signed.to_json()).intact()
    new = _version(clean_content(Kind.READING, {"findings": "a", "impression": "b",
                                                ECG: {"rate": 80, "rhythm": "Sinus"}}))
    s2 = new.sign("exp", "Dr", at=0.0, code="0000-0000-0000")
    assert s2.intact() and Version.from_json(s2.to_json()).intact()
    assert s2.signature != signed.signature
    from dataclasses import replace
    tampered = replace(s2, content={**s2.content, ECG: {**s2.content[ECG], "rate": 81}})
    assert not tampered.intact()


def test_prefill_from_the_index_of_the_pydicom_fixture():
    ds = pydicom.dcmread(Path(get_testdata_file("waveform_ecg.dcm")))
    from media.ecg.index import ecg_index
    entry = ecg_index(ds)
    pre = ecg_prefill(entry)
    assert pre is not None and set(pre) >= {"rate", "pr", "qrs", "qt", "qtc", "axis"}
    m = entry["measurements"]
    for key, name in (("pr_ms", "pr"), ("qrs_ms", "qrs"), ("qt_ms", "qt"), ("qtc_ms", "qtc")):
        if key in m:
            assert pre[name] == round(m[key])
    assert pre["rate"] is not None
    assert ecg_prefill(None) is None
    # Out-of-range device numbers are left for the reader, not refused.
    assert ecg_prefill({"measurements": {"hr": 9999, "pr_ms": 160.4}})["rate"] is None


def test_tracing_scale_px_per_mm_and_per_mv():
    """A 1 mV square step in lead II moves the trace by 10 mm = 10·PX_PER_MM px, one second
    spans 25 mm; the image is 250 mm × 4 rows wide/high at PX_PER_MM."""
    fs = 500.0
    n = int(10 * fs)
    raw = np.zeros((n, 2), dtype=np.int16)
    raw[int(fs):int(2 * fs), 1] = 1000  # 1000 µV from t = 1 s to 2 s, lead II
    channels = [Channel("I", 1.0, 1.0, 0.0, "uV"), Channel("II", 1.0, 1.0, 0.0, "uV")]
    t = tracing.render([Group("RHYTHM", fs, raw, channels)])
    px = tracing.PX_PER_MM
    assert (t.width_mm, t.height_mm) == (250.0, 4 * tracing.ROW_MM)
    im = Image.open(io.BytesIO(t.png)).convert("RGB")
    assert im.size == (round(250 * px), round(4 * tracing.ROW_MM * px))
    a = np.asarray(im)
    black = (a.sum(axis=2) == 0)
    # The rhythm strip (row 4): the trace's rows at t = 0.5 s and t = 1.5 s.
    base = int((3.5 * tracing.ROW_MM) * px)

    def trace_y(seconds: float) -> float:
        x = int(seconds * tracing.MM_PER_S * px)
        ys = np.nonzero(black[:, x])[0]
        ys = ys[(ys > base - tracing.ROW_MM / 2 * px) & (ys < base + tracing.ROW_MM / 2 * px)]
        return float(ys.mean())

    assert abs(trace_y(0.5) - base) <= 1.5
    assert abs((trace_y(0.5) - trace_y(1.5)) - 10 * px) <= 1.5  # 10 mm per mV
    # The step's edges are 25 mm apart (1 s): the columns where the strip is at +1 mV.
    up = [x for x in range(a.shape[1]) if black[base - 10 * px - 1:base - 10 * px + 2, x].any()]
    assert abs((max(up) - min(up)) - 25 * px) <= 2
    # The grid: a minor line every PX_PER_MM px, a major one every 5 mm.
    assert tuple(a[1, 5 * px + 2]) == (255, 255, 255)
    assert tuple(a[2, px]) == tracing._MINOR and tuple(a[2, 5 * px]) == tracing._MAJOR
    assert Image.open(io.BytesIO(t.png)).info["dpi"][0] == pytest.approx(px * 25.4, abs=0.1)


def test_tracing_of_the_synthetic_12_lead():
    ds = synthetic.ecg_dataset(synthetic.Spec("stemi", seed=3))
    t = tracing.render(waveform.decode(ds))
    assert t.png.startswith(b"\x89PNG") and len(t.png) < 2_000_000

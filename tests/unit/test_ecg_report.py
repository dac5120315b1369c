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

FIXTURE = get_testdata_file("waveform_ecg.dcm")
SUBJECT = Subject("c1", "Clinic", "1.2.3", "Zhao^Liu", "P1", "ecg")


def _version(content: dict) -> Version:
    return Version(report_id="r1", kind=Kind.READING, version=1, status=Status.PRELIMINARY,
                   subject=SUBJECT, author="exp", content=content, created_at=1.0)


def test_clean_ecg_bounds_and_lengths():
    ok = clean_content(Kind.READING, {"findings": "x", ECG: {"rhythm": "Sinus", "rate": 72,
                                                             "qtc": 430, "axis": -30}})
    assert ok[ECG] == {"rhythm": "Sinus", "rate": 72, "pr": None, "qrs": None, "qt": None,
                       "qtc": 430, "axis": -30, "p_axis": None, "t_axis": None, "st_t": "",
                       "conclusion": ""}
    for bad in ({"rate": 401}, {"rate": 72.5}, {"axis": -181}, {"pr": True}, {"qt": "400"},
                {"p_axis": 361}, {"t_axis": -181.0},
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
    # The fixture's P, QRS and T axes (74°, 52°, 57°).
    assert (pre["p_axis"], pre["axis"], pre["t_axis"]) == (74, 52, 57)
    assert ecg_prefill(None) is None
    # Out-of-range device numbers are left for the reader, not refused.
    assert ecg_prefill({"measurements": {"hr": 9999, "pr_ms": 160.4}})["rate"] is None


def _step_ecg(fs: float = 500.0) -> list[Group]:
    """Two leads of 10 s, lead II a 1 mV square step from t = 1 s to 2 s."""
    n = int(10 * fs)
    raw = np.zeros((n, 2), dtype=np.int16)
    raw[int(fs):int(2 * fs), 1] = 1000  # 1000 µV
    channels = [Channel("I", 1.0, 1.0, 0.0, "uV"), Channel("II", 1.0, 1.0, 0.0, "uV")]
    return [Group("RHYTHM", fs, raw, channels)]


def _black(t: tracing.Tracing) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(t.png)).convert("RGB")).sum(axis=2) == 0


@pytest.mark.parametrize("gain", [5.0, 10.0, 20.0])
def test_tracing_scale_px_per_mm_and_per_mv(gain):
    """A 1 mV square step in lead II moves the trace by `gain` mm = gain·PX_PER_MM px, one
    second spans 25 mm after the 10 mm calibration lead-in; the image is 260 mm × 4 rows at
    PX_PER_MM."""
    t = tracing.render(_step_ecg(), gain)
    px = tracing.PX_PER_MM
    assert (t.width_mm, t.height_mm, t.gain) == (260.0, 4 * tracing.ROW_MM, gain)
    im = Image.open(io.BytesIO(t.png)).convert("RGB")
    assert im.size == (round(260 * px), round(4 * tracing.ROW_MM * px))
    a = np.asarray(im)
    black = _black(t)
    # The rhythm strip (row 4): the trace's rows at t = 0.5 s and t = 1.5 s.
    base = round((3 * tracing.ROW_MM + tracing.BASELINE_MM) * px)
    assert t.pulses[3].baseline_mm * px == base
    x0 = round(tracing.CAL_MM * px)

    def trace_y(seconds: float) -> float:
        x = int(x0 + seconds * tracing.MM_PER_S * px)
        ys = np.nonzero(black[:, x])[0]
        ys = ys[(ys > base - tracing.BASELINE_MM * px) & (ys < base + 14 * px)]
        return float(ys.mean())

    assert abs(trace_y(0.5) - base) <= 1.5
    assert abs((trace_y(0.5) - trace_y(1.5)) - gain * px) <= 1.5  # gain mm per mV
    # The step's edges are 25 mm apart (1 s): the columns where the strip is at +1 mV.
    level = round(base - gain * px)
    up = [x for x in range(x0, a.shape[1]) if black[level - 1:level + 2, x].any()]
    assert abs((max(up) - min(up)) - 25 * px) <= 2
    assert abs(min(up) - (x0 + 25 * px)) <= 2
    # The grid: a minor line every PX_PER_MM px, a major one every 5 mm.
    assert tuple(a[1, 5 * px + 2]) == (255, 255, 255)
    assert tuple(a[2, px]) == tracing._MINOR and tuple(a[2, 5 * px]) == tracing._MAJOR
    assert Image.open(io.BytesIO(t.png)).info["dpi"][0] == pytest.approx(px * 25.4, abs=0.1)


@pytest.mark.parametrize("gain", [5.0, 10.0, 20.0])
def test_every_row_starts_with_a_1_mv_calibration_pulse(gain):
    """Each of the 4 rows: a pulse `gain` mm tall (1 mV) and 5 mm wide (200 ms at 25 mm/s),
    measured in the pixels drawn, inside the lead-in and inside its own row."""
    t = tracing.render(_step_ecg(), gain)
    px = tracing.PX_PER_MM
    black = _black(t)
    assert len(t.pulses) == 4
    for row, p in enumerate(t.pulses):
        assert (p.width_mm, p.height_mm) == (5.0, gain)
        assert p.baseline_mm == row * tracing.ROW_MM + tracing.BASELINE_MM
        assert p.baseline_mm - p.height_mm >= row * tracing.ROW_MM  # the top stays in its row
        lead_in = black[round(row * tracing.ROW_MM * px):round((row + 1) * tracing.ROW_MM * px),
                        :round(tracing.CAL_MM * px)]
        ys, xs = np.nonzero(lead_in)
        top = row * tracing.ROW_MM * px + ys.min()
        bottom = row * tracing.ROW_MM * px + ys.max()
        # Drawn 2 px wide: extents are the nominal ones ±1 px.
        assert abs((bottom - top) - gain * px) <= 2
        assert abs(bottom - p.baseline_mm * px) <= 1
        high = xs[ys <= ys.min() + 1]  # the pulse's top edge
        assert abs((high.max() - high.min()) - 5 * px) <= 2
        assert abs(high.min() - p.x_mm * px) <= 1


def test_median_beats_of_the_pydicom_fixture():
    """The fixture's median-beat group (12 × 1.2 s): a second sheet of 3 × 4 beats with the
    same calibration pulses and scale; an ECG without one has none."""
    ds = pydicom.dcmread(FIXTURE)
    sheets = tracing.render_sheets(waveform.decode(ds), 20.0)
    m = sheets.medians
    assert m is not None and m.gain == 20.0 and sheets.rhythm.gain == 20.0
    assert (m.width_mm, m.height_mm) == (10 + 4 * (1.2 * 25 + 5), 3 * tracing.ROW_MM)
    im = Image.open(io.BytesIO(m.png))
    px = tracing.PX_PER_MM
    assert im.size == (round(m.width_mm * px), round(m.height_mm * px))
    assert [(p.width_mm, p.height_mm) for p in m.pulses] == [(5.0, 20.0)] * 3
    # Every cell holds a trace: ink right of each beat's start.
    black = _black(m)
    for c in range(4):
        x0 = round((tracing.CAL_MM + c * 35) * px)
        assert black[:, x0 + px:x0 + 30 * px].sum() > 100, c
    assert tracing.render_sheets(_step_ecg()).medians is None
    with pytest.raises(ValueError):
        tracing.render(_step_ecg(), 15.0)


def test_tracing_of_the_synthetic_12_lead():
    ds = synthetic.ecg_dataset(synthetic.Spec("stemi", seed=3))
    t = tracing.render(waveform.decode(ds))
    assert t.png.startswith(b"\x89PNG") and len(t.png) < 2_000_000


def test_fhir_of_an_ecg_report_validates_and_skips_what_was_not_measured():
    """An ECG report's DiagnosticReport (FHIR R4B, fhir.resources): EKG study, category EC,
    one contained Observation per measured number (null ones left out), each in `result`;
    an imaging report keeps its imaging code and has none."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    from server.clinical.report_model import Report
    from server.clinical.report_output import diagnostic_report

    def fhir(content: dict) -> dict:
        signed = _version(clean_content(Kind.READING, content)).sign(
            "exp", "Dr", at=0.0, code="0000-0000-0000")
        report = Report(versions=(signed,))
        raw = diagnostic_report(report, signed, institution="County", pdf_url="/x.pdf")
        DiagnosticReport.model_validate(raw)
        return raw

    raw = fhir({"impression": "STEMI", ECG: {"rate": 96, "qtc": 452, "t_axis": -20}})
    assert raw["code"]["coding"][0]["code"] == "11524-6"
    assert raw["category"][0]["coding"][0]["code"] == "EC"
    obs = raw["contained"]
    assert [(o["code"]["coding"][0]["code"], o["valueQuantity"]["value"],
             o["valueQuantity"]["code"]) for o in obs] == [
        ("8867-4", 96, "/min"), ("8636-3", 452, "ms"), ("8638-9", -20, "deg")]
    assert [r["reference"] for r in raw["result"]] == ["#ecg-rate", "#ecg-qtc", "#ecg-t-axis"]
    imaging = fhir({"impression": "Normal chest."})
    assert imaging["code"]["coding"][0]["code"] == "18748-4"
    assert "contained" not in imaging and "result" not in imaging

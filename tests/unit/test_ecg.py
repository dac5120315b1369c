"""ECG waveforms: bounded validation, decoding, the index summary, the compact format, the QRS
detector and the pre-screening (on pydicom's waveform_ecg.dcm and the synthetic set)."""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from media.ecg import compact, qrs, screening, synthetic, waveform
from media.ecg.index import ecg_index
from media.imaging.errors import ImageTooLargeError, InvalidDicomError
from media.imaging.validation import Limits, validate_file

log = logging.getLogger(__name__)
FIXTURE = get_testdata_file("waveform_ecg.dcm")


@pytest.fixture(scope="module")
def fixture_ds() -> pydicom.Dataset:
    return pydicom.dcmread(FIXTURE)


def test_fixture_summary(fixture_ds):
    index = ecg_index(fixture_ds)
    assert index is not None
    assert index["iod"] == "12-lead ECG"
    assert index["rate_hz"] == 1000.0 and index["duration_s"] == 10.0
    assert index["leads"] == ["I", "II", "III", "aVR", "aVL", "aVF",
                              "V1", "V2", "V3", "V4", "V5", "V6"]
    assert [g["label"] for g in index["groups"]] == ["RHYTHM", "MEDIAN BEAT"]
    assert index["groups"][0]["samples"] == 10_000 and index["groups"][1]["samples"] == 1200
    assert index["device"] == "Mortara Instrument, Inc. el250"
    assert index["acquired"] == "20130125105919"
    m = index["measurements"]
    assert (m["pr_ms"], m["qrs_ms"], m["qt_ms"], m["qtc_ms"], m["qrs_axis"]) == (
        161, 75, 368, 370, 52)
    assert index["statements"] == ["RITMO SINUSALE", "ECG NORMALE"]
    s = index["screening"]
    # The device says RR 982 ms (61/min); a normal ECG, not flagged.
    assert abs(s["heart_rate"] - 60000 / 982) < 2
    assert s["suspected_critical"] is False and s["reasons"] == []


def test_decode_equals_waveform_array(fixture_ds):
    for index, group in enumerate(waveform.decode(fixture_ds)):
        expected = fixture_ds.waveform_array(index)
        for k, channel in enumerate(group.channels):
            mine = (group.raw[:, k].astype(np.float64) * channel.sensitivity * channel.correction
                    + channel.baseline)
            np.testing.assert_array_equal(mine, expected[:, k])


def test_compact_round_trip_equals_waveform_array(fixture_ds):
    groups = waveform.decode(fixture_ds)
    header, arrays = compact.decode(compact.encode(groups, {"summary": {"x": 1}}))
    assert header["encoding"] == "delta-int16-le" and header["summary"] == {"x": 1}
    for index, (g, arr) in enumerate(zip(header["groups"], arrays, strict=True)):
        values = np.stack([arr[:, k] * c["sensitivity"] * c["correction"] + c["baseline"]
                           for k, c in enumerate(g["channels"])], axis=1)
        np.testing.assert_array_equal(values, fixture_ds.waveform_array(index))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400))
def test_delta_coding_is_exact_with_overflow(values):
    raw = np.asarray(values, dtype=np.int16)[None, :]
    np.testing.assert_array_equal(compact.delta_decode(compact.delta_encode(raw)), raw)


def _ecg_file(tmp_path: Path, ds: pydicom.Dataset) -> Path:
    path = tmp_path / "ecg.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _mutated(change) -> pydicom.Dataset:
    ds = synthetic.ecg_dataset(synthetic.Spec("nsr", seconds=2))
    change(ds)
    return ds


def _set(item, keyword, value):
    setattr(item, keyword, value)


@pytest.mark.parametrize("change, error, words", [
    (lambda ds: _set(ds.WaveformSequence[0], "NumberOfWaveformChannels", 40),
     InvalidDicomError, "channels"),
    (lambda ds: _set(ds.WaveformSequence[0], "NumberOfWaveformSamples", 20000),
     InvalidDicomError, "samples per channel"),
    (lambda ds: _set(ds.WaveformSequence[0], "NumberOfWaveformSamples", 999),
     InvalidDicomError, "Waveform Data has"),
    (lambda ds: _set(ds.WaveformSequence[0], "WaveformBitsAllocated", 32),
     InvalidDicomError, "bits"),
    (lambda ds: _set(ds.WaveformSequence[0], "WaveformSampleInterpretation", "MB"),
     InvalidDicomError, "bits"),
    (lambda ds: _set(ds.WaveformSequence[0], "SamplingFrequency", 20000),
     InvalidDicomError, "sampling frequency"),
    (lambda ds: _set(ds.WaveformSequence[0].ChannelDefinitionSequence[3],
                     "ChannelSensitivity", 0), InvalidDicomError, "sensitivity"),
    (lambda ds: _set(ds.WaveformSequence[0].ChannelDefinitionSequence[3],
                     "ChannelSensitivity", "nan"), InvalidDicomError, "finite"),
    (lambda ds: ds.WaveformSequence[0].ChannelDefinitionSequence.pop(),
     InvalidDicomError, "channel definitions"),
    (lambda ds: ds.WaveformSequence.extend(copy.deepcopy(list(ds.WaveformSequence)) * 2),
     InvalidDicomError, "multiplex groups"),
    (lambda ds: _set(ds.WaveformSequence[0], "WaveformData",
                     ds.WaveformSequence[0].WaveformData[:-100]),
     InvalidDicomError, "Waveform Data has"),
    (lambda ds: delattr(ds, "WaveformSequence"), InvalidDicomError, "Waveform Sequence"),
])
def test_validation_refuses_before_decoding(tmp_path, change, error, words):
    path = _ecg_file(tmp_path, _mutated(change))
    with pytest.raises(error) as caught:
        validate_file(path, Limits(max_pixels=10**8))
    assert words.lower() in caught.value.message.lower()


def test_validation_total_samples_bound(monkeypatch, tmp_path):
    monkeypatch.setattr(waveform, "MAX_TOTAL_SAMPLES", 1000)
    path = _ecg_file(tmp_path, synthetic.ecg_dataset(synthetic.Spec(seconds=2)))
    with pytest.raises(ImageTooLargeError):
        validate_file(path, Limits(max_pixels=10**8))


def test_synthetic_files_are_valid_and_as_specified(tmp_path):
    for condition in synthetic.CONDITIONS:
        path = _ecg_file(tmp_path, synthetic.ecg_dataset(synthetic.Spec(condition)))
        ds = validate_file(path, Limits(max_pixels=10**8)).dataset
        assert ds.SOPClassUID == waveform.TWELVE_LEAD and ds.Modality == "ECG"
        arr = pydicom.dcmread(path).waveform_array(0)
        assert arr.shape == (5000, 12)
        # Einthoven: III = II - I (to rounding of the stored values).
        assert np.max(np.abs(arr[:, 2] - (arr[:, 1] - arr[:, 0]))) <= 2 * synthetic.SENSITIVITY_UV


def test_qrs_detector_finds_the_synthetic_beats():
    for spec, _ in synthetic.synthetic_set(per_condition=3):
        if spec.condition == "vf":
            continue  # no beats to find
        ds = synthetic.ecg_dataset(spec)
        g = waveform.decode(ds)[0]
        uv = np.stack([g.microvolts(k) for k in range(12)], axis=1)
        truth = synthetic._beat_times(spec, np.random.default_rng(spec.seed)) * spec.fs
        found = qrs.detect(uv, spec.fs).peaks
        # Every true beat within 50 ms of a detection, and nothing extra.
        hits = sum(np.min(np.abs(found - t)) <= 0.05 * spec.fs for t in truth)
        assert hits == len(truth), (spec, truth, found)
        assert len(found) == len(truth), spec


def test_qrs_on_the_fixture_matches_the_device(fixture_ds):
    g = waveform.decode(fixture_ds)[0]
    uv = np.stack([g.microvolts(k) for k in range(12)], axis=1)
    detection = qrs.detect(uv, g.rate)
    assert len(detection.peaks) == 10
    assert abs(float(np.median(detection.rr_s)) * 1000 - 982) < 15  # device: RR 982 ms


def test_screening_sensitivity_and_false_alarm_rate():
    """Waveform rules alone (device statements left out), on the labelled synthetic set."""
    tp = fn = fp = tn = 0
    for spec, critical in synthetic.synthetic_set(per_condition=5):
        quiet = dataclasses.replace(spec, statements=False)
        index = ecg_index(synthetic.ecg_dataset(quiet))
        assert index is not None
        flagged = index["screening"]["suspected_critical"]
        tp += critical and flagged
        fn += critical and not flagged
        fp += flagged and not critical
        tn += not critical and not flagged
        codes = {r["code"] for r in index["screening"]["reasons"]}
        expected = {"stemi": "st_elevation", "vt": "vt", "af_rvr": "rate",
                    "vf": "vf"}.get(spec.condition)
        if expected and critical:
            assert expected in codes, (spec, index["screening"])
    sensitivity = tp / (tp + fn)
    false_alarm = fp / (fp + tn)
    log.warning("ECG screening on %d synthetic ECGs: sensitivity %.2f, false-alarm rate %.2f",
                tp + fn + fp + tn, sensitivity, false_alarm)
    print(f"\nECG screening: sensitivity {sensitivity:.2f} ({tp}/{tp + fn}), "
          f"false-alarm rate {false_alarm:.2f} ({fp}/{fp + tn})")
    assert sensitivity == 1.0 and false_alarm == 0.0


def test_screening_pause_and_device_statements():
    ds = synthetic.ecg_dataset(synthetic.Spec("nsr", rate=72, seed=3))
    groups = waveform.decode(ds)
    # Flatten 4 s of every lead: a pause.
    raw = groups[0].raw.copy()
    raw[1500:3500, :] = 0
    paused = [waveform.Group(groups[0].label, groups[0].rate, raw, groups[0].channels)]
    result = screening.screen(paused, [])
    assert result.suspected_critical and "pause" in {r["code"] for r in result.reasons}
    normal = screening.screen(groups, ["Sinus rhythm"])
    assert not normal.suspected_critical
    flagged = screening.screen(groups, ["Ventricular fibrillation"])
    assert [r["code"] for r in flagged.reasons] == ["device"]
    assert screening.screen(groups, ["急性前壁心肌梗死"]).suspected_critical


def test_screening_of_tiny_and_flat_recordings():
    ds = synthetic.ecg_dataset(synthetic.Spec("nsr", seconds=0.5))
    assert not screening.screen(waveform.decode(ds), []).suspected_critical
    groups = waveform.decode(synthetic.ecg_dataset(synthetic.Spec("nsr", seconds=5)))
    flat = [waveform.Group("RHYTHM", 500.0, np.zeros_like(groups[0].raw), groups[0].channels)]
    result = screening.screen(flat, [])
    assert result.suspected_critical and result.reasons[0]["code"] == "pause"


def test_ecg_bytes_parse():
    body = synthetic.ecg_bytes(synthetic.Spec("stemi"))
    ds = pydicom.dcmread(io.BytesIO(body))
    assert ds.WaveformSequence[1].MultiplexGroupLabel == "MEDIAN BEAT"


def test_a_screening_fault_stores_the_ecg_flagged_for_a_human(monkeypatch, caplog):
    """A fault in our screening never refuses (or hides) a valid ECG: it is indexed, flagged
    `unscreened` so a reader takes it first, and the fault is logged."""
    def broken(groups, statements):
        raise FloatingPointError("injected")

    monkeypatch.setattr(screening, "screen", broken)
    index = ecg_index(synthetic.ecg_dataset(synthetic.Spec("nsr", seconds=3)))
    assert index is not None and index["leads"][0] == "I"
    assert index["screening"]["suspected_critical"] is True
    assert [r["code"] for r in index["screening"]["reasons"]] == ["unscreened"]
    assert any(r.getMessage() == "ecg_screening_failed" for r in caplog.records)


def _joined(*parts: tuple[str, float, float, int]) -> list[waveform.Group]:
    groups = [waveform.decode(synthetic.ecg_dataset(
        synthetic.Spec(c, rate=r, seconds=s, seed=seed)))[0] for c, r, s, seed in parts]
    raw = np.concatenate([g.raw for g in groups])
    return [waveform.Group("RHYTHM", groups[0].rate, raw, groups[0].channels)]


def test_a_rate_must_be_sustained_30_s_in_a_long_recording():
    """>= 180/min for >= 30 s: a 10 s burst at 200/min in 40 s of recording is not that (the
    30 s windows its beats do not fill are not counted); 35 s at 195/min is."""
    burst = screening.screen(_joined(("af_rvr", 200, 10, 1), ("nsr", 70, 30, 2)), [])
    assert "rate" not in {r["code"] for r in burst.reasons}
    sustained = screening.screen(_joined(("af_rvr", 195, 35, 3), ("nsr", 70, 10, 4)), [])
    assert "rate" in {r["code"] for r in sustained.reasons}


def test_vf_is_recognised_from_the_waveform_alone():
    for seed in range(3):
        groups = waveform.decode(synthetic.ecg_dataset(synthetic.Spec("vf", seed=seed)))
        result = screening.screen(groups, [])
        assert "vf" in {r["code"] for r in result.reasons}, result
    calm = screening.screen(waveform.decode(synthetic.ecg_dataset(
        synthetic.Spec("nsr", rate=170, seed=9))), [])
    assert calm.reasons == []


def test_leads_are_named_by_their_code_whatever_the_meaning_says():
    """CID 3001 codes name the lead (SCP-ECG 5.6.3-9-n, MDC 2:n), so a device writing its
    meanings in Chinese still gets the paper layout and the ST rules."""
    ds = synthetic.ecg_dataset(synthetic.Spec("stemi", seed=2))
    for k, channel in enumerate(ds.WaveformSequence[0].ChannelDefinitionSequence):
        source = channel.ChannelSourceSequence[0]
        source.CodeMeaning = "导联"
        if k % 2:
            source.CodingSchemeDesignator = "MDC"
            source.CodeValue = "2:" + source.CodeValue.rsplit("-", 1)[-1]
    groups = waveform.decode(ds)
    assert [c.lead for c in groups[0].channels] == list(synthetic.LEADS)
    assert "st_elevation" in {r["code"] for r in screening.screen(groups, []).reasons}

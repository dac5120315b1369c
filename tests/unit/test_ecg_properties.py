"""Property tests of the ECG waveform parser and the viewer's compact encoder.

- Any waveform a generator can make inside an IOD's bounds (PS3.3 A.34.3-5: groups, channels,
  samples, 8-bit SB / 16-bit SS, sampling frequency, sensitivity, correction factor, baseline,
  units) is accepted, and both our decode and the compact round trip give exactly pydicom's
  `waveform_array` (the stated precision: the stored integers are carried losslessly and the
  scale is applied in pydicom's order, so float64 results are bit-equal).
- Any header field set to anything, or any byte of the file overwritten, is either accepted
  (then decoded as above) or refused with an ImagingError (a 4xx at ingest): never another
  exception, which ingest would answer with a 500.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from media.ecg import compact, synthetic, waveform
from media.ecg.index import ecg_index
from media.imaging.errors import ImagingError
from media.imaging.validation import read_dataset

_IODS = {
    waveform.TWELVE_LEAD: (5, 13, (200.0, 1000.0), ((16, "SS"),)),
    waveform.GENERAL_ECG: (4, 24, (200.0, 1000.0), ((16, "SS"),)),
    waveform.AMBULATORY_ECG: (1, 12, (50.0, 1000.0), ((8, "SB"), (16, "SS"))),
}
_LIMITS = {"max_pixels": 10**8}
_DS = st.floats(allow_nan=False, allow_infinity=False)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "SCPECG", meaning
    return item


def _ds_text(x: float) -> str:
    """A DS value (at most 16 characters) that reads back as exactly the float it stands for."""
    text = f"{x:.10g}"
    return text if len(text) <= 16 else f"{x:.6g}"


@st.composite
def waveforms(draw: st.DrawFn) -> Dataset:
    sop_class = draw(st.sampled_from(sorted(_IODS)))
    max_groups, max_channels, (low, high), types = _IODS[sop_class]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "ECG"
    groups = []
    for index in range(draw(st.integers(1, min(max_groups, 3)))):
        channels = draw(st.integers(1, min(max_channels, 14)))
        samples = draw(st.integers(1, 300))
        bits, interpretation = draw(st.sampled_from(types))
        dtype = np.int8 if bits == 8 else np.int16
        info = np.iinfo(dtype)
        raw = draw(st.lists(st.integers(int(info.min), int(info.max)),
                            min_size=channels * samples, max_size=channels * samples))
        g = Dataset()
        g.MultiplexGroupLabel = draw(st.sampled_from(["RHYTHM", "MEDIAN BEAT", ""]))
        g.MultiplexGroupTimeOffset = _ds_text(draw(st.floats(0, 1e5)))
        g.SamplingFrequency = _ds_text(draw(st.floats(low, high)))
        g.NumberOfWaveformChannels = channels
        g.NumberOfWaveformSamples = samples
        g.WaveformBitsAllocated = bits
        g.WaveformSampleInterpretation = interpretation
        definitions = []
        for k in range(channels):
            c = Dataset()
            lead = synthetic.LEADS[k % len(synthetic.LEADS)]
            c.ChannelSourceSequence = Sequence([_code(f"5.6.3-9-{k + 1}", f"Lead {lead}")])
            unit = draw(st.sampled_from(["uV", "mV"]))
            magnitude = draw(st.floats(0.01, 100.0)) * (1e-3 if unit == "mV" else 1.0)
            sign = draw(st.sampled_from([1, -1]))
            c.ChannelSensitivity = _ds_text(sign * magnitude)
            c.ChannelSensitivityUnitsSequence = Sequence([_code(unit, unit)])
            if draw(st.booleans()):
                c.ChannelSensitivityCorrectionFactor = _ds_text(draw(st.floats(0.1, 10.0)))
            if draw(st.booleans()):
                c.ChannelBaseline = _ds_text(draw(st.floats(-1e4, 1e4)))
            definitions.append(c)
        g.ChannelDefinitionSequence = Sequence(definitions)
        g.WaveformData = np.asarray(raw, dtype=dtype).astype(f"<i{bits // 8}").tobytes()
        groups.append(g)
        del index
    ds.WaveformSequence = Sequence(groups)
    return ds


def _file(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _values(header_group: dict, raw: np.ndarray) -> np.ndarray:
    return np.stack([raw[:, k] * c["sensitivity"] * c["correction"] + c["baseline"]
                     for k, c in enumerate(header_group["channels"])], axis=1)


def _assert_equal_to_pydicom(ds: Dataset) -> None:
    groups = waveform.decode(ds)
    header, arrays = compact.decode(compact.encode(groups))
    for index, group in enumerate(groups):
        expected = ds.waveform_array(index)
        mine = np.stack([group.raw[:, k].astype(np.float64) * c.sensitivity * c.correction
                         + c.baseline for k, c in enumerate(group.channels)], axis=1)
        np.testing.assert_array_equal(mine, expected)
        np.testing.assert_array_equal(arrays[index], group.raw.astype(np.int16))
        np.testing.assert_array_equal(_values(header["groups"][index], arrays[index]), expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(waveforms())
def test_any_waveform_in_bounds_is_accepted_and_decodes_as_pydicom(ds):
    parsed = read_dataset(_file(ds), **_LIMITS)
    _assert_equal_to_pydicom(pydicom.dcmread(io.BytesIO(_file(ds))))
    index = ecg_index(pydicom.dcmread(io.BytesIO(_file(ds))))
    assert index is not None and index["groups"]
    assert parsed.SOPInstanceUID == ds.SOPInstanceUID


_FIELDS = {
    "NumberOfWaveformChannels": st.integers(0, 65535),
    "NumberOfWaveformSamples": st.integers(0, 2**32 - 1),
    "WaveformBitsAllocated": st.sampled_from([0, 1, 8, 12, 16, 32, 64, 65535]),
    "WaveformSampleInterpretation": st.sampled_from(
        ["SB", "UB", "MB", "AB", "SS", "US", "SL", "UL", "SV", "UV", "", "ss", "XX"]),
    "SamplingFrequency": st.one_of(_DS.map(_ds_text),
                                   st.sampled_from(["NaN", "inf", "-inf", "0", "1e308"]),
                                   st.lists(_DS.map(_ds_text), min_size=2, max_size=3)),
    "MultiplexGroupTimeOffset": st.one_of(_DS.map(_ds_text), st.sampled_from(["NaN", "inf"]),
                                          st.lists(_DS.map(_ds_text), min_size=2, max_size=3)),
}
_CHANNEL_FIELDS = {
    "ChannelSensitivity": st.one_of(_DS.map(_ds_text), st.sampled_from(["0", "NaN", "-inf"]),
                                    st.lists(_DS.map(_ds_text), min_size=2, max_size=3)),
    "ChannelSensitivityCorrectionFactor": st.one_of(_DS.map(_ds_text), st.just("NaN")),
    "ChannelBaseline": st.one_of(_DS.map(_ds_text), st.just("inf")),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(waveforms(), st.data())
def test_any_header_value_is_accepted_exactly_or_refused_with_a_reason(ds, data):
    group = data.draw(st.integers(0, len(ds.WaveformSequence) - 1))
    item = ds.WaveformSequence[group]
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            keyword = data.draw(st.sampled_from(sorted(_FIELDS)))
            setattr(item, keyword, data.draw(_FIELDS[keyword]))
        else:
            channel = item.ChannelDefinitionSequence[
                data.draw(st.integers(0, len(item.ChannelDefinitionSequence) - 1))]
            keyword = data.draw(st.sampled_from(sorted(_CHANNEL_FIELDS)))
            if data.draw(st.booleans()):
                setattr(channel, keyword, data.draw(_CHANNEL_FIELDS[keyword]))
            elif keyword in channel:
                delattr(channel, keyword)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(item.WaveformData)))
        item.WaveformData = item.WaveformData[:cut]
    try:
        body = _file(ds)
    except (ValueError, OverflowError, struct.error):
        assume(False)  # pydicom cannot even write it (a US of 2**32): no client can send it
    try:
        read_dataset(body, **_LIMITS)
    except ImagingError:
        return
    stored = pydicom.dcmread(io.BytesIO(body))
    assert ecg_index(stored) is not None
    _assert_equal_to_pydicom(stored)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
                min_size=1, max_size=6))
def test_any_corrupted_byte_is_refused_with_a_reason_or_decodes(patches):
    """Bytes of a real ECG file (header and data) overwritten anywhere: ingest's parse
    (validation, then the index's decode and screening) raises nothing but ImagingError."""
    body = bytearray(_SMALL)
    for offset, value in patches:
        at = offset % len(body)
        body[at:at + len(value)] = value
    try:
        ds = read_dataset(bytes(body), **_LIMITS)
    except ImagingError:
        return
    index = ecg_index(ds)
    if index is not None:
        assert index["screening"]["suspected_critical"] in (True, False)


_SMALL = synthetic.ecg_bytes(synthetic.Spec("nsr", seconds=1.5, seed=4))

"""DICOM ECG waveforms (PS3.3 A.34, C.10.9): bounded validation, decoding, the index summary.

`check_waveform(ds)` runs at ingest on the parsed header, before a sample is decoded: every
multiplex group's channel count, samples, bits, interpretation, sampling frequency, channel
definitions and sensitivity, and its WaveformData length against channels x samples x bytes.
`decode(ds)` then gives the raw samples (as stored, no float copy) with per channel
`value = raw * scale + baseline` in the channel's unit (pydicom's waveform_array arithmetic).
`summary(ds)` is what a worklist needs, read from the header and the Waveform Annotation
Sequence (the device's measurements and interpretation statements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from media.imaging.errors import ImageTooLargeError, InvalidDicomError

TWELVE_LEAD = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG = "1.2.840.10008.5.1.4.1.1.9.1.3"
ECG_SOP_CLASSES = {
    TWELVE_LEAD: "12-lead ECG",
    GENERAL_ECG: "General ECG",
    AMBULATORY_ECG: "Ambulatory ECG",
}


@dataclass(frozen=True)
class IodRules:
    """PS3.3 A.34.3-5 constraints per IOD (the bounds a file must meet before decoding)."""

    max_groups: int
    max_channels: int
    min_rate: float
    max_rate: float
    max_samples: int  # per channel
    sample_types: frozenset[tuple[int, str]]


_RULES = {
    # A.34.3.4: 1-5 groups, 1-13 channels, 200-1000 Hz, at most 16384 samples, SS 16.
    TWELVE_LEAD: IodRules(5, 13, 200.0, 1000.0, 16384, frozenset({(16, "SS")})),
    # A.34.4.4: 1-4 groups, 1-24 channels, 200-1000 Hz, SS 16 only (8-bit SB is the
    # Ambulatory ECG's alone).
    GENERAL_ECG: IodRules(4, 24, 200.0, 1000.0, 2**22, frozenset({(16, "SS")})),
    # A.34.5.4: 1 group, 1-12 channels, 50-1000 Hz, SB 8 / SS 16 (a day at 1 kHz fits).
    AMBULATORY_ECG: IodRules(1, 12, 50.0, 1000.0, 100_000_000,
                             frozenset({(8, "SB"), (16, "SS")})),
}
#: Decoded samples one instance may hold (all groups, all channels): the decode's memory bound.
MAX_TOTAL_SAMPLES = 50_000_000
#: Waveform Annotation Sequence items an ECG may have (a resting ECG has tens: the fixture 77).
#: Parsing an item costs about 0.1 ms of CPU, so 50,000 tiny ones (2.5 MB) would cost seconds
#: of the pool: counted on the raw bytes and refused before they are parsed.
MAX_ANNOTATIONS = 50_000
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # (FFFE,E000) little / big endian


def check_annotation_count(ds: Dataset) -> None:
    """Refuse an ECG with more than MAX_ANNOTATIONS annotation items, from the still unparsed
    value (an item tag in it is an item; a false hit inside a value only over-counts)."""
    if not is_ecg(ds) or "WaveformAnnotationSequence" not in ds:
        return
    raw = ds.get_item("WaveformAnnotationSequence")
    value = getattr(raw, "value", None)
    if isinstance(value, bytes | bytearray):
        count = max(value.count(tag) for tag in _ITEM_TAGS)
    else:  # already parsed (an undefined-length sequence is read item by item)
        count = len(ds.WaveformAnnotationSequence)
    if count > MAX_ANNOTATIONS:
        raise ImageTooLargeError(
            f"the ECG has {count:,} waveform annotations, more than {MAX_ANNOTATIONS:,}: "
            "refused before parsing them"
        )
_DTYPES = {(8, "SB"): np.int8, (16, "SS"): np.int16}
#: Units a channel's sensitivity may be in, as microvolts per unit.
_UV_PER_UNIT = {"uV": 1.0, "mV": 1000.0, "V": 1e6, "nV": 1e-3}


def is_ecg(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) in ECG_SOP_CLASSES


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidDicomError(f"{what} {str(value)[:20]!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidDicomError(f"{what} is not a finite number")
    return number


def _int(item: Dataset, keyword: str, where: str) -> int:
    value = item.get(keyword)
    if value in (None, ""):
        raise InvalidDicomError(f"{where}: {keyword} is missing")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidDicomError(f"{where}: {keyword} {str(value)[:20]!r} is not a number") from None


def _code_meaning(item: Dataset, keyword: str) -> str:
    seq = item.get(keyword)
    if not seq:
        return ""
    code = seq[0]
    return str(code.get("CodeMeaning") or code.get("CodeValue") or "")


def _code_value(item: Dataset, keyword: str) -> str:
    seq = item.get(keyword)
    return str(seq[0].get("CodeValue") or "") if seq else ""


def check_waveform(ds: Dataset, *, has_pixels: bool = False) -> None:
    """Refuse (InvalidDicomError / ImageTooLargeError) an ECG whose waveform header is out of the
    IOD's bounds or inconsistent with its data, before anything is decoded. `has_pixels`: the
    file has a (Float/Double Float) Pixel Data element that a header-only parse left out."""
    sop_class = str(ds.get("SOPClassUID", ""))
    rules = _RULES.get(sop_class)
    if rules is None:
        return
    if has_pixels or any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        # A.34 has no Image Pixel module: an ECG with pixels is an image mislabelled (or the
        # other way round), and which of the two a viewer should show is not ours to guess.
        raise InvalidDicomError(
            f"a {ECG_SOP_CLASSES[sop_class]} instance carries no Pixel Data; send an image with "
            "its image SOP Class, a waveform without pixels"
        )
    meta = getattr(ds, "file_meta", None)
    tsyntax = str(meta.get("TransferSyntaxUID") or "") if meta is not None else ""
    if tsyntax == "1.2.840.10008.1.2.2":
        # Waveform Data (OW) is byte-swapped in Big Endian, and pydicom (hence the bulk data and
        # transcoding paths) keeps it as stored: samples would come out scrambled. The syntax
        # is retired (PS3.5 A.3); devices send Little Endian.
        raise InvalidDicomError(
            "an ECG in Explicit VR Big Endian (retired) is not accepted; send it in Explicit VR "
            "Little Endian"
        )
    groups = ds.get("WaveformSequence")
    if not groups:
        raise InvalidDicomError("an ECG instance needs a Waveform Sequence with a multiplex group")
    check_annotation_count(ds)
    if len(groups) > rules.max_groups:
        raise InvalidDicomError(
            f"{ECG_SOP_CLASSES[sop_class]} allows at most {rules.max_groups} multiplex groups, "
            f"the file has {len(groups)}"
        )
    total = 0
    for index, item in enumerate(groups, start=1):
        where = f"multiplex group {index}"
        channels = _int(item, "NumberOfWaveformChannels", where)
        samples = _int(item, "NumberOfWaveformSamples", where)
        bits = _int(item, "WaveformBitsAllocated", where)
        interpretation = str(item.get("WaveformSampleInterpretation") or "").strip()
        if not 1 <= channels <= rules.max_channels:
            raise InvalidDicomError(
                f"{where}: {channels} channels, {ECG_SOP_CLASSES[sop_class]} allows 1 to "
                f"{rules.max_channels}"
            )
        if not 1 <= samples <= rules.max_samples:
            raise InvalidDicomError(
                f"{where}: {samples} samples per channel, allowed 1 to {rules.max_samples}"
            )
        if (bits, interpretation) not in rules.sample_types:
            allowed = ", ".join(f"{i} {b}" for b, i in sorted(rules.sample_types))
            raise InvalidDicomError(
                f"{where}: samples of {bits} bits {interpretation[:4]!r}; allowed: {allowed}"
            )
        rate = _number(item.get("SamplingFrequency"), f"{where}: Sampling Frequency")
        if not rules.min_rate <= rate <= rules.max_rate:
            raise InvalidDicomError(
                f"{where}: sampling frequency {rate:g} Hz, allowed {rules.min_rate:g} to "
                f"{rules.max_rate:g} Hz"
            )
        offset = item.get("MultiplexGroupTimeOffset")
        if offset not in (None, ""):
            _number(offset, f"{where}: Multiplex Group Time Offset")
        definitions = item.get("ChannelDefinitionSequence") or []
        if len(definitions) != channels:
            raise InvalidDicomError(
                f"{where}: {len(definitions)} channel definitions for {channels} channels"
            )
        for number, channel in enumerate(definitions, start=1):
            if not channel.get("ChannelSourceSequence"):
                # Type 1 (C.10.9.1): the lead; without it neither the paper layout nor the ST
                # rules can place the channel.
                raise InvalidDicomError(
                    f"{where} channel {number}: Channel Source Sequence (the lead) is missing")
            _channel_scale(channel, f"{where} channel {number}")
        total += channels * samples
        if total > MAX_TOTAL_SAMPLES:
            raise ImageTooLargeError(
                f"the ECG holds more than {MAX_TOTAL_SAMPLES:,} samples: refused before decoding"
            )
        data = item.get("WaveformData")
        expected = channels * samples * (bits // 8)
        length = len(data) if isinstance(data, bytes | bytearray) else -1
        # An odd value is padded to even length (PS3.5 7.1.1): one byte more is allowed.
        if length not in (expected, expected + (expected & 1)):
            raise InvalidDicomError(
                f"{where}: Waveform Data has {max(length, 0)} bytes but {channels} channels x "
                f"{samples} samples x {bits // 8} bytes need {expected}"
            )


def _given(item: Dataset, keyword: str, default: float) -> Any:
    value = item.get(keyword)
    return default if value is None or value == "" else value


def _channel_scale(channel: Dataset, where: str) -> tuple[float, float, float, str]:
    """(sensitivity, correction, baseline, unit) of one channel:
    value = raw * sensitivity * correction + baseline, in `unit` (pydicom's order of operations,
    so the viewer's floating-point values equal waveform_array's).

    Channel Sensitivity and its units are Type 1C, required when the samples are in defined
    units (C.10.9.1.4.3), which an ECG's always are (voltages): a default of 1 unit per count
    would draw, measure and screen the tracing at a made-up amplitude, so they are required."""
    if channel.get("ChannelSensitivity") in (None, ""):
        raise InvalidDicomError(
            f"{where}: Channel Sensitivity is missing (an ECG's samples are voltages, so it is "
            "required)"
        )
    if not _code_value(channel, "ChannelSensitivityUnitsSequence"):
        raise InvalidDicomError(f"{where}: Channel Sensitivity Units Sequence is missing")
    sensitivity = _number(channel.get("ChannelSensitivity"), f"{where}: Channel Sensitivity")
    correction = _number(_given(channel, "ChannelSensitivityCorrectionFactor", 1.0),
                         f"{where}: Channel Sensitivity Correction Factor")
    baseline = _number(_given(channel, "ChannelBaseline", 0.0), f"{where}: Channel Baseline")
    scale = sensitivity * correction
    if scale == 0 or not 1e-6 <= abs(scale) <= 1e6 or abs(baseline) > 1e9:
        raise InvalidDicomError(f"{where}: sensitivity {scale:g} or baseline is out of range")
    unit = _code_value(channel, "ChannelSensitivityUnitsSequence")
    if unit not in _UV_PER_UNIT:
        raise InvalidDicomError(f"{where}: sensitivity unit {unit[:10]!r} is not a voltage")
    return sensitivity, correction, baseline, unit


#: The twelve standard leads by their code (PS3.16 CID 3001: SCP-ECG "5.6.3-9-n", and the
#: ISO/IEEE 11073 MDC "2:n" of the same n): the name whatever language the meaning is in.
_LEAD_CODES = {1: "I", 2: "II", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF", 3: "V1", 4: "V2",
               5: "V3", 6: "V4", 7: "V5", 8: "V6"}


def _lead_name(channel: Dataset) -> str:
    """The standard lead by its code; else 'Lead II' / 'Lead I (Einthoven)' / 'II' -> 'II',
    'V1'...; the meaning otherwise."""
    seq = channel.get("ChannelSourceSequence")
    code = seq[0] if seq else None
    value = str(code.get("CodeValue") or "") if code is not None else ""
    scheme = str(code.get("CodingSchemeDesignator") or "").upper() if code is not None else ""
    number = value.rsplit("-", 1)[-1] if scheme == "SCPECG" and value.startswith("5.6.3-9-") \
        else value[2:] if scheme == "MDC" and value.startswith("2:") else ""
    if number.isascii() and number.isdigit() and int(number) in _LEAD_CODES:
        return _LEAD_CODES[int(number)]
    text = _code_meaning(channel, "ChannelSourceSequence") or str(channel.get("ChannelLabel", ""))
    text = text.replace("(Einthoven)", "").replace("Lead", "").strip()
    return text[:16] or "?"


@dataclass(frozen=True)
class Channel:
    lead: str
    sensitivity: float
    correction: float
    baseline: float
    unit: str

    @property
    def scale(self) -> float:
        return self.sensitivity * self.correction

    @property
    def uv_per_unit(self) -> float:
        return _UV_PER_UNIT[self.unit]


@dataclass(frozen=True)
class Group:
    """One multiplex group: raw samples (samples, channels) as stored."""

    label: str
    rate: float
    raw: np.ndarray
    channels: list[Channel]
    time_offset_ms: float = 0.0

    @property
    def samples(self) -> int:
        return int(self.raw.shape[0])

    def microvolts(self, index: int, stop: int | None = None) -> np.ndarray:
        """One channel in microvolts, its first `stop` samples only when given (sliced before
        the float copy: a long ambulatory channel is never converted whole)."""
        ch = self.channels[index]
        values = self.raw[:stop, index].astype(np.float64) * ch.sensitivity * ch.correction
        return (values + ch.baseline) * ch.uv_per_unit

    def lead(self, name: str) -> int | None:
        for i, ch in enumerate(self.channels):
            if ch.lead.upper() == name.upper():
                return i
        return None


def decode(ds: Dataset) -> list[Group]:
    """Every multiplex group of a checked ECG (call check_waveform first)."""
    out = []
    for item in ds.WaveformSequence:
        channels_n = int(item.NumberOfWaveformChannels)
        samples = int(item.NumberOfWaveformSamples)
        dtype = _DTYPES[(int(item.WaveformBitsAllocated),
                         str(item.WaveformSampleInterpretation).strip())]
        raw = np.frombuffer(item.WaveformData, dtype=np.dtype(dtype).newbyteorder("<"),
                            count=channels_n * samples).reshape(samples, channels_n)
        channels = []
        for number, channel in enumerate(item.ChannelDefinitionSequence, start=1):
            sensitivity, correction, baseline, unit = _channel_scale(channel, f"channel {number}")
            channels.append(Channel(_lead_name(channel), sensitivity, correction, baseline, unit))
        out.append(Group(
            label=str(item.get("MultiplexGroupLabel") or "").strip(),
            rate=float(item.SamplingFrequency),
            raw=raw,
            channels=channels,
            time_offset_ms=float(item.get("MultiplexGroupTimeOffset") or 0.0),
        ))
    return out


def _is_median(g: Group) -> bool:
    return "MEDIAN" in g.label.upper() or "REPRESENT" in g.label.upper()


def rhythm_group(groups: list[Group]) -> Group:
    """The rhythm group: not labelled a median/representative beat, longest first."""
    rhythm = [g for g in groups if not _is_median(g)]
    return max(rhythm or groups, key=lambda g: g.samples / g.rate)


def median_group(groups: list[Group]) -> Group | None:
    """The median (representative) beat group, labelled so by the device; None without one."""
    return next((g for g in groups if _is_median(g)), None)


#: Concept names (SCP-ECG code meanings, lower case) of the device measurements we show.
_MEASUREMENTS = {
    "rr interval": "rr_ms", "pp interval": "pp_ms", "pr interval": "pr_ms",
    "qrs duration": "qrs_ms", "qt interval": "qt_ms", "qtc interval": "qtc_ms",
    "p axis": "p_axis", "qrs axis": "qrs_axis", "t axis": "t_axis",
    "ventricular heart rate": "hr", "heart rate": "hr", "ventricular rate": "hr",
}


@dataclass
class EcgSummary:
    """What the index keeps of an ECG (JSON-able)."""

    iod: str
    acquired: str
    device: str
    rate_hz: float
    duration_s: float
    leads: list[str]
    groups: list[dict[str, Any]]
    measurements: dict[str, float] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "iod": self.iod, "acquired": self.acquired, "device": self.device,
            "rate_hz": self.rate_hz, "duration_s": self.duration_s, "leads": self.leads,
            "groups": self.groups, "measurements": self.measurements,
            "statements": self.statements,
        }


def annotations(ds: Dataset) -> tuple[dict[str, float], list[str]]:
    """The device's global measurements and its interpretation statements (text annotations),
    from the Waveform Annotation Sequence."""
    measurements: dict[str, float] = {}
    statements: list[str] = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        text = item.get("UnformattedTextValue")
        if text:
            statements.append(str(text).strip()[:200])
            continue
        name = _code_meaning(item, "ConceptNameCodeSequence").strip().lower()
        key = _MEASUREMENTS.get(name)
        value = item.get("NumericValue")
        if key and value not in (None, "") and key not in measurements:
            try:
                number = float(value if not isinstance(value, list | tuple) else value[0])
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                measurements[key] = number
    return measurements, statements[:50]


def summary(ds: Dataset, groups: list[Group]) -> EcgSummary:
    rhythm = rhythm_group(groups)
    acquired = str(ds.get("AcquisitionDateTime") or "").strip() or (
        str(ds.get("ContentDate") or ds.get("StudyDate") or "")
        + str(ds.get("ContentTime") or ds.get("StudyTime") or "")).strip()
    device = " ".join(str(ds.get(k) or "").strip()
                      for k in ("Manufacturer", "ManufacturerModelName")).strip()
    measurements, statements = annotations(ds)
    return EcgSummary(
        iod=ECG_SOP_CLASSES.get(str(ds.SOPClassUID), "ECG"),
        acquired=acquired[:26],
        device=device[:128],
        rate_hz=rhythm.rate,
        duration_s=round(rhythm.samples / rhythm.rate, 3),
        leads=[c.lead for c in rhythm.channels],
        groups=[{"label": g.label, "rate_hz": g.rate, "samples": g.samples,
                 "channels": len(g.channels)} for g in groups],
        measurements=measurements,
        statements=statements,
    )

"""Synthetic 12-lead ECGs as real DICOM 12-Lead ECG Waveform files (tests, demo, benchmark).

Each beat is a sum of Gaussian waves (P, Q, R, S, T) per lead, with an ST segment shift where the
condition has one; limb leads are built from I and II by Einthoven's and Goldberger's relations
(III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2), so they are consistent as on
a real machine. Baseline wander, mains hum and white noise are added. No patient data involved.

Conditions: "nsr" (normal sinus rhythm), "stemi" (acute anterior ST-elevation MI), "vt"
(sustained monomorphic ventricular tachycardia), "af_rvr" (atrial fibrillation, rapid rate),
"vf" (ventricular fibrillation: a 4-7 Hz oscillation of wandering amplitude and phase, no QRS).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from media.ecg.waveform import TWELVE_LEAD

ROOT = "1.2.826.0.1.3680043.10.1480."
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
CONDITIONS = ("nsr", "stemi", "vt", "af_rvr", "vf")
#: Microvolts per stored unit (a common device resolution).
SENSITIVITY_UV = 2.5
_SCPECG = {  # lead -> SCP-ECG code (PS3.16 CID 3001)
    "I": "5.6.3-9-1", "II": "5.6.3-9-2", "III": "5.6.3-9-61", "aVR": "5.6.3-9-62",
    "aVL": "5.6.3-9-63", "aVF": "5.6.3-9-64", "V1": "5.6.3-9-3", "V2": "5.6.3-9-4",
    "V3": "5.6.3-9-5", "V4": "5.6.3-9-6", "V5": "5.6.3-9-7", "V6": "5.6.3-9-8",
}

# Wave amplitudes in mV: (P, Q, R, S, T) for the independent leads.
_NORMAL = {
    "I": (0.08, -0.05, 0.70, -0.10, 0.20),
    "II": (0.12, -0.05, 1.10, -0.20, 0.30),
    "V1": (0.06, 0.00, 0.20, -1.00, 0.10),
    "V2": (0.06, 0.00, 0.40, -1.20, 0.40),
    "V3": (0.06, 0.00, 0.80, -0.80, 0.45),
    "V4": (0.06, -0.05, 1.20, -0.40, 0.40),
    "V5": (0.06, -0.07, 1.10, -0.20, 0.30),
    "V6": (0.06, -0.07, 0.90, -0.10, 0.25),
}
# Acute anterior STEMI: ST elevation (mV) in V1-V4 (hyperacute T), reciprocal inferior depression.
_STEMI_ST = {"I": 0.10, "II": -0.10, "V1": 0.20, "V2": 0.45, "V3": 0.50, "V4": 0.30,
             "V5": 0.10, "V6": 0.0}
_STEMI_T = {"V2": 0.35, "V3": 0.35, "V4": 0.25}
# VT: one wide monophasic complex per lead (mV of the R-like wave; negative = QS).
_VT_R = {"I": 0.6, "II": -1.2, "V1": 1.4, "V2": 1.6, "V3": 1.2, "V4": 0.8, "V5": 0.5, "V6": 0.3}


@dataclass(frozen=True)
class Spec:
    condition: str = "nsr"
    rate: float = 72.0  # beats per minute (mean for AF)
    seconds: float = 10.0
    fs: int = 500
    seed: int = 0
    noise_uv: float = 10.0
    #: Write the "device's" measurements and interpretation statements (Waveform Annotations).
    statements: bool = True
    #: Scales a STEMI's ST shift (0.5: V2-V3 under 0.3 mV, limb and V4-V6 under 0.1 mV but V4's
    #: 0.15 mV alone: below the critical-value rule, a hard negative for the screening).
    st_scale: float = 1.0


def _gauss(t: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mu) / sigma) ** 2)


def _beat_times(spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """R-peak times in seconds."""
    rr = 60.0 / spec.rate
    times = []
    t = 0.25 + rng.uniform(0, 0.3) * rr
    while t < spec.seconds - 0.05:
        times.append(t)
        if spec.condition == "af_rvr":
            t += rr * rng.uniform(0.7, 1.3)  # irregularly irregular
        else:
            t += rr * (1 + rng.normal(0, 0.02 if spec.condition == "nsr" else 0.01))
    return np.asarray(times)


def _lead_signal(spec: Spec, lead: str, t: np.ndarray, beats: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """mV of one independent lead (I, II, V1-V6)."""
    out = np.zeros_like(t)
    if spec.condition == "vf":
        # Coarse VF: 0.2-0.8 mV, the frequency wandering around 4-7 Hz (one heart: the same
        # in every lead), each lead its own phase and gain (nothing organised to detect).
        f = 4.0 + 3.0 * float(np.random.default_rng(spec.seed).random())
        gain = 0.5 * rng.uniform(0.6, 1.4)
        amp = gain * (1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 6)))
        phase = 2 * np.pi * f * t + 1.5 * np.sin(2 * np.pi * 0.7 * t) + rng.uniform(0, 6.3)
        return amp * np.sin(phase)
    rr = 60.0 / spec.rate
    qt_scale = np.sqrt(min(rr, 1.2))  # Bazett-like: T comes earlier at fast rates
    p, q, r, s, tw = _NORMAL[lead]
    st = 0.0
    if spec.condition == "stemi":
        st = _STEMI_ST.get(lead, 0.0) * spec.st_scale
        tw += _STEMI_T.get(lead, 0.0)
    for bt in beats:
        u = t - bt
        window = np.abs(u) < 1.0
        uw = u[window]
        if spec.condition == "vt":
            amp = _VT_R[lead]
            wave = amp * _gauss(uw, 0.0, 0.045) - 0.35 * amp * _gauss(uw, 0.09, 0.03)
            wave += -0.45 * amp * _gauss(uw, 0.22 * qt_scale + 0.05, 0.06)  # discordant T
        else:
            wave = (q * _gauss(uw, -0.025, 0.008) + r * _gauss(uw, 0.0, 0.010)
                    + s * _gauss(uw, 0.025, 0.010))
            wave += tw * _gauss(uw, 0.28 * qt_scale, 0.05 * qt_scale)
            if spec.condition != "af_rvr":
                wave += p * _gauss(uw, -0.17, 0.022)
            if st:
                # ST plateau from the J point (R + 45 ms) merging into the T wave.
                rise = 1 / (1 + np.exp(-(uw - 0.045) / 0.004))
                fall = 1 / (1 + np.exp((uw - 0.26 * qt_scale) / 0.03))
                wave += st * rise * fall
        out[window] += wave
    if spec.condition == "af_rvr" and lead in ("II", "V1"):
        # Fibrillatory waves: 5-8 Hz, changing phase and amplitude.
        f = rng.uniform(5.0, 8.0)
        out += 0.05 * np.sin(2 * np.pi * f * t + 2 * np.sin(2 * np.pi * 0.3 * t))
    return out


def _samples(spec: Spec) -> dict[str, np.ndarray]:
    """Microvolts per lead."""
    rng = np.random.default_rng(spec.seed)
    t = np.arange(round(spec.seconds * spec.fs)) / spec.fs
    beats = _beat_times(spec, rng)
    base = {lead: _lead_signal(spec, lead, t, beats, rng) * 1000.0 for lead in _NORMAL}
    # Electrode noise: wander and white noise on the electrodes, so derived leads share it.
    wander = 40.0 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6.3))
    mains = 5.0 * np.sin(2 * np.pi * 50.0 * t)
    for lead in base:
        base[lead] = (base[lead] + wander * rng.uniform(0.5, 1.0) + mains
                      + rng.normal(0, spec.noise_uv, t.shape))
    i, ii = base["I"], base["II"]
    leads = {
        "I": i, "II": ii, "III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2,
        "aVF": ii - i / 2,
    }
    leads.update({v: base[v] for v in ("V1", "V2", "V3", "V4", "V5", "V6")})
    return leads


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _group(label: str, fs: int, leads: dict[str, np.ndarray]) -> Dataset:
    raw = np.stack([np.clip(np.rint(leads[name] / SENSITIVITY_UV), -32768, 32767)
                    for name in LEADS], axis=1).astype("<i2")
    item = Dataset()
    item.MultiplexGroupTimeOffset = 0.0
    item.WaveformOriginality = "ORIGINAL" if label == "RHYTHM" else "DERIVED"
    item.NumberOfWaveformChannels = len(LEADS)
    item.NumberOfWaveformSamples = raw.shape[0]
    item.SamplingFrequency = fs
    item.MultiplexGroupLabel = label
    channels = []
    for name in LEADS:
        ch = Dataset()
        ch.ChannelSourceSequence = Sequence([_code(_SCPECG[name], "SCPECG", f"Lead {name}")])
        ch.ChannelSensitivity = SENSITIVITY_UV
        ch.ChannelSensitivityUnitsSequence = Sequence([_code("uV", "UCUM", "microvolt")])
        ch.ChannelSensitivityCorrectionFactor = 1
        ch.ChannelBaseline = 0
        ch.ChannelSampleSkew = 0
        ch.WaveformBitsStored = 16
        ch.FilterLowFrequency = 0.05
        ch.FilterHighFrequency = 150
        channels.append(ch)
    item.ChannelDefinitionSequence = Sequence(channels)
    item.WaveformBitsAllocated = 16
    item.WaveformSampleInterpretation = "SS"
    item.WaveformData = raw.tobytes()
    return item


_STATEMENTS = {
    "nsr": ["Sinus rhythm", "Normal ECG"],
    "stemi": ["Sinus rhythm", "Anterior ST elevation", "Consider acute anterior MI"],
    "vt": ["Wide complex tachycardia", "Ventricular tachycardia"],
    "af_rvr": ["Atrial fibrillation with rapid ventricular response"],
    "vf": ["Ventricular fibrillation"],
}


def _annotations(spec: Spec) -> Sequence:
    items = []
    for text in _STATEMENTS[spec.condition]:
        a = Dataset()
        a.UnformattedTextValue = text
        a.ReferencedWaveformChannels = [1, 0]
        a.AnnotationGroupNumber = 0
        items.append(a)
    qrs = 160 if spec.condition == "vt" else 92
    for meaning, code, value, unit in (
        ("Ventricular Heart Rate", "5.10.2.5-1", round(spec.rate), "/min"),
        ("PR Interval", "5.13.5-7", 0 if spec.condition in ("vt", "af_rvr") else 160, "ms"),
        ("QRS Duration", "5.13.5-9", qrs, "ms"),
        ("QT Interval", "5.13.5-11", 380 if spec.rate < 100 else 300, "ms"),
        ("QTc Interval", "5.10.2.5-5", 410 if spec.rate < 100 else 460, "ms"),
        ("QRS Axis", "5.10.3-13", 60 if spec.condition != "vt" else -80, "deg"),
    ):
        a = Dataset()
        a.ConceptNameCodeSequence = Sequence([_code(code, "SCPECG", meaning)])
        a.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", unit)])
        a.NumericValue = value
        a.ReferencedWaveformChannels = [1, 0]
        a.AnnotationGroupNumber = 1
        items.append(a)
    return Sequence(items)


def ecg_dataset(spec: Spec | None = None, *, patient_id: str = "ECG-DEMO",
                patient_name: str = "Demo^ECG", study_uid: str | None = None,
                when: dt.datetime | None = None) -> Dataset:
    """A 12-Lead ECG Waveform instance (Explicit VR Little Endian) of the given condition."""
    spec = spec or Spec()
    if spec.condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}")
    when = when or dt.datetime(2026, 1, 1, 8, 0, 0)
    leads = _samples(spec)
    median = _median_beat(spec)
    sop = generate_uid(ROOT)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = TWELVE_LEAD
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = TWELVE_LEAD
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study_uid or generate_uid(ROOT)
    ds.SeriesInstanceUID = generate_uid(ROOT)
    ds.Modality = "ECG"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientSex = "M"
    ds.PatientBirthDate = "19600101"
    stamp = when.strftime("%Y%m%d%H%M%S")
    ds.StudyDate = ds.ContentDate = ds.SeriesDate = stamp[:8]
    ds.StudyTime = ds.ContentTime = ds.SeriesTime = stamp[8:]
    ds.AcquisitionDateTime = stamp
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "Huizhen"
    ds.ManufacturerModelName = "Synthetic 12-lead"
    ds.StudyDescription = "Resting 12-lead ECG"
    ds.SeriesDescription = f"ECG ({spec.condition})"
    ds.WaveformSequence = Sequence([_group("RHYTHM", spec.fs, leads),
                                    _group("MEDIAN BEAT", spec.fs, median)])
    if spec.statements:
        ds.WaveformAnnotationSequence = _annotations(spec)
    return ds


def _median_beat(spec: Spec) -> dict[str, np.ndarray]:
    """One representative beat (1.2 s, R at 0.4 s), noise free."""
    quiet = dataclasses.replace(spec, seconds=1.2, noise_uv=0.0)
    rng = np.random.default_rng(spec.seed)
    t = np.arange(round(1.2 * spec.fs)) / spec.fs
    beat = np.asarray([0.4])
    base = {lead: _lead_signal(quiet, lead, t, beat, rng) * 1000.0 for lead in _NORMAL}
    i, ii = base["I"], base["II"]
    out = {"I": i, "II": ii, "III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2,
           "aVF": ii - i / 2}
    out.update({v: base[v] for v in ("V1", "V2", "V3", "V4", "V5", "V6")})
    return out


def ecg_bytes(spec: Spec | None = None, **kwargs: object) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    ecg_dataset(spec, **kwargs).save_as(buf, enforce_file_format=True)  # type: ignore[arg-type]
    return buf.getvalue()


#: The labelled synthetic set the screening test reports on: (spec, critical?).
def synthetic_set(per_condition: int = 5) -> list[tuple[Spec, bool]]:
    """Critical per the issue's list, and as many not critical that come close to it: sinus
    tachycardia up to 170/min, AF at 120-170/min (rapid, under 180), and an anterior ST
    elevation under the thresholds (half the STEMI's: V2-V3 0.22-0.25 mV, V4 0.15 mV alone)."""
    out: list[tuple[Spec, bool]] = []
    for k in range(per_condition):
        out.append((Spec("nsr", rate=58 + 9 * k, seed=100 + k), False))
        out.append((Spec("nsr", rate=110 + 15 * k % 61, seed=500 + k), False))
        out.append((Spec("af_rvr", rate=120 + 12 * k % 51, seed=600 + k), False))
        out.append((Spec("stemi", rate=66 + 8 * k, seed=700 + k, st_scale=0.5), False))
        out.append((Spec("stemi", rate=70 + 6 * k, seed=200 + k), True))
        out.append((Spec("vt", rate=150 + 12 * k, seed=300 + k), True))
        out.append((Spec("af_rvr", rate=182 + 6 * k, seed=400 + k), True))
        out.append((Spec("vf", seed=800 + k), True))
    return out

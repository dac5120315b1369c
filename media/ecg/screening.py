"""Pre-screening of an ECG on ingest: puts the dangerous ones first. A human still confirms.

Rules (the critical-value list of issue #11; a reason is recorded for each that matches):
- `vt`: sustained wide-complex tachycardia (QRS >= 120 ms at >= 100/min over 30 s, or over the
  whole recording when it is shorter, as a 10 s resting ECG is): suspected ventricular
  tachycardia;
- `rate`: heart rate >= 180/min sustained for 30 s (or the whole, shorter, recording);
- `pause`: an RR interval (or no beat at all) of >= 3 s;
- `st_elevation`: ST elevation at J + 40 ms against the PR segment, on median beats, of
  >= 0.1 mV in limb leads and V4-V6 or >= 0.3 mV in V1-V3, in two contiguous leads, when the
  QRS is narrow (not measurable in a wide-complex rhythm);
- `vf`: ventricular fibrillation / flutter, which has no organised QRS to detect: in some 8 s
  window, at least 45 % of the 1-30 Hz power (summed over the leads) lies within 1 Hz of a
  dominant frequency of 3-10 Hz (the spectral criterion of Barro et al. 1989, simplified: a
  sinus or AF tracing's QRS spreads its power, 0.07-0.31 on the synthetic set; VF 0.6);
- `device`: the recording device's interpretation statements name a critical finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from media.ecg import qrs
from media.ecg.waveform import Group, rhythm_group

#: Longest recording screened (an ambulatory ECG is screened on its first 10 minutes).
MAX_SCREENED_S = 600.0
#: Leads screened at most (the standard twelve first), and samples x leads: the screening's
#: memory (about 60 bytes per value in the filters) and CPU bound whatever the IOD allows
#: (a General ECG may have 24 channels of 2^22 samples). 12 leads at 1 kHz: 125 s; at 500 Hz:
#: 250 s, far more than the 30 s a sustained rhythm needs.
MAX_SCREENED_LEADS = 12
MAX_SCREENED_VALUES = 1_500_000
SUSTAINED_S = 30.0
PAUSE_S = 3.0
RATE_CRITICAL = 180.0
WIDE_QRS_MS = 120.0
VF_CONCENTRATION = 0.45
VF_WINDOW_S = 8.0
_ST_LIMB = 100.0  # microvolts
_ST_V1_V3 = 300.0
#: Pairs of anatomically contiguous leads.
_CONTIGUOUS = (
    ("II", "III"), ("II", "aVF"), ("III", "aVF"),  # inferior
    ("I", "aVL"), ("I", "V6"), ("V5", "V6"),  # lateral
    ("V1", "V2"), ("V2", "V3"), ("V3", "V4"), ("V4", "V5"),  # septal / anterior
)
_CRITICAL_STATEMENTS = re.compile(
    r"ventricular\s+tachy|ventricular\s+fib|v-?fib|\bvt\b|\bvf\b|torsade|asystole|"
    r"st\s*(segment\s*)?elevation|\bstemi\b|acute\s+(\w+\s+){0,2}(mi|infarct)|injury|"
    r"complete\s+(av\s+|heart\s+)?block|third[\s-]degree|"
    r"室性心动过速|室速|心室颤动|室颤|停搏|ST段抬高|急性.{0,6}心肌梗|三度.{0,4}传导阻滞",
    re.IGNORECASE,
)
#: A statement that denies its finding ("No ST elevation", "未见ST段抬高") names nothing critical.
#: "Rule out" / "R/O" / "排除" are not denials (a suspicion still to be excluded), nor is "Non-ST
#: elevation MI" (an acute MI): those still flag.
_NEGATED = re.compile(
    r"^\W*(no|not|without|negative\s+for|absence\s+of)\b|^\W*(无|未见)", re.IGNORECASE)


@dataclass
class Screening:
    suspected_critical: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)
    heart_rate: float | None = None
    beats: int = 0
    qrs_ms: float | None = None
    st_uv: dict[str, float] = field(default_factory=dict)
    max_rr_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "suspected_critical": self.suspected_critical,
            "reasons": self.reasons,
            "heart_rate": None if self.heart_rate is None else round(self.heart_rate, 1),
            "beats": self.beats,
            "qrs_ms": None if self.qrs_ms is None else round(self.qrs_ms),
            "st_uv": {k: round(v) for k, v in self.st_uv.items()},
            "max_rr_s": None if self.max_rr_s is None else round(self.max_rr_s, 3),
        }


def _max_window_rate(peaks: np.ndarray, fs: float, duration: float) -> float:
    """The highest mean rate over any window of SUSTAINED_S (the whole record if shorter)."""
    if len(peaks) < 2:
        return 0.0
    times = peaks / fs
    if duration <= SUSTAINED_S:
        return float(60.0 * (len(times) - 1) / (times[-1] - times[0]))
    best = 0.0
    for start in np.arange(0.0, duration - SUSTAINED_S + 1e-9, 1.0):
        inside = times[(times >= start) & (times < start + SUSTAINED_S)]
        if len(inside) < 2:
            continue
        span = inside[-1] - inside[0]
        rate = 60.0 * (len(inside) - 1) / span
        # Only a window its beats fill counts: a 10 s run at 200/min followed by a pause is a
        # burst (and a pause), not a rate sustained for 30 s.
        if span >= SUSTAINED_S - 2 * 60.0 / rate - 0.5:
            best = max(best, rate)
    return best


def _vf_window(uv: np.ndarray, fs: float) -> tuple[float, float]:
    """(concentration, dominant Hz) of the most VF-like window (see the `vf` rule)."""
    size = min(len(uv), round(VF_WINDOW_S * fs))
    best = (0.0, 0.0)
    if size < 2 * fs:
        return best
    f = np.fft.rfftfreq(size, 1.0 / fs)
    band = (f >= 1.0) & (f <= 30.0)
    vf_band = (f >= 3.0) & (f <= 10.0)
    taper = np.hanning(size)[:, None]
    for start in range(0, len(uv) - size + 1, max(1, size // 2)):
        x = uv[start:start + size]
        power = np.sum(np.abs(np.fft.rfft((x - x.mean(axis=0)) * taper, axis=0)) ** 2, axis=1)
        total = float(np.sum(power[band]))
        if total <= 0:
            continue
        dominant = float(f[vf_band][np.argmax(power[vf_band])])
        near = (f >= dominant - 1.0) & (f <= dominant + 1.0)
        share = float(np.sum(power[near])) / total
        if share > best[0]:
            best = (share, dominant)
    return best


def screen(groups: list[Group], statements: list[str]) -> Screening:
    rhythm = rhythm_group(groups)
    fs = rhythm.rate
    order = sorted(range(len(rhythm.channels)),
                   key=lambda k: (_lead_order(rhythm.channels[k].lead), k))
    screened = sorted(order[:MAX_SCREENED_LEADS])
    channels = [rhythm.channels[k] for k in screened]
    n = min(rhythm.samples, int(MAX_SCREENED_S * fs), MAX_SCREENED_VALUES // len(screened))
    uv = np.stack([rhythm.microvolts(k, n) for k in screened], axis=1)
    duration = n / fs
    detection = qrs.detect(uv, fs)
    peaks = detection.peaks
    result = Screening(False, heart_rate=detection.heart_rate(), beats=len(peaks))
    reasons = result.reasons

    gaps = np.diff(np.concatenate(([0], peaks, [n]))) / fs if duration >= PAUSE_S else []
    if len(gaps):
        result.max_rr_s = float(np.max(gaps))
        if result.max_rr_s >= PAUSE_S:
            reasons.append({"code": "pause", "seconds": round(result.max_rr_s, 2)})

    if len(peaks) >= 3:
        r_at = 0.3
        together = qrs.median_beat(uv, peaks, fs, before=r_at, after=0.5)
        beats = [None] * uv.shape[1] if together is None else list(together.T)
        medians = [b for b in beats if b is not None]
        if medians:
            result.qrs_ms = qrs.qrs_width_ms(medians, fs, round(r_at * fs),
                                             float(np.median(detection.rr_s)))
        sustained = min(SUSTAINED_S, duration)
        span = (peaks[-1] - peaks[0]) / fs
        window_rate = _max_window_rate(peaks, fs, duration)
        covers = span >= sustained - 2 * (60.0 / max(window_rate, 1.0)) - 0.5
        if window_rate >= RATE_CRITICAL and covers:
            reasons.append({"code": "rate", "rate": round(window_rate)})
        wide = result.qrs_ms is not None and result.qrs_ms >= WIDE_QRS_MS
        if wide and window_rate >= 100 and covers:
            reasons.append({"code": "vt", "rate": round(window_rate),
                            "qrs_ms": round(result.qrs_ms or 0)})
        if medians and not wide:
            for k, channel in enumerate(channels):
                beat = beats[k]
                if beat is None:
                    continue
                r = round(r_at * fs)
                base = float(np.median(beat[r - int(0.09 * fs): r - int(0.06 * fs)]))
                j40 = r + round(0.08 * fs)
                st = float(np.mean(beat[j40 - 2: j40 + 3])) - base
                result.st_uv[channel.lead] = st
            raised = {lead for lead, st in result.st_uv.items()
                      if st >= (_ST_V1_V3 if lead.upper() in ("V1", "V2", "V3") else _ST_LIMB)
                      and lead.upper() != "AVR"}
            upper = {x.upper() for x in raised}
            hits = sorted({lead for pair in _CONTIGUOUS
                           if pair[0].upper() in upper and pair[1].upper() in upper
                           for lead in pair}, key=_lead_order)
            if hits:
                reasons.append({"code": "st_elevation", "leads": hits,
                                "max_mv": round(max(result.st_uv[x] for x in raised
                                                    if x.upper() in {h.upper() for h in hits})
                                                / 1000.0, 2)})
    elif duration >= PAUSE_S and not any(r["code"] == "pause" for r in reasons):
        reasons.append({"code": "pause", "seconds": round(duration, 2)})

    share, dominant = _vf_window(uv, fs)
    if share >= VF_CONCENTRATION:
        reasons.append({"code": "vf", "dominant_hz": round(dominant, 1),
                        "concentration": round(share, 2)})

    matched = [s for s in statements
               if _CRITICAL_STATEMENTS.search(s) and not _NEGATED.search(s)]
    if matched:
        reasons.append({"code": "device", "statements": matched[:5]})
    result.suspected_critical = bool(reasons)
    return result


_ORDER = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _lead_order(lead: str) -> int:
    return _ORDER.index(lead.upper()) if lead.upper() in _ORDER else 99

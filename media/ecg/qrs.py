"""QRS detection (Pan-Tompkins-like, numpy only) and the beat measurements screening needs.

Pipeline (Pan & Tompkins 1985, on several leads at once): band-pass 5-15 Hz (FFT filter), a
five-point derivative, squaring, summed over the leads given, a 150 ms moving-window integral;
peaks of the integral above an adaptive threshold (signal and noise levels, 0.25 between them)
with a 200 ms refractory period, and a search-back at half the threshold when an RR interval
exceeds 1.66 times the recent mean. Each detection is moved to the steepest part of the QRS in
the band-passed signal and then to the largest deflection within 60 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Beats a median beat is made of at most (evenly spread over the recording): the median of a
#: resting ECG's 10-20 beats is unchanged, a long recording's stays a few megabytes.
MAX_MEDIAN_BEATS = 64


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: an FFT of a large prime length takes seconds."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    """Zero-phase FFT band-pass with cosine edges (no SciPy needed; the signals are short).
    `x` is one signal or (samples, leads): every lead in one FFT call."""
    if len(x) < 8:
        return np.zeros_like(x, dtype=np.float64)
    # Mirrored ends (half a second) so the FFT's wrap-around joins no unrelated samples.
    pad = min(len(x) - 1, int(0.5 * fs))
    padded = np.concatenate((x[pad:0:-1], x, x[-2:-pad - 2:-1]), axis=0).astype(np.float64)
    # Zeros after the mirrored end up to a fast FFT length (the mean removed, so they join
    # smoothly enough; the half second of mirror keeps them away from the signal itself).
    n = _fast_length(len(padded))
    spectrum = np.fft.rfft(padded - np.mean(padded, axis=0), n, axis=0)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    gain = np.ones_like(f)
    edge = 0.5 if low < 2 else 2.0
    gain[f < low - edge] = 0.0
    ramp = (f >= low - edge) & (f < low)
    gain[ramp] = 0.5 - 0.5 * np.cos(np.pi * (f[ramp] - (low - edge)) / edge)
    ramp = (f > high) & (f <= high + 5.0)
    gain[ramp] = 0.5 + 0.5 * np.cos(np.pi * (f[ramp] - high) / 5.0)
    gain[f > high + 5.0] = 0.0
    if x.ndim == 2:
        gain = gain[:, None]
    return np.fft.irfft(spectrum * gain, n, axis=0)[pad:pad + len(x)]


@dataclass(frozen=True)
class Detection:
    peaks: np.ndarray  # sample indices of R peaks
    fs: float

    @property
    def rr_s(self) -> np.ndarray:
        return np.diff(self.peaks) / self.fs

    def heart_rate(self) -> float | None:
        """Beats per minute from the median RR (None with fewer than two beats)."""
        rr = self.rr_s
        return float(60.0 / np.median(rr)) if len(rr) else None


def detect(leads: np.ndarray, fs: float) -> Detection:
    """R peaks of a (samples, leads) array in microvolts (any number of leads)."""
    if leads.ndim == 1:
        leads = leads[:, None]
    n = leads.shape[0]
    if n < int(fs):  # under a second: nothing to say
        return Detection(np.zeros(0, dtype=np.int64), fs)
    filtered = bandpass(leads, fs, 5.0, 15.0)
    # Five-point derivative, squared, summed over the leads (normalised so that no single lead
    # with a large QRS dominates).
    d = np.zeros_like(filtered)
    d[2:-2] = (-filtered[:-4] - 2 * filtered[1:-3] + 2 * filtered[3:-1] + filtered[4:]) / 8.0
    scale = np.percentile(np.abs(d), 99, axis=0)
    scale[scale == 0] = 1.0
    energy = np.sum((d / scale) ** 2, axis=1)
    width = max(1, round(0.15 * fs))
    mwi = np.convolve(energy, np.ones(width) / width, mode="same")
    candidates = _local_maxima(mwi, round(0.2 * fs))
    peaks = _thresholded(mwi, candidates, fs)
    # Fiducial: the largest deflection of the QRS in a 1-40 Hz band, summed over the leads
    # (each normalised), within 80 ms of the integrator's peak: the R wave, beat after beat.
    wide = bandpass(leads, fs, 1.0, 40.0)
    norm = np.percentile(np.abs(wide), 99, axis=0)
    norm[norm == 0] = 1.0
    deflection = np.sum(np.abs(wide / norm), axis=1)
    refined = []
    near = max(1, round(0.08 * fs))
    for p in peaks:
        lo, hi = max(0, p - near), min(n, p + near)
        refined.append(lo + int(np.argmax(deflection[lo:hi])))
    out = np.unique(np.asarray(refined, dtype=np.int64))
    edge = int(0.04 * fs)  # a deflection cut by the start or end is no beat to count
    out = out[(out >= edge) & (out < n - edge)]
    # Two detections closer than the refractory period are one beat.
    keep: list[int] = []
    for p in out:
        if not keep or p - keep[-1] >= 0.2 * fs:
            keep.append(int(p))
    return Detection(np.asarray(keep, dtype=np.int64), fs)


def _local_maxima(x: np.ndarray, distance: int) -> np.ndarray:
    """Indices of local maxima at least `distance` apart (the larger one wins)."""
    if len(x) < 3:
        return np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1
    order = idx[np.argsort(-x[idx])]
    taken = np.zeros(len(x), dtype=bool)
    chosen = []
    for i in order:
        lo, hi = max(0, i - distance), min(len(x), i + distance + 1)
        if taken[lo:hi].any():
            continue
        taken[i] = True
        chosen.append(i)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _thresholded(mwi: np.ndarray, candidates: np.ndarray, fs: float) -> list[int]:
    if len(candidates) == 0:
        return []
    learn = mwi[: int(2 * fs)]
    spk = 0.25 * float(np.max(learn)) if len(learn) else float(np.max(mwi))
    npk = 0.5 * float(np.mean(learn)) if len(learn) else 0.0
    peaks: list[int] = []
    noise: list[int] = []
    for c in candidates:
        value = float(mwi[c])
        threshold = npk + 0.25 * (spk - npk)
        if value > threshold:
            # Search back: a long gap since the last beat may hide a missed smaller one.
            if len(peaks) >= 3:
                mean_rr = float(np.mean(np.diff(peaks[-8:])))
                if c - peaks[-1] > 1.66 * mean_rr:
                    missed = [m for m in noise if peaks[-1] + 0.36 * mean_rr < m < c - 0.2 * fs
                              and mwi[m] > threshold / 2]
                    if missed:
                        best = max(missed, key=lambda m: mwi[m])
                        peaks.append(int(best))
                        spk = 0.25 * float(mwi[best]) + 0.75 * spk
            peaks.append(int(c))
            spk = 0.125 * value + 0.875 * spk
        else:
            noise.append(int(c))
            npk = 0.125 * value + 0.875 * npk
    return sorted(set(peaks))


def median_beat(x: np.ndarray, peaks: np.ndarray, fs: float, before: float = 0.3,
                after: float = 0.5) -> np.ndarray | None:
    """The sample-wise median of the beats, aligned on the R peaks (R at `before`): of one lead,
    or of every lead of a (samples, leads) array at once."""
    b, a = round(before * fs), round(after * fs)
    inside = [int(p) for p in peaks if p - b >= 0 and p + a <= len(x)]
    if not inside:
        return None
    if len(inside) > MAX_MEDIAN_BEATS:
        picks = np.linspace(0, len(inside) - 1, MAX_MEDIAN_BEATS).round().astype(int)
        inside = [inside[i] for i in picks]
    beats = [x[p - b:p + a] for p in inside]
    return np.median(np.stack(beats), axis=0)


def qrs_width_ms(beats: list[np.ndarray], fs: float, r_index: int, rr_s: float) -> float:
    """QRS duration from median beats of several leads: first to last point, within 120 ms before
    and min(160 ms, 0.45 RR) after the R peak, where the summed slope (each lead normalised to
    its own steepest) is above 20 % of its peak."""
    db = np.abs(np.diff(bandpass(np.stack(beats, axis=1), fs, 1.0, 40.0), axis=0))
    peak = np.max(db, axis=0)
    peak[peak == 0] = np.inf
    slope = np.sum(db / peak, axis=1)
    k = max(1, int(0.01 * fs))
    smooth = np.convolve(slope, np.ones(k) / k, "same")
    lo = max(0, r_index - int(0.12 * fs))
    hi = min(len(smooth), r_index + int(min(0.16, 0.45 * rr_s) * fs))
    part = smooth[lo:hi]
    if not len(part) or np.max(part) <= 0:
        return 0.0
    above = np.flatnonzero(part >= 0.2 * float(np.max(part)))
    return 1000.0 * float(above[-1] - above[0] + 1) / fs

"""The viewer's compact ECG format: one little-endian binary with a small JSON header.

    bytes 0-3   b"HZE1"
    bytes 4-7   uint32 LE: n, the length of the JSON header (UTF-8, space-padded so that the
                samples start at an even offset)
    bytes 8..   the header: {"version": 1, "encoding": "delta-int16-le", "groups": [{label,
                rate_hz, samples, time_offset_ms, dtype, channels: [{lead, sensitivity,
                correction, baseline, unit, uv_per_unit}]}], "summary": {...},
                "screening": {...}}
    then        per group, per channel (channel-major), `samples` int16 LE: the first sample,
                then the differences of consecutive samples modulo 2**16.

The client restores a channel by a running sum in an Int16Array (the same wrap-around, so the
stored values come back exactly, also when a difference overflows 16 bits) and then applies
`value = raw * sensitivity * correction + baseline` (in `unit`; x `uv_per_unit` for
microvolts) once: pydicom's waveform_array arithmetic, in its order, so the values are equal.
Deltas of an ECG are small numbers, so the body compresses well with gzip (served with
Content-Encoding: gzip: about 52 KB for 10 s of 12 leads at 500 Hz with its median beats,
against 134 KB raw).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from media.ecg.waveform import Group

MAGIC = b"HZE1"
#: Samples the compact form carries at most (all groups and channels): 10 minutes of 12 leads
#: at 500 Hz. A longer (ambulatory) recording is read through WADO-RS bulk data.
MAX_SAMPLES = 3_600_000


def delta_encode(raw: np.ndarray) -> np.ndarray:
    """int16 first differences with wrap-around (any int8/int16 input, one channel per row)."""
    a = raw.astype(np.int16, copy=False)
    out = np.empty_like(a)
    out[..., :1] = a[..., :1]
    with np.errstate(over="ignore"):
        out[..., 1:] = a[..., 1:] - a[..., :-1]
    return out


def delta_decode(delta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.cumsum(delta.astype(np.int16), axis=-1, dtype=np.int16)


def encode(groups: list[Group], extra: dict[str, Any] | None = None) -> bytes:
    header: dict[str, Any] = {
        "version": 1,
        "encoding": "delta-int16-le",
        "groups": [
            {
                "label": g.label,
                "rate_hz": g.rate,
                "samples": g.samples,
                "time_offset_ms": g.time_offset_ms,
                "dtype": str(g.raw.dtype),
                "channels": [
                    {"lead": c.lead, "sensitivity": c.sensitivity, "correction": c.correction,
                     "baseline": c.baseline, "unit": c.unit, "uv_per_unit": c.uv_per_unit}
                    for c in g.channels
                ],
            }
            for g in groups
        ],
    }
    if extra:
        header.update(extra)
    # allow_nan=False: the browser's JSON.parse refuses NaN / Infinity, so never write them
    # (validation keeps every number finite; this makes a slip a loud error, not a blank viewer).
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if (8 + len(text)) % 2:
        text += b" "
    parts = [MAGIC, struct.pack("<I", len(text)), text]
    for g in groups:
        channel_major = np.ascontiguousarray(g.raw.T)
        parts.append(delta_encode(channel_major).astype("<i2", copy=False).tobytes())
    return b"".join(parts)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a browser's JSON.parse refuses it)")


def decode(body: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The inverse of encode (tests and the benchmark): header, and (samples, channels) arrays."""
    if body[:4] != MAGIC:
        raise ValueError("not a compact ECG")
    (n,) = struct.unpack("<I", body[4:8])
    header = json.loads(body[8:8 + n], parse_constant=_not_json)
    pos = 8 + n
    arrays = []
    for g in header["groups"]:
        count = g["samples"] * len(g["channels"])
        delta = np.frombuffer(body, dtype="<i2", count=count, offset=pos)
        pos += 2 * count
        arrays.append(delta_decode(delta.reshape(len(g["channels"]), g["samples"])).T)
    return header, arrays

"""What the study index keeps of an ECG instance: its summary and its pre-screening result."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydicom.dataset import Dataset

from media.ecg import screening, waveform

log = logging.getLogger(__name__)


def ecg_index(ds: Dataset) -> dict[str, Any] | None:
    """None for anything but an ECG (checked by validation before this runs: thread pool)."""
    if not waveform.is_ecg(ds):
        return None
    started = time.perf_counter()
    groups = waveform.decode(ds)
    summary = waveform.summary(ds, groups)
    result = screening.screen(groups, summary.statements).to_json()
    result["ms"] = round(1000 * (time.perf_counter() - started), 1)
    out = summary.to_json()
    out["screening"] = result
    return out

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
    try:
        result = screening.screen(groups, summary.statements).to_json()
    except Exception as exc:
        # The ECG passed validation: it is a clinical record and is stored whatever our
        # screening makes of it. A screening fault (ours) puts it first for a human, as a
        # suspicion would, rather than refusing the upload or hiding it lower on the list.
        # The structured shape of server.log.event (media does not import server).
        log.error("ecg_screening_failed",
                  extra={"fields": {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}})
        result = {"suspected_critical": True, "reasons": [{"code": "unscreened"}],
                  "heart_rate": None, "beats": 0, "qrs_ms": None, "st_uv": {},
                  "max_rr_s": None}
    result["ms"] = round(1000 * (time.perf_counter() - started), 1)
    out = summary.to_json()
    out["screening"] = result
    return out

"""Presentation LUT stage (PS3.3 C.11.6) and the final quantisation to 8-bit P-values."""

from __future__ import annotations

import numpy as np


def apply_presentation(fraction: np.ndarray, *, inverted: bool) -> np.ndarray:
    """IDENTITY keeps the VOI output; INVERSE (or MONOCHROME1) maps min <-> max."""
    return 1.0 - fraction if inverted else fraction


def to_8bit(fraction: np.ndarray) -> np.ndarray:
    """Quantise a 0..1 fraction to 0..255 with round-half-to-even."""
    return np.rint(np.clip(fraction, 0.0, 1.0) * 255.0).astype(np.uint8)

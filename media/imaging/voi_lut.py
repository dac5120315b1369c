"""VOI LUT stage (PS3.3 C.11.2): modality values -> a fraction 0..1 of the display range.

Working in fractions keeps the maths independent of the output bit depth: PS3.3 writes the
functions with ``y_min``/``y_max``; here ``y_min = 0`` and ``y_max = 1``, and the 8-bit
quantisation happens once at the end of the chain.
"""

from __future__ import annotations

import numpy as np

from media.imaging.image_model import LookupTable
from media.imaging.window import Window


def window_fraction(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a window with its VOI LUT Function; returns float64 in [0, 1]."""
    x = np.asarray(values, dtype=np.float64)
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        # C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)); errstate: exp may overflow to inf -> 0.
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if window.function == "LINEAR_EXACT":
        # C.11.2.1.3.2: x <= c - w/2 -> 0, x > c + w/2 -> 1, else (x - c)/w + 0.5.
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    # C.11.2.1.2.1 (LINEAR): x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 1;
    # else ((x - (c - 0.5)) / (w - 1) + 0.5). The formula reaches exactly 0 and 1 at the two
    # thresholds, so clipping reproduces the piecewise definition.
    c, w = c - 0.5, w - 1.0
    if w == 0.0:
        # Width 1 is a pure threshold: the middle band is empty.
        return np.where(x <= c, 0.0, 1.0)
    return np.clip((x - c) / w + 0.5, 0.0, 1.0)


def voi_lut_fraction(values: np.ndarray, lut: LookupTable) -> np.ndarray:
    """Apply a VOI LUT Sequence item (C.11.2.1.1); the output range is 0..2^bits-1."""
    return lut.apply(values).astype(np.float64) / lut.output_max

"""Modality LUT stage (PS3.3 C.11.1): stored values -> modality values (e.g. Hounsfield units)."""

from __future__ import annotations

import numpy as np

from media.imaging.image_model import FrameTransform


def apply_modality(stored: np.ndarray, transform: FrameTransform) -> np.ndarray:
    """Modality values as float64.

    A Modality LUT Sequence, when present, replaces Rescale Slope/Intercept (C.11.1.1): inputs
    below the first mapped value take the first entry, inputs past the end take the last one.
    """
    if transform.modality_lut is not None:
        return transform.modality_lut.apply(stored).astype(np.float64)
    values = np.asarray(stored, dtype=np.float64)
    if transform.rescale_slope != 1.0:
        values = values * transform.rescale_slope
    if transform.rescale_intercept != 0.0:
        values = values + transform.rescale_intercept
    return values

"""The grayscale pipeline as one 8-bit lookup table over the stored-value domain.

Modality LUT -> VOI LUT/window -> Presentation LUT -> 8-bit are all pointwise functions of the
stored value, so they compose into a single table indexed by ``stored - domain_min``. The float
maths runs over the (few thousand) distinct values of the domain, never over the pixels, and a
new window costs one small table plus one ``np.take`` over the frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

from media.imaging.image_model import FrameTransform
from media.imaging.modality_lut import apply_modality
from media.imaging.presentation_lut import apply_presentation, to_8bit
from media.imaging.voi_lut import voi_lut_fraction, window_fraction
from media.imaging.window import Window


def auto_window(lowest: float, highest: float) -> Window:
    """Window spanning the modality values of a frame, for files that carry none.

    LINEAR_EXACT maps ``lowest`` to black and ``highest`` to white exactly, even for
    fractional modality values (e.g. PET with small Rescale Slope) where LINEAR's -1 would skew.
    """
    width = highest - lowest
    return Window((lowest + highest) / 2.0, width if width > 0 else 1.0, "LINEAR_EXACT")


def display_values(
    stored: np.ndarray, transform: FrameTransform, *, inverted: bool, window: Window | None
) -> tuple[np.ndarray, Window | None]:
    """Run the whole chain on an array of stored values; returns (uint8, window applied).

    Window choice when `window` is None: the file's first window, else its first VOI LUT
    Sequence item, else min-max of the modality values in `stored`. A requested window always
    wins over a file's VOI LUT (PS3.3 C.11.2 lets either be used), so the window we report is
    the one the user sees. The returned window is None when a VOI LUT Sequence was applied.
    """
    values = apply_modality(stored, transform)
    if window is None and transform.windows:
        window = transform.windows[0]
    if window is None and transform.voi_lut is not None:
        fraction = voi_lut_fraction(values, transform.voi_lut)
    else:
        if window is None:
            window = auto_window(float(values.min()), float(values.max()))
        fraction = window_fraction(values, window)
    return to_8bit(apply_presentation(fraction, inverted=inverted)), window


def build_lut(
    transform: FrameTransform,
    *,
    inverted: bool,
    domain_min: int,
    domain_max: int,
    window: Window | None,
) -> tuple[np.ndarray, Window | None]:
    """uint8 table where ``table[s - domain_min]`` is the display value of stored value ``s``."""
    domain = np.arange(domain_min, domain_max + 1, dtype=np.int64)
    table, applied = display_values(domain, transform, inverted=inverted, window=window)
    table.setflags(write=False)
    return table, applied


class LutCache:
    """Small thread-safe LRU of built tables (a few KB each), keyed by everything they depend on."""

    def __init__(self, max_entries: int = 512) -> None:
        self._max_entries = max_entries
        self._items: OrderedDict[Hashable, tuple[np.ndarray, Window | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_build(
        self,
        transform: FrameTransform,
        *,
        inverted: bool,
        domain_min: int,
        domain_max: int,
        window: Window | None,
    ) -> tuple[np.ndarray, Window | None]:
        key = (transform.key, transform.windows, inverted, domain_min, domain_max, window)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        # Build outside the lock: two threads may build the same table, which is harmless.
        built = build_lut(
            transform,
            inverted=inverted,
            domain_min=domain_min,
            domain_max=domain_max,
            window=window,
        )
        with self._lock:
            self._items[key] = built
            self._items.move_to_end(key)
            while len(self._items) > self._max_entries:
                self._items.popitem(last=False)
        return built

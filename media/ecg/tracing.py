"""The ECG tracing as paper: a PNG at standard scale for the printable report and its PDF.

Standard layout: 3 rows × 4 columns (I II III / aVR aVL aVF / V1 V2 V3 / V4 V5 V6, each column
2.5 s of its own time span) and a lead II rhythm strip over the full 10 s, at 25 mm/s and
10 mm/mV on a 1 mm / 5 mm grid. The raster has exactly PX_PER_MM pixels per millimetre, so the
PDF places it at `width_mm` × `height_mm` (server/documents/pdf.py) and the printable page sizes
it in CSS millimetres: one millimetre of paper is one millimetre of the grid. Pure numpy/pillow;
blocking (run it in the thread pool).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from media.ecg.waveform import Group, rhythm_group

PX_PER_MM = 6  # ≈152 dpi: 1500 × 840 px for the standard sheet
MM_PER_S = 25.0
MM_PER_MV = 10.0
SECONDS = 10.0
ROW_MM = 35.0  # a row of the sheet: ±1.75 mV around its baseline
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"
_MINOR = (244, 200, 200)
_MAJOR = (226, 120, 120)
_TRACE = (0, 0, 0)


@dataclass(frozen=True)
class Tracing:
    png: bytes
    width_mm: float
    height_mm: float


def width_mm() -> float:
    return SECONDS * MM_PER_S


def height_mm(rows: int) -> float:
    return rows * ROW_MM


def grid(w_px: int, h_px: int) -> np.ndarray:
    """The paper: white, a line every millimetre, a darker one every 5 mm (RGB array)."""
    img = np.full((h_px, w_px, 3), 255, dtype=np.uint8)
    for axis in (0, 1):
        n = h_px if axis == 0 else w_px
        for i in range(0, n, PX_PER_MM):
            colour = _MAJOR if (i // PX_PER_MM) % 5 == 0 else _MINOR
            if axis == 0:
                img[i, :] = np.minimum(img[i, :], colour)
            else:
                img[:, i] = np.minimum(img[:, i], colour)
    return img


def _points(uv: np.ndarray, fs: float, x0_mm: float, base_mm: float) -> list[tuple[float, float]]:
    t = np.arange(uv.size) / fs
    x = (x0_mm + t * MM_PER_S) * PX_PER_MM
    y = (base_mm - uv / 1000.0 * MM_PER_MV) * PX_PER_MM
    return list(zip(x.tolist(), y.tolist(), strict=True))


def render(groups: list[Group]) -> Tracing:
    """The 3×4 sheet and the lead II rhythm strip of the rhythm group (leads it lacks are left
    blank; without lead II the strip shows its first lead)."""
    g = rhythm_group(groups)
    fs = g.rate
    n = min(g.samples, round(SECONDS * fs))
    rows = len(LAYOUT) + 1
    w_px, h_px = int(width_mm() * PX_PER_MM), int(height_mm(rows) * PX_PER_MM)
    im = Image.fromarray(grid(w_px, h_px))
    draw = ImageDraw.Draw(im)
    col_s = SECONDS / 4
    col_n = round(col_s * fs)
    for r, leads in enumerate(LAYOUT):
        base = (r + 0.5) * ROW_MM
        for c, lead in enumerate(leads):
            k = g.lead(lead)
            start = c * col_n
            if k is None or start >= n:
                continue
            uv = g.microvolts(k)[start:min(n, start + col_n)]
            draw.line(_points(uv, fs, c * col_s * MM_PER_S, base), fill=_TRACE, width=2)
            draw.text(((c * col_s * MM_PER_S + 1) * PX_PER_MM, (base - ROW_MM / 2 + 1) * PX_PER_MM),
                      lead, fill=_TRACE)
            if c:  # the column boundary mark
                x = c * col_s * MM_PER_S * PX_PER_MM
                draw.line([(x, (base - 3) * PX_PER_MM), (x, (base + 3) * PX_PER_MM)],
                          fill=_TRACE, width=2)
    k = g.lead(RHYTHM_LEAD)
    k = 0 if k is None else k
    base = (len(LAYOUT) + 0.5) * ROW_MM
    draw.line(_points(g.microvolts(k)[:n], fs, 0.0, base), fill=_TRACE, width=2)
    draw.text((1 * PX_PER_MM, (base - ROW_MM / 2 + 1) * PX_PER_MM), g.channels[k].lead,
              fill=_TRACE)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True, dpi=(PX_PER_MM * 25.4, PX_PER_MM * 25.4))
    return Tracing(out.getvalue(), width_mm(), height_mm(rows))


def render_file(path: str) -> Tracing:
    """The tracing of a stored ECG file (checked at ingest)."""
    import pydicom

    from media.ecg import waveform

    ds = pydicom.dcmread(path)
    waveform.check_waveform(ds)
    return render(waveform.decode(ds))

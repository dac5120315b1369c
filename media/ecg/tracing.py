"""The ECG tracing as paper: PNGs at standard scale for the printable report and its PDF.

Standard layout: 3 rows × 4 columns (I II III / aVR aVL aVF / V1 V2 V3 / V4 V5 V6, each column
2.5 s of its own time span) and a lead II rhythm strip over the full 10 s, at 25 mm/s and
`gain` mm/mV (10 by default; 5 or 20 on request) on a 1 mm / 5 mm grid. Every row starts with
the standard 1 mV calibration pulse (0.2 s wide: 5 mm at 25 mm/s; `gain` mm tall) in a lead-in
of CAL_MM before the signal, so the reader sees the scale the row was printed at. When the ECG
has a median-beat group (e.g. pydicom's `waveform_ecg.dcm`), `render_medians` draws its 12 beats
as a second sheet (3 × 4, each beat at its own length) at the same scale, printed right after
the rhythm sheet: beside the rhythm there is no room on A4 landscape (250 mm of 10 s rhythm).

The raster has exactly PX_PER_MM pixels per millimetre, so the PDF places it at `width_mm` ×
`height_mm` (server/documents/pdf.py) and the printable page sizes it in CSS millimetres: one
millimetre of paper is one millimetre of the grid. Pure numpy/pillow; blocking (run it in the
thread pool).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from media.ecg.waveform import Group, median_group, rhythm_group

PX_PER_MM = 6  # ≈152 dpi: 1560 × 840 px for the standard sheet
MM_PER_S = 25.0
MM_PER_MV = 10.0  # the standard gain
GAINS = (5.0, 10.0, 20.0)  # mm/mV a report may be printed at
SECONDS = 10.0
ROW_MM = 35.0  # a row of the sheet
#: The baseline sits 21 mm below the row's top (+2.1 / −1.4 mV at 10 mm/mV): QRS complexes and
#: the calibration pulse go up, and a 20 mm/mV pulse still fits inside its row.
BASELINE_MM = 21.0
CAL_MM = 10.0  # the lead-in holding the calibration pulse; a multiple of 5 mm, so the signal
#               starts on a major grid line
CAL_MV = 1.0
CAL_S = 0.2
_CAL_X0_MM = 2.0  # where the pulse rises within the lead-in
MEDIAN_GAP_MM = 5.0  # between two median beats of a row
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"
_MINOR = (244, 200, 200)
_MAJOR = (226, 120, 120)
_TRACE = (0, 0, 0)


@dataclass(frozen=True)
class Pulse:
    """A calibration pulse as drawn, in mm of the sheet: rises at x_mm from the baseline."""

    x_mm: float
    baseline_mm: float
    width_mm: float
    height_mm: float


@dataclass(frozen=True)
class Tracing:
    png: bytes
    width_mm: float
    height_mm: float
    gain: float = MM_PER_MV  # mm/mV
    speed: float = MM_PER_S  # mm/s
    pulses: tuple[Pulse, ...] = ()


@dataclass(frozen=True)
class Sheets:
    """What a report prints of one ECG: the rhythm sheet and, when present, the median beats."""

    rhythm: Tracing
    medians: Tracing | None = None


def width_mm() -> float:
    return CAL_MM + SECONDS * MM_PER_S


def height_mm(rows: int) -> float:
    return rows * ROW_MM


def check_gain(gain: float) -> float:
    if gain not in GAINS:
        raise ValueError(f"gain must be one of {', '.join(f'{g:g}' for g in GAINS)} mm/mV")
    return float(gain)


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


def _points(uv: np.ndarray, fs: float, x0_mm: float, base_mm: float,
            gain: float) -> list[tuple[float, float]]:
    t = np.arange(uv.size) / fs
    x = (x0_mm + t * MM_PER_S) * PX_PER_MM
    y = (base_mm - uv / 1000.0 * gain) * PX_PER_MM
    return list(zip(x.tolist(), y.tolist(), strict=True))


def _pulse(draw: ImageDraw.ImageDraw, base_mm: float, gain: float) -> Pulse:
    """The 1 mV calibration pulse at the start of a row: baseline, up CAL_MV × gain, CAL_S
    long, down, baseline to the end of the lead-in."""
    p = Pulse(_CAL_X0_MM, base_mm, CAL_S * MM_PER_S, CAL_MV * gain)
    top, x1 = base_mm - p.height_mm, p.x_mm + p.width_mm
    mm = [(0.5, base_mm), (p.x_mm, base_mm), (p.x_mm, top), (x1, top), (x1, base_mm),
          (CAL_MM, base_mm)]
    draw.line([(x * PX_PER_MM, y * PX_PER_MM) for x, y in mm], fill=_TRACE, width=2)
    return p


def _save(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True, dpi=(PX_PER_MM * 25.4, PX_PER_MM * 25.4))
    return out.getvalue()


def _label(draw: ImageDraw.ImageDraw, text: str, x_mm: float, base_mm: float) -> None:
    draw.text(((x_mm + 1) * PX_PER_MM, (base_mm - BASELINE_MM + 1) * PX_PER_MM), text,
              fill=_TRACE)


def render(groups: list[Group], gain: float = MM_PER_MV) -> Tracing:
    """The 3×4 sheet and the lead II rhythm strip of the rhythm group (leads it lacks are left
    blank; without lead II the strip shows its first lead), each row after its calibration
    pulse."""
    gain = check_gain(gain)
    g = rhythm_group(groups)
    fs = g.rate
    n = min(g.samples, round(SECONDS * fs))
    rows = len(LAYOUT) + 1
    w_px, h_px = int(width_mm() * PX_PER_MM), int(height_mm(rows) * PX_PER_MM)
    im = Image.fromarray(grid(w_px, h_px))
    draw = ImageDraw.Draw(im)
    pulses = []
    col_s = SECONDS / 4
    col_n = round(col_s * fs)
    for r, leads in enumerate(LAYOUT):
        base = r * ROW_MM + BASELINE_MM
        pulses.append(_pulse(draw, base, gain))
        for c, lead in enumerate(leads):
            k = g.lead(lead)
            start = c * col_n
            x0 = CAL_MM + c * col_s * MM_PER_S
            if k is None or start >= n:
                continue
            uv = g.microvolts(k, n)[start:min(n, start + col_n)]
            draw.line(_points(uv, fs, x0, base, gain), fill=_TRACE, width=2)
            _label(draw, lead, x0, base)
            if c:  # the column boundary mark
                x = x0 * PX_PER_MM
                draw.line([(x, (base - 3) * PX_PER_MM), (x, (base + 3) * PX_PER_MM)],
                          fill=_TRACE, width=2)
    k = g.lead(RHYTHM_LEAD)
    k = 0 if k is None else k
    base = len(LAYOUT) * ROW_MM + BASELINE_MM
    pulses.append(_pulse(draw, base, gain))
    draw.line(_points(g.microvolts(k, n), fs, CAL_MM, base, gain), fill=_TRACE, width=2)
    _label(draw, g.channels[k].lead, CAL_MM, base)
    return Tracing(_save(im), width_mm(), height_mm(rows), gain, MM_PER_S, tuple(pulses))


def medians_width_mm(beat_s: float) -> float:
    return CAL_MM + len(LAYOUT[0]) * (beat_s * MM_PER_S + MEDIAN_GAP_MM)


def render_medians(groups: list[Group], gain: float = MM_PER_MV) -> Tracing | None:
    """The median beats (3 × 4 in the sheet's lead order, each row after its calibration pulse),
    or None when the ECG has no median-beat group."""
    gain = check_gain(gain)
    g = median_group(groups)
    if g is None:
        return None
    fs = g.rate
    # A median beat is a second or so; bounded so the sheet always fits a landscape page.
    beat_s = min(g.samples / fs, 1.6)
    n = round(beat_s * fs)
    cell_mm = beat_s * MM_PER_S + MEDIAN_GAP_MM
    w_mm, h_mm = medians_width_mm(beat_s), height_mm(len(LAYOUT))
    im = Image.fromarray(grid(round(w_mm * PX_PER_MM), round(h_mm * PX_PER_MM)))
    draw = ImageDraw.Draw(im)
    pulses = []
    for r, leads in enumerate(LAYOUT):
        base = r * ROW_MM + BASELINE_MM
        pulses.append(_pulse(draw, base, gain))
        for c, lead in enumerate(leads):
            k = g.lead(lead)
            if k is None:
                continue
            x0 = CAL_MM + c * cell_mm
            draw.line(_points(g.microvolts(k, n), fs, x0, base, gain), fill=_TRACE, width=2)
            _label(draw, lead, x0, base)
    return Tracing(_save(im), w_mm, h_mm, gain, MM_PER_S, tuple(pulses))


def render_sheets(groups: list[Group], gain: float = MM_PER_MV) -> Sheets:
    return Sheets(render(groups, gain), render_medians(groups, gain))


def render_file(path: str, gain: float = MM_PER_MV) -> Sheets:
    """The sheets of a stored ECG file (checked at ingest)."""
    import pydicom

    from media.ecg import waveform

    ds = pydicom.dcmread(path)
    waveform.check_waveform(ds)
    return render_sheets(waveform.decode(ds), gain)

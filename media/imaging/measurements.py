"""Measurements on an image: lengths, angles and ROI areas in mm, ROI statistics in modality units.

Pure functions over numpy arrays and pydicom headers (no I/O, no HTTP). Points are image
coordinates (column, row) as DICOM SCOORD uses them (PS3.3 C.18.6.1.2): (0, 0) is the top left
corner of the top left pixel, so the pixel at row i, column j is centred at (j + 0.5, i + 0.5).

Which spacing a distance uses (PS3.3 10.7.1.1-10.7.1.3, C.8.11.4 / C.7.6.2.1.1):
- Pixel Spacing (0028,0030) is *row spacing \\ column spacing*: the first value is the distance
  between adjacent rows (vertical, mm per row), the second between adjacent columns (horizontal).
- Cross-sectional images (CT, MR, PET, ...): Pixel Spacing is in the patient: calibrated.
  Enhanced multi-frame images carry it in the Pixel Measures functional group (per frame or
  shared), which wins over a top-level value.
- Projection radiographs carry Imager Pixel Spacing (0018,1164), measured at the detector (or
  at the front of the image receptor housing): distances are magnified by the geometry, so not
  calibrated. A Pixel Spacing beside it that equals it is only a copy (still the detector
  plane); one that differs from it, or comes with Pixel Spacing Calibration Type (0028,0A02),
  has been calibrated (geometry or a fiducial) and is used as calibrated.
- A projection image with Pixel Spacing and no Imager Pixel Spacing or calibration type: the
  plane is unknown (not calibrated). Neither attribute: pixels, not calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydicom.dataset import Dataset

from media.imaging.image_model import FrameTransform
from media.imaging.modality_lut import apply_modality

PIXEL_SPACING = "PixelSpacing"
IMAGER_PIXEL_SPACING = "ImagerPixelSpacing"
NO_SPACING = "none"

#: Modalities whose images are projections (PS3.3 C.7.3.1.1.1): spacing is at the detector.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "RF", "XA", "RG", "DF", "DS"})

Point = tuple[float, float]  # (column, row)


class MeasurementError(ValueError):
    """The points do not describe the shape (too few, degenerate, outside the image)."""


@dataclass(frozen=True)
class Spacing:
    """mm per pixel along each axis, and where it came from."""

    row_mm: float  # distance between adjacent rows: the vertical size of a pixel
    col_mm: float  # distance between adjacent columns: the horizontal size of a pixel
    source: str  # PIXEL_SPACING | IMAGER_PIXEL_SPACING | NO_SPACING
    calibrated: bool
    note: str = ""

    @property
    def known(self) -> bool:
        return self.source != NO_SPACING


NONE = Spacing(1.0, 1.0, NO_SPACING, False, "no pixel spacing: measured in pixels")


def _pair(value: Any) -> tuple[float, float] | None:
    """A valid spacing pair (two positive finite numbers) or None."""
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return values[0], values[1]


def _functional_group_spacing(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """Pixel Measures Sequence (C.7.6.16.2.1): the frame's own, else the shared one."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    candidates = []
    if per_frame and 1 <= frame <= len(per_frame):
        candidates.append(per_frame[frame - 1])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        candidates.append(shared[0])
    for group in candidates:
        measures = group.get("PixelMeasuresSequence")
        if measures:
            pair = _pair(measures[0].get("PixelSpacing"))
            if pair is not None:
                return pair
    return None


def spacing_from_dataset(ds: Dataset, frame: int = 1) -> Spacing:
    """The spacing a measurement of `frame` uses, following the rules in the module doc."""
    modality = str(ds.get("Modality", "") or "").upper()
    grouped = _functional_group_spacing(ds, frame)
    pixel = grouped or _pair(ds.get("PixelSpacing"))
    imager = _pair(ds.get("ImagerPixelSpacing"))
    calibration = str(ds.get("PixelSpacingCalibrationType", "") or "").strip().upper()
    if pixel is not None and imager is None:
        if modality in PROJECTION_MODALITIES and not calibration and grouped is None:
            return Spacing(*pixel, PIXEL_SPACING, False,
                           "projection image without Imager Pixel Spacing: the plane of Pixel "
                           "Spacing is unknown (not calibrated)")
        note = f"calibrated ({calibration})" if calibration else ""
        return Spacing(*pixel, PIXEL_SPACING, True, note)
    if pixel is not None and imager is not None:
        if calibration:
            return Spacing(*pixel, PIXEL_SPACING, True, f"calibrated ({calibration})")
        if not np.allclose(pixel, imager, rtol=1e-6, atol=1e-9):
            return Spacing(*pixel, PIXEL_SPACING, True,
                           "Pixel Spacing differs from Imager Pixel Spacing: calibrated")
        return Spacing(*imager, IMAGER_PIXEL_SPACING, False,
                       "at the detector plane (Imager Pixel Spacing): not corrected for "
                       "magnification")
    if imager is not None:
        return Spacing(*imager, IMAGER_PIXEL_SPACING, False,
                       "at the detector plane (Imager Pixel Spacing): not corrected for "
                       "magnification")
    return NONE


def modality_unit(ds: Dataset) -> str:
    """The unit of modality values: Rescale Type / Modality LUT Type, HU for CT, else ''."""
    for source in _transform_sources(ds):
        for keyword in ("RescaleType", "ModalityLUTType"):
            value = str(source.get(keyword, "") or "").strip()
            if value:
                return value
        lut = source.get("ModalityLUTSequence")
        if lut:
            value = str(lut[0].get("ModalityLUTType", "") or "").strip()
            if value:
                return value
    if str(ds.get("Modality", "") or "").upper() == "CT":
        return "HU"  # CT Image module: rescaled values are Hounsfield units (C.8.2.1.1.1)
    return ""


def _transform_sources(ds: Dataset) -> list[Dataset]:
    out = [ds]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get("PixelValueTransformationSequence")
        if seq:
            out.insert(0, seq[0])
    return out


# --- geometry ------------------------------------------------------------------------------


def _points(points: Sequence[Sequence[float]], at_least: int, at_most: int | None = None
            ) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < at_least:
        raise MeasurementError(f"needs at least {at_least} points as [column, row] pairs")
    if at_most is not None and arr.shape[0] > at_most:
        raise MeasurementError(f"takes at most {at_most} points")
    if not np.all(np.isfinite(arr)):
        raise MeasurementError("points must be finite numbers")
    return arr


def _to_mm(arr: np.ndarray, spacing: Spacing) -> np.ndarray:
    return arr * np.array([spacing.col_mm, spacing.row_mm])


def length(points: Sequence[Sequence[float]], spacing: Spacing) -> float:
    """Length of the line from the first to the second point, in mm (pixels without spacing)."""
    arr = _points(points, 2, 2)
    d = _to_mm(arr[1] - arr[0], spacing)
    return float(math.hypot(d[0], d[1]))


def angle(points: Sequence[Sequence[float]], spacing: Spacing) -> float:
    """The angle at the second point between the rays to the first and the third, in degrees
    (0-180), measured in the patient (anisotropic pixels change angles)."""
    arr = _to_mm(_points(points, 3, 3), spacing)
    u, v = arr[0] - arr[1], arr[2] - arr[1]
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        raise MeasurementError("an angle's arms must have a length")
    cos = float(np.dot(u, v) / (nu * nv))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@dataclass(frozen=True)
class Ellipse:
    """Axis-aligned (in the image) ellipse given by its bounding box corners."""

    cx: float
    cy: float
    a: float  # half-width in columns
    b: float  # half-height in rows

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> Ellipse:
        arr = _points(points, 2, 2)
        (c0, r0), (c1, r1) = arr
        a, b = abs(c1 - c0) / 2, abs(r1 - r0) / 2
        if a == 0 or b == 0:
            raise MeasurementError("an ellipse needs a width and a height")
        return cls((c0 + c1) / 2, (r0 + r1) / 2, a, b)

    def area_px(self) -> float:
        return math.pi * self.a * self.b

    def axis_points(self) -> list[Point]:
        """SCOORD ELLIPSE order: major axis endpoints, then minor axis endpoints."""
        horizontal = [(self.cx - self.a, self.cy), (self.cx + self.a, self.cy)]
        vertical = [(self.cx, self.cy - self.b), (self.cx, self.cy + self.b)]
        return horizontal + vertical if self.a >= self.b else vertical + horizontal

    def bbox(self, rows: int, columns: int) -> tuple[slice, slice]:
        return _bbox(self.cx - self.a, self.cx + self.a, self.cy - self.b, self.cy + self.b,
                     rows, columns)

    def mask_rows(self, r0: int, r1: int, cs: slice) -> np.ndarray:
        """Mask of rows r0..r1 (image rows) over the columns `cs`: centres inside."""
        yy = (np.arange(r0, r1, dtype=np.float64) + 0.5)[:, None]
        xx = (np.arange(cs.start, cs.stop, dtype=np.float64) + 0.5)[None, :]
        return ((xx - self.cx) / self.a) ** 2 + ((yy - self.cy) / self.b) ** 2 <= 1.0

    def mask(self, rows: int, columns: int) -> tuple[slice, slice, np.ndarray]:
        """(row slice, column slice, mask) of the pixels whose centres are inside."""
        rs, cs = self.bbox(rows, columns)
        return rs, cs, self.mask_rows(rs.start, rs.stop, cs)


def _bbox(x0: float, x1: float, y0: float, y1: float, rows: int, columns: int
          ) -> tuple[slice, slice]:
    c0 = min(max(math.floor(x0 - 0.5), 0), columns)
    c1 = min(max(math.ceil(x1 - 0.5) + 1, 0), columns)
    r0 = min(max(math.floor(y0 - 0.5), 0), rows)
    r1 = min(max(math.ceil(y1 - 0.5) + 1, 0), rows)
    return slice(r0, r1), slice(c0, c1)


def polygon_area_px(points: Sequence[Sequence[float]]) -> float:
    """Shoelace area of the closed polygon (first point joined to the last), in pixels²."""
    arr = _points(points, 3)
    x, y = arr[:, 0], arr[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


class Polygon:
    """A closed polygon (the last point joins the first); masks by the even-odd rule."""

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        arr = _points(points, 3)
        self.x0, self.y0 = arr[:, 0], arr[:, 1]
        self.x1, self.y1 = np.roll(self.x0, -1), np.roll(self.y0, -1)

    def bbox(self, rows: int, columns: int) -> tuple[slice, slice]:
        return _bbox(self.x0.min(), self.x0.max(), self.y0.min(), self.y0.max(), rows, columns)

    def mask_rows(self, r0: int, r1: int, cs: slice) -> np.ndarray:
        """Mask of rows r0..r1 over the columns `cs`, by scanlines: the cost is rows × edges
        (+ rows × columns to fill), never rows × columns × edges."""
        out = np.zeros((max(0, r1 - r0), max(0, cs.stop - cs.start)), dtype=bool)
        if out.size == 0:
            return out
        ys = np.arange(r0, r1, dtype=np.float64) + 0.5
        x0, y0, x1, y1 = self.x0, self.y0, self.x1, self.y1
        # An edge crosses the scanline when exactly one endpoint is below it (half-open rule).
        crosses = (y0[None, :] > ys[:, None]) != (y1[None, :] > ys[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ys[:, None] - y0[None, :]) / (y1 - y0)[None, :]
            xs = x0[None, :] + t * (x1 - x0)[None, :]
        xs = np.where(crosses, xs, np.inf)
        xs.sort(axis=1)
        centres = np.arange(cs.start, cs.stop, dtype=np.float64) + 0.5
        for i in range(out.shape[0]):
            row = xs[i][np.isfinite(xs[i])]
            # The number of crossings left of each pixel centre: odd -> inside.
            out[i] = (np.searchsorted(row, centres, side="right") % 2) == 1
        return out


def polygon_mask(points: Sequence[Sequence[float]], rows: int, columns: int
                 ) -> tuple[slice, slice, np.ndarray]:
    """(row slice, column slice, mask) of the pixels whose centres are inside the polygon."""
    shape = Polygon(points)
    rs, cs = shape.bbox(rows, columns)
    return rs, cs, shape.mask_rows(rs.start, rs.stop, cs)


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RoiStats:
    count: int
    mean: float | None
    sd: float | None
    min: float | None
    max: float | None


#: ROI statistics run over row blocks of about this many pixels: memory stays bounded (a few
#: MB) whatever the ROI's size on a 40-megapixel frame.
BLOCK_PIXELS = 1 << 20


class Shape(Protocol):
    def bbox(self, rows: int, columns: int) -> tuple[slice, slice]: ...

    def mask_rows(self, r0: int, r1: int, cs: slice) -> np.ndarray: ...


def roi_stats(stored: Any, shape: Shape, rows: int, columns: int,
              transform: FrameTransform | None) -> RoiStats:
    """Mean / population SD / min / max of the modality values of the pixels inside `shape`.

    `stored`: the frame's stored values, anything indexable by (row slice, column slice) — only
    the ROI's box is read, in row blocks, merged with Chan's parallel variance formula.
    """
    rs, cs = shape.bbox(rows, columns)
    width = max(1, cs.stop - cs.start)
    step = max(1, BLOCK_PIXELS // width)
    count, mean, m2 = 0, 0.0, 0.0
    lo, hi = math.inf, -math.inf
    for r0 in range(rs.start, rs.stop, step):
        r1 = min(r0 + step, rs.stop)
        mask = shape.mask_rows(r0, r1, cs)
        if not mask.any():
            continue
        values = np.asarray(stored[r0:r1, cs])[mask]
        values = apply_modality(values, transform) if transform is not None else \
            values.astype(np.float64)
        n = int(values.size)
        block_mean = float(values.mean())
        block_m2 = float(((values - block_mean) ** 2).sum())
        delta = block_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += block_m2 + delta * delta * count * n / total
        count = total
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if count == 0:
        return RoiStats(0, None, None, None, None)
    return RoiStats(count, mean, math.sqrt(max(m2, 0.0) / count), lo, hi)


@dataclass(frozen=True)
class Measurement:
    """What the server says about an annotation (the API's `measurement` object)."""

    spacing: Spacing
    length_mm: float | None = None
    length_px: float | None = None
    angle_deg: float | None = None
    area_mm2: float | None = None
    area_px2: float | None = None
    stats: RoiStats | None = None
    unit: str = ""

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calibrated": self.spacing.calibrated,
            "spacing_source": self.spacing.source,
            "spacing_mm": [self.spacing.row_mm, self.spacing.col_mm]
            if self.spacing.known else None,
            "note": self.spacing.note,
        }
        for name in ("length_mm", "length_px", "angle_deg", "area_mm2", "area_px2"):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 4)
        if self.stats is not None:
            out["count"] = self.stats.count
            for name in ("mean", "sd", "min", "max"):
                value = getattr(self.stats, name)
                out[name] = None if value is None else round(value, 4)
            out["unit"] = self.unit
        return out


def measure(kind: str, points: Sequence[Sequence[float]], spacing: Spacing, *,
            rows: int, columns: int, stored: Any = None,
            transform: FrameTransform | None = None, unit: str = "") -> Measurement | None:
    """The measurement of an annotation of `kind`; None for kinds that measure nothing.

    `stored` (the frame's stored values, monochrome) gives ROI statistics; without it an ROI
    has its area only.
    """
    if kind == "length":
        value = length(points, spacing)
        if spacing.known:
            return Measurement(spacing, length_mm=value, length_px=length(points, NONE))
        return Measurement(spacing, length_px=value)
    if kind == "angle":
        return Measurement(spacing, angle_deg=angle(points, spacing))
    if kind in ("ellipse", "polygon"):
        shape: Ellipse | Polygon
        if kind == "ellipse":
            shape = Ellipse.from_points(points)
            area_px = shape.area_px()
        else:
            area_px = polygon_area_px(points)
            if area_px == 0:
                raise MeasurementError("a polygon needs an area")
            shape = Polygon(points)
        area_mm2 = area_px * spacing.row_mm * spacing.col_mm if spacing.known else None
        stats = roi_stats(stored, shape, rows, columns, transform) \
            if stored is not None else None
        return Measurement(spacing, area_mm2=area_mm2, area_px2=area_px, stats=stats, unit=unit)
    return None

"""Measurement maths against hand-computed values on real DICOM files (phantom and factory)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from media.imaging import measurements as m
from media.imaging.image_model import read_image_model
from media.imaging.pixel_decoder import decode_stored
from server.demo.phantom import cr_monochrome1_phantom, ct_phantom_series
from tests.dicom_factory import ct_dataset


def _spacing(**attrs) -> m.Spacing:
    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return m.spacing_from_dataset(ds)


# --- which spacing -------------------------------------------------------------------------


def test_pixel_spacing_is_row_then_column() -> None:
    s = _spacing(Modality="CT", PixelSpacing=[0.5, 0.8])
    assert (s.row_mm, s.col_mm, s.source, s.calibrated) == (0.5, 0.8, "PixelSpacing", True)
    # 10 columns across = 10 * column spacing; 10 rows down = 10 * row spacing.
    assert m.length([[0, 0], [10, 0]], s) == pytest.approx(8.0)
    assert m.length([[0, 0], [0, 10]], s) == pytest.approx(5.0)
    assert m.length([[0, 0], [3, 4]], s) == pytest.approx(math.hypot(3 * 0.8, 4 * 0.5))


def test_radiograph_copy_of_imager_spacing_is_detector_plane() -> None:
    ds = cr_monochrome1_phantom(rows=64, columns=64)
    s = m.spacing_from_dataset(ds)
    assert s.source == "ImagerPixelSpacing" and s.calibrated is False
    assert "detector" in s.note
    assert s.row_mm == pytest.approx(410.0 / 64, rel=1e-5)


def test_radiograph_calibrated_pixel_spacing() -> None:
    differs = _spacing(Modality="DX", ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=[0.18, 0.18])
    assert (differs.source, differs.calibrated, differs.row_mm) == ("PixelSpacing", True, 0.18)
    typed = _spacing(Modality="DX", ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=[0.2, 0.2],
                     PixelSpacingCalibrationType="GEOMETRY")
    assert (typed.source, typed.calibrated) == ("PixelSpacing", True)
    assert "GEOMETRY" in typed.note


def test_imager_spacing_only_and_none() -> None:
    s = _spacing(Modality="DX", ImagerPixelSpacing=[0.15, 0.1])
    assert (s.source, s.calibrated, s.row_mm, s.col_mm) == ("ImagerPixelSpacing", False, .15, .1)
    none = _spacing(Modality="OT")
    assert (none.source, none.calibrated) == ("none", False)
    assert m.length([[0, 0], [3, 4]], none) == 5.0
    bad = _spacing(Modality="CT", PixelSpacing=[0, 1])
    assert bad.source == "none"


def test_projection_pixel_spacing_alone_is_not_calibrated() -> None:
    s = _spacing(Modality="CR", PixelSpacing=[0.1, 0.1])
    assert (s.source, s.calibrated) == ("PixelSpacing", False)


def test_enhanced_pixel_measures_per_frame_then_shared() -> None:
    ds = Dataset()
    ds.Modality = "CT"
    ds.PixelSpacing = [9, 9]
    shared, frame2, measures_s, measures_2 = Dataset(), Dataset(), Dataset(), Dataset()
    measures_s.PixelSpacing = [0.7, 0.6]
    measures_2.PixelSpacing = [0.4, 0.3]
    shared.PixelMeasuresSequence = DicomSequence([measures_s])
    frame2.PixelMeasuresSequence = DicomSequence([measures_2])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([Dataset(), frame2])
    assert (m.spacing_from_dataset(ds, 1).row_mm, m.spacing_from_dataset(ds, 1).col_mm) == (.7, .6)
    assert (m.spacing_from_dataset(ds, 2).row_mm, m.spacing_from_dataset(ds, 2).col_mm) == (.4, .3)


def test_units() -> None:
    ct = Dataset()
    ct.Modality = "CT"
    assert m.modality_unit(ct) == "HU"
    pet = Dataset()
    pet.Modality = "PT"
    pet.RescaleType = "BQML"
    assert m.modality_unit(pet) == "BQML"
    mr = Dataset()
    mr.Modality = "MR"
    assert m.modality_unit(mr) == ""


# --- angles and areas ----------------------------------------------------------------------


def test_angle_hand_values() -> None:
    iso = m.Spacing(1, 1, "PixelSpacing", True)
    assert m.angle([[10, 0], [0, 0], [0, 10]], iso) == pytest.approx(90)
    assert m.angle([[1, 0], [0, 0], [1, 1]], iso) == pytest.approx(45)
    # Columns twice as wide as rows are tall: (1,0)px -> (2,0)mm, (1,1)px -> (2,1)mm.
    wide = m.Spacing(1.0, 2.0, "PixelSpacing", True)
    assert m.angle([[1, 0], [0, 0], [1, 1]], wide) == pytest.approx(math.degrees(math.atan(0.5)))
    with pytest.raises(m.MeasurementError):
        m.angle([[0, 0], [0, 0], [1, 1]], iso)


def test_ellipse_and_polygon_areas() -> None:
    s = m.Spacing(0.5, 0.8, "PixelSpacing", True)
    e = m.measure("ellipse", [[10, 20], [30, 30]], s, rows=64, columns=64)
    assert e is not None and e.area_px2 == pytest.approx(math.pi * 10 * 5)
    assert e.area_mm2 == pytest.approx(math.pi * 10 * 5 * 0.4)
    p = m.measure("polygon", [[0, 0], [10, 0], [10, 10], [0, 10]], s, rows=64, columns=64)
    assert p is not None and p.area_mm2 == pytest.approx(100 * 0.4)
    tri = m.polygon_area_px([[0, 0], [4, 0], [0, 3]])
    assert tri == 6.0
    with pytest.raises(m.MeasurementError):
        m.measure("polygon", [[0, 0], [1, 1], [2, 2]], s, rows=8, columns=8)
    with pytest.raises(m.MeasurementError):
        m.measure("ellipse", [[1, 1], [1, 5]], s, rows=8, columns=8)


def test_masks_take_pixel_centres() -> None:
    rs, cs, mask = m.polygon_mask([[0, 0], [10, 0], [10, 10], [0, 10]], 64, 64)
    assert int(mask.sum()) == 100
    assert (rs.start, cs.start) == (0, 0)
    full = np.zeros((64, 64), bool)
    full[rs, cs] = mask
    assert full[:10, :10].all() and not full[10:, :].any() and not full[:, 10:].any()
    # A concave L: the notch is outside (even-odd scanlines).
    _, _, lmask = m.polygon_mask([[0, 0], [4, 0], [4, 2], [2, 2], [2, 4], [0, 4]], 8, 8)
    assert int(lmask.sum()) == 12
    # Clipped at the image edge.
    _, _, clipped = m.polygon_mask([[-5, -5], [5, -5], [5, 5], [-5, 5]], 8, 8)
    assert int(clipped.sum()) == 25
    # Ellipse a=2, b=1 centred at (4, 4): centres dx in ±.5, ±1.5 and dy ±.5 give
    # (dx/2)² + dy² = .3125 or .8125 <= 1 (inside); dx ±2.5 gives 1.81 (outside): 4 x 2.
    _, _, emask = m.Ellipse.from_points([[2, 3], [6, 5]]).mask(8, 8)
    assert int(emask.sum()) == 8


# --- statistics in modality units, from real files ------------------------------------------


def _write(ds: Dataset, tmp_path: Path, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _stats(path: Path, kind: str, points) -> m.Measurement:
    model = read_image_model(path)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    stored = decode_stored(path, model, 1)
    result = m.measure(kind, points, m.spacing_from_dataset(header), rows=model.rows,
                       columns=model.columns, stored=stored, transform=model.transform(1),
                       unit=m.modality_unit(header))
    assert result is not None
    return result


def test_hu_statistics_rescale(tmp_path: Path) -> None:
    ds = ct_dataset(rows=32, columns=32)
    pixels = np.full((32, 32), 7, dtype=np.int16)
    pixels[4:14, 6:16] = np.arange(100, dtype=np.int16).reshape(10, 10)
    ds.PixelData = pixels.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.PixelSpacing = [0.5, 0.5]
    result = _stats(_write(ds, tmp_path), "polygon", [[6, 4], [16, 4], [16, 14], [6, 14]])
    assert result.unit == "HU" and result.stats is not None
    # HU = 2v - 1024 for v = 0..99: mean 2*49.5-1024, SD 2*sqrt((100^2-1)/12).
    assert result.stats.count == 100
    assert result.stats.mean == pytest.approx(-925.0)
    assert result.stats.sd == pytest.approx(2 * math.sqrt((100**2 - 1) / 12))
    assert (result.stats.min, result.stats.max) == (-1024.0, -826.0)
    assert result.area_mm2 == pytest.approx(25.0)
    public = result.public()
    assert public["mean"] == -925.0 and public["unit"] == "HU" and public["calibrated"] is True


def test_hu_statistics_modality_lut_sequence(tmp_path: Path) -> None:
    ds = ct_dataset(rows=16, columns=16)
    pixels = np.zeros((16, 16), dtype=np.int16)
    pixels[0:2, 0:2] = [[0, 1], [2, 3]]
    ds.PixelData = pixels.tobytes()
    del ds.RescaleSlope
    del ds.RescaleIntercept
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.ModalityLUTType = "HU"
    item.LUTData = np.array([10, 20, 40, 80], dtype="<u2").tobytes()
    ds.ModalityLUTSequence = DicomSequence([item])
    result = _stats(_write(ds, tmp_path), "polygon", [[0, 0], [2, 0], [2, 2], [0, 2]])
    assert result.stats is not None
    assert result.stats.mean == pytest.approx(37.5)
    assert result.stats.sd == pytest.approx(float(np.std([10, 20, 40, 80])))
    assert (result.stats.min, result.stats.max) == (10.0, 80.0)


def test_phantom_roi_matches_pydicom(tmp_path: Path) -> None:
    """An ROI on the demo CT phantom against pydicom's own pixel_array (independent decode)."""
    ds = next(iter(ct_phantom_series(slices=1, size=64)))
    path = _write(ds, tmp_path)
    reference = pydicom.dcmread(path)
    hu = reference.pixel_array.astype(np.float64) * float(reference.RescaleSlope) + float(
        reference.RescaleIntercept)
    result = _stats(path, "polygon", [[20, 24], [44, 24], [44, 40], [20, 40]])
    box = hu[24:40, 20:44]
    assert result.stats is not None and result.stats.count == box.size
    assert result.stats.mean == pytest.approx(box.mean())
    assert result.stats.sd == pytest.approx(box.std())
    assert (result.stats.min, result.stats.max) == (box.min(), box.max())
    spacing = float(reference.PixelSpacing[0])
    assert result.area_mm2 == pytest.approx(24 * 16 * spacing * spacing)
    length = _stats(path, "polygon", [[0, 0], [64, 0], [64, 64]])
    assert length.stats is not None
    # length in mm across the whole field of view: 64 columns * column spacing
    line = m.measure("length", [[0, 10], [64, 10]], m.spacing_from_dataset(reference),
                     rows=64, columns=64)
    assert line is not None and line.length_mm == pytest.approx(64 * spacing)


# --- properties ----------------------------------------------------------------------------

coords = st.floats(min_value=-500, max_value=500, allow_nan=False)
spacings = st.floats(min_value=0.05, max_value=5)


@given(st.lists(st.tuples(coords, coords), min_size=3, max_size=12), coords, coords)
def test_polygon_area_translation_invariant(points, dx, dy) -> None:
    moved = [(x + dx, y + dy) for x, y in points]
    a, b = m.polygon_area_px(points), m.polygon_area_px(moved)
    assert b == pytest.approx(a, rel=1e-6, abs=1e-3)


@given(coords, coords, st.floats(1, 200), st.floats(1, 200), coords, coords, spacings, spacings)
def test_ellipse_area_translation_invariant_and_scaled(cx, cy, a, b, dx, dy, rs, cs) -> None:
    s = m.Spacing(rs, cs, "PixelSpacing", True)
    one = m.measure("ellipse", [[cx - a, cy - b], [cx + a, cy + b]], s, rows=1, columns=1)
    two = m.measure("ellipse", [[cx + dx - a, cy + dy - b], [cx + dx + a, cy + dy + b]], s,
                    rows=1, columns=1)
    assert one is not None and two is not None
    assert two.area_mm2 == pytest.approx(one.area_mm2, rel=1e-6)
    assert one.area_mm2 == pytest.approx(math.pi * a * b * rs * cs, rel=1e-9)


@given(st.floats(2, 100), st.floats(2, 100), st.integers(8, 200))
def test_polygon_on_ellipse_approaches_its_area(a, b, n) -> None:
    """An n-gon inscribed in an ellipse has area (n/2)·a·b·sin(2π/n) <= π·a·b."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([50 + a * np.cos(t), 50 + b * np.sin(t)], axis=1).tolist()
    inscribed = m.polygon_area_px(pts)
    assert inscribed == pytest.approx(n / 2 * a * b * math.sin(2 * math.pi / n), rel=1e-9)
    assert inscribed <= math.pi * a * b
    assert inscribed >= math.pi * a * b * (1 - 2 * math.pi**2 / (3 * n * n)) - 1e-9


@given(st.floats(4, 60), st.floats(4, 60), st.floats(0, 1), st.floats(0, 1))
def test_ellipse_mask_count_close_to_area(a, b, fx, fy) -> None:
    """Counting pixel centres approximates πab within about the perimeter."""
    cx, cy = 64 + fx, 64 + fy
    _, _, mask = m.Ellipse(cx, cy, a, b).mask(160, 160)
    perimeter = 2 * math.pi * math.sqrt((a * a + b * b) / 2)
    assert abs(int(mask.sum()) - math.pi * a * b) <= perimeter + 4


@given(st.lists(st.tuples(st.floats(0, 60), st.floats(0, 60)), min_size=3, max_size=8),
       st.integers(-20, 20), st.integers(-20, 20))
def test_polygon_mask_translation_by_whole_pixels(points, dx, dy) -> None:
    """Moving a polygon by whole pixels moves its mask, never changes its pixel count."""
    base = [(x + 30, y + 30) for x, y in points]
    moved = [(x + dx, y + dy) for x, y in base]
    _, _, one = m.polygon_mask(base, 200, 200)
    _, _, two = m.polygon_mask(moved, 200, 200)
    assert int(one.sum()) == int(two.sum())


@given(st.tuples(coords, coords), st.tuples(coords, coords), spacings, spacings)
def test_length_symmetric_and_bounded(p, q, rs, cs) -> None:
    s = m.Spacing(rs, cs, "PixelSpacing", True)
    d = m.length([p, q], s)
    assert d == pytest.approx(m.length([q, p], s))
    px = m.length([p, q], m.NONE)
    assert min(rs, cs) * px - 1e-6 <= d <= max(rs, cs) * px + 1e-6


@given(st.lists(st.tuples(st.integers(-100, 100), st.integers(-100, 100)), min_size=3,
                max_size=3, unique=True))
def test_triangle_angles_sum_to_180(points) -> None:
    (ax, ay), (bx, by), (cx, cy) = points
    if (bx - ax) * (cy - ay) - (by - ay) * (cx - ax) == 0:
        return  # collinear
    s = m.Spacing(1, 1, "PixelSpacing", True)
    total = (m.angle([points[1], points[0], points[2]], s)
             + m.angle([points[0], points[1], points[2]], s)
             + m.angle([points[0], points[2], points[1]], s))
    assert total == pytest.approx(180)


def test_roi_stats_in_row_blocks_match_the_whole(tmp_path: Path, monkeypatch) -> None:
    """Statistics streamed over tiny row blocks (merged variances) equal numpy over the ROI."""
    ds = next(iter(ct_phantom_series(slices=1, size=64)))
    path = _write(ds, tmp_path)
    whole = _stats(path, "ellipse", [[5, 9], [60, 50]])
    monkeypatch.setattr(m, "BLOCK_PIXELS", 7)
    blocks = _stats(path, "ellipse", [[5, 9], [60, 50]])
    assert whole.stats is not None and blocks.stats is not None
    assert blocks.stats.count == whole.stats.count
    assert blocks.stats.mean == pytest.approx(whole.stats.mean, rel=1e-12)
    assert blocks.stats.sd == pytest.approx(whole.stats.sd, rel=1e-9)
    assert (blocks.stats.min, blocks.stats.max) == (whole.stats.min, whole.stats.max)
    reference = pydicom.dcmread(path)
    hu = reference.pixel_array * float(reference.RescaleSlope) + float(reference.RescaleIntercept)
    _, _, mask = m.Ellipse.from_points([[5, 9], [60, 50]]).mask(64, 64)
    rs, cs = m.Ellipse.from_points([[5, 9], [60, 50]]).bbox(64, 64)
    assert blocks.stats.sd == pytest.approx(hu[rs, cs][mask].std(), rel=1e-9)

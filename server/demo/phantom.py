"""Synthetic, anatomy-like demo images: a chest/abdomen CT series and a chest radiograph.

Nothing here comes from a real patient. The CT phantom is built from ellipses in patient
coordinates (millimetres, DICOM LPS: +x towards the patient's left, +y posterior, +z head), so
the image shows the patient's right on the viewer's left like any axial CT. Anatomy changes
along z: lung apices and the heart in the upper slices, the diaphragm domes, the liver, spleen
and stomach, then kidneys and bowel loops in the lowest slices. Vertebrae repeat with
intervertebral discs, and ribs sweep around the chest wall.

Stored values are signed 16-bit with RescaleSlope 1 and RescaleIntercept -1024, i.e.
``stored = HU + 1024``, with HU clipped to [-1024, 3071] (the classic 12-bit CT range, so every
stored value is in 0..4095).

Every UID is derived deterministically from the inputs (``generate_uid`` with entropy sources),
so seeding the same demo twice yields the same instances, and the same ``seed`` yields
bit-identical pixel data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

__all__ = ["HU_INTERCEPT", "cr_monochrome1_phantom", "ct_phantom_series"]

#: RescaleIntercept of every CT slice: stored value = HU - HU_INTERCEPT.
HU_INTERCEPT = -1024
_HU_MIN, _HU_MAX = -1024, 3071
#: Reconstruction field of view (mm); 512 px -> 0.7 mm pixels.
_FOV_MM = 358.4
#: Per-slice noise is a shifted window into one larger Gaussian field (see _noise_pool).
_NOISE_MARGIN = 96
_NOISE_SIGMA_HU = 7.0

# Tissue values (HU).
AIR = -1000.0
LUNG = -850.0
FAT = -100.0
ABDOMINAL_FAT = -90.0
FLUID = 8.0
SOFT = 40.0
MUSCLE = 50.0
BLOOD = 42.0
MYOCARDIUM = 55.0
LIVER = 60.0
SPLEEN = 50.0
KIDNEY = 32.0
CANCELLOUS = 400.0
CORTICAL = 1150.0
DISC = 80.0


@dataclass(frozen=True)
class _Grid:
    """Pixel-centre coordinates (mm) of the rows (y) and columns (x) of one slice."""

    x: np.ndarray  # shape (size,), float32, column centres
    y: np.ndarray  # shape (size,), float32, row centres (same values: square, centred)
    spacing: float


class _Canvas:
    """An HU image plus helpers that paint filled ellipses inside their bounding box only."""

    def __init__(self, grid: _Grid, background: float | np.ndarray) -> None:
        self.g = grid
        n = grid.x.size
        if isinstance(background, np.ndarray):
            self.img = background.copy()
        else:
            self.img = np.full((n, n), background, dtype=np.float32)

    def ellipse(
        self, cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0
    ) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """Bounding-box slices and boolean mask of an ellipse (semi-axes a along x, b along y,
        rotated by angle_deg); None when it is empty or entirely off the image."""
        if a <= 0 or b <= 0:
            return None
        g = self.g
        th = math.radians(angle_deg)
        c, s = math.cos(th), math.sin(th)
        hx = math.hypot(a * c, b * s)
        hy = math.hypot(a * s, b * c)
        # uniform grid: index arithmetic is much cheaper than searchsorted per call
        n, o, d = g.x.size, float(g.x[0]), g.spacing
        x0 = max(math.ceil((cx - hx - o) / d), 0)
        x1 = min(math.floor((cx + hx - o) / d) + 1, n)
        y0 = max(math.ceil((cy - hy - o) / d), 0)
        y1 = min(math.floor((cy + hy - o) / d) + 1, n)
        if x0 >= x1 or y0 >= y1:
            return None
        dx = (g.x[x0:x1] - cx)[None, :]
        dy = (g.y[y0:y1] - cy)[:, None]
        if angle_deg:
            u = dx * c + dy * s
            v = -dx * s + dy * c
        else:
            u, v = dx, dy
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        return (slice(y0, y1), slice(x0, x1)), mask

    def fill(
        self,
        cx: float,
        cy: float,
        a: float,
        b: float,
        value: float,
        angle_deg: float = 0.0,
        within: np.ndarray | None = None,
    ) -> None:
        """Paint an ellipse with a constant value, optionally only where `within` is true."""
        hit = self.ellipse(cx, cy, a, b, angle_deg)
        if hit is None:
            return
        box, mask = hit
        if within is not None:
            mask = mask & within[box]
        self.img[box][mask] = value

    def dot(self, cx: float, cy: float, r: float, value: float, within: np.ndarray) -> None:
        """A small disc snapped to the pixel grid (vessels): much cheaper than `fill`."""
        g = self.g
        o, d = float(g.x[0]), g.spacing
        full = _disc_stamp(round(max(r / d, 0.5) * 4))
        h = full.shape[0] // 2
        i, j = round((cx - o) / d), round((cy - o) / d)
        n = self.img.shape[0]
        x0, x1, y0, y1 = max(i - h, 0), min(i + h + 1, n), max(j - h, 0), min(j + h + 1, n)
        if x0 >= x1 or y0 >= y1:
            return
        stamp = full[y0 - (j - h):y1 - (j - h), x0 - (i - h):x1 - (i - h)]
        box = (slice(y0, y1), slice(x0, x1))
        self.img[box][stamp & within[box]] = value

    def full_mask(
        self, cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0
    ) -> np.ndarray:
        """Full-size boolean mask of an ellipse."""
        out = np.zeros(self.img.shape, dtype=bool)
        hit = self.ellipse(cx, cy, a, b, angle_deg)
        if hit is not None:
            box, mask = hit
            out[box] = mask
        return out

    def bone(
        self, cx: float, cy: float, a: float, b: float, angle_deg: float = 0.0,
        cortex_mm: float = 1.8, cortical: float = CORTICAL, cancellous: float = CANCELLOUS,
    ) -> None:
        """A bone cross-section: cortical shell around cancellous marrow."""
        self.fill(cx, cy, a, b, cortical, angle_deg)
        self.fill(cx, cy, a - cortex_mm, b - cortex_mm, cancellous, angle_deg)


@functools.lru_cache(maxsize=256)
def _disc_stamp(quarter_px: int) -> np.ndarray:
    """Boolean disc of radius quarter_px / 4 pixels, centred in a (2h+1)^2 square."""
    rp = quarter_px / 4
    h = math.ceil(rp)
    k = np.arange(-h, h + 1)
    return (k[None, :] ** 2 + k[:, None] ** 2) <= rp * rp + 0.25


def _bump(t: float, start: float, peak_from: float, peak_to: float, end: float) -> float:
    """Trapezoid profile along the normalised z axis: 0 before start / after end, 1 on the
    plateau, with smooth (cosine) ramps; used to grow and shrink organs between slices."""
    if t <= start or t >= end:
        return 0.0
    if t < peak_from:
        return 0.5 - 0.5 * math.cos(math.pi * (t - start) / (peak_from - start))
    if t <= peak_to:
        return 1.0
    return 0.5 + 0.5 * math.cos(math.pi * (t - peak_to) / (end - peak_to))


@dataclass(frozen=True)
class _Anatomy:
    """Per-series random structure (vessels, bowel loops), fixed for all slices."""

    lung_vessels: np.ndarray  # (n, 6): side, u0, v0, du, dv, radius_mm
    liver_vessels: np.ndarray  # (n, 5): u0, v0, du, dv, radius_mm
    bowel: np.ndarray  # (n, 6): x, y, radius, t_start, t_end, gas(0/1)


def _make_anatomy(rng: np.random.Generator) -> _Anatomy:
    n = 70
    r = np.sqrt(rng.uniform(0.0, 0.85, n))  # uniform over the unit disc
    phi = rng.uniform(0, 2 * np.pi, n)
    lung_vessels = np.column_stack([
        rng.integers(0, 2, n) * 2 - 1,
        r * np.cos(phi),
        r * np.sin(phi),
        rng.normal(0, 0.25, n),
        rng.normal(0, 0.25, n),
        # bigger vessels near the hilum (small r), peripheral ones thin
        0.7 + 2.6 * (1 - r) ** 2 + rng.uniform(0, 0.5, n),
    ])
    m = 14
    r = np.sqrt(rng.uniform(0.0, 0.6, m))
    phi = rng.uniform(0, 2 * np.pi, m)
    liver_vessels = np.column_stack([
        r * np.cos(phi), r * np.sin(phi),
        rng.normal(0, 0.2, m), rng.normal(0, 0.2, m),
        rng.uniform(2.0, 5.0, m),
    ])
    k = 44
    t0 = rng.uniform(0.62, 0.97, k)
    bowel = np.column_stack([
        rng.uniform(-95, 95, k),
        rng.uniform(-80, 30, k),
        rng.uniform(9, 17, k),
        t0,
        t0 + rng.uniform(0.04, 0.12, k),
        rng.random(k) < 0.35,
    ])
    return _Anatomy(lung_vessels, liver_vessels, bowel)


def _table_background(grid: _Grid) -> np.ndarray:
    """Air plus the curved patient table (carbon-fibre shell, foam core); same on every slice."""
    cv = _Canvas(grid, AIR)
    cv.fill(0, 300, 230, 170, -300)
    cv.fill(0, 300, 226, 166, -950)
    cv.fill(0, 302, 222, 160, AIR)
    return cv.img


def _noise_pool(size: int, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian field a little larger than a slice; each slice reads a shifted, flipped
    window of it, which is far cheaper than drawing 512x512 fresh normals per slice."""
    return rng.standard_normal((size + _NOISE_MARGIN, size + _NOISE_MARGIN), dtype=np.float32)



def _ct_slice_hu(grid: _Grid, t: float, z_mm: float, anat: _Anatomy, background: np.ndarray,
                 noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU image of one axial slice at normalised level t (0 = lung apex, 1 = lower abdomen)."""
    cv = _Canvas(grid, background)

    # ---- body wall: fat, muscle, cavity --------------------------------------------------
    chest = _bump(t, -1.0, -0.5, 0.42, 0.62)  # 1 in the chest, 0 in the abdomen
    a_body = 168 - 18 * (1 - chest) - 10 * _bump(t, -1, -0.5, 0.05, 0.2)
    b_body = 112 + 6 * (1 - chest)
    cy_body = 8.0
    fat_mm = 10 + 8 * (1 - chest)
    cv.fill(0, cy_body, a_body, b_body, FAT)
    cv.fill(0, cy_body, a_body - 1.5, b_body - 1.5, FAT + 6)  # skin line is a touch denser
    cv.fill(0, cy_body, a_body - fat_mm, b_body - fat_mm, MUSCLE)
    cavity_a = a_body - fat_mm - 11
    cavity_b = b_body - fat_mm - 11
    cavity_bg = SOFT if chest > 0.5 else ABDOMINAL_FAT
    cavity = cv.full_mask(0, cy_body - 4, cavity_a, cavity_b - 6)
    cv.img[cavity] = cavity_bg

    # bowel loops (organs painted later lie on top of them)
    for bx, by, br, t0, t1, gas in anat.bowel:
        s = _bump(t, t0, t0 + 0.2 * (t1 - t0), t1 - 0.2 * (t1 - t0), t1)
        if s > 0.15:
            r = br * (0.5 + 0.5 * s)
            cv.fill(bx, by, r, r, SOFT - 5, within=cavity)
            cv.fill(bx, by, r - 2.5, r - 2.5, AIR if gas else FLUID + 12, within=cavity)
    colon = _bump(t, 0.66, 0.72, 2, 3)
    if colon > 0:  # ascending (patient right) and descending colon, with gas
        for cx, cy, r in ((-92.0, 18.0, 21.0), (95.0, 28.0, 17.0)):
            cv.fill(cx, cy, r * colon, r * colon, SOFT - 5, within=cavity)
            cv.fill(cx, cy, r * colon - 2.5, r * colon - 2.5, AIR, within=cavity)

    # paraspinal muscles (erector spinae), always present
    for side in (-1, 1):
        cv.fill(side * 34, 92, 24, 17, MUSCLE, angle_deg=side * 8)

    # ---- lungs -------------------------------------------------------------------------
    lung_mask = np.zeros(cv.img.shape, dtype=bool)
    for side in (-1, 1):  # -1: patient's right (viewer's left)
        # the right hemidiaphragm sits higher (the liver pushes it up)
        end = 0.56 if side < 0 else 0.60
        s = _bump(t, -0.02, 0.22, 0.32, end)
        if s <= 0:
            continue
        lx, ly = side * (cavity_a * 0.52), -2.0
        la = cavity_a * 0.44 * (0.35 + 0.65 * s)
        lb = cavity_b * 0.88 * (0.3 + 0.7 * s)
        m = cv.full_mask(lx, ly, la, lb, angle_deg=side * -6)
        lung_mask |= m
        cv.img[m] = LUNG
        # vessels: thin tubes crossing the slice; drawn as dots clipped to the lung
        for _side, u0, v0, du, dv, rad in anat.lung_vessels[anat.lung_vessels[:, 0] == side]:
            u = u0 + du * (t - 0.3)
            v = v0 + dv * (t - 0.3)
            if u * u + v * v > 0.92:
                continue
            cv.dot(lx + u * la, ly + v * lb, rad, SOFT + 5, within=m)

    # ---- mediastinum: trachea, aorta, heart, sternum -------------------------------------
    trachea = _bump(t, -1, -0.5, 0.14, 0.2)
    if trachea > 0:
        cv.fill(0, -22, 11, 10, SOFT + 20)
        cv.fill(0, -22, 9, 8, AIR)
        cv.fill(-9, 8, 8, 7, SOFT)  # oesophagus
    elif chest > 0.5:
        for side in (-1, 1):  # main bronchi
            if t < 0.26:
                cv.fill(side * 18, -16, 7, 6, SOFT + 20)
                cv.fill(side * 18, -16, 5, 4.5, AIR)
        cv.fill(6, 28, 8, 7, SOFT)  # oesophagus behind the heart

    arch = _bump(t, 0.08, 0.12, 0.15, 0.2)
    if arch > 0:
        cv.fill(0, -5, 30 * arch, 14, BLOOD, angle_deg=20)
    if 0.14 < t < 0.33:
        cv.fill(-12, -45, 15, 15, BLOOD)  # ascending aorta
        cv.fill(14, -40, 13, 12, BLOOD + 2)  # pulmonary trunk
    # descending / abdominal aorta, beside then in front of the spine
    if t > 0.12:
        ax = 24 - 18 * _bump(t, 0.45, 0.7, 2, 3)
        ay = 46 - 12 * _bump(t, 0.45, 0.7, 2, 3)
        cv.fill(ax, ay, 12, 12, SOFT + 20)
        cv.fill(ax, ay, 10.5, 10.5, BLOOD)
    if t > 0.44:
        cv.fill(-24, 38, 13, 11, BLOOD)  # inferior vena cava

    heart = _bump(t, 0.2, 0.32, 0.42, 0.55)
    if heart > 0:
        hx, hy = 18.0, -30.0
        ha, hb = 62 * heart, 48 * heart
        cv.fill(hx, hy, ha + 4, hb + 4, FAT - 10, angle_deg=-30)  # epicardial fat
        cv.fill(hx, hy, ha, hb, MYOCARDIUM, angle_deg=-30)
        cv.fill(hx - 6, hy + 4, ha * 0.55, hb * 0.55, BLOOD + 10, angle_deg=-30)  # ventricles
        cv.fill(hx + ha * 0.35, hy - 4, ha * 0.22, hb * 0.3, BLOOD + 10, angle_deg=-30)
    sternum = _bump(t, 0.06, 0.1, 0.45, 0.5)
    if sternum > 0:
        cv.bone(0, -b_body + cy_body + fat_mm + 6, 16, 7)

    # ---- upper abdomen: liver, spleen, stomach, gallbladder, pancreas ---------------------
    liver = _bump(t, 0.40, 0.56, 0.66, 0.86)
    if liver > 0:
        lxc, lyc = -cavity_a * 0.42, 2.0
        la, lb = cavity_a * 0.55 * liver, cavity_b * 0.82 * liver  # the dome grows round
        m = cv.full_mask(lxc, lyc, la, lb, angle_deg=10)
        cv.img[m] = LIVER
        for u0, v0, du, dv, rad in anat.liver_vessels:
            cv.dot(lxc + (u0 + du * t) * la, lyc + (v0 + dv * t) * lb, rad, BLOOD - 5, within=m)
    gall = _bump(t, 0.58, 0.63, 0.67, 0.72)
    if gall > 0:
        cv.fill(-40, -48, 14 * gall, 17 * gall, FLUID)
    spleen = _bump(t, 0.48, 0.55, 0.66, 0.74)
    if spleen > 0:
        cv.fill(cavity_a * 0.62, 45, 24 * spleen, 42 * spleen, SPLEEN, angle_deg=35)
    stomach = _bump(t, 0.47, 0.54, 0.62, 0.7)
    if stomach > 0:
        sx, sy, sa, sb = 45.0, -35.0, 48 * stomach, 36 * stomach
        cv.fill(sx, sy, sa, sb, SOFT - 5, angle_deg=-20)
        cv.fill(sx, sy, sa - 4, sb - 4, FLUID + 10, angle_deg=-20)
        # gas bubble floats anteriorly (patient supine): air-fluid level
        hit = cv.ellipse(sx, sy, sa - 4, sb - 4, angle_deg=-20)
        if hit is not None:
            box, mask = hit
            anterior = (grid.y[box[0]] < sy - 0.35 * sb)[:, None]
            cv.img[box][mask & anterior] = AIR
    panc = _bump(t, 0.6, 0.64, 0.68, 0.73)
    if panc > 0:
        cv.fill(12, 12, 48 * panc, 10, SOFT, angle_deg=-15)

    # ---- kidneys, psoas, bowel -------------------------------------------------------------
    for side in (-1, 1):
        k = _bump(t, 0.6 + 0.02 * (side < 0), 0.68, 0.78, 0.88 + 0.02 * (side < 0))
        if k > 0:
            kx, ky = side * 62, 58
            cv.fill(kx, ky, 23 * k + 3, 34 * k + 3, ABDOMINAL_FAT - 10, angle_deg=side * 25)
            cv.fill(kx, ky, 23 * k, 34 * k, KIDNEY, angle_deg=side * 25)
            cv.fill(kx - side * 8 * k, ky - 4, 7 * k, 12 * k, FAT, angle_deg=side * 25)  # sinus
        psoas = _bump(t, 0.72, 0.95, 2, 3)
        if psoas > 0:
            cv.fill(side * 38, 64, 8 + 12 * psoas, 10 + 10 * psoas, MUSCLE)

    # ---- skeleton: vertebra with discs, ribs, scapulae -----------------------------------------
    level_mm = 27.0
    phase = (z_mm / level_mm) % 1.0
    vy = 66 + 6 * (1 - chest)
    if phase < 0.18:  # intervertebral disc: no cortex, no posterior elements
        cv.fill(0, vy, 21, 17, DISC)
    else:
        cv.bone(0, vy, 20, 17, cortex_mm=2.2)
        for side in (-1, 1):  # pedicles + laminae
            cv.bone(side * 13, vy + 22, 5, 9, angle_deg=side * -25, cortex_mm=1.5)
            if chest > 0.5:  # transverse processes articulate with the ribs
                cv.bone(side * 30, vy + 24, 13, 5, angle_deg=side * 25, cortex_mm=1.5)
        cv.bone(0, vy + 40, 5, 12, cortex_mm=1.5)  # spinous process
    cv.fill(0, vy + 26, 9, 8, FLUID + 2)  # spinal canal (CSF)

    ribs = _bump(t, -1, -0.5, 0.55, 0.72)
    if ribs > 0:
        ra = a_body - fat_mm - 5.5
        rb = b_body - fat_mm - 5.5
        sweep = (z_mm / 21.0) % 1.0
        for side in (-1, 1):
            for k in range(7):
                ang = math.radians(62 + 23 * (k + sweep))  # measured from posterior midline
                if ang > math.radians(205):
                    continue
                px = side * ra * math.sin(ang)
                py = cy_body + rb * math.cos(ang)
                tang = math.degrees(math.atan2(-rb * math.sin(ang), ra * math.cos(ang)))
                cv.bone(px, py, 7.5 * ribs, 4.5 * ribs, angle_deg=side * tang, cortex_mm=1.4)
    scap = _bump(t, -1, -0.5, 0.2, 0.32)
    if scap > 0:
        for side in (-1, 1):
            cv.bone(side * (a_body * 0.5), 80, 34 * scap, 4.5, angle_deg=side * 22,
                    cortex_mm=1.5)

    # ---- quantum noise ---------------------------------------------------------------------
    n = cv.img.shape[0]
    oy, ox = (int(v) for v in rng.integers(0, _NOISE_MARGIN + 1, 2))
    window = noise[oy:oy + n, ox:ox + n]
    flip = int(rng.integers(0, 4))
    if flip & 1:
        window = window[::-1]
    if flip & 2:
        window = window[:, ::-1]
    cv.img += window * np.float32(_NOISE_SIGMA_HU)
    return cv.img


def _base_dataset(
    *, sop_class: str, sop_instance: str, patient_id: str, patient_name: str,
    study_instance_uid: str, accession_number: str, study_date: str, study_time: str,
    patient_sex: str = "M", birth_date: str = "19620314",
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "HUIZHEN_PHANTOM"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession_number
    ds.ReferringPhysicianName = ""
    ds.InstitutionName = "Huizhen Demo County Hospital"
    ds.Manufacturer = "Huizhen Phantom"
    ds.ManufacturerModelName = "Synthetic Phantom 1"
    ds.SoftwareVersions = "1.0"
    ds.DeviceSerialNumber = "HZP-0001"
    ds.StationName = "PHANTOM01"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = patient_sex
    ds.PatientAge = _age(study_date, birth_date)
    ds.StudyInstanceUID = study_instance_uid
    ds.StudyID = "1"
    return ds


def _age(study_date: str, birth_date: str) -> str:
    try:
        years = int(study_date[:4]) - int(birth_date[:4])
        if study_date[4:8] < birth_date[4:8]:
            years -= 1
    except ValueError:
        return ""
    return f"{max(years, 0):03d}Y"


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["huizhen-phantom", *map(str, parts)])


def ct_phantom_series(
    *,
    slices: int = 120,
    size: int = 512,
    patient_id: str = "HZ-DEMO-0001",
    patient_name: str = "Demo^Patient",
    patient_sex: str = "M",
    birth_date: str = "19620314",
    study_instance_uid: str | None = None,
    accession_number: str = "ACC0001",
    study_date: str = "20261120",
    seed: int = 0,
    slice_thickness: float = 2.5,
    series_number: int = 2,
) -> Iterator[pydicom.Dataset]:
    """Yield one CT series, slice by slice, as Part-10-ready datasets.

    Slices come in InstanceNumber order 1..N from head to feet (ImagePositionPatient z falls
    by ``slice_thickness`` each step). The anatomy spans the whole series whatever ``slices``
    is, so short test series still go from the lung apices to the kidneys. Each dataset has a
    ``file_meta`` (Explicit VR Little Endian) and can be written with
    ``ds.save_as(path, enforce_file_format=True)``.
    """
    if slices < 1:
        raise ValueError("slices must be >= 1")
    if size < 16:
        raise ValueError("size must be >= 16")
    if study_instance_uid is None:
        study_instance_uid = _uid("study", patient_id, accession_number, study_date, seed)
    series_uid = _uid("series", study_instance_uid, series_number, seed)
    frame_uid = _uid("frame-of-reference", study_instance_uid, seed)

    spacing = _FOV_MM / size
    coords = ((np.arange(size, dtype=np.float32) - (size - 1) / 2) * spacing).astype(np.float32)
    grid = _Grid(x=coords, y=coords, spacing=spacing)
    origin = float(coords[0])
    series_rng = np.random.default_rng([seed, 0x4855495A])
    anat = _make_anatomy(series_rng)
    noise = _noise_pool(size, series_rng)
    background = _table_background(grid)
    study_time = "093000"
    z_top = 0.5 * slices * slice_thickness  # superior-most slice, table positions are arbitrary

    for i in range(slices):
        t = i / (slices - 1) if slices > 1 else 0.35
        z = round(z_top - i * slice_thickness, 4)
        hu = _ct_slice_hu(grid, t, z, anat, background, noise, np.random.default_rng([seed, i]))
        stored = np.clip(np.rint(hu), _HU_MIN, _HU_MAX).astype(np.int16) - np.int16(HU_INTERCEPT)

        sop_uid = _uid("sop", series_uid, i + 1)
        ds = _base_dataset(
            sop_class=CTImageStorage, sop_instance=sop_uid, patient_id=patient_id,
            patient_name=patient_name, study_instance_uid=study_instance_uid,
            patient_sex=patient_sex, birth_date=birth_date,
            accession_number=accession_number, study_date=study_date, study_time=study_time,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceCreationDate = study_date
        ds.InstanceCreationTime = study_time
        ds.SeriesDate = study_date
        ds.SeriesTime = "093412"
        ds.AcquisitionDate = study_date
        ds.AcquisitionTime = "093415"
        ds.ContentDate = study_date
        ds.ContentTime = "093415"
        ds.Modality = "CT"
        ds.StudyDescription = "CT Chest/Abdomen (demo)"
        ds.SeriesDescription = f"Axial {slice_thickness:g}mm STANDARD"
        ds.BodyPartExamined = "CHESTABDOMEN"
        ds.ScanOptions = "HELICAL MODE"
        ds.SliceThickness = slice_thickness
        ds.KVP = 120
        ds.DataCollectionDiameter = 500
        ds.ReconstructionDiameter = round(_FOV_MM, 1)
        ds.GantryDetectorTilt = 0
        ds.TableHeight = 160
        ds.RotationDirection = "CW"
        ds.ExposureTime = 500
        ds.XRayTubeCurrent = 220
        ds.Exposure = 110
        ds.FilterType = "BODY FILTER"
        ds.ConvolutionKernel = "STANDARD"
        ds.PatientPosition = "HFS"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [round(origin, 4), round(origin, 4), z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = z
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = size
        ds.Columns = size
        ds.PixelSpacing = [round(spacing, 6), round(spacing, 6)]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = [40, -600]
        ds.WindowWidth = [400, 1500]
        ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
        ds.RescaleIntercept = HU_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OW"
        yield ds


def cr_monochrome1_phantom(
    *,
    rows: int = 1024,
    columns: int = 880,
    patient_id: str = "HZ-DEMO-0001",
    patient_name: str = "Demo^Patient",
    patient_sex: str = "M",
    birth_date: str = "19620314",
    study_instance_uid: str | None = None,
    accession_number: str = "ACC0002",
    study_date: str = "20261120",
    seed: int = 0,
) -> pydicom.Dataset:
    """A PA chest radiograph (Computed Radiography) stored as MONOCHROME1.

    Stored values are unsigned 12-bit (in 16-bit words), proportional to log detector
    exposure: direct exposure (air) is high and displays black, bone is low and displays white,
    which is why the viewer must invert MONOCHROME1. A window (centre 2000 / width 3400) is
    included. Pixel spacing is 0.4 mm so the default 1024x880 covers a 41x35 cm cassette.
    """
    if rows < 64 or columns < 64:
        raise ValueError("rows and columns must be >= 64")
    if study_instance_uid is None:
        study_instance_uid = _uid("study", patient_id, accession_number, study_date, seed)
    series_uid = _uid("series", study_instance_uid, 1, seed)
    sop_uid = _uid("sop", series_uid, 1)
    spacing = 410.0 / rows
    rng = np.random.default_rng([seed, 0x4352])

    yy = ((np.arange(rows, dtype=np.float32) - rows / 2) * spacing)[:, None]  # mm, + = feet
    xx = ((np.arange(columns, dtype=np.float32) - columns / 2) * spacing)[None, :]  # + = left

    def chord(cx: float, cy: float, a: float, b: float) -> np.ndarray:
        """Normalised path length through an ellipsoid seen face-on (0 outside, 1 at centre)."""
        r2 = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
        return np.sqrt(np.clip(1.0 - r2, 0.0, None))

    # attenuation in arbitrary "mm of water" units
    att = np.zeros((rows, columns), dtype=np.float32)
    att += 230 * chord(0, 40, 148, 260)  # trunk
    att += 60 * chord(0, -190, 200, 50)  # shoulders
    for side in (-1, 1):  # arms at the edges
        att += 70 * chord(side * 180, -40, 24, 220)
        att += 25 * chord(side * 45, -15, 18, 28)  # hila
    att -= 150 * chord(-70, -25, 62, 130)  # right lung (viewer's left on a PA film)
    att -= 140 * chord(72, -15, 60, 138)  # left lung
    att += 80 * chord(22, 45, 70, 60)  # heart shadow
    att += 45 * chord(0, -70, 24, 120)  # mediastinum
    att += 100 * chord(-55, 178, 120, 72)  # liver under the right dome
    att += 70 * chord(65, 185, 90, 60)  # left upper abdomen
    att -= 35 * chord(62, 150, 26, 16)  # gastric bubble
    att += 50 * np.clip(1 - np.abs(xx) / 17, 0, None)  # spine
    for side in (-1, 1):
        sx = side * xx
        for k in range(10):  # posterior ribs as curved bands
            y0 = -150 + 27 * k
            curve = y0 + 0.0045 * (sx - 10) ** 2 - 0.55 * sx
            band = np.clip(1 - np.abs(yy - curve) / 6.5, 0, None)
            band *= (sx > 12) & (sx < 138 - 2 * k)
            att += 55 * band
        clav = -175 + 0.22 * (sx - 40)  # clavicles
        att += 70 * np.clip(1 - np.abs(yy - clav) / 8, 0, None) * ((sx > 8) & (sx < 140))
    att += rng.normal(0, 2.0, att.shape).astype(np.float32)

    # log exposure -> detector value; high exposure = high value (MONOCHROME1 displays dark)
    value = 3900.0 - 9.0 * att
    # collimator shutter: almost no exposure -> low values -> white band
    edge = 12
    value[:edge, :] = value[-edge:, :] = 180.0
    value[:, :edge] = value[:, -edge:] = 180.0
    pixels = np.clip(np.rint(value), 0, 4095).astype(np.uint16)

    ds = _base_dataset(
        sop_class=ComputedRadiographyImageStorage, sop_instance=sop_uid, patient_id=patient_id,
        patient_name=patient_name, study_instance_uid=study_instance_uid,
        patient_sex=patient_sex, birth_date=birth_date,
        accession_number=accession_number, study_date=study_date, study_time="101500",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SeriesDate = ds.ContentDate = study_date
    ds.SeriesTime = ds.ContentTime = "101512"
    ds.Modality = "CR"
    ds.StudyDescription = "Chest X-ray PA (demo)"
    ds.SeriesDescription = "Chest PA"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["R", "F"]
    ds.KVP = 125
    ds.ExposureTime = 8
    ds.XRayTubeCurrent = 320
    ds.DistanceSourceToDetector = 1800
    ds.ImagerPixelSpacing = [round(spacing, 6), round(spacing, 6)]
    ds.PixelSpacing = [round(spacing, 6), round(spacing, 6)]
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 2000
    ds.WindowWidth = 3400
    ds.WindowCenterWidthExplanation = "STANDARD"
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    return ds

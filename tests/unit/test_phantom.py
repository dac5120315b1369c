"""The synthetic demo images: DICOM validity, geometry, HU content, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
)

from server.demo.phantom import HU_INTERCEPT, cr_monochrome1_phantom, ct_phantom_series

SLICES = 16


@pytest.fixture(scope="module")
def series():
    return list(ct_phantom_series(slices=SLICES))


def _hu(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _roundtrip(ds):
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    raw = buf.getvalue()
    assert raw[128:132] == b"DICM"
    return dcmread(io.BytesIO(raw))


def _valid_uid(uid: str) -> bool:
    parts = uid.split(".")
    return (
        len(uid) <= 64
        and all(p.isdigit() and (p == "0" or not p.startswith("0")) for p in parts)
        and len(parts) >= 2
    )


def test_shapes_and_pixel_format(series):
    assert len(series) == SLICES
    for ds in series:
        assert (ds.Rows, ds.Columns) == (512, 512)
        arr = ds.pixel_array
        assert arr.shape == (512, 512)
        assert arr.dtype == np.int16
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 1
        assert ds.HighBit == ds.BitsStored - 1
        assert ds.SamplesPerPixel == 1 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == HU_INTERCEPT
        # stored = HU + 1024 with HU clipped to [-1024, 3071]
        assert arr.min() >= 0 and arr.max() <= 4095
        assert len(ds.PixelData) == 512 * 512 * 2


def test_uids_valid_and_shared(series):
    study = {ds.StudyInstanceUID for ds in series}
    ser = {ds.SeriesInstanceUID for ds in series}
    frame = {ds.FrameOfReferenceUID for ds in series}
    sops = [ds.SOPInstanceUID for ds in series]
    assert len(study) == len(ser) == len(frame) == 1
    assert len(set(sops)) == SLICES
    for uid in [*study, *ser, *frame, *sops]:
        assert _valid_uid(uid), uid
    assert study != ser
    for ds in series:
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_given_study_uid_is_used():
    uid = "1.2.826.0.1.3680043.8.498.12345"
    ds = next(ct_phantom_series(slices=2, size=64, study_instance_uid=uid))
    assert ds.StudyInstanceUID == uid


def test_geometry_consistent(series):
    assert [int(ds.InstanceNumber) for ds in series] == list(range(1, SLICES + 1))
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in series])
    steps = np.diff(z)
    assert np.all(steps < 0), "positions must be strictly monotonic (head to feet)"
    assert np.allclose(steps, -float(series[0].SliceThickness))
    for ds in series:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.SliceLocation) == pytest.approx(float(ds.ImagePositionPatient[2]))
        assert float(ds.PixelSpacing[0]) == pytest.approx(0.7)
        # x/y of the first pixel put the image centre on the isocentre
        x0, y0 = (float(v) for v in ds.ImagePositionPatient[:2])
        assert x0 == pytest.approx(-0.7 * 511 / 2) and y0 == pytest.approx(x0)


def test_descriptive_attributes(series):
    ds = series[0]
    assert ds.Modality == "CT"
    assert ds.StudyDescription == "CT Chest/Abdomen (demo)"
    assert ds.Manufacturer == "Huizhen Phantom"
    assert ds.PatientID == "HZ-DEMO-0001"
    assert str(ds.PatientName) == "Demo^Patient"
    assert ds.AccessionNumber == "ACC0001" and ds.StudyDate == "20261120"
    assert [float(v) for v in ds.WindowCenter] == [40, -600]
    assert [float(v) for v in ds.WindowWidth] == [400, 1500]
    assert len(ds.WindowCenterWidthExplanation) == 2
    for kw in ("SeriesDescription", "SeriesNumber", "StudyTime", "PatientSex",
               "PatientBirthDate", "BodyPartExamined", "KVP", "SliceThickness"):
        assert kw in ds, kw


def _fraction(hu: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((hu >= lo) & (hu <= hi)))


def test_tissue_classes_present(series):
    chest = _hu(series[int(SLICES * 0.3)])
    abdomen = _hu(series[int(SLICES * 0.75)])
    # air around the patient
    assert _fraction(chest, -1024, -950) > 0.2
    # lungs in the chest, not in the lower abdomen
    assert _fraction(chest, -900, -800) > 0.05
    assert _fraction(abdomen, -900, -800) < 0.01
    # subcutaneous fat, soft tissue/muscle and bone on both
    for hu in (chest, abdomen):
        assert _fraction(hu, -130, -70) > 0.02
        assert _fraction(hu, 20, 70) > 0.05
        assert _fraction(hu, 300, 1300) > 0.002
        assert _fraction(hu, 900, 1300) > 0.0005  # cortical bone
    # the liver (≈60 HU) dominates the right upper abdomen: more 55..70 HU than in the chest
    liver_level = _hu(series[int(SLICES * 0.62)])
    assert _fraction(liver_level, 52, 68) > 2 * _fraction(chest, 52, 68)
    # gentle noise: the air is not perfectly flat but stays near -1000
    corner = chest[:40, :40]
    assert 2 < float(corner.std()) < 15
    assert abs(float(corner.mean()) + 1000) < 5


def test_anatomy_changes_along_z(series):
    first, last = _hu(series[0]), _hu(series[-1])
    assert not np.array_equal(first, last)
    lung = [_fraction(_hu(ds), -900, -800) for ds in series]
    assert max(lung[: SLICES // 2]) > 0.05
    assert lung[-1] < 0.005


def test_round_trip_through_part10(series, tmp_path):
    for ds in (series[0], series[SLICES // 2]):
        back = _roundtrip(ds)
        assert back.SOPInstanceUID == ds.SOPInstanceUID
        assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        np.testing.assert_array_equal(back.pixel_array, ds.pixel_array)
    path = tmp_path / "slice.dcm"
    series[1].save_as(path, enforce_file_format=True)
    back = dcmread(path)
    np.testing.assert_array_equal(back.pixel_array, series[1].pixel_array)
    assert back.ImagePositionPatient == series[1].ImagePositionPatient


def test_deterministic_by_seed():
    a = list(ct_phantom_series(slices=3, size=128, seed=7))
    b = list(ct_phantom_series(slices=3, size=128, seed=7))
    c = list(ct_phantom_series(slices=3, size=128, seed=8))
    for x, y in zip(a, b, strict=True):
        assert x.SOPInstanceUID == y.SOPInstanceUID
        assert x.PixelData == y.PixelData
    assert a[0].SeriesInstanceUID != c[0].SeriesInstanceUID
    assert a[1].PixelData != c[1].PixelData


def test_small_size_keeps_field_of_view():
    ds = next(ct_phantom_series(slices=1, size=128))
    assert ds.pixel_array.shape == (128, 128)
    assert float(ds.PixelSpacing[0]) == pytest.approx(2.8)


def test_a_short_series_is_generated_in_full():
    # No wall-clock limit here (a shared CI machine is not a benchmark); speed is bench's job.
    out = list(ct_phantom_series(slices=30))
    assert len(out) == 30
    assert len({ds.SOPInstanceUID for ds in out}) == 30


def test_cr_monochrome1():
    ds = cr_monochrome1_phantom(rows=512, columns=440)
    assert ds.SOPClassUID == ComputedRadiographyImageStorage
    assert ds.Modality == "CR" and ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.PixelRepresentation == 0 and ds.BitsAllocated == 16 and ds.BitsStored == 12
    arr = ds.pixel_array
    assert arr.shape == (512, 440) and arr.dtype == np.uint16
    assert arr.max() <= 4095
    assert "WindowCenter" in ds and "WindowWidth" in ds
    # MONOCHROME1: lungs (high exposure) store higher values than the spine/mediastinum
    lung = float(arr[200:260, 100:140].mean())
    spine = float(arr[200:260, 215:225].mean())
    assert lung > spine + 300
    back = _roundtrip(ds)
    np.testing.assert_array_equal(back.pixel_array, arr)
    assert _valid_uid(ds.SOPInstanceUID) and _valid_uid(ds.StudyInstanceUID)

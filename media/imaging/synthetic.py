"""Synthetic DICOM instances for tests and benchmarks (no patient data involved)."""

from __future__ import annotations

import os

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

CT_ROOT = "1.2.826.0.1.3680043.10.1480."  # any syntactically valid prefix works for fakes


def ct_phantom(rows: int = 512, columns: int = 512, seed: int = 0) -> np.ndarray:
    """Hounsfield units of a crude chest phantom: air, body, lungs, spine, a dense implant."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
    y = (y - rows / 2) / (rows / 2)
    x = (x - columns / 2) / (columns / 2)
    hu = np.full((rows, columns), -1000.0)
    hu[(x / 0.85) ** 2 + (y / 0.6) ** 2 < 1] = 40.0
    for cx in (-0.4, 0.4):
        hu[((x - cx) / 0.3) ** 2 + (y / 0.4) ** 2 < 1] = -850.0
    hu[(x**2 + (y - 0.4) ** 2) < 0.01] = 1200.0
    hu[(x - 0.2) ** 2 + (y + 0.3) ** 2 < 0.0004] = 3000.0
    hu += rng.normal(0.0, 12.0, hu.shape)
    return np.clip(np.rint(hu), -1024, 3071)


def ct_dataset(
    *,
    rows: int = 512,
    columns: int = 512,
    bits_stored: int = 12,
    signed: bool = False,
    window: tuple[float, float] | None = (40.0, 400.0),
    seed: int = 0,
) -> Dataset:
    """A CT Image with 16-bit allocated pixels and Rescale Intercept -1024 (or 0 if signed)."""
    hu = ct_phantom(rows, columns, seed)
    intercept = 0.0 if signed else -1024.0
    stored = (hu - intercept).astype(np.int16 if signed else np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    sop_instance = generate_uid(CT_ROOT)
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid(CT_ROOT)
    ds.SeriesInstanceUID = generate_uid(CT_ROOT)
    ds.Modality = "CT"
    ds.PatientName = "Phantom^Chest"
    ds.PatientID = "PHANTOM"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
        ds.WindowCenterWidthExplanation = "SOFT TISSUE"
    ds.PixelData = stored.tobytes()
    return ds


def write(ds: Dataset, path: str | os.PathLike[str]) -> str:
    """Write `ds` as a Part-10 file and return the path as a string."""
    ds.save_as(path, enforce_file_format=True)
    return os.fspath(path)

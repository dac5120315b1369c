"""Grayscale pipeline maths against PS3.3 formulas and against pydicom's reference functions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    pixel_array,
)
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from media.imaging.image_model import read_image_model
from media.imaging.lut import LutCache
from media.imaging.pixel_decoder import decode_frame
from media.imaging.renderer import render_pixels
from media.imaging.window import Window

# --- independent PS3.3 reference formulas (scalar, written from the standard's text) ----------


def ref_linear(x: float, c: float, w: float) -> float:  # C.11.2.1.2.1
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 255.0
    return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0


def ref_linear_exact(x: float, c: float, w: float) -> float:  # C.11.2.1.3.2
    if x <= c - w / 2:
        return 0.0
    if x > c + w / 2:
        return 255.0
    return ((x - c) / w + 0.5) * 255.0


def ref_sigmoid(x: float, c: float, w: float) -> float:  # C.11.2.1.3.1
    exponent = -4 * (x - c) / w
    return 0.0 if exponent > 700 else 255.0 / (1 + math.exp(exponent))


REFERENCE = {"LINEAR": ref_linear, "LINEAR_EXACT": ref_linear_exact, "SIGMOID": ref_sigmoid}


def mono_file(tmp_path: Path, stored: np.ndarray, **attrs: object) -> str:
    """A minimal MONOCHROME2 secondary capture holding `stored` (int16/uint16 2-D)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def render_array(path: str, window: Window | None = None, frame: int = 1) -> tuple:
    model = read_image_model(path)
    decoded = decode_frame(path, model, frame)
    return render_pixels(decoded, model, window, LutCache())


RAMP = np.arange(-2048, 2048, dtype=np.int16).reshape(64, 64)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("window", [(40.0, 400.0), (-600.0, 1500.0), (0.0, 1.0), (10.5, 3.0)])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_windows_match_ps33(tmp_path: Path, function: str, window: tuple, photometric: str) -> None:
    path = mono_file(
        tmp_path, RAMP, RescaleSlope=2, RescaleIntercept=-100, PhotometricInterpretation=photometric
    )
    pixels, applied = render_array(path, Window(*window, function))
    assert applied == Window(*window, function)
    modality = RAMP.astype(np.float64) * 2 - 100
    expected = np.vectorize(lambda x: REFERENCE[function](x, *window))(modality)
    if photometric == "MONOCHROME1":
        expected = 255.0 - expected
    assert pixels.dtype == np.uint8 and pixels.shape == RAMP.shape
    assert np.abs(pixels.astype(float) - expected).max() <= 1.0


def test_presentation_lut_shape_inverse(tmp_path: Path) -> None:
    plain = mono_file(tmp_path, RAMP)
    inverse = mono_file(tmp_path, RAMP, PresentationLUTShape="INVERSE")
    window = Window(0, 2000)
    a, _ = render_array(plain, window)
    b, _ = render_array(inverse, window)
    assert np.array_equal(b.astype(int), 255 - a.astype(int))
    # MONOCHROME1 + INVERSE describe the same single inversion (PS3.3 C.8.11.6.1.2).
    both = mono_file(
        tmp_path, RAMP, PresentationLUTShape="INVERSE", PhotometricInterpretation="MONOCHROME1"
    )
    c, _ = render_array(both, window)
    assert np.array_equal(c, b)


def test_file_window_is_default_and_auto_window_spans_min_max(tmp_path: Path) -> None:
    with_window = mono_file(
        tmp_path, RAMP, WindowCenter=[100, 500], WindowWidth=[200, 1000], VOILUTFunction="SIGMOID"
    )
    _, applied = render_array(with_window)
    assert applied == Window(100, 200, "SIGMOID")
    assert read_image_model(with_window).transform(1).windows[1] == Window(500, 1000, "SIGMOID")
    without = mono_file(tmp_path, RAMP, RescaleSlope=0.5, RescaleIntercept=10)
    pixels, applied = render_array(without)
    assert applied is not None
    assert pixels.min() == 0 and pixels.max() == 255
    expected = (RAMP.astype(float) - RAMP.min()) / (RAMP.max() - RAMP.min()) * 255
    assert np.abs(pixels - expected).max() <= 1.0


def _lut_item(descriptor: list[int], data: list[int], *, as_ow: bool = False) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)
    if as_ow:  # LUT Data may be US or OW (bytes in the file's byte order)
        item.add_new(0x00283006, "OW", np.asarray(data, dtype="<u2").tobytes())
    else:
        item.add_new(0x00283006, "US", data)
    return item


def test_modality_lut_sequence(tmp_path: Path) -> None:
    stored = np.arange(0, 600, dtype=np.uint16).reshape(20, 30)
    table = [(i * i) // 16 for i in range(256)]  # non-linear, max 4064
    path = mono_file(tmp_path, stored, ModalityLUTSequence=[_lut_item([256, 100, 16], table)])
    window = Window(2000, 3000, "LINEAR_EXACT")
    pixels, _ = render_array(path, window)
    modality = np.array(table)[np.clip(stored.astype(int) - 100, 0, 255)]
    expected = np.vectorize(lambda x: ref_linear_exact(x, 2000, 3000))(modality)
    assert np.abs(pixels - expected).max() <= 1.0
    # And pydicom agrees on the modality values themselves.
    ds = pydicom.dcmread(path)
    assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), modality)


def test_voi_lut_sequence(tmp_path: Path) -> None:
    stored = np.arange(0, 1200, dtype=np.uint16).reshape(30, 40)
    table = [min(4095, int(4095 * (i / 511) ** 0.5)) for i in range(512)]
    path = mono_file(
        tmp_path, stored, VOILUTSequence=[_lut_item([512, 300, 12], table, as_ow=True)]
    )
    pixels, applied = render_array(path)
    assert applied is None  # the VOI LUT, not a window, was applied
    expected = np.array(table)[np.clip(stored.astype(int) - 300, 0, 511)] / 4095 * 255
    assert np.abs(pixels - expected).max() <= 1.0
    ds = pydicom.dcmread(path)
    reference = apply_voi(ds.pixel_array, ds).astype(float) / 4095 * 255
    assert np.abs(pixels - reference).max() <= 1.0
    # A requested window overrides the file's VOI LUT.
    windowed, applied = render_array(path, Window(600, 400))
    assert applied == Window(600, 400)
    assert not np.array_equal(windowed, pixels)


# --- against pydicom on its bundled images -----------------------------------------------------

MONOCHROME_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
    "JPEG2000.dcm",
    "JPGExtended.dcm",
    "JPEGLSNearLossless_08.dcm",
    "JPEGLSNearLossless_16.dcm",
    "693_J2KI.dcm",
    "J2K_pixelrep_mismatch.dcm",
    "examples_overlay.dcm",
    "image_dfl.dcm",
    "liver_1frame.dcm",
    "liver_expb_1frame.dcm",
    "rtdose.dcm",
    "rtdose_1frame.dcm",
    "rtdose_expb.dcm",
    "rtdose_rle.dcm",
]


def _pydicom_output_range(ds: Dataset) -> tuple[float, float]:
    """The y_min/y_max pydicom's apply_windowing maps into (its own convention)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, 2.0 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    bits = ds.BitsStored
    lo, hi = (
        (0, 2**bits - 1)
        if ds.PixelRepresentation == 0
        else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        lo = lo * ds.RescaleSlope + ds.RescaleIntercept
        hi = hi * ds.RescaleSlope + ds.RescaleIntercept
    return float(lo), float(hi)


def _pydicom_reference(ds: Dataset, frame: int, window: Window | None) -> np.ndarray:
    stored = pixel_array(ds, index=frame - 1)
    modality = apply_modality_lut(stored, ds).astype(np.float64)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = (
            window.center,
            window.width,
            window.function,
        )
    if "WindowCenter" in ds:
        lo, hi = _pydicom_output_range(ds)
        out = (apply_windowing(modality, ds) - lo) / (hi - lo) * 255
    else:
        span = modality.max() - modality.min()
        out = (modality - modality.min()) / (span if span else 1) * 255
        if not span:
            out = np.full(modality.shape, 127.5)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255 - out
    return out


@pytest.mark.parametrize("name", MONOCHROME_FILES)
def test_monochrome_matches_pydicom(name: str) -> None:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    for frame in sorted({1, frames}):
        ours, _ = render_array(path, frame=frame)
        reference = _pydicom_reference(pydicom.dcmread(path), frame, None)
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= 1.0, f"{name} frame {frame}"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"])
@pytest.mark.parametrize(
    "window", [Window(40, 400), Window(1000, 2000, "LINEAR_EXACT"), Window(100, 300, "SIGMOID")]
)
def test_requested_windows_match_pydicom(name: str, window: Window) -> None:
    path = get_testdata_file(name)
    ours, applied = render_array(path, window)
    assert applied == window
    reference = _pydicom_reference(pydicom.dcmread(path), 1, window)
    assert np.abs(ours - reference).max() <= 1.0


COLOR_FILES = [
    "SC_rgb_jpeg.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "SC_rgb_dcmtk_+eb+cy+s4.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm",
    "SC_rgb_rle_32bit_2frame.dcm",
    "SC_rgb_small_odd.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "SC_rgb_gdcm_KY.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "examples_ybr_color.dcm",
    "examples_rgb_color.dcm",
    "examples_jpeg2k.dcm",
    "examples_palette.dcm",
    "ExplVR_BigEnd.dcm",
]


@pytest.mark.parametrize("name", COLOR_FILES)
def test_color_matches_pydicom(name: str) -> None:
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    for frame in sorted({1, frames}):
        ours, applied = render_array(path, Window(40, 400), frame=frame)
        assert applied is None  # windows never apply to color
        reference = pixel_array(ds, index=frame - 1)
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            reference = apply_color_lut(reference, ds)
            bits = ds.RedPaletteColorLookupTableDescriptor[2]
        else:
            bits = ds.BitsStored
        reference = reference.astype(np.float64) * 255 / (2**bits - 1)
        assert ours.dtype == np.uint8 and ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= 1.0, f"{name} frame {frame}"


def test_enhanced_multiframe_functional_groups(tmp_path: Path) -> None:
    def group(**attrs: object) -> Dataset:
        item = Dataset()
        for key, value in attrs.items():
            setattr(item, key, value)
        return item

    frames = np.stack([RAMP[:32], RAMP[32:]]).astype(np.int16)
    path_ds = pydicom.dcmread(mono_file(tmp_path, frames.reshape(64, 64)))
    path_ds.Rows, path_ds.NumberOfFrames = 32, 2
    transform = group(RescaleSlope=1, RescaleIntercept=-1024)
    shared = group(PixelValueTransformationSequence=[transform])
    path_ds.SharedFunctionalGroupsSequence = [shared]
    path_ds.PerFrameFunctionalGroupsSequence = [
        group(FrameVOILUTSequence=[group(WindowCenter=-1000, WindowWidth=400)]),
        group(FrameVOILUTSequence=[group(WindowCenter=0, WindowWidth=2000)]),
    ]
    path = str(tmp_path / "enhanced.dcm")
    path_ds.save_as(path, enforce_file_format=True)
    model = read_image_model(path)
    assert model.transform(1).rescale_intercept == -1024
    for frame, (c, w) in ((1, (-1000, 400)), (2, (0, 2000))):
        pixels, applied = render_array(path, frame=frame)
        assert applied == Window(c, w)
        modality = frames[frame - 1].astype(float) - 1024
        expected = np.vectorize(lambda x, c=c, w=w: ref_linear(x, c, w))(modality)
        assert np.abs(pixels - expected).max() <= 1.0

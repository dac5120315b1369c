from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from media.imaging.errors import FrameNotFoundError
from media.imaging.image_model import read_image_model
from media.imaging.pixel_decoder import _fast_path, decode_frame, decode_stored
from media.imaging.synthetic import ct_dataset, write


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm"])
def test_fast_path_equals_pydicom(name: str) -> None:
    path = get_testdata_file(name)
    model = read_image_model(path)
    assert _fast_path(model)
    ours = decode_stored(path, model, 1)
    assert ours.dtype == pydicom.dcmread(path).pixel_array.dtype
    assert np.array_equal(ours, pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize("signed", [True, False])
def test_fast_path_masks_unused_high_bits_like_pydicom(tmp_path: Path, signed: bool) -> None:
    ds = ct_dataset(rows=32, columns=48, bits_stored=12, signed=signed, seed=3)
    rng = np.random.default_rng(1)
    dtype = np.int16 if signed else np.uint16
    stored = np.frombuffer(ds.PixelData, dtype=dtype).copy()
    if signed:
        stored = np.clip(stored, -2048, 2047)
    garbage = rng.integers(0, 16, stored.shape).astype(np.uint16) << 12
    ds.PixelData = (stored.view(np.uint16) & 0x0FFF | garbage).tobytes()
    path = write(ds, tmp_path / "ct.dcm")
    model = read_image_model(path)
    assert _fast_path(model)
    ours = decode_stored(path, model, 1)
    assert np.array_equal(ours, pydicom.dcmread(path).pixel_array)
    decoded = decode_frame(path, model, 1)
    assert decoded.index is not None
    assert np.array_equal(decoded.index.astype(int) + decoded.domain_min, ours.astype(int))


def test_multiframe_native_frames(tmp_path: Path) -> None:
    ds = ct_dataset(rows=16, columns=24, window=None)
    frames = [np.full((16, 24), 100 * (i + 1), dtype=np.uint16) + i for i in range(3)]
    ds.NumberOfFrames = 3
    ds.PixelData = b"".join(f.tobytes() for f in frames)
    path = write(ds, tmp_path / "mf.dcm")
    model = read_image_model(path)
    assert model.frames == 3
    for n, expected in enumerate(frames, start=1):
        assert np.array_equal(decode_stored(path, model, n), expected)
    for bad in (0, 4, -1):
        with pytest.raises(FrameNotFoundError):
            decode_stored(path, model, bad)


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_rle.dcm", "examples_ybr_color.dcm"])
def test_multiframe_via_pydicom(name: str) -> None:
    path = get_testdata_file(name)
    model = read_image_model(path)
    ds = pydicom.dcmread(path)
    for frame in (1, 2, model.frames):
        assert np.array_equal(decode_stored(path, model, frame), pixel_array(ds, index=frame - 1))
    with pytest.raises(FrameNotFoundError):
        decode_frame(path, model, model.frames + 1)


def test_instance_without_pixels_has_no_frames() -> None:
    path = get_testdata_file("rtplan.dcm")
    model = read_image_model(path)
    assert not model.has_pixels
    with pytest.raises(FrameNotFoundError):
        decode_frame(path, model, 1)

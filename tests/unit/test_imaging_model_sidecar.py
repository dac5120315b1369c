"""The persisted ImageModel renders exactly like the one parsed from the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from media.imaging.errors import ImagingError
from media.imaging.image_model import read_image_model
from media.imaging.lut import LutCache
from media.imaging.model_sidecar import (
    dumps,
    loads,
    read_sidecar,
    remove_sidecar,
    sidecar_path,
    write_sidecar,
)
from media.imaging.pixel_decoder import decode_frame
from media.imaging.renderer import render_pixels
from tests.unit.test_imaging_decoder import UNSUPPORTED

DATA = Path(get_testdata_file("CT_small.dcm")).parent
SAMPLES = sorted(p.name for p in DATA.glob("*.dcm"))


def _pixels(path: str, model, frame: int) -> np.ndarray:
    return render_pixels(decode_frame(path, model, frame), model, None, LutCache())[0]


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip_renders_identically(name: str) -> None:
    """No skips: a file that stops rendering fails here, unless listed (with its reason) in
    test_imaging_decoder.UNSUPPORTED, and a listed one must still fail to render."""
    path = str(DATA / name)
    if name in UNSUPPORTED:
        with pytest.raises(ImagingError):
            model = read_image_model(path)
            _pixels(path, model, 1)
        return
    model = read_image_model(path)
    again = loads(dumps(model))
    assert again is not None
    assert (again.rows, again.columns, again.frames, again.photometric_interpretation) == (
        model.rows, model.columns, model.frames, model.photometric_interpretation)
    assert [t.key for t in again.transforms] == [t.key for t in model.transforms]
    assert [t.windows for t in again.transforms] == [t.windows for t in model.transforms]
    if not model.has_pixels or model.pixel is None:
        return
    for frame in sorted({1, model.frames}):
        expected = _pixels(path, model, frame)
        assert np.array_equal(_pixels(path, again, frame), expected), (name, frame)


def test_unknown_or_broken_sidecars_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    shutil.copy(DATA / "CT_small.dcm", path)
    assert read_sidecar(path) is None
    write_sidecar(path)
    assert read_sidecar(path) is not None
    sidecar_path(path).write_bytes(b'{"format": 999}')
    assert read_sidecar(path) is None
    sidecar_path(path).write_bytes(b"not json")
    assert read_sidecar(path) is None
    remove_sidecar(path)
    assert not sidecar_path(path).exists()

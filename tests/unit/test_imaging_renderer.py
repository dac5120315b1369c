from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from media.imaging.encoder import SUPPORTED_MEDIA_TYPES, encode
from media.imaging.errors import (
    FrameNotFoundError,
    InvalidViewportError,
    UnsupportedMediaTypeError,
)
from media.imaging.image_model import read_image_model
from media.imaging.lut import LutCache
from media.imaging.pixel_decoder import decode_frame
from media.imaging.renderer import RenderedImage, Renderer, fit_viewport, render_pixels
from media.imaging.synthetic import ct_dataset, write
from media.imaging.window import Window


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def ct_path(tmp_path: Path) -> str:
    return write(ct_dataset(rows=128, columns=96), tmp_path / "ct.dcm")


def _expected(path: str, window: Window | None) -> np.ndarray:
    model = read_image_model(path)
    pixels, _ = render_pixels(decode_frame(path, model, 1), model, window, LutCache())
    return pixels


async def test_png_is_exact(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    window = Window(-600, 1500)
    result = await renderer.render(ct_path, window=window, media_type="image/png")
    assert isinstance(result, RenderedImage)
    assert result.media_type == "image/png" and result.window == window
    image = Image.open(io.BytesIO(result.content))
    assert image.mode == "L" and image.size == (96, 128)
    assert np.array_equal(np.asarray(image), _expected(ct_path, window))


@pytest.mark.parametrize(("media_type", "tolerance"), [("image/jpeg", 12), ("image/webp", 20)])
async def test_lossy_formats_decode_close(
    executor, ct_path: str, media_type: str, tolerance: int
) -> None:
    renderer = Renderer(executor)
    result = await renderer.render(ct_path, media_type=media_type, quality=95)
    image = Image.open(io.BytesIO(result.content))
    assert image.format == media_type.split("/")[1].upper()
    decoded = np.asarray(image.convert("L")).astype(int)
    expected = _expected(ct_path, None).astype(int)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).mean() < tolerance / 4
    assert result.window == Window(40, 400)  # the file's window is the default


async def test_color_renders_rgb_and_ignores_window(executor) -> None:
    renderer = Renderer(executor)
    path = get_testdata_file("SC_rgb_small_odd.dcm")
    result = await renderer.render(path, window=Window(1, 2), media_type="image/png")
    assert result.window is None
    image = Image.open(io.BytesIO(result.content))
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), pydicom.dcmread(path).pixel_array)


async def test_viewport_downscale_keeps_aspect_and_never_upscales(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    small = await renderer.render(ct_path, viewport=(48, 48), media_type="image/png")
    assert Image.open(io.BytesIO(small.content)).size == (36, 48)
    big = await renderer.render(ct_path, viewport=(1000, 1000), media_type="image/png")
    assert Image.open(io.BytesIO(big.content)).size == (96, 128)
    assert fit_viewport(512, 256, (100, 100)) == (100, 50)
    assert fit_viewport(10, 10, None) == (10, 10)


@pytest.mark.parametrize("viewport", [(0, 10), (10, -1), ("a", 3), (1, 2, 3), (10**6, 10)])
async def test_bad_viewport(executor, ct_path: str, viewport) -> None:
    with pytest.raises(InvalidViewportError):
        await Renderer(executor).render(ct_path, viewport=viewport)


async def test_bad_media_type_and_frame(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    with pytest.raises(UnsupportedMediaTypeError):
        await renderer.render(ct_path, media_type="image/tiff")
    with pytest.raises(FrameNotFoundError):
        await renderer.render(ct_path, frame=2)
    with pytest.raises(FrameNotFoundError):
        await renderer.render(ct_path, frame=0)
    with pytest.raises(UnsupportedMediaTypeError):
        encode(np.zeros((2, 2), np.uint8), "text/plain", 90)
    assert set(SUPPORTED_MEDIA_TYPES) == {"image/jpeg", "image/png", "image/gif", "image/webp"}


async def test_caches(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    first = await renderer.render(ct_path, window=Window(40, 400))
    again = await renderer.render(ct_path, window=Window(40, 400))
    assert again is first
    stats = renderer.stats()
    assert stats["image_cache_hits"] == 1 and stats["renders"] == 1 and stats["decodes"] == 1
    await renderer.render(ct_path, window=Window(400, 1800))  # new window: no new decode
    stats = renderer.stats()
    assert stats["renders"] == 2 and stats["decodes"] == 1 and stats["model_reads"] == 1


async def test_single_flight(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    results = await asyncio.gather(
        renderer.render(ct_path, window=Window(40, 400)),
        renderer.render(ct_path, window=Window(40, 400)),
        renderer.render(ct_path, window=Window(-600, 1500)),
        renderer.frame_bytes(ct_path, 1),
    )
    stats = renderer.stats()
    assert stats["decodes"] == 1 and stats["model_reads"] == 1
    assert stats["renders"] == 2  # the two identical requests shared one render
    assert results[0] is results[1]
    assert stats["inflight"] == 0


async def test_warm_single_flight_survives_a_cancelled_waiter(executor, ct_path: str) -> None:
    """Warm renders share one pool job; a viewer that goes away cancels only its own wait."""
    renderer = Renderer(executor)
    await renderer.render(ct_path, window=Window(1, 2))  # decoded and cached from here on
    window = Window(50, 350)
    leaving = asyncio.ensure_future(renderer.render(ct_path, window=window))
    staying = asyncio.ensure_future(renderer.render(ct_path, window=window))
    await asyncio.sleep(0)  # both are now waiting on the same job
    leaving.cancel()
    image = await staying
    # Wait for the cancellation to land rather than assume it already has (it may take a loop
    # iteration longer than the shared job when that job is quick).
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert leaving.cancelled()
    assert image.content.startswith(b"\xff\xd8")
    stats = renderer.stats()
    assert stats["renders"] == 2 and stats["inflight"] == 0
    assert await renderer.render(ct_path, window=window) is image  # cached by the shared job


async def test_frame_bytes(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    data = await renderer.frame_bytes(ct_path, 1)
    assert len(data) == 128 * 96 * 1 * 2
    assert data == pydicom.dcmread(ct_path).PixelData
    color = get_testdata_file("SC_rgb_rle_16bit_2frame.dcm")
    ds = pydicom.dcmread(color)
    data = await renderer.frame_bytes(color, 2)
    assert len(data) == ds.Rows * ds.Columns * 3 * 2
    assert np.array_equal(
        np.frombuffer(data, "<u2").reshape(ds.Rows, ds.Columns, 3), ds.pixel_array[1]
    )
    with pytest.raises(FrameNotFoundError):
        await renderer.frame_bytes(color, 3)


async def test_image_model_cached(executor, ct_path: str) -> None:
    renderer = Renderer(executor)
    model = await renderer.image_model(ct_path)
    assert model.rows == 128 and model.columns == 96 and model.frames == 1
    assert model.transform(1).windows == (Window(40, 400),)
    assert model.transform(1).window_explanations == ("SOFT TISSUE",)
    assert await renderer.image_model(Path(ct_path)) is model


async def test_multiframe_render(executor) -> None:
    renderer = Renderer(executor)
    path = get_testdata_file("examples_ybr_color.dcm")
    result = await renderer.render(path, frame=30, viewport=(160, 160))
    assert Image.open(io.BytesIO(result.content)).size == (160, 120)
    with pytest.raises(FrameNotFoundError):
        await renderer.render(path, frame=31)

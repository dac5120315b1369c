"""JPEG strips joined by restart markers decode to exactly the pixels of one whole encode."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media.imaging.encoder import encode_jpeg, jpeg_mcu
from media.imaging.jpeg_restart import (
    MAX_RESTART_INTERVAL,
    StripJoinError,
    join_strips,
    plan_strips,
)
from media.imaging.renderer import Renderer
from media.imaging.synthetic import ct_dataset, write
from media.imaging.window import Window

DRI = b"\xff\xdd"


def _image(shape: tuple[int, ...], seed: int = 7) -> np.ndarray:
    # Smooth gradients plus noise: realistic entropy, every block different.
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 40, shape)
    ramp = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 200
    if len(shape) == 3:
        ramp = ramp[..., None] + np.array([0, 20, 40])
    return (ramp + noise).clip(0, 255).astype(np.uint8)


def _decode(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)))


def _strip_encode(image: np.ndarray, quality: int, strips: int) -> bytes:
    plan = plan_strips(image.shape[0], image.shape[1], strips, jpeg_mcu(image, quality))
    assert plan is not None
    return join_strips([encode_jpeg(image[a:b], quality) for a, b in plan.bounds()], plan)


@pytest.mark.parametrize(
    ("shape", "quality"),
    [
        ((512, 512), 90),
        ((517, 301), 90),  # neither side a whole number of MCUs
        ((256, 320, 3), 90),  # colour 4:4:4
        ((333, 251, 3), 75),  # colour 4:2:0: 16-row MCUs
    ],
)
@pytest.mark.parametrize("strips", [2, 3, 8, 12])  # 12: RST numbers wrap past RST7
def test_joined_strips_decode_identically(shape, quality: int, strips: int) -> None:
    image = _image(shape)
    whole = encode_jpeg(image, quality)
    joined = _strip_encode(image, quality, strips)
    assert DRI in joined and DRI not in whole
    decoded = _decode(joined)
    assert decoded.shape == image.shape
    assert np.array_equal(decoded, _decode(whole))
    assert abs(len(joined) - len(whole)) < 64 * strips  # markers and padding only


def test_plan_covers_every_row_once() -> None:
    plan = plan_strips(517, 301, 2, (8, 8))
    assert plan is not None
    bounds = plan.bounds()
    assert bounds[0][0] == 0 and bounds[-1][1] == 517
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all((b - a) % 8 == 0 for a, b in bounds[:-1])
    assert plan.restart_interval == 38 * (plan.strip_rows // 8)


def test_plan_refuses_images_too_small_to_split() -> None:
    assert plan_strips(8, 512, 2, (8, 8)) is None
    assert plan_strips(512, 512, 1, (8, 8)) is None


def test_very_wide_images_use_thinner_strips() -> None:
    plan = plan_strips(512, 60000, 2, (8, 8))
    assert plan is not None
    assert plan.restart_interval <= MAX_RESTART_INTERVAL
    assert len(plan.bounds()) > 2


def test_strips_with_different_tables_are_refused() -> None:
    image = _image((64, 64))
    plan = plan_strips(64, 64, 2, (8, 8))
    assert plan is not None
    top, bottom = (image[a:b] for a, b in plan.bounds())
    with pytest.raises(StripJoinError, match="different tables"):
        join_strips([encode_jpeg(top, 90), encode_jpeg(bottom, 50)], plan)


def test_garbage_is_refused() -> None:
    plan = plan_strips(64, 64, 2, (8, 8))
    assert plan is not None
    with pytest.raises(StripJoinError):
        join_strips([b"not a jpeg", b"\xff\xd8\xff\xd9"], plan)
    with pytest.raises(StripJoinError, match="expected 2 strips"):
        join_strips([encode_jpeg(_image((64, 64)), 90)], plan)


@pytest.fixture
def big_ct(tmp_path: Path) -> str:
    return write(ct_dataset(rows=512, columns=512), tmp_path / "ct.dcm")


async def test_renderer_strips_match_a_whole_encode(big_ct: str) -> None:
    window = Window(40, 400)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        split = await Renderer(pool, jpeg_strips=2).render(big_ct, window=window)
        whole = await Renderer(pool, jpeg_strips=1).render(big_ct, window=window)
    assert DRI in split.content and DRI not in whole.content
    assert np.array_equal(_decode(split.content), _decode(whole.content))


async def test_renderer_strips_never_wait_on_a_busy_pool(big_ct: str) -> None:
    """With every pool thread taken, the job does its other strips itself (no deadlock)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        renderer = Renderer(pool, jpeg_strips=4)
        async with asyncio.timeout(20):
            results = await asyncio.gather(
                *(renderer.render(big_ct, window=Window(c, 400)) for c in range(0, 80, 10))
            )
    assert all(DRI in r.content for r in results)
    assert len({r.content for r in results}) == len(results)


async def test_renderer_keeps_small_images_whole(tmp_path: Path) -> None:
    small = write(ct_dataset(rows=128, columns=96), tmp_path / "small.dcm")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        image = await Renderer(pool, jpeg_strips=2).render(small)
    assert DRI not in image.content


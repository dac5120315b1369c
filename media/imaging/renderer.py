"""The renderer: DICOM file + frame + window + viewport -> encoded JPEG/PNG/WebP.

Everything CPU-bound (header parsing, decoding, LUT building, ``np.take``, resizing, encoding)
runs in the executor the server hands us; the event loop only does cache lookups and future
bookkeeping. Two LRUs make a consultation room cheap: decoded frames (so a slice is decoded
once, whatever windows viewers pick) and encoded images (so the same view is rendered once for
every viewer). Concurrent misses for the same key share one computation (single flight).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from media.imaging.cache import ByteLRU
from media.imaging.encoder import JPEG, encode, encode_jpeg, jpeg_mcu, normalize_media_type
from media.imaging.errors import (
    FrameNotFoundError,
    ImageTooLargeError,
    InvalidViewportError,
    InvalidWindowError,
)
from media.imaging.image_model import ImageModel, read_image_model
from media.imaging.jpeg_restart import StripJoinError, join_strips, plan_strips
from media.imaging.lut import LutCache, display_values
from media.imaging.model_sidecar import read_sidecar
from media.imaging.pixel_decoder import (
    DecodedFrame,
    check_frame,
    decode_frame,
    decode_stored,
    frame_stored_bytes,
    stored_dtype,
)
from media.imaging.window import Window

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Pillow's BILINEAR is a proper (antialiased) convolution when shrinking: much better than
#: nearest for thin structures, and ~3x faster than LANCZOS at thumbnail sizes.
RESAMPLE = Image.Resampling.BILINEAR
MAX_VIEWPORT_SIDE = 16384
#: Below this many pixels a JPEG is encoded whole: splitting would cost more than it saves.
STRIP_MIN_PIXELS = 128 * 1024
#: Lookups over more pixels than this run in row blocks (bounded temporary index copy).
TAKE_BLOCK_PIXELS = 4 * 2**20


@dataclass(frozen=True)
class RenderedImage:
    content: bytes
    media_type: str
    window: Window | None  # the window actually applied (None for color or a VOI LUT Sequence)


def fit_viewport(columns: int, rows: int, viewport: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) fitting inside `viewport`, same aspect ratio, never larger than the image."""
    if viewport is None:
        return columns, rows
    scale = min(viewport[0] / columns, viewport[1] / rows, 1.0)
    if scale >= 1.0:
        return columns, rows
    return max(1, round(columns * scale)), max(1, round(rows * scale))


def _check_viewport(viewport: tuple[int, int] | None) -> tuple[int, int] | None:
    if viewport is None:
        return None
    try:
        width, height = viewport
    except (TypeError, ValueError):
        raise InvalidViewportError("viewport must be a (width, height) pair") from None
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InvalidViewportError(f"viewport {name} {value!r} is not an integer")
        if not 1 <= value <= MAX_VIEWPORT_SIDE:
            raise InvalidViewportError(
                f"viewport {name} {value} must be between 1 and {MAX_VIEWPORT_SIDE}"
            )
    return int(width), int(height)


@dataclass(frozen=True)
class DisplayRows:
    """8-bit display rows of one frame, made on demand so strips can be made in parallel."""

    table: np.ndarray | None  # the frame's lookup table, applied to `source` rows
    source: np.ndarray  # index values for `table`, else final 8-bit pixels

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self.table is None:
            return self.source[start:stop]
        source = self.source[start:stop]
        if source.size <= TAKE_BLOCK_PIXELS:
            # mode="clip" skips numpy's per-element bounds error path; the index is in range.
            return np.take(self.table, source, mode="clip")
        # np.take first copies the whole index as 8-byte integers: 320 MB for a 40-megapixel
        # frame. In row blocks that copy stays one block's size.
        out = np.empty(source.shape + self.table.shape[1:], dtype=self.table.dtype)
        step = max(1, TAKE_BLOCK_PIXELS // max(1, source[0].size))
        for row in range(0, source.shape[0], step):
            np.take(self.table, source[row:row + step], mode="clip", out=out[row:row + step])
        return out


def display_rows(
    decoded: DecodedFrame, model: ImageModel, window: Window | None, luts: LutCache
) -> tuple[DisplayRows, Window | None]:
    """How to make the display rows of a decoded frame, and the window applied (None for
    color or a VOI LUT Sequence)."""
    if decoded.rgb is not None:
        return DisplayRows(None, decoded.rgb), None
    transform = model.transform(decoded.frame)
    if decoded.index is not None:
        table, applied = luts.get_or_build(
            transform,
            inverted=model.inverted,
            domain_min=decoded.domain_min,
            domain_max=decoded.domain_max,
            window=window,
        )
        return DisplayRows(table, decoded.index), applied
    # Too many distinct values for a table (32-bit data): run the chain over the pixels.
    assert decoded.stored is not None
    pixels, applied = display_values(
        decoded.stored, transform, inverted=model.inverted, window=window
    )
    return DisplayRows(None, pixels), applied


def render_pixels(
    decoded: DecodedFrame, model: ImageModel, window: Window | None, luts: LutCache
) -> tuple[np.ndarray, Window | None]:
    """8-bit display pixels of a decoded frame and the window applied (None for color)."""
    source, applied = display_rows(decoded, model, window, luts)
    return source.rows(0, model.rows), applied


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, RESAMPLE))


def _model_nbytes(model: ImageModel) -> int:
    total = 4096
    if model.palette is not None:
        total += model.palette.nbytes
    for transform in model.transforms:
        total += 256
        for table in (transform.modality_lut, transform.voi_lut):
            if table is not None:
                total += table.data.nbytes
    return total


class Renderer:
    """Renders stored instances; safe to share between all requests of one event loop."""

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        *,
        frame_cache_bytes: int = 512 * 2**20,
        image_cache_bytes: int = 128 * 2**20,
        jpeg_strips: int = 1,
        max_frame_pixels: int = 40_000_000,
    ) -> None:
        self._executor = executor
        # Files stored before the ingest limit (or under a higher one) are refused here, before
        # a decode could allocate for them.
        self._max_frame_pixels = max_frame_pixels
        self._strips = jpeg_strips  # >1: JPEGs are encoded as that many strips in parallel
        self._models: ByteLRU[ImageModel] = ByteLRU(32 * 2**20, _model_nbytes)
        self._frames: ByteLRU[Any] = ByteLRU(frame_cache_bytes, _frame_nbytes)
        self._images: ByteLRU[RenderedImage] = ByteLRU(
            image_cache_bytes, lambda image: len(image.content) + 256
        )
        self._luts = LutCache()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}
        self._cold: dict[str, asyncio.Future[Any]] = {}  # path -> its first-view job
        self._counts = {"model_reads": 0, "decodes": 0, "renders": 0}
        self._counts_lock = threading.Lock()  # bumped from executor threads

    # --- public API ---------------------------------------------------------------------------

    async def image_model(self, path: str | os.PathLike[str]) -> ImageModel:
        """Header/rendering parameters of `path`, read once and cached."""
        key = os.fspath(path)
        model = self._models.get(key)
        if model is not None:
            return model
        pending = self._cold.get(key)
        if pending is not None:
            await self._after_cold(pending)
            model = self._models.get(key)
            if model is not None:
                return model
        return await self._single_flight(("model", key), self._in_executor(self._read_model, key))

    async def render(
        self,
        path: str | os.PathLike[str],
        frame: int = 1,
        *,
        window: Window | None = None,
        viewport: tuple[int, int] | None = None,
        media_type: str = "image/jpeg",
        quality: int = 90,
    ) -> RenderedImage:
        media_type = normalize_media_type(media_type)
        viewport = _check_viewport(viewport)
        if window is not None and not isinstance(window, Window):
            raise InvalidWindowError("window must be a Window (use Window.parse for text)")
        quality = min(100, max(1, int(quality)))
        key_path = os.fspath(path)
        if self._models.get(key_path) is None:
            pending = self._cold.get(key_path)
            if pending is None:
                # First view of this file: header, decode and render in one trip to the pool
                # (three hops cost more than the header parse itself on a small machine).
                job = asyncio.ensure_future(self._in_executor(
                    self._render_cold, key_path, frame, window, viewport, media_type, quality
                ))
                self._cold[key_path] = job
                job.add_done_callback(lambda f, k=key_path: self._forget_cold(k, f))
                return await asyncio.shield(job)
            await self._after_cold(pending)  # then everything it cached serves this request
        model = await self.image_model(key_path)
        check_frame(model, frame)
        self._check_size(model)
        if not model.is_monochrome:
            window = None  # windows do not apply to color; share one cache entry
        key = (key_path, frame, window, viewport, media_type, quality)
        cached = self._images.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(("image", key))
        if pending is not None:
            return await asyncio.shield(pending)
        decoded = self._frames.get((key_path, frame))
        if decoded is None:
            work: Awaitable[RenderedImage] = self._render_uncached(
                key, model, window, viewport, media_type, quality
            )
        else:
            # The scrolling case: straight to the pool, no intermediate task (each loop
            # iteration saved is latency on every frame).
            work = asyncio.get_running_loop().run_in_executor(
                self._executor, self._render_job, key, model, decoded, window, viewport,
                media_type, quality,
            )
        return await self._single_flight(("image", key), work)

    async def frame_bytes(self, path: str | os.PathLike[str], frame: int) -> bytes:
        """Stored values of `frame` as native little-endian bytes (PS3.18 octet-stream frame).

        Color data comes back as decoded samples, interleaved (pixel-by-pixel), with any
        YBR_FULL_422 subsampling removed; the length is always rows*cols*samples*bytes.
        """
        key_path = os.fspath(path)
        model = await self.image_model(key_path)
        check_frame(model, frame)
        self._check_size(model)
        if model.is_monochrome:
            decoded = await self._decoded(key_path, model, frame)
            return await self._in_executor(frame_stored_bytes, decoded, model)
        key = (key_path, frame, "stored")
        cached = self._frames.get(key)
        if cached is not None:
            return cached
        return await self._single_flight(
            ("frame", key), self._in_executor(self._read_stored_bytes, key, model)
        )

    async def decoded_frame(self, path: str | os.PathLike[str], frame: int
                            ) -> tuple[ImageModel, DecodedFrame]:
        """The model and the decoded `frame` (the cache every render uses): measurements read
        the stored values a room has already decoded instead of decoding them again."""
        key_path = os.fspath(path)
        model = await self.image_model(key_path)
        check_frame(model, frame)
        self._check_size(model)
        return model, await self._decoded(key_path, model, frame)

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            out: dict[str, int] = dict(self._counts)
        for name, cache in (
            ("model", self._models),
            ("frame", self._frames),
            ("image", self._images),
        ):
            for stat, value in cache.stats().items():
                out[f"{name}_cache_{stat}"] = value
        out["lut_cache_hits"] = self._luts.hits
        out["lut_cache_misses"] = self._luts.misses
        out["inflight"] = len(self._inflight)
        return out

    # --- internals ----------------------------------------------------------------------------

    def _forget_cold(self, key_path: str, job: asyncio.Future[Any]) -> None:
        if self._cold.get(key_path) is job:
            del self._cold[key_path]

    @staticmethod
    async def _after_cold(job: asyncio.Future[Any]) -> None:
        """Wait for another request's first view of a file; its errors are its own (this
        request meets them again on its own path if they concern it too)."""
        with contextlib.suppress(Exception):
            await asyncio.shield(job)

    def _check_size(self, model: ImageModel) -> None:
        if model.rows * model.columns > self._max_frame_pixels:
            raise ImageTooLargeError(
                f"a frame of {model.rows}x{model.columns} pixels is over the limit of "
                f"{self._max_frame_pixels} pixels per frame (HUIZHEN_MAX_FRAME_PIXELS)"
            )

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    async def _in_executor(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _single_flight(self, key: Hashable, work: Awaitable[T]) -> T:
        """Await the in-flight computation for `key`, or start `work` as it."""
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(work)
            self._inflight[key] = future
            future.add_done_callback(lambda _f, key=key: self._inflight.pop(key, None))
        elif asyncio.iscoroutine(work):
            work.close()  # not needed: somebody else is already computing it
        # shield: one impatient client disconnecting must not cancel the others' result.
        return await asyncio.shield(future)

    def _read_model(self, key: str) -> ImageModel:
        # The model kept beside the file at ingest spares the header parse; else parse.
        model = read_sidecar(key) or read_image_model(key)
        self._models.put(key, model)
        self._count("model_reads")
        return model

    async def _decoded(self, key_path: str, model: ImageModel, frame: int) -> DecodedFrame:
        key = (key_path, frame)
        decoded = self._frames.get(key)
        if decoded is not None:
            return decoded
        return await self._single_flight(
            ("frame", key), self._in_executor(self._decode, key, model)
        )

    def _decode(self, key: tuple[str, int], model: ImageModel) -> DecodedFrame:
        decoded = decode_frame(key[0], model, key[1])
        self._frames.put(key, decoded)
        self._count("decodes")
        return decoded

    def _read_stored_bytes(self, key: tuple[str, int, str], model: ImageModel) -> bytes:
        arr = decode_stored(key[0], model, key[1], raw=True)
        data = np.ascontiguousarray(arr, dtype=stored_dtype(model)).tobytes()
        self._frames.put(key, data)
        return data

    async def _render_uncached(
        self,
        key: tuple[Any, ...],
        model: ImageModel,
        window: Window | None,
        viewport: tuple[int, int] | None,
        media_type: str,
        quality: int,
    ) -> RenderedImage:
        decoded = await self._decoded(key[0], model, key[1])
        return await self._in_executor(
            self._render_job, key, model, decoded, window, viewport, media_type, quality
        )

    def _render_cold(
        self,
        key_path: str,
        frame: int,
        window: Window | None,
        viewport: tuple[int, int] | None,
        media_type: str,
        quality: int,
    ) -> RenderedImage:
        """The whole pipeline in one executor call, filling the same caches as the warm path."""
        model = self._models.get(key_path)
        if model is None:
            model = self._read_model(key_path)
        check_frame(model, frame)
        self._check_size(model)
        if not model.is_monochrome:
            window = None
        key = (key_path, frame, window, viewport, media_type, quality)
        cached = self._images.get(key)
        if cached is not None:
            return cached
        decoded = self._frames.get((key_path, frame))
        if decoded is None:
            decoded = self._decode((key_path, frame), model)
        return self._render_job(key, model, decoded, window, viewport, media_type, quality)

    def _render_job(
        self,
        key: tuple[Any, ...],
        model: ImageModel,
        decoded: DecodedFrame,
        window: Window | None,
        viewport: tuple[int, int] | None,
        media_type: str,
        quality: int,
    ) -> RenderedImage:
        size = fit_viewport(model.columns, model.rows, viewport)
        made = None
        if media_type == JPEG and size == (model.columns, model.rows):
            made = self._jpeg_in_strips(decoded, model, window, quality)
        if made is not None:
            content, applied = made
        else:
            source, applied = display_rows(decoded, model, window, self._luts)
            pixels = _resize(source.rows(0, model.rows), size)
            content = encode(pixels, media_type, quality)
        result = RenderedImage(content, media_type, applied)
        self._images.put(key, result)
        self._count("renders")
        return result


    def _jpeg_in_strips(
        self, decoded: DecodedFrame, model: ImageModel, window: Window | None, quality: int
    ) -> tuple[bytes, Window | None] | None:
        """The frame's JPEG made as strips on idle pool threads (and the window applied), or
        None when not worth it.

        Runs on a pool thread. Strips are offered to the pool first, so a helper thread wakes
        while this one builds the lookup table; any strip no thread has started by the time
        this one is done with its own is taken back and done here, so a busy pool never waits
        on itself and a quiet one renders a slice in about half the time.
        """
        if self._strips < 2 or model.rows * model.columns < STRIP_MIN_PIXELS:
            return None
        shape_of = next(a for a in (decoded.rgb, decoded.index, decoded.stored) if a is not None)
        plan = plan_strips(model.rows, model.columns, self._strips, jpeg_mcu(shape_of, quality))
        if plan is None:
            return None
        ready: concurrent.futures.Future[DisplayRows] = concurrent.futures.Future()

        def strip(bounds: tuple[int, int]) -> bytes:
            return encode_jpeg(ready.result().rows(*bounds), quality)

        bounds = plan.bounds()
        offered: list[concurrent.futures.Future[bytes]] = []
        with contextlib.suppress(RuntimeError):  # executor shutting down: the rest is done here
            for b in bounds[1:]:
                offered.append(self._executor.submit(strip, b))
        try:
            source, applied = display_rows(decoded, model, window, self._luts)
        except BaseException as exc:
            for future in offered:
                future.cancel()
            ready.set_exception(exc)  # helpers already running stop at once
            raise
        ready.set_result(source)
        strips = [strip(bounds[0])]
        for b, future in zip(bounds[1:], offered, strict=False):
            strips.append(strip(b) if future.cancel() else future.result())
        for b in bounds[1 + len(offered):]:
            strips.append(strip(b))
        try:
            return join_strips(strips, plan), applied
        except StripJoinError:  # an encoder setting we did not expect: encode it whole
            log.warning("jpeg_strips_not_joinable rows=%d columns=%d", model.rows, model.columns)
            return encode_jpeg(source.rows(0, model.rows), quality), applied


def _frame_nbytes(value: DecodedFrame | bytes) -> int:
    return len(value) if isinstance(value, bytes) else value.nbytes


def render_file(
    path: str | os.PathLike[str],
    frame: int = 1,
    *,
    window: Window | None = None,
    viewport: tuple[int, int] | None = None,
    media_type: str = "image/jpeg",
    quality: int = 90,
) -> RenderedImage:
    """Synchronous, uncached render (tools, benchmarks, tests): the same steps as `Renderer`."""
    media_type = normalize_media_type(media_type)
    viewport = _check_viewport(viewport)
    model = read_image_model(path)
    check_frame(model, frame)
    decoded = decode_frame(path, model, frame)
    pixels, applied = render_pixels(decoded, model, window, LutCache(max_entries=1))
    pixels = _resize(pixels, fit_viewport(model.columns, model.rows, viewport))
    return RenderedImage(encode(pixels, media_type, quality), media_type, applied)


__all__ = ["FrameNotFoundError", "RenderedImage", "Renderer", "fit_viewport", "render_file"]

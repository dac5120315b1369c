"""Synthetic media sources for tests, the benchmark and demo kiosks without a camera."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

VIDEO_CLOCK = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)


def _pattern(width: int, height: int, count: int) -> list[np.ndarray]:
    """`count` distinct RGB frames (a moving bar over a gradient with mild noise) so the
    encoder produces realistic delta frames, computed once."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    frames = []
    for i in range(count):
        img = np.empty((height, width, 3), dtype=np.uint8)
        img[..., 0] = (x + i * 4) % 256
        img[..., 1] = (y + i * 2) % 256
        img[..., 2] = 128
        bar = (i * width // count) % width
        img[:, bar : bar + max(4, width // 16)] = 255
        noise = rng.integers(0, 12, size=(height, width, 1), dtype=np.uint8)
        frames.append(img + noise)
    return frames


class _Paced:
    """Real-time pacing at `fps`, measured from the first frame."""

    def __init__(self, fps: int) -> None:
        self.fps = fps
        self.index = 0
        self._start: float | None = None

    async def next(self) -> int:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self.index += 1
            wait = self._start + self.index / self.fps - now
            if wait > 0:
                await asyncio.sleep(wait)
        return self.index


class SyntheticVideoTrack(MediaStreamTrack):
    """Raw frames for aiortc to encode (VP8 with aiortc's very long GOP)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, distinct: int = 30):
        super().__init__()
        self._frames = [
            av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format="yuv420p")
            for a in _pattern(width, height, distinct)
        ]
        self._pace = _Paced(fps)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        i = await self._pace.next()
        src = self._frames[i % len(self._frames)]
        frame = av.VideoFrame.from_ndarray(src.to_ndarray(), format="yuv420p")
        frame.pts = i * (VIDEO_CLOCK // self._pace.fps)
        frame.time_base = VIDEO_TIME_BASE
        return frame


def encode_vp8_clip(
    width: int = 640, height: int = 480, fps: int = 30, seconds: float = 3.0,
    bitrate: int = 1_000_000, gop: int = 60,
) -> list[tuple[bytes, bool]]:
    """Encode a clip once: [(vp8 frame, is_keyframe)], keyframes every `gop` frames."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, fps)
    codec.gop_size = gop
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    count = int(seconds * fps)
    out: list[tuple[bytes, bool]] = []
    for i, arr in enumerate(_pattern(width, height, count)):
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        if i % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in codec.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
    for packet in codec.encode(None):
        out.append((bytes(packet), bool(packet.is_keyframe)))
    return out


class PreEncodedVideoTrack(MediaStreamTrack):
    """Loops a pre-encoded VP8 clip as `av.Packet`s (aiortc only packetizes them).

    `keyframe_requested()` (wire it to the sender's PLI hook) jumps to the next keyframe of the
    clip, so the stream stays decodable while answering PLIs without any encoder."""

    kind = "video"

    def __init__(self, clip: list[tuple[bytes, bool]], fps: int = 30) -> None:
        super().__init__()
        if not clip or not clip[0][1]:
            raise ValueError("clip must start with a keyframe")
        self._clip = clip
        self._keys = [i for i, (_, key) in enumerate(clip) if key]
        self._pace = _Paced(fps)
        self._pos = 0
        self._jump = False
        self.keyframes_sent = 0

    def keyframe_requested(self) -> None:
        self._jump = True

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        i = await self._pace.next()
        if self._jump:
            self._jump = False
            self._pos = next((k for k in self._keys if k >= self._pos), 0)
        data, key = self._clip[self._pos]
        self._pos = (self._pos + 1) % len(self._clip)
        self.keyframes_sent += key
        packet = av.Packet(data)
        packet.pts = i * (VIDEO_CLOCK // self._pace.fps)
        packet.time_base = VIDEO_TIME_BASE
        return packet

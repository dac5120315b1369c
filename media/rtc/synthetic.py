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
    """`count` distinct RGB frames computed once: a static textured background (gradient plus
    fixed sensor-like grain) with a moving bar and a "patient" block that drifts and changes
    shade, so delta frames carry real motion like a consult camera, not full-frame change."""
    rng = np.random.default_rng(7)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    background = np.empty((height, width, 3), dtype=np.uint8)
    background[..., 0] = x.astype(np.uint8)
    background[..., 1] = np.broadcast_to(y, (height, width)).astype(np.uint8)
    background[..., 2] = 128
    background += rng.integers(0, 12, size=(height, width, 1), dtype=np.uint8)
    bar_w = max(4, width // 16)
    block_w, block_h = width // 3, height // 2
    frames = []
    for i in range(count):
        img = background.copy()
        bar = (i * width // max(1, count)) % (width - bar_w)
        img[:, bar : bar + bar_w] = 255
        bx = width // 3 + int(width / 12 * np.sin(i / 7))
        by = height // 4 + int(height / 16 * np.cos(i / 5))
        patch = background[by : by + block_h, bx : bx + block_w] // 2 + (i * 3) % 128
        img[by : by + block_h, bx : bx + block_w] = patch
        frames.append(img)
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
    codec.thread_count = 2
    codec.qmin, codec.qmax = 2, 56
    # Constant bitrate like a live WebRTC encoder (the clip stands in for a kiosk camera).
    codec.options = {
        "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
        "minrate": str(bitrate), "maxrate": str(bitrate), "bufsize": str(bitrate),
        "undershoot-pct": "100", "overshoot-pct": "15", "static-thresh": "1",
    }
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


AUDIO_CLOCK = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_CLOCK)


def encode_opus_clip(seconds: float = 1.0, tone_hz: float = 440.0) -> list[bytes]:
    """Encode a tone once as 20 ms Opus packets (a non-silent signal, so packets have a
    realistic size)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_CLOCK
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = AUDIO_TIME_BASE
    samples = 960
    out: list[bytes] = []
    for i in range(int(seconds * 50)):
        t = (np.arange(samples) + i * samples) / AUDIO_CLOCK
        mono = (np.sin(2 * np.pi * tone_hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2)[None, :], format="s16", layout="stereo"
        )
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = i * samples
        frame.time_base = AUDIO_TIME_BASE
        out.extend(bytes(p) for p in codec.encode(frame))
    out.extend(bytes(p) for p in codec.encode(None))
    return out


class PreEncodedAudioTrack(MediaStreamTrack):
    """Loops pre-encoded 20 ms Opus packets in real time."""

    kind = "audio"

    def __init__(self, clip: list[bytes]) -> None:
        super().__init__()
        if not clip:
            raise ValueError("empty clip")
        self._clip = clip
        self._pace = _Paced(50)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        i = await self._pace.next()
        packet = av.Packet(self._clip[i % len(self._clip)])
        packet.pts = i * 960
        packet.time_base = AUDIO_TIME_BASE
        return packet

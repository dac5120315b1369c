"""A scripted aiortc participant speaking the SFU's protocol (tests, bench, headless kiosks).

Protocol, identical for browsers: on each offer → setRemoteDescription → (first offer only)
addTrack(camera), addTrack(mic) → createAnswer → setLocalDescription → send the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError

from media.rtc import aiortc_internals as internals
from media.rtc.ice import IceServer, rtc_configuration

logger = logging.getLogger(__name__)


@dataclass
class RemoteTrackStats:
    """What one client received from one publisher's track."""

    publisher_id: str
    kind: str
    mid: str
    decoding: bool = True
    encoded_frames: int = 0
    encoded_bytes: int = 0
    decoded_frames: int = 0
    first_frame_at: float | None = None  # time.monotonic() of the first frame (decoded if decoding)
    last_frame_at: float | None = None
    width: int | None = None
    height: int | None = None
    ended: bool = False
    stamps: list[float] = field(default_factory=list)  # monotonic times of counted frames

    def fps(self, since: float, until: float) -> float:
        n = sum(1 for t in self.stamps if since <= t <= until)
        return n / (until - since) if until > since else 0.0


class SfuClientPeer:
    """One participant. `decode=False` counts encoded frames off the receiver without decoding
    (light load generator); `decode_video_limit` caps how many remote video tracks are decoded
    (the rest are counted encoded); `light_receive` counts the undecoded tracks per RTP packet
    (frames = marker bits) without aiortc's jitter buffer/NACK/REMB; `accept_video_codecs`
    strips other video codecs from the SFU's offers (a client without VP8, say)."""

    def __init__(
        self,
        participant_id: str,
        *,
        ice_servers: list[IceServer] | None = None,
        host_addresses: list[str] | None = None,
        video: MediaStreamTrack | None = None,
        audio: MediaStreamTrack | None = None,
        decode: bool = True,
        decode_video_limit: int | None = None,
        light_receive: bool = False,
        accept_video_codecs: list[str] | None = None,
        keep_stamps: bool = True,
    ) -> None:
        self.participant_id = participant_id
        self.host_addresses = host_addresses
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers or []))
        self.video = video
        self.audio = audio
        self.decode = decode
        self.decode_video_limit = decode_video_limit
        self.light_receive = light_receive
        self.accept_video_codecs = (
            [c.lower() for c in accept_video_codecs] if accept_video_codecs else None
        )
        self.keep_stamps = keep_stamps
        self.remote: dict[str, RemoteTrackStats] = {}  # by mid
        self.offers = 0
        self.created_at = time.monotonic()
        self._tracks_added = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    # -- signaling --------------------------------------------------------------------------

    async def handle_offer(self, offer_sdp: str) -> str:
        self.offers += 1
        description = aiortc_sdp.SessionDescription.parse(offer_sdp)
        streams: dict[str, str] = {}
        for media in description.media:
            if media.msid and media.direction == "sendonly":
                streams[media.rtp.muxId] = media.msid.split()[0]
        if self.accept_video_codecs is not None:
            offer_sdp = self._restrict_codecs(description)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        if not self._tracks_added:
            self._tracks_added = True
            for track in (self.video, self.audio):
                if track is not None:
                    self.pc.addTrack(track)
        for t in self.pc.getTransceivers():
            if t.mid in streams and t.mid not in self.remote and t.receiver.track is not None:
                self._watch(t, streams[t.mid])
        answer = await self.pc.createAnswer()
        with internals.gather_on(self.host_addresses):
            await self.pc.setLocalDescription(answer)
        self._changed.set()
        return self.pc.localDescription.sdp

    def _restrict_codecs(self, description: aiortc_sdp.SessionDescription) -> str:
        allowed = self.accept_video_codecs or []
        for media in description.media:
            if media.kind != "video":
                continue
            keep = [c for c in media.rtp.codecs if c.name.lower() in allowed]
            kept_pts = {c.payloadType for c in keep}
            media.rtp.codecs = [
                c for c in media.rtp.codecs
                if c.payloadType in kept_pts
                or (c.name.lower() == "rtx" and c.parameters.get("apt") in kept_pts)
            ]
            media.fmt = [c.payloadType for c in media.rtp.codecs]
        return str(description)

    # -- media ------------------------------------------------------------------------------

    def _watch(self, t: RTCRtpTransceiver, publisher_id: str) -> None:
        decoding = self.decode
        if decoding and t.kind == "video" and self.decode_video_limit is not None:
            decoded = sum(1 for s in self.remote.values() if s.kind == "video" and s.decoding)
            decoding = decoded < self.decode_video_limit
        stats = RemoteTrackStats(
            publisher_id=publisher_id, kind=t.kind, mid=t.mid or "", decoding=decoding
        )
        self.remote[stats.mid] = stats

        def on_frame(codec: Any, frame: Any) -> None:
            stats.encoded_frames += 1
            stats.encoded_bytes += len(frame.data)
            if not decoding:
                self._mark(stats)

        def on_packet(packet: Any) -> None:
            stats.encoded_bytes += len(packet.payload)
            if packet.marker or t.kind == "audio":
                stats.encoded_frames += 1
                self._mark(stats)

        tap = internals.install_frame_tap(t.receiver, on_frame)
        tap.decode = decoding
        if self.light_receive and not decoding:
            internals.install_packet_counter(t.receiver, on_packet)
        task = asyncio.ensure_future(self._consume(t.receiver.track, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _mark(self, stats: RemoteTrackStats) -> None:
        now = time.monotonic()
        if stats.first_frame_at is None:
            stats.first_frame_at = now
            self._changed.set()
        stats.last_frame_at = now
        if self.keep_stamps:
            stats.stamps.append(now)

    async def _consume(self, track: MediaStreamTrack, stats: RemoteTrackStats) -> None:
        try:
            while True:
                frame = await track.recv()
                stats.decoded_frames += 1
                if stats.kind == "video":
                    stats.width, stats.height = frame.width, frame.height
                self._mark(stats)
        except (MediaStreamError, asyncio.CancelledError):
            pass
        stats.ended = True
        self._changed.set()

    # -- queries ----------------------------------------------------------------------------

    def from_publisher(self, publisher_id: str, kind: str) -> list[RemoteTrackStats]:
        return [
            s for s in self.remote.values() if s.publisher_id == publisher_id and s.kind == kind
        ]

    def live(self, publisher_id: str, kind: str) -> RemoteTrackStats | None:
        """The newest non-ended track from that publisher."""
        tracks = [s for s in self.from_publisher(publisher_id, kind) if not s.ended]
        return tracks[-1] if tracks else None

    def frames(self, publisher_id: str, kind: str) -> int:
        return sum(
            s.decoded_frames if s.decoding else s.encoded_frames
            for s in self.from_publisher(publisher_id, kind)
        )

    async def wait_for(self, predicate: Callable[[], bool], limit_s: float = 5.0) -> None:
        """Wait (bounded) until predicate() is true; re-checked on changes and every 50 ms."""
        deadline = time.monotonic() + limit_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.participant_id}: condition not met in {limit_s}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(0.05, remaining))

    async def close(self) -> None:
        await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""Encoded-frame forwarding: one `Publication` per published track, one `ForwardTrack` per
subscriber of it. No decoding or encoding happens here; frames are handed from the publisher's
receiver (via the frame tap) to each subscriber's RTCRtpSender as `av.Packet`s, which aiortc
only re-packetizes (`encoder.pack()`).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.codecs import get_encoder
from aiortc.contrib.media import MediaRelay
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.rtc import aiortc_internals as internals

logger = logging.getLogger(__name__)

# A keyframe costs 5-10x a delta frame; on a 4G uplink a PLI storm would starve the publisher,
# so requests from all subscribers of one publication are merged to at most one per interval.
KEYFRAME_MIN_INTERVAL_S = 0.5
# ~2 s of 30 fps video. A subscriber whose sender falls this far behind is resynchronised with a
# keyframe rather than allowed to grow memory without bound.
QUEUE_MAX_FRAMES = 60
# Nominal spacing used to keep timestamps monotonic when the source changes (reconnect).
_STEP = {"video": 3000, "audio": 960}
_TIME_BASE = {"video": fractions.Fraction(1, 90000), "audio": fractions.Fraction(1, 48000)}

_SWITCH = object()  # wakes a pending recv() after switching to the transcoding fallback


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded (depayloaded) frame can start decoding on its own."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        # RFC 6386 §9.1: bit 0 of the frame tag is 0 for key frames.
        return bool(data) and (data[0] & 0x01) == 0
    if mime == "video/h264":
        # aiortc depayloads to Annex B; an IDR slice (5) or SPS (7) starts a decodable sequence.
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            if data[pos + 3] & 0x1F in (5, 7):
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return False
    return not mime.startswith("video/")


@dataclass
class PublicationStats:
    frames_in: int = 0
    bytes_in: int = 0
    keyframes_in: int = 0
    keyframe_requests_sent: int = 0
    keyframe_requests_merged: int = 0


@dataclass
class _Source:
    owner: object  # the publisher's participant object, to ignore stale frames after reconnect
    receiver: RTCRtpReceiver
    tap: internals.FrameTap
    generation: int


@dataclass
class Publication:
    """A track a participant publishes: the current source receiver plus its subscribers.

    Survives the publisher's reconnect (its new receiver becomes the source), so subscribers
    keep their transceivers and need no renegotiation."""

    uid: int
    publisher_id: str
    kind: str
    spawn: Callable[[Any], asyncio.Task[Any]]
    relay: MediaRelay
    mime_type: str | None = None
    source: _Source | None = None
    tracks: set[ForwardTrack] = field(default_factory=set)
    stats: PublicationStats = field(default_factory=PublicationStats)
    _generation: int = 0
    _last_request: float = -1e9
    _deferred: asyncio.TimerHandle | None = None
    _packer: internals.FramePacker | None = None
    closed: bool = False

    def bind(self, owner: object, receiver: RTCRtpReceiver, tap: internals.FrameTap) -> bool:
        """Make `receiver` the source; returns False if it already is."""
        if self.source is not None and self.source.receiver is receiver:
            return False
        self._generation += 1
        self.source = _Source(owner, receiver, tap, self._generation)
        tap.decode = any(t.transcoding for t in self.tracks)
        for track in list(self.tracks):
            track.source_changed()
        self.request_keyframe()
        return True

    def unbind(self, owner: object) -> None:
        if self.source is not None and self.source.owner is owner:
            self.source = None

    def on_frame(self, owner: object, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        source = self.source
        if source is None or source.owner is not owner or self.closed:
            return
        data = frame.data
        self.mime_type = codec.mimeType
        self.stats.frames_in += 1
        self.stats.bytes_in += len(data)
        key = is_keyframe(codec.mimeType, data)
        if key and self.kind == "video":
            self.stats.keyframes_in += 1
        payloads: list[bytes] | None = None
        failed: list[ForwardTrack] = []
        for track in self.tracks:
            if track.direct and payloads is None:
                payloads = self._packed(codec, data, frame.timestamp)
            try:
                track.push(codec.mimeType, data, frame.timestamp, key, source.generation,
                           payloads)
            except Exception:  # one subscriber's failure must not starve the others
                logger.exception("forward_push_failed publisher=%s subscriber=%s kind=%s",
                                 self.publisher_id, track.subscriber_id, self.kind)
                failed.append(track)
        for track in failed:
            track.stop()

    def _packed(self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> list[bytes]:
        if self._packer is None or self._packer.mime_type != codec.mimeType:
            self._packer = internals.FramePacker(codec)
        packet = av.Packet(data)
        packet.pts = timestamp
        packet.time_base = _TIME_BASE[self.kind]
        return self._packer.pack(packet)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (PLI), merged to ≤ 1 per KEYFRAME_MIN_INTERVAL_S.

        A request inside the interval is deferred to its end rather than dropped: the keyframe
        that satisfied the earlier request may already have gone out before this subscriber
        started waiting."""
        if self.kind != "video" or self.closed:
            return
        now = time.monotonic()
        wait = self._last_request + KEYFRAME_MIN_INTERVAL_S - now
        if wait > 0:
            self.stats.keyframe_requests_merged += 1
            if self._deferred is None:
                loop = asyncio.get_running_loop()
                self._deferred = loop.call_later(wait, self._send_deferred)
            return
        self._send_pli(now)

    def _send_deferred(self) -> None:
        self._deferred = None
        if not self.closed:
            self._send_pli(time.monotonic())

    def _send_pli(self, now: float) -> None:
        source = self.source
        if source is None:
            return
        self._last_request = now
        self.stats.keyframe_requests_sent += 1
        self.spawn(internals.send_pli(source.receiver))

    def update_decode(self) -> None:
        """Feed the publisher's decoder only while some subscriber needs the fallback."""
        if self.source is not None:
            self.source.tap.decode = any(t.transcoding for t in self.tracks)

    def close(self) -> None:
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for track in list(self.tracks):
            track.stop()
        self.source = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "codec": self.mime_type,
            "bound": self.source is not None,
            "subscribers": len(self.tracks),
            "decoded_frames": self.source.tap.frames_decoded if self.source else 0,
            **self.stats.__dict__,
        }


@dataclass
class ForwardStats:
    frames: int = 0
    bytes: int = 0
    dropped_waiting_keyframe: int = 0
    dropped_overflow: int = 0
    keyframe_requests_from_subscriber: int = 0


class ForwardTrack(MediaStreamTrack):
    """What a subscriber's RTCRtpSender reads: the publisher's encoded frames as `av.Packet`s.

    Video waits for a keyframe whenever it (re)starts, since a decoder cannot start on a delta
    frame. Timestamps are rebased when the publication's source changes so the subscriber sees
    one continuous RTP stream across a publisher reconnect."""

    def __init__(self, publication: Publication, subscriber_id: str) -> None:
        super().__init__()
        self.kind = publication.kind
        self.publication = publication
        self.subscriber_id = subscriber_id
        self.target_mime: str | None = None  # codec the subscriber negotiated
        self.stats = ForwardStats()
        self.transcoding = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._started = False
        self._waiting_keyframe = self.kind == "video"
        self._generation = -1
        self._offset = 0
        self._last_out: int | None = None
        self._relay_track: MediaStreamTrack | None = None
        # Set once the subscriber's sender runs: frames then go out from push() directly.
        self._sender: Any = None
        self._codec_of: Callable[[], RTCRtpCodecParameters | None] = lambda: None
        self._direct: internals.RtpFrameSender | None = None
        self._force_keyframe = False
        self._reencoder: asyncio.Task[None] | None = None
        publication.tracks.add(self)

    def use_sender(
        self, sender: Any, codec_of: Callable[[], RTCRtpCodecParameters | None]
    ) -> None:
        """The RTCRtpSender reading this track and how to learn its negotiated codec: once the
        sender starts, frames are packetized and sent from `push` with no task per frame."""
        self._sender = sender
        self._codec_of = codec_of

    # -- called by the publication ---------------------------------------------------------

    def source_changed(self) -> None:
        if self.transcoding:
            self._subscribe_relay()

    @property
    def direct(self) -> bool:
        return self._direct is not None

    def push(self, mime: str, data: bytes, timestamp: int, key: bool, generation: int,
             payloads: list[bytes] | None = None) -> None:
        """One frame of the publication; `payloads` is it packetized (for direct sending)."""
        if not self._started or self.readyState != "live":
            return
        if generation != self._generation:
            self._generation = generation
            # Continue where the previous source stopped, one nominal frame later (the
            # re-encoding loop uses the same offset, so a switch keeps timestamps monotonic).
            last = self._last_out
            self._offset = 0 if last is None else last + _STEP[self.kind] - timestamp
            self._waiting_keyframe = self.kind == "video"
        if self.transcoding:
            return
        if self.target_mime is not None and mime.lower() != self.target_mime.lower():
            self._start_transcoding(mime)
            return
        if self._waiting_keyframe:
            if not key:
                self.stats.dropped_waiting_keyframe += 1
                self.publication.request_keyframe()
                return
            self._waiting_keyframe = False
        if self._queue.qsize() >= QUEUE_MAX_FRAMES:
            self._drain()
            self.stats.dropped_overflow += 1
            if self.kind == "video":
                self._waiting_keyframe = True
                self.publication.request_keyframe()
                return
        pts = timestamp + self._offset
        self._last_out = pts
        if self._direct is not None and payloads is not None:
            # The time bases are the codecs' RTP clocks (90 kHz, 48 kHz): pts is the timestamp.
            if not self._direct.send(payloads, pts):
                # Not connected right now (ICE/DTLS down): resume on a keyframe later.
                self._waiting_keyframe = self.kind == "video"
                return
        else:
            packet = av.Packet(data)
            packet.pts = pts
            packet.time_base = _TIME_BASE[self.kind]
            self._queue.put_nowait(packet)
        self.stats.frames += 1
        self.stats.bytes += len(data)

    # -- called by the subscriber's sender ---------------------------------------------------

    def keyframe_requested(self) -> None:
        self.stats.keyframe_requests_from_subscriber += 1
        self._force_keyframe = True  # for our own re-encoding loop, if it runs
        self.publication.request_keyframe()

    async def recv(self) -> Any:
        if not self._started:
            # The sender only starts reading once the subscriber's transport is up: frames
            # queued before that would be stale, so forwarding (and the keyframe wait) starts now.
            self._started = True
            self._start_direct()
            self.publication.request_keyframe()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._relay_track is not None and self._direct is None:
                return await self._relay_track.recv()
            item = await self._queue.get()
            if item is None:
                raise MediaStreamError
            if item is _SWITCH:
                continue
            return item

    def _start_direct(self) -> None:
        codec = self._codec_of() if self._sender is not None else None
        if codec is None or self.transcoding:
            return  # frames go through the queue to the sender's own task
        try:
            self._direct = internals.RtpFrameSender(self._sender, codec)
        except Exception:  # an aiortc change: forwarding still works, just the slower way
            logger.exception("direct_send_unavailable subscriber=%s", self.subscriber_id)

    def stop(self) -> None:
        self._direct = None
        if self._reencoder is not None:
            self._reencoder.cancel()
            self._reencoder = None
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()
        self.publication.tracks.discard(self)
        if self._relay_track is not None:
            self._relay_track.stop()
            self._relay_track = None
        if self.transcoding:
            self.publication.update_decode()

    # -- fallback ---------------------------------------------------------------------------

    def _start_transcoding(self, mime: str) -> None:
        """The subscriber negotiated another codec than the publisher sends: packets cannot be
        forwarded, so decode the publisher's stream (once, shared through MediaRelay) and let
        this subscriber's sender encode it. ~13 % of a core per such subscriber."""
        logger.warning(
            "subscriber %s negotiated %s but %s publishes %s: re-encoding fallback",
            self.subscriber_id, self.target_mime, self.publication.publisher_id, mime,
        )
        self.transcoding = True
        self._drain()
        self._subscribe_relay()
        self.publication.update_decode()
        self.publication.request_keyframe()
        if self._direct is not None:
            # Keep one RTP numbering on this SSRC: our loop encodes and the direct sender
            # sends. (Handing over to the sender's own task would restart its sequence numbers
            # and SRTP would refuse the jump.)
            self._reencoder = self.publication.spawn(self._reencode(self._direct))
        self._queue.put_nowait(_SWITCH)

    async def _reencode(self, direct: internals.RtpFrameSender) -> None:
        """Decoded frames from the relay, encoded in the subscriber's codec, sent directly."""
        encoder = get_encoder(direct.codec)
        loop = asyncio.get_running_loop()
        while self.transcoding and self.readyState == "live" and self._direct is direct:
            relay = self._relay_track
            if relay is None:
                await asyncio.sleep(0.02)  # the source is between receivers (reconnect)
                continue
            try:
                frame = await relay.recv()
            except MediaStreamError:
                if relay is self._relay_track:
                    await asyncio.sleep(0.02)
                continue
            force, self._force_keyframe = self._force_keyframe, False
            payloads, timestamp = await loop.run_in_executor(None, encoder.encode, frame, force)
            if not payloads or self._direct is not direct:
                continue
            pts = (timestamp + self._offset) & 0xFFFFFFFF
            self._last_out = pts
            if direct.send(payloads, pts):
                self.stats.frames += 1

    def _subscribe_relay(self) -> None:
        if self._relay_track is not None:
            self._relay_track.stop()
            self._relay_track = None
        source = self.publication.source
        if source is not None and source.receiver.track is not None:
            self._relay_track = self.publication.relay.subscribe(
                source.receiver.track, buffered=False
            )
        self._queue.put_nowait(_SWITCH)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "transcode" if self.transcoding else "forward",
            # direct: sent from the publisher's frame callback; task: the sender's own loop
            "sending": "direct" if self._direct is not None else "task",
            "codec": self.target_mime,
            **self.stats.__dict__,
        }

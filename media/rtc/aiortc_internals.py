"""Every touch of aiortc / aioice private internals lives here, and only here.

aiortc (pinned ==1.16.0) has no public API for what an SFU needs: taking encoded frames off a
receiver before they are decoded, being told when a remote asks a sender for a keyframe, naming
the msid stream of a sender, sending a PLI, or choosing the addresses ICE gathers on. Each helper
below wraps one such internal. `check_internals()` verifies they still exist; `Sfu` calls it at
start-up and `tests/rtc/test_aiortc_internals.py` exercises each one, so an aiortc upgrade that
moves them fails loudly with the attribute's name instead of silently decoding or stalling.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import queue
import secrets
import time
from collections.abc import Callable, Iterator
from struct import pack
from typing import Any

import aioice.ice
import aiortc.clock
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket

logger = logging.getLogger(__name__)

# Name-mangled attribute holding the queue the receiver feeds its decoder thread with.
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_SEND_PLI = "_send_rtcp_pli"
RECEIVER_HANDLE_RTP = "_handle_rtp_packet"
SENDER_SEND_KEYFRAME = "_send_keyframe"
SENDER_HANDLE_RTCP = "_handle_rtcp_packet"
SENDER_STREAM_ID = "_stream_id"
SENDER_NEXT_ENCODED_FRAME = "_next_encoded_frame"
TRANSCEIVER_CODECS = "_codecs"
AIOICE_GET_HOST_ADDRESSES = "get_host_addresses"
CLOCK_CURRENT_NTP_TIME = "current_ntp_time"
# What RTCRtpSender._run_rtp keeps per packet, read by its RTCP SR and NACK/RTX paths.
SENDER_RTP_HISTORY = "_RTCRtpSender__rtp_history"
SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
SENDER_MID = "_RTCRtpSender__mid"
SENDER_SR_FIELDS = (
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
)
DTLS_TX_SRTP = "_tx_srtp"
DTLS_TX_COUNTERS = ("_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets")
ICE_CONNECTION = "_connection"
AIOICE_NOMINATED = "_nominated"

FrameCallback = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class InternalsChanged(RuntimeError):
    """aiortc/aioice no longer has an internal this module relies on (likely an upgrade)."""


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def check_internals() -> list[str]:
    """Return one message per missing/changed internal (empty list: all good)."""
    problems: list[str] = []
    receiver_init = _source(RTCRtpReceiver.__init__)
    if "self.__decoder_queue" not in receiver_init:
        problems.append(f"RTCRtpReceiver.{RECEIVER_DECODER_QUEUE} is no longer created in __init__")
    handle_rtp = _source(getattr(RTCRtpReceiver, RECEIVER_HANDLE_RTP, None))
    if "self.__decoder_queue.put((codec, encoded_frame))" not in handle_rtp:
        problems.append(
            f"RTCRtpReceiver.{RECEIVER_HANDLE_RTP} no longer puts (codec, encoded_frame) on "
            f"{RECEIVER_DECODER_QUEUE}"
        )
    if not callable(getattr(RTCRtpReceiver, RECEIVER_SEND_PLI, None)):
        problems.append(f"RTCRtpReceiver.{RECEIVER_SEND_PLI} is missing")
    if not callable(getattr(RTCRtpSender, SENDER_SEND_KEYFRAME, None)):
        problems.append(f"RTCRtpSender.{SENDER_SEND_KEYFRAME} is missing")
    if "self._send_keyframe()" not in _source(getattr(RTCRtpSender, SENDER_HANDLE_RTCP, None)):
        problems.append(
            f"RTCRtpSender.{SENDER_HANDLE_RTCP} no longer calls {SENDER_SEND_KEYFRAME} on PLI/FIR"
        )
    if "self.__encoder.pack(data)" not in _source(
        getattr(RTCRtpSender, SENDER_NEXT_ENCODED_FRAME, None)
    ):
        problems.append(
            f"RTCRtpSender.{SENDER_NEXT_ENCODED_FRAME} no longer packs pre-encoded packets"
        )
    if "self._stream_id" not in _source(RTCRtpSender.__init__):
        problems.append(f"RTCRtpSender.{SENDER_STREAM_ID} is no longer set in __init__")
    if "self._codecs" not in _source(RTCRtpTransceiver.__init__):
        problems.append(f"RTCRtpTransceiver.{TRANSCEIVER_CODECS} is no longer set in __init__")
    original = _original_get_host_addresses()
    if original is None:
        problems.append(f"aioice.ice.{AIOICE_GET_HOST_ADDRESSES} is missing")
    else:
        params = list(inspect.signature(original).parameters)
        if params != ["use_ipv4", "use_ipv6"]:
            problems.append(
                f"aioice.ice.{AIOICE_GET_HOST_ADDRESSES} signature changed: {params}"
            )
    if not callable(getattr(aiortc.clock, CLOCK_CURRENT_NTP_TIME, None)):
        problems.append(f"aiortc.clock.{CLOCK_CURRENT_NTP_TIME} is missing")
    run_rtp = _source(getattr(RTCRtpSender, "_run_rtp", None))
    for needle in ("self.__rtp_history[", "packet.serialize(self.__rtp_header_extensions_map)",
                   "packet.extensions.abs_send_time", "packet.extensions.mid = self.__mid",
                   "self.__octet_count += len(payload)", "self.__packet_count += 1",
                   "self.transport._send_rtp(packet_bytes)"):
        if needle not in run_rtp:
            problems.append(f"RTCRtpSender._run_rtp no longer does {needle!r}")
    next_frame = _source(getattr(RTCRtpSender, SENDER_NEXT_ENCODED_FRAME, None))
    if "if not self._enabled" not in next_frame:
        problems.append("RTCRtpSender._enabled no longer gates sending")
    if "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" not in _source(
        getattr(RTCRtpSender, "_retransmit", None)
    ):
        problems.append("RTCRtpSender._retransmit no longer reads the history by seq % size")
    run_rtcp = _source(getattr(RTCRtpSender, "_run_rtcp", None))
    for name in SENDER_SR_FIELDS:
        if f"self.__{name.split('__', 1)[1]}" not in run_rtcp:
            problems.append(f"RTCRtpSender._run_rtcp no longer reports {name}")
    sender_init = _source(RTCRtpSender.__init__)
    if "self._ssrc" not in sender_init:
        problems.append("RTCRtpSender._ssrc is no longer set in __init__")
    for name in (SENDER_RTP_HISTORY, SENDER_EXTENSIONS_MAP, SENDER_MID, *SENDER_SR_FIELDS):
        if f"self.__{name.split('__', 1)[1]}" not in sender_init:
            problems.append(f"RTCRtpSender.{name} is no longer set in __init__")
    send_rtp = _source(getattr(RTCDtlsTransport, "_send_rtp", None))
    if "self._tx_srtp.protect(data)" not in send_rtp or "self.__tx_packets" not in send_rtp:
        problems.append("RTCDtlsTransport._send_rtp no longer protects with _tx_srtp")
    if "self._connection" not in _source(RTCIceTransport.__init__):
        problems.append(f"RTCIceTransport.{ICE_CONNECTION} is no longer set in __init__")
    if "self._nominated" not in _source(aioice.ice.Connection.__init__):
        problems.append(f"aioice Connection.{AIOICE_NOMINATED} is no longer set in __init__")
    pair_source = _source(aioice.ice.CandidatePair)
    if "self.protocol" not in pair_source or "def remote_addr" not in pair_source:
        problems.append("aioice CandidatePair no longer has .protocol/.remote_addr")
    if "self.transport.sendto(data, addr)" not in _source(aioice.ice.StunProtocol.send_data):
        problems.append("aioice StunProtocol.send_data no longer sends straight to its transport")
    frame = JitterFrame(data=b"x", timestamp=1)
    if getattr(frame, "data", None) != b"x" or getattr(frame, "timestamp", None) != 1:
        problems.append("aiortc.jitterbuffer.JitterFrame no longer has .data/.timestamp")
    return problems


def assert_internals() -> None:
    problems = check_internals()
    if problems:
        raise InternalsChanged("aiortc internals changed: " + "; ".join(problems))


# --- receiver: encoded-frame tap ---------------------------------------------------------------


class FrameTap(queue.Queue):
    """Stands in for a receiver's decoder queue.

    aiortc's receiver depayloads and reassembles frames on the event loop, then puts
    `(codec, JitterFrame)` on this queue for its decoder thread. We hand the frame to `on_frame`
    instead, so nothing is decoded. The sentinel `None` (receiver stopping) still reaches the
    thread so it exits. `decode = True` additionally feeds the real decoder: only used by the
    re-encoding fallback, which needs decoded frames from `receiver.track`.
    """

    def __init__(self, on_frame: FrameCallback) -> None:
        super().__init__()
        self.on_frame = on_frame
        self.decode = False
        self.frames_tapped = 0
        self.frames_decoded = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(item, block, timeout)
            return
        codec, frame = item
        self.frames_tapped += 1
        try:
            self.on_frame(codec, frame)
        except Exception:
            # A bug in forwarding must not kill aiortc's RTP handling for the whole transport.
            logger.exception("frame tap callback failed")
        if self.decode:
            self.frames_decoded += 1
            super().put(item, block, timeout)


def install_frame_tap(receiver: RTCRtpReceiver, on_frame: FrameCallback) -> FrameTap:
    """Route a receiver's encoded frames to `on_frame`. Call before the receiver starts
    (i.e. right after addTransceiver): its decoder thread captures the queue on start."""
    current = getattr(receiver, RECEIVER_DECODER_QUEUE, None)
    if not isinstance(current, queue.Queue):
        raise InternalsChanged(f"RTCRtpReceiver.{RECEIVER_DECODER_QUEUE} is not a queue.Queue")
    if current.qsize():
        raise RuntimeError("install_frame_tap called after the receiver started decoding")
    tap = FrameTap(on_frame)
    setattr(receiver, RECEIVER_DECODER_QUEUE, tap)
    return tap


async def send_pli(receiver: RTCRtpReceiver) -> int:
    """Send a Picture Loss Indication for every SSRC the receiver currently hears.

    The media SSRC is not exposed; sending to each active source (normally one, plus RTX after a
    retransmission) is harmless since senders ignore PLIs for SSRCs that are not theirs."""
    sent = 0
    for source in receiver.getSynchronizationSources():
        await getattr(receiver, RECEIVER_SEND_PLI)(source.source)
        sent += 1
    return sent


def install_packet_counter(receiver: RTCRtpReceiver, on_packet: Callable[[Any], None]) -> None:
    """Load generators only (bench, tests): replace the receiver's per-packet RTP handling with
    `on_packet(RtpPacket)`. No jitter buffer, NACK, REMB or decoding: a packet costs a fraction
    of aiortc's full receive path, so a 2-core machine can host many light receivers. RTCP
    (e.g. BYE ending the track) is untouched."""
    if not callable(getattr(receiver, RECEIVER_HANDLE_RTP, None)):
        raise InternalsChanged(f"RTCRtpReceiver.{RECEIVER_HANDLE_RTP} is missing")

    async def handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        on_packet(packet)

    setattr(receiver, RECEIVER_HANDLE_RTP, handle_rtp_packet)


# --- sender ------------------------------------------------------------------------------------


def install_keyframe_request_hook(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """Call `on_request` whenever the remote sends PLI/FIR for this sender.

    aiortc only flags its own encoder; with pre-encoded packets there is no encoder to flag, so
    the request must travel to the publisher. The original is still called so the re-encoding
    fallback (which does use the sender's encoder) keeps working."""
    original = getattr(sender, SENDER_SEND_KEYFRAME, None)
    if not callable(original):
        raise InternalsChanged(f"RTCRtpSender.{SENDER_SEND_KEYFRAME} is missing")

    def hooked() -> None:
        original()
        try:
            on_request()
        except Exception:
            logger.exception("keyframe request hook failed")

    setattr(sender, SENDER_SEND_KEYFRAME, hooked)


def set_sender_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """Set the msid stream id the next offer advertises for this sender (aiortc uses one random
    id per peer connection; browsers read it as `event.streams[0].id`)."""
    if not hasattr(sender, SENDER_STREAM_ID):
        raise InternalsChanged(f"RTCRtpSender.{SENDER_STREAM_ID} is missing")
    setattr(sender, SENDER_STREAM_ID, stream_id)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec a transceiver's sender uses (first negotiated codec), or None before that."""
    codecs = getattr(transceiver, TRANSCEIVER_CODECS, None)
    if codecs is None:
        raise InternalsChanged(f"RTCRtpTransceiver.{TRANSCEIVER_CODECS} is missing")
    return codecs[0] if codecs else None


class ExtensionBlock:
    """A sender's RTP header-extension block (RFC 8285: mid and abs-send-time as negotiated),
    byte-identical to what ``RtpPacket.serialize`` writes, built once: per frame only the three
    abs-send-time bytes change, so they are patched into a template."""

    _PROBE = 0xA5C3E1

    def __init__(self, extensions_map: Any, mid: str | None) -> None:
        self._map = extensions_map
        self._mid = mid
        probe = self._serialize(self._PROBE)
        marker = self._PROBE.to_bytes(3, "big")
        self._offset = probe.find(marker)
        self._template = probe if probe.count(marker) <= 1 else None

    def extensions(self, abs_send_time: int) -> HeaderExtensions:
        extensions = HeaderExtensions()
        extensions.abs_send_time = abs_send_time
        extensions.mid = self._mid
        return extensions

    def block(self, abs_send_time: int) -> bytes:
        template = self._template
        if template is None:
            return self._serialize(abs_send_time)
        if self._offset < 0:  # abs-send-time not negotiated: the block never changes
            return template
        return (template[: self._offset] + abs_send_time.to_bytes(3, "big")
                + template[self._offset + 3:])

    def _serialize(self, abs_send_time: int) -> bytes:
        profile, value = self._map.set(self.extensions(abs_send_time))
        return pack("!HH", profile, len(value) >> 2) + value if value else b""


def rtp_packets(
    payloads: list[bytes], payload_type: int, sequence_number: int, timestamp: int, ssrc: int,
    extensions: HeaderExtensions, block: bytes,
) -> list[tuple[RtpPacket, bytes]]:
    """The RTP packets of one frame and their bytes (header + extension `block` + payload),
    byte-identical to ``RtpPacket.serialize``; the packets go to the sender's NACK history."""
    first_byte = 0x90 if block else 0x80  # version 2; X bit when there are extensions
    out = []
    last = len(payloads) - 1
    for i, payload in enumerate(payloads):
        marker = 1 if i == last else 0
        seq = (sequence_number + i) & 0xFFFF
        packet = RtpPacket(payload_type, marker, seq, timestamp, ssrc, payload)
        packet.extensions = extensions
        header = pack("!BBHLL", first_byte, (marker << 7) | payload_type, seq, timestamp, ssrc)
        out.append((packet, header + block + payload))
    return out


class FramePacker:
    """Splits an encoded frame into RTP payloads with aiortc's own packetizer for the codec.

    One per publication, shared by all its subscribers: the payloads (VP8 descriptors with
    their picture ids, H264 FU-A/STAP-A) are the same for everyone, so a frame is packetized
    once however many receive it. A subscriber that skipped frames while waiting for a keyframe
    sees a picture-id jump, which is what a loss looks like; it restarts on that keyframe.
    """

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.mime_type = codec.mimeType
        self._encoder = get_encoder(codec)

    def pack(self, frame: Any) -> list[bytes]:
        """Payloads of one encoded frame (an ``av.Packet``)."""
        payloads, _timestamp = self._encoder.pack(frame)
        return payloads


class RtpFrameSender:
    """Sends encoded frames on an RTCRtpSender at once, from the caller, with no task per frame.

    aiortc's own path is one asyncio task per sender that wakes for every frame (track.recv(),
    pack, then awaits per packet down three layers). In a room every published frame fans out
    to every subscriber, so those wake-ups were a third of the SFU's CPU. This does the same
    per-packet work as ``RTCRtpSender._run_rtp`` — same RTP header and extensions, the history
    its NACK/RTX path retransmits from, the counters its RTCP sender reports use — and sends
    through the DTLS transport's SRTP context and the nominated ICE pair synchronously.
    The sender's own task stays alive (RTCP, the re-encoding fallback) but is fed nothing.
    The caller packetizes (`FramePacker`) and gives the RTP timestamp.
    """

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self._sender = sender
        self.codec = codec
        self._payload_type = codec.payloadType
        self._history: dict[int, RtpPacket] = getattr(sender, SENDER_RTP_HISTORY)
        # Built when the sender starts: its extensions are negotiated by then.
        self._extensions = ExtensionBlock(
            getattr(sender, SENDER_EXTENSIONS_MAP), getattr(sender, SENDER_MID)
        )
        self._nominated: dict[int, Any] | None = None
        # Lower half, like aiortc: a start just below the wrap could desynchronise the SRTP
        # rollover counter of a receiver that missed the first packets.
        self._sequence_number = secrets.randbelow(1 << 15)
        self._timestamp_origin = secrets.randbelow(1 << 32)

    def send(self, payloads: list[bytes], timestamp: int) -> bool:
        """Send one frame already packetized (see `FramePacker`) with its RTP timestamp in the
        codec's clock. False when the transport cannot send now."""
        sender = self._sender
        dtls = sender.transport
        if dtls.state != "connected" or not sender._enabled:
            return False
        if self._nominated is None:  # aioice keeps (and updates) one dict per connection
            self._nominated = getattr(getattr(dtls.transport, ICE_CONNECTION), AIOICE_NOMINATED)
        pair = self._nominated.get(1)
        if pair is None:
            return False
        if not payloads:
            return True
        timestamp = (self._timestamp_origin + timestamp) & 0xFFFFFFFF
        ssrc = sender._ssrc
        srtp = getattr(dtls, DTLS_TX_SRTP)
        # Host and TURN-relayed pairs alike: the pair's StunProtocol sends on its transport,
        # synchronously (a TurnTransport's sendto binds channels itself).
        transport = pair.protocol.transport
        now = fast_ntp_time()
        # Every packet of a frame carries the same extensions (abs-send-time is taken once per
        # frame): one extension block per frame, then a 12-byte header per packet.
        abs_send_time = (now >> 14) & 0x00FFFFFF
        seq = self._sequence_number
        sent_bytes = octets = 0
        for packet, raw in rtp_packets(
            payloads, self._payload_type, seq, timestamp, ssrc,
            self._extensions.extensions(abs_send_time), self._extensions.block(abs_send_time),
        ):
            self._history[packet.sequence_number % RTP_HISTORY_SIZE] = packet
            data = srtp.protect(raw)
            transport.sendto(data, pair.remote_addr)
            sent_bytes += len(data)
            octets += len(packet.payload)
        seq = (seq + len(payloads)) & 0xFFFF
        self._sequence_number = seq
        ntp_field, rtp_field, octet_field, packet_field = SENDER_SR_FIELDS
        setattr(sender, ntp_field, now)
        setattr(sender, rtp_field, timestamp)
        setattr(sender, octet_field, getattr(sender, octet_field) + octets)
        setattr(sender, packet_field, getattr(sender, packet_field) + len(payloads))
        bytes_field, packets_field = DTLS_TX_COUNTERS
        setattr(dtls, bytes_field, getattr(dtls, bytes_field) + sent_bytes)
        setattr(dtls, packets_field, getattr(dtls, packets_field) + len(payloads))
        return True



# --- aioice: host addresses --------------------------------------------------------------------

_host_addresses: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "huizhen_rtc_host_addresses", default=None
)
_ORIGINAL_ATTR = "__huizhen_original__"


def _original_get_host_addresses() -> Callable[..., list[str]] | None:
    current = getattr(aioice.ice, AIOICE_GET_HOST_ADDRESSES, None)
    return getattr(current, _ORIGINAL_ATTR, current)


def _install_host_address_override() -> None:
    current = getattr(aioice.ice, AIOICE_GET_HOST_ADDRESSES, None)
    if current is None:
        raise InternalsChanged(f"aioice.ice.{AIOICE_GET_HOST_ADDRESSES} is missing")
    if hasattr(current, _ORIGINAL_ATTR):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _host_addresses.get()
        if chosen is None:
            return current(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    setattr(get_host_addresses, _ORIGINAL_ATTR, current)
    setattr(aioice.ice, AIOICE_GET_HOST_ADDRESSES, get_host_addresses)


def system_host_addresses() -> list[str]:
    """What aioice gathers on by default: every interface's address except loopback."""
    original = _original_get_host_addresses()
    if original is None:
        raise InternalsChanged(f"aioice.ice.{AIOICE_GET_HOST_ADDRESSES} is missing")
    return list(original(use_ipv4=True, use_ipv6=True))


@contextlib.contextmanager
def gather_on(addresses: list[str] | None) -> Iterator[None]:
    """ICE host candidates gathered inside this block (and in tasks it starts) use exactly
    `addresses`; None keeps aioice's default (every interface except loopback).

    aioice skips 127.0.0.1, which tests and the bench need. A context variable rather than a
    process-wide switch, so one `Sfu` doesn't change what other code in the process gathers."""
    if addresses is None:
        yield
        return
    _install_host_address_override()
    token = _host_addresses.set(list(addresses))
    try:
        yield
    finally:
        _host_addresses.reset(token)



# --- aiortc.clock: NTP time --------------------------------------------------------------------

_NTP_EPOCH_OFFSET_NS = 2_208_988_800 * 1_000_000_000  # 1900-01-01 → 1970-01-01


def fast_ntp_time() -> int:
    """64-bit NTP time of now, from integer nanoseconds (exact, no datetime objects)."""
    seconds, rest = divmod(time.time_ns() + _NTP_EPOCH_OFFSET_NS, 1_000_000_000)
    return (seconds << 32) | ((rest << 32) // 1_000_000_000)


def install_fast_ntp_clock() -> None:
    """Replace aiortc.clock.current_ntp_time with an equivalent that skips datetime arithmetic.

    aiortc's sender calls it twice per RTP packet (abs-send-time extension and RTCP SR stats);
    the datetime version was ~11 % of the SFU's send path in profiles. Same value, same units;
    process-wide, which is harmless since the result is identical to the microsecond."""
    current = getattr(aiortc.clock, CLOCK_CURRENT_NTP_TIME, None)
    if not callable(current):
        raise InternalsChanged(f"aiortc.clock.{CLOCK_CURRENT_NTP_TIME} is missing")
    if current is not fast_ntp_time:
        setattr(aiortc.clock, CLOCK_CURRENT_NTP_TIME, fast_ntp_time)

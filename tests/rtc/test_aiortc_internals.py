"""Guards for every aiortc/aioice internal the SFU relies on (media/rtc/aiortc_internals.py).

If one of these fails after an aiortc upgrade, the message names the attribute that moved;
update aiortc_internals.py (and only it), then these tests."""

from __future__ import annotations

import asyncio
import time

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver

from media.rtc import aiortc_internals as internals
from media.rtc.ice import rtc_configuration
from media.rtc.synthetic import SyntheticVideoTrack
from tests.rtc.conftest import LOOPBACK


def test_all_internals_present() -> None:
    problems = internals.check_internals()
    assert problems == [], "aiortc internals changed:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [
        (RTCRtpReceiver, internals.RECEIVER_SEND_PLI),
        (RTCRtpReceiver, internals.RECEIVER_HANDLE_RTP),
        (RTCRtpSender, internals.SENDER_SEND_KEYFRAME),
        (RTCRtpSender, internals.SENDER_HANDLE_RTCP),
        (RTCRtpSender, internals.SENDER_NEXT_ENCODED_FRAME),
        (aioice.ice, internals.AIOICE_GET_HOST_ADDRESSES),
    ],
)
def test_internal_attribute_exists(owner: object, attribute: str) -> None:
    assert hasattr(owner, attribute), f"{getattr(owner, '__name__', owner)}.{attribute} is gone"


async def _connected_pair(
    sender_stream_id: str,
) -> tuple[RTCPeerConnection, RTCPeerConnection, RTCRtpTransceiver, RTCRtpTransceiver,
           internals.FrameTap, list[float]]:
    a = RTCPeerConnection(rtc_configuration([]))
    b = RTCPeerConnection(rtc_configuration([]))
    ta = a.addTransceiver(SyntheticVideoTrack(160, 120, 15), direction="sendonly")
    internals.set_sender_stream_id(ta.sender, sender_stream_id)
    requests: list[float] = []
    internals.install_keyframe_request_hook(ta.sender, lambda: requests.append(time.monotonic()))
    with internals.gather_on(LOOPBACK):
        await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    tb = b.getTransceivers()[0]
    frames: list[bytes] = []
    tap = internals.install_frame_tap(tb.receiver, lambda codec, f: frames.append(f.data))
    with internals.gather_on(LOOPBACK):
        await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    return a, b, ta, tb, tap, requests


async def test_frame_tap_keyframe_hook_stream_id_and_pli_behave() -> None:
    a, b, ta, tb, tap, requests = await _connected_pair("publisher-42")
    try:
        assert "a=msid:publisher-42 " in a.localDescription.sdp, (
            f"RTCRtpSender.{internals.SENDER_STREAM_ID} no longer sets the msid stream id"
        )
        codec = internals.negotiated_codec(ta)
        assert codec is not None and codec.mimeType == "video/VP8", (
            f"RTCRtpTransceiver.{internals.TRANSCEIVER_CODECS} no longer holds the send codec"
        )
        deadline = time.monotonic() + 5
        while tap.frames_tapped < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert tap.frames_tapped >= 5, (
            f"RTCRtpReceiver.{internals.RECEIVER_DECODER_QUEUE} no longer receives frames"
        )
        # Frames went to the tap, not to the decoder.
        assert tap.frames_decoded == 0
        assert tb.receiver.track._queue.qsize() == 0
        sent = await internals.send_pli(tb.receiver)
        assert sent >= 1
        deadline = time.monotonic() + 3
        while not requests and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert requests, (
            f"a PLI no longer reaches RTCRtpSender.{internals.SENDER_SEND_KEYFRAME}"
        )
    finally:
        await a.close()
        await b.close()


async def test_gather_on_loopback_and_default_restored() -> None:
    pc = RTCPeerConnection(rtc_configuration([]))
    pc.addTransceiver("audio")
    try:
        with internals.gather_on(LOOPBACK):
            await pc.setLocalDescription(await pc.createOffer())
        assert " 127.0.0.1 " in pc.localDescription.sdp, (
            f"aioice.ice.{internals.AIOICE_GET_HOST_ADDRESSES} override not used for gathering"
        )
    finally:
        await pc.close()
    # Outside the block aioice's own choice applies (which skips 127.0.0.1).
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_frame_tap_requires_unstarted_receiver() -> None:
    class NotAReceiver:
        pass

    with pytest.raises(internals.InternalsChanged, match="decoder_queue"):
        internals.install_frame_tap(NotAReceiver(), lambda c, f: None)  # type: ignore[arg-type]


def test_fast_ntp_clock_matches_aiortc() -> None:
    import aiortc.clock

    reference = aiortc.clock.datetime_to_ntp(aiortc.clock.current_datetime())
    fast = internals.fast_ntp_time()
    assert abs(fast - reference) < (1 << 32) // 100, "fast NTP clock is off by more than 10 ms"
    internals.install_fast_ntp_clock()
    assert aiortc.clock.current_ntp_time is internals.fast_ntp_time, (
        f"aiortc.clock.{internals.CLOCK_CURRENT_NTP_TIME} could not be replaced"
    )


async def test_packet_counter_replaces_receive_path() -> None:
    a, b, _, tb, _, _ = await _connected_pair("publisher-7")
    try:
        packets: list[int] = []
        internals.install_packet_counter(tb.receiver, lambda p: packets.append(p.sequence_number))
        deadline = time.monotonic() + 5
        while len(packets) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(packets) >= 5, (
            f"RTCRtpReceiver.{internals.RECEIVER_HANDLE_RTP} is no longer called per RTP packet"
        )
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("configured", ["mid+abs-send-time", "mid", ""])
def test_rtp_packets_match_aiortc_serialization(configured: str) -> None:
    """The direct sender's bytes are exactly what RtpPacket.serialize would produce, so NACK
    retransmissions from the history (serialized by aiortc) match the originals."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    ext_map = HeaderExtensionsMap()
    negotiated = [
        RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        RTCRtpHeaderExtensionParameters(
            id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    ][: len(configured.split("+")) if configured else 0]
    ext_map.configure(RTCRtpParameters(headerExtensions=negotiated))
    block = internals.ExtensionBlock(ext_map, "4")
    payloads = [b"\x90\x80" + bytes(range(200)), b"\x80\x00abc", b"\x80\x00last"]
    for abs_send_time in (0, 0x123456, 0xFFFFFF, 0xA5C3E1):
        packets = internals.rtp_packets(
            payloads, 96, 65534, 0xFFFFFFF0, 0xDEADBEEF,
            block.extensions(abs_send_time), block.block(abs_send_time),
        )
        assert [p.sequence_number for p, _ in packets] == [65534, 65535, 0]
        assert [p.marker for p, _ in packets] == [0, 0, 1]
        for packet, raw in packets:
            assert packet.extensions.abs_send_time == abs_send_time
            assert raw == packet.serialize(ext_map)
        assert bool(packets[0][1][0] & 0x10) is bool(configured)  # the extension bit

"""End-to-end SFU behaviour with aiortc client peers on loopback."""

from __future__ import annotations

import asyncio
import time

from tests.rtc.conftest import Harness


async def test_three_participants_receive_each_others_video_and_audio(harness: Harness) -> None:
    ids = ["doctor", "kiosk", "expert"]
    for pid in ids:
        await harness.join(pid)
    for receiver in ids:
        for publisher in ids:
            if publisher == receiver:
                continue
            await harness.wait_frames(receiver, publisher, "video", 10, timeout=8)
            await harness.wait_frames(receiver, publisher, "audio", 10, timeout=8)
            track = harness.peers[receiver].live(publisher, "video")
            assert track is not None
            # Decoded at the client: the forwarded stream is valid VP8 of the published size.
            assert (track.width, track.height) == (320, 240)
    # The msid stream id of every forwarded track is the publisher's id, nothing else.
    for receiver in ids:
        publishers = {s.publisher_id for s in harness.peers[receiver].remote.values()}
        assert publishers == set(ids) - {receiver}
    stats = harness.room.stats()
    assert stats["kiosk"]["state"] == "connected"
    assert stats["kiosk"]["published"]["video"]["codec"] == "video/VP8"
    assert stats["doctor"]["subscribed"]["kiosk/video"]["frames"] >= 10
    assert harness.states["kiosk"][-1] == "connected"


async def test_forwarding_path_never_decodes(harness: Harness) -> None:
    await harness.join("a")
    await harness.join("b")
    await harness.wait_frames("b", "a", "video", 20)
    await harness.wait_frames("a", "b", "audio", 20)
    for pid in ("a", "b"):
        published = harness.room.stats()[pid]["published"]
        for kind in ("audio", "video"):
            assert published[kind]["frames_in"] >= 20
            assert published[kind]["decoded_frames"] == 0
    # Nothing reached the publisher-side decoders' output either.
    participant = harness.room._participants["a"]
    for kind, t in participant.own.items():
        assert participant.taps[kind].frames_tapped >= 20
        assert participant.taps[kind].frames_decoded == 0
        assert t.receiver.track._queue.qsize() == 0


async def test_join_and_leave_renegotiate(harness: Harness) -> None:
    for pid in ("p1", "p2", "p3"):
        await harness.join(pid)
    await harness.wait_frames("p1", "p3", "video", 5)
    await harness.join("p4")
    for pid in ("p1", "p2", "p3"):
        await harness.wait_frames(pid, "p4", "video", 5)
        await harness.wait_frames(pid, "p4", "audio", 5)
    for pid in ("p1", "p2", "p3"):
        await harness.wait_frames("p4", pid, "video", 5)

    await harness.room.leave("p2")
    assert "p2" not in harness.room.participants
    for pid in ("p1", "p3", "p4"):
        peer = harness.peers[pid]
        await peer.wait_for(
            lambda peer=peer: all(s.ended for s in peer.from_publisher("p2", "video")), 5
        )
        await peer.wait_for(
            lambda peer=peer: all(s.ended for s in peer.from_publisher("p2", "audio")), 5
        )
        # The re-offer marks those m-lines inactive.
        sdp = peer.pc.remoteDescription.sdp
        assert "a=inactive" in sdp
        assert "p2/video" not in harness.room.stats()[pid]["subscribed"]
    # The others still flow after the renegotiation.
    before = harness.peers["p1"].frames("p4", "video")
    await harness.wait_frames("p1", "p4", "video", before + 10)


async def test_late_joiner_gets_video_quickly_despite_long_gop(harness: Harness) -> None:
    await harness.join("early")
    await harness.join("second")
    await harness.wait_frames("second", "early", "video", 30)
    # aiortc's VP8 encoder makes a keyframe every 3000 frames: the late joiner can only get
    # video because its join forwards a PLI to the publisher.
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await harness.join("late", video=False, audio=False)
    await harness.wait_frames("late", "early", "video", 1, timeout=2.0)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    pub = harness.room.stats()["early"]["published"]["video"]
    assert pub["keyframe_requests_sent"] >= 2  # initial + late joiner
    assert pub["keyframes_in"] >= 2


async def test_keyframe_requests_are_rate_limited(harness: Harness) -> None:
    await harness.join("pub")
    await harness.join("sub", video=False, audio=False)
    await harness.wait_frames("sub", "pub", "video", 5)
    room = harness.room
    pub = room._publications[("pub", "video")]
    sent_before = pub.stats.keyframe_requests_sent
    for _ in range(50):  # a PLI storm from a subscriber
        pub.request_keyframe()
    await asyncio.sleep(0.7)
    sent = pub.stats.keyframe_requests_sent - sent_before
    assert 1 <= sent <= 2, sent
    assert pub.stats.keyframe_requests_merged >= 49


async def test_reconnect_keeps_others_receiving(harness: Harness) -> None:
    await harness.join("kiosk")
    await harness.join("expert")
    await harness.wait_frames("expert", "kiosk", "video", 10)
    old_peer = harness.peers["kiosk"]
    expert = harness.peers["expert"]
    offers_before = expert.offers

    # The kiosk's 4G link dropped; it comes back with a brand-new peer connection.
    new_peer = await harness.join("kiosk")
    await old_peer.close()
    before = expert.frames("kiosk", "video")
    await harness.wait_frames("expert", "kiosk", "video", before + 20, timeout=5)
    await harness.wait_frames("kiosk", "expert", "video", 10, timeout=5)
    assert new_peer is harness.peers["kiosk"]
    # Same transceiver at the expert, no renegotiation needed for the others.
    assert expert.offers == offers_before
    assert sorted(harness.room.participants) == ["expert", "kiosk"]
    stats = harness.room.stats()
    assert stats["kiosk"]["published"]["video"]["bound"]


async def test_close_stops_everything(harness: Harness) -> None:
    await harness.join("a")
    await harness.join("b")
    await harness.wait_frames("b", "a", "video", 5)
    await harness.sfu.close()
    assert harness.sfu.stats()["participants"] == 0
    assert not harness.sfu._tasks

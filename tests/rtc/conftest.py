"""SFU test harness: an in-process `Sfu` and aiortc client peers, all on 127.0.0.1 inside the
session's private network namespace (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack

from media.rtc.peer import SfuClientPeer
from media.rtc.sfu import Sfu, SfuRoom
from media.rtc.synthetic import SyntheticVideoTrack
from tests.netns import interfaces

LOOPBACK = ["127.0.0.1"]


class Harness:
    def __init__(self, sfu: Sfu, room: SfuRoom) -> None:
        self.sfu = sfu
        self.room = room
        self.peers: dict[str, SfuClientPeer] = {}
        self.states: dict[str, list[str]] = {}
        self._answers: set[asyncio.Task[Any]] = set()

    async def join(
        self, pid: str, *, video: bool = True, audio: bool = True, fps: int = 15,
        decode: bool = False, **peer_kwargs: Any
    ) -> SfuClientPeer:
        """A client peer. Everything runs in this one process under one GIL, so by default
        clients count encoded frames instead of decoding and send 15 fps; tests that must prove
        the forwarded streams decode pass decode=True."""
        peer = SfuClientPeer(
            pid,
            host_addresses=LOOPBACK,
            decode=decode,
            video=SyntheticVideoTrack(320, 240, fps) if video else None,
            audio=AudioStreamTrack() if audio else None,
            **peer_kwargs,
        )
        self.peers[pid] = peer

        async def send_offer(sdp: str) -> None:
            # Like a WebSocket round trip: the answer comes back later, on its own.
            async def reply() -> None:
                answer = await peer.handle_offer(sdp)
                await self.room.answer(pid, answer)

            task = asyncio.ensure_future(reply())
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)

        async def on_state(state: str) -> None:
            self.states.setdefault(pid, []).append(state)

        await self.room.join(pid, send_offer, on_state)
        return peer

    async def wait_frames(
        self, receiver: str, publisher: str, kind: str, count: int, timeout: float = 15.0
    ) -> None:
        peer = self.peers[receiver]
        await peer.wait_for(lambda: peer.frames(publisher, kind) >= count, timeout)

    async def close(self) -> None:
        await self.sfu.close()
        for peer in self.peers.values():
            await peer.close()
        for task in list(self._answers):
            task.cancel()
        await asyncio.gather(*self._answers, return_exceptions=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    assert interfaces() == ["lo"], "WebRTC tests must run in the private network namespace"
    threads_before = {t.ident for t in threading.enumerate()}
    sfu = Sfu(ice_servers=[], host_addresses=LOOPBACK)
    h = Harness(sfu, sfu.room("consult-1"))
    try:
        yield h
    finally:
        await h.close()
        # Receivers' decoder threads are joined on close; the default executor (aiortc's
        # encoders) is the event loop's and is shut down with it.
        await asyncio.sleep(0.05)
        leftover = [
            t for t in threading.enumerate()
            if t.ident not in threads_before and "decoder" in t.name and t.is_alive()
        ]
        assert not leftover, f"decoder threads left running: {leftover}"

"""Selective forwarding unit for consult rooms.

The SFU is always the offerer: on every change it builds the offer for each affected participant
(recvonly audio+video for the participant's own camera/mic first, then one sendonly transceiver
per track published by someone else), so there is never glare and clients only ever answer.
Encoded frames are forwarded without decoding (see `forwarding.py`); see docs/sfu.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import candidate_from_sdp

from media.rtc import aiortc_internals as internals
from media.rtc.forwarding import ForwardTrack, Publication
from media.rtc.ice import IcePolicy, IceServer, rtc_configuration

logger = logging.getLogger(__name__)

SendOffer = Callable[[str], Awaitable[None]]
OnState = Callable[[str], Awaitable[None]]

KINDS = ("audio", "video")
# The msid stream id must be an SDP token (RFC 8830); browsers report it as streams[0].id.
_PARTICIPANT_ID = re.compile(r"^[A-Za-z0-9_.~+-]{1,64}$")
# How long join() waits for the first offer (gathering + the caller's send_offer).
FIRST_OFFER_TIMEOUT_S = 10.0


def codec_preferences(kind: str, first_mime: str | None = None) -> list[RTCRtpCodecCapability]:
    """Capabilities ordered for forwarding: the publisher's codec (or VP8) first, then H264,
    then the rest; RTX kept so NACK retransmissions still work."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    if kind == "audio":
        return sorted(caps, key=lambda c: c.mimeType.lower() != "audio/opus")
    first = (first_mime or "video/VP8").lower()

    def rank(c: RTCRtpCodecCapability) -> int:
        mime = c.mimeType.lower()
        if mime == first:
            return 0
        return {"video/vp8": 1, "video/h264": 2}.get(mime, 3)

    return sorted(caps, key=rank)


@dataclass
class _Subscription:
    publication: Publication
    transceiver: RTCRtpTransceiver
    track: ForwardTrack


@dataclass
class _Participant:
    id: str
    pc: RTCPeerConnection
    send_offer: SendOffer
    on_state: OnState | None
    own: dict[str, RTCRtpTransceiver] = field(default_factory=dict)
    taps: dict[str, internals.FrameTap] = field(default_factory=dict)
    subscriptions: dict[int, _Subscription] = field(default_factory=dict)
    offer_outstanding: bool = False
    need_offer: bool = False
    negotiating: bool = False
    closed: bool = False
    first_offer: asyncio.Future[None] | None = None
    offers_sent: int = 0
    answers: int = 0
    ignored_candidates: int = 0


class SfuRoom:
    """One consult room. Methods are called by the signaling layer; all run on one event loop."""

    def __init__(self, sfu: Sfu, room_id: str) -> None:
        self._sfu = sfu
        self.room_id = room_id
        self._participants: dict[str, _Participant] = {}
        self._publications: dict[tuple[str, str], Publication] = {}
        # join/answer/leave mutate shared state across awaits (closing PCs, setting
        # descriptions); one at a time keeps the room consistent. Offers are sent outside it.
        self._lock = asyncio.Lock()

    @property
    def participants(self) -> list[str]:
        return list(self._participants)

    # -- public API -------------------------------------------------------------------------

    async def join(
        self, participant_id: str, send_offer: SendOffer, on_state: OnState | None = None
    ) -> None:
        """Create the participant's peer connection and send it the first offer.

        A second join with the same id is a reconnect: the old PC is closed, the participant's
        publications stay and are fed by the new PC once it publishes, so the others keep their
        transceivers. Returns once `send_offer` has been called for the first offer."""
        if not _PARTICIPANT_ID.match(participant_id):
            raise ValueError(f"participant id must match {_PARTICIPANT_ID.pattern}")
        async with self._lock:
            pc = RTCPeerConnection(rtc_configuration(self._sfu.ice_servers))
            p = _Participant(participant_id, pc, send_offer, on_state)
            p.first_offer = asyncio.get_running_loop().create_future()
            # Own camera/mic first: clients' addTrack() reuses the first transceiver of each kind.
            for kind in KINDS:
                t = pc.addTransceiver(kind, direction="recvonly")
                t.setCodecPreferences(codec_preferences(kind))
                p.own[kind] = t
                p.taps[kind] = internals.install_frame_tap(
                    t.receiver, self._frame_handler(p, kind)
                )
            pc.on("connectionstatechange", lambda p=p: self._on_connection_state(p))
            old = self._participants.get(participant_id)
            self._participants[participant_id] = p
            if old is not None:
                logger.info("room %s: %s reconnects", self.room_id, participant_id)
                await self._close_participant(old)
            self._request_offer(p)
            first_offer = p.first_offer
        try:
            await asyncio.wait_for(asyncio.shield(first_offer), FIRST_OFFER_TIMEOUT_S)
        except BaseException:
            # No offer reached the client: don't leave a half-joined participant behind.
            if self._participants.get(participant_id) is p:
                await self.leave(participant_id)
            raise

    async def answer(self, participant_id: str, sdp: str) -> None:
        """Apply the participant's answer to the latest offer it was sent."""
        async with self._lock:
            p = self._participants.get(participant_id)
            if p is None or p.closed:
                raise KeyError(f"no participant {participant_id!r} in room {self.room_id}")
            if not p.offer_outstanding:
                # Refused rather than logged: a client repeating it must not flood the log.
                raise ValueError("no offer is waiting for an answer")
            sdp, dropped = self._sfu.ice_policy.filter_sdp(sdp)
            p.ignored_candidates += dropped
            try:
                await p.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                raise ValueError(f"bad answer from {participant_id}: {exc}") from exc
            finally:
                p.offer_outstanding = False
            p.answers += 1
            self._after_answer(p)
            if p.need_offer:
                self._request_offer(p)

    async def add_ice_candidate(self, participant_id: str, candidate: dict[str, Any]) -> bool:
        """A trickled browser candidate: {"candidate", "sdpMid", "sdpMLineIndex"}; an empty
        or missing "candidate" means end-of-candidates. False: ignored (the deployment's ICE
        policy does not allow its address)."""
        p = self._participants.get(participant_id)
        if p is None or p.closed:
            return False
        line = (candidate.get("candidate") or "").strip()
        if not line:
            await p.pc.addIceCandidate(None)
            return True
        if line.startswith("a="):
            line = line[2:]
        if line.startswith("candidate:"):
            line = line[len("candidate:"):]
        try:
            parsed = candidate_from_sdp(line)
        except (AssertionError, ValueError, IndexError) as exc:  # aiortc asserts on the field count
            raise ValueError(f"bad ICE candidate {line!r}") from exc
        if not self._sfu.ice_policy.allows(parsed.ip):
            p.ignored_candidates += 1
            return False
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0  # everything is BUNDLEd on the first m-line
        await p.pc.addIceCandidate(parsed)
        return True

    async def leave(self, participant_id: str) -> None:
        async with self._lock:
            p = self._participants.pop(participant_id, None)
            if p is None:
                return
            for kind in KINDS:
                pub = self._publications.pop((participant_id, kind), None)
                if pub is not None:
                    await self._remove_publication(pub)
            await self._close_participant(p)

    async def renegotiate(self, participant_id: str) -> None:
        """Send a fresh offer, e.g. when a client starts publishing after joining
        (it cannot offer itself: the SFU is always the offerer)."""
        p = self._participants.get(participant_id)
        if p is not None and not p.closed:
            self._request_offer(p)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pid, p in self._participants.items():
            published = {
                kind: pub.to_json()
                for (owner, kind), pub in self._publications.items()
                if owner == pid
            }
            subscribed = {
                f"{s.publication.publisher_id}/{s.publication.kind}": s.track.to_json()
                for s in p.subscriptions.values()
            }
            out[pid] = {
                "state": p.pc.connectionState,
                "published": published,
                "subscribed": subscribed,
                "offers_sent": p.offers_sent,
                "answers": p.answers,
                "ignored_candidates": p.ignored_candidates,
            }
        return out

    async def close(self) -> None:
        async with self._lock:
            for pub in self._publications.values():
                pub.close()
            self._publications.clear()
            participants = list(self._participants.values())
            self._participants.clear()
            await asyncio.gather(*(self._close_participant(p) for p in participants))

    # -- negotiation ------------------------------------------------------------------------

    def _request_offer(self, p: _Participant) -> None:
        """At most one offer outstanding per participant; changes meanwhile are collected and
        offered after the answer (answer() calls back here)."""
        p.need_offer = True
        if p.closed or p.negotiating or p.offer_outstanding:
            return
        p.negotiating = True
        self._sfu._spawn(self._negotiate(p))

    async def _negotiate(self, p: _Participant) -> None:
        try:
            p.need_offer = False
            self._reconcile(p)
            with internals.gather_on(self._sfu.host_addresses):
                offer = await p.pc.createOffer()
                await p.pc.setLocalDescription(offer)
            if p.closed:
                return
            p.offer_outstanding = True
            p.offers_sent += 1
            await p.send_offer(p.pc.localDescription.sdp)
            if p.first_offer is not None and not p.first_offer.done():
                p.first_offer.set_result(None)
        except Exception as exc:
            if p.closed:
                return
            logger.exception("room %s: offer to %s failed", self.room_id, p.id)
            if p.first_offer is not None and not p.first_offer.done():
                p.first_offer.set_exception(exc)
        finally:
            p.negotiating = False
        # A change that arrived while we were offering but after the answer came back (the
        # answer can race send_offer's return) would otherwise wait for the next change.
        if p.need_offer and not p.offer_outstanding and not p.closed:
            self._request_offer(p)

    def _reconcile(self, p: _Participant) -> None:
        """Add a sendonly transceiver for every publication `p` lacks. Synchronous on purpose:
        room state cannot change between reading it and adding the transceivers."""
        for (owner, kind), pub in self._publications.items():
            if owner == p.id or pub.uid in p.subscriptions:
                continue
            t = p.pc.addTransceiver(kind, direction="sendonly")
            t.setCodecPreferences(codec_preferences(kind, pub.mime_type))
            track = ForwardTrack(pub, p.id)
            t.sender.replaceTrack(track)
            internals.set_sender_stream_id(t.sender, pub.publisher_id)
            internals.install_keyframe_request_hook(t.sender, track.keyframe_requested)
            track.use_sender(t.sender, lambda t=t: internals.negotiated_codec(t))
            p.subscriptions[pub.uid] = _Subscription(pub, t, track)

    def _after_answer(self, p: _Participant) -> None:
        for kind, t in p.own.items():
            if t.currentDirection in ("recvonly", "sendrecv"):
                self._bind_publication(p, kind, t.receiver)
        for sub in p.subscriptions.values():
            codec = internals.negotiated_codec(sub.transceiver)
            if codec is not None and sub.track.target_mime is None:
                sub.track.target_mime = codec.mimeType

    # -- publications -----------------------------------------------------------------------

    def _frame_handler(self, p: _Participant, kind: str) -> internals.FrameCallback:
        def on_frame(codec: Any, frame: Any) -> None:
            pub = self._publications.get((p.id, kind))
            if pub is not None:
                pub.on_frame(p, codec, frame)

        return on_frame

    def _bind_publication(self, p: _Participant, kind: str, receiver: RTCRtpReceiver) -> None:
        if p.closed or self._participants.get(p.id) is not p:
            return
        key = (p.id, kind)
        pub = self._publications.get(key)
        if pub is None:
            pub = Publication(
                uid=next(self._sfu._uids), publisher_id=p.id, kind=kind,
                spawn=self._sfu._spawn, relay=self._sfu._relay,
            )
            # Known before the first frame, so the offers built next put this codec first.
            codec = internals.negotiated_codec(p.own[kind])
            pub.mime_type = codec.mimeType if codec is not None else None
            self._publications[key] = pub
            logger.info("room %s: %s publishes %s (%s)", self.room_id, p.id, kind, pub.mime_type)
            for other in self._participants.values():
                if other is not p:
                    self._request_offer(other)
        pub.bind(p, receiver, p.taps[kind])

    async def _remove_publication(self, pub: Publication) -> None:
        pub.close()
        for other in self._participants.values():
            sub = other.subscriptions.pop(pub.uid, None)
            if sub is None:
                continue
            # Inactive in the next offer (browsers then remove the track from the stream);
            # stopping the sender sends RTCP BYE, which ends the track at aiortc clients.
            sub.transceiver.direction = "inactive"
            await sub.transceiver.sender.stop()
            self._request_offer(other)

    async def _close_participant(self, p: _Participant) -> None:
        p.closed = True
        for pub in self._publications.values():
            pub.unbind(p)
            sub = p.subscriptions.get(pub.uid)
            if sub is not None:
                sub.track.stop()
        p.subscriptions.clear()
        if p.first_offer is not None and not p.first_offer.done():
            p.first_offer.cancel()
        await p.pc.close()

    def _on_connection_state(self, p: _Participant) -> None:
        state = p.pc.connectionState
        logger.info("room %s: %s connection %s", self.room_id, p.id, state)
        if p.on_state is not None and not p.closed:
            self._sfu._spawn(p.on_state(state))


class Sfu:
    """One per server process."""

    def __init__(
        self, *, ice_servers: list[IceServer], host_addresses: list[str] | None = None,
        ice_policy: IcePolicy | None = None,
    ) -> None:
        internals.assert_internals()
        internals.install_fast_ntp_clock()
        self.ice_servers = list(ice_servers)
        # Which remote candidates are used; without one (library use, tests) any address.
        self.ice_policy = ice_policy or IcePolicy(allowed=(
            ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
        self.host_addresses = None if host_addresses is None else list(host_addresses)
        self._rooms: dict[str, SfuRoom] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._uids = itertools.count(1)
        # Only used by the re-encoding fallback; one decode per publisher shared by them all.
        self._relay = MediaRelay()

    def room(self, room_id: str) -> SfuRoom:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = SfuRoom(self, room_id)
        return room

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        rooms = {room_id: room.stats() for room_id, room in self._rooms.items()}
        forwarded = sum(
            len(p["subscribed"]) for r in rooms.values() for p in r.values()
        )
        return {
            "rooms": len(rooms),
            "participants": sum(len(r) for r in rooms.values()),
            "forwarded_tracks": forwarded,
            "by_room": rooms,
        }

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work we own (offers, PLIs, state callbacks), cancelled by close()."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("sfu task failed", exc_info=task.exception())

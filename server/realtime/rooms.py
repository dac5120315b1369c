"""Consult rooms: joining (and rejoining), leaving, invitations, presence, and the glue between
signaling and the SFU.

The SFU is always the offerer: on join it sends `rtc.offer`; the client answers. A participant
whose WebSocket drops stays in the room as "reconnecting" for the grace period (a presence key
with that TTL, refreshed by pings); rejoining with the same identity restores their place. A
sweeper marks those whose presence expired as left — which also covers a server restart, since
room state lives in Redis and clients simply rejoin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from media.rtc.ice import IceServer, turn_rest_credentials
from media.rtc.sfu import Sfu
from server.config import Settings
from server.errors import Conflict, Forbidden, HuizhenError, InvalidMessage, NotFound
from server.log import event
from server.realtime.hub import Connection, Hub, spawn
from server.realtime.messages import RoomInvite, RtcAnswer, RtcCandidate
from server.store import Store, keys
from server.store.consults import Outcome
from server.store.directory import Role
from server.store.rooms import MediaState, Member, MemberState

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0
# What the page can tell someone whose media never connected (the page has its own texts).
MEDIA_ADVICE = ("no audio/video path to the server: check the network (a firewall may block "
                "UDP), then leave and join again; the administrator may need to configure TURN")


class RoomService:
    def __init__(self, settings: Settings, store: Store, hub: Hub, sfu: Sfu) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.sfu = sfu
        # Which connection of this node carries each participant: (room, user) -> connection.
        self._attached: dict[tuple[str, str], Connection] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._media_timers: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        # A flag as well as the cancel: a library that swallows one CancelledError (seen
        # in a Redis call at shutdown) must not keep the loop, and the shutdown, going.
        self._closing = True
        for timer in self._media_timers.values():
            timer.cancel()
        self._media_timers.clear()
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # ---------------------------------------------------------------------------------------
    def ice_servers(self, username: str) -> list[IceServer]:
        servers = [IceServer(urls=list(self.settings.stun_urls))] if self.settings.stun_urls else []
        if self.settings.turn_urls and self.settings.turn_secret:
            user, password = turn_rest_credentials(
                self.settings.turn_secret, username, self.settings.turn_ttl_s)
            servers.append(IceServer(urls=list(self.settings.turn_urls), username=user,
                                     credential=password))
        return servers

    async def _may_join(self, conn: Connection, room_id: str) -> None:
        who = conn.principal
        if who.role is Role.ADMIN:
            raise Forbidden("administrators do not join consult rooms")
        await self.store.rooms.require_open(room_id)
        if await self.store.rooms.member(room_id, who.username) is not None:
            return
        if await self.store.rooms.invited(room_id, who.username, who.department):
            return
        raise NotFound("no such open room")  # not invited: the room does not exist for you

    async def join(
        self, conn: Connection, room_id: str, last_event_id: str | None = None
    ) -> dict:
        """Join (or rejoin) a room; a refusal (not invited, admin, full) is audited."""
        try:
            return await self._join(conn, room_id, last_event_id)
        except (Forbidden, NotFound, Conflict) as err:
            await self._audit_refused(conn, "room.join.refused", err, room=room_id)
            raise

    async def _audit_refused(
        self, conn: Connection, action: str, err: HuizhenError, **resource: object
    ) -> None:
        who = conn.principal
        await self.store.audit.record(
            action=action, user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, code=err.code, why=err.message, **resource)

    async def _join(
        self, conn: Connection, room_id: str, last_event_id: str | None = None
    ) -> dict:
        who = conn.principal
        await self._may_join(conn, room_id)
        room = await self.store.rooms.require_open(room_id)
        previous = await self.store.rooms.member(room_id, who.username)
        member = Member(
            id=who.username,
            display_name=(await self._display_name(who.username)),
            role=who.role.value, clinic=who.clinic, department=who.department,
            joined_at=previous.joined_at if previous else time.time(),
            state=MemberState.CONNECTED, media=MediaState.CONNECTING,
        )
        await self.store.rooms.put_member(room_id, member)
        await self.store.grant_room_study(room_id, [who.username])
        await self.store.rooms.touch(room_id, who.username, self.settings.reconnect_grace_s)
        older = self._attached.get((room_id, who.username))
        if older is not None and older is not conn:
            # Same identity from a new connection (a reload, a new 4G link): it takes over.
            older.rooms.discard(room_id)
            await self.hub.unsubscribe(older, keys.channel_room(room_id))
            older.send({"type": "room.replaced", "room_id": room_id})
            await self.store.audit.record(
                action="room.replaced", user=who.username, role=who.role.value,
                clinic=who.clinic, remote=conn.remote, device=who.device, room=room_id,
                replaced_remote=older.remote)
        self._attached[(room_id, who.username)] = conn
        conn.rooms.add(room_id)
        await self.hub.subscribe(conn, keys.channel_room(room_id))
        rejoined = previous is not None and previous.state is not MemberState.LEFT
        await self._announce(room_id, member, "rejoined" if rejoined else "joined")
        consult = await self.store.consults.get(room.consult_id) if room.consult_id else None
        if consult is not None and not rejoined:
            await self.store.consults.note_joined(consult.id, who.username)
        state = {
            "type": "room.state",
            "room_id": room_id,
            "kind": room.kind,
            "consult": consult.public() if consult else None,
            "participants": [m.public() for m in await self._members(room_id)],
            "ice_servers": [s.to_json() for s in self.ice_servers(who.username)],
            "grace_s": self.settings.reconnect_grace_s,
        }
        conn.send(state)
        if last_event_id:
            missed = await self.store.rooms.events_since(room_id, last_event_id)
            conn.send({"type": "room.events", "room_id": room_id, "events": missed})

        async def send_offer(sdp: str) -> None:
            current = self._attached.get((room_id, who.username))
            if current is not None:
                current.send({"type": "rtc.offer", "room_id": room_id, "sdp": sdp})

        async def on_state(state: str) -> None:
            current = self._attached.get((room_id, who.username))
            if current is not None:
                current.send({"type": "rtc.state", "room_id": room_id, "state": state})
            if state == "connected":
                await self._media(room_id, who.username, MediaState.CONNECTED)
            elif state == "failed":
                await self._media_failed(room_id, who.username, "ice_failed")

        self._watch_media(room_id, who.username)
        await self.sfu.room(room_id).join(who.username, send_offer, on_state)
        await self.store.audit.record(
            action="room.join", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, room=room_id, consult=room.consult_id or None,
            study=(consult.study_uid or None) if consult else None,
        )
        event(log, "room_joined", room=room_id, user=who.username, rejoined=rejoined)
        return state

    async def answer(self, conn: Connection, msg: RtcAnswer) -> None:
        self._require_attached(conn, msg.room_id)
        try:
            await self.sfu.room(msg.room_id).answer(conn.principal.username, msg.sdp)
        except (ValueError, KeyError) as exc:
            # A bad SDP is the client's error: an error reply, no stack trace in the log.
            raise InvalidMessage(f"rtc.answer refused: {_short(exc)}") from None

    async def candidate(self, conn: Connection, msg: RtcCandidate) -> None:
        self._require_attached(conn, msg.room_id)
        if msg.candidate is not None and msg.candidate.candidate:
            try:
                await self.sfu.room(msg.room_id).add_ice_candidate(
                    conn.principal.username, msg.candidate.model_dump())
            except ValueError as exc:
                raise InvalidMessage(f"rtc.candidate refused: {_short(exc)}") from None

    async def heartbeat(self, conn: Connection) -> None:
        for room_id in list(conn.rooms):
            await self.store.rooms.touch(room_id, conn.principal.username,
                                         self.settings.reconnect_grace_s)

    async def invite(self, conn: Connection, msg: RoomInvite) -> None:
        """Invite an expert or a department; a refusal is audited."""
        try:
            await self._invite(conn, msg)
        except (Forbidden, NotFound) as err:
            await self._audit_refused(conn, "room.invite.refused", err, room=msg.room_id,
                                      username=msg.username, department=msg.department)
            raise

    async def _invite(self, conn: Connection, msg: RoomInvite) -> None:
        who = conn.principal
        self._require_attached(conn, msg.room_id)
        if who.role is not Role.EXPERT:
            raise Forbidden("only experts in the room invite colleagues")
        room = await self.store.rooms.require_open(msg.room_id)
        consult = await self.store.consults.get(room.consult_id) if room.consult_id else None
        invitation = {"type": "room.invited", "room_id": msg.room_id, "from": who.username,
                      "consult": consult.public() if consult else None}
        if msg.username:
            user = await self.store.directory.get_user(msg.username)
            if user is None or user.role is not Role.EXPERT:
                raise NotFound(f"no expert {msg.username!r}")
            await self.store.rooms.invite(msg.room_id, msg.username)
            await self.store.grant_room_study(msg.room_id, [msg.username], by=who.username)
            await self.hub.publish(keys.channel_user(msg.username), invitation)
        else:
            assert msg.department is not None
            if await self.store.directory.get_department(msg.department) is None:
                raise NotFound(f"no department {msg.department!r}")
            await self.store.rooms.invite(msg.room_id, f"department:{msg.department}")
            await self.hub.publish(keys.channel_department(msg.department), invitation)
        await self.store.rooms.append_event(msg.room_id, "invited", by=who.username,
                                            username=msg.username, department=msg.department)
        event(log, "room_invite", room=msg.room_id, by=who.username,
              username=msg.username, department=msg.department)

    async def leave(self, conn: Connection, room_id: str, reason: str = "hung_up") -> None:
        self._require_attached(conn, room_id)
        await self._detach(conn, room_id)
        await self._left(room_id, conn.principal.username, reason=reason)

    async def disconnected(self, conn: Connection) -> None:
        """The WebSocket closed without a leave: keep the place for the grace period.

        The SFU keeps the participant's publications (the others keep their transceivers and
        just see the stream pause); a rejoin swaps in a new peer connection, and only when the
        grace period runs out does the sweeper remove them from the SFU.
        """
        for room_id in list(conn.rooms):
            user = conn.principal.username
            if self._attached.get((room_id, user)) is not conn:
                continue  # a newer connection of the same user already holds the place
            await self._detach(conn, room_id)
            if (room_id, user) in self._attached:
                continue  # rejoined meanwhile
            # The grace period counts from the drop, not from the last ping (which may have
            # been almost a whole ping interval earlier).
            await self.store.rooms.touch(room_id, user, self.settings.reconnect_grace_s)
            member = await self.store.rooms.set_state(room_id, user, MemberState.RECONNECTING)
            if member is not None:
                await self._announce(room_id, member, "reconnecting")

    # ---------------------------------------------------------------------------------------
    # media state -------------------------------------------------------------------------------
    def _watch_media(self, room_id: str, user: str) -> None:
        """After `media_timeout_s` a participant whose peer connection has not connected is
        marked `media_failed` (the others are told, and so are they, with what to try)."""
        key = (room_id, user)
        old = self._media_timers.pop(key, None)
        if old is not None:
            old.cancel()

        async def deadline() -> None:
            await asyncio.sleep(self.settings.media_timeout_s)
            self._media_timers.pop(key, None)
            member = await self.store.rooms.member(room_id, user)
            if (member is not None and member.state is MemberState.CONNECTED
                    and member.media is MediaState.CONNECTING):
                await self._media_failed(room_id, user, "media_timeout")

        self._media_timers[key] = spawn(deadline())

    def _stop_watching(self, room_id: str, user: str) -> None:
        timer = self._media_timers.pop((room_id, user), None)
        if timer is not None:
            timer.cancel()

    async def _media(self, room_id: str, user: str, media: MediaState) -> Member | None:
        before = await self.store.rooms.member(room_id, user)
        if before is None or before.state is MemberState.LEFT or before.media is media:
            return None
        if media is MediaState.CONNECTED:
            self._stop_watching(room_id, user)
        member = await self.store.rooms.set_state(room_id, user, media=media)
        if member is not None:
            await self._announce(room_id, member, f"media_{media.value}")
        return member

    async def _media_failed(self, room_id: str, user: str, why: str) -> None:
        member = await self._media(room_id, user, MediaState.FAILED)
        if member is None:
            return
        current = self._attached.get((room_id, user))
        if current is not None:
            current.send({"type": "rtc.state", "room_id": room_id, "state": "failed",
                          "reason": why, "advice": MEDIA_ADVICE})
        event(log, "media_failed", logging.WARNING, room=room_id, user=user, reason=why)

    def _require_attached(self, conn: Connection, room_id: str) -> None:
        if self._attached.get((room_id, conn.principal.username)) is not conn:
            raise NotFound("you are not in this room: send room.join first")

    async def _detach(self, conn: Connection, room_id: str) -> None:
        conn.rooms.discard(room_id)
        self._attached.pop((room_id, conn.principal.username), None)
        await self.hub.unsubscribe(conn, keys.channel_room(room_id))

    async def _left(self, room_id: str, user: str, *, reason: str) -> None:
        self._stop_watching(room_id, user)
        await self.sfu.room(room_id).leave(user)
        await self.store.rooms.forget_presence(room_id, user)
        member = await self.store.rooms.set_state(room_id, user, MemberState.LEFT, reason=reason)
        await self.store.grant_room_study(room_id, [user])  # the grant lasts TTL from leaving
        if member is not None:
            await self._announce(room_id, member, "left", reason=reason)
        event(log, "room_left", room=room_id, user=user, reason=reason)
        remaining = [m for m in await self._members(room_id) if m.state is not MemberState.LEFT]
        if not remaining:
            room = await self.store.rooms.get(room_id)
            await self.store.rooms.close(room_id)
            await self.sfu.close_room(room_id)
            if room and room.consult_id:
                # The last ones out timed out rather than hung up: the call was dropped.
                await self.store.consults.end(
                    room.consult_id,
                    Outcome.DROPPED if reason == "timed_out" else Outcome.COMPLETED)
            await self.store.rooms.append_event(room_id, "closed")
            event(log, "room_closed", room=room_id)

    async def _members(self, room_id: str) -> list[Member]:
        """Members with presence applied: a reconnecting one whose grace ran out has left."""
        members = await self.store.rooms.members(room_id)
        present = await self.store.rooms.present(room_id, [m.id for m in members])
        return [
            m if m.state is MemberState.LEFT or present.get(m.id)
            else Member(**{**m.__dict__, "state": MemberState.LEFT})
            for m in members
        ]

    async def _announce(
        self, room_id: str, member: Member, what: str, reason: str | None = None
    ) -> None:
        extra = {"reason": reason} if reason else {}
        event_id = await self.store.rooms.append_event(room_id, what, participant=member.id,
                                                       **extra)
        await self.hub.publish(keys.channel_room(room_id), {
            "type": "room.participant", "room_id": room_id, "event": what,
            "participant": member.public(), "event_id": event_id, **extra,
        })

    async def _display_name(self, username: str) -> str:
        user = await self.store.directory.get_user(username)
        return user.display_name if user else username

    async def sweep(self) -> None:
        """Members of open rooms whose presence expired have left (grace over, or a node that
        held them restarted)."""
        for room_id in await self.store.rooms.open_rooms():
            members = await self.store.rooms.members(room_id)
            active = [m for m in members if m.state is not MemberState.LEFT]
            present = await self.store.rooms.present(room_id, [m.id for m in active])
            for m in active:
                if not present.get(m.id) and (room_id, m.id) not in self._attached:
                    await self._left(room_id, m.id, reason="timed_out")

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            if self._closing:
                return
            try:
                await self.sweep()
            except Exception:
                log.exception("room_sweep_failed")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"

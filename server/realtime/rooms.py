"""Rooms of every kind (consult calls, MDT meetings): joining (and rejoining), leaving,
invitations, presence, the event log, and the glue between signaling and the media plane.

Kind-neutral: what a kind allows and does (who joins, invites, presents; a consult's study
grant and its end when the last one leaves) is its policy's (server/realtime/room_policy.py).
Media goes through a `RoomRouter` (server/realtime/router.py), never to the SFU directly.
Other services add to a room's log with `emit` and close a room with `close_room`.

The SFU is always the offerer: on join it sends `rtc.offer`; the client answers. A participant
whose WebSocket drops stays in the room as "reconnecting" for the grace period (a presence key
with that TTL, refreshed by pings); rejoining with the same identity restores their place. A
sweeper marks those whose presence expired as left — which also covers a server restart, since
room state lives in Redis and clients simply rejoin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from media.rtc.ice import IceServer, turn_rest_credentials
from server.auth import access
from server.config import Settings
from server.errors import Conflict, Forbidden, HuizhenError, InvalidMessage, NotFound
from server.log import event
from server.realtime import outbound as out
from server.realtime.hub import Connection, Hub, spawn
from server.realtime.messages import RoomInvite, RtcAnswer, RtcCandidate
from server.realtime.room_policy import RoomPolicy, mdt_of_room, policy
from server.realtime.router import RoomRouter
from server.store import Store, keys
from server.store.directory import Role
from server.store.rooms import MediaState, Member, MemberState, Room
from server.sweeper import Sweeper

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 2.0
EVENTS_PER_MESSAGE = 500  # a resuming page gets its missed events in room.events of this size
# What the page can tell someone whose media never connected (the page has its own texts).
MEDIA_ADVICE = ("no audio/video path to the server: check the network (a firewall may block "
                "UDP), then leave and join again; the administrator may need to configure TURN")


class RoomService:
    def __init__(self, settings: Settings, store: Store, hub: Hub, router: RoomRouter) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.router = router
        # Kind-specific additions to room.state (the MDT's shared view): kind -> callback.
        self.state_extras: dict[str, StateExtra] = {}
        # Called when a member has left a room (the MDT's control is released): kind -> callback.
        self.on_left: dict[str, LeftHook] = {}
        # Called when a member joined (the MDT's domain: grants, open -> live): kind -> callback.
        self.on_joined: dict[str, LeftHook] = {}
        # Which connection of this node carries each participant: (room, user) -> connection.
        self._attached: dict[tuple[str, str], Connection] = {}
        # Rooms this node's connections are in, as read at their last join (kind and ref never
        # change; a room closed here is dropped): the hot path of a live room reads no Redis.
        self._joined_rooms: dict[str, Room] = {}
        self._media_timers: dict[tuple[str, str], asyncio.Task[None]] = {}

    def register_sweeps(self, sweeper: Sweeper) -> None:
        """Members whose presence expired leave, on every node (a member attached here is
        never timed out by this node)."""
        sweeper.register("room_presence", self.sweep, SWEEP_INTERVAL_S)

    async def close(self) -> None:
        for timer in self._media_timers.values():
            timer.cancel()
        self._media_timers.clear()

    # ---------------------------------------------------------------------------------------
    def ice_servers(self, username: str) -> list[IceServer]:
        servers = [IceServer(urls=list(self.settings.stun_urls))] if self.settings.stun_urls else []
        if self.settings.turn_urls and self.settings.turn_secret:
            user, password = turn_rest_credentials(
                self.settings.turn_secret, username, self.settings.turn_ttl_s)
            servers.append(IceServer(urls=list(self.settings.turn_urls), username=user,
                                     credential=password))
        return servers

    async def room(self, room_id: str) -> tuple[Room, RoomPolicy]:
        """The open room and its kind's policy (an MDT's room is opened by the MDT's domain
        when the session opens, server/mdt/)."""
        room = await self.store.rooms.get(room_id)
        if room is None or not room.open:
            raise NotFound("no such open room")
        return room, policy(room.kind)

    async def _may_join(self, conn: Connection, room_id: str) -> tuple[Room, RoomPolicy]:
        who = conn.principal
        # Before anything is read (or an MDT room opened) for them.
        access.room_joiner(who, "mdt" if mdt_of_room(room_id) else "consult")
        room, rules = await self.room(room_id)
        member = await self.store.rooms.member(room_id, who.username) is not None
        invited = member or await self.store.rooms.invited(room_id, who.username,
                                                           who.department)
        await rules.may_join(self.store, room, who, member=member, invited=invited)
        return room, rules

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
        room, rules = await self._may_join(conn, room_id)
        previous = await self.store.rooms.member(room_id, who.username)
        member = Member(
            id=who.username,
            display_name=(await self._display_name(who.username)),
            role=who.role.value, clinic=who.clinic, department=who.department,
            joined_at=previous.joined_at if previous else time.time(),
            state=MemberState.CONNECTED, media=MediaState.CONNECTING,
        )
        await self.store.rooms.put_member(room_id, member)
        rejoined = previous is not None and previous.state is not MemberState.LEFT
        await rules.joined(self.store, room, who, first=not rejoined)
        await self.store.rooms.touch(room_id, who.username, self.settings.reconnect_grace_s)
        older = self._attached.get((room_id, who.username))
        if older is not None and older is not conn:
            # Same identity from a new connection (a reload, a new 4G link): it takes over.
            older.rooms.discard(room_id)
            await self.hub.unsubscribe(older, keys.channel_room(room_id))
            older.send(out.RoomReplaced(room_id=room_id))
            await self.store.audit.record(
                action="room.replaced", user=who.username, role=who.role.value,
                clinic=who.clinic, remote=conn.remote, device=who.device, room=room_id,
                replaced_remote=older.remote)
        self._attached[(room_id, who.username)] = conn
        self._joined_rooms[room_id] = room
        conn.rooms.add(room_id)
        await self.hub.subscribe(conn, keys.channel_room(room_id))
        await self._announce(room, member, "rejoined" if rejoined else "joined")
        described = await rules.describe(self.store, room, who)
        extra = self.state_extras.get(room.kind)
        state = out.RoomState(
            room_id=room_id, kind=room.kind,
            participants=[m.public() for m in await self._members(room_id)],
            ice_servers=[s.to_json() for s in self.ice_servers(who.username)],
            grace_s=self.settings.reconnect_grace_s,
            **described, **(await extra(room, conn) if extra else {}),
        ).to_json()
        conn.send(state)
        if last_event_id:
            await self.send_events(conn, room_id, last_event_id)

        async def send_offer(sdp: str) -> None:
            current = self._attached.get((room_id, who.username))
            if current is not None:
                current.send(out.RtcOffer(room_id=room_id, sdp=sdp))

        async def on_state(state: str) -> None:
            current = self._attached.get((room_id, who.username))
            if current is not None:
                current.send(out.RtcState(room_id=room_id, state=state))
            if state == "connected":
                await self._media(room_id, who.username, MediaState.CONNECTED)
            elif state == "failed":
                await self._media_failed(room_id, who.username, "ice_failed")

        joined = self.on_joined.get(room.kind)
        if joined is not None:
            await joined(room, who.username)
        self._watch_media(room_id, who.username)
        await self.router.join(room_id, who.username, send_offer, on_state)
        await self.store.audit.record(
            action="room.join", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, room=room_id,
            **rules.audit_fields(room, described),
        )
        event(log, "room_joined", room=room_id, user=who.username, rejoined=rejoined)
        return state

    async def send_events(self, conn: Connection, room_id: str, after: str) -> None:
        """Every event of the room after `after`, in room.events messages of at most
        EVENTS_PER_MESSAGE (`more: true` on all but the last): nothing is capped away."""
        events = await self.store.rooms.events(room_id, after)
        for start in range(0, max(len(events), 1), EVENTS_PER_MESSAGE):
            page = events[start:start + EVENTS_PER_MESSAGE]
            conn.send(out.RoomEvents(room_id=room_id, events=page,
                                     more=start + EVENTS_PER_MESSAGE < len(events)))

    async def emit(self, room_id: str, event_type: str, **fields: object) -> str:
        """Append an event to the room's log and tell every member (on any node):
        `room.event` {room_id, event: {id, type, at, ...fields}}. Returns the event id."""
        room = await self.store.rooms.get(room_id)
        if room is None:
            raise NotFound("no such room")
        return await self._emit(room, event_type, fields)

    async def _emit(self, room: Room, event_type: str, fields: dict[str, object]) -> str:
        at = time.time()
        event_id = await self.store.rooms.append(room.id, event_type, fields,
                                                 kept=policy(room.kind).events_kept, at=at)
        body = json.loads(json.dumps(fields, ensure_ascii=False, default=str))
        await self.hub.publish(keys.channel_room(room.id), out.RoomEvent(
            room_id=room.id,
            event={"id": event_id, "type": event_type, "at": round(at, 3), **body}))
        return event_id

    async def close_room(self, room_id: str, reason: str) -> bool:
        """Close an open room: members (on every node) get `room.closed` {room_id, reason},
        its media is dropped, the log says `closed`. False if it was not open."""
        room = await self.store.rooms.get(room_id)
        if room is None or not room.open:
            return False
        await self._close(room, reason)
        return True

    async def _close(self, room: Room, reason: str) -> None:
        await self.store.rooms.close(room.id)
        self._joined_rooms.pop(room.id, None)
        await self.router.close_room(room.id)
        for m in await self.store.rooms.members(room.id):
            if m.state is not MemberState.LEFT:  # still in when it was closed for them
                await self.store.rooms.forget_presence(room.id, m.id)
                await self.store.rooms.set_state(room.id, m.id, MemberState.LEFT,
                                                 reason="room_closed")
        await policy(room.kind).closed(self.store, room, reason)
        await self.store.rooms.append(room.id, "closed", {"reason": reason},
                                      kept=policy(room.kind).events_kept)
        closed = out.RoomClosed(room_id=room.id, reason=reason)
        # This node's members are told and detached now; other nodes' through the channel
        # (by then no connection of this node listens to it any more).
        for (attached_room, user), conn in list(self._attached.items()):
            if attached_room == room.id:
                self._stop_watching(room.id, user)
                await self._detach(conn, room.id)
                conn.send(closed)
        await self.hub.publish(keys.channel_room(room.id), closed)
        event(log, "room_closed", room=room.id, reason=reason)

    def attached(self, conn: Connection, room_id: str) -> tuple[Room, RoomPolicy]:
        """The room and its policy; raises unless this connection holds its user's place in
        it. No Redis read: the room as this node saw it at the join."""
        self._require_attached(conn, room_id)
        room = self._joined_rooms.get(room_id)
        if room is None:
            raise NotFound("no such open room")
        return room, policy(room.kind)

    def local_connection(self, room_id: str, username: str) -> Connection | None:
        return self._attached.get((room_id, username))

    async def answer(self, conn: Connection, msg: RtcAnswer) -> None:
        self._require_attached(conn, msg.room_id)
        try:
            await self.router.answer(msg.room_id, conn.principal.username, msg.sdp)
        except (ValueError, KeyError) as exc:
            # A bad SDP is the client's error: an error reply, no stack trace in the log.
            raise InvalidMessage(f"rtc.answer refused: {_short(exc)}") from None

    async def candidate(self, conn: Connection, msg: RtcCandidate) -> None:
        self._require_attached(conn, msg.room_id)
        if msg.candidate is not None and msg.candidate.candidate:
            try:
                await self.router.candidate(msg.room_id, conn.principal.username,
                                            msg.candidate.model_dump())
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
        room, rules = await self.room(msg.room_id)
        await rules.may_invite(self.store, room, who)
        invitation = out.RoomInvited(room_id=msg.room_id, sender=who.username, kind=room.kind,
                                     **await rules.describe(self.store, room, who))
        if msg.username:
            user = await self.store.directory.get_user(msg.username)
            if user is None or user.role is not Role.EXPERT:
                raise NotFound(f"no expert {msg.username!r}")
            await self.store.rooms.invite(msg.room_id, msg.username)
            await rules.invited(self.store, room, msg.username, by=who.username)
            await self.hub.publish(keys.channel_user(msg.username), invitation)
        else:
            assert msg.department is not None
            if await self.store.directory.get_department(msg.department) is None:
                raise NotFound(f"no department {msg.department!r}")
            await self.store.rooms.invite(msg.room_id, f"department:{msg.department}")
            await self.hub.publish(keys.channel_department(msg.department), invitation)
        await self._emit(room, "invited", {"by": who.username, "username": msg.username,
                                           "department": msg.department})
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
            room = await self.store.rooms.get(room_id)
            if member is not None and room is not None:
                await self._announce(room, member, "reconnecting")

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
        room = await self.store.rooms.get(room_id)
        if member is not None and room is not None:
            await self._announce(room, member, f"media_{media.value}")
        return member

    async def _media_failed(self, room_id: str, user: str, why: str) -> None:
        member = await self._media(room_id, user, MediaState.FAILED)
        if member is None:
            return
        current = self._attached.get((room_id, user))
        if current is not None:
            current.send(out.RtcState(room_id=room_id, state="failed", reason=why,
                                      advice=MEDIA_ADVICE))
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
        await self.router.leave(room_id, user)
        await self.store.rooms.forget_presence(room_id, user)
        member = await self.store.rooms.set_state(room_id, user, MemberState.LEFT, reason=reason)
        room = await self.store.rooms.get(room_id)
        if room is None:
            return
        rules = policy(room.kind)
        await rules.left(self.store, room, user)
        if member is not None:
            await self._announce(room, member, "left", reason=reason)
        event(log, "room_left", room=room_id, user=user, reason=reason)
        hook = self.on_left.get(room.kind)
        if hook is not None:
            await hook(room, user)
        remaining = [m for m in await self._members(room_id) if m.state is not MemberState.LEFT]
        if not remaining and rules.closes_when_empty and room.open:
            await self._close(room, reason)

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
        self, room: Room, member: Member, what: str, reason: str | None = None
    ) -> None:
        extra = {"reason": reason} if reason else {}
        event_id = await self.store.rooms.append(room.id, what,
                                                 {"participant": member.id, **extra},
                                                 kept=policy(room.kind).events_kept)
        await self.hub.publish(keys.channel_room(room.id), out.RoomParticipant(
            room_id=room.id, event=what, participant=member.public(), event_id=event_id,
            reason=reason or None))

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


StateExtra = Callable[[Room, Connection], Awaitable[dict[str, Any]]]
LeftHook = Callable[[Room, str], Awaitable[None]]


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"

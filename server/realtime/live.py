"""Live rooms (an MDT): the shared view, who presents, the pointer, chat and the agenda's
current case — over the page WebSocket, fanned out to every node through Redis.

The view state and the presenter live in Redis (server/store/room_views.py): every update is
a compare-and-set on the version (a stale one is refused with `stale_view` and the current
state), control changes are one script (exactly one presenter), and both scripts publish their
result on the room channel themselves, so every node's pages see versions in order. A page
joining or rejoining gets the current view in `room.state`; a page that falls behind gets only
the newest `view.state` (the connection's outbox holds one per room: server/realtime/hub.py).
The view may show an ECG of the agenda instead of the images (its `ecg` member, checked by
access.room_ecg_study), the image keys kept for switching back — or none at all when the room
has no images to go back to (an agenda of ECGs only). The pointer is ephemeral
(not stored, at most 30 a second per presenter). Chat, control changes and the current case are
events of the room's log (`RoomService.emit`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.auth import access
from server.auth.principal import Principal
from server.errors import (
    Conflict,
    Forbidden,
    HuizhenError,
    InvalidParameter,
    NotFound,
    StaleView,
    TooManyRequests,
)
from server.log import event
from server.realtime import messages as m
from server.realtime import outbound as out
from server.realtime.hub import Connection, Hub, spawn
from server.realtime.room_policy import RoomPolicy
from server.realtime.rooms import RoomService
from server.store import Store, keys
from server.store.directory import Role
from server.store.grants import CONSULT
from server.store.room_views import ControlResult, UpdateResult
from server.store.rooms import MemberState, Room
from server.store.study_index import InstanceRecord

log = logging.getLogger(__name__)

POINTER_RATE = 30.0  # per second, per connection; more are dropped
CHAT_RATE, CHAT_BURST = 2.0, 10.0  # chat messages per second, per connection
ECG_CHECK_TTL_S = 2.0  # an allowed shared ECG is not re-checked on every view.update within this


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class LiveRooms:
    def __init__(self, store: Store, hub: Hub, rooms: RoomService) -> None:
        self.store = store
        self.hub = hub
        self.rooms = rooms
        self._pointer_budget: dict[int, _Bucket] = {}
        self._chat_budget: dict[int, _Bucket] = {}
        self.pointers_dropped = 0
        # (room, presenter, study, series, instance) -> when the ECG was last allowed (monotonic)
        self._ecg_allowed: dict[tuple[str, str, str, str, str], float] = {}
        # Set by the app: warm the shared image cache for a new view (server/dicomweb/prefetch.py).
        self.view_changed: Callable[[str, Principal, dict[str, Any]], Awaitable[None]] | None \
            = None
        rooms.state_extras["mdt"] = self.state_extra
        rooms.on_left["mdt"] = self.member_left

    # room.state ----------------------------------------------------------------------------
    async def state_extra(self, room: Room, conn: Connection) -> dict[str, Any]:
        view = await self.store.room_views.get(room.id)
        conn.view_sent(room.id, view.version)  # an older view.state still in flight is dropped
        return {"view": view.public(), "current_case": view.case_id,
                "last_event_id": await self.store.rooms.last_event_id(room.id)}

    async def _live_room(self, conn: Connection, room_id: str) -> tuple[Room, RoomPolicy]:
        room, rules = self.rooms.attached(conn, room_id)
        await rules.may_present(self.store, room, conn.principal)
        return room, rules

    # the shared view -----------------------------------------------------------------------
    async def update(self, conn: Connection, msg: m.ViewUpdate) -> out.ViewStateMsg:
        room, _ = await self._live_room(conn, msg.room_id)
        if msg.state.ecg is not None:
            await self._check_ecg(conn, room, msg.state.ecg)
        who = conn.principal.username
        at = round(time.time(), 3)
        state = msg.state.wire()  # no image part at all in an ECG-only room
        result = await self.store.room_views.update(
            msg.room_id, who, msg.base_version, json.dumps(state, separators=(",", ":")), at)
        if result.result is UpdateResult.NOT_PRESENTER:
            raise Forbidden("you are not presenting: send control.take or control.request",
                            presenter=result.presenter)
        if result.result is UpdateResult.STALE:
            raise StaleView(
                f"the view is at version {result.version}, not {msg.base_version}",
                version=result.version, state=result.state, presenter=result.presenter)
        if self.view_changed is not None:
            spawn(self.view_changed(msg.room_id, conn.principal, state))
        shown = out.ViewStateMsg(room_id=msg.room_id, version=result.version, presenter=who,
                                 state=state, at=at)
        # This node's followers at once; other nodes through the copy the CAS script published
        # (which this node's connections drop as a version they already have).
        self.hub.deliver_local(keys.channel_room(msg.room_id), shown, skip=conn)
        return shown  # the presenter's own answer (with its ref)

    async def _check_ecg(self, conn: Connection, room: Room, ecg: m.EcgView) -> None:
        """May this ECG be in the room's shared view (access.room_ecg_study: an ECG of a study
        on the agenda)? Every view.update carries the ECG member while the images are scrolled,
        so an allowed one is remembered ECG_CHECK_TTL_S (an agenda change is seen within it);
        a refusal is audited, as room.share's are."""
        who = conn.principal
        key = (room.id, who.username, ecg.study_uid, ecg.series_uid, ecg.sop_instance_uid)
        now = time.monotonic()
        if now - self._ecg_allowed.get(key, -ECG_CHECK_TTL_S) < ECG_CHECK_TTL_S:
            return
        try:
            clinic = access.room_ecg_study(who, room.kind,
                                           room_studies=await self.store.room_studies(room),
                                           study_uid=ecg.study_uid)
            record = await self._instance(clinic, ecg)
            access.ecg_instance(found=record is not None,
                                is_ecg=bool(record and record.ecg is not None))
        except (Forbidden, NotFound, InvalidParameter) as err:
            await self._refused(conn, "view.ecg.refused", err, room.id, ecg)
            raise
        if len(self._ecg_allowed) > 1024:
            self._ecg_allowed.clear()
        self._ecg_allowed[key] = now

    async def _instance(self, clinic: str, named: m.EcgView | m.RoomShare
                        ) -> InstanceRecord | None:
        """The instance a message names in a clinic's study; None when absent or not of the
        series named (a wrong series is as unknown as a missing instance)."""
        if not clinic:
            return None
        record = await self.store.studies.instance(clinic, named.study_uid,
                                                   named.sop_instance_uid)
        return record if record is not None and record.series_uid == named.series_uid else None

    async def _refused(self, conn: Connection, action: str, err: HuizhenError, room_id: str,
                       named: m.EcgView | m.RoomShare) -> None:
        """An ECG refused in a room is audited (who tried to show whom which instance)."""
        who = conn.principal
        await self.store.audit.record(
            action=action, user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, code=err.code, why=err.message,
            room=room_id, study=named.study_uid, instance=named.sop_instance_uid)

    # control -------------------------------------------------------------------------------
    async def control(
        self, conn: Connection, msg: m.ControlTake | m.ControlHandover | m.ControlRelease
    ) -> out.ControlChanged:
        room, rules = await self._live_room(conn, msg.room_id)
        who = conn.principal
        coordinator = await rules.is_coordinator(self.store, room, who)
        to = ""
        if isinstance(msg, m.ControlHandover):
            member = await self.store.rooms.member(room.id, msg.to)
            if member is None or member.state is MemberState.LEFT:
                raise NotFound(f"{msg.to!r} is not in the room")
            to = msg.to
        op = {"control.take": "take", "control.handover": "handover",
              "control.release": "release"}[msg.type]
        done = await self.store.room_views.control(room.id, op, who.username, to=to,
                                                   coordinator=coordinator, at=time.time())
        if done.result is ControlResult.REFUSED:
            if op == "take":
                raise Conflict(f"{done.presenter} presents: send control.request",
                               presenter=done.presenter)
            raise Forbidden("only the presenter or the coordinator does that",
                            presenter=done.presenter)
        if done.result is ControlResult.CHANGED:
            await self.rooms.emit(room.id, "control.changed", presenter=done.presenter,
                                  by=who.username, version=done.version)
            event(log, "control_changed", room=room.id, presenter=done.presenter,
                  by=who.username)
        return out.ControlChanged(room_id=room.id, presenter=done.presenter, by=who.username,
                                  version=done.version)

    async def request(self, conn: Connection, msg: m.ControlRequest) -> None:
        """Ask for control: the presenter and the coordinator are told (on any node)."""
        room, rules = await self._live_room(conn, msg.room_id)
        view = await self.store.room_views.get(room.id)
        session = await rules_session(rules, self.store, room)
        told = {u for u in (view.presenter, session.coordinator if session else None) if u}
        # Any coordinator account in the room coordinates too (access.room_coordinator).
        told |= {mem.id for mem in await self.store.rooms.members(room.id)
                 if mem.role == Role.COORDINATOR.value and mem.state is not MemberState.LEFT}
        told.discard(conn.principal.username)
        asked = out.ControlRequested(room_id=room.id, by=conn.principal.username)
        for user in sorted(told):
            await self.hub.publish(keys.channel_user(user), asked)

    async def member_left(self, room: Room, username: str) -> None:
        """A presenter who leaves the room hands control back (nobody presents)."""
        done = await self.store.room_views.control(room.id, "drop", username, at=time.time())
        if done.result is ControlResult.CHANGED:
            await self.rooms.emit(room.id, "control.changed", presenter=None, by=username,
                                  version=done.version, reason="left")

    # pointer, chat, agenda -----------------------------------------------------------------
    async def pointer(self, conn: Connection, msg: m.PointerMove) -> None:
        bucket = self._pointer_budget.get(id(conn))
        if bucket is None:
            bucket = self._pointer_budget[id(conn)] = _Bucket(POINTER_RATE, POINTER_RATE)
        if not bucket.take():
            self.pointers_dropped += 1
            return
        await self._live_room(conn, msg.room_id)
        who = conn.principal.username
        view = await self.store.room_views.get(msg.room_id)
        if view.presenter != who:
            raise Forbidden("only the presenter points")
        await self.hub.publish(keys.channel_room(msg.room_id), out.Pointer(
            room_id=msg.room_id, by=who, x=msg.x, y=msg.y,
            sop_instance_uid=msg.sop_instance_uid, frame=msg.frame), exclude=who)

    def disconnected(self, conn: Connection) -> None:
        self._pointer_budget.pop(id(conn), None)
        self._chat_budget.pop(id(conn), None)

    async def chat(self, conn: Connection, msg: m.ChatSend) -> out.ChatSent:
        self.rooms.attached(conn, msg.room_id)
        room, _ = await self.rooms.room(msg.room_id)
        text = msg.text.strip()
        if not text:
            raise InvalidParameter("an empty chat message")
        bucket = self._chat_budget.setdefault(id(conn), _Bucket(CHAT_RATE, CHAT_BURST))
        if not bucket.take():  # the log is the minutes: a flood must not fill it
            raise TooManyRequests("slow down: over 2 chat messages a second", limit="chat")
        event_id = await self.rooms.emit(room.id, "chat", by=conn.principal.username,
                                         text=text)
        return out.ChatSent(room_id=room.id, event_id=event_id)

    async def share_ecg(self, conn: Connection, msg: m.RoomShare) -> out.RoomShared:
        """The calling clinic's doctor sends one of their clinic's ECGs into a consult call:
        every other member is granted its study (kind consult, like the consult's own study,
        for the grant TTL) and the room gets the stored event `ecg.shared`, which the expert's
        page opens beside the video. Refusals are audited."""
        room, _ = self.rooms.attached(conn, msg.room_id)
        who = conn.principal
        try:
            consult = (await self.store.consults.get(room.consult_id)
                       if room.kind == "consult" and room.consult_id else None)
            record = await self._instance(who.clinic or "", msg)
            access.room_ecg_share(
                who, room.kind, consult_clinic=consult.clinic if consult else None,
                instance_clinic=record.clinic if record else None,
                is_ecg=bool(record and record.ecg is not None))
        except (Forbidden, NotFound, InvalidParameter) as err:
            await self._refused(conn, "room.share.refused", err, room.id, msg)
            raise
        assert consult is not None and record is not None
        others = [mem.id for mem in await self.store.rooms.members(room.id)
                  if mem.id != who.username]
        for username in others:
            await self.store.grants.grant(
                username, record.clinic, record.study_uid, kind=CONSULT, ref=consult.id,
                ttl_s=self.store.grants.ttl_s, by=who.username)
        await self.store.audit.record(
            action="room.share", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, room=room.id, consult=consult.id,
            study=record.study_uid, instance=record.sop_uid, to=",".join(others))
        event_id = await self.rooms.emit(
            room.id, "ecg.shared", by=who.username, study_uid=record.study_uid,
            series_uid=record.series_uid, sop_instance_uid=record.sop_uid)
        event(log, "ecg_shared", room=room.id, user=who.username, instance=record.sop_uid)
        return out.RoomShared(room_id=room.id, event_id=event_id)

    async def agenda(self, conn: Connection, msg: m.AgendaCurrent) -> None:
        self.rooms.attached(conn, msg.room_id)
        room, rules = await self.rooms.room(msg.room_id)
        who = conn.principal
        view = await self.store.room_views.get(room.id)
        access.room_agenda(who, room.kind,
                           coordinator=await rules.is_coordinator(self.store, room, who),
                           presenter=view.presenter == who.username)
        session = await rules_session(rules, self.store, room)
        if session is not None and msg.case_id not in {c.case_id for c in session.cases}:
            raise NotFound(f"no case {msg.case_id!r} on this MDT's agenda")
        await self.store.room_views.set_case(room.id, msg.case_id)
        await self.rooms.emit(room.id, "case.current", case_id=msg.case_id, by=who.username)


async def rules_session(rules: RoomPolicy, store: Store, room: Room) -> Any | None:
    """The MDT session behind a room, if the policy has one."""
    session = getattr(rules, "session", None)
    return await session(store, room) if session is not None else None

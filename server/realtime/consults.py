"""Consult requests over the page WebSocket: a kiosk doctor starts one, it rings for every
signed-in expert of the department, exactly one accepts, both land in the consult room.

A consult rings for at most `HUIZHEN_RING_TIMEOUT_S`: its deadline is in Redis and a sweeper on
every node ends overdue ones atomically (so a server restart does not leave one ringing forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.auth import access
from server.config import Settings
from server.errors import Forbidden, InvalidParameter, NotFound, TooManyRequests
from server.log import event
from server.log_throttle import REALTIME as LOG_THROTTLE
from server.realtime.hub import Connection, Hub
from server.realtime.messages import ConsultAccept, ConsultCancel, ConsultStart
from server.store import Store, keys
from server.store.consults import Consult, ConsultState, Outcome, RingRefused
from server.store.directory import Role

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0


class ConsultService:
    def __init__(self, settings: Settings, store: Store, hub: Hub) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        # A flag as well as the cancel: a library that swallows one CancelledError (seen
        # in a Redis call at shutdown) must not keep the loop, and the shutdown, going.
        self._closing = True
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def on_connect(self, conn: Connection) -> None:
        """Subscribe the page to what concerns its user, and show what is already ringing."""
        who = conn.principal
        await self.hub.subscribe(conn, keys.channel_user(who.username))
        if who.role is Role.EXPERT and who.department:
            await self.hub.subscribe(conn, keys.channel_department(who.department))
            for consult in await self.store.consults.ringing(who.department):
                conn.send({"type": _waiting_type(consult), "consult": consult.public()})
        if who.role is Role.DOCTOR and who.clinic:
            # A kiosk that reloaded (or whose link dropped) while waiting must learn where its
            # consult stands: still ringing, or accepted with a room to join.
            for consult in await self.store.consults.of_clinic(who.clinic):
                if consult.doctor != who.username:
                    continue
                if consult.state in (ConsultState.RINGING, ConsultState.REQUESTED):
                    conn.send({"type": "consult.created", "consult": consult.public()})
                elif consult.state is ConsultState.ACCEPTED and consult.room_id:
                    room = await self.store.rooms.get(consult.room_id)
                    if room is not None and room.open:
                        conn.send({"type": "consult.accepted", "consult": consult.public()})

    async def begin(self, conn: Connection, msg: ConsultStart) -> Consult:
        who = conn.principal
        access.require_role(who, Role.DOCTOR)
        assert who.clinic is not None
        if await self.store.directory.get_department(msg.department) is None:
            raise NotFound(f"no department {msg.department!r}")
        if msg.study_uid:
            owner = await self.store.studies.study_owner(msg.study_uid)
            access.check_study(who, owner)
        clinic = await self.store.directory.get_clinic(who.clinic)
        user = await self.store.directory.get_user(who.username)
        try:
            consult = await self.store.consults.create(
                clinic=who.clinic, clinic_name=clinic.name if clinic else who.clinic,
                doctor=who.username, department=msg.department,
                urgency=msg.urgency, question=msg.question, patient_name=msg.patient_name,
                patient_id=msg.patient_id, study_uid=msg.study_uid,
                doctor_name=user.display_name if user else who.username,
                ring_timeout_s=self.settings.ring_timeout_s,
                max_waiting=self.settings.consult_max_ringing,
                starts_per_hour=self.settings.consult_starts_per_hour,
            )
        except RingRefused as refused:
            await self.store.audit.record(
                action="consult.refused", user=who.username, role=who.role.value,
                clinic=who.clinic, remote=conn.remote, device=who.device, reason=refused.reason)
            if refused.reason == "waiting":
                raise TooManyRequests(
                    f"you already have {self.settings.consult_max_ringing} consults waiting: "
                    "cancel one first", limit="waiting") from None
            raise TooManyRequests(
                f"more than {self.settings.consult_starts_per_hour} consults started in the "
                "last hour: wait a little", limit="rate") from None
        await self.store.audit.record(
            action="consult.start", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=conn.remote, device=who.device, consult=consult.id, study=msg.study_uid or None,
        )
        await self.hub.publish(keys.channel_department(msg.department),
                               {"type": _waiting_type(consult), "consult": consult.public()})
        event(log, "consult_started", consult=consult.id, clinic=who.clinic,
              department=msg.department, urgency=msg.urgency.value)
        return consult

    async def cancel(self, conn: Connection, msg: ConsultCancel) -> Consult:
        consult = await self._own_consult(conn, msg.consult_id)
        if not await self.store.consults.cancel(consult):
            raise InvalidParameter("the consult is no longer waiting: it cannot be cancelled")
        cancelled = await self.store.consults.require(consult.id)
        await self.hub.publish(keys.channel_department(consult.department),
                               {"type": "consult.cancelled", "consult_id": consult.id,
                                "consult": cancelled.public()})
        event(log, "consult_cancelled", consult=consult.id)
        return cancelled

    async def accept(self, conn: Connection, msg: ConsultAccept) -> Consult:
        who = conn.principal
        access.require_role(who, Role.EXPERT)
        consult = await self.store.consults.require(msg.consult_id)
        if consult.department != who.department:
            raise Forbidden("this consult is for another department")
        room_id = self.store.rooms.new_id()
        accepted = await self.store.consults.accept(consult, who.username, room_id)
        await self.store.rooms.create(kind="consult", consult_id=consult.id, room_id=room_id)
        await self.store.rooms.invite(room_id, consult.doctor)
        await self.store.rooms.invite(room_id, who.username)
        await self.store.audit.record(
            action="consult.accept", user=who.username, role=who.role.value, clinic=None,
            remote=conn.remote, consult=consult.id, room=room_id,
        )
        public = accepted.public()
        await self.hub.publish(keys.channel_department(consult.department),
                               {"type": "consult.taken", "consult_id": consult.id,
                                "by": who.username, "_exclude": who.username})
        await self.hub.publish(keys.channel_user(consult.doctor),
                               {"type": "consult.accepted", "consult": public})
        event(log, "consult_accepted", consult=consult.id, expert=who.username, room=room_id)
        return accepted

    async def _own_consult(self, conn: Connection, consult_id: str) -> Consult:
        consult = await self.store.consults.get(consult_id)
        if consult is None or consult.doctor != conn.principal.username:
            raise NotFound("no such consult of yours")
        return consult

    async def ended(self, consult_id: str, outcome: Outcome = Outcome.COMPLETED) -> None:
        await self.store.consults.end(consult_id, outcome)

    async def sweep(self) -> int:
        """End the consults that rang past their deadline; tell the doctor and the department.
        Atomic per consult, so with several nodes each is announced once."""
        ended = 0
        for consult_id in await self.store.consults.due():
            consult = await self.store.consults.get(consult_id)
            if consult is None:
                await self.store.consults.forget_deadline(consult_id)
                continue
            if not await self.store.consults.expire(consult):
                continue  # accepted or cancelled meanwhile (the deadline entry is gone now)
            ended += 1
            unanswered = await self.store.consults.require(consult_id)
            message = {"type": "consult.unanswered", "consult_id": consult_id,
                       "consult": unanswered.public(),
                       "ring_timeout_s": self.settings.ring_timeout_s}
            await self.hub.publish(keys.channel_user(consult.doctor), message)
            await self.hub.publish(keys.channel_department(consult.department), message)
            await self.store.audit.record(
                action="consult.unanswered", user=consult.doctor, role=Role.DOCTOR.value,
                clinic=consult.clinic, remote=None, consult=consult_id,
                department=consult.department)
            event(log, "consult_unanswered", consult=consult_id, department=consult.department)
        return ended

    async def _sweep_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            if self._closing:
                return
            try:
                await self.sweep()
            except Exception:
                suppressed = LOG_THROTTLE.allow("consult_sweep_failed")
                if suppressed is not None:
                    log.exception("consult_sweep_failed",
                                  extra={"fields": {"suppressed": suppressed}})


def _waiting_type(consult: Consult) -> str:
    return "consult.requested" if consult.state is ConsultState.REQUESTED else "consult.ringing"

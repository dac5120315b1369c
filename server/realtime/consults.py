"""Consult requests over the page WebSocket: a kiosk doctor starts one, it rings for every
signed-in expert of the department, exactly one accepts, both land in the consult room.

A consult rings for at most `HUIZHEN_RING_TIMEOUT_S`: its deadline is in Redis and a sweeper on
every node ends overdue ones atomically (so a server restart does not leave one ringing forever).
"""

from __future__ import annotations

import asyncio
import logging
import time

from server.auth import access
from server.clinical.reports import opinion_states
from server.config import Settings
from server.errors import (
    Forbidden,
    InvalidParameter,
    NoExpertOnline,
    NotFound,
    PatientMismatch,
    TooManyRequests,
)
from server.log import event
from server.patient_match import PatientCheck, compare, study_patient
from server.realtime import outbound as out
from server.realtime.hub import Connection, Hub
from server.realtime.messages import ConsultAccept, ConsultCancel, ConsultStart
from server.store import Store, keys
from server.store.consults import Consult, ConsultState, Outcome, RingRefused
from server.store.directory import Role
from server.sweeper import Sweeper

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
# Experts' presence entries live this long; each node refreshes its own every PRESENCE_REFRESH_S.
PRESENCE_TTL_S = 30.0
PRESENCE_REFRESH_S = 10.0


class ConsultService:
    def __init__(self, settings: Settings, store: Store, hub: Hub) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        # Experts connected to this node: (department, username) -> open connections.
        self._experts: dict[tuple[str, str], int] = {}
        self._last_counts: dict[str, int] = {}
        self._presence_lock = asyncio.Lock()

    def register_sweeps(self, sweeper: Sweeper) -> None:
        """Ring timeouts (atomic per consult, on every node) and this node's experts'
        presence, which only this node can refresh."""
        sweeper.register("consult_ring_timeouts", self.sweep, SWEEP_INTERVAL_S)
        sweeper.register("experts_presence", self._refresh_presence, PRESENCE_REFRESH_S)

    async def on_connect(self, conn: Connection, ready: out.Ready) -> None:
        """Subscribe the page to what concerns its user, send `ready`, then show what is
        already ringing. `ready` goes out only once every subscription is in place, so a page
        that acts on it (or a peer that acts once it is seen) misses no event."""
        who = conn.principal
        await self.hub.subscribe(conn, keys.channel_user(who.username))
        if who.role is Role.EXPERT and who.department:
            await self._expert_online(who.department, who.username)
            try:
                await self.hub.subscribe(conn, keys.channel_department(who.department))
                conn.send(ready)
                for consult in await self.store.consults.ringing(who.department):
                    conn.send(_waiting(consult))
            except BaseException:
                # The handler's cleanup never runs for a connection that failed here: without
                # this the expert would stay "online" on this node for good.
                await self._expert_offline(who.department, who.username)
                raise
            return
        if not (who.role is Role.DOCTOR and who.clinic):
            conn.send(ready)
            return
        await self.hub.subscribe(conn, keys.CHANNEL_DOCTORS)
        conn.send(ready)
        conn.send(out.Departments(departments=await self.departments()))
        # A kiosk that reloaded (or whose link dropped) while waiting must learn where its
        # consult stands: still ringing, or accepted with a room to join.
        for consult in await self.store.consults.of_clinic(who.clinic):
            if consult.doctor != who.username:
                continue
            if consult.state in (ConsultState.RINGING, ConsultState.REQUESTED):
                conn.send(out.ConsultCreated(consult=consult.public()))
            elif consult.state is ConsultState.ACCEPTED and consult.room_id:
                room = await self.store.rooms.get(consult.room_id)
                if room is not None and room.open:
                    conn.send(out.ConsultAccepted(consult=consult.public()))

    # history -------------------------------------------------------------------------------------
    async def history(self, scope: tuple[str, str], limit: int, offset: int) -> dict:
        """One page of consults, newest first, for `scope` (from access.consult_history_scope)."""
        kind, who = scope
        consults = self.store.consults
        if kind == "clinic":
            page = await consults.of_clinic(who, limit, offset)
            total = await consults.count_of_clinic(who)
        else:
            page = await consults.of_user(who, limit, offset)
            total = await consults.count_of_user(who)
        items = [await self._history_item(c) for c in page]
        # Each consult's signed opinion (会诊意见), or pending for one that happened without.
        opinions = await opinion_states(self.store, [c.id for c in page])
        for item in items:
            item["opinion"] = opinions.get(item["id"])
            item["opinion_pending"] = (item["opinion"] is None
                                       and item["outcome"] == "completed")
        return {"consults": items, "total": total, "limit": limit, "offset": offset}

    async def _history_item(self, consult: Consult) -> dict:
        participants: list[dict] = []
        room_open = False
        if consult.room_id:
            room = await self.store.rooms.get(consult.room_id)
            room_open = bool(room and room.open)
            participants = [{"id": m.id, "display_name": m.display_name, "role": m.role,
                             "state": m.state.value, "reason": m.reason}
                            for m in await self.store.rooms.members(consult.room_id)]
        end = consult.ended_at or (time.time() if consult.state is ConsultState.ACCEPTED else 0)
        duration = max(0.0, end - consult.accepted_at) if consult.accepted_at and end else 0.0
        outcome = consult.outcome or (
            "in_progress" if consult.state is ConsultState.ACCEPTED else "waiting"
            if consult.state in (ConsultState.RINGING, ConsultState.REQUESTED) else "")
        return {
            **consult.public(),
            "participants": participants,
            "duration_s": round(duration, 1),
            "outcome": outcome,
            "rejoinable": consult.state is ConsultState.ACCEPTED and room_open,
        }

    # experts online ------------------------------------------------------------------------------
    async def departments(self) -> list[dict]:
        """Every department with how many of its experts are online."""
        depts = await self.store.directory.departments()
        counts = await self.store.presence.counts([d.id for d in depts])
        return [{"id": d.id, "name": d.name, "experts_online": counts.get(d.id, 0)}
                for d in depts]

    async def disconnected(self, conn: Connection) -> None:
        who = conn.principal
        if who.role is Role.EXPERT and who.department:
            await self._expert_offline(who.department, who.username)

    async def _expert_online(self, department: str, username: str) -> None:
        async with self._presence_lock:
            key = (department, username)
            self._experts[key] = self._experts.get(key, 0) + 1
            await self.store.presence.online(department, username, PRESENCE_TTL_S)
        await self._push_counts()

    async def _expert_offline(self, department: str, username: str) -> None:
        async with self._presence_lock:
            key = (department, username)
            held = self._experts.get(key, 0) - 1
            if held > 0:
                self._experts[key] = held
                return
            self._experts.pop(key, None)
            await self.store.presence.offline(department, username)
        await self._push_counts()

    async def _refresh_presence(self) -> None:
        for department, username in list(self._experts):
            await self.store.presence.online(department, username, PRESENCE_TTL_S)
        await self._push_counts()

    async def _push_counts(self) -> None:
        """Tell every clinic doctor when a department's count changed (from any node)."""
        departments = await self.departments()
        counts = {d["id"]: d["experts_online"] for d in departments}
        if counts != self._last_counts:
            self._last_counts = counts
            await self.hub.publish(keys.CHANNEL_DOCTORS,
                                   out.Departments(departments=departments))

    async def begin(self, conn: Connection, msg: ConsultStart) -> Consult:
        who = conn.principal
        access.require_role(who, Role.DOCTOR)
        assert who.clinic is not None
        if await self.store.directory.get_department(msg.department) is None:
            raise NotFound(f"no department {msg.department!r}")
        patient_name, patient_id = msg.patient_name.strip(), msg.patient_id.strip()
        check, study = PatientCheck.NO_STUDY, None
        if msg.study_uid:
            owner = await self.store.studies.study_owner(who.clinic, msg.study_uid)
            access.check_study(who, owner)
            record = await self.store.studies.study(who.clinic, msg.study_uid)
            if record is None:
                raise NotFound("no such study")
            comparison = compare(patient_name, patient_id, study_patient(record.attrs))
            study = comparison.study
            patient_name, patient_id = comparison.patient_name, comparison.patient_id
            check = comparison.check
            if check is PatientCheck.MISMATCH:
                if not msg.confirm_patient_mismatch:
                    raise PatientMismatch(
                        "the attached study belongs to another patient: check it, or confirm "
                        "with confirm_patient_mismatch: true",
                        study_patient_name=study.display_name,
                        study_patient_id=study.patient_id)
                check = PatientCheck.MISMATCH_CONFIRMED
        if not msg.leave_request:
            online = (await self.store.presence.counts([msg.department]))[msg.department]
            if online == 0:
                raise NoExpertOnline(
                    f"no expert of {msg.department} is online: choose another department or "
                    "leave the request (leave_request: true)",
                    department=msg.department, experts_online=0)
        clinic = await self.store.directory.get_clinic(who.clinic)
        user = await self.store.directory.get_user(who.username)
        try:
            consult = await self.store.consults.create(
                clinic=who.clinic, clinic_name=clinic.name if clinic else who.clinic,
                doctor=who.username, department=msg.department,
                urgency=msg.urgency, question=msg.question, patient_name=patient_name,
                patient_id=patient_id, study_uid=msg.study_uid,
                patient_check=check.value,
                study_patient_name=study.display_name if study else "",
                study_patient_id=study.patient_id if study else "",
                doctor_name=user.display_name if user else who.username,
                ring_timeout_s=self.settings.ring_timeout_s,
                max_waiting=self.settings.consult_max_ringing,
                starts_per_hour=self.settings.consult_starts_per_hour,
                requested=msg.leave_request,
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
        if check is PatientCheck.MISMATCH_CONFIRMED:
            assert study is not None
            await self.store.audit.record(
                action="consult.patient_mismatch_confirmed", user=who.username,
                role=who.role.value, clinic=who.clinic, remote=conn.remote, device=who.device,
                consult=consult.id, study=msg.study_uid, patient_name=patient_name,
                patient_id=patient_id, study_patient_name=study.display_name,
                study_patient_id=study.patient_id)
        await self.hub.publish(keys.channel_department(msg.department),
                               _waiting(consult))
        event(log, "consult_started", consult=consult.id, clinic=who.clinic,
              department=msg.department, urgency=msg.urgency.value)
        return consult

    async def cancel(self, conn: Connection, msg: ConsultCancel) -> Consult:
        consult = await self._own_consult(conn, msg.consult_id)
        if not await self.store.consults.cancel(consult):
            raise InvalidParameter("the consult is no longer waiting: it cannot be cancelled")
        cancelled = await self.store.consults.require(consult.id)
        await self.hub.publish(keys.channel_department(consult.department),
                               out.ConsultCancelled(consult_id=consult.id,
                                                    consult=cancelled.public()))
        event(log, "consult_cancelled", consult=consult.id)
        return cancelled

    async def accept(self, conn: Connection, msg: ConsultAccept) -> Consult:
        who = conn.principal
        try:
            access.require_role(who, Role.EXPERT)
            consult = await self.store.consults.require(msg.consult_id)
            if consult.department != who.department:
                raise Forbidden("this consult is for another department")
        except (Forbidden, NotFound) as err:
            await self.store.audit.record(
                action="consult.accept.refused", user=who.username, role=who.role.value,
                clinic=who.clinic, remote=conn.remote, device=who.device, consult=msg.consult_id,
                code=err.code, why=err.message)
            raise
        room_id = self.store.rooms.new_id()
        accepted = await self.store.consults.accept(consult, who.username, room_id)
        await self.store.rooms.create(kind="consult", ref=consult.id, room_id=room_id)
        await self.store.rooms.invite(room_id, consult.doctor)
        await self.store.rooms.invite(room_id, who.username)
        await self.store.grant_consult_study(accepted, [who.username])
        await self.store.audit.record(
            action="consult.accept", user=who.username, role=who.role.value, clinic=None,
            remote=conn.remote, consult=consult.id, room=room_id,
        )
        public = accepted.public()
        await self.hub.publish(keys.channel_department(consult.department),
                               out.ConsultTaken(consult_id=consult.id, by=who.username),
                               exclude=who.username)
        await self.hub.publish(keys.channel_user(consult.doctor),
                               out.ConsultAccepted(consult=public))
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
            message = out.ConsultUnanswered(consult_id=consult_id,
                                            consult=unanswered.public(),
                                            ring_timeout_s=self.settings.ring_timeout_s)
            await self.hub.publish(keys.channel_user(consult.doctor), message)
            await self.hub.publish(keys.channel_department(consult.department), message)
            await self.store.audit.record(
                action="consult.unanswered", user=consult.doctor, role=Role.DOCTOR.value,
                clinic=consult.clinic, remote=None, consult=consult_id,
                department=consult.department)
            event(log, "consult_unanswered", consult=consult_id, department=consult.department)
        return ended


def _waiting(consult: Consult) -> out.Out:
    if consult.state is ConsultState.REQUESTED:
        return out.ConsultRequested(consult=consult.public())
    return out.ConsultRinging(consult=consult.public())

"""Critical-value alerts (危急值, issue #10 item 5) and the escalation of unanswered consult
requests (item 6): domain rules, no HTTP.

Closed loop, as China's critical-value rules ask: an expert raises an alert from a report, a
reading request or a live consult (tier `critical`, or `significant` for a significant positive
finding, 重大阳性); every connected page of the clinic's doctors gets it at once (one publish on
the clinic's channel) and rings until a doctor of the clinic acknowledges it with a read-back
of the finding; the raising expert's department sees the acknowledgement live; the clinic then
records the action taken. One register lists every alert with its timeline.

Escalation while nobody acknowledges (`HUIZHEN_ALERT_ESCALATION_S`, seconds after raising):
1. re-notify the clinic (every page rings again, louder);
2. the clinic's escalation contacts and the raising department's head;
3. the on-duty coordinators (every coordinator when none is on duty).
Driven from Redis (server/store/alerts.py): due times in a sorted set, one node at a time
holding the sweep lock, each step one Lua script (recorded exactly once), delivery through an
outbox that a surviving node completes if the committing one died. Every step is timestamped in
the alert's timeline and appended to an fsync'd journal file before it is acknowledged.

Unanswered consults (`HUIZHEN_CONSULT_ESCALATION_S`, seconds after the start, while ringing):
1. re-ring the department; 2. notify the whole department and its head (inboxes: also those
not online). Each step is audited (`consult.escalated`, with its level and time).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from server.auth import access
from server.auth.principal import Principal
from server.config import Settings
from server.errors import Forbidden, InvalidParameter, NotFound, ReadBackMismatch
from server.log import event
from server.realtime import outbound as out
from server.realtime.hub import Connection, Hub
from server.store import Store, keys
from server.store.alerts import Alert, AlertState, Tier, step
from server.store.consults import ConsultState
from server.store.directory import Role
from server.sweeper import Sweeper

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.5
LOCK_TTL_S = 5.0
# A committed step whose delivery no node confirmed within this is delivered again (the
# committing node died between the two).
OUTBOX_GRACE_S = 5.0
MAX_REGISTER = 2000
STATES = ("open", "raised", "acknowledged", "handled", "all")
STEP_NAMES = ("renotified", "escalated", "escalated_coordinator")


@dataclass(frozen=True)
class RaiseRequest:
    tier: Tier
    finding: str
    report_id: str = ""
    consult_id: str = ""
    item_id: str = ""


@dataclass(frozen=True)
class Source:
    """What an alert is about, resolved from a report, a reading request or a consult."""

    kind: str
    id: str
    clinic: str
    study_uid: str
    patient_name: str
    patient_id: str
    responsible: tuple[str, ...]  # the experts who may raise on it
    report_id: str = ""
    item_id: str = ""
    consult_id: str = ""


ReportResolver = Callable[[str], Awaitable[Source | None]]


@dataclass(frozen=True)
class RegisterFilter:
    clinic: str | None = None
    department: str | None = None
    state: str = "all"
    tier: Tier | None = None
    since: float = 0.0
    until: float = float("inf")
    limit: int = 500


# Read-back ------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum() or ch == ".")


def read_back_matches(finding: str, read_back: str) -> bool:
    """Does the receiver's read-back repeat the finding? Every number of the finding (a value,
    a size) must be in it, and the text must be mostly the same (case, spacing, punctuation
    and full-width forms ignored): a read-back is a repetition, not a summary."""
    f, r = _normal(finding), _normal(read_back)
    if not r:
        return False
    if f == r:
        return True
    wanted = [n.replace(",", ".") for n in _NUMBER.findall(unicodedata.normalize("NFKC",
                                                                                  finding))]
    have = {n.replace(",", ".") for n in _NUMBER.findall(unicodedata.normalize("NFKC",
                                                                                read_back))}
    if any(n not in have for n in wanted):
        return False
    return SequenceMatcher(None, f, r, autojunk=False).ratio() >= 0.8


# The service ----------------------------------------------------------------------------------

NotifierGetter = Callable[[], Any]


class AlertService:
    hub: Hub

    def __init__(self, settings: Settings, store: Store, executor: Executor | None = None
                 ) -> None:
        self.settings = settings
        self.store = store
        self._executor = executor
        self._notifier: NotifierGetter = lambda: None
        self.report_resolver: ReportResolver | None = None
        self.journal_path = settings.data_dir / "alerts" / "journal.jsonl"

    # lifecycle --------------------------------------------------------------------------------
    async def start(self, hub: Hub, notifier: NotifierGetter = lambda: None) -> None:
        self.hub = hub
        self._notifier = notifier

    def register_sweeps(self, sweeper: Sweeper) -> None:
        """Escalation steps, consult escalations and unfinished deliveries: one node at a time
        (the outbox must not be redelivered by two)."""
        sweeper.register("escalation", self.sweep, SWEEP_INTERVAL_S, lock_ttl_s=LOCK_TTL_S)

    def schedule(self, tier: Tier) -> tuple[int, ...]:
        return (self.settings.alert_escalation_s if tier is Tier.CRITICAL
                else self.settings.alert_significant_escalation_s)

    # the page WebSocket -----------------------------------------------------------------------
    async def on_connect(self, conn: Connection) -> None:
        """After `ready`: the alerts this page must show now (`alerts.open`) — a reloaded or
        reconnected page rings again for what is still unacknowledged."""
        who = conn.principal
        if who.role is Role.DOCTOR and who.clinic:
            alerts = await self.store.alerts.open_of_clinic(who.clinic)
        elif who.role in (Role.EXPERT, Role.COORDINATOR):
            recent = await self.store.alerts.listing(
                department=who.department if who.role is Role.EXPERT else None,
                since=time.time() - 7 * 24 * 3600, limit=200)
            alerts = [a for a in recent if a.state is AlertState.RAISED
                      and (who.role is Role.EXPERT or who.username in a.told_users)]
            if who.role is Role.EXPERT:
                told = await self.store.alerts.listing(since=time.time() - 24 * 3600, limit=200)
                alerts += [a for a in told if a.state is AlertState.RAISED
                           and who.username in a.told_users and a not in alerts]
        else:
            return
        conn.send(out.AlertsOpen(alerts=[a.public() for a in alerts]))

    # raising ----------------------------------------------------------------------------------
    async def raise_alert(self, who: Principal, req: RaiseRequest, remote: str | None = None
                          ) -> Alert:
        access.require_role(who, Role.EXPERT)
        source = await self._source(who, req)
        access.require_alert_raiser(who, source.responsible)
        clinic = await self.store.directory.get_clinic(source.clinic)
        user = await self.store.directory.get_user(who.username)
        now = time.time()
        assert who.department is not None
        alert = Alert(
            id=self.store.alerts.new_id(), tier=req.tier, state=AlertState.RAISED,
            clinic=source.clinic, clinic_name=clinic.name if clinic else source.clinic,
            department=who.department, raised_by=who.username,
            raised_by_name=user.display_name if user else who.username, source=source.kind,
            source_id=source.id, report_id=source.report_id, consult_id=source.consult_id,
            item_id=source.item_id, study_uid=source.study_uid,
            patient_name=source.patient_name, patient_id=source.patient_id,
            finding=req.finding, created_at=now)
        doctors = sorted(await self.store.directory.members(clinics=[source.clinic]))
        first = step("raised", who.username, doctors, at=now, tier=req.tier.value,
                     finding=req.finding)
        stored = await self.store.alerts.create(
            alert, first, now + self.schedule(req.tier)[0])
        await self.store.alerts.outbox_add(f"alert:{alert.id}:0", now)
        await self._journal(stored, first)
        await self.store.audit.record(
            action="alert.raise", user=who.username, role=who.role.value, clinic=None,
            remote=remote, device=who.device, alert=alert.id, tier=req.tier.value,
            study=source.study_uid or None, study_clinic=source.clinic,
            source=f"{source.kind}:{source.id}")
        await self._deliver(stored, 0, first)
        event(log, "alert_raised", alert=alert.id, tier=req.tier.value, clinic=source.clinic,
              department=alert.department)
        return stored

    async def _source(self, who: Principal, req: RaiseRequest) -> Source:
        given = [x for x in (req.report_id, req.consult_id, req.item_id) if x]
        if len(given) != 1:
            raise InvalidParameter("give exactly one of report_id, consult_id or item_id")
        if req.consult_id:
            consult = await self.store.consults.get(req.consult_id)
            if consult is None:
                raise NotFound("no such consult")
            responsible = {consult.accepted_by} if consult.accepted_by else set()
            if consult.room_id:
                responsible |= {m.id for m in await self.store.rooms.members(consult.room_id)
                                if m.role == Role.EXPERT.value}
            return Source("consult", consult.id, consult.clinic, consult.study_uid,
                          consult.patient_name, consult.patient_id,
                          tuple(sorted(responsible)), consult_id=consult.id)
        if req.item_id:
            item = await self.store.worklist.get(req.item_id)
            if item is None:
                raise NotFound("no such reading request")
            return Source("item", item.id, item.clinic, item.study_uid, item.patient_name,
                          item.patient_id, (item.claimed_by,) if item.claimed_by else (),
                          item_id=item.id, report_id=item.report_id)
        if self.report_resolver is not None:
            found = await self.report_resolver(req.report_id)
        else:
            found = await self._report_source(req.report_id)
        if found is None:
            raise NotFound("no such report")
        return found

    async def _report_source(self, report_id: str) -> Source | None:
        """A report (server/clinical/reports.py): its author and signers, and the holder of
        its reading request, may raise on it."""
        report = await self.store.reports.get(report_id)
        if report is None:
            return None
        s = report.subject
        responsible = {report.author, *(v.signer for v in report.versions if v.signer)}
        if report.draft is not None:
            responsible.add(report.draft.author)
        if s.reading_request_id:
            item = await self.store.worklist.get(s.reading_request_id)
            if item is not None and item.claimed_by:
                responsible.add(item.claimed_by)
        return Source("report", report.id, s.clinic, s.study_uid, s.patient_name, s.patient_id,
                      tuple(sorted(r for r in responsible if r)), report_id=report.id,
                      item_id=s.reading_request_id, consult_id=s.consult_id)

    # acknowledging ----------------------------------------------------------------------------
    async def acknowledge(self, who: Principal, alert_id: str, read_back: str,
                          receiver_name: str = "", remote: str | None = None) -> Alert:
        alert = await self.store.alerts.require(alert_id)
        access.require_alert_receiver(who, alert.clinic)
        if not read_back_matches(alert.finding, read_back):
            await self.store.audit.record(
                action="alert.read_back_mismatch", user=who.username, role=who.role.value,
                clinic=who.clinic, remote=remote, device=who.device, alert=alert.id)
            raise ReadBackMismatch(
                "the read-back does not repeat the finding: read it again and type it back")
        user = await self.store.directory.get_user(who.username)
        name = receiver_name.strip() or (user.display_name if user else who.username)
        entry = step("acknowledged", who.username, [alert.raised_by], read_back=read_back,
                     receiver=name, device=who.device or None)
        done = await self.store.alerts.acknowledge(alert, who.username, name, read_back, entry)
        await self._journal(done, entry)
        await self.store.audit.record(
            action="alert.acknowledge", user=who.username, role=who.role.value,
            clinic=who.clinic, remote=remote, device=who.device, alert=alert.id,
            receiver=name, ack_delay_s=round(done.acknowledged_at - done.created_at, 1))
        await self._publish(done, "alert.acknowledged", entry)
        await self._notify((done.raised_by, *done.told_users), "alert.acknowledged", done,
                           exclude=who.username)
        return done

    async def handled(self, who: Principal, alert_id: str, action: str,
                      remote: str | None = None) -> Alert:
        alert = await self.store.alerts.require(alert_id)
        access.require_alert_receiver(who, alert.clinic)
        user = await self.store.directory.get_user(who.username)
        name = user.display_name if user else who.username
        entry = step("handled", who.username, [alert.raised_by], action=action)
        done = await self.store.alerts.handled(alert, who.username, name, action, entry)
        await self._journal(done, entry)
        await self.store.audit.record(
            action="alert.handled", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=remote, device=who.device, alert=alert.id)
        await self._publish(done, "alert.handled", entry)
        return done

    # reading ----------------------------------------------------------------------------------
    async def get(self, who: Principal, alert_id: str, remote: str | None = None
                  ) -> dict[str, Any]:
        alert = await self.store.alerts.get(alert_id)
        if alert is None:
            raise NotFound("no such alert")
        access.check_alert(who, alert.clinic, alert.department, alert.told_users)
        await self.store.audit.record(
            action="alert.view", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=remote, device=who.device, alert=alert.id, study_clinic=alert.clinic)
        return {**alert.public(), "timeline": await self.store.alerts.timeline(alert_id)}

    async def register(self, who: Principal, flt: RegisterFilter, remote: str | None = None
                       ) -> list[dict[str, Any]]:
        """The register (统一登记): every alert the caller may see, newest first, each with
        its timeline."""
        kind, scope = access.alert_scope(who)
        clinic, department = flt.clinic, flt.department
        if kind == "clinic":
            if clinic and clinic != scope:
                raise Forbidden("a clinic sees its own alerts only")
            clinic = scope
        elif kind == "department":
            if department and department != scope:
                raise Forbidden("an expert sees their department's alerts only")
            department = scope
        alerts = await self.store.alerts.listing(
            clinic=clinic, department=department if not clinic else None, since=flt.since,
            until=flt.until, limit=MAX_REGISTER)
        rows = [a for a in alerts if _register_match(a, flt, department)][:flt.limit]
        timelines = await self.store.alerts.timelines([a.id for a in rows])
        await self.store.audit.record(
            action="alert.register", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=remote, device=who.device, scope=f"{kind}:{scope}", count=len(rows))
        return [{**a.public(), "timeline": timelines.get(a.id, [])} for a in rows]

    async def communication(self, report_id: str) -> list[dict[str, Any]]:
        """For the report (H5): each alert raised on it — who was told, when, the read-back —
        to print with the report. The caller has already checked the viewer may see it."""
        out = []
        report = await self.store.reports.get(report_id)
        subject = report.subject if report is not None else None
        alerts = await self.store.alerts.of_report(
            report_id, subject.reading_request_id if subject else "",
            subject.consult_id if subject else "")
        for alert in alerts:
            timeline = await self.store.alerts.timeline(alert.id)
            out.append({
                "alert_id": alert.id, "tier": alert.tier.value, "state": alert.state.value,
                "finding": alert.finding, "raised_by": alert.raised_by_name,
                "raised_at": alert.created_at,
                "acknowledged_by": alert.acknowledged_name or alert.acknowledged_by,
                "acknowledged_at": alert.acknowledged_at or None,
                "read_back": alert.read_back, "action_taken": alert.action_taken,
                "timeline": [{"at": e["at"], "step": e["step"], "to": e.get("to", [])}
                             for e in timeline],
            })
        return out

    # escalation -------------------------------------------------------------------------------
    async def sweep(self, now: float | None = None) -> int:
        """One sweep (the sweeper runs it under the `escalation` lock): due alert steps,
        consult escalations, and deliveries a dead node left unfinished. Each step is a
        compare-and-set, so even sweeps run at once record it once. Returns the number of
        steps fired here."""
        now = time.time() if now is None else now
        fired = 0
        for alert_id in await self.store.alerts.due(now):
            fired += await self._escalate(alert_id, now)
        fired += await self._escalate_consults(now)
        await self._redeliver(now - OUTBOX_GRACE_S)
        return fired

    async def _escalate(self, alert_id: str, now: float) -> int:
        alert = await self.store.alerts.get(alert_id)
        if alert is None or alert.state is not AlertState.RAISED:
            await self.store.redis.zrem(keys.ALERTS_DUE, alert_id)
            return 0
        schedule = self.schedule(alert.tier)
        level = alert.level
        if level >= len(schedule):
            await self.store.redis.zrem(keys.ALERTS_DUE, alert_id)
            return 0
        to, told = await self._recipients(alert, level + 1)
        entry = step(STEP_NAMES[level], "system", to, at=now, level=level + 1,
                     due_at=alert.created_at + schedule[level])
        next_due = alert.created_at + schedule[level + 1] if level + 1 < len(schedule) else None
        if not await self.store.alerts.record_step(alert, entry, next_due, told):
            return 0
        fresh = await self.store.alerts.require(alert_id)
        await self._journal(fresh, entry)
        await self.store.audit.record(
            action="alert.escalate", user="system", role="system", clinic=None, remote=None,
            alert=alert_id, level=level + 1, step=entry["step"], to=",".join(to))
        await self._deliver(fresh, level + 1, entry)
        event(log, "alert_escalated", alert=alert_id, level=level + 1, recipients=len(to))
        return 1

    async def _recipients(self, alert: Alert, level: int) -> tuple[list[str], list[str]]:
        """Who a step tells, and who of them are new to the alert (beyond the clinic)."""
        directory = self.store.directory
        if level == 1:
            return sorted(await directory.members(clinics=[alert.clinic])), []
        if level == 2:
            dept = await directory.get_department(alert.department)
            contacts = await directory.clinic_contacts(alert.clinic)
            head = [dept.head] if dept and dept.head else []
            to = sorted(set(contacts) | set(head)) or sorted(
                await directory.members(clinics=[alert.clinic]))
            return to, [u for u in to if u not in alert.told_users]
        to = await directory.on_duty()
        return to, [u for u in to if u not in alert.told_users]

    async def _deliver(self, alert: Alert, level: int, entry: dict[str, Any]) -> None:
        """Tell the pages and inboxes of one committed step, then clear its outbox entry."""
        if level == 0:
            await self._publish(alert, "alert.raised", entry)
            await self._notify_audience({"clinics": (alert.clinic,)}, "alert.raised", alert)
        else:
            await self._publish(alert, "alert.escalated", entry, extra_users=entry.get("to"))
            if level >= 2:
                await self._notify(tuple(entry.get("to", [])), "alert.escalated", alert)
            else:
                await self._notify_audience({"clinics": (alert.clinic,)}, "alert.escalated",
                                            alert)
        await self.store.alerts.delivered(f"alert:{alert.id}:{level}")

    async def _redeliver(self, older_than: float) -> None:
        for member in await self.store.alerts.undelivered(older_than):
            kind, _, rest = member.partition(":")
            item_id, _, level_text = rest.rpartition(":")
            level = int(level_text or 0)
            if kind == "alert":
                alert = await self.store.alerts.get(item_id)
                timeline = await self.store.alerts.timeline(item_id) if alert else []
                entries = [e for e in timeline if _entry_level(e) == level]
                if alert is not None and entries:
                    event(log, "alert_step_redelivered", alert=item_id, level=level)
                    await self._deliver(alert, level, entries[0])
                    continue
            elif kind == "consult":
                consult = await self.store.consults.get(item_id)
                if consult is not None:
                    await self._deliver_consult_step(consult, level)
                    continue
            await self.store.alerts.delivered(member)

    # unanswered consults ----------------------------------------------------------------------
    async def _escalate_consults(self, now: float) -> int:
        schedule = self.settings.consult_escalation_s
        fired = 0
        for consult_id in await self.store.consult_escalations.ringing():
            consult = await self.store.consults.get(consult_id)
            if consult is None or consult.state is not ConsultState.RINGING:
                continue
            level = await self.store.consult_escalations.level(consult_id)
            if level >= len(schedule) or now < consult.created_at + schedule[level]:
                continue
            if not await self.store.consult_escalations.record_step(consult_id, level, now):
                continue
            fired += 1
            await self.store.audit.record(
                action="consult.escalated", user="system", role="system",
                clinic=consult.clinic, remote=None, consult=consult_id,
                department=consult.department, level=level + 1,
                step="re-ring" if level == 0 else "department_and_head",
                due_at=f"{consult.created_at + schedule[level]:.3f}")
            await self._deliver_consult_step(consult, level + 1)
            event(log, "consult_escalated", consult=consult_id, level=level + 1)
        return fired

    async def _deliver_consult_step(self, consult: Any, level: int) -> None:
        dept = await self.store.directory.get_department(consult.department)
        head = dept.head if dept else ""
        message = out.ConsultRinging(consult=consult.public(), escalation=level)
        await self.hub.publish(keys.channel_department(consult.department), message)
        if level >= 2:
            if head:
                await self.hub.publish(keys.channel_user(head), message)
            await self._notify_audience(
                {"departments": (consult.department,), "users": (head,) if head else ()},
                "consult.escalated", None, data={
                    "consult_id": consult.id, "department": consult.department,
                    "clinic_name": consult.clinic_name, "urgency": consult.urgency.value,
                    "question": consult.question[:200], "level": level})
        await self.hub.publish(keys.channel_user(consult.doctor), out.ConsultEscalated(
            consult_id=consult.id, level=level,
            to="department_and_head" if level >= 2 else "department"))
        await self.store.alerts.delivered(f"consult:{consult.id}:{level}")

    # delivery helpers -------------------------------------------------------------------------
    async def _publish(self, alert: Alert, kind: str, entry: dict[str, Any],
                       extra_users: list[str] | None = None) -> None:
        message = out.ALERT_MESSAGES[kind](alert=alert.public(), step=entry)
        await self.hub.publish(keys.channel_clinic(alert.clinic), message)
        await self.hub.publish(keys.channel_department(alert.department), message)
        for user in sorted({*alert.told_users, *(extra_users or [])}):
            who = await self.store.directory.get_user(user)
            # The clinic's own doctors and the department's experts have it already.
            if who is None or who.clinic == alert.clinic or who.department == alert.department:
                continue
            await self.hub.publish(keys.channel_user(user), message)

    def _data(self, alert: Alert) -> dict[str, Any]:
        return {"alert_id": alert.id, "tier": alert.tier.value, "state": alert.state.value,
                "clinic": alert.clinic, "clinic_name": alert.clinic_name,
                "department": alert.department, "level": alert.level,
                "patient_name": alert.patient_name, "finding": alert.finding[:200]}

    async def _notify(self, users: tuple[str, ...], kind: str, alert: Alert,
                      exclude: str = "") -> None:
        await self._notify_audience({"users": tuple(u for u in users if u)}, kind, alert,
                                    exclude=exclude)

    async def _notify_audience(self, audience: dict[str, tuple[str, ...]], kind: str,
                               alert: Alert | None, *, exclude: str = "",
                               data: dict[str, Any] | None = None) -> None:
        notifier = self._notifier()
        if notifier is None:
            return
        from server.notifications import Audience

        payload = data if data is not None else self._data(alert) if alert else {}
        await notifier.notify(Audience.of(**audience), kind, payload, exclude=exclude)

    async def _journal(self, alert: Alert, entry: dict[str, Any]) -> None:
        """The clinical record of each step: appended and fsync'd before it is acknowledged
        (Redis holds the working state; this file is what survives a power cut)."""
        # `record` is the whole alert after this step: what `reindex` rebuilds Redis from.
        line = json.dumps({"alert": alert.id, "clinic": alert.clinic, "tier": alert.tier.value,
                           "state": alert.state.value, "finding": alert.finding,
                           "raised_by": alert.raised_by, "entry": entry,
                           "record": alert.record()}, ensure_ascii=False) + "\n"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, _append_fsync, self.journal_path,
                                   line.encode())

    # reindex ----------------------------------------------------------------------------------
    async def reindex(self) -> tuple[int, int]:
        """Rebuild Redis's alert state from the journal after Redis lost it: each alert's
        hash, timeline, indexes and, while unacknowledged, the due time of its next step.
        The level is the number of escalation steps journalled, so the sweeper resumes with
        the next one and never sends a journalled step again. Alerts Redis holds at least
        as much of are left alone. Returns (restored, alerts in the journal)."""
        loop = asyncio.get_running_loop()
        lines = await loop.run_in_executor(self._executor, _read_journal, self.journal_path)
        by_alert: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_alert.setdefault(str(line["alert"]), []).append(line)
        restored = 0
        for alert_id, entries in by_alert.items():
            alert, timeline = self._rebuild(alert_id, entries)
            if await self.store.alerts.restore(alert, timeline):
                restored += 1
                event(log, "alert_restored", alert=alert_id, state=alert.state.value,
                      level=alert.level, steps=len(timeline))
        return restored, len(by_alert)

    def _rebuild(self, alert_id: str, lines: list[dict[str, Any]]
                 ) -> tuple[Alert, list[dict[str, Any]]]:
        """One alert from its journal lines, oldest first. The timeline decides state and
        level (a step journalled twice counts once); the newest `record` gives the rest."""
        timeline: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for line in lines:
            entry = line["entry"]
            mark = (str(entry["step"]), int(entry.get("level", 0)))
            if mark not in seen:
                seen.add(mark)
                timeline.append(entry)
        newest = next((x["record"] for x in reversed(lines) if x.get("record")), None)
        first = lines[0]
        alert = Alert.from_record(newest) if newest else Alert(
            # A line journalled before records were: what it carries, the rest left blank.
            id=alert_id, tier=Tier(first["tier"]), state=AlertState.RAISED,
            clinic=str(first["clinic"]), clinic_name=str(first["clinic"]), department="",
            raised_by=str(first.get("raised_by", "")),
            raised_by_name=str(first.get("raised_by", "")), source="", source_id="",
            report_id="", consult_id="", item_id="", study_uid="", patient_name="",
            patient_id="", finding=str(first.get("finding", "")),
            created_at=float(timeline[0]["at"]))
        steps = [e for e in timeline if e["step"] in STEP_NAMES]
        level = max((int(e.get("level", 0)) for e in steps), default=0)
        acked = next((e for e in timeline if e["step"] == "acknowledged"), None)
        handled = next((e for e in timeline if e["step"] == "handled"), None)
        state = (AlertState.HANDLED if handled else AlertState.ACKNOWLEDGED if acked
                 else AlertState.RAISED)
        schedule = self.schedule(alert.tier)
        next_due = (alert.created_at + schedule[level]
                    if state is AlertState.RAISED and level < len(schedule) else 0.0)
        alert = replace(alert, state=state, level=level, next_due=next_due)
        if acked and not alert.acknowledged_at:
            alert = replace(alert, acknowledged_by=str(acked.get("by", "")),
                            acknowledged_name=str(acked.get("receiver", "")),
                            acknowledged_at=float(acked["at"]),
                            read_back=str(acked.get("read_back", "")))
        if handled and not alert.handled_at:
            alert = replace(alert, handled_by=str(handled.get("by", "")),
                            handled_at=float(handled["at"]),
                            action_taken=str(handled.get("action", "")))
        return alert, timeline

    # the register as CSV ----------------------------------------------------------------------
    @staticmethod
    def csv_of(rows: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["alert_id", "tier", "state", "raised_at", "clinic", "department",
                         "raised_by", "patient_name", "patient_id", "finding", "escalation_level",
                         "acknowledged_at", "acknowledged_by", "read_back", "ack_delay_s",
                         "handled_at", "action_taken", "timeline"])
        for r in rows:
            writer.writerow([
                r["id"], r["tier"], r["state"], _iso(r["created_at"]), r["clinic"],
                r["department"], r["raised_by_name"], _cell(r["patient_name"]),
                _cell(r["patient_id"]), _cell(r["finding"]), r["level"],
                _iso(r["acknowledged_at"]), _cell(r["acknowledged_name"]),
                _cell(r["read_back"]), r["ack_delay_s"] if r["ack_delay_s"] is not None else "",
                _iso(r["handled_at"]), _cell(r["action_taken"]),
                " | ".join(f"{_iso(e['at'])} {e['step']}"
                           + (f" → {','.join(e.get('to') or [])}" if e.get("to") else "")
                           for e in r["timeline"])])
        return out.getvalue()


def _register_match(alert: Alert, flt: RegisterFilter, department: str | None) -> bool:
    if department and alert.department != department:
        return False
    if flt.tier is not None and alert.tier is not flt.tier:
        return False
    if flt.state == "open":
        return alert.state is not AlertState.HANDLED
    return flt.state == "all" or alert.state.value == flt.state


def _entry_level(entry: dict[str, Any]) -> int:
    """Which delivery step a timeline entry is (-1: not one: acknowledged, handled)."""
    if entry["step"] == "raised":
        return 0
    return int(entry.get("level", -1)) if entry["step"] in STEP_NAMES else -1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (CWE-1236)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's lines, oldest first; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_bytes().splitlines():
        try:
            line = json.loads(raw)
            if isinstance(line, dict) and line.get("alert") and isinstance(line.get("entry"),
                                                                           dict):
                lines.append(line)
        except ValueError:
            event(log, "alert_journal_line_unreadable", logging.WARNING, path=path)
    return lines


def _append_fsync(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)

"""The remote-reading worklist (issue #10 item 1): domain rules, no HTTP.

A clinic doctor sends one of the clinic's studies for reading with a clinical question, a
priority and a target department; the study is granted (kind "reading") to that department's
experts; one of them claims it (server/store/worklist.py makes the claim atomic and hands out a
claim token), reads it and the report completes it — or releases it, or lets the lease lapse
(`HUIZHEN_WORKLIST_LEASE_S` without a renewal), and it returns to the list. The department's
head may reassign. Every change is audited and published at once to the department's experts
and the requesting clinic's pages (the page WebSocket; no polling).

For the reports module (H5): `holder(item_id)` says who may sign; `complete(item_id, username,
report_id)` closes the item when the report is final; `touch(item_id, username)` renews the
holder's lease while they work (a draft saved).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.auth import access
from server.auth.principal import Principal
from server.config import Settings
from server.errors import InvalidParameter, NotFound
from server.log import event
from server.patient_match import study_patient
from server.realtime import outbound as out
from server.realtime.hub import Hub
from server.store import Store, keys
from server.store.directory import Role
from server.store.grants import READING
from server.store.worklist import ItemState, Priority, WorkItem
from server.sweeper import Sweeper

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
MAX_LIST = 500
DAY_S = 24 * 3600
STATE_FILTERS = ("open", "scheduled", "in_progress", "completed", "canceled", "all")


@dataclass(frozen=True)
class ReadingRequest:
    study_uid: str
    question: str
    priority: Priority
    department: str


@dataclass(frozen=True)
class ListFilter:
    department: str | None = None
    state: str = "open"
    priority: Priority | None = None
    clinic: str | None = None
    mine: bool = False
    limit: int = 200
    modality: str | None = None  # e.g. "ECG": only requests for studies holding it


NotifierGetter = Callable[[], Any]


class WorklistService:
    hub: Hub

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._notifier: NotifierGetter = lambda: None

    # lifecycle --------------------------------------------------------------------------------
    async def start(self, hub: Hub, notifier: NotifierGetter = lambda: None) -> None:
        """Once the real-time plane runs: its hub publishes, its notifier fills inboxes."""
        self.hub = hub
        self._notifier = notifier

    def register_sweeps(self, sweeper: Sweeper) -> None:
        """Lease expiry on every node: each lapse is a token-checked step, announced once."""
        sweeper.register("worklist_leases", self.sweep, SWEEP_INTERVAL_S)

    # requests ---------------------------------------------------------------------------------
    async def request(self, who: Principal, req: ReadingRequest, remote: str | None = None
                      ) -> WorkItem:
        clinic = access.upload_clinic(who)  # a clinic doctor, for one of the clinic's studies
        owner = await self.store.studies.study_owner(clinic, req.study_uid)
        access.check_study(who, owner)
        record = await self.store.studies.study(clinic, req.study_uid)
        if record is None:
            raise NotFound("no such study")
        dept = await self.store.directory.get_department(req.department)
        if dept is None:
            raise NotFound(f"no department {req.department!r}")
        patient = study_patient(record.attrs)
        clinic_rec = await self.store.directory.get_clinic(clinic)
        user = await self.store.directory.get_user(who.username)
        attrs = record.attrs
        item = WorkItem(
            id=self.store.worklist.new_id(), clinic=clinic,
            clinic_name=clinic_rec.name if clinic_rec else clinic, requester=who.username,
            requester_name=user.display_name if user else who.username,
            department=req.department, priority=req.priority, question=req.question,
            study_uid=req.study_uid, patient_name=patient.display_name,
            patient_id=patient.patient_id,
            study_description=_attr(attrs, "StudyDescription", "00081030"),
            modalities=_attr(attrs, "ModalitiesInStudy", "00080061") or ",".join(
                record.modalities),
            state=ItemState.SCHEDULED, created_at=time.time(),
            flags=await ecg_flags(self.store, clinic, req.study_uid))
        await self.store.worklist.create(item)
        readers = sorted(await self.store.directory.members(departments=[req.department]))
        for reader in readers:
            await self.store.grants.grant(reader, clinic, req.study_uid, kind=READING,
                                          ref=item.id, ttl_s=self.settings.grant_ttl_s,
                                          by=who.username)
        await self._audit(who, "worklist.request", item, remote, priority=item.priority.value,
                          readers=len(readers))
        await self._announce(item, "created", who.username)
        await self._notify({"departments": (item.department,)}, item, "created", who.username)
        event(log, "worklist_requested", item=item.id, clinic=clinic,
              department=item.department, priority=item.priority.value)
        return item

    async def get(self, who: Principal, item_id: str, remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        await self._audit(who, "worklist.view", item, remote)
        return item

    async def claim(self, who: Principal, item_id: str, remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        access.require_reader(who, item.department)
        claimed = await self.store.worklist.claim(item_id, who.username,
                                                  self.settings.worklist_lease_s)
        # An expert added after the request has no grant yet: the claim gives them one.
        held = await self.store.grants.of_user(who.username, study_uid=item.study_uid)
        if not any(g.kind == READING and g.ref == item.id and g.clinic == item.clinic
                   for g in held):
            await self.store.grants.grant(who.username, item.clinic, item.study_uid,
                                          kind=READING, ref=item.id,
                                          ttl_s=self.settings.grant_ttl_s, by=item.requester)
        await self._audit(who, "worklist.claim", claimed, remote)
        await self._announce(claimed, "claimed", who.username)
        return claimed

    async def release(self, who: Principal, item_id: str, token: str,
                      remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        access.require_reader(who, item.department)
        released = await self.store.worklist.release(item_id, token)
        await self._audit(who, "worklist.release", released, remote)
        await self._announce(released, "released", who.username)
        return released

    async def renew(self, who: Principal, item_id: str, token: str) -> WorkItem:
        item = await self._visible(who, item_id)
        access.require_reader(who, item.department)
        return await self.store.worklist.renew(item_id, token, self.settings.worklist_lease_s)

    async def reassign(self, who: Principal, item_id: str, to: str,
                       remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        dept = await self.store.directory.get_department(item.department)
        access.require_department_head(who, item.department, dept.head if dept else "")
        target = await self.store.directory.get_user(to)
        if (target is None or target.disabled or target.role is not Role.EXPERT
                or target.department != item.department):
            raise InvalidParameter(f"{to!r} is not an expert of {item.department}")
        moved = await self.store.worklist.reassign(item_id, to, who.username,
                                                   self.settings.worklist_lease_s)
        await self.store.grants.grant(to, item.clinic, item.study_uid, kind=READING,
                                      ref=item.id, ttl_s=self.settings.grant_ttl_s,
                                      by=who.username)
        await self._audit(who, "worklist.reassign", moved, remote, to=to,
                          previous=item.claimed_by)
        await self._announce(moved, "reassigned", who.username)
        await self._notify({"users": (to,)}, moved, "assigned", who.username)
        return moved

    async def cancel(self, who: Principal, item_id: str, reason: str,
                     remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        dept = await self.store.directory.get_department(item.department)
        access.may_cancel_work_item(who, item.clinic, item.requester, item.department,
                                    dept.head if dept else "")
        canceled = await self.store.worklist.cancel(item, who.username, reason)
        await self._audit(who, "worklist.cancel", canceled, remote, reason=reason)
        await self._announce(canceled, "canceled", who.username)
        return canceled

    async def complete_with_token(self, who: Principal, item_id: str, token: str,
                                  report_id: str = "", remote: str | None = None) -> WorkItem:
        item = await self._visible(who, item_id)
        access.require_reader(who, item.department)
        done = await self.store.worklist.complete(item, token, report_id)
        await self._finished(who.username, who.role.value, done, remote)
        return done

    # for the reports module -------------------------------------------------------------------
    async def holder(self, item_id: str) -> str | None:
        """Who holds the claim on a request now (None: nobody, or it is over / unknown)."""
        item = await self.store.worklist.get(item_id)
        return item.holder() if item else None

    async def item(self, item_id: str) -> WorkItem | None:
        """The request itself, unchecked (the caller decides who may see it)."""
        return await self.store.worklist.get(item_id)

    async def touch(self, item_id: str, username: str) -> bool:
        """Renew the holder's lease (their draft was saved); False if they do not hold it."""
        item = await self.store.worklist.get(item_id)
        if item is None or item.holder() != username:
            return False
        await self.store.worklist.renew(item_id, item.claim_token, self.settings.worklist_lease_s)
        return True

    async def complete(self, item_id: str, username: str, report_id: str = "") -> WorkItem:
        """The holder's report is final: the request is completed (NotClaimHolder if
        `username` does not hold it)."""
        item = await self.store.worklist.require(item_id)
        token = item.claim_token if item.holder() == username else "-"
        done = await self.store.worklist.complete(item, token, report_id)
        await self._finished(username, Role.EXPERT.value, done, None)
        return done

    async def _finished(self, username: str, role: str, done: WorkItem, remote: str | None
                        ) -> None:
        await self.store.audit.record(
            action="worklist.complete", user=username, role=role, clinic=None, remote=remote,
            item=done.id, study=done.study_uid, study_clinic=done.clinic, report=done.report_id,
            turnaround_s=round(done.turnaround_s() or 0, 1))
        await self._announce(done, "completed", username)
        await self._notify({"clinics": (done.clinic,)}, done, "completed", username)

    # listing ----------------------------------------------------------------------------------
    async def listing(self, who: Principal, flt: ListFilter, remote: str | None = None
                      ) -> dict[str, Any]:
        kind, scope = access.worklist_scope(who, flt.department)
        now = time.time()
        wl = self.store.worklist
        if kind == "clinic":
            pool = await wl.of_clinic(scope, limit=MAX_LIST)
            departments: list[str] = sorted({i.department for i in pool})
            finished = [i for i in pool if not i.open and i.completed_at >= now - DAY_S]
        else:
            departments = [scope] if kind == "department" else [
                d.id for d in await self.store.directory.departments()]
            pool, finished = [], []
            for d in departments:
                pool += await wl.open_of_department(d)
                done = await wl.done_of_department(d, limit=MAX_LIST, since=now - DAY_S)
                finished += done
            if flt.state not in ("open", "scheduled", "in_progress"):
                pool += finished
        items = [i for i in pool if _matches(i, flt, who.username)]
        # Open first; among them a suspected-critical ECG first (pre-screening), then priority.
        items.sort(key=lambda i: (0 if i.open else 1,
                                  0 if i.open and i.suspected_critical else 1,
                                  i.priority.rank if i.open else 0,
                                  i.created_at if i.open else -(i.completed_at or i.canceled_at)))
        shown = items[:flt.limit]
        open_items = [i for i in pool if i.open]
        counts = {
            "scheduled": sum(i.state is ItemState.SCHEDULED for i in open_items),
            "in_progress": sum(i.state is ItemState.IN_PROGRESS for i in open_items),
            "by_priority": {p.value: sum(i.priority is p for i in open_items) for p in Priority},
            "mine": sum(i.claimed_by == who.username for i in open_items),
            "completed_24h": sum(i.state is ItemState.COMPLETED for i in finished),
            "canceled_24h": sum(i.state is ItemState.CANCELED for i in finished),
        }
        turnarounds = [t for i in finished if (t := i.turnaround_s()) is not None]
        waits = [i.wait_s(now) for i in finished if i.first_claimed_at] + [
            i.wait_s(now) for i in open_items if i.first_claimed_at]
        tat = {
            "completed_24h": len(turnarounds),
            "median_s": _round(statistics.median(turnarounds)) if turnarounds else None,
            "p90_s": _round(_percentile(turnarounds, 0.9)) if turnarounds else None,
            "median_wait_s": _round(statistics.median(waits)) if waits else None,
            "oldest_waiting_s": _round(max((i.wait_s(now) for i in open_items
                                            if i.state is ItemState.SCHEDULED), default=0.0)),
        }
        await self.store.audit.record(
            action="worklist.list", user=who.username, role=who.role.value, clinic=who.clinic,
            remote=remote, device=who.device, scope=f"{kind}:{scope}", count=len(shown))
        head = ""
        if kind == "department":
            dept = await self.store.directory.get_department(scope)
            head = dept.head if dept else ""
        return {"items": [i.public(who.username) for i in shown], "total": len(items),
                "head": head,
                "counts": counts, "turnaround": tat, "departments": departments,
                "scope": {"kind": kind, "id": scope}}

    # lease sweeper ----------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Return every claim whose lease ran out to its department's list (atomic per item:
        with several nodes each is announced once)."""
        returned = 0
        for item_id in await self.store.worklist.lapsed():
            item = await self.store.worklist.lapse(item_id)
            if item is None:
                continue
            returned += 1
            fresh = await self.store.worklist.require(item_id)
            await self.store.audit.record(
                action="worklist.lapse", user=item.claimed_by, role=Role.EXPERT.value,
                clinic=None, remote=None, item=item_id, study=item.study_uid,
                study_clinic=item.clinic, lease_s=self.settings.worklist_lease_s)
            await self._announce(fresh, "lapsed", item.claimed_by)
            event(log, "worklist_lapsed", item=item_id, holder=item.claimed_by)
        return returned

    # helpers ----------------------------------------------------------------------------------
    async def _visible(self, who: Principal, item_id: str) -> WorkItem:
        item = await self.store.worklist.require(item_id)
        access.check_work_item(who, item.clinic, item.department)
        return item

    async def _audit(self, who: Principal, action: str, item: WorkItem, remote: str | None,
                     **extra: Any) -> None:
        await self.store.audit.record(
            action=action, user=who.username, role=who.role.value, clinic=who.clinic,
            remote=remote, device=who.device, item=item.id, study=item.study_uid,
            study_clinic=item.clinic, department=item.department, **extra)

    async def _announce(self, item: WorkItem, action: str, by: str) -> None:
        """Live to the department's experts' pages and the requesting clinic's pages."""
        message = out.WorklistItem(action=action, by=by, item=item.public(None))
        await asyncio.gather(self.hub.publish(keys.channel_department(item.department), message),
                             self.hub.publish(keys.channel_clinic(item.clinic), message))

    async def _notify(self, audience: dict[str, tuple[str, ...]], item: WorkItem, action: str,
                      by: str) -> None:
        """Into the inbox of who should know even with no page open (notifications, §0)."""
        notifier = self._notifier()
        if notifier is None:
            return
        from server.notifications import Audience

        await notifier.notify(Audience(**audience), "worklist.item", {
            "item_id": item.id, "action": action, "by": by, "priority": item.priority.value,
            "department": item.department, "clinic": item.clinic,
            "clinic_name": item.clinic_name, "state": item.state.value,
            "patient_name": item.patient_name, "question": item.question[:200],
            "flags": item.flags},
            exclude=by)


async def ecg_flags(store: Store, clinic: str, study_uid: str) -> str:
    """"suspected_critical,<reason codes>" when an ECG of the study was flagged by the
    pre-screening on ingest (the index keeps it), else ""."""
    codes: list[str] = []
    for record in await store.studies.instances(clinic, study_uid):
        screening = (record.ecg or {}).get("screening") or {}
        if screening.get("suspected_critical"):
            codes += [str(r.get("code", "")) for r in screening.get("reasons", [])]
    if not codes:
        return ""
    return ",".join(["suspected_critical", *dict.fromkeys(c for c in codes if c)])


def _matches(item: WorkItem, flt: ListFilter, username: str) -> bool:
    if flt.state == "open" and not item.open:
        return False
    if flt.state not in ("open", "all") and item.state.value != flt.state:
        return False
    if flt.priority is not None and item.priority is not flt.priority:
        return False
    if flt.clinic and item.clinic != flt.clinic:
        return False
    if flt.modality and flt.modality not in item.modalities.upper().split(","):
        return False
    return not (flt.mine and item.claimed_by != username)


def _attr(attrs: dict, keyword: str, tag: str) -> str:
    value = attrs.get(keyword, attrs.get(tag, ""))
    if isinstance(value, dict):  # DICOM JSON {vr, Value}
        values = value.get("Value") or []
        return ",".join(str(v) for v in values)[:200]
    if isinstance(value, list):
        return ",".join(str(v) for v in value)[:200]
    return str(value or "")[:200]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(value: float) -> float:
    return round(value, 1)

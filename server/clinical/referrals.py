"""Referrals (双向转诊): up from a township clinic to a county department, down again for
rehabilitation with the care plan. A domain service: no HTTP here (server/api/referrals.py),
no access rules (server/auth/access.py), no Redis layout (server/store/referrals.py).

States: requested → accepted | declined (with a reason) | cancelled; accepted → arrived |
cancelled; arrived → completed. The receiving side accepts, declines, records the arrival and
completes; the referring side cancels. Each change is a compare-and-set on the referral's version
(two experts accepting at once: one wins, the other gets 409 `invalid_transition`).

A referral is a clinical record: every version is appended to `DATA_DIR/referrals/ID.jsonl` and
fsync'd before it is acknowledged (Redis is the index; `huizhen reindex` rebuilds it from the
files).

Grants: the receiving side (the department's experts for an up-referral, the clinic's doctors
for a down-referral) is granted the attached studies (grant kind `referral`, ref = the referral
id) from the request on — they need the images to decide — and again at each step, so the
grant lasts `HUIZHEN_GRANT_TTL_S` past the latest one. A declined or cancelled referral's grants
are revoked at once; a completed one's run out `HUIZHEN_GRANT_TTL_S` after completion (the
follow-up needs them for a while). A member who joins the receiving side later is granted when
they open the referral. Studies of the receiving clinic itself need no grant.

Every change is told to both sides (notification kind `referral.changed`; the actor's own
inbox is skipped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.auth import access
from server.auth.principal import Principal
from server.errors import Conflict, Forbidden, InvalidParameter, NotFound
from server.log import event
from server.store import Store
from server.store.directory import Role
from server.store.grants import REFERRAL
from server.store.referrals import (
    FINAL,
    Direction,
    Referral,
    ReferralState,
    Route,
    StaleReferral,
    Step,
    StudyRef,
)

log = logging.getLogger(__name__)

MAX_STUDIES = 20
MAX_REPORTS = 20
MAX_REASON = 2000
MAX_DIAGNOSIS = 1000
MAX_CARE_PLAN = 4000
MAX_NOTE = 1000
MIN_DECLINE_REASON = 4
KIND = "referral.changed"

#: (state, action) -> new state. Who may take the action: access.REFERRAL_ACTIONS.
TRANSITIONS: dict[tuple[ReferralState, str], ReferralState] = {
    (ReferralState.REQUESTED, "accept"): ReferralState.ACCEPTED,
    (ReferralState.REQUESTED, "decline"): ReferralState.DECLINED,
    (ReferralState.REQUESTED, "cancel"): ReferralState.CANCELLED,
    (ReferralState.ACCEPTED, "arrive"): ReferralState.ARRIVED,
    (ReferralState.ACCEPTED, "cancel"): ReferralState.CANCELLED,
    (ReferralState.ARRIVED, "complete"): ReferralState.COMPLETED,
}
ACTIONS = tuple(sorted({a for _, a in TRANSITIONS}))
STATE_GROUPS = {
    "open": frozenset({ReferralState.REQUESTED.value, ReferralState.ACCEPTED.value,
                       ReferralState.ARRIVED.value}),
    "closed": frozenset(s.value for s in FINAL),
}


class InvalidTransition(Conflict):
    code = "invalid_transition"


class RouteClosed(Forbidden):
    code = "referral_route_closed"


class ReportReader(Protocol):
    """What the referral service needs of server/clinical/reports.py: a report as the caller
    may see it (NotFound otherwise)."""

    async def view(self, who: Principal, report_id: str) -> Any: ...


class Notifier(Protocol):
    """What the referral service needs of server/notifications.py."""

    async def notify(self, audience: Any, kind: str, data: dict, *, exclude: str = ""
                     ) -> list[str]: ...


@dataclass(frozen=True)
class NewReferral:
    direction: Direction
    counterpart: str  # up: the department referred to; down: the clinic referred back to
    reason: str
    patient_name: str = ""
    patient_id: str = ""
    diagnosis: str = ""
    care_plan: str = ""
    study_uids: tuple[str, ...] = ()
    report_ids: tuple[str, ...] = ()
    parent: str = ""


def next_state(state: ReferralState, action: str) -> ReferralState:
    """The state `action` leads to from `state` (InvalidTransition if none)."""
    new = TRANSITIONS.get((state, action))
    if new is None:
        raise InvalidTransition(f"a {state.value} referral cannot be {action}ed",
                                state=state.value, action=action)
    return new


def _text(value: str, name: str, limit: int, *, required: bool = False) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidParameter(f"{name} is required")
    if len(text) > limit:
        raise InvalidParameter(f"{name} is limited to {limit} characters")
    return text


def _patient_of(attrs: dict[str, Any]) -> tuple[str, str]:
    name_v = (attrs.get("00100010", {}).get("Value") or [{}])[0]
    name = name_v.get("Alphabetic", "") if isinstance(name_v, dict) else str(name_v)
    ideo = name_v.get("Ideographic", "") if isinstance(name_v, dict) else ""
    pid = (attrs.get("00100020", {}).get("Value") or [""])[0]
    shown = f"{name}={ideo}" if ideo else name
    return shown, str(pid)


class ReferralService:
    def __init__(self, store: Store, *, journal_dir: Path, executor: Executor | None = None,
                 notifier: Notifier | None = None, reports: ReportReader | None = None
                 ) -> None:
        self.store = store
        self.journal_dir = journal_dir
        self.executor = executor
        self.notifier = notifier
        self.reports = reports

    # reading ---------------------------------------------------------------------------------
    async def routes_for(self, who: Principal) -> list[dict[str, str]]:
        """Where the caller may send a referral: a doctor the departments their clinic refers
        up to, an expert the clinics their department refers down to (with names)."""
        if who.role is Role.DOCTOR:
            routes = [r for r in await self.store.referrals.routes()
                      if r.direction is Direction.UP and r.clinic == who.clinic]
        elif who.role is Role.EXPERT:
            routes = [r for r in await self.store.referrals.routes()
                      if r.direction is Direction.DOWN and r.department == who.department]
        else:
            raise Forbidden(f"a {who.role.value} account sends no referrals")
        out = []
        for r in routes:
            out.append({**r.public(), "clinic_name": await self._clinic_name(r.clinic),
                        "department_name": await self._department_name(r.department)})
        return out

    async def get(self, who: Principal, referral_id: str) -> tuple[Referral, str]:
        referral = await self.store.referrals.get(referral_id)
        side = access.check_referral(who, referral)
        assert referral is not None
        if side == access.RECEIVER and referral.state not in FINAL:
            # Someone who joined the receiving side after the request reads its images too.
            await self._grant(referral, [who.username])
        return referral, side

    async def page(self, who: Principal, *, limit: int, offset: int, state: str | None = None,
                   direction: str | None = None) -> dict[str, Any]:
        scope = access.referral_scope(who)
        states: frozenset[str] | None = None
        if state:
            if state in STATE_GROUPS:
                states = STATE_GROUPS[state]
            elif state in {s.value for s in ReferralState}:
                states = frozenset({state})
            else:
                raise InvalidParameter(f"state {state!r} is not one of "
                                       f"{', '.join([*STATE_GROUPS, *ReferralState])}")
        if direction is not None and direction not in {d.value for d in Direction}:
            raise InvalidParameter("direction is up or down")
        items, total = await self.store.referrals.page(
            scope, limit=limit, offset=offset, states=states, direction=direction)
        return {"referrals": [self.view(r, who) for r in items], "total": total,
                "limit": limit, "offset": offset}

    def view(self, referral: Referral, who: Principal) -> dict[str, Any]:
        data = referral.public()
        data["side"] = access.referral_side(who, referral)
        data["actions"] = self.actions_for(referral, who)
        return data

    def actions_for(self, referral: Referral, who: Principal) -> list[str]:
        side = access.referral_side(who, referral)
        return [a for (s, a) in TRANSITIONS
                if s is referral.state and access.REFERRAL_ACTIONS[a] == side]

    # changing --------------------------------------------------------------------------------
    async def create(self, who: Principal, new: NewReferral) -> Referral:
        origin = access.referral_origin(who, new.direction)
        if new.direction is Direction.UP:
            clinic, department = origin, new.counterpart
            if await self.store.directory.get_department(department) is None:
                raise NotFound(f"no department {department!r}")
        else:
            clinic, department = new.counterpart, origin
            if await self.store.directory.get_clinic(clinic) is None:
                raise NotFound(f"no clinic {clinic!r}")
        if not await self.store.referrals.allowed(new.direction, clinic, department):
            there = department if new.direction is Direction.UP else clinic
            raise RouteClosed(f"{origin} may not refer {new.direction.value} to {there}: "
                              "no referral route is configured between them")
        reason = _text(new.reason, "reason", MAX_REASON, required=True)
        diagnosis = _text(new.diagnosis, "diagnosis", MAX_DIAGNOSIS)
        care_plan = _text(new.care_plan, "care_plan", MAX_CARE_PLAN,
                          required=new.direction is Direction.DOWN)
        if len(set(new.study_uids)) > MAX_STUDIES or len(set(new.report_ids)) > MAX_REPORTS:
            raise InvalidParameter(f"at most {MAX_STUDIES} studies and {MAX_REPORTS} reports")
        patient_name = _text(new.patient_name, "patient_name", 200)
        patient_id = _text(new.patient_id, "patient_id", 64)
        parent = await self._parent(who, new, clinic, department)
        if parent is not None:
            patient_name = patient_name or parent.patient_name
            patient_id = patient_id or parent.patient_id
        studies = await self._studies(who, new, clinic)
        for ref in await self._report_studies(who, new, clinic):
            if ref not in studies:
                studies.append(ref)
        if len(studies) > MAX_STUDIES:
            raise InvalidParameter(f"at most {MAX_STUDIES} studies (with the reports')")
        if studies and not (patient_name or patient_id):
            first = await self.store.studies.study(studies[0].clinic, studies[0].study_uid)
            if first is not None:
                patient_name, patient_id = _patient_of(first.attrs)
        if not (patient_name or patient_id):
            raise InvalidParameter("name the patient (patient_name or patient_id) or attach "
                                   "one of their studies")
        now = time.time()
        by_name = await self._display_name(who.username)
        referral = Referral(
            id=secrets.token_hex(8), direction=new.direction, clinic=clinic,
            department=department, state=ReferralState.REQUESTED, patient_name=patient_name,
            patient_id=patient_id, reason=reason, created_by=who.username, created_at=now,
            updated_at=now, diagnosis=diagnosis, care_plan=care_plan, studies=tuple(studies),
            reports=tuple(dict.fromkeys(new.report_ids)), parent=parent.id if parent else "",
            clinic_name=await self._clinic_name(clinic),
            department_name=await self._department_name(department),
            created_by_name=by_name,
            history=(Step(ReferralState.REQUESTED.value, now, who.username, by_name),),
        )
        await self.store.referrals.create(referral)
        await self._journal(referral)
        await self._grant(referral)
        await self._notify(referral, who)
        event(log, "referral_created", referral=referral.id, direction=referral.direction.value,
              clinic=clinic, department=department)
        return referral

    async def act(self, who: Principal, referral_id: str, action: str, note: str = ""
                  ) -> Referral:
        note = _text(note, "note", MAX_NOTE)
        if action == "decline" and len(note) < MIN_DECLINE_REASON:
            raise InvalidParameter(
                f"a declined referral needs a reason (at least {MIN_DECLINE_REASON} characters)")
        for _ in range(5):
            current = await self.store.referrals.get(referral_id)
            access.check_referral_action(who, current, action)
            assert current is not None
            state = next_state(current.state, action)
            extra = {"decline_reason": note} if action == "decline" else {}
            new = current.moved(state, who.username, await self._display_name(who.username),
                                note, **extra)
            try:
                await self.store.referrals.replace(current, new)
            except StaleReferral:
                continue  # someone moved it meanwhile: decide again on what it is now
            break
        else:
            raise Conflict("the referral keeps changing; reload it")
        await self._journal(new)
        if state in (ReferralState.DECLINED, ReferralState.CANCELLED):
            await self._revoke(new)
        else:
            await self._grant(new)  # the grant lasts the TTL past the latest step
        await self._notify(new, who)
        event(log, "referral_changed", referral=new.id, state=state.value, by=who.username)
        return new

    # helpers ---------------------------------------------------------------------------------
    async def _parent(self, who: Principal, new: NewReferral, clinic: str, department: str
                      ) -> Referral | None:
        if not new.parent:
            return None
        parent = await self.store.referrals.get(new.parent)
        access.check_referral(who, parent)
        assert parent is not None
        if parent.direction is new.direction or parent.clinic != clinic or \
                parent.department != department:
            raise InvalidParameter("a down-referral answers an up-referral between the same "
                                   "clinic and department (and the other way round)")
        return parent

    async def _studies(self, who: Principal, new: NewReferral, clinic: str) -> list[StudyRef]:
        out: list[StudyRef] = []
        for uid in dict.fromkeys(new.study_uids):
            if new.direction is Direction.UP:
                access.check_study(who, await self.store.studies.study_owner(clinic, uid))
                out.append(StudyRef(clinic, uid))
                continue
            grants = await self.store.grants.of_user(who.username, study_uid=uid)
            granted = access.by_grant(who, uid, grants)
            if granted is None or granted.break_glass:
                # Break-glass access is for the expert's own emergency look, not to pass on.
                raise NotFound("no such study")
            out.append(StudyRef(granted.clinic, uid))
        return out

    async def _report_studies(self, who: Principal, new: NewReferral, clinic: str
                              ) -> list[StudyRef]:
        """Each attached report must be a signed one the caller may read (reports.py decides);
        its study goes with the referral, so the receiving side's study grant lets them read
        the report too (access.report_reader). An up-referral carries its own clinic's reports
        only."""
        if not new.report_ids:
            return []
        if self.reports is None:
            raise InvalidParameter("reports cannot be attached on this server")
        out: list[StudyRef] = []
        for rid in dict.fromkeys(new.report_ids):
            viewed = await self.reports.view(who, rid)
            report = viewed.report
            if not report.versions:
                raise NotFound("no such report")  # a draft is not a record to pass on
            subject = report.subject
            if new.direction is Direction.UP and subject.clinic != clinic:
                raise NotFound("no such report")
            if subject.study_uid:
                out.append(StudyRef(subject.clinic, subject.study_uid))
        return out

    async def receivers(self, referral: Referral) -> list[str]:
        """The receiving side's members now: the department's experts (up) or the clinic's
        doctors (down)."""
        if referral.direction is Direction.UP:
            names = await self.store.directory.members(departments=[referral.department])
        else:
            names = await self.store.directory.members(clinics=[referral.clinic])
        return sorted(names)

    def _granted_studies(self, referral: Referral) -> list[StudyRef]:
        # A down-referral back to the clinic that owns the study: they see it anyway.
        return [s for s in referral.studies
                if not (referral.direction is Direction.DOWN and s.clinic == referral.clinic)]

    async def _grant(self, referral: Referral, users: list[str] | None = None,
                     ttl_s: float | None = None) -> None:
        studies = self._granted_studies(referral)
        if not studies:
            return
        names = users if users is not None else await self.receivers(referral)
        grants = self.store.grants
        for s in studies:
            for name in names:
                await grants.grant(name, s.clinic, s.study_uid, kind=REFERRAL, ref=referral.id,
                                   ttl_s=grants.ttl_s if ttl_s is None else ttl_s,
                                   by=referral.created_by)

    async def _revoke(self, referral: Referral) -> None:
        studies = self._granted_studies(referral)
        if not studies:
            return
        for s in studies:
            for name in await self.receivers(referral):
                await self.store.grants.revoke(name, s.clinic, s.study_uid, kind=REFERRAL,
                                               ref=referral.id)

    async def _notify(self, referral: Referral, who: Principal) -> None:
        if self.notifier is None:
            return
        from server.notifications import Audience

        step = referral.history[-1] if referral.history else None
        data = {
            "referral_id": referral.id, "direction": referral.direction.value,
            "state": referral.state.value, "patient_name": referral.patient_name,
            "clinic": referral.clinic, "clinic_name": referral.clinic_name,
            "department": referral.department, "department_name": referral.department_name,
            "by": who.username, "by_name": step.by_name if step else "",
            "version": referral.version,
        }
        audience = Audience.of(clinics=[referral.clinic], departments=[referral.department])
        await self.notifier.notify(audience, KIND, data, exclude=who.username)

    async def _journal(self, referral: Referral) -> None:
        """Append this version to the referral's file and fsync it (before the caller is
        answered)."""
        line = (referral.to_json() + "\n").encode()
        path = self.journal_dir / f"{referral.id}.jsonl"
        await asyncio.get_running_loop().run_in_executor(self.executor, _append_fsync, path,
                                                         line)

    async def reindex(self) -> int:
        """Rebuild the referral index from the journal files (the newest version of each)."""
        def read() -> list[Referral]:
            found = []
            if not self.journal_dir.is_dir():
                return found
            for path in sorted(self.journal_dir.glob("*.jsonl")):
                best: Referral | None = None
                for raw in path.read_text(encoding="utf-8").splitlines():
                    try:
                        r = Referral.from_json(raw)
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line of a crash: the version before stands
                    if best is None or r.version > best.version:
                        best = r
                if best is not None:
                    found.append(best)
            return found

        restored = 0
        now = time.time()
        for r in await asyncio.get_running_loop().run_in_executor(self.executor, read):
            if not await self.store.referrals.restore(r):
                continue
            restored += 1
            # Its grants went with Redis: the receiving side gets them back for what is left
            # of the TTL past the latest step (what a live referral's step would have set).
            left = r.updated_at + self.store.grants.ttl_s - now
            if r.state not in (ReferralState.DECLINED, ReferralState.CANCELLED) and left > 0:
                await self._grant(r, ttl_s=left)
        return restored

    async def _clinic_name(self, clinic: str) -> str:
        c = await self.store.directory.get_clinic(clinic)
        return c.name if c else clinic

    async def _department_name(self, department: str) -> str:
        d = await self.store.directory.get_department(department)
        return d.name if d else department

    async def _display_name(self, username: str) -> str:
        u = await self.store.directory.get_user(username)
        return u.display_name if u else username


def _append_fsync(path: Path, data: bytes) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # the new file's directory entry is durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def routes_public(routes: list[Route]) -> list[dict[str, str]]:
    return [r.public() for r in routes]

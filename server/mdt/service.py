"""The MDT service: schedule, edit, reschedule, cancel, open, conclude; proposals; grants;
invitations; calendars. No HTTP (server/api/mdt.py is the thin layer over it); every decision
of who may do what is asked of server/auth/access.py.

Grants: the coordinator and each invited expert hold a grant of kind "mdt" (ref = session id)
on every study of the agenda, from scheduling until the session's end plus the grant period
(HUIZHEN_GRANT_TTL_S); concluding renews them for the grant period from then, cancelling or
uninviting takes them back. A clinic's doctors read their own clinic's cases as always and get
no grant: another clinic's patients stay out of their reach.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from media.imaging.errors import ImagingError
from media.imaging.window import Window
from server.auth import access
from server.auth.principal import Principal
from server.config import Settings
from server.documents import Document
from server.errors import Conflict, InvalidParameter, NotFound
from server.log import event
from server.mdt import calendar, scheduling, summary
from server.mdt.models import (
    CaseRef,
    ConclusionIn,
    ConflictQuery,
    MdtChange,
    MdtCreate,
    ProposalCreate,
)
from server.notifications import Audience
from server.store import Store
from server.store.directory import Role
from server.store.mdt import (
    CANCELLED,
    CONCLUDED,
    JOIN_EARLY_S,
    LIVE,
    OPEN,
    PROPOSED,
    ROOM_PREFIX,
    SCHEDULED,
    SCHEDULED_PROPOSAL,
    WITHDRAWN,
    Attendee,
    Conclusion,
    MdtCase,
    MdtSession,
    MdtStore,
    Proposal,
)
from server.sweeper import Sweeper

if TYPE_CHECKING:
    from media.imaging.renderer import Renderer
    from server.realtime.services import Realtime

log = logging.getLogger(__name__)

MDT_MAX_PARTICIPANTS = 12
SWEEP_INTERVAL_S = 5.0
#: The upcoming list holds sessions that started at most this long ago (and are still active).
UPCOMING_GRACE_S = 12 * 3600
LIST_WINDOW = 500
FEED_PAST_S = 90 * 24 * 3600
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


MAX_SUMMARY_IMAGES = 24
SUMMARY_IMAGE_VIEWPORT = (768, 768)


def _field(item: Any, name: str) -> Any:
    """A key image's field, whether the store hands out objects or dicts."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _window(value: Any) -> Window | None:
    if not value:
        return None
    center, width = _field(value, "center"), _field(value, "width")
    if center is None or width is None or float(width) <= 0:
        return None
    try:
        return Window(float(center), float(width), str(_field(value, "function") or "LINEAR"))
    except ImagingError:
        return None


async def grant_session(store: Store, s: MdtSession, users: list[str], now: float,
                        studies: list[tuple[str, str]] | None = None) -> None:
    """The session's case studies for `users` (kind "mdt"): until the session's end plus the
    grant period, or — concluded — the grant period from now; a cancelled one grants none.
    Also called by the room policy when a coordinator who is not the session's own joins."""
    if s.state == CANCELLED:
        return
    period = store.grants.ttl_s
    ttl = period if s.state == CONCLUDED else max(s.ends_at - now, 0) + period
    await store.grants.for_mdt(s.id, s.studies() if studies is None else studies, users,
                               ttl_s=ttl, by=s.coordinator)


class _Unchanged(Exception):
    """A conditional change found the session already past the state it wanted to leave."""


def _pn_text(value: Any) -> str:
    """DICOM JSON PN -> 'Alphabetic=Ideographic' (the form patient_match and consults use)."""
    if isinstance(value, dict):
        groups = [value.get("Alphabetic", ""), value.get("Ideographic", ""),
                  value.get("Phonetic", "")]
        while groups and not groups[-1]:
            groups.pop()
        return "=".join(groups)
    return str(value or "")


def _attr(attrs: dict[str, Any], tag: str) -> Any:
    values = attrs.get(tag, {}).get("Value") or [""]
    return values[0]


class MdtService:
    def __init__(self, settings: Settings, store: Store,
                 realtime: Callable[[], Realtime | None] = lambda: None,
                 renderer: Renderer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.renderer = renderer
        self.mdts: MdtStore = store.mdt
        self._realtime = realtime

    # lifecycle -----------------------------------------------------------------------------
    def register_sweeps(self, sweeper: Sweeper) -> None:
        """Opening due sessions and marking them live, on every node (each change is a
        compare-and-set)."""
        sweeper.register("mdt", self.sweep, SWEEP_INTERVAL_S)

    @property
    def base_url(self) -> str:
        return (self.settings.public_url or "").rstrip("/")

    # reading -------------------------------------------------------------------------------
    async def get(self, principal: Principal, mdt_id: str) -> MdtSession:
        session = await self.mdts.get(mdt_id)
        if session is None:
            access.require_patient_reader(principal)
            raise NotFound("no such MDT session")
        access.require_mdt_view(principal, session)
        return session

    async def view(self, principal: Principal, session: MdtSession) -> dict[str, Any]:
        """What a page shows of a session: the session as the viewer may see it, display names,
        what the viewer may do, and (for coordinators) the invitees' time conflicts."""
        out: dict[str, Any] = {"mdt": session.public(principal),
                               "names": await self.names([session]),
                               "may": self._may(principal, session)}
        if principal.role is Role.COORDINATOR and session.active:
            out["conflicts"] = [c.public() for c in await self._conflicts_of(session)]
        return out

    def _may(self, principal: Principal, s: MdtSession) -> dict[str, bool]:
        coordinator = principal.role is Role.COORDINATOR
        concluder = coordinator or (principal.role is Role.EXPERT
                                    and principal.username == s.lead_expert)
        return {
            "join": access.may_join_mdt(principal, s),
            "edit": coordinator and s.state in scheduling.EDITABLE,
            "reschedule": coordinator and s.state == SCHEDULED,
            "cancel": coordinator and s.active,
            "open": coordinator and s.state == SCHEDULED,
            "record_conclusions": concluder and s.state in scheduling.CONCLUDABLE,
            "conclude": concluder and s.state in scheduling.CONCLUDABLE,
            "summary": s.state == CONCLUDED,
        }

    async def names(self, sessions: Iterable[MdtSession]) -> dict[str, dict[str, str]]:
        users: set[str] = set()
        clinics: set[str] = set()
        departments: set[str] = set()
        for s in sessions:
            users |= {s.coordinator, *s.experts, *(a.username for a in s.attendees)}
            clinics |= set(s.clinics)
            departments |= set(s.departments)
            departments |= {c.conclusion.responsible_department for c in s.cases
                            if c.conclusion}
        d = self.store.directory
        out: dict[str, dict[str, str]] = {"users": {}, "clinics": {}, "departments": {}}
        for u in sorted(users - {""}):
            user = await d.get_user(u)
            out["users"][u] = user.display_name if user else u
        for c in sorted(clinics):
            clinic = await d.get_clinic(c)
            out["clinics"][c] = clinic.name if clinic else c
        for dep in sorted(departments):
            department = await d.get_department(dep)
            out["departments"][dep] = department.name if department else dep
        return out

    async def list(self, principal: Principal, *, scope: str, limit: int, offset: int,
                   now: float | None = None) -> dict[str, Any]:
        """Upcoming (active, soonest first) or past (concluded, cancelled or long over; newest
        first) sessions the principal may see."""
        now = time.time() if now is None else now
        who, ref = access.mdt_list_scope(principal)
        listing = {"user": ref} if who == "user" else {"clinic": ref} if who == "clinic" else {}
        if scope == "upcoming":
            ids = await self.mdts.ids_between(now - UPCOMING_GRACE_S, float("inf"),
                                              limit=LIST_WINDOW, **listing)
            found = [s for s in await self.mdts.many(ids) if s.active]
        else:
            ids = await self.mdts.ids_between(float("-inf"), float("inf"), newest_first=True,
                                              limit=LIST_WINDOW, **listing)
            found = [s for s in await self.mdts.many(ids)
                     if not s.active or s.starts_at < now - UPCOMING_GRACE_S]
        found = [s for s in found if access.may_view_mdt(principal, s)]
        page = found[offset:offset + limit]
        return {"mdts": [{**s.public(principal), "may": self._may(principal, s)} for s in page],
                "names": await self.names(page), "total": len(found), "limit": limit,
                "offset": offset, "scope": scope}

    # scheduling ----------------------------------------------------------------------------
    async def directory(self, principal: Principal) -> dict[str, Any]:
        """Whom a coordinator can invite: departments with their experts, and clinics."""
        access.require_mdt_coordinator(principal)
        d = self.store.directory
        users = [u for u in await d.users() if u.role is Role.EXPERT and not u.disabled]
        return {
            "departments": [
                {"id": dep.id, "name": dep.name,
                 "experts": [{"username": u.username, "display_name": u.display_name}
                             for u in users if u.department == dep.id]}
                for dep in await d.departments()],
            "clinics": [{"id": c.id, "name": c.name} for c in await d.clinics()],
        }

    async def _experts(self, usernames: list[str]) -> dict[str, str]:
        """Invited experts -> their departments; each must be an enabled expert."""
        out: dict[str, str] = {}
        for name in dict.fromkeys(usernames):
            user = await self.store.directory.get_user(name)
            if user is None or user.role is not Role.EXPERT or user.disabled:
                raise InvalidParameter(f"{name!r} is not an expert account", field="experts")
            assert user.department is not None
            out[name] = user.department
        return out

    async def _check_departments(self, ids: Iterable[str], field: str = "departments") -> None:
        for dep in ids:
            if await self.store.directory.get_department(dep) is None:
                raise InvalidParameter(f"no department {dep!r}", field=field)

    async def _check_clinics(self, ids: Iterable[str]) -> None:
        for c in ids:
            if await self.store.directory.get_clinic(c) is None:
                raise InvalidParameter(f"no clinic {c!r}", field="clinics")

    async def _agenda(self, refs: list[CaseRef], current: MdtSession | None,
                      ) -> list[MdtCase]:
        cases: list[MdtCase] = []
        seen_cases: set[str] = set()
        seen_proposals: set[str] = set()
        for ref in refs:
            if ref.case_id and ref.proposal_id:
                raise InvalidParameter("an agenda entry names a case_id or a proposal_id")
            if ref.case_id:
                case = current.case(ref.case_id) if current else None
                if case is None:
                    raise InvalidParameter(f"no case {ref.case_id} on this agenda",
                                           field="cases")
                if case.case_id in seen_cases:
                    raise InvalidParameter("a case is on the agenda once", field="cases")
                seen_cases.add(case.case_id)
                if case.proposal_id:
                    seen_proposals.add(case.proposal_id)
                cases.append(case)
            elif ref.proposal_id:
                if ref.proposal_id in seen_proposals:
                    raise InvalidParameter("a proposal is on the agenda once", field="cases")
                seen_proposals.add(ref.proposal_id)
                p = await self.mdts.proposal(ref.proposal_id)
                if p is None or p.state == WITHDRAWN or (
                        p.state == SCHEDULED_PROPOSAL
                        and (current is None or p.mdt_id != current.id)):
                    raise InvalidParameter(
                        f"proposal {ref.proposal_id} is not waiting for an MDT", field="cases")
                cases.append(MdtCase(case_id=MdtStore.new_id(), clinic=p.clinic,
                                     patient_name=p.patient_name, patient_id=p.patient_id,
                                     study_uids=list(p.study_uids), proposal_id=p.id,
                                     question=p.reason))
            else:
                raise InvalidParameter("an agenda entry names a case_id or a proposal_id",
                                       field="cases")
        return cases

    async def create(self, principal: Principal, body: MdtCreate, now: float | None = None,
                     mdt_id: str | None = None) -> tuple[MdtSession, list[dict[str, Any]]]:
        access.require_mdt_coordinator(principal)
        now = time.time() if now is None else now
        scheduling.check_start(body.starts_at, now)
        experts = await self._experts(body.experts)
        await self._check_departments(body.departments)
        await self._check_clinics(body.clinics)
        cases = await self._agenda(body.cases, None)
        lead = body.lead_expert
        if lead and lead not in experts:
            raise InvalidParameter("the lead expert is one of the invited experts",
                                   field="lead_expert")
        title = scheduling.check_title(body.title, body.notes, cases)
        mdt_id = mdt_id or MdtStore.new_id()
        session = MdtSession(
            id=mdt_id, title=title, coordinator=principal.username, state=SCHEDULED,
            starts_at=body.starts_at, duration_min=body.duration_min,
            departments=list(dict.fromkeys([*body.departments, *experts.values()])),
            experts=list(experts), clinics=list(dict.fromkeys(
                [*body.clinics, *(c.clinic for c in cases)])),
            cases=cases, lead_expert=lead, sequence=0, room_id=ROOM_PREFIX + mdt_id,
            created_at=now, updated_at=now, notes=body.notes.strip(),
        )
        await self.mdts.create(session)
        for c in cases:
            await self.mdts.set_proposal(c.proposal_id, state=SCHEDULED_PROPOSAL, mdt_id=mdt_id)
        await self._grant(session, session.studies(), self._grantees(session), now)
        event(log, "mdt_scheduled", mdt=mdt_id, by=principal.username, cases=len(cases),
              experts=len(session.experts), clinics=len(session.clinics))
        await self._notify(session, "mdt.invited", users=session.experts,
                           clinics=session.clinics, exclude=principal.username)
        if scheduling.due_to_open(session, now, JOIN_EARLY_S):
            session = await self.open(None, mdt_id, now=now)
        return session, [c.public() for c in await self._conflicts_of(session)]

    async def update(self, principal: Principal, mdt_id: str, body: MdtChange,
                     now: float | None = None) -> tuple[MdtSession, list[dict[str, Any]]]:
        access.require_mdt_coordinator(principal)
        now = time.time() if now is None else now
        current = await self.get(principal, mdt_id)
        scheduling.check_editable(current)
        if (body.starts_at is not None and body.starts_at != current.starts_at) or (
                body.duration_min is not None and body.duration_min != current.duration_min):
            if current.state != SCHEDULED:
                raise Conflict("an open session cannot be rescheduled (cancel it and schedule "
                               "another)", state=current.state)
            if body.starts_at is not None:
                scheduling.check_start(body.starts_at, now)
        experts = (await self._experts(body.experts) if body.experts is not None else None)
        if body.departments is not None:
            await self._check_departments(body.departments)
        if body.clinics is not None:
            await self._check_clinics(body.clinics)
        cases = await self._agenda(body.cases, current) if body.cases is not None else None

        def change(s: MdtSession) -> MdtSession:
            scheduling.check_editable(s)
            new_cases = s.cases
            if cases is not None:
                by_id = {c.case_id: c for c in s.cases}
                new_cases = []
                for c in cases:
                    if c.case_id in {x.case_id for x in current.cases}:
                        if c.case_id not in by_id:
                            raise Conflict("the agenda changed meanwhile: reload")
                        new_cases.append(by_id[c.case_id])  # keeps a conclusion recorded since
                    else:
                        new_cases.append(c)
            new_experts = list(experts) if experts is not None else s.experts
            departments = body.departments if body.departments is not None else s.departments
            if experts is not None:
                departments = [*departments, *experts.values()]
            clinics = body.clinics if body.clinics is not None else s.clinics
            lead = body.lead_expert if body.lead_expert is not None else s.lead_expert
            if lead and lead not in new_experts:
                if body.lead_expert:
                    raise InvalidParameter("the lead expert is one of the invited experts",
                                           field="lead_expert")
                lead = ""
            title = body.title if body.title is not None else s.title
            notes = body.notes.strip() if body.notes is not None else s.notes
            return replace(
                s, title=scheduling.check_title(title, notes, new_cases), notes=notes,
                starts_at=body.starts_at if body.starts_at is not None else s.starts_at,
                duration_min=body.duration_min or s.duration_min,
                departments=list(dict.fromkeys(departments)), experts=new_experts,
                clinics=list(dict.fromkeys([*clinics, *(c.clinic for c in new_cases)])),
                cases=new_cases, lead_expert=lead, sequence=s.sequence + 1)

        before, after = await self.mdts.update(mdt_id, change)
        await self._after_change(before, after, now)
        event(log, "mdt_changed", mdt=mdt_id, by=principal.username, sequence=after.sequence)
        removed_users = set(before.experts) - set(after.experts)
        removed_clinics = set(before.clinics) - set(after.clinics)
        added_users = set(after.experts) - set(before.experts)
        added_clinics = set(after.clinics) - set(before.clinics)
        await self._notify(after, "mdt.cancelled", users=removed_users, clinics=removed_clinics,
                           exclude=principal.username, removed=True)
        await self._notify(after, "mdt.invited", users=added_users, clinics=added_clinics,
                           exclude=principal.username)
        await self._notify(after, "mdt.changed", users=set(after.experts) - added_users,
                           clinics=set(after.clinics) - added_clinics,
                           exclude=principal.username)
        if scheduling.due_to_open(after, now, JOIN_EARLY_S):
            after = await self.open(None, mdt_id, now=now)
        return after, [c.public() for c in await self._conflicts_of(after)]

    async def _after_change(self, before: MdtSession, after: MdtSession, now: float) -> None:
        """Grants and proposals follow the agenda and the invitees."""
        old_users, new_users = set(self._grantees(before)), set(self._grantees(after))
        old_studies, new_studies = set(before.studies()), set(after.studies())
        await self.store.grants.revoke_mdt(after.id, sorted(old_studies),
                                           sorted(old_users - new_users))
        await self.store.grants.revoke_mdt(after.id, sorted(old_studies - new_studies),
                                           sorted(new_users))
        await self._grant(after, after.studies(), self._grantees(after), now)
        old_props = {c.proposal_id for c in before.cases if c.proposal_id}
        new_props = {c.proposal_id for c in after.cases if c.proposal_id}
        for p in old_props - new_props:
            await self.mdts.set_proposal(p, state=PROPOSED)
        for p in new_props - old_props:
            await self.mdts.set_proposal(p, state=SCHEDULED_PROPOSAL, mdt_id=after.id)

    async def cancel(self, principal: Principal, mdt_id: str, reason: str = "",
                     now: float | None = None) -> MdtSession:
        access.require_mdt_coordinator(principal)
        now = time.time() if now is None else now
        await self.get(principal, mdt_id)

        def change(s: MdtSession) -> MdtSession:
            scheduling.check_transition(s, CANCELLED)
            return replace(s, state=CANCELLED, cancel_reason=reason.strip(),
                           sequence=s.sequence + 1)

        before, after = await self.mdts.update(mdt_id, change)
        # the invitees, and coordinators who stood in and were granted on joining the room
        stand_ins = [m.id for m in await self.store.rooms.members(after.room_id)
                     if m.role == Role.COORDINATOR.value] if after.room_id else []
        await self.store.grants.revoke_mdt(
            mdt_id, after.studies(), list(dict.fromkeys([*self._grantees(after), *stand_ins])))
        for c in after.cases:
            if c.proposal_id:
                await self.mdts.set_proposal(c.proposal_id, state=PROPOSED)
        if before.state in (OPEN, LIVE):
            await self._close_room(after, "cancelled")
        event(log, "mdt_cancelled", mdt=mdt_id, by=principal.username)
        await self._notify(after, "mdt.cancelled", users=after.experts, clinics=after.clinics,
                           exclude=principal.username)
        return after

    async def open(self, principal: Principal | None, mdt_id: str,
                   now: float | None = None) -> MdtSession:
        """scheduled -> open: the room exists from now on and invitees may join. By the sweeper
        (principal None) 15 minutes before the start, or early by a coordinator."""
        now = time.time() if now is None else now
        if principal is not None:
            access.require_mdt_coordinator(principal)
            await self.get(principal, mdt_id)

        def change(s: MdtSession) -> MdtSession:
            if principal is None and s.state != SCHEDULED:
                raise _Unchanged
            scheduling.check_transition(s, OPEN)
            return replace(s, state=OPEN, opened_at=now)

        try:
            _, after = await self.mdts.update(mdt_id, change)
        except _Unchanged:
            return await self.mdts.require(mdt_id)
        await self._create_room(after)
        event(log, "mdt_opened", mdt=mdt_id, by=principal.username if principal else "sweeper")
        await self._notify(after, "mdt.changed", users=[after.coordinator, *after.experts],
                           clinics=after.clinics,
                           exclude=principal.username if principal else "")
        return after

    async def mark_live(self, mdt_id: str, now: float | None = None) -> MdtSession | None:
        """open -> live (someone is in the room); None when it was not open."""
        now = time.time() if now is None else now

        def change(s: MdtSession) -> MdtSession:
            if s.state != OPEN:
                raise _Unchanged
            return replace(s, state=LIVE, live_at=now)

        try:
            _, after = await self.mdts.update(mdt_id, change)
        except _Unchanged:
            return None
        event(log, "mdt_live", mdt=mdt_id)
        return after

    # conclusions ---------------------------------------------------------------------------
    async def record_conclusion(self, principal: Principal, mdt_id: str, case_id: str,
                                body: ConclusionIn, now: float | None = None
                                ) -> tuple[MdtSession, MdtCase]:
        now = time.time() if now is None else now
        session = await self.get(principal, mdt_id)
        access.require_mdt_concluder(principal, session)
        await self._check_departments([body.responsible_department], "responsible_department")
        follow_up = scheduling.check_follow_up(body.follow_up_date,
                                               dt.datetime.fromtimestamp(now, dt.UTC).date())
        conclusion = Conclusion(diagnosis=body.diagnosis.strip(), plan=body.plan.strip(),
                                responsible_department=body.responsible_department,
                                follow_up_date=follow_up, by=principal.username, at=now)
        if not conclusion.diagnosis or not conclusion.plan:
            raise InvalidParameter("a conclusion has a diagnosis and a plan")

        def change(s: MdtSession) -> MdtSession:
            if s.state not in scheduling.CONCLUDABLE:
                raise Conflict(f"conclusions are recorded while the session is open or live, "
                               f"not {s.state}", state=s.state)
            if s.case(case_id) is None:
                raise NotFound("no such case on this agenda")
            return replace(s, cases=[replace(c, conclusion=conclusion)
                                     if c.case_id == case_id else c for c in s.cases])

        _, after = await self.mdts.update(mdt_id, change)
        case = after.case(case_id)
        assert case is not None
        await self._room_event(after, "conclusion.recorded", case_id=case_id,
                               diagnosis=conclusion.diagnosis, plan=conclusion.plan,
                               responsible_department=conclusion.responsible_department,
                               follow_up_date=conclusion.follow_up_date, by=principal.username)
        event(log, "mdt_conclusion_recorded", mdt=mdt_id, case=case_id, by=principal.username)
        return after, case

    async def conclude(self, principal: Principal, mdt_id: str,
                       now: float | None = None) -> MdtSession:
        """open/live -> concluded: attendees taken from the room's members, the room closed,
        grants renewed for the grant period from now, the clinics told the summary is ready."""
        now = time.time() if now is None else now
        session = await self.get(principal, mdt_id)
        access.require_mdt_concluder(principal, session)
        attendees = await self._attendees(session)

        def change(s: MdtSession) -> MdtSession:
            scheduling.check_transition(s, CONCLUDED)
            return replace(s, state=CONCLUDED, concluded_at=now, attendees=attendees,
                           sequence=s.sequence + 1)

        _, after = await self.mdts.update(mdt_id, change)
        await self._grant(after, after.studies(), self._grantees(after), now)
        await self._room_event(after, "mdt.concluded", by=principal.username,
                               concluded=sum(1 for c in after.cases if c.conclusion),
                               cases=len(after.cases))
        await self._close_room(after, "concluded")
        event(log, "mdt_concluded", mdt=mdt_id, by=principal.username,
              attendees=len(attendees))
        await self._notify(after, "mdt.summary", users=[after.coordinator, *after.experts],
                           clinics=after.clinics, exclude=principal.username)
        return after

    async def _attendees(self, session: MdtSession) -> list[Attendee]:
        if not session.room_id:
            return []
        members = await self.store.rooms.members(session.room_id)
        return [Attendee(m.id, m.display_name, m.role, m.clinic, m.department, m.joined_at)
                for m in sorted(members, key=lambda m: m.joined_at)]

    # summary -----------------------------------------------------------------------------
    async def summary(self, principal: Principal, mdt_id: str, lang: str = "en") -> Document:
        """The concluded session's summary as the viewer may see it: a clinic's doctor gets
        their clinic's cases, attendees and key images only."""
        session = await self.get(principal, mdt_id)
        if session.state != CONCLUDED:
            raise Conflict("the summary exists once the session is concluded",
                           state=session.state)
        cases = [(n, c) for n, c in enumerate(session.cases, 1)
                 if access.may_see_mdt_case(principal, c)]
        attendees = [a for a in session.attendees
                     if access.sees_all_mdt_cases(principal) or a.clinic in (None,
                                                                            principal.clinic)]
        images = await self._key_images(session, cases)
        return summary.document(session, cases=cases, attendees=attendees,
                                names=await self.names([session]), images=images,
                                institution=self.settings.institution, lang=lang)

    async def _key_images(self, session: MdtSession, cases: list[tuple[int, MdtCase]]
                          ) -> list[tuple[bytes, int, int]]:
        """The room's key images (H4's store) of these cases, rendered by the one renderer
        (thread pool) as PNG, in the order they were marked."""
        key_images = getattr(self.store, "key_images", None)
        if key_images is None or self.renderer is None or not session.room_id:
            return []
        by_case = {c.case_id: (n, c) for n, c in cases}
        by_study = {uid: (n, c) for n, c in cases for uid in c.study_uids}
        out: list[tuple[bytes, int, int]] = []
        for k in (await key_images.list(session.room_id))[:MAX_SUMMARY_IMAGES]:
            found = by_case.get(_field(k, "case_id") or "") or by_study.get(
                _field(k, "study_uid") or "")
            if (found is None or _field(k, "study_uid") not in found[1].study_uids
                    or _field(k, "clinic") not in (None, found[1].clinic)):
                continue  # a case the viewer may not see, or an image of no agenda study
            number, case = found
            record = await self.store.studies.instance(case.clinic, _field(k, "study_uid"),
                                                       _field(k, "sop_instance_uid"))
            if record is None:
                continue
            frame = int(_field(k, "frame") or 1)
            window = _window(_field(k, "window"))
            try:
                image = await self.renderer.render(
                    self.settings.dicom_dir / record.path, frame, window=window,
                    viewport=SUMMARY_IMAGE_VIEWPORT, media_type="image/png")
            except (ImagingError, FileNotFoundError) as exc:
                event(log, "mdt_key_image_failed", logging.WARNING, mdt=session.id,
                      error=type(exc).__name__)
                continue
            out.append((image.content, number, frame))
        return out

    # proposals -----------------------------------------------------------------------------
    async def propose(self, principal: Principal, body: ProposalCreate,
                      now: float | None = None) -> Proposal:
        access.require_mdt_proposer(principal)
        now = time.time() if now is None else now
        await self._check_departments(body.departments)
        uids = list(dict.fromkeys(body.study_uids))
        clinic: str | None = None
        if principal.role is Role.DOCTOR:
            clinic = access.own_clinic(principal)
            for uid in uids:
                access.check_study(principal, await self.store.studies.study_owner(
                    clinic or "", uid))
        else:
            clinics: set[str] = set()
            for uid in uids:
                grants = await self.store.grants.of_user(principal.username, study_uid=uid)
                if body.clinic:
                    grants = [g for g in grants if g.clinic == body.clinic]
                granted = access.by_grant(principal, uid, grants)
                if granted is None:
                    raise NotFound("no such study")
                clinics.add(granted.clinic)
            if len(clinics) != 1:
                raise InvalidParameter("a case's studies are one clinic's", field="study_uids")
            clinic = clinics.pop()
        assert clinic is not None
        records = await self.store.studies.studies([(clinic, u) for u in uids])
        if len(records) != len(uids):
            raise NotFound("no such study")
        patients = {str(_attr(r.attrs, "00100020")) for r in records}
        if len(patients) > 1:
            raise InvalidParameter("a case is one patient: these studies are of several",
                                   field="study_uids")
        first = records[0].attrs
        proposal = Proposal(
            id=MdtStore.new_id(), by=principal.username, by_role=principal.role.value,
            clinic=clinic, patient_name=_pn_text(_attr(first, "00100010")),
            patient_id=str(_attr(first, "00100020")), study_uids=uids,
            reason=body.reason.strip(), departments=list(dict.fromkeys(body.departments)),
            created_at=now)
        if not proposal.reason:
            raise InvalidParameter("say why the case goes to an MDT", field="reason")
        await self.mdts.add_proposal(proposal)
        event(log, "mdt_proposed", proposal=proposal.id, by=principal.username, clinic=clinic)
        await self._notify_proposal(proposal)
        return proposal

    async def proposals(self, principal: Principal, *, q: str = "", state: str = PROPOSED,
                        department: str = "", limit: int = 50) -> list[Proposal]:
        """The coordinator's search among proposed cases (text in the patient's name or ID,
        the reason or the clinic; a department; a state); a doctor's are their clinic's, an
        expert's their own."""
        who, ref = access.mdt_proposal_scope(principal)
        found = await self.mdts.proposals(clinic=ref if who == "clinic" else None,
                                          user=ref if who == "user" else None)
        needle = q.strip().casefold()
        out = []
        for p in found:
            if state and state != "all" and p.state != state:
                continue
            if department and department not in p.departments:
                continue
            if needle and needle not in "\n".join(
                    (p.patient_name, p.patient_id, p.reason, p.clinic)).casefold():
                continue
            out.append(p)
            if len(out) >= limit:
                break
        return out

    async def withdraw(self, principal: Principal, proposal_id: str) -> Proposal:
        p = await self.mdts.proposal(proposal_id)
        access.require_patient_reader(principal)
        if p is None or not access.may_withdraw_mdt_proposal(principal, p):
            raise NotFound("no such proposal")
        if p.state != PROPOSED:
            raise Conflict(f"a proposal that is {p.state} cannot be withdrawn", state=p.state)
        await self.mdts.set_proposal(proposal_id, state=WITHDRAWN)
        return replace(p, state=WITHDRAWN)

    # conflicts -----------------------------------------------------------------------------
    async def _others_around(self, starts_at: int, ends_at: int) -> list[MdtSession]:
        ids = await self.mdts.ids_between(starts_at - scheduling.MAX_DURATION_S, ends_at,
                                          limit=LIST_WINDOW)
        return await self.mdts.many(ids)

    async def _conflicts_of(self, s: MdtSession) -> list[scheduling.TimeConflict]:
        if not s.active:
            return []
        return scheduling.conflicts(
            starts_at=s.starts_at, ends_at=s.ends_at, coordinator=s.coordinator,
            experts=s.experts, clinics=s.clinics,
            others=await self._others_around(s.starts_at, s.ends_at), exclude=s.id)

    async def conflicts(self, principal: Principal, q: ConflictQuery) -> list[dict[str, Any]]:
        access.require_mdt_coordinator(principal)
        ends_at = q.starts_at + 60 * q.duration_min
        found = scheduling.conflicts(
            starts_at=q.starts_at, ends_at=ends_at, coordinator=principal.username,
            experts=q.experts, clinics=q.clinics,
            others=await self._others_around(q.starts_at, ends_at), exclude=q.exclude or "")
        return [c.public() for c in found]

    # calendars -----------------------------------------------------------------------------
    async def _department_names(self) -> dict[str, str]:
        return {d.id: d.name for d in await self.store.directory.departments()}

    async def session_ics(self, principal: Principal, mdt_id: str) -> bytes:
        session = await self.get(principal, mdt_id)
        return calendar.calendar([session], base_url=self.base_url,
                                 department_names=await self._department_names())

    async def feed_path(self, principal: Principal, *, rotate: bool = False) -> str:
        access.mdt_calendar_sessions_scope(principal.username, principal.role, principal.clinic)
        token = await self.mdts.calendar_token(principal.username, rotate=rotate)
        return f"/calendar/{token}.ics"

    async def feed(self, token: str, now: float | None = None) -> tuple[str, bytes]:
        """The calendar of the token's owner: (username, iCalendar bytes). NotFound for any
        token that is not a live one of an enabled account."""
        now = time.time() if now is None else now
        if not _TOKEN_RE.match(token):
            raise NotFound("no such calendar")
        username = await self.mdts.calendar_user(token)
        user = await self.store.directory.get_user(username) if username else None
        if user is None or user.disabled:
            raise NotFound("no such calendar")
        who, ref = access.mdt_calendar_sessions_scope(user.username, user.role, user.clinic)
        listing = {"user": ref} if who == "user" else {"clinic": ref}
        ids = await self.mdts.ids_between(now - FEED_PAST_S, float("inf"), limit=LIST_WINDOW,
                                          **listing)
        sessions = await self.mdts.many(ids)
        return user.username, calendar.calendar(
            sessions, base_url=self.base_url, department_names=await self._department_names(),
            name=f"Huizhen MDT — {user.display_name}")

    # sweeper -------------------------------------------------------------------------------
    async def sweep(self, now: float | None = None) -> int:
        """Open the sessions due (15 minutes before their start) and mark live the open ones
        someone is in. Any number of processes may sweep: each change is a compare-and-set."""
        now = time.time() if now is None else now
        ids = await self.mdts.ids_between(now - UPCOMING_GRACE_S, now + JOIN_EARLY_S,
                                          limit=LIST_WINDOW)
        changed = 0
        for s in await self.mdts.many(ids):
            if scheduling.due_to_open(s, now, JOIN_EARLY_S):
                await self.open(None, s.id, now=now)
                changed += 1
            elif s.state == OPEN and s.room_id:
                members = await self.store.rooms.members(s.room_id)
                if any(m.state.value != "left" for m in members):
                    changed += await self.mark_live(s.id, now=now) is not None
        return changed

    # plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _grantees(s: MdtSession) -> list[str]:
        return list(dict.fromkeys(u for u in (s.coordinator, *s.experts) if u))

    async def _grant(self, s: MdtSession, studies: list[tuple[str, str]], users: list[str],
                     now: float) -> None:
        await grant_session(self.store, s, users, now, studies)

    async def _create_room(self, s: MdtSession) -> None:
        await self.store.rooms.create(kind="mdt", ref=s.id, room_id=s.room_id,
                                      max_participants=MDT_MAX_PARTICIPANTS)

    async def _close_room(self, s: MdtSession, reason: str) -> None:
        """Members (on every node) get `room.closed`; without the real-time plane (a CLI, a
        unit test) the room is only marked closed."""
        rt = self._realtime()
        if rt is not None:
            await rt.rooms.close_room(s.room_id, reason)
        else:
            await self.store.rooms.close(s.room_id)

    async def _room_event(self, s: MdtSession, event_type: str, **fields: Any) -> None:
        """An event of the room's log (the minutes), told to its members live."""
        room = await self.store.rooms.get(s.room_id) if s.room_id else None
        if room is None:
            return
        rt = self._realtime()
        if rt is not None:
            await rt.rooms.emit(s.room_id, event_type, **fields)
        else:
            await self.store.rooms.append(s.room_id, event_type, fields, kept=None)

    def _notification(self, s: MdtSession, **extra: Any) -> dict[str, Any]:
        """What an invitation says: ids and display text only (no patient: the title and notes
        never name one)."""
        return {"mdt_id": s.id, "title": s.title, "starts_at": s.starts_at,
                "duration_min": s.duration_min, "state": s.state, "sequence": s.sequence,
                "url": calendar.join_path(s.id), **extra}

    async def _notify(self, s: MdtSession, kind: str, *, users: Iterable[str] = (),
                      clinics: Iterable[str] = (), exclude: str = "", **extra: Any) -> None:
        users, clinics = sorted(set(users)), sorted(set(clinics))
        rt = self._realtime()
        if rt is None or not (users or clinics):
            return
        await rt.notifier.notify(Audience.of(users=users, clinics=clinics), kind,
                              self._notification(s, **extra), exclude=exclude)

    async def _notify_proposal(self, p: Proposal) -> None:
        rt = self._realtime()
        if rt is None:
            return
        await rt.notifier.notify(Audience.of(roles=[Role.COORDINATOR.value]), "mdt.proposed",
                              {"proposal_id": p.id, "departments": p.departments},
                              exclude=p.by)

"""The access policy: the one place that decides who may see which patient data.

A study is (clinic, StudyInstanceUID). A doctor sees their own clinic's studies. Anyone who
reads patient data (doctor, expert, coordinator) also sees a study they hold a live grant for
(server/store/grants.py: a consult they accepted, were invited into or joined; later MDT and
reading requests) — of any kind: a new kind needs no change here. An expert may break the glass:
open a study without a grant by giving a reason, for a short time, every view marked in the
audit. Admins manage people, not patients, so they see no patient data at all, granted or not.

Which study a URL's StudyInstanceUID names, when the same UID exists in several clinics: a
doctor's own clinic's first; otherwise the study of the caller's most recent live grant.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from server.auth.principal import Principal
from server.errors import Forbidden, InvalidParameter, NotFound
from server.store.directory import Role
from server.store.grants import BREAK_GLASS, Grant
from server.store.mdt import MdtCase, MdtSession, Proposal
from server.store.referrals import Direction, Referral

_READERS = {Role.DOCTOR, Role.EXPERT, Role.COORDINATOR}
MAX_REASON_CHARS = 500
MIN_REASON_CHARS = 4


@dataclass(frozen=True)
class StudyAccess:
    """Why a principal may read one study: their clinic's, or which grant."""

    clinic: str  # the study's clinic
    study_uid: str
    via: str  # "clinic" or the grant's kind
    grant_ref: str = ""
    break_glass_reason: str = ""

    @property
    def break_glass(self) -> bool:
        return self.via == BREAK_GLASS

    def audit_fields(self) -> dict[str, str]:
        """What every audited read under this access adds: the study's clinic and the grant;
        break-glass views are marked so an auditor can list them all."""
        fields = {"study_clinic": self.clinic, "via": self.via}
        if self.grant_ref:
            fields["grant"] = self.grant_ref
        if self.break_glass:
            fields["break_glass"] = "1"
            fields["reason"] = self.break_glass_reason
        return fields


def listing_audit_fields(shown: Sequence[StudyAccess]) -> dict[str, str]:
    """What the audit of a search adds for the studies it showed: a listing shows patient names
    and IDs, so one that shows a break-glass study is marked as a break-glass view too."""
    glass = [a for a in shown if a.break_glass]
    if not glass:
        return {}
    return {
        "break_glass": "1",
        "break_glass_studies": ",".join(f"{a.clinic}/{a.study_uid}" for a in glass),
        "reason": " | ".join(dict.fromkeys(a.break_glass_reason for a in glass)),
    }


def own_clinic(principal: Principal) -> str | None:
    """The clinic whose studies a principal sees without a grant (doctors only)."""
    require_patient_reader(principal)
    return principal.clinic if principal.role is Role.DOCTOR else None


def by_grant(principal: Principal, study_uid: str, grants: Sequence[Grant]) -> StudyAccess | None:
    """Access to a StudyInstanceUID through the caller's grants (any kind), newest grant first;
    None: no live grant, so no such study for them (404)."""
    require_patient_reader(principal)
    for g in grants:  # newest first (Grants.of_user)
        if g.username == principal.username and g.study_uid == study_uid:
            return StudyAccess(g.clinic, study_uid, g.kind, g.ref, g.reason)
    return None


def by_clinic(principal: Principal, study_uid: str) -> StudyAccess:
    clinic = own_clinic(principal)
    assert clinic is not None
    return StudyAccess(clinic, study_uid, "clinic")


def visible(
    principal: Principal, own: Sequence[str], grants: Sequence[Grant]
) -> list[StudyAccess]:
    """Every study a principal's QIDO search may list: their clinic's (`own`, UIDs) and their
    granted ones, each once."""
    require_patient_reader(principal)
    clinic = own_clinic(principal)
    seen: set[tuple[str, str]] = set()
    out: list[StudyAccess] = []
    if clinic is not None:
        for uid in own:
            seen.add((clinic, uid))
            out.append(StudyAccess(clinic, uid, "clinic"))
    for g in grants:
        if g.username == principal.username and (g.clinic, g.study_uid) not in seen:
            seen.add((g.clinic, g.study_uid))
            out.append(StudyAccess(g.clinic, g.study_uid, g.kind, g.ref, g.reason))
    return out


def break_glass_reason(principal: Principal, reason: object) -> str:
    """Only experts break the glass, and only with a reason a reviewer can read."""
    require_role(principal, Role.EXPERT)
    text = reason.strip() if isinstance(reason, str) else ""
    if len(text) < MIN_REASON_CHARS:
        raise InvalidParameter(
            f"emergency access needs a reason (at least {MIN_REASON_CHARS} characters): "
            "it is shown to the auditors"
        )
    if len(text) > MAX_REASON_CHARS:
        raise InvalidParameter(f"the reason is limited to {MAX_REASON_CHARS} characters")
    return text


def require_patient_reader(principal: Principal) -> None:
    if principal.role not in _READERS:
        raise Forbidden(f"a {principal.role.value} account has no access to patient data")


def check_study(principal: Principal, owner_clinic: str | None) -> None:
    """A doctor naming one of their clinic's studies (a consult's study). 404, not 403, for a
    study one may not see: its existence is itself patient data."""
    require_patient_reader(principal)
    if owner_clinic is None or own_clinic(principal) != owner_clinic:
        raise NotFound("no such study")


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this action is for {allowed} accounts, not {principal.role.value}")


def upload_clinic(principal: Principal) -> str:
    """Which clinic owns what this principal uploads (only clinic doctors upload)."""
    require_role(principal, Role.DOCTOR)
    assert principal.clinic is not None  # doctors always have a clinic (Directory enforces it)
    return principal.clinic


def require_admin(principal: Principal) -> None:
    """Managing clinics, departments, accounts and kiosks (never patient data)."""
    require_role(principal, Role.ADMIN)


def require_directory_reader(principal: Principal) -> None:
    """Departments and their online counts carry no patient data: every signed-in role
    (doctors choose whom to call, experts whom to invite, admins manage them)."""
    if principal.role not in (Role.DOCTOR, Role.EXPERT, Role.COORDINATOR, Role.ADMIN,
                              Role.AUDITOR):
        raise Forbidden("this account may not list departments")


def consult_history_scope(principal: Principal) -> tuple[str, str]:
    """Whose consult history a principal sees: a doctor their clinic's (`("clinic", id)`),
    an expert or coordinator the consults whose room they joined (`("user", username)`).
    Admins see no patient data."""
    if principal.role is Role.DOCTOR:
        assert principal.clinic is not None
        return "clinic", principal.clinic
    if principal.role in (Role.EXPERT, Role.COORDINATOR):
        return "user", principal.username
    raise Forbidden(f"a {principal.role.value} account has no consult history")


def notification_inbox(principal: Principal) -> str:
    """Whose notifications a caller reads or marks read: always their own inbox, whatever the
    role (an inbox holds only what was addressed to its owner)."""
    return principal.username


# rooms (a consult call, an MDT meeting): the decisions; server/realtime/room_policy.py gathers
# the facts (membership, invitations, the MDT session) and asks these.
_ROOM_NAMES = {"consult": "consult", "mdt": "MDT"}


def room_joiner(principal: Principal, kind: str) -> None:
    """Admins manage people, not patients: they join no room of any kind."""
    if principal.role is Role.ADMIN:
        raise Forbidden(f"administrators do not join {_ROOM_NAMES.get(kind, kind)} rooms")


def room_join(principal: Principal, kind: str, *, member: bool, invited: bool) -> None:
    """Earlier members and invitees join (for an MDT, `invited` is the session's
    `may_join`); anyone else is told the room does not exist (404, not 403)."""
    room_joiner(principal, kind)
    if not (member or invited):
        raise NotFound("no such open room")


def room_invite(principal: Principal, kind: str, *, coordinator: bool) -> None:
    """A consult's experts invite colleagues; an MDT's coordinator invites."""
    if kind == "consult":
        if principal.role is not Role.EXPERT:
            raise Forbidden("only experts in the room invite colleagues")
    elif not coordinator:
        raise Forbidden("only the MDT's coordinator invites")


def room_coordinator(principal: Principal, kind: str, session_coordinator: str) -> bool:
    """Who coordinates a live room: for an MDT its coordinator, or any coordinator account
    (one may stand in for another). A consult room has none."""
    if kind != "mdt":
        return False
    return principal.username == session_coordinator or principal.role is Role.COORDINATOR


def room_present(principal: Principal, kind: str) -> None:
    """Presenting (driving the shared view, the pointer) is for MDT rooms; which member
    presents at a time is the room's control state (one presenter, atomically)."""
    if kind != "mdt":
        raise Forbidden("this room has no shared view")
    if principal.role is Role.ADMIN:
        raise Forbidden("administrators do not present")


def room_agenda(principal: Principal, kind: str, *, coordinator: bool, presenter: bool) -> None:
    """The MDT's coordinator or its presenter moves the agenda to another case."""
    room_present(principal, kind)
    if not (coordinator or presenter):
        raise Forbidden("only the coordinator or the presenter changes the current case")


# Reports and consult opinions (server/clinical/reports.py) -------------------------------------
REPORT_VIA_CLINIC = "clinic"
REPORT_VIA_INVOLVED = "involved"


def report_reader(
    principal: Principal, *, clinic: str, study_uid: str, involved: bool,
    grants: Sequence[Grant],
) -> str:
    """Why a principal may read a report (its signed versions): a doctor of the patient's
    clinic; the expert who wrote, signed or holds it (`involved`); anyone holding a live grant
    of its study (the department's readers, an MDT, a referral). NotFound otherwise (a report's
    existence is patient data). Returns "clinic", "involved" or the grant's kind."""
    require_patient_reader(principal)
    if principal.role is Role.DOCTOR and principal.clinic == clinic:
        return REPORT_VIA_CLINIC
    if involved and principal.role in (Role.EXPERT, Role.COORDINATOR):
        return REPORT_VIA_INVOLVED
    if study_uid:
        for g in grants:
            if g.username == principal.username and g.study_uid == study_uid \
                    and g.clinic == clinic:
                return g.kind
    raise NotFound("no such report")


def require_report_editor(principal: Principal, editor: str | None) -> None:
    """Drafts are written, signed and amended by one expert: the holder of the reading
    request's claim, the expert of the consult, or the signer of the version amended."""
    require_role(principal, Role.EXPERT)
    if editor is None or principal.username != editor:
        raise Forbidden("only the expert who holds this reading (or consult) may write, sign "
                        "or amend its report")


def report_list_scope(principal: Principal) -> tuple[str, str]:
    """Whose reports a list shows: a doctor their clinic's signed ones, an expert their own."""
    require_patient_reader(principal)
    if principal.role is Role.DOCTOR:
        assert principal.clinic is not None
        return "clinic", principal.clinic
    return "author", principal.username


# MDT sessions (server/mdt/) -----------------------------------------------------------------
# Who may join an MDT session's room, see its agenda, change it and record its conclusions.
# Invitees read the cases' studies through grants of kind "mdt" (server/store/grants.py): the
# coordinator and the invited experts hold them; an invited clinic's doctors read their own
# clinic's cases as always, and never another clinic's (those cases are placeholders to them).


def _invited(principal: Principal, session: MdtSession) -> bool:
    if principal.role is Role.COORDINATOR:
        return True  # the owner, or any coordinator of the team
    if principal.role is Role.EXPERT:
        return principal.username in session.experts
    if principal.role is Role.DOCTOR:
        return principal.clinic is not None and principal.clinic in session.clinics
    return False


def may_join_mdt(principal: Principal, session: MdtSession) -> bool:
    """The MDT room: coordinators, the invited experts, doctors of the invited clinics; only
    while the session is open or live."""
    return session.state in ("open", "live") and _invited(principal, session)


def mdt_join_needs_grant(principal: Principal, session: MdtSession) -> bool:
    """A coordinator who joins an MDT room they do not coordinate reads its cases as the
    session's own coordinator does (a grant on joining); doctors never get one."""
    return principal.role is Role.COORDINATOR and principal.username != session.coordinator


def may_view_mdt(principal: Principal, session: MdtSession) -> bool:
    """The session's page, calendar entry and (once concluded) summary: the same people, in
    any state."""
    return _invited(principal, session)


def require_mdt_view(principal: Principal, session: MdtSession) -> None:
    """404 (not 403) for a session one is not invited to: its existence names patients' case."""
    require_patient_reader(principal)
    if not may_view_mdt(principal, session):
        raise NotFound("no such MDT session")


def sees_all_mdt_cases(principal: Principal) -> bool:
    """Coordinators and experts see every case of a session they may view; a doctor only their
    clinic's."""
    return principal.role in (Role.COORDINATOR, Role.EXPERT)


def may_see_mdt_case(principal: Principal, case: MdtCase) -> bool:
    if sees_all_mdt_cases(principal):
        return True
    return principal.role is Role.DOCTOR and principal.clinic == case.clinic


def require_mdt_coordinator(principal: Principal) -> None:
    """Scheduling, editing, rescheduling, cancelling, opening and concluding an MDT."""
    require_role(principal, Role.COORDINATOR)


def require_mdt_concluder(principal: Principal, session: MdtSession) -> None:
    """A case's conclusion: a coordinator, or the session's lead expert."""
    require_mdt_view(principal, session)
    if principal.role is Role.COORDINATOR:
        return
    if principal.role is Role.EXPERT and principal.username == session.lead_expert:
        return
    raise Forbidden("conclusions are recorded by the coordinator or the lead expert")


def mdt_list_scope(principal: Principal) -> tuple[str, str]:
    """Which sessions a principal lists: a coordinator all (`("all", "")`), an expert the
    ones they are invited to (`("user", username)`), a doctor their clinic's (`("clinic", id)`)."""
    require_patient_reader(principal)
    if principal.role is Role.COORDINATOR:
        return "all", ""
    if principal.role is Role.EXPERT:
        return "user", principal.username
    assert principal.clinic is not None
    return "clinic", principal.clinic


def require_mdt_proposer(principal: Principal) -> None:
    """Proposing a case for an MDT: a clinic doctor (their clinic's studies) or an expert
    (studies they may read)."""
    require_role(principal, Role.DOCTOR, Role.EXPERT)


def mdt_proposal_scope(principal: Principal) -> tuple[str, str]:
    """Whose proposals a principal searches: a coordinator all (`("all", "")`), a doctor their
    clinic's (`("clinic", id)`), an expert their own (`("user", username)`)."""
    require_patient_reader(principal)
    if principal.role is Role.COORDINATOR:
        return "all", ""
    if principal.role is Role.DOCTOR:
        assert principal.clinic is not None
        return "clinic", principal.clinic
    return "user", principal.username


def may_withdraw_mdt_proposal(principal: Principal, proposal: Proposal) -> bool:
    if principal.role is Role.COORDINATOR or principal.username == proposal.by:
        return True
    return principal.role is Role.DOCTOR and principal.clinic == proposal.clinic


def mdt_calendar_sessions_scope(username: str, role: Role, clinic: str | None
                                ) -> tuple[str, str]:
    """Whose sessions a calendar feed lists (the feed has no principal, only its owner):
    a doctor's clinic's, everyone else's own (coordinated or invited)."""
    if role is Role.DOCTOR and clinic:
        return "clinic", clinic
    if role in (Role.EXPERT, Role.COORDINATOR):
        return "user", username
    raise Forbidden(f"a {role.value} account has no MDT calendar")


# Reading requests (work items) ---------------------------------------------------------------


def worklist_scope(principal: Principal, department: str | None = None) -> tuple[str, str]:
    """Whose reading requests a principal lists: a doctor their clinic's (`("clinic", id)`),
    an expert their department's only, a coordinator any department's (or all). Admins see
    no patient data."""
    if principal.role is Role.DOCTOR:
        assert principal.clinic is not None
        return "clinic", principal.clinic
    if principal.role is Role.EXPERT:
        if department and department != principal.department:
            raise Forbidden("an expert sees their own department's worklist only")
        assert principal.department is not None
        return "department", principal.department
    if principal.role is Role.COORDINATOR:
        return ("department", department) if department else ("all", "")
    raise Forbidden(f"a {principal.role.value} account has no worklist")


def check_work_item(principal: Principal, clinic: str, department: str) -> None:
    """A reading request is seen by its clinic's doctors, its department's experts and the
    coordinators; to anyone else it does not exist (404: its existence is patient data)."""
    require_patient_reader(principal)
    if principal.role is Role.DOCTOR and principal.clinic == clinic:
        return
    if principal.role is Role.EXPERT and principal.department == department:
        return
    if principal.role is Role.COORDINATOR:
        return
    raise NotFound("no such reading request")


def require_reader(principal: Principal, department: str) -> None:
    """Claiming (and reading) a request: an expert of its department."""
    require_role(principal, Role.EXPERT)
    if principal.department != department:
        raise Forbidden("this reading request is for another department")


def require_department_head(principal: Principal, department: str, head: str) -> None:
    """Reassigning a department's requests: its head (Directory.set_department_head)."""
    if not head or principal.username != head or principal.department != department:
        raise Forbidden("only the head of this department may reassign its reading requests")


def may_cancel_work_item(principal: Principal, clinic: str, requester: str, department: str,
                         head: str) -> None:
    """The requesting clinic's doctors withdraw a request; the department's head declines one."""
    if principal.role is Role.DOCTOR and principal.clinic == clinic:
        return
    if head and principal.username == head and principal.department == department:
        return
    raise Forbidden("only the requesting clinic or the department's head may cancel this")


# Critical-value alerts -------------------------------------------------------------------------


def alert_scope(principal: Principal) -> tuple[str, str]:
    """Which alerts a principal lists (the register): a doctor their clinic's, an expert their
    department's, a coordinator every one."""
    if principal.role is Role.DOCTOR:
        assert principal.clinic is not None
        return "clinic", principal.clinic
    if principal.role is Role.EXPERT:
        assert principal.department is not None
        return "department", principal.department
    if principal.role is Role.COORDINATOR:
        return "all", ""
    raise Forbidden(f"a {principal.role.value} account sees no alerts")


def check_alert(principal: Principal, clinic: str, department: str, told: Sequence[str] = ()
                ) -> None:
    """An alert is seen by its clinic's doctors, the raising department's experts, the
    coordinators, and whoever its escalation told; to anyone else it does not exist."""
    require_patient_reader(principal)
    if principal.role is Role.DOCTOR and principal.clinic == clinic:
        return
    if principal.role is Role.EXPERT and principal.department == department:
        return
    if principal.role is Role.COORDINATOR or principal.username in told:
        return
    raise NotFound("no such alert")


def require_alert_receiver(principal: Principal, clinic: str) -> None:
    """Acknowledging (with a read-back) and recording the action: a doctor of the clinic."""
    require_role(principal, Role.DOCTOR)
    if principal.clinic != clinic:
        raise NotFound("no such alert")


def require_alert_raiser(principal: Principal, responsible: Sequence[str]) -> None:
    """Raising an alert on a report or consult: an expert responsible for it (the report's
    author or the request's claimer; the consult's accepting expert or a joined expert)."""
    require_role(principal, Role.EXPERT)
    if principal.username not in responsible:
        raise Forbidden("only the expert reading this case may raise a critical alert on it")
def require_author(principal: Principal, author: str, what: str = "annotation") -> None:
    """Undo: only its author removes an annotation or a key image (everyone who may see the
    study sees it; nobody edits another person's mark)."""
    if principal.username != author:
        raise Forbidden(f"only its author may remove this {what}")


def require_room_share(
    principal: Principal, *, is_member: bool, room_open: bool,
    room_studies: Collection[tuple[str, str]], study: tuple[str, str],
) -> None:
    """A mark shared with a room is sent to every participant: only a participant of the open
    room shares, and only on a study of the room (its consult's, its MDT cases': (clinic, UID)),
    which every participant was granted; never a study the others may not see."""
    require_patient_reader(principal)
    if not (is_member and room_open):
        raise NotFound("no such open room")
    if study not in room_studies:
        raise Forbidden("this study is not one of the room's studies")


def room_ecg_share(principal: Principal, kind: str, *, consult_clinic: str | None,
                   instance_clinic: str | None, is_ecg: bool) -> str:
    """In a consult call the calling clinic's doctor sends one of their clinic's ECGs to the
    experts (who are then granted its study, like the consult's). Another clinic's instance is
    404 (its existence is patient data); a non-ECG instance 400. Returns the clinic."""
    if kind != "consult":
        raise Forbidden("ECGs are sent into consult calls")
    clinic = upload_clinic(principal)
    if consult_clinic != clinic:
        raise Forbidden("only the calling clinic's doctor sends ECGs into this call")
    ecg_instance(found=instance_clinic == clinic, is_ecg=is_ecg)
    return clinic


def room_ecg_study(principal: Principal, kind: str, *,
                   room_studies: Collection[tuple[str, str]], study_uid: str) -> str:
    """Which clinic's study an MDT presenter's shared ECG is of: only a study on the session's
    agenda (the room's studies, which every invitee is granted), as for a shared image or mark
    (`require_room_share`); a doctor presenting names only their own clinic's cases, as they see
    only those. Forbidden otherwise, before any instance is looked up (so the answer says
    nothing about a study outside the room). Returns the study's clinic."""
    room_present(principal, kind)
    for clinic, uid in sorted(room_studies):
        if uid == study_uid and (sees_all_mdt_cases(principal) or (
                principal.role is Role.DOCTOR and principal.clinic == clinic)):
            return clinic
    raise Forbidden("this study is not one of the room's studies")


def ecg_instance(*, found: bool, is_ecg: bool) -> None:
    """An ECG named into a room (shared in a call, shown in an MDT): 404 for an instance that
    is not there (nor of the study and series named), 400 for one that is not an ECG."""
    if not found:
        raise NotFound("no such instance")
    if not is_ecg:
        raise InvalidParameter("the instance is not an ECG waveform")


def require_key_image_marker(principal: Principal, *, kind: str, presenter: str | None,
                             coordinator: bool) -> None:
    """Key images of an MDT room go into its minutes: the presenter marks them (or the
    coordinator); in a consult room any participant may."""
    if kind == "mdt" and not coordinator and presenter != principal.username:
        raise Forbidden("only the presenter (or the coordinator) marks key images here")
# -- the audit trail ----------------------------------------------------------------------------


def require_auditor(principal: Principal) -> None:
    """The audit trail (audit page, /api/audit) is for auditor accounts: they read who did what
    to which patient's data; they edit nothing clinical and open no images (not a reader)."""
    require_role(principal, Role.AUDITOR)


# -- referrals (双向转诊) -------------------------------------------------------------------------
#
# A referral has two sides: the township clinic (its doctors) and the county department (its
# experts). Up-referrals are sent by the clinic and received by the department, down-referrals
# the other way round. Nobody else sees a referral: not another clinic, not another department,
# not coordinators, admins or auditors (the audit shows auditors what happened, by id).

SENDER = "sender"
RECEIVER = "receiver"

#: Which side may take each step (the state machine itself is in server/clinical/referrals.py).
REFERRAL_ACTIONS: dict[str, str] = {
    "accept": RECEIVER, "decline": RECEIVER, "arrive": RECEIVER, "complete": RECEIVER,
    "cancel": SENDER,
}


def referral_side(principal: Principal, referral: Referral) -> str | None:
    """`sender`, `receiver`, or None: not a party to this referral."""
    clinic_side = (principal.role is Role.DOCTOR and principal.clinic == referral.clinic)
    department_side = (principal.role is Role.EXPERT
                       and principal.department == referral.department)
    if clinic_side:
        return SENDER if referral.direction is Direction.UP else RECEIVER
    if department_side:
        return RECEIVER if referral.direction is Direction.UP else SENDER
    return None


def check_referral(principal: Principal, referral: Referral | None) -> str:
    """The caller's side of a referral they may see; 404 otherwise (its existence names a
    patient)."""
    side = referral_side(principal, referral) if referral is not None else None
    if side is None:
        raise NotFound("no such referral")
    return side


def check_referral_action(principal: Principal, referral: Referral | None, action: str) -> str:
    side = check_referral(principal, referral)
    needed = REFERRAL_ACTIONS.get(action)
    if needed is None:
        raise InvalidParameter(f"unknown referral action {action!r}")
    if side != needed:
        who = "the receiving side" if needed == RECEIVER else "the referring side"
        raise Forbidden(f"only {who} may {action} a referral")
    return side


def referral_scope(principal: Principal) -> tuple[str, str]:
    """Whose referrals a principal lists: a doctor their clinic's, an expert their
    department's."""
    if principal.role is Role.DOCTOR and principal.clinic:
        return "clinic", principal.clinic
    if principal.role is Role.EXPERT and principal.department:
        return "department", principal.department
    raise Forbidden(f"a {principal.role.value} account has no referrals")


def referral_origin(principal: Principal, direction: Direction) -> str:
    """Who may start a referral: up from a clinic doctor (their clinic), down from an expert
    (their department). Whether that clinic may refer to that department is the configured
    routes' say (checked by the referral service against the directory)."""
    if direction is Direction.UP:
        require_role(principal, Role.DOCTOR)
        assert principal.clinic is not None
        return principal.clinic
    require_role(principal, Role.EXPERT)
    assert principal.department is not None
    return principal.department

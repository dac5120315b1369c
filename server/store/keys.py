"""Every Redis key Huizhen writes, in one place.

Keys of one study share a hash tag, `{study:CLINIC:UID}` (a study is a clinic's: the same UID
from two clinics is two studies), and keys of one room `{room:ID}`, so they stay in one slot
when the deployment moves to Redis Cluster.
"""

from __future__ import annotations

PREFIX = "hz"


def clinic(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}"


CLINICS = f"{PREFIX}:clinics"


def department(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}"


DEPARTMENTS = f"{PREFIX}:departments"


def user(username: str) -> str:
    return f"{PREFIX}:user:{username}"


USERS = f"{PREFIX}:users"


def clinic_users(clinic_id: str) -> str:
    """Usernames of a clinic's doctors (who a clinic-wide notification reaches)."""
    return f"{PREFIX}:clinic:{clinic_id}:users"


def department_users(department_id: str) -> str:
    """Usernames of a department's experts."""
    return f"{PREFIX}:department:{department_id}:users"


def role_users(role: str) -> str:
    return f"{PREFIX}:role:{role}:users"


def user_inbox(username: str) -> str:
    """A user's notifications (a capped stream) and how far they have read it."""
    return f"{PREFIX}:{{inbox:{username}}}:stream"


def user_inbox_read(username: str) -> str:
    return f"{PREFIX}:{{inbox:{username}}}:read"


def device(token_digest: str) -> str:
    return f"{PREFIX}:device:{token_digest}"


DEVICES = f"{PREFIX}:devices"

#: ids of revoked kiosk devices: their sessions end, their tokens no longer sign in.
DEVICES_REVOKED = f"{PREFIX}:devices:revoked"


def session_ended(token_id: str) -> str:
    return f"{PREFIX}:session-ended:{token_id}"


def login_attempts_user(username: str, address: str) -> str:
    return f"{PREFIX}:login-attempts:user:{username}:{address}"


def login_attempts_address(address: str) -> str:
    return f"{PREFIX}:login-attempts:addr:{address}"


def _study_tag(clinic_id: str, study_uid: str) -> str:
    # One study is (clinic, StudyInstanceUID): two clinics' studies of one UID never share a key.
    # Clinic ids match [a-z0-9._-] and UIDs [0-9.], so the ':' between them is unambiguous.
    return f"{PREFIX}:{{study:{clinic_id}:{study_uid}}}"


def study(clinic_id: str, study_uid: str) -> str:
    return f"{_study_tag(clinic_id, study_uid)}:study"


def study_series(clinic_id: str, study_uid: str) -> str:
    return f"{_study_tag(clinic_id, study_uid)}:series"


def study_instances(clinic_id: str, study_uid: str) -> str:
    return f"{_study_tag(clinic_id, study_uid)}:instances"


def series_stack(clinic_id: str, study_uid: str, series_uid: str) -> str:
    return f"{_study_tag(clinic_id, study_uid)}:stack:{series_uid}"


def clinic_studies(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:studies"


def study_clinics(study_uid: str) -> str:
    """Which clinics hold a study of this UID: only break-glass reads it (never a listing)."""
    return f"{PREFIX}:study-clinics:{study_uid}"


def user_grants(username: str) -> str:
    return f"{PREFIX}:user:{username}:grants"


AUDIT = f"{PREFIX}:audit"


def consult(consult_id: str) -> str:
    return f"{PREFIX}:consult:{consult_id}"


def department_ringing(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}:ringing"


def clinic_consults(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:consults"


def department_experts_online(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}:experts-online"


# Ringing consults by deadline (unix time): the sweeper of any node ends the overdue ones.
CONSULTS_RING_DEADLINES = f"{PREFIX}:consults:ring-deadlines"


def doctor_waiting(username: str) -> str:
    return f"{PREFIX}:doctor:{username}:waiting"


def doctor_starts(username: str) -> str:
    return f"{PREFIX}:doctor:{username}:starts"


def user_consults(username: str) -> str:
    return f"{PREFIX}:user-consults:{username}"


def room(room_id: str) -> str:
    return f"{PREFIX}:{{room:{room_id}}}:room"


def room_members(room_id: str) -> str:
    return f"{PREFIX}:{{room:{room_id}}}:members"


def room_presence(room_id: str, participant: str) -> str:
    return f"{PREFIX}:{{room:{room_id}}}:presence:{participant}"


def room_invites(room_id: str) -> str:
    return f"{PREFIX}:{{room:{room_id}}}:invites"


def room_events(room_id: str) -> str:
    return f"{PREFIX}:{{room:{room_id}}}:events"


def room_view(room_id: str) -> str:
    """A live room's shared view: version, presenter, state (JSON), current case."""
    return f"{PREFIX}:{{room:{room_id}}}:view"


OPEN_ROOMS = f"{PREFIX}:rooms:open"


def channel_user(username: str) -> str:
    return f"{PREFIX}:ch:user:{username}"


def channel_department(department_id: str) -> str:
    return f"{PREFIX}:ch:department:{department_id}"


CHANNEL_DOCTORS = f"{PREFIX}:ch:doctors"  # departments' online counts, for every clinic doctor


def channel_room(room_id: str) -> str:
    return f"{PREFIX}:ch:room:{room_id}"


# Reports and consult opinions (server/store/reports.py): an index of the files under the DICOM
# dir, rebuilt by `huizhen reindex`. Keys of one report share the hash tag {report:ID}.
REPORT_KEY_PATTERNS = (f"{PREFIX}:{{report:*", f"{PREFIX}:reports:*")


def report(report_id: str) -> str:
    return f"{PREFIX}:{{report:{report_id}}}:report"


def report_versions(report_id: str) -> str:
    return f"{PREFIX}:{{report:{report_id}}}:versions"


def reports_of_study(clinic_id: str, study_uid: str) -> str:
    return f"{PREFIX}:reports:study:{clinic_id}:{study_uid}"


def reports_of_clinic(clinic_id: str) -> str:
    """Signed reports of a clinic's patients, by time of the newest signature."""
    return f"{PREFIX}:reports:clinic:{clinic_id}"


def reports_of_author(username: str) -> str:
    return f"{PREFIX}:reports:author:{username}"


def report_for_request(request_id: str) -> str:
    return f"{PREFIX}:reports:request:{request_id}"


def report_for_consult(consult_id: str) -> str:
    return f"{PREFIX}:reports:consult:{consult_id}"


def report_code(code: str) -> str:
    """A verification code → "report_id:version"."""
    return f"{PREFIX}:reports:code:{code}"


def verify_attempts(address: str) -> str:
    return f"{PREFIX}:reports:verify-attempts:{address}"


# MDT meetings (server/store/mdt.py) ---------------------------------------------------------


def mdt(mdt_id: str) -> str:
    """One MDT session, as JSON (updated with WATCH/MULTI: a lost race retries)."""
    return f"{PREFIX}:mdt:{mdt_id}"


#: every MDT session id scored by its start (unix s): lists, conflicts and the opening sweeper.
MDTS = f"{PREFIX}:mdts"


def user_mdts(username: str) -> str:
    """MDT sessions a user coordinates or is invited to (expert), scored by start."""
    return f"{PREFIX}:user:{username}:mdts"


def clinic_mdts(clinic_id: str) -> str:
    """MDT sessions a clinic is invited to, scored by start."""
    return f"{PREFIX}:clinic:{clinic_id}:mdts"


def mdt_proposal(proposal_id: str) -> str:
    return f"{PREFIX}:mdt-proposal:{proposal_id}"


#: proposal ids scored by when they were made (the coordinator's search walks the newest).
MDT_PROPOSALS = f"{PREFIX}:mdt-proposals"


def clinic_mdt_proposals(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:mdt-proposals"


def user_mdt_proposals(username: str) -> str:
    return f"{PREFIX}:user:{username}:mdt-proposals"


def calendar_token(token_digest: str) -> str:
    """sha256 of a calendar feed token -> the username whose feed it is."""
    return f"{PREFIX}:calendar-token:{token_digest}"


def user_calendar(username: str) -> str:
    """The user's current calendar feed token (shown to them; rotating replaces it)."""
    return f"{PREFIX}:user:{username}:calendar"


def channel_clinic(clinic_id: str) -> str:
    """Every page of a clinic's doctors (kiosks included): critical alerts, its worklist items."""
    return f"{PREFIX}:ch:clinic:{clinic_id}"


# Reading requests (work items, DICOM UPS-like): server/store/worklist.py.
def work_item(item_id: str) -> str:
    return f"{PREFIX}:work:{item_id}"


def department_worklist(department_id: str) -> str:
    """Open items (scheduled, in progress) of a department, scored priority first, then age."""
    return f"{PREFIX}:department:{department_id}:worklist"


def department_worklist_done(department_id: str) -> str:
    """Completed and cancelled items of a department, by when they ended."""
    return f"{PREFIX}:department:{department_id}:worklist:done"


def clinic_worklist(clinic_id: str) -> str:
    """Every reading request a clinic sent, by when it was sent."""
    return f"{PREFIX}:clinic:{clinic_id}:worklist"


# Claims by lease expiry: the sweeper of any node returns unattended ones to the list.
WORKLIST_LEASES = f"{PREFIX}:worklist:leases"


# Critical-value alerts: server/store/alerts.py.
def alert(alert_id: str) -> str:
    return f"{PREFIX}:alert:{alert_id}"


def alert_timeline(alert_id: str) -> str:
    return f"{PREFIX}:alert:{alert_id}:timeline"


ALERTS = f"{PREFIX}:alerts"  # every alert by when it was raised (the register)


def clinic_alerts(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:alerts"


def department_alerts(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}:alerts"


def clinic_alerts_open(clinic_id: str) -> str:
    """A clinic's alerts not yet acknowledged (the banner of every page)."""
    return f"{PREFIX}:clinic:{clinic_id}:alerts:open"


def report_alerts(report_id: str) -> str:
    return f"{PREFIX}:report:{report_id}:alerts"


# Escalation: the next step of each unacknowledged alert by its due time, and of each ringing
# consult; one node at a time sweeps (sweep_lock("escalation")).
ALERTS_DUE = f"{PREFIX}:alerts:due"
# Steps committed but whose delivery a node may not have finished (member alert:level).
ESCALATION_OUTBOX = f"{PREFIX}:escalation:outbox"



def sweep_lock(name: str) -> str:
    """Held by the one node running a periodic sweep (server/sweeper.py, server/store/locks.py)."""
    return f"{PREFIX}:sweep:{name}:lock"


ON_DUTY_COORDINATORS = f"{PREFIX}:coordinators:on-duty"
# Annotations and key images [marks]: under the study's hash tag (a study is a clinic's, so a
# clinic's marks never share a key with another clinic's study of the same UID).
def study_annotations(clinic_id: str, study_uid: str) -> str:
    """hash: annotation id -> JSON annotation."""
    return f"{_study_tag(clinic_id, study_uid)}:annotations"


def study_annotation_counts(clinic_id: str, study_uid: str) -> str:
    """hash: SOPInstanceUID -> how many annotations it has (the per-image cap)."""
    return f"{_study_tag(clinic_id, study_uid)}:annotation-counts"


def study_key_images(clinic_id: str, study_uid: str) -> str:
    """hash: key image id -> JSON key image."""
    return f"{_study_tag(clinic_id, study_uid)}:key-images"


def room_key_images(room_id: str) -> str:
    """hash: key image id -> JSON key image (a copy, for the room's minutes)."""
    return f"{PREFIX}:{{room:{room_id}}}:key-images"
# Referrals (server/store/referrals.py): the document, each side's index, the allowed routes.
def referral(referral_id: str) -> str:
    return f"{PREFIX}:referral:{referral_id}"


def clinic_referrals(clinic_id: str) -> str:
    return f"{PREFIX}:clinic:{clinic_id}:referrals"


def department_referrals(department_id: str) -> str:
    return f"{PREFIX}:department:{department_id}:referrals"


REFERRAL_ROUTES = f"{PREFIX}:referral-routes"

"""The scheduling rules of MDT sessions, as pure functions (no Redis, no HTTP).

States: scheduled -> open (15 minutes before the start, or opened early by a coordinator; the
room exists from then on) -> live (someone is in the room) -> concluded; scheduled, open or live
-> cancelled. An agenda is edited and a session rescheduled while scheduled or open. Conflicts
are flagged, not refused: the coordinator decides.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from server.errors import Conflict, InvalidParameter
from server.store.mdt import (
    CANCELLED,
    CONCLUDED,
    LIVE,
    OPEN,
    SCHEDULED,
    MdtCase,
    MdtSession,
)

#: A start may lie at most this far ahead (a typo'd year is refused, not scheduled).
MAX_AHEAD_S = 366 * 24 * 3600
#: A start given "now" from a page is accepted this far in the past (clocks, slow forms).
PAST_SLACK_S = 5 * 60
#: The longest session (for the conflict search window).
MAX_DURATION_S = 8 * 3600

_TRANSITIONS: dict[str, tuple[str, ...]] = {
    OPEN: (SCHEDULED,),
    LIVE: (OPEN,),
    CONCLUDED: (OPEN, LIVE),
    CANCELLED: (SCHEDULED, OPEN, LIVE),
}
EDITABLE = (SCHEDULED, OPEN)
CONCLUDABLE = (OPEN, LIVE)


def check_transition(session: MdtSession, to: str) -> None:
    """409 when `session` cannot go to state `to` from where it is."""
    if session.state not in _TRANSITIONS[to]:
        raise Conflict(f"an MDT session that is {session.state} cannot become {to}",
                       state=session.state)


def check_editable(session: MdtSession) -> None:
    if session.state not in EDITABLE:
        raise Conflict(f"an MDT session that is {session.state} can no longer be changed",
                       state=session.state)


def check_start(starts_at: int, now: float) -> None:
    if starts_at < now - PAST_SLACK_S:
        raise InvalidParameter("an MDT session starts in the future (starts_at is in the past)")
    if starts_at > now + MAX_AHEAD_S:
        raise InvalidParameter("an MDT session is scheduled at most a year ahead")


def check_title(title: str, notes: str, cases: Iterable[MdtCase]) -> str:
    """The title and notes go into every invitee's calendar and notifications: they must not
    name a patient of the agenda (name parts of 2+ characters, or the patient ID)."""
    text = title.strip()
    if not text:
        raise InvalidParameter("an MDT session needs a title")
    haystack = f"{text}\n{notes}".casefold()
    for case in cases:
        for ident in patient_tokens(case):
            if _mentions(haystack, ident):
                raise InvalidParameter(
                    "the title and notes are shown in calendars and notifications: they must "
                    "not name a patient (use the agenda for cases)", field="title")
    return text


def _mentions(haystack: str, token: str) -> bool:
    """Latin tokens as whole words ("Li" is not in "clinic"); CJK ones anywhere (no spaces)."""
    if token.isascii():
        return re.search(rf"(?<![0-9a-z]){re.escape(token)}(?![0-9a-z])", haystack) is not None
    return token in haystack


def patient_tokens(case: MdtCase) -> list[str]:
    """The strings that identify a case's patient: the ID and the name's parts (DICOM PN
    groups and components), casefolded; one-character parts are too common to refuse."""
    tokens = [case.patient_id.strip().casefold()] if case.patient_id.strip() else []
    for group in case.patient_name.split("="):
        for part in group.replace("^", " ").split():
            if len(part) >= 2:
                tokens.append(part.casefold())
        joined = group.replace("^", "").replace(" ", "")
        if len(joined) >= 2:
            tokens.append(joined.casefold())
    return list(dict.fromkeys(tokens))


def check_follow_up(date_text: str, today: dt.date) -> str:
    if not date_text:
        return ""
    try:
        day = dt.date.fromisoformat(date_text)
    except ValueError as exc:
        raise InvalidParameter("follow_up_date is a date YYYY-MM-DD") from exc
    if day < today - dt.timedelta(days=1) or day > today + dt.timedelta(days=5 * 366):
        raise InvalidParameter("follow_up_date lies between today and five years ahead")
    return day.isoformat()


def due_to_open(session: MdtSession, now: float, early_s: int) -> bool:
    return session.state == SCHEDULED and now >= session.starts_at - early_s


def overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    return a_start < b_end and b_start < a_end


@dataclass(frozen=True)
class TimeConflict:
    """`who` (a username, or a clinic id when kind is "clinic") is also in `mdt_id` then."""

    who: str
    kind: str  # coordinator | expert | clinic
    mdt_id: str
    title: str
    starts_at: int
    ends_at: int

    def public(self) -> dict[str, object]:
        return {"who": self.who, "kind": self.kind, "mdt_id": self.mdt_id, "title": self.title,
                "starts_at": self.starts_at, "ends_at": self.ends_at}


def conflicts(
    *, starts_at: int, ends_at: int, coordinator: str, experts: Iterable[str],
    clinics: Iterable[str], others: Iterable[MdtSession], exclude: str = "",
) -> list[TimeConflict]:
    """Every invitee of a planned time who is already in another active session overlapping it."""
    experts, clinics = set(experts), set(clinics)
    found: list[TimeConflict] = []
    for other in others:
        if other.id == exclude or not other.active:
            continue
        if not overlaps(starts_at, ends_at, other.starts_at, other.ends_at):
            continue

        def add(who: str, kind: str, other: MdtSession = other) -> None:
            found.append(TimeConflict(who, kind, other.id, other.title, other.starts_at,
                                      other.ends_at))

        busy = {other.coordinator, *other.experts}
        if coordinator and coordinator in busy:
            add(coordinator, "coordinator")
        for e in sorted(experts & busy):
            add(e, "expert")
        for c in sorted(clinics & set(other.clinics)):
            add(c, "clinic")
    return sorted(found, key=lambda c: (c.starts_at, c.who, c.mdt_id))

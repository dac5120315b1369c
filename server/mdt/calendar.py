"""iCalendar (RFC 5545) for MDT sessions, written with the `icalendar` package.

One VEVENT per session: UID `mdt-ID@huizhen` never changes, SEQUENCE is the session's `sequence`
(bumped by every change an invitee's calendar shows), a cancelled session stays in the feed as
STATUS:CANCELLED (so calendar apps remove it instead of keeping a stale entry). SUMMARY and
DESCRIPTION carry the title, departments, the number of cases and the link — never a patient:
the scheduling rules refuse a title or notes that name one of the agenda's patients, and the
agenda itself is not written here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import icalendar

from server.store.mdt import CANCELLED, CONCLUDED, MdtSession

PRODID = "-//Huizhen//MDT//EN"
UID_DOMAIN = "huizhen"


def uid(session: MdtSession) -> str:
    return f"mdt-{session.id}@{UID_DOMAIN}"


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def event(session: MdtSession, *, link: str, department_names: dict[str, str]) -> icalendar.Event:
    ev = icalendar.Event()
    ev.add("uid", uid(session))
    ev.add("dtstamp", _utc(session.updated_at or session.created_at))
    ev.add("created", _utc(session.created_at))
    ev.add("last-modified", _utc(session.updated_at or session.created_at))
    ev.add("dtstart", _utc(session.starts_at))
    ev.add("dtend", _utc(session.ends_at))
    ev.add("sequence", session.sequence)
    ev.add("summary", f"MDT: {session.title}")
    departments = ", ".join(department_names.get(d, d) for d in session.departments)
    lines = [f"Huizhen MDT — {session.title}"]
    if departments:
        lines.append(f"Departments: {departments}")
    lines.append(f"Cases on the agenda: {len(session.cases)}")
    if session.notes:
        lines.append(session.notes)
    if session.state == CANCELLED and session.cancel_reason:
        lines.append(f"Cancelled: {session.cancel_reason}")
    lines.append(f"Join: {link}")
    ev.add("description", "\n".join(lines))
    ev.add("url", link)
    ev.add("location", "Huizhen MDT room")
    ev.add("status", "CANCELLED" if session.state == CANCELLED else "CONFIRMED")
    ev.add("transp", "TRANSPARENT" if session.state in (CANCELLED, CONCLUDED) else "OPAQUE")
    ev.add("categories", ["MDT"])
    return ev


def calendar(sessions: Iterable[MdtSession], *, base_url: str,
             department_names: dict[str, str], name: str = "Huizhen MDT") -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for s in sessions:
        cal.add_component(event(s, link=join_link(base_url, s), department_names=department_names))
    return cal.to_ical()


def join_link(base_url: str, session: MdtSession) -> str:
    return f"{base_url.rstrip('/')}{join_path(session.id)}"


def join_path(mdt_id: str) -> str:
    """The MDT room page of a session (the invitee's join button goes there)."""
    return f"/ui/mdt.html?id={mdt_id}"

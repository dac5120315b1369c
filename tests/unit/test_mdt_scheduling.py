"""MDT scheduling rules and the iCalendar writer, as pure functions (server/mdt/)."""

from __future__ import annotations

import datetime as dt
import string

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.auth import access
from server.auth.principal import Principal
from server.errors import Conflict, InvalidParameter
from server.mdt import calendar, scheduling
from server.store.directory import Role
from server.store.mdt import Conclusion, MdtCase, MdtSession

NOW = 1_800_000_000


def _case(clinic: str = "qingshui", name: str = "Wang^Xiaoming=王^小明", pid: str = "QS-1"
          ) -> MdtCase:
    return MdtCase(case_id="a" * 16, clinic=clinic, patient_name=name, patient_id=pid,
                   study_uids=["1.2.3"])


def _session(**over) -> MdtSession:
    base = dict(id="0123456789abcdef", title="Thoracic MDT", coordinator="coord.liu",
                state="scheduled", starts_at=NOW + 7200, duration_min=60,
                departments=["radiology"], experts=["exp.zhang"], clinics=["qingshui"],
                cases=[_case()], lead_expert="exp.zhang", created_at=NOW, updated_at=NOW)
    base.update(over)
    return MdtSession(**base)


def test_states_move_forward_only() -> None:
    s = _session()
    scheduling.check_transition(s, "open")
    scheduling.check_transition(s, "cancelled")
    with pytest.raises(Conflict):
        scheduling.check_transition(s, "concluded")
    with pytest.raises(Conflict):
        scheduling.check_transition(s, "live")
    for state in ("concluded", "cancelled"):
        done = _session(state=state)
        for to in ("open", "live", "concluded", "cancelled"):
            with pytest.raises(Conflict):
                scheduling.check_transition(done, to)
        with pytest.raises(Conflict):
            scheduling.check_editable(done)
    scheduling.check_transition(_session(state="live"), "concluded")
    scheduling.check_transition(_session(state="open"), "concluded")


def test_start_in_the_future_and_within_a_year() -> None:
    scheduling.check_start(NOW + 60, NOW)
    scheduling.check_start(NOW - 60, NOW)  # a form's "now"
    with pytest.raises(InvalidParameter):
        scheduling.check_start(NOW - 3600, NOW)
    with pytest.raises(InvalidParameter):
        scheduling.check_start(NOW + 400 * 86400, NOW)


def test_opens_fifteen_minutes_before() -> None:
    s = _session()
    assert not scheduling.due_to_open(s, s.starts_at - 901, 900)
    assert scheduling.due_to_open(s, s.starts_at - 900, 900)
    assert not scheduling.due_to_open(_session(state="cancelled"), s.starts_at, 900)


@pytest.mark.parametrize("title", ["Wang Xiaoming", "case 王小明", "小明 follow-up",
                                   "qs-1 review", "MDT for WANG"])
def test_title_naming_a_patient_is_refused(title) -> None:
    with pytest.raises(InvalidParameter):
        scheduling.check_title(title, "", [_case()])


@pytest.mark.parametrize("title", ["Thoracic MDT", "Lung clinic board", "Wangjiang county"])
def test_title_without_a_patient_is_fine(title) -> None:
    assert scheduling.check_title(title, "", [_case(name="Li^Na", pid="QS-9")]) == title


def test_conflicts_flag_shared_invitees_of_overlapping_active_sessions() -> None:
    a = _session(id="a" * 16, experts=["exp.zhang", "exp.chen"], clinics=["qingshui"])
    b = _session(id="b" * 16, starts_at=a.starts_at + 3600)  # back to back: no overlap
    c = _session(id="c" * 16, starts_at=a.starts_at + 1800, state="cancelled")
    found = scheduling.conflicts(starts_at=a.starts_at + 1800, ends_at=a.starts_at + 3600,
                                 coordinator="coord.wu", experts=["exp.chen", "exp.li"],
                                 clinics=["qingshui", "hetang"], others=[a, b, c])
    got = {(f.who, f.kind, f.mdt_id) for f in found}
    assert got == {("exp.chen", "expert", a.id), ("qingshui", "clinic", a.id)}
    # exclude: a session never conflicts with itself
    assert scheduling.conflicts(starts_at=a.starts_at, ends_at=a.ends_at, coordinator="x",
                                experts=a.experts, clinics=[], others=[a], exclude=a.id) == []


def test_follow_up_date() -> None:
    today = dt.date(2026, 12, 2)
    assert scheduling.check_follow_up("", today) == ""
    assert scheduling.check_follow_up("2027-01-15", today) == "2027-01-15"
    for bad in ("2027-02-30", "2020-01-01", "2040-01-01", "tomorrow"):
        with pytest.raises(InvalidParameter):
            scheduling.check_follow_up(bad, today)


def _p(role: Role, username: str = "u", clinic: str | None = None) -> Principal:
    return Principal(username=username, role=role, clinic=clinic)


def test_who_joins_and_who_sees_which_case() -> None:
    other = _case(clinic="hetang", name="Zhao^Guilan", pid="HT-1")
    s = _session(state="open", clinics=["qingshui", "hetang"], cases=[_case(), other])
    assert access.may_join_mdt(_p(Role.COORDINATOR, "coord.liu"), s)
    assert access.may_join_mdt(_p(Role.COORDINATOR, "coord.wu"), s)  # any coordinator
    assert access.may_join_mdt(_p(Role.EXPERT, "exp.zhang"), s)
    assert not access.may_join_mdt(_p(Role.EXPERT, "exp.li"), s)
    assert access.may_join_mdt(_p(Role.DOCTOR, "dr.li", "qingshui"), s)
    assert not access.may_join_mdt(_p(Role.DOCTOR, "dr.x", "shanxi"), s)
    assert not access.may_join_mdt(_p(Role.ADMIN, "admin"), s)
    assert not _session(state="scheduled").may_join(_p(Role.EXPERT, "exp.zhang"))
    assert not _session(state="concluded").may_join(_p(Role.EXPERT, "exp.zhang"))
    assert s.may_join(_p(Role.EXPERT, "exp.zhang"))
    seen = s.public(_p(Role.DOCTOR, "dr.li", "qingshui"))
    assert seen["cases"][0]["patient_id"] == "QS-1"
    assert seen["cases"][1]["hidden"] and "HT-1" not in str(seen) and "Zhao" not in str(seen)
    assert "HT-1" in str(s.public(_p(Role.EXPERT, "exp.zhang")))


def test_concluder_is_the_coordinator_or_the_lead_expert() -> None:
    s = _session(state="live", experts=["exp.zhang", "exp.chen"])
    access.require_mdt_concluder(_p(Role.COORDINATOR, "coord.liu"), s)
    access.require_mdt_concluder(_p(Role.EXPERT, "exp.zhang"), s)
    with pytest.raises(Exception) as err:
        access.require_mdt_concluder(_p(Role.EXPERT, "exp.chen"), s)
    assert getattr(err.value, "status", 0) == 403
    with pytest.raises(Exception) as err:
        access.require_mdt_concluder(_p(Role.DOCTOR, "dr.li", "qingshui"), s)
    assert getattr(err.value, "status", 0) == 403


def test_session_round_trips_through_json() -> None:
    s = _session(cases=[MdtCase("b" * 16, "qingshui", "A^B", "X", ["1.2"], "c" * 16, "why",
                                Conclusion("dx", "plan", "radiology", "2027-01-01", "u", 1.0))])
    assert MdtSession.from_json(s.to_json()) == s


def _parse(data: bytes) -> list:
    return list(icalendar.Calendar.from_ical(data).walk("VEVENT"))


def test_ics_carries_uid_sequence_status_times() -> None:
    s = _session(sequence=3)
    ev = _parse(calendar.calendar([s], base_url="https://hz.example", department_names={}))[0]
    assert str(ev["UID"]) == "mdt-0123456789abcdef@huizhen"
    assert int(ev["SEQUENCE"]) == 3 and str(ev["STATUS"]) == "CONFIRMED"
    assert ev.decoded("DTSTART").timestamp() == s.starts_at
    assert ev.decoded("DTEND").timestamp() == s.ends_at
    assert str(ev["URL"]) == "https://hz.example/ui/mdt.html?id=0123456789abcdef"
    cancelled = _session(state="cancelled", sequence=4)
    ev = _parse(calendar.calendar([cancelled], base_url="", department_names={}))[0]
    assert str(ev["STATUS"]) == "CANCELLED" and int(ev["SEQUENCE"]) == 4
    assert "Wang" not in str(ev["DESCRIPTION"]) and "QS-1" not in str(ev["DESCRIPTION"])


_TITLE = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                 min_size=1, max_size=200).filter(lambda t: t.strip())


@settings(deadline=None)  # a loaded 2-core CI box: correctness, not speed, is the property
@given(title=_TITLE, notes=st.text(max_size=300), sequence=st.integers(0, 10_000),
       start=st.integers(0, 2**33), duration=st.integers(15, 480))
def test_ics_round_trip_any_title(title, notes, sequence, start, duration) -> None:
    """Whatever the coordinator types (CJK, commas, semicolons, backslashes, long lines that
    iCalendar folds), the calendar parses back to the same text, UID and SEQUENCE."""
    s = _session(title=title, notes=notes, sequence=sequence, starts_at=start,
                 duration_min=duration, cases=[])
    ev = _parse(calendar.calendar([s], base_url="", department_names={}))[0]
    assert str(ev["SUMMARY"]) == f"MDT: {title}"
    assert int(ev["SEQUENCE"]) == sequence
    assert str(ev["UID"]) == "mdt-0123456789abcdef@huizhen"
    assert ev.decoded("DTSTART").timestamp() == start


_NAME_PART = st.text(alphabet=string.ascii_letters, min_size=2, max_size=12)


@settings(deadline=None)
@given(family=_NAME_PART, given_name=_NAME_PART, filler=st.sampled_from(["MDT ", "review: ", ""]))
def test_a_title_with_the_patients_name_is_always_refused(family, given_name, filler) -> None:
    case = _case(name=f"{family}^{given_name}", pid="ID-1")
    with pytest.raises(InvalidParameter):
        scheduling.check_title(f"{filler}{given_name} {family}", "", [case])

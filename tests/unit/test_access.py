"""The access policy's pure decisions (server/auth/access.py), without Redis."""

from __future__ import annotations

import pytest

from server.auth import access
from server.auth.principal import Principal
from server.errors import Forbidden, InvalidParameter, NotFound
from server.store.directory import Role
from server.store.grants import BREAK_GLASS, CONSULT, Grant

LI = Principal("dr.li", Role.DOCTOR, clinic="qingshui")
ZHANG = Principal("exp.zhang", Role.EXPERT, department="radiology")
LIU = Principal("coord.liu", Role.COORDINATOR)
ADMIN = Principal("admin", Role.ADMIN)


def grant(user: str, clinic: str, uid: str, kind: str = CONSULT, at: float = 1.0,
          reason: str = "") -> Grant:
    return Grant(user, clinic, uid, kind, f"ref-{clinic}-{at}", at, at + 100, "", reason)


def test_only_doctors_have_a_clinic_of_their_own():
    assert access.own_clinic(LI) == "qingshui"
    assert access.own_clinic(ZHANG) is None and access.own_clinic(LIU) is None
    with pytest.raises(Forbidden):
        access.own_clinic(ADMIN)


def test_a_grant_of_any_kind_names_the_study_and_why():
    g = grant("exp.zhang", "hetang", "1.2.3", kind="mdt")
    found = access.by_grant(ZHANG, "1.2.3", [g])
    assert found == access.StudyAccess("hetang", "1.2.3", "mdt", g.ref)
    assert access.by_grant(ZHANG, "1.2.4", [g]) is None  # another UID
    assert access.by_grant(LIU, "1.2.3", [g]) is None  # someone else's grant
    with pytest.raises(Forbidden):
        access.by_grant(ADMIN, "1.2.3", [grant("admin", "hetang", "1.2.3")])


def test_the_newest_grant_decides_between_two_clinics_of_one_uid():
    newest_first = [grant("exp.zhang", "hetang", "9.9", at=5.0),
                    grant("exp.zhang", "qingshui", "9.9", at=1.0)]
    assert access.by_grant(ZHANG, "9.9", newest_first).clinic == "hetang"


def test_break_glass_access_is_marked_for_the_audit():
    g = grant("exp.zhang", "qingshui", "1.2.3", kind=BREAK_GLASS, reason="stroke")
    found = access.by_grant(ZHANG, "1.2.3", [g])
    assert found is not None and found.break_glass
    assert found.audit_fields() == {"study_clinic": "qingshui", "via": BREAK_GLASS,
                                    "grant": g.ref, "break_glass": "1", "reason": "stroke"}
    plain = access.by_clinic(LI, "1.2.3").audit_fields()
    assert plain == {"study_clinic": "qingshui", "via": "clinic"}


def test_visible_lists_the_clinic_and_the_grants_once_each():
    own = ["1.1", "1.2"]
    grants = [grant("dr.li", "qingshui", "1.2"), grant("dr.li", "hetang", "1.2"),
              grant("exp.zhang", "hetang", "7.7")]
    shown = [(a.clinic, a.study_uid, a.via) for a in access.visible(LI, own, grants)]
    assert shown == [("qingshui", "1.1", "clinic"), ("qingshui", "1.2", "clinic"),
                     ("hetang", "1.2", CONSULT)]
    assert [(a.clinic, a.study_uid) for a in access.visible(ZHANG, own, grants)] == [
        ("hetang", "7.7")]


def test_a_doctor_names_only_their_clinics_study():
    access.check_study(LI, "qingshui")
    for owner in ("hetang", None):
        with pytest.raises(NotFound):
            access.check_study(LI, owner)
    with pytest.raises(NotFound):
        access.check_study(ZHANG, "qingshui")


@pytest.mark.parametrize("reason", [None, "", "   ", "abc", 12, "x" * 501])
def test_break_glass_needs_a_reason(reason):
    with pytest.raises(InvalidParameter):
        access.break_glass_reason(ZHANG, reason)


def test_break_glass_is_for_experts_only():
    assert access.break_glass_reason(ZHANG, "  suspected stroke  ") == "suspected stroke"
    for who in (LI, LIU, ADMIN):
        with pytest.raises(Forbidden):
            access.break_glass_reason(who, "suspected stroke")


def test_an_mdt_presenter_shows_only_an_ecg_of_the_agenda():
    """access.room_ecg_study: a study of the room's (the agenda's) studies; a doctor presenting
    names only their own clinic's; a consult room has no shared view; admins present nothing."""
    agenda = {("qingshui", "1.2.3"), ("hetang", "1.2.4")}
    for who in (ZHANG, LIU):
        assert access.room_ecg_study(who, "mdt", room_studies=agenda, study_uid="1.2.4") \
            == "hetang"
    assert access.room_ecg_study(LI, "mdt", room_studies=agenda, study_uid="1.2.3") == "qingshui"
    refused = [(LI, "mdt", "1.2.4"),  # another clinic's case: a placeholder to the doctor
               (ZHANG, "mdt", "1.2.5"),  # not on the agenda
               (ZHANG, "consult", "1.2.3"),  # no shared view in a consult call
               (ADMIN, "mdt", "1.2.3")]
    for who, kind, uid in refused:
        with pytest.raises(Forbidden):
            access.room_ecg_study(who, kind, room_studies=agenda, study_uid=uid)
    # the same UID in two clinics' cases: the presenter's own clinic's for a doctor
    twice = {("qingshui", "1.2.3"), ("hetang", "1.2.3")}
    assert access.room_ecg_study(LI, "mdt", room_studies=twice, study_uid="1.2.3") == "qingshui"


def test_an_ecg_named_into_a_room_is_there_and_is_an_ecg():
    access.ecg_instance(found=True, is_ecg=True)
    with pytest.raises(NotFound):
        access.ecg_instance(found=False, is_ecg=False)
    with pytest.raises(InvalidParameter):
        access.ecg_instance(found=True, is_ecg=False)

"""Patient matching between what a doctor typed and a study's PatientName/PatientID."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from server.patient_match import (
    PatientCheck,
    StudyPatient,
    compare,
    ids_match,
    names_match,
    parse_pn,
    study_patient,
)

WANG = parse_pn("Wang^Xiaoming=王^小明")


@pytest.mark.parametrize("typed", ["王小明", "王 小明", "王^小明", "Wang Xiaoming", "wang xiaoming",
                                   "WANG^XIAOMING", "Xiaoming Wang", "Ｗａｎｇ　Ｘｉａｏｍｉｎｇ",
                                   "Wang^Xiaoming=王^小明", " 王小明 "])
def test_the_same_patient_in_every_spelling(typed):
    assert names_match(typed, WANG)


@pytest.mark.parametrize("typed", ["王小红", "李小明", "Wang Xiaohong", "Wang", "小明", "王", ""])
def test_another_patient_or_a_part_is_not_a_match(typed):
    assert not names_match(typed, WANG)


def test_dicom_json_pn_and_ids():
    attrs = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Wang^Xiaoming",
                                                   "Ideographic": "王^小明"}]},
             "00100020": {"vr": "LO", "Value": ["QS-2024-0815"]}}
    patient = study_patient(attrs)
    assert patient.patient_id == "QS-2024-0815"
    assert patient.display_name == "Wang Xiaoming = 王小明"
    assert ids_match(" qs-2024-0815", patient.patient_id)
    assert ids_match("ＱＳ-２０２４-０８１５", patient.patient_id)  # full-width input
    assert not ids_match("QS-2024-0816", patient.patient_id)
    assert study_patient({}).has_name is False


def test_compare_fills_and_flags():
    study = StudyPatient(WANG, "QS-2024-0815")
    filled = compare("", "", study)
    assert filled.check is PatientCheck.MATCH
    assert (filled.patient_name, filled.patient_id) == ("Wang Xiaoming = 王小明", "QS-2024-0815")
    assert compare("王小明", "QS-2024-0815", study).check is PatientCheck.MATCH
    assert compare("王小明", "", study).patient_id == "QS-2024-0815"
    assert compare("李四", "QS-2024-0815", study).check is PatientCheck.MISMATCH
    assert compare("王小明", "QS-2024-0001", study).check is PatientCheck.MISMATCH
    # A study without patient fields contradicts nothing.
    assert compare("王小明", "X", StudyPatient((), "")).check is PatientCheck.MATCH


_HAN = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
               min_size=1, max_size=3)
_LATIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10)


@given(family=_LATIN, given_name=_LATIN, han_family=_HAN, han_given=_HAN,
       upper=st.booleans(), western=st.booleans(), sep=st.sampled_from([" ", "^", "  ", "", "·"]))
def test_any_spelling_of_a_stored_name_matches(family, given_name, han_family, han_given, upper,
                                               western, sep):
    groups = parse_pn(f"{family.capitalize()}^{given_name.capitalize()}={han_family}^{han_given}")
    latin = f"{given_name}{sep}{family}" if western else f"{family}{sep}{given_name}"
    latin = latin.upper() if upper else latin
    assert names_match(latin, groups)
    assert names_match(f"{han_family}{sep}{han_given}", groups)
    # Full-width forms (an IME's default on some kiosks) are the same letters.
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in latin)
    assert unicodedata.normalize("NFKC", wide) == latin
    assert names_match(wide, groups)


@given(a=_HAN, b=_HAN, c=_HAN, d=_HAN)
def test_a_different_ideographic_name_does_not_match(a, b, c, d):
    assume(a + b != c + d and b + a != c + d)
    assert not names_match(c + d, parse_pn(f"={a}^{b}"))


@given(st.text(max_size=40))
def test_parsing_never_fails_and_ids_match_themselves(text):
    parse_pn(text)
    names_match(text, WANG)
    assert ids_match(text, text)

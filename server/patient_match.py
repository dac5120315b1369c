"""Does a consult's attached study belong to the patient the doctor named?

DICOM stores Patient's Name (PN) as up to three component groups — alphabetic, ideographic and
phonetic, `=`-separated in a file, `Alphabetic`/`Ideographic`/`Phonetic` in DICOM JSON — each of
up to five `^`-separated components (family, given, middle, prefix, suffix). A Chinese patient is
typically `Wang^Xiaoming=王^小明`. A doctor types "王小明", "Wang Xiaoming", "xiaoming wang" or
"WANG^XIAOMING": all of these name that patient. Names are compared after Unicode NFKC (full-
width letters and digits become ASCII), case folding and dropping separators, in family-given
and given-family order, against every group; IDs after NFKC, trimming and case folding.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Separators people type between name parts, plus DICOM's own; all dropped for comparison.
_SEPARATORS = re.compile(r"[\s^=.,·・'’\-_/]+")


class PatientCheck(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"  # only ever stored as mismatch_confirmed
    MISMATCH_CONFIRMED = "mismatch_confirmed"
    NO_STUDY = "no_study"


@dataclass(frozen=True)
class StudyPatient:
    """The patient fields of a study, as the index holds them."""

    groups: tuple[tuple[str, ...], ...]  # per PN group, its components
    patient_id: str

    @property
    def display_name(self) -> str:
        """A readable form: `Wang Xiaoming = 王小明` (components spaced, ideographic joined)."""
        shown = []
        for components in self.groups:
            parts = [c for c in components if c]
            if not parts:
                continue
            joiner = "" if all(_is_ideographic(p) for p in parts) else " "
            shown.append(joiner.join(parts))
        return " = ".join(shown)

    @property
    def has_name(self) -> bool:
        return any(any(c for c in g) for g in self.groups)


def _is_ideographic(text: str) -> bool:
    return all(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text if not ch.isspace())


def parse_pn(value: Any) -> tuple[tuple[str, ...], ...]:
    """PN from DICOM JSON ({"Alphabetic": …}) or from its string form (`A=I=P`)."""
    if isinstance(value, dict):
        raw = [value.get(g) or "" for g in _GROUPS]
    elif isinstance(value, str):
        raw = ([*value.split("="), "", ""])[:3]
    else:
        raw = []
    return tuple(tuple(c.strip() for c in str(group).split("^")) for group in raw if group)


def study_patient(attrs: dict[str, Any]) -> StudyPatient:
    """From a study's DICOM JSON attributes (PatientName 00100010, PatientID 00100020)."""
    name = (attrs.get("00100010") or {}).get("Value") or [None]
    pid = (attrs.get("00100020") or {}).get("Value") or [""]
    return StudyPatient(parse_pn(name[0]), str(pid[0] or "").strip())


def _norm(text: str) -> str:
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())


def name_keys(groups: tuple[tuple[str, ...], ...]) -> set[str]:
    """Every normalised spelling of a stored name: per group, family+given+middle and
    given+middle+family."""
    keys: set[str] = set()
    for components in groups:
        family, given, middle = ([*list(components), "", "", ""])[:3]
        for order in ((family, given, middle), (given, middle, family)):
            key = _norm("".join(order))
            if key:
                keys.add(key)
    return keys


def names_match(typed: str, groups: tuple[tuple[str, ...], ...]) -> bool:
    """Is `typed` (what the doctor entered, possibly PN-formatted itself) one of the spellings
    of the stored name?"""
    typed_groups = parse_pn(typed) if ("^" in typed or "=" in typed) else ((typed,),)
    typed_keys = {_norm("".join(g)) for g in typed_groups} | {_norm(typed)}
    typed_keys.discard("")
    # Words typed in western order ("Xiaoming Wang") are covered by the given-family keys.
    return bool(typed_keys & name_keys(groups))


def ids_match(typed: str, stored: str) -> bool:
    a = unicodedata.normalize("NFKC", typed).strip().casefold()
    b = unicodedata.normalize("NFKC", stored).strip().casefold()
    return a == b


@dataclass(frozen=True)
class Comparison:
    check: PatientCheck  # MATCH or MISMATCH
    patient_name: str  # what the consult records (filled from the study when not given)
    patient_id: str
    study: StudyPatient


def compare(typed_name: str, typed_id: str, study: StudyPatient) -> Comparison:
    """A mismatch when a field the doctor gave contradicts the study; fields not given are
    filled from the study."""
    typed_name, typed_id = typed_name.strip(), typed_id.strip()
    mismatch = (
        (bool(typed_id) and bool(study.patient_id) and not ids_match(typed_id, study.patient_id))
        or (bool(typed_name) and study.has_name and not names_match(typed_name, study.groups))
    )
    return Comparison(
        PatientCheck.MISMATCH if mismatch else PatientCheck.MATCH,
        typed_name or study.display_name,
        typed_id or study.patient_id,
        study,
    )

"""Reports and consult opinions as data: content, versions, statuses, the canonical form that
is signed, and verification codes. Pure (no I/O); server/clinical/reports.py runs the workflow.

One model serves both kinds:
- `reading`: a report on a reading request of the worklist — findings, impression,
  recommendation, critical flag;
- `opinion`: the expert's opinion closing a live consult (会诊意见) — findings, advice, whether
  to refer, follow-up.

A report is a list of versions. The open draft (autosaved, editable only by its author) has the
FHIR DiagnosticReport status `preliminary`; signing makes it `final` (the first) or `amended` /
`corrected` (a later one, which names the version it supersedes and why); a signed report can be
withdrawn by a last signed version `entered-in-error`. A signed version never changes: its file
is written once and made read-only, and every earlier version stays readable.

The signature of a version is SHA-256 over its canonical JSON (docs/api.md "Report
signatures"): the object returned by `signed_payload`, serialised with keys sorted by code point,
no insignificant whitespace, `ensure_ascii=False` UTF-8, strings escaped as JSON requires and
nothing else (the RFC 8785 JCS form for data holding only strings, integers, booleans and null,
which is all a payload holds).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

FORMAT = "huizhen-report/1"
MAX_FIELD_CHARS = 20_000
MAX_REASON_CHARS = 1_000

# Crockford's base32 without the look-alikes (no I, L, O, U): read off paper, typed by hand.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 3
CODE_GROUP_LEN = 4  # 12 symbols = 60 random bits


class Kind(StrEnum):
    READING = "reading"
    OPINION = "opinion"


class Status(StrEnum):
    """FHIR R4 DiagnosticReport.status values used here."""

    PRELIMINARY = "preliminary"  # the open draft, not signed
    FINAL = "final"
    AMENDED = "amended"
    CORRECTED = "corrected"
    ENTERED_IN_ERROR = "entered-in-error"


SIGNED = (Status.FINAL, Status.AMENDED, Status.CORRECTED, Status.ENTERED_IN_ERROR)
#: What a later signed version may be.
REVISIONS = (Status.AMENDED, Status.CORRECTED)

#: The content fields of each kind: text fields, then flags.
TEXT_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.READING: ("findings", "impression", "recommendation"),
    Kind.OPINION: ("findings", "advice", "follow_up"),
}
FLAG_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.READING: ("critical",),
    Kind.OPINION: ("refer",),
}
#: A version cannot be signed with these empty.
REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.READING: ("findings", "impression"),
    Kind.OPINION: ("advice",),
}


#: Key images (both kinds): references into the report's study, rendered into the PDF.
KEY_IMAGES = "key_images"
MAX_KEY_IMAGES = 8
_UID_CHARS = set("0123456789.")


#: The ECG template (reading reports of an ECG study, issue #11 item 4): present in the content
#: only when given, so a report without it is (and hashes) exactly as before. Numbers are whole
#: (canonical JSON holds no floats) or null (not measured).
ECG = "ecg"
#: name -> (low, high) for the numbers: rate /min, intervals ms, axes degrees (`axis` is the QRS
#: axis, named so before the P and T axes joined).
ECG_NUMBERS: dict[str, tuple[int, int]] = {
    "rate": (0, 400), "pr": (0, 1000), "qrs": (0, 400), "qt": (0, 1000), "qtc": (0, 1000),
    "axis": (-180, 360), "p_axis": (-180, 360), "t_axis": (-180, 360),
}
#: name -> max characters for the texts.
ECG_TEXTS: dict[str, int] = {"rhythm": 200, "st_t": 2_000, "conclusion": 4_000}
ECG_FIELDS = ("rhythm", "rate", "pr", "qrs", "qt", "qtc", "axis", "p_axis", "t_axis", "st_t",
              "conclusion")


class ContentError(ValueError):
    """Content that cannot be stored or signed (the service turns it into a 400)."""


def clean_text(value: object, name: str, limit: int = MAX_FIELD_CHARS) -> str:
    if not isinstance(value, str):
        raise ContentError(f"{name} must be a string")
    if len(value) > limit:
        raise ContentError(f"{name} is limited to {limit} characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ContentError(f"{name} holds a lone surrogate (not Unicode text)")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in value):
        raise ContentError(f"{name} holds control characters")
    return value.replace("\r\n", "\n")


def empty_content(kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(TEXT_FIELDS[kind], "")
    out.update(dict.fromkeys(FLAG_FIELDS[kind], False))
    out[KEY_IMAGES] = []
    return out


def _uid(value: object, name: str) -> str:
    if not (isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _UID_CHARS):
        raise ContentError(f"{name} must be a DICOM UID")
    return value


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ContentError(f"{name} must be a whole number from {low} to {high}")
    return value


def clean_key_images(value: object) -> list[dict[str, Any]]:
    """[{series_uid, sop_uid, frame, center, width, caption}] — window center/width whole
    numbers (or null: the image's own window); at most MAX_KEY_IMAGES."""
    if not isinstance(value, list):
        raise ContentError("key_images must be a list")
    if len(value) > MAX_KEY_IMAGES:
        raise ContentError(f"at most {MAX_KEY_IMAGES} key images")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ContentError(f"key_images[{i}] must be an object")
        unknown = set(item) - {"series_uid", "sop_uid", "frame", "center", "width", "caption"}
        if unknown:
            raise ContentError(f"key_images[{i}]: unknown {', '.join(sorted(unknown))}")
        center, width = item.get("center"), item.get("width")
        if (center is None) != (width is None):
            raise ContentError(f"key_images[{i}]: give both center and width, or neither")
        out.append({
            "series_uid": _uid(item.get("series_uid"), f"key_images[{i}].series_uid"),
            "sop_uid": _uid(item.get("sop_uid"), f"key_images[{i}].sop_uid"),
            "frame": _int(item.get("frame", 1), f"key_images[{i}].frame", 1, 100_000),
            "center": None if center is None else _int(center, "center", -100_000, 100_000),
            "width": None if width is None else _int(width, "width", 1, 200_000),
            "caption": clean_text(item.get("caption", ""), "caption", 200),
        })
    return out


def clean_ecg(value: object) -> dict[str, Any]:
    """The ECG template: every field of ECG_FIELDS, numbers whole and bounded or null."""
    if not isinstance(value, dict):
        raise ContentError("ecg must be an object")
    unknown = sorted(set(value) - set(ECG_FIELDS))
    if unknown:
        raise ContentError(f"ecg: unknown {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name in ECG_FIELDS:
        item = value.get(name)
        if name in ECG_NUMBERS:
            low, high = ECG_NUMBERS[name]
            out[name] = None if item is None else _int(item, f"ecg.{name}", low, high)
        else:
            out[name] = clean_text("" if item is None else item, f"ecg.{name}", ECG_TEXTS[name])
    return out


def ecg_prefill(ecg: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ECG template prefilled from what the index holds of an ECG instance (IndexEntry.ecg:
    the device's measurements, its statements, the pre-screening heart rate); None without."""
    if not ecg:
        return None
    m = ecg.get("measurements") or {}
    screening = ecg.get("screening") or {}

    def whole(value: object, name: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        low, high = ECG_NUMBERS[name]
        number = round(value)
        return number if low <= number <= high else None

    rate = m.get("hr")
    if rate is None and m.get("rr_ms"):
        rate = 60_000 / m["rr_ms"]
    if rate is None:
        rate = screening.get("heart_rate")
    statements = [str(x) for x in ecg.get("statements") or []]
    return clean_ecg({
        "rhythm": "", "rate": whole(rate, "rate"), "pr": whole(m.get("pr_ms"), "pr"),
        "qrs": whole(m.get("qrs_ms"), "qrs"), "qt": whole(m.get("qt_ms"), "qt"),
        "qtc": whole(m.get("qtc_ms"), "qtc"), "axis": whole(m.get("qrs_axis"), "axis"),
        "p_axis": whole(m.get("p_axis"), "p_axis"), "t_axis": whole(m.get("t_axis"), "t_axis"),
        "st_t": "", "conclusion": "\n".join(statements)[:ECG_TEXTS["conclusion"]],
    })


def clean_content(kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """The content of `kind` from `data`: every field present, nothing else (ContentError).
    A reading report may carry the ECG template (`ecg`), kept only when given."""
    allowed = set(TEXT_FIELDS[kind]) | set(FLAG_FIELDS[kind]) | {KEY_IMAGES}
    if kind is Kind.READING:
        allowed.add(ECG)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ContentError(f"unknown field(s) for a {kind.value} report: {', '.join(unknown)}")
    out = empty_content(kind)
    for name in TEXT_FIELDS[kind]:
        if name in data:
            out[name] = clean_text(data[name], name)
    for name in FLAG_FIELDS[kind]:
        if name in data:
            if not isinstance(data[name], bool):
                raise ContentError(f"{name} must be true or false")
            out[name] = data[name]
    if KEY_IMAGES in data:
        out[KEY_IMAGES] = clean_key_images(data[KEY_IMAGES])
    if data.get(ECG) is not None:
        out[ECG] = clean_ecg(data[ECG])
    return out


def missing_for_signing(kind: Kind, content: dict[str, Any]) -> list[str]:
    return [f for f in REQUIRED[kind] if not str(content.get(f, "")).strip()]


def new_id() -> str:
    return secrets.token_hex(8)


def new_code() -> str:
    symbols = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LEN))
    return "-".join(symbols[i:i + CODE_GROUP_LEN]
                    for i in range(0, len(symbols), CODE_GROUP_LEN))


def normalize_code(text: str) -> str | None:
    """A code as typed (any case, with or without dashes or spaces, O for 0, I/L for 1) in its
    canonical form, or None when it cannot be one."""
    if len(text) > 40:
        return None
    raw = "".join(c for c in text.upper() if c not in "- ")
    raw = raw.replace("O", "0").replace("I", "1").replace("L", "1")
    if len(raw) != CODE_GROUPS * CODE_GROUP_LEN or any(c not in CODE_ALPHABET for c in raw):
        return None
    return "-".join(raw[i:i + CODE_GROUP_LEN] for i in range(0, len(raw), CODE_GROUP_LEN))


def iso_time(t: float) -> str:
    """UTC with milliseconds, e.g. 2026-12-02T01:23:45.678Z (the signed time's one spelling)."""
    ms = round(t * 1000)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def canonical_json(value: Any) -> bytes:
    """The canonical serialisation (see the module doc); refuses floats, which have none."""
    _check_canonical(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _check_canonical(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise ContentError("canonical JSON keys are strings")
                stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            raise ContentError("canonical JSON holds no floating-point numbers")
        elif not (item is None or isinstance(item, str | bool | int)):
            raise ContentError(f"canonical JSON cannot hold {type(item).__name__}")


@dataclass(frozen=True)
class Subject:
    """What a report is about, copied from the request/consult when the report is created."""

    clinic: str
    clinic_name: str
    study_uid: str  # empty for a consult without a study
    patient_name: str
    patient_id: str
    department: str
    reading_request_id: str = ""
    consult_id: str = ""
    study_description: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "clinic": self.clinic, "clinic_name": self.clinic_name, "study_uid": self.study_uid,
            "patient_name": self.patient_name, "patient_id": self.patient_id,
            "department": self.department, "reading_request_id": self.reading_request_id,
            "consult_id": self.consult_id, "study_description": self.study_description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        return cls(**{k: str(data.get(k, "")) for k in (
            "clinic", "clinic_name", "study_uid", "patient_name", "patient_id", "department",
            "reading_request_id", "consult_id", "study_description")})


@dataclass(frozen=True)
class Version:
    """One version of a report: the draft (status preliminary, `revision` counts its saves) or
    a signed one (immutable)."""

    report_id: str
    kind: Kind
    version: int
    status: Status
    subject: Subject
    author: str
    content: dict[str, Any]
    created_at: float
    supersedes: int | None = None  # the signed version this one replaces
    reason: str = ""  # why (an amendment, correction or withdrawal)
    revision: int = 0  # draft saves
    updated_at: float = 0.0
    # Signed versions only:
    signer: str = ""
    signer_name: str = ""
    signed_at: str = ""  # iso_time
    verification_code: str = ""
    signature: str = ""  # SHA-256 hex of canonical_json(signed_payload())
    #: What the draft will be signed as (final for the first version).
    target: Status = field(default=Status.FINAL)

    @property
    def signed(self) -> bool:
        return self.status in SIGNED

    def signed_payload(self) -> dict[str, Any]:
        """Exactly what the signature covers."""
        return {
            "format": FORMAT,
            "report_id": self.report_id,
            "kind": self.kind.value,
            "version": self.version,
            "status": self.status.value,
            "subject": self.subject.to_json(),
            "content": self.content,
            "supersedes": self.supersedes,
            "reason": self.reason,
            "signer": self.signer,
            "signer_name": self.signer_name,
            "signed_at": self.signed_at,
            "verification_code": self.verification_code,
        }

    def compute_signature(self) -> str:
        return hashlib.sha256(canonical_json(self.signed_payload())).hexdigest()

    def intact(self) -> bool:
        """The stored signature matches the stored content."""
        return self.signed and secrets.compare_digest(self.signature, self.compute_signature())

    def sign(self, signer: str, signer_name: str, at: float | None = None,
             code: str | None = None) -> Version:
        """This draft signed (as its target status) by `signer` now."""
        signed = replace(self, status=self.target, signer=signer, signer_name=signer_name,
                         signed_at=iso_time(time.time() if at is None else at),
                         verification_code=code or new_code(), revision=self.revision)
        return replace(signed, signature=signed.compute_signature())

    def to_json(self) -> dict[str, Any]:
        """The stored form (the file and the index hold exactly this)."""
        return {
            "format": FORMAT,
            "report_id": self.report_id, "kind": self.kind.value, "version": self.version,
            "status": self.status.value, "target": self.target.value,
            "subject": self.subject.to_json(), "author": self.author,
            "content": self.content, "created_at": self.created_at,
            "supersedes": self.supersedes, "reason": self.reason, "revision": self.revision,
            "updated_at": self.updated_at, "signer": self.signer,
            "signer_name": self.signer_name, "signed_at": self.signed_at,
            "verification_code": self.verification_code,
            "signature": {"alg": "SHA-256", "canonicalization": "huizhen-jcs-1",
                          "value": self.signature} if self.signed else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Version:
        if data.get("format") != FORMAT:
            raise ContentError(f"not a {FORMAT} record")
        kind = Kind(data["kind"])
        sig = data.get("signature") or {}
        supersedes = data.get("supersedes")
        return cls(
            report_id=str(data["report_id"]), kind=kind, version=int(data["version"]),
            status=Status(data["status"]), target=Status(data.get("target") or "final"),
            subject=Subject.from_json(data["subject"]), author=str(data["author"]),
            content=dict(data["content"]), created_at=float(data["created_at"]),
            supersedes=int(supersedes) if supersedes is not None else None,
            reason=str(data.get("reason", "")), revision=int(data.get("revision", 0)),
            updated_at=float(data.get("updated_at", 0)), signer=str(data.get("signer", "")),
            signer_name=str(data.get("signer_name", "")),
            signed_at=str(data.get("signed_at", "")),
            verification_code=str(data.get("verification_code", "")),
            signature=str(sig.get("value", "")) if isinstance(sig, dict) else "",
        )

    def public(self, superseded_by: int | None = None) -> dict[str, Any]:
        """What the API shows of a version."""
        out = self.to_json()
        out.pop("format")
        out["signature"] = self.signature or None
        out["superseded_by"] = superseded_by
        return out


@dataclass(frozen=True)
class Report:
    """All of a report: its signed versions (oldest first) and the open draft, if any."""

    versions: tuple[Version, ...]
    draft: Version | None = None

    @property
    def first(self) -> Version:
        return self.versions[0] if self.versions else self._draft()

    def _draft(self) -> Version:
        assert self.draft is not None
        return self.draft

    @property
    def id(self) -> str:
        return self.first.report_id

    @property
    def kind(self) -> Kind:
        return self.first.kind

    @property
    def subject(self) -> Subject:
        return self.first.subject

    @property
    def author(self) -> str:
        return self.first.author

    @property
    def current(self) -> Version | None:
        """The newest signed version (None while only a draft exists)."""
        return self.versions[-1] if self.versions else None

    @property
    def status(self) -> Status:
        return self.current.status if self.current else Status.PRELIMINARY

    def version(self, number: int) -> Version | None:
        for v in self.versions:
            if v.version == number:
                return v
        return None

    def superseded_by(self, number: int) -> int | None:
        later = [v.version for v in self.versions if v.version > number]
        return min(later) if later else None

    def public(self, *, with_draft: bool) -> dict[str, Any]:
        current = self.current
        return {
            "id": self.id, "kind": self.kind.value, "status": self.status.value,
            "subject": self.subject.to_json(), "author": self.author,
            "current_version": current.version if current else None,
            "signed_at": current.signed_at if current else "",
            "signer": current.signer if current else "",
            "signer_name": current.signer_name if current else "",
            "critical": bool(current.content.get("critical")) if current else False,
            "versions": [v.public(self.superseded_by(v.version)) for v in self.versions],
            "draft": self.draft.public() if with_draft and self.draft else None,
            "has_draft": self.draft is not None,
        }

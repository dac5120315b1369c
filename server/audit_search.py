"""Searching the audit trail for people: by user, patient, clinic, action and time, break-glass
views flagged. One query model for the audit page (GET /api/audit), the CSV export and
`huizhen audit search`; the stream itself is read by server/store/audit.py (newest first,
ranges by stream id, bounded pages).

Query fields (all optional, combined with AND):
  user         the acting account, exact (`dr.li`, `cli:root`)
  patient      a PatientID: events naming it, or naming one of that patient's studies
  clinic       the actor's clinic, the study's clinic, a kiosk's or a referral's clinic
  action       exact (`wado.retrieve`) or a prefix ending in `*` (`referral.*`, `auth.*`);
               several separated by commas
  since/until  unix seconds, an ISO 8601 date or date-time (no offset: UTC), or relative to
               now: `-15m`, `-2h`, `-7d` (the `-` may be left out: `2h` is two hours ago)
  break_glass  1/true: only views under emergency access
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from server.errors import InvalidParameter
from server.store import Store
from server.store.audit import AuditEvent, AuditPage, Prefilter

MAX_LIMIT = 500
MAX_VALUE = 200
MAX_ACTIONS = 20
_ACTION_RE = re.compile(r"[a-z0-9_.-]{1,64}\*?|\*", re.ASCII)
_RELATIVE_RE = re.compile(r"-?([0-9]{1,7})([smhd])", re.ASCII)
_UNIX_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?", re.ASCII)
_CURSOR_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Earliest and latest instants a query may name (stream ids are unsigned milliseconds).
_MIN_TS, _MAX_TS = 0.0, 253402300799.0  # 9999-12-31T23:59:59Z
QUERY_FIELDS = ("user", "patient", "clinic", "action", "since", "until", "break_glass")
_CLINIC_FIELDS = ("clinic", "study_clinic", "device_clinic", "referral_clinic")
_STUDY_FIELDS = ("study", "studies", "break_glass_studies")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def parse_time(text: str, name: str, *, now: float | None = None) -> float:
    """A point in time as unix seconds: digits (unix time), ISO 8601, or `-N[smhd]` ago."""
    value = text.strip()
    if not value or len(value) > 40:
        raise InvalidParameter(f"{name}: give unix seconds, an ISO 8601 time or -2h / -7d")
    if m := _RELATIVE_RE.fullmatch(value):
        ts = (time.time() if now is None else now) - int(m.group(1)) * _UNIT_S[m.group(2)]
    elif _UNIX_RE.fullmatch(value):
        ts = float(value)
    else:
        try:
            if len(value) == 10:
                parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
            else:
                parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise InvalidParameter(
                f"{name} {value!r} is not unix seconds, ISO 8601 or -N[smhd]") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            ts = parsed.timestamp()
        except (OverflowError, ValueError, OSError):
            raise InvalidParameter(f"{name} is out of range (1970 to 9999)") from None
    if not _MIN_TS <= ts <= _MAX_TS:
        raise InvalidParameter(f"{name} is out of range (1970 to 9999)")
    return ts


@dataclass(frozen=True)
class AuditQuery:
    user: str = ""
    patient: str = ""
    clinic: str = ""
    actions: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    break_glass: bool = False
    #: The patient's studies, resolved from the study index (resolve()).
    patient_studies: frozenset[str] = field(default_factory=frozenset)

    def public(self) -> dict[str, object]:
        return {"user": self.user, "patient": self.patient, "clinic": self.clinic,
                "action": ",".join(self.actions), "since": self.since, "until": self.until,
                "break_glass": self.break_glass}

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else int(self.since * 1000)

    @property
    def until_ms(self) -> int | None:
        return None if self.until is None else int(self.until * 1000)

    def matches(self, fields: Mapping[str, str]) -> bool:
        if self.user and fields.get("user") != self.user:
            return False
        if self.break_glass and fields.get("break_glass") != "1":
            return False
        if self.actions and not any(_action_matches(a, fields.get("action", ""))
                                    for a in self.actions):
            return False
        if self.clinic and not any(fields.get(k) == self.clinic for k in _CLINIC_FIELDS):
            return False
        if self.patient and not self._names_patient(fields):
            return False
        ts = _ts(fields)
        if self.since is not None and ts < self.since:
            return False
        return not (self.until is not None and ts > self.until)

    def _names_patient(self, fields: Mapping[str, str]) -> bool:
        if fields.get("patient_id") == self.patient:
            return True
        if not self.patient_studies:
            return False
        for key in _STUDY_FIELDS:
            for item in fields.get(key, "").split(","):
                uid = item.rpartition("/")[2]  # break_glass_studies are CLINIC/UID
                if uid and uid in self.patient_studies:
                    return True
        return False


def _action_matches(pattern: str, action: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return action.startswith(pattern[:-1])
    return action == pattern


def _ts(fields: Mapping[str, str]) -> float:
    try:
        return float(fields.get("ts", "0"))
    except ValueError:
        return 0.0


def _value(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):
        raise InvalidParameter(f"{name} must be text")
    value = value.strip()
    if len(value) > MAX_VALUE:
        raise InvalidParameter(f"{name} is limited to {MAX_VALUE} characters")
    if any(ord(c) < 32 for c in value):
        raise InvalidParameter(f"{name} holds control characters")
    return value


def parse_query(params: Mapping[str, str], *, now: float | None = None) -> AuditQuery:
    """The query of the audit page / CLI from its text fields (InvalidParameter if wrong)."""
    actions: list[str] = []
    raw_actions = _value(params, "action")
    for part in raw_actions.split(","):
        part = part.strip()
        if not part:
            continue
        if not _ACTION_RE.fullmatch(part):
            raise InvalidParameter(f"action {part[:40]!r}: letters, digits, '.', '_', '-', "
                                   "with an optional '*' at the end")
        actions.append(part)
    if len(actions) > MAX_ACTIONS:
        raise InvalidParameter(f"at most {MAX_ACTIONS} actions")
    glass = _value(params, "break_glass").lower()
    if glass not in _TRUE | _FALSE:
        raise InvalidParameter("break_glass is 1 or 0")
    since = parse_time(_value(params, "since"), "since", now=now) \
        if _value(params, "since") else None
    until = parse_time(_value(params, "until"), "until", now=now) \
        if _value(params, "until") else None
    if since is not None and until is not None and since > until:
        raise InvalidParameter("since is after until")
    return AuditQuery(user=_value(params, "user"), patient=_value(params, "patient"),
                      clinic=_value(params, "clinic"), actions=tuple(dict.fromkeys(actions)),
                      since=since, until=until, break_glass=glass in _TRUE)


def parse_cursor(text: str) -> str | None:
    """The `before` of a next page: a stream id `MS-SEQ` (as the previous page gave it)."""
    if not text:
        return None
    if not _CURSOR_RE.fullmatch(text):
        raise InvalidParameter("before is a stream id such as 1764633600000-0")
    return text


async def resolve(store: Store, query: AuditQuery) -> AuditQuery:
    """Look up the patient's studies (in the given clinic, else every clinic)."""
    if not query.patient:
        return query
    clinics = [query.clinic] if query.clinic else [c.id for c in await store.directory.clinics()]
    uids = await store.studies.studies_of_patient(query.patient, clinics)
    return replace(query, patient_studies=frozenset(uids))


async def search(store: Store, query: AuditQuery, *, before: str | None = None,
                 limit: int = 100) -> AuditPage:
    prefilter = Prefilter(user=query.user, break_glass=query.break_glass, clinic=query.clinic,
                          patient=query.patient, actions=query.actions,
                          patient_studies=tuple(sorted(query.patient_studies)))
    sift = query.user or query.break_glass or query.clinic or query.patient or query.actions
    return await store.audit.search(query.matches, before=before, since_ms=query.since_ms,
                                    until_ms=query.until_ms, limit=min(limit, 100_000),
                                    prefilter=prefilter if sift else None)


def event_view(ev: AuditEvent) -> dict[str, object]:
    """An event for the page: its id, time, the main fields, break-glass flag, the rest."""
    f = ev.fields
    main = {"ts", "action", "user", "role", "clinic", "remote", "device"}
    return {
        "id": ev.id, "ts": _ts(f), "action": f.get("action", ""), "user": f.get("user", ""),
        "role": f.get("role", ""), "clinic": f.get("clinic", ""),
        "remote": f.get("remote", ""), "device": f.get("device", ""),
        "break_glass": f.get("break_glass") == "1",
        "details": {k: v for k, v in f.items() if k not in main},
    }


CSV_COLUMNS = ("id", "time_utc", "action", "user", "role", "clinic", "remote", "device",
               "break_glass", "patient_id", "study", "details")


def _cell(value: str) -> str:
    # A spreadsheet must not run a cell as a formula (CSV injection): quote such starts.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(CSV_COLUMNS)
    return out.getvalue()


def csv_rows(events: Iterable[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    skip = {"ts", "action", "user", "role", "clinic", "remote", "device", "break_glass",
            "patient_id", "study"}
    for ev in events:
        f = ev.fields
        when = datetime.fromtimestamp(_ts(f), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        details = " ".join(f"{k}={v}" for k, v in f.items() if k not in skip)
        writer.writerow([_cell(x) for x in (
            ev.id, when, f.get("action", ""), f.get("user", ""), f.get("role", ""),
            f.get("clinic", ""), f.get("remote", ""), f.get("device", ""),
            "1" if f.get("break_glass") == "1" else "", f.get("patient_id", ""),
            f.get("study", ""), details)])
    return out.getvalue()

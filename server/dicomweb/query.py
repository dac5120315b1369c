"""QIDO-RS query parameters and attribute matching (PS3.18 §8.3.4, PS3.4 C.2.2.2).

Pure functions: parse the query string once, then match index records against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from server.dicomweb.attributes import INSTANCE_TAGS, SERIES_TAGS, STUDY_TAGS, tag_of, vr_of
from server.dicomweb.multipart import negotiate
from server.errors import InvalidParameter
from server.params import parse_int
from server.store.study_index import DicomJson


class Level(StrEnum):
    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


MODALITIES_IN_STUDY = "00080061"
# Matching keys each level supports (PS3.18 Table 10.6.1-5 required ones and a few more).
MATCHABLE: dict[Level, frozenset[str]] = {
    Level.STUDY: frozenset(
        {
            "00080020",
            "00080030",
            "00080050",
            MODALITIES_IN_STUDY,
            "00080090",
            "00081030",
            "00100010",
            "00100020",
            "0020000D",
            "00200010",
        }
    ),
    Level.SERIES: frozenset({"00080060", "0020000E", "00200011", "0008103E", "00080021"}),
    Level.INSTANCE: frozenset({"00080016", "00080018", "00200013"}),
}
LEVEL_TAGS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: STUDY_TAGS,
    Level.SERIES: SERIES_TAGS,
    Level.INSTANCE: INSTANCE_TAGS,
}
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "accept"}
#: What a QIDO-RS response can be (PS3.18 10.6.3): the JSON model only, not XML.
QIDO_TYPES = ("application/dicom+json", "application/json")
# re.ASCII: Python's \d also matches Unicode digits ("٢٠٢٤"), which are no DICOM date.
_DATE_RE = re.compile(r"\d{8}", re.ASCII)
_TIME_RE = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", re.ASCII)
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Query:
    filters: dict[str, str] = field(default_factory=dict)  # tag -> raw matching value
    limit: int | None = None
    offset: int = 0
    include_all: bool = False
    include: frozenset[str] = frozenset()
    limit_capped: bool = False  # the client asked for more than MAX_LIMIT


def parse_query(
    params: Mapping[str, str] | Iterable[tuple[str, str]], levels: Iterable[Level]
) -> Query:
    """Validate a QIDO query for a search whose results are at the last of `levels` and which
    may match on keys of every level listed."""
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    allowed = frozenset().union(*(MATCHABLE[lv] for lv in levels))
    filters: dict[str, str] = {}
    include: set[str] = set()
    include_all = False
    limit: int | None = None
    offset = 0
    capped = False
    for key, value in items:
        lkey = key.lower()
        if lkey == "limit":
            limit = _non_negative(key, value)
            capped = limit > MAX_LIMIT
            limit = min(limit, MAX_LIMIT)
        elif lkey == "offset":
            offset = _non_negative(key, value)
        elif lkey == "accept":
            negotiate(value, QIDO_TYPES)  # PS3.18 8.3.3.1; 406 for, e.g., dicom+xml
        elif lkey == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise InvalidParameter("fuzzymatching must be true or false")
        elif lkey == "includefield":
            for name in filter(None, (v.strip() for v in value.split(","))):
                if name.lower() == "all":
                    include_all = True
                    continue
                tag = tag_of(name)
                if tag is None:
                    raise InvalidParameter(f"includefield names an unknown attribute {name!r}")
                include.add(tag)
        else:
            tag = tag_of(key)
            if tag is None:
                raise InvalidParameter(f"unknown query attribute {key!r}")
            if tag not in allowed:
                raise InvalidParameter(
                    f"{key} is not a supported matching key for this search; supported: "
                    + ", ".join(sorted(allowed))
                )
            _validate_value(key, tag, value)
            filters[tag] = value
    return Query(filters, limit, offset, include_all, frozenset(include), capped)


def _non_negative(key: str, value: str) -> int:
    return parse_int(value, key, minimum=0)


def _validate_value(key: str, tag: str, value: str) -> None:
    vr = vr_of(tag) if tag != MODALITIES_IN_STUDY else "CS"
    if vr in ("DA", "TM") and value:
        pattern = _DATE_RE if vr == "DA" else _TIME_RE
        low, sep, high = value.partition("-")
        parts = [p for p in (low, high) if p] if sep else [low]
        if not parts or not all(pattern.fullmatch(p) for p in parts):
            raise InvalidParameter(
                f"{key} must be a DICOM {'date YYYYMMDD' if vr == 'DA' else 'time HHMMSS'} "
                f"or a range A-B, -B, A-; got {value!r}"
            )


def _text(attrs: DicomJson, tag: str) -> list[str]:
    values = attrs.get(tag, {}).get("Value") or []
    out = []
    for v in values:
        if isinstance(v, dict):  # PN: {"Alphabetic": ..., "Ideographic": ...}
            out.extend(str(x) for x in v.values())
        else:
            out.append(str(v))
    return out


def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def matches(attrs: DicomJson, tag: str, value: str) -> bool:
    """One matching key against one record's attributes (empty value: universal match)."""
    if value == "" or value == "*":
        return True
    vr = vr_of(tag) if tag != MODALITIES_IN_STUDY else "CS"
    candidates = _text(attrs, tag)
    if vr == "UI" or tag == MODALITIES_IN_STUDY:
        wanted = {v.strip() for v in re.split(r"[,\\]", value) if v.strip()}
        return any(c in wanted for c in candidates)
    if vr in ("DA", "TM"):
        low, sep, high = value.partition("-")
        for c in candidates:
            c = c.replace(":", "") if vr == "TM" else c
            if not sep and c.startswith(low):
                return True
            if sep and (not low or c >= low) and (not high or c[: len(high)] <= high):
                return True
        return False
    if vr in ("IS", "US", "SL", "UL"):
        return any(c == value.strip() for c in candidates)
    # Names and descriptions are matched without regard to case, as users type them.
    ignore_case = vr in ("PN", "LO", "SH", "LT")
    if "*" in value or "?" in value:
        rx = _wildcard(value, ignore_case)
        return any(rx.match(c) for c in candidates)
    if ignore_case:
        return any(c.lower() == value.lower() for c in candidates)
    return value in candidates


def matches_all(attrs: DicomJson, filters: Mapping[str, str]) -> bool:
    return all(matches(attrs, tag, value) for tag, value in filters.items())


#: PS3.18 10.6.3.3.1's Warning when a limit over the maximum left matches out.
LIMIT_WARNING = ('299 huizhen: "The number of results exceeded the maximum supported by the '
                 'server. Additional results can be requested."')


def more_than_shown(records: list, query: Query) -> bool:
    """Whether the server's cap (not the client's limit) left matches out of this page."""
    return (query.limit_capped and query.limit is not None
            and len(records) > query.offset + query.limit)


def page(records: list, query: Query) -> list:
    end = None if query.limit is None else query.offset + query.limit
    return records[query.offset : end]


def select(attrs: DicomJson, level: Level, query: Query, extra: DicomJson) -> DicomJson:
    """Attributes returned for one match: the level's own, plus includefield (or all) from the
    levels above it, plus computed ones in `extra` (counts, RetrieveURL)."""
    own = {t: attrs[t] for t in LEVEL_TAGS[level] if t in attrs}
    if query.include_all:
        own.update(attrs)
    else:
        own.update({t: attrs[t] for t in query.include if t in attrs})
    own.update(extra)
    return dict(sorted(own.items()))

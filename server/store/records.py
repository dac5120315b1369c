"""Dataclass records as Redis hash fields, and back: one conversion for every store.

A record is a frozen dataclass whose fields are str, int, float, bool or a str-valued Enum. In
the hash every value is text: floats as `repr` (exact round trip), enums as their value, bools
as `True`/`False`. Reading back, a field missing from the hash (a record written before the
field existed) takes the dataclass default.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def to_hash(record: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        v = getattr(record, f.name)
        if isinstance(v, Enum):
            out[f.name] = str(v.value)
        elif isinstance(v, float):
            out[f.name] = repr(v)
        else:
            out[f.name] = str(v)
    return out


@functools.cache
def _types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_hash(cls: type[T], data: dict[str, str]) -> T:
    kwargs: dict[str, Any] = {}
    hints = _types(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue  # an older record: the dataclass default
        raw = data[f.name]
        kind = hints.get(f.name)
        if isinstance(kind, type) and issubclass(kind, Enum):
            kwargs[f.name] = kind(raw)
        elif kind is bool:
            kwargs[f.name] = raw in ("True", "1")
        elif kind is float:
            kwargs[f.name] = float(raw or 0)
        elif kind is int:
            kwargs[f.name] = int(raw or 0)
        else:
            kwargs[f.name] = raw
    return cls(**kwargs)

"""THE way a JSON request body is read: bounded in bytes, depth and number size, into a pydantic
model, with errors that say what was wrong.

Every JSON route reads its body through `read_json` (a unit test checks no handler reads a body
another way), so one place bounds what a client can make the server hold: 64 KiB, counted as the
bytes arrive (a chunked body has no Content-Length to refuse up front), at most 32 levels of
nesting, numbers of at most 40 characters, no NaN or Infinity.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.errors import InvalidParameter, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = 64 * 1024
MAX_JSON_DEPTH = 32
#: Python's int() refuses more than 4300 digits with a ValueError (and is slow well before).
MAX_NUMBER_CHARS = 40
_READ_CHUNK = 16 * 1024


class InvalidJson(InvalidParameter):
    code = "invalid_json"


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
        for err in exc.errors()
    ]


def parse_model(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        raise InvalidParameter(f"invalid request body: {summary}", fields=details) from exc


def _number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_NUMBER_CHARS:
            raise InvalidJson(
                f"a number in the body has {len(text)} characters; at most {MAX_NUMBER_CHARS}"
            )
        value = kind(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidJson(f"the number {text} is too large")
        return value

    return parse


def _constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number")


def _depth(value: object) -> int:
    """Nesting depth, iteratively (the value itself may be the deep thing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json_bytes(data: bytes) -> Any:
    """Decode a JSON body already known to be within MAX_JSON_BODY; InvalidJson if not JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        value = json.loads(
            text,
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON ({exc.msg} at {exc.pos})") from exc
    except RecursionError as exc:
        raise InvalidJson(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidJson(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"a JSON body may be at most {MAX_JSON_BODY // 1024} KiB", limit_bytes=MAX_JSON_BODY
    )


async def read_json_value(request: web.Request) -> Any:
    """The parsed body of a JSON request, read at most MAX_JSON_BODY bytes far."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {request.content_type or 'none'}"
        )
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise _too_large()
    body = bytearray()
    while chunk := await request.content.read(_READ_CHUNK):
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise _too_large()
    return parse_json_bytes(bytes(body))


async def read_json(request: web.Request, model: type[M]) -> M:
    """The body of a JSON request as `model` (400 naming each wrong field)."""
    return parse_model(model, await read_json_value(request))

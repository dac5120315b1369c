"""Reading a JSON request body into a pydantic model, with errors that say what was wrong."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.errors import InvalidParameter, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


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


async def read_json(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {request.content_type or 'none'}"
        )
    try:
        data = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"the body is not valid JSON ({exc})") from exc
    return parse_model(model, data)

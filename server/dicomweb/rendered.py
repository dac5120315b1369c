"""WADO-RS rendered and thumbnail resources (PS3.18 §9.5, §9.6): server-side window/level.

The hot path of every scrolling viewer: one Redis round trip (owner + instance), the audit write
running alongside the render, and the render itself in the thread pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from media.imaging.encoder import SUPPORTED_MEDIA_TYPES
from media.imaging.window import Window
from server import appkeys
from server.dicomweb.multipart import accept_of, negotiate
from server.dicomweb.resources import (
    audit_soon,
    authorized_instance,
    authorized_study,
    file_path,
    uid_param,
)
from server.errors import InvalidParameter, NotFound
from server.params import parse_int
from server.store.study_index import InstanceRecord

RENDERED_TYPES: tuple[str, ...] = tuple(
    t for t in ("image/jpeg", "image/png", "image/gif", "image/webp")
    if t in SUPPORTED_MEDIA_TYPES
)
MAX_VIEWPORT = 8192
MAX_FRAME_NUMBER = 2**31 - 1


@dataclass(frozen=True)
class RenderParams:
    window: Window | None = None
    quality: int = 90
    viewport: tuple[int, int] | None = None


def parse_render_params(
    query: Mapping[str, str],
    *,
    default_quality: int = 90,
    default_viewport: tuple[int, int] | None = None,
) -> RenderParams:
    window = None
    quality = default_quality
    viewport = default_viewport
    for key, value in query.items():
        if key == "window":
            window = Window.parse(value)
        elif key == "quality":
            quality = parse_int(value, "quality", minimum=1, maximum=100)
        elif key == "viewport":
            viewport = _viewport(value)
        elif key == "iccprofile":
            if value.lower() not in ("no", "yes", "srgb"):
                raise InvalidParameter("iccprofile must be no, yes or srgb")
        elif key == "accept":
            pass  # PS3.18 8.3.3.1, negotiated with the media types (multipart.accept_of)
        elif key == "annotation":
            raise InvalidParameter("annotation is not supported: overlays are drawn by the viewer")
        else:
            raise InvalidParameter(
                f"unknown parameter {key!r}; rendered resources take window, quality, viewport"
            )
    return RenderParams(window, quality, viewport)


def _viewport(value: str) -> tuple[int, int]:
    parts = value.split(",")
    if len(parts) != 2:
        raise InvalidParameter(
            "viewport must be 'width,height' in pixels (cropping is not supported), "
            f"got {value[:40]!r}"
        )
    w, h = (
        parse_int(p.strip(), f"viewport {side}", minimum=1, maximum=MAX_VIEWPORT)
        for side, p in zip(("width", "height"), parts, strict=True)
    )
    return w, h


def _frame_number(request: web.Request) -> int:
    return parse_int(
        request.match_info.get("frame", "1"), "frame number", minimum=1, maximum=MAX_FRAME_NUMBER
    )


async def _render(
    request: web.Request, record: InstanceRecord, frame: int, params: RenderParams, action: str
) -> web.Response:
    media_type = negotiate(accept_of(request), RENDERED_TYPES)
    # Queued before anything is rendered; refused (503) if the audit log cannot keep up.
    audit_soon(request, action, study=record.study_uid, series=record.series_uid,
               instance=record.sop_uid, frame=frame)
    image = await request.app[appkeys.RENDERER].render(
        file_path(request, record), frame, window=params.window, viewport=params.viewport,
        media_type=media_type, quality=params.quality,
    )
    headers = {"Cache-Control": "no-store"}  # every view is audited, so no silent re-views
    if image.window is not None:
        # Always center,width,FUNCTION so a viewer can show it without knowing the default.
        center_width = image.window.to_param().split(",")[:2]
        headers["X-Window"] = ",".join([*center_width, image.window.function])
        headers["Access-Control-Expose-Headers"] = "X-Window"
    return web.Response(body=image.content, content_type=image.media_type, headers=headers)


async def rendered_frame(request: web.Request) -> web.Response:
    study, series, sop = (uid_param(request, n) for n in ("study", "series", "instance"))
    frame = _frame_number(request)
    params = parse_render_params(request.query)
    record = await authorized_instance(request, study, series, sop)
    return await _render(request, record, frame, params, "wado.rendered")


async def thumbnail(request: web.Request) -> web.Response:
    """Series/study thumbnail: the middle image of the stack, small and fast to send."""
    study = uid_param(request, "study")
    params = parse_render_params(request.query, default_quality=75, default_viewport=(128, 128))
    if "instance" in request.match_info:
        series, sop = uid_param(request, "series"), uid_param(request, "instance")
        record = await authorized_instance(request, study, series, sop)
    else:
        found = await authorized_study(request, study)
        series = uid_param(request, "series") if "series" in request.match_info else None
        stack = [
            r
            for r in await request.app[appkeys.STORE].studies.instances(found.clinic, study, series)
            if "00280010" in r.attrs  # images only
        ]
        if not stack:
            raise NotFound("no image to make a thumbnail from")
        if series is None:
            first_series = stack[0].series_uid
            stack = [r for r in stack if r.series_uid == first_series]
        record = stack[len(stack) // 2]
    return await _render(request, record, 1, params, "wado.thumbnail")

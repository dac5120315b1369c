"""GET /api/presets: the named window presets (lung, bone, brain…) with their labels."""

from __future__ import annotations

from aiohttp import web

from media.imaging.window_presets import PRESET_LABELS, PRESETS


async def presets(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {
                "name": name,
                "center": w.center,
                "width": w.width,
                "function": w.function,
                "label_en": PRESET_LABELS[name][0],
                "label_zh": PRESET_LABELS[name][1],
            }
            for name, w in PRESETS.items()
        ]
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/api/presets", presets)

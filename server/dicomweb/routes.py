"""The DICOMweb URL space under /dicomweb (PS3.18 resource names)."""

from __future__ import annotations

from aiohttp import web

from server.dicomweb import ecg, qido, rendered, stow, wado

STUDY = "/dicomweb/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"


def setup(app: web.Application) -> None:
    r = app.router
    # The router tries dynamic routes in order: the hot path of scrolling viewers goes first.
    r.add_get(INSTANCE + "/frames/{frame}/rendered", rendered.rendered_frame)
    r.add_get(INSTANCE + "/rendered", rendered.rendered_frame)
    r.add_get("/dicomweb/studies", qido.search_studies)
    r.add_post("/dicomweb/studies", stow.store_instances)
    r.add_post(STUDY, stow.store_instances)
    r.add_get(STUDY + "/series", qido.search_series)
    r.add_get(STUDY + "/instances", qido.search_instances)
    r.add_get(SERIES + "/instances", qido.search_instances)

    for base in (STUDY, SERIES, INSTANCE):
        r.add_get(base, wado.retrieve)
        r.add_get(base + "/metadata", wado.metadata)
        r.add_get(base + "/thumbnail", rendered.thumbnail)
    r.add_get(INSTANCE + "/frames/{frames}", wado.frames)
    r.add_get(INSTANCE + "/bulkdata/{tag}", wado.bulkdata)
    r.add_get(INSTANCE + "/bulkdata/{seq}/{item}/{tag}", wado.bulkdata)
    r.add_get(INSTANCE + "/ecg", ecg.samples)
    r.add_get(INSTANCE + "/ecg/summary", ecg.summary)

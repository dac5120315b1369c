"""The aiohttp application: wiring of settings, Redis store, renderer, and routes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from redis.exceptions import RedisError

from media.imaging.renderer import Renderer
from server import appkeys
from server.api import (
    admin_routes,
    alerts,
    annotations,
    audit_routes,
    auth_routes,
    consults,
    departments,
    health,
    mdt,
    notifications,
    openapi,
    presets,
    referrals,
    reports,
    static,
    studies,
    uploads,
    worklist,
)
from server.api.json_body import MAX_JSON_BODY
from server.auth.middleware import auth_middleware
from server.auth.sessions import SessionGuard
from server.auth.tokens import TokenService
from server.clinical.alerts import AlertService
from server.clinical.referrals import ReferralService
from server.clinical.reports import ReportService
from server.clinical.worklist import WorklistService
from server.config import Settings
from server.dicomweb import routes as dicomweb_routes
from server.dicomweb.prefetch import ViewPrefetcher
from server.errors import error_middleware
from server.ingest import Ingestor
from server.log import event
from server.mdt.service import MdtService
from server.realtime import websocket
from server.realtime.services import Realtime
from server.store import Store
from server.store.rooms import Room
from server.sweeper import Sweeper, Sweeping
from server.transport import cors, headers
from server.transport.cors import cors_middleware
from server.transport.proxies import forwarded_middleware

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store) -> web.Application:
    # aiohttp's own limit only guards request.read()/post(), which no handler uses: JSON goes
    # through server/api/json_body.py (64 KiB) and uploads stream against HUIZHEN_MAX_UPLOAD_MB
    # (server/ingest.py). Kept at the JSON limit so a future read() cannot hold more.
    app = web.Application(
        middlewares=[error_middleware, forwarded_middleware, cors_middleware, auth_middleware],
        client_max_size=MAX_JSON_BODY,
    )
    executor = ThreadPoolExecutor(settings.render_threads, thread_name_prefix="hz-render")
    app[appkeys.SETTINGS] = settings
    app[appkeys.STORE] = store
    store.grants.configure(ttl_s=settings.grant_ttl_s,
                           break_glass_ttl_s=settings.break_glass_ttl_s)
    app[appkeys.EXECUTOR] = executor
    app[appkeys.TOKENS] = TokenService(settings.secret_key, settings.token_ttl_s)
    app[appkeys.SESSIONS] = SessionGuard(store.sessions)
    app[appkeys.RENDERER] = Renderer(
        executor,
        frame_cache_bytes=settings.frame_cache_mb * 2**20,
        image_cache_bytes=settings.image_cache_mb * 2**20,
        # One strip per core: more strips than cores only adds joins and thread hand-offs.
        jpeg_strips=min(settings.render_threads, os.cpu_count() or 1),
        max_frame_pixels=settings.max_frame_pixels,
    )
    app[appkeys.INGESTOR] = Ingestor(settings, store, executor)
    report_service = ReportService(settings, store, executor)
    app[appkeys.MDT] = MdtService(settings, store, lambda: app.get(appkeys.REALTIME),
                                  app[appkeys.RENDERER])
    app[appkeys.WORKLIST] = WorklistService(settings, store)
    app[appkeys.ALERTS] = AlertService(settings, store, executor)
    sweeper = app[appkeys.SWEEPER] = Sweeper(store.locks)
    app[appkeys.REFERRALS] = ReferralService(store, journal_dir=settings.referrals_dir,
                                             executor=executor, reports=report_service)

    health.setup(app)
    openapi.setup(app)
    auth_routes.setup(app)
    admin_routes.setup(app)
    presets.setup(app)
    departments.setup(app)
    consults.setup(app)
    notifications.setup(app)
    reports.setup(app, report_service)
    worklist.setup(app)
    alerts.setup(app)
    referrals.setup(app)
    audit_routes.setup(app)
    uploads.setup(app)
    studies.setup(app)
    mdt.setup(app)
    annotations.setup(app)
    dicomweb_routes.setup(app)
    websocket.setup(app)
    static.setup(app)
    headers.setup(app)
    cors.setup(app)

    async def on_startup(app: web.Application) -> None:
        app[appkeys.REALTIME] = await Realtime.start(settings, store)
        realtime = app[appkeys.REALTIME]
        mdt_service = app[appkeys.MDT]

        async def mdt_room_joined(room: Room, username: str) -> None:
            # Someone is in the room: the session is live (a stand-in coordinator's grant is
            # MdtPolicy.joined's).
            await mdt_service.mark_live(room.ref)

        realtime.rooms.on_joined["mdt"] = mdt_room_joined
        # Referral steps are told to both sides (server/notifications.py).
        app[appkeys.REFERRALS].notifier = realtime.notifier
        # A slice at a window is rendered once for the whole room, ahead of its followers.
        realtime.live.view_changed = ViewPrefetcher(
            store, app[appkeys.RENDERER], settings).view_changed
        # Reading reports are signed by the holder of the worklist claim (server/clinical/
        # worklist.py); opinions need only the consults.
        report_service.start(app[appkeys.WORKLIST], lambda: getattr(realtime, "notifier", None),
                             app[appkeys.INGESTOR])
        try:
            # Users written before the clinic/department/role sets existed (notifications'
            # audiences) are indexed once at start; it is idempotent.
            await store.directory.index_members()
        except RedisError as exc:
            event(log, "member_index_skipped", logging.WARNING, error=type(exc).__name__)
        notifier = lambda: getattr(realtime, "notifier", None)  # noqa: E731
        await app[appkeys.WORKLIST].start(realtime.hub, notifier)
        await app[appkeys.ALERTS].start(realtime.hub, notifier)
        # Every domain's periodic sweep, on the one sweeper (server/sweeper.py).
        domains: tuple[Sweeping, ...] = (realtime, mdt_service, app[appkeys.WORKLIST],
                                         app[appkeys.ALERTS])
        for domain in domains:
            domain.register_sweeps(sweeper)
        sweeper.start()

    async def on_cleanup(app: web.Application) -> None:
        # Each step bounded and named: a shutdown that waits forever on one of them (a Redis
        # connection that never closes, a task that swallows its cancellation) is worse than
        # one that logs which step it gave up on and goes on with the rest.
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("sweeper", sweeper.close), ("reports", report_service.close)]
        if appkeys.REALTIME in app:
            steps.append(("realtime", app[appkeys.REALTIME].close))
        for name, close in steps:
            await _bounded_close(name, close)
        executor.shutdown(wait=False, cancel_futures=True)
        await _bounded_close("store", store.close)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    event(log, "app_created", data_dir=settings.data_dir)
    return app


#: The longest one step of the application's cleanup may take before it is given up on.
CLEANUP_STEP_TIMEOUT_S = 15.0


async def _bounded_close(name: str, close: Callable[[], Awaitable[object]]) -> None:
    try:
        async with asyncio.timeout(CLEANUP_STEP_TIMEOUT_S):
            await close()
    except TimeoutError:
        event(log, "cleanup_step_timed_out", logging.ERROR, step=name,
              timeout_s=CLEANUP_STEP_TIMEOUT_S)

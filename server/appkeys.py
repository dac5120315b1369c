"""Typed keys for what the application holds (aiohttp AppKey), shared by all route modules."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from media.imaging.renderer import Renderer
from server.auth.middleware import SESSIONS_KEY, TOKENS_KEY
from server.clinical.alerts import AlertService
from server.clinical.referrals import ReferralService
from server.clinical.worklist import WorklistService
from server.config import Settings
from server.ingest import Ingestor
from server.mdt.service import MdtService
from server.realtime.services import Realtime
from server.store import Store
from server.sweeper import Sweeper

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
EXECUTOR: web.AppKey[ThreadPoolExecutor] = web.AppKey("executor", ThreadPoolExecutor)
RENDERER: web.AppKey[Renderer] = web.AppKey("renderer", Renderer)
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor", Ingestor)
REALTIME: web.AppKey[Realtime] = web.AppKey("realtime", Realtime)
MDT: web.AppKey[MdtService] = web.AppKey("mdt", MdtService)
ALERTS: web.AppKey[AlertService] = web.AppKey("alerts", AlertService)
WORKLIST: web.AppKey[WorklistService] = web.AppKey("worklist", WorklistService)
REFERRALS: web.AppKey[ReferralService] = web.AppKey("referrals", ReferralService)
SWEEPER: web.AppKey[Sweeper] = web.AppKey("sweeper", Sweeper)
TOKENS = TOKENS_KEY
SESSIONS = SESSIONS_KEY

__all__ = [
    "ALERTS", "EXECUTOR", "INGESTOR", "MDT", "REALTIME", "REFERRALS", "RENDERER", "SESSIONS",
    "SETTINGS", "STORE", "SWEEPER", "TOKENS", "WORKLIST",
]

"""Render what an MDT room's followers are about to fetch, once for the whole room.

When the presenter's view changes (server/realtime/live.py), the slice at that window is put
into the renderer's shared image cache, and the next slices in the direction the presenter
scrolls too, at the same window: the followers' `GET .../rendered?window=…` then find the image
cached (or join the render already in flight: the renderer is single-flight per key). Only the
presenter's own access decides what is prefetched (server/auth/access.py); prefetching shows
nobody anything — each follower's fetch is authorised and audited as usual.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from media.imaging.renderer import Renderer
from media.imaging.window import Window
from server.auth import access
from server.auth.principal import Principal
from server.config import Settings
from server.log import event
from server.realtime.hub import spawn
from server.store import Store
from server.store.study_index import InstanceRecord

# What a viewer page asks for: the defaults of the rendered resource (Accept: */* -> JPEG).
MEDIA_TYPE = "image/jpeg"
QUALITY = 90
AHEAD = 2  # slices ahead of the presenter, in the direction they scroll
STACK_TTL_S = 30.0
ACCESS_TTL_S = 2.0  # a revoked grant stops prefetching within this (showing is never prefetch's)
MAX_IN_FLIGHT = 8  # prefetches of the room's neighbours waiting or rendering at once

log = logging.getLogger(__name__)


@dataclass
class _Room:
    last_index: int | None = None
    last_window: Window | None = None
    direction: int = 1


@dataclass
class ViewPrefetcher:
    store: Store
    renderer: Renderer
    settings: Settings
    ahead: int = AHEAD
    _stacks: dict[tuple[str, str, str], tuple[float, list[InstanceRecord]]] = field(
        default_factory=dict)
    _rooms: dict[str, _Room] = field(default_factory=dict)
    _access: dict[tuple[str, str], tuple[float, str | None]] = field(default_factory=dict)
    _in_flight: int = 0
    prefetched: int = 0
    skipped: int = 0

    async def view_changed(self, room_id: str, who: Principal, state: dict[str, Any]) -> None:
        """The presenter `who` now shows `state` (a ViewState): warm the cache for it."""
        try:
            await self._view_changed(room_id, who, state)
        except Exception as exc:  # a prefetch is an optimisation: never a failure to anyone
            event(log, "prefetch_failed", logging.WARNING, room=room_id,
                  error=type(exc).__name__)

    async def _view_changed(self, room_id: str, who: Principal, state: dict[str, Any]) -> None:
        if state.get("showing") == "ecg":
            return  # the images wait, unchanged, behind the ECG: nobody fetches them now
        study, series, sop = state["study_uid"], state["series_uid"], state["sop_instance_uid"]
        clinic = await self._readable_clinic(who, study)
        if clinic is None:
            return
        stack = await self._stack(clinic, study, series)
        index = next((i for i, r in enumerate(stack) if r.sop_uid == sop), None)
        if index is None:
            return
        w = state["window"]
        window = Window(float(w["center"]), float(w["width"]), w["function"])
        room = self._rooms.setdefault(room_id, _Room())
        if room.last_index is not None and index != room.last_index:
            room.direction = 1 if index > room.last_index else -1
        same_window = room.last_window == window
        room.last_index, room.last_window = index, window
        frame = int(state["frame"])
        targets = [index]
        if same_window:  # scrolling: the next ones at this window are what comes next
            targets += [index + room.direction * k for k in range(1, self.ahead + 1)]
        for i, t in enumerate(targets):
            if not 0 <= t < len(stack):
                continue
            if i > 0 and self._in_flight >= MAX_IN_FLIGHT:
                self.skipped += 1
                continue
            self._in_flight += 1
            spawn(self._render(stack[t], frame if t == index else 1, window))

    async def _render(self, record: InstanceRecord, frame: int, window: Window) -> None:
        try:
            await self.renderer.render(self.settings.dicom_dir / record.path, frame,
                                       window=window, media_type=MEDIA_TYPE, quality=QUALITY)
            self.prefetched += 1
        except Exception as exc:  # a frame number past the end, an unreadable file: skip it
            event(log, "prefetch_skipped", logging.DEBUG, error=type(exc).__name__)
        finally:
            self._in_flight -= 1

    async def _readable_clinic(self, who: Principal, study_uid: str) -> str | None:
        """Which clinic's study of this UID the presenter may read, if any (the answer is
        kept ACCESS_TTL_S: a presenter scrolls one study many times a second)."""
        key = (who.username, study_uid)
        now = time.monotonic()
        hit = self._access.get(key)
        if hit is not None and now - hit[0] < ACCESS_TTL_S:
            return hit[1]
        found: str | None = None
        clinic = access.own_clinic(who)
        if clinic is not None and await self.store.studies.study_owner(clinic, study_uid):
            found = clinic
        else:
            grants = await self.store.grants.of_user(who.username, study_uid=study_uid)
            granted = access.by_grant(who, study_uid, grants)
            found = granted.clinic if granted is not None else None
        if len(self._access) > 1024:
            self._access.clear()
        self._access[key] = (now, found)
        return found

    async def _stack(self, clinic: str, study: str, series: str) -> list[InstanceRecord]:
        key = (clinic, study, series)
        now = time.monotonic()
        hit = self._stacks.get(key)
        if hit is not None and now - hit[0] < STACK_TTL_S:
            return hit[1]
        stack = await self.store.studies.instances(clinic, study, series)
        if len(self._stacks) > 256:
            self._stacks.clear()
        self._stacks[key] = (now, stack)
        return stack

    def forget(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)


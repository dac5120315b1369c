"""Notifications: telling the right people that something happened, on every page they have open,
and again when they come back.

A domain service with no HTTP: an MDT invitation, a signed report, a critical-value alert or a
referral's new state names its `Audience` (users, the doctors of clinics, the experts of
departments, everyone of a role); each member's inbox (server/store/notifications.py) gets the
entry, then their pages are told over the page WebSocket (`notification`, with the unread count
for the badge). A page that reconnects asks for what came after the last id it saw.

Only ids and short display texts go in `data`: the audience may see them all, and a page fetches
anything more through the API, where access.py decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from server.log import event
from server.realtime import outbound as out
from server.store import Store, keys

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Audience:
    users: tuple[str, ...] = ()
    clinics: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, *, users: Iterable[str] = (), clinics: Iterable[str] = (),
        departments: Iterable[str] = (), roles: Iterable[str] = (),
    ) -> Audience:
        return cls(tuple(u for u in users if u), tuple(c for c in clinics if c),
                   tuple(d for d in departments if d), tuple(r for r in roles if r))


class Publisher(Protocol):
    """What the notifier needs of the event hub (server/realtime/hub.py): one publish."""

    async def publish(self, channel: str, message: dict) -> None: ...


class Notifier:
    def __init__(self, store: Store, hub: Publisher) -> None:
        self.store = store
        self.hub = hub

    async def recipients(self, audience: Audience) -> list[str]:
        names = set(audience.users)
        names |= await self.store.directory.members(
            clinics=audience.clinics, departments=audience.departments, roles=audience.roles)
        return sorted(names)

    async def notify(
        self, audience: Audience, kind: str, data: dict, *, exclude: str = ""
    ) -> list[str]:
        """Write the notification to every member's inbox, then tell their open pages.
        Returns who was notified (for the caller's audit or timeline)."""
        names = [n for n in await self.recipients(audience) if n != exclude]
        if not names:
            return []
        added = await self.store.notifications.add(names, kind, data)
        for name, (entry, unread) in added.items():
            await self.hub.publish(keys.channel_user(name), out.Notification(
                notification=entry.public(), unread=unread).to_json())
        event(log, "notified", kind=kind, recipients=len(names))
        return names

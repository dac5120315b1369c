"""The real-time plane of one process: event hub, consults, rooms and the SFU."""

from __future__ import annotations

from dataclasses import dataclass

from media.rtc.sfu import Sfu
from server.config import Settings
from server.realtime.consults import ConsultService
from server.realtime.hub import Hub
from server.realtime.limits import SocketLimits
from server.realtime.rooms import RoomService
from server.store import Store


@dataclass
class Realtime:
    hub: Hub
    consults: ConsultService
    rooms: RoomService
    sfu: Sfu
    limits: SocketLimits

    @classmethod
    async def start(cls, settings: Settings, store: Store) -> Realtime:
        hub = Hub(store.redis)
        await hub.start()
        # The SFU's own peer connections need no TURN: the server is the reachable side.
        sfu = Sfu(ice_servers=[], host_addresses=(
            list(settings.ice_host_addresses) if settings.ice_host_addresses else None))
        rooms = RoomService(settings, store, hub, sfu)
        await rooms.start()
        limits = SocketLimits(settings.ws_max_per_user, settings.ws_max_unauthenticated)
        consults = ConsultService(settings, store, hub)
        await consults.start()
        return cls(hub, consults, rooms, sfu, limits)

    async def close(self) -> None:
        await self.consults.close()
        await self.rooms.close()
        await self.sfu.close()
        await self.hub.close()

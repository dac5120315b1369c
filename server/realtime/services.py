"""The real-time plane of one process: event hub, consults, rooms and the SFU."""

from __future__ import annotations

from dataclasses import dataclass

from media.rtc import aiortc_internals
from media.rtc.ice import IcePolicy, is_loopback_host
from media.rtc.sfu import Sfu
from server.config import Settings
from server.notifications import Notifier
from server.realtime.consults import ConsultService
from server.realtime.hub import Hub
from server.realtime.limits import SocketLimits
from server.realtime.live import LiveRooms
from server.realtime.rooms import RoomService
from server.realtime.router import LocalRouter, RoomRouter
from server.store import Store
from server.sweeper import Sweeper


@dataclass
class Realtime:
    hub: Hub
    consults: ConsultService
    rooms: RoomService
    sfu: Sfu
    limits: SocketLimits
    notifier: Notifier
    router: RoomRouter
    live: LiveRooms

    @classmethod
    async def start(cls, settings: Settings, store: Store) -> Realtime:
        hub = Hub(store.redis)
        await hub.start()
        # The SFU's own peer connections need no TURN: the server is the reachable side.
        sfu = Sfu(ice_servers=[], host_addresses=sfu_host_addresses(settings),
                  ice_policy=IcePolicy.from_settings(settings.ice_allowed_networks,
                                                     settings.host))
        router = LocalRouter(sfu)
        rooms = RoomService(settings, store, hub, router)
        limits = SocketLimits(settings.ws_max_per_user, settings.ws_max_unauthenticated)
        consults = ConsultService(settings, store, hub)
        live = LiveRooms(store, hub, rooms)
        return cls(hub, consults, rooms, sfu, limits, Notifier(store, hub), router, live)

    def register_sweeps(self, sweeper: Sweeper) -> None:
        self.rooms.register_sweeps(sweeper)
        self.consults.register_sweeps(sweeper)

    async def close(self) -> None:
        await self.rooms.close()
        await self.sfu.close()
        await self.hub.close()


def sfu_host_addresses(settings: Settings) -> list[str] | None:
    """HUIZHEN_ICE_HOST_ADDRESSES, or by default every interface (aioice's choice, which skips
    loopback) — plus 127.0.0.1 when the server listens on loopback: a browser on the same
    machine (`make run`) can then always reach the SFU, even with no other interface up."""
    if settings.ice_host_addresses:
        return list(settings.ice_host_addresses)
    if is_loopback_host(settings.host):
        found = aiortc_internals.system_host_addresses()
        return [*found, "127.0.0.1"] if "127.0.0.1" not in found else found
    return None

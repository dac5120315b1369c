"""The seam between the room service and the media plane (the SFU).

Modelled on LiveKit's `pkg/routing` (one `Router` interface; `localrouter.go` keeps every room
on this node, `redisrouter.go` records which node holds a room in Redis and relays a
participant's signaling to it). The room service never calls the SFU directly: it asks the
router to place a participant's media (`join`), to pass on their answer and candidates, and to
take them out (`leave`, `close_room`). `LocalRouter` is the only implementation today: every
room's media is on the process that holds the participant's WebSocket. A Redis router (the
scale-out issue) would place a room on one node (`node_for_room`) and forward the signaling of
participants connected elsewhere to it — without any change to `server/realtime/rooms.py`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from media.rtc.sfu import Sfu

SendOffer = Callable[[str], Awaitable[None]]
OnMediaState = Callable[[str], Awaitable[None]]


class RoomRouter(Protocol):
    """Where a room's media lives and how a participant's signaling reaches it."""

    @property
    def node_id(self) -> str:
        """This process's node id."""
        ...

    async def node_for_room(self, room_id: str) -> str:
        """The node that holds (or will hold) the room's media."""
        ...

    async def join(
        self, room_id: str, participant: str, send_offer: SendOffer, on_state: OnMediaState
    ) -> None:
        """Start (or restart, on a rejoin) the participant's media; the first offer is sent
        through `send_offer` before this returns, media states through `on_state`."""
        ...

    async def answer(self, room_id: str, participant: str, sdp: str) -> None: ...

    async def candidate(self, room_id: str, participant: str, candidate: dict[str, Any]) -> None:
        ...

    async def leave(self, room_id: str, participant: str) -> None: ...

    async def close_room(self, room_id: str) -> None:
        """Drop the room's media and whatever the router remembers of it."""
        ...

    def stats(self) -> dict[str, Any]: ...


class LocalRouter:
    """Every room's media on this process's SFU."""

    def __init__(self, sfu: Sfu, node_id: str | None = None) -> None:
        self.sfu = sfu
        self._node_id = node_id or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def node_id(self) -> str:
        return self._node_id

    async def node_for_room(self, room_id: str) -> str:
        return self._node_id

    async def join(
        self, room_id: str, participant: str, send_offer: SendOffer, on_state: OnMediaState
    ) -> None:
        await self.sfu.room(room_id).join(participant, send_offer, on_state)

    async def answer(self, room_id: str, participant: str, sdp: str) -> None:
        await self.sfu.room(room_id).answer(participant, sdp)

    async def candidate(self, room_id: str, participant: str, candidate: dict[str, Any]) -> None:
        await self.sfu.room(room_id).add_ice_candidate(participant, candidate)

    async def leave(self, room_id: str, participant: str) -> None:
        await self.sfu.room(room_id).leave(participant)

    async def close_room(self, room_id: str) -> None:
        await self.sfu.close_room(room_id)

    def stats(self) -> dict[str, Any]:
        return {"node": self._node_id, "kind": "local", **self.sfu.stats()}

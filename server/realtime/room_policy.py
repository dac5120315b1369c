"""What each kind of room allows, and what it does around joins, leaves and closing.

The room service (server/realtime/rooms.py) is kind-neutral: membership, presence, invitations
and the event log are the same for every room. A `RoomPolicy` gathers the facts a kind's
decisions need (the consult, the MDT session) and asks server/auth/access.py, the one place
that decides; it also does the kind's own work: a consult room grants the consult's study to
whoever joins and ends the consult when the last one leaves; an MDT room stays open when empty
(the MDT's domain closes it on conclude/cancel, `RoomService.close_room`).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from server.auth import access
from server.auth.principal import Principal
from server.errors import NotFound
from server.store import Store
from server.store import rooms as room_store
from server.store.consults import Outcome
from server.store.rooms import Room

MDT_MAX_PARTICIPANTS = 12
# The session's minutes: kept whole for any real meeting, bounded against a flood.
MDT_EVENTS_KEPT: int | None = 100_000
MDT_ROOM_PREFIX = "mdt-"
# An MDT session in these states has no room to join.
MDT_CLOSED_STATES = frozenset({"concluded", "cancelled"})


class RoomPolicy(Protocol):
    kind: ClassVar[str]
    closes_when_empty: ClassVar[bool]

    @property
    def events_kept(self) -> int | None: ...

    async def may_join(self, store: Store, room: Room, who: Principal, *, member: bool,
                       invited: bool) -> None: ...

    async def may_invite(self, store: Store, room: Room, who: Principal) -> None: ...

    async def is_coordinator(self, store: Store, room: Room, who: Principal) -> bool: ...

    async def may_present(self, store: Store, room: Room, who: Principal) -> None: ...

    async def describe(self, store: Store, room: Room, who: Principal) -> dict[str, Any]: ...

    async def joined(self, store: Store, room: Room, who: Principal, *, first: bool) -> None:
        ...

    async def left(self, store: Store, room: Room, username: str) -> None: ...

    async def invited(self, store: Store, room: Room, username: str, *, by: str) -> None: ...

    async def closed(self, store: Store, room: Room, reason: str) -> None: ...

    def audit_fields(self, room: Room, described: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ConsultPolicy:
    """A consult call: the doctor and the accepting expert, experts they invite."""

    kind: ClassVar[str] = "consult"
    closes_when_empty: ClassVar[bool] = True

    @property
    def events_kept(self) -> int | None:
        return room_store.EVENTS_KEPT

    async def may_join(self, store: Store, room: Room, who: Principal, *, member: bool,
                       invited: bool) -> None:
        access.room_join(who, self.kind, member=member, invited=invited)

    async def may_invite(self, store: Store, room: Room, who: Principal) -> None:
        access.room_invite(who, self.kind, coordinator=False)

    async def is_coordinator(self, store: Store, room: Room, who: Principal) -> bool:
        return False

    async def may_present(self, store: Store, room: Room, who: Principal) -> None:
        access.room_present(who, self.kind)

    async def describe(self, store: Store, room: Room, who: Principal) -> dict[str, Any]:
        consult = await store.consults.get(room.consult_id) if room.consult_id else None
        return {"consult": consult.public() if consult else None}

    async def joined(self, store: Store, room: Room, who: Principal, *, first: bool) -> None:
        await store.grant_room_study(room.id, [who.username])
        if first and room.consult_id:
            await store.consults.note_joined(room.consult_id, who.username)

    async def left(self, store: Store, room: Room, username: str) -> None:
        await store.grant_room_study(room.id, [username])  # the grant lasts TTL from leaving

    async def invited(self, store: Store, room: Room, username: str, *, by: str) -> None:
        # An expert invited by name may open the consult's study at once.
        await store.grant_room_study(room.id, [username], by=by)

    async def closed(self, store: Store, room: Room, reason: str) -> None:
        if room.consult_id:
            # The last ones out timed out rather than hung up: the call was dropped.
            await store.consults.end(
                room.consult_id,
                Outcome.DROPPED if reason == "timed_out" else Outcome.COMPLETED)

    def audit_fields(self, room: Room, described: dict[str, Any]) -> dict[str, Any]:
        consult = described.get("consult")
        return {"consult": room.consult_id or None,
                "study": (consult.get("study_uid") or None) if consult else None}


@dataclass(frozen=True)
class MdtPolicy:
    """An MDT meeting: the session's coordinator, invited experts and clinics' doctors
    (`MdtSession.may_join`, server/store/mdt.py), up to 12 at once; the coordinator invites and
    may always take control of the shared view."""

    kind: ClassVar[str] = "mdt"
    closes_when_empty: ClassVar[bool] = False

    @property
    def events_kept(self) -> int | None:
        return MDT_EVENTS_KEPT

    async def session(self, store: Store, room: Room) -> Any | None:
        sessions = getattr(store, "mdt", None)  # the MDT store (server/store/mdt.py)
        return await sessions.get(room.ref) if sessions is not None and room.ref else None

    async def may_join(self, store: Store, room: Room, who: Principal, *, member: bool,
                       invited: bool) -> None:
        session = await self.session(store, room)
        if session is not None and session.state in MDT_CLOSED_STATES:
            raise NotFound("no such open room")
        allowed = session is not None and bool(await _value(session.may_join(who)))
        access.room_join(who, self.kind, member=member, invited=invited or allowed)

    async def may_invite(self, store: Store, room: Room, who: Principal) -> None:
        access.room_invite(who, self.kind, coordinator=await self.is_coordinator(store, room, who))

    async def is_coordinator(self, store: Store, room: Room, who: Principal) -> bool:
        session = await self.session(store, room)
        return access.room_coordinator(who, self.kind,
                                       session.coordinator if session is not None else "")

    async def may_present(self, store: Store, room: Room, who: Principal) -> None:
        access.room_present(who, self.kind)

    async def describe(self, store: Store, room: Room, who: Principal) -> dict[str, Any]:
        session = await self.session(store, room)
        return {"mdt": await _value(session.public(who)) if session is not None
                else {"id": room.ref}}

    async def joined(self, store: Store, room: Room, who: Principal, *, first: bool) -> None:
        # The session's coordinator and experts hold their grants from the MDT's scheduling; a
        # coordinator standing in for another gets the same on joining (server/mdt/service.py).
        session = await self.session(store, room)
        if session is not None and access.mdt_join_needs_grant(who, session):
            from server.mdt.service import grant_session

            await grant_session(store, session, [who.username], time.time())

    async def left(self, store: Store, room: Room, username: str) -> None:
        return None

    async def invited(self, store: Store, room: Room, username: str, *, by: str) -> None:
        return None  # grants come with the session's invitations (server/mdt/)

    async def closed(self, store: Store, room: Room, reason: str) -> None:
        return None  # the MDT's domain closed it (concluded, cancelled)

    def audit_fields(self, room: Room, described: dict[str, Any]) -> dict[str, Any]:
        return {"mdt": room.ref or None}


async def _value(result: Any) -> Any:
    """The MDT session's methods may be plain or coroutines: their value either way."""
    return await result if inspect.isawaitable(result) else result


POLICIES: dict[str, RoomPolicy] = {"consult": ConsultPolicy(), "mdt": MdtPolicy()}


def policy(kind: str) -> RoomPolicy:
    return POLICIES[kind]


def mdt_room_id(mdt_id: str) -> str:
    return MDT_ROOM_PREFIX + mdt_id


def mdt_of_room(room_id: str) -> str | None:
    """The MDT session a room id names (`mdt-<id>`), if any."""
    return room_id[len(MDT_ROOM_PREFIX):] if room_id.startswith(MDT_ROOM_PREFIX) else None

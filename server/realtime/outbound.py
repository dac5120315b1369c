"""Every message the server sends on the page WebSocket: one model per `type`.

The inbound side is `server/realtime/messages.py`; docs/signaling.md's "Server → client" table
is checked against `CATALOGUE` (tests/unit/test_signaling_doc.py), and a test fails on any
`{"type": "…"}` literal in server/ that is not catalogued. Adding an outbound type: a model
here (fields in the order the doc lists them), a row in the doc's table.

`Out.to_json()` is the wire form: every field, except those in `OMIT_IF_NONE` when they are
None (`ref` of a reply, the `reason` of a participant event that has none, …).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Json = dict[str, Any]


class Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()
    type: str
    # The client's `id` of the message this answers, when it gave one.
    ref: str | None = None

    def to_json(self) -> Json:
        data = self.model_dump(by_alias=True)
        for name in self.OMIT_IF_NONE | {"ref"}:
            if data.get(name) is None:
                data.pop(name, None)
        return data


# the socket ----------------------------------------------------------------------------------
class Ready(Out):
    type: Literal["ready"] = "ready"
    user: str
    role: str


class Pong(Out):
    type: Literal["pong"] = "pong"


class Error(Out):
    OMIT_IF_NONE = frozenset({"details"})
    type: Literal["error"] = "error"
    code: str
    message: str
    details: Json | None = None


# consults ------------------------------------------------------------------------------------
class ConsultCreated(Out):
    type: Literal["consult.created"] = "consult.created"
    consult: Json


class ConsultRinging(Out):
    OMIT_IF_NONE = frozenset({"escalation"})
    type: Literal["consult.ringing"] = "consult.ringing"
    consult: Json
    # Rung again by the escalation of an unanswered consult (server/clinical/alerts.py): 1, 2.
    escalation: int | None = None


class ConsultRequested(Out):
    type: Literal["consult.requested"] = "consult.requested"
    consult: Json


class ConsultAccepted(Out):
    type: Literal["consult.accepted"] = "consult.accepted"
    consult: Json


class ConsultCancelled(Out):
    type: Literal["consult.cancelled"] = "consult.cancelled"
    consult_id: str
    consult: Json


class ConsultTaken(Out):
    type: Literal["consult.taken"] = "consult.taken"
    consult_id: str
    by: str


class ConsultUnanswered(Out):
    type: Literal["consult.unanswered"] = "consult.unanswered"
    consult_id: str
    consult: Json
    ring_timeout_s: float


class Departments(Out):
    type: Literal["departments"] = "departments"
    departments: list[Json]


# rooms ---------------------------------------------------------------------------------------
class RoomState(Out):
    """What a joining page needs at once. Kind-specific parts: `consult` (a consult room; None
    otherwise), and for an MDT room `mdt`, `view`, `current_case` and `last_event_id`."""

    OMIT_IF_NONE = frozenset({"mdt", "view", "last_event_id", "current_case"})
    type: Literal["room.state"] = "room.state"
    room_id: str
    kind: str
    consult: Json | None = None
    participants: list[Json]
    ice_servers: list[Json]
    grace_s: float
    mdt: Json | None = None
    view: Json | None = None
    current_case: str | None = None
    last_event_id: str | None = None


class RoomParticipant(Out):
    OMIT_IF_NONE = frozenset({"reason"})
    type: Literal["room.participant"] = "room.participant"
    room_id: str
    event: str
    participant: Json
    event_id: str
    reason: str | None = None


class RoomEvents(Out):
    type: Literal["room.events"] = "room.events"
    room_id: str
    events: list[Json]
    more: bool = False  # another room.events follows with the next page


class RoomEvent(Out):
    type: Literal["room.event"] = "room.event"
    room_id: str
    event: Json


class RoomInvited(Out):
    OMIT_IF_NONE = frozenset({"mdt"})
    type: Literal["room.invited"] = "room.invited"
    room_id: str
    sender: str = Field(alias="from")  # `from` on the wire (a Python keyword)
    kind: str = "consult"
    consult: Json | None = None
    mdt: Json | None = None


class RoomInviteSent(Out):
    type: Literal["room.invite.sent"] = "room.invite.sent"
    room_id: str


class RoomReplaced(Out):
    type: Literal["room.replaced"] = "room.replaced"
    room_id: str


class RoomLeft(Out):
    type: Literal["room.left"] = "room.left"
    room_id: str


class RoomClosed(Out):
    type: Literal["room.closed"] = "room.closed"
    room_id: str
    reason: str


class RtcOffer(Out):
    type: Literal["rtc.offer"] = "rtc.offer"
    room_id: str
    sdp: str


class RtcState(Out):
    OMIT_IF_NONE = frozenset({"reason", "advice"})
    type: Literal["rtc.state"] = "rtc.state"
    room_id: str
    state: str
    reason: str | None = None
    advice: str | None = None


# notifications (server/notifications.py) -----------------------------------------------------
class NotificationsUnread(Out):
    type: Literal["notifications.unread"] = "notifications.unread"
    count: int
    last_id: str


class Notification(Out):
    type: Literal["notification"] = "notification"
    notification: Json
    unread: int


class Notifications(Out):
    type: Literal["notifications"] = "notifications"
    items: list[Json]


# live rooms (MDT): shared view, control, pointer ---------------------------------------------
class ViewStateMsg(Out):
    """Published by the view CAS script itself (server/store/room_views.py), so its order on
    the room channel is the order of the versions."""

    type: Literal["view.state"] = "view.state"
    room_id: str
    version: int
    presenter: str | None
    state: Json | None
    at: float


class ControlChanged(Out):
    type: Literal["control.changed"] = "control.changed"
    room_id: str
    presenter: str | None
    by: str
    version: int


class ControlRequested(Out):
    type: Literal["control.requested"] = "control.requested"
    room_id: str
    by: str


class Pointer(Out):
    type: Literal["pointer"] = "pointer"
    room_id: str
    by: str
    x: float
    y: float
    sop_instance_uid: str
    frame: int


class ChatSent(Out):
    type: Literal["chat.sent"] = "chat.sent"
    room_id: str
    event_id: str


class RoomShared(Out):
    type: Literal["room.shared"] = "room.shared"
    room_id: str
    event_id: str


# reading worklist, critical alerts, consult escalation (server/clinical/) ---------------------
class EcgStored(Out):
    """New ECG instances of a clinic's upload: its pages (the kiosk's in-call ECG list) fetch
    the list again through QIDO, where access.py decides; only ids travel."""

    type: Literal["ecg.stored"] = "ecg.stored"
    clinic: str
    instances: list[Json]  # [{study_uid, series_uid, sop_instance_uid}]


class WorklistItem(Out):
    type: Literal["worklist.item"] = "worklist.item"
    action: str
    by: str
    item: Json


class AlertsOpen(Out):
    type: Literal["alerts.open"] = "alerts.open"
    alerts: list[Json]


class AlertRaised(Out):
    type: Literal["alert.raised"] = "alert.raised"
    alert: Json
    step: Json


class AlertEscalated(AlertRaised):
    type: Literal["alert.escalated"] = "alert.escalated"  # type: ignore[assignment]


class AlertAcknowledged(AlertRaised):
    type: Literal["alert.acknowledged"] = "alert.acknowledged"  # type: ignore[assignment]


class AlertHandled(AlertRaised):
    type: Literal["alert.handled"] = "alert.handled"  # type: ignore[assignment]


class ConsultEscalated(Out):
    type: Literal["consult.escalated"] = "consult.escalated"
    consult_id: str
    level: int
    to: str


ALERT_MESSAGES: dict[str, type[AlertRaised]] = {
    c.model_fields["type"].default: c
    for c in (AlertRaised, AlertEscalated, AlertAcknowledged, AlertHandled)}


def _catalogue() -> dict[str, type[Out]]:
    found: dict[str, type[Out]] = {}
    pending = list(Out.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        found[cls.model_fields["type"].default] = cls
    return dict(sorted(found.items()))


# type -> model, every outbound type.
CATALOGUE: dict[str, type[Out]] = _catalogue()


def wire_fields(cls: type[Out]) -> list[str]:
    """A model's field names as sent (aliases applied), `type` and `ref` left out."""
    return [f.alias or name for name, f in cls.model_fields.items() if name not in ("type", "ref")]


def error(code: str, message: str, ref: str | None = None, details: Json | None = None) -> Json:
    return Error(code=code, message=message, ref=ref or None, details=details or None).to_json()

"""Signaling messages on the page WebSocket: every inbound message is validated here.

One JSON object per WebSocket text message, with a `type`. A client may add `id`; replies and
errors about that message carry it back as `ref`. See docs/signaling.md.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from media.imaging.window import PS3_18_FUNCTIONS
from server.errors import InvalidMessage
from server.realtime.outbound import error as outbound_error
from server.store.consults import Urgency

MAX_MESSAGE_BYTES = 256 * 1024
# No ':' (nor anything else outside this set): an ID becomes part of Redis key names, and a ':'
# could address a key of another kind ("radiology:ringing" reached a sorted set as a hash).
_ID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
_UID = Annotated[str, Field(max_length=64, pattern=r"^$|^[0-9]+(\.[0-9]+)*$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None = Field(default=None, max_length=64)


class Auth(_Message):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


class Ping(_Message):
    type: Literal["ping"]


class ConsultStart(_Message):
    type: Literal["consult.start"]
    department: _ID
    urgency: Urgency = Urgency.ROUTINE
    question: str = Field(min_length=1, max_length=500)
    patient_name: str = Field(default="", max_length=64)
    patient_id: str = Field(default="", max_length=64)
    study_uid: _UID = ""
    # With nobody online: leave the request for the department (state `requested`, no ringing
    # timeout) instead of being told `no_expert_online`.
    leave_request: bool = False
    # The attached study's patient is not the one named: the doctor has seen the warning and
    # calls anyway (audited; the expert is shown a warning banner).
    confirm_patient_mismatch: bool = False


class ConsultCancel(_Message):
    type: Literal["consult.cancel"]
    consult_id: _ID


class ConsultAccept(_Message):
    type: Literal["consult.accept"]
    consult_id: _ID


class RoomJoin(_Message):
    type: Literal["room.join"]
    room_id: _ID
    # A rejoining page passes the last room event it saw and gets what it missed.
    # A Redis stream ID: two 64-bit numbers in ASCII digits ("\d" would admit Unicode digits,
    # and 20 digits may overflow; either reached XRANGE as a Redis error).
    last_event_id: str | None = Field(
        default=None, max_length=39, pattern=r"^[0-9]{1,19}-[0-9]{1,19}$"
    )


class RoomLeave(_Message):
    type: Literal["room.leave"]
    room_id: _ID
    # Told to the others: a hang-up, or a kiosk signing out mid-call.
    reason: Literal["hung_up", "signed_out"] = "hung_up"


class RoomInvite(_Message):
    type: Literal["room.invite"]
    room_id: _ID
    username: _ID | None = None
    department: _ID | None = None

    @model_validator(mode="after")
    def _one_invitee(self) -> RoomInvite:
        if (self.username is None) == (self.department is None):
            raise ValueError("give exactly one of username or department")
        return self


class RtcAnswer(_Message):
    type: Literal["rtc.answer"]
    room_id: _ID
    sdp: str = Field(min_length=10, max_length=128 * 1024)


class IceCandidate(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    candidate: str = Field(max_length=1024)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)


class RtcCandidate(_Message):
    type: Literal["rtc.candidate"]
    room_id: _ID
    candidate: IceCandidate | None = None  # None: end of candidates


_STREAM_ID = Annotated[str, Field(max_length=39, pattern=r"^[0-9]{1,19}-[0-9]{1,19}$|^0$")]


class NotificationsSince(_Message):
    """A page that (re)connected asks for the notifications after the last one it saw."""

    type: Literal["notifications.since"]
    after: _STREAM_ID = "0"
    limit: int = Field(default=50, ge=1, le=200)


# live rooms (MDT): the shared view (docs/signaling.md, "MDT rooms") --------------------------
_REQUIRED_UID = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]


class _Strict(BaseModel):
    # Every key present (no defaults), nothing else, no NaN or infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _voi_function(value: object) -> object:
    """PS3.18's spelling of the window function (linear, linear-exact, sigmoid: the rendered
    resources' `window` parameter) is taken as the VOI LUT Function's defined term the room
    shares, so a client speaking DICOMweb is not refused; anything else is left to fail."""
    return PS3_18_FUNCTIONS.get(value, value) if isinstance(value, str) else value


class Window(_Strict):
    center: float = Field(ge=-1e7, le=1e7)
    width: float = Field(gt=0, le=1e7)
    function: Annotated[Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"],
                        BeforeValidator(_voi_function)]


class Pan(_Strict):
    x: float = Field(ge=-10, le=10)  # fractions of the viewport
    y: float = Field(ge=-10, le=10)


class Cine(_Strict):
    playing: bool
    fps: float = Field(ge=1, le=60)


# A DICOM UID as PS3.5 §9.1 spells it: digit components without leading zeros, ≤ 64 characters.
_DICOM_UID = Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")]
# The standard 12 leads, spelled as the viewer's lead names (media/ecg/synthetic.LEADS).
Lead = Literal["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class EcgView(_Strict):
    """The ECG a presenter shows (issue 11): which instance, and how it is drawn — the paper's
    gain and speed of client_web/js/components/ecg/paper.js, and the single-lead zoom."""

    study_uid: _DICOM_UID
    series_uid: _DICOM_UID
    sop_instance_uid: _DICOM_UID
    gain: Literal[5, 10, 20]  # mm/mV
    speed: Literal[25, 50]  # mm/s
    lead: Lead | None  # one lead zoomed; null: the 3 × 4 layout and the rhythm strip


# The image part of a ViewState: all of it or (only while the room shows an ECG) none of it.
IMAGE_KEYS = ("study_uid", "series_uid", "sop_instance_uid", "frame", "window", "zoom", "pan",
              "rotation", "flip_h", "flip_v", "invert", "cine")


class ViewState(_Strict):
    """What a presenter shows; zoom and pan relative to the viewport, so screens of
    different sizes agree (CONTRACTS §2). While the ECG is shown the image keys keep the image
    state, so switching back to the images restores it (and the ECG member stays while the
    images are shown, for switching back to the ECG). A room whose agenda has no images (a
    cardiology MDT of ECGs only) shows the ECG with no image part at all: the image keys are
    then all absent — never some of them, and never while `showing` is "images"."""

    study_uid: _REQUIRED_UID | None = None
    series_uid: _REQUIRED_UID | None = None
    sop_instance_uid: _REQUIRED_UID | None = None
    frame: int | None = Field(default=None, ge=1, le=100_000)
    window: Window | None = None
    zoom: float | None = Field(default=None, ge=0.05, le=40)  # 1 = fit
    pan: Pan | None = None
    rotation: Literal[0, 90, 180, 270] | None = None
    flip_h: bool | None = None
    flip_v: bool | None = None
    invert: bool | None = None
    cine: Cine | None = None
    # What the room looks at; a state without these two (a page of before the ECG) shows images.
    showing: Literal["images", "ecg"] = "images"
    ecg: EcgView | None = None

    @model_validator(mode="after")
    def _parts_to_show(self) -> ViewState:
        missing = [k for k in IMAGE_KEYS if getattr(self, k) is None]
        if missing and len(missing) < len(IMAGE_KEYS):
            raise ValueError(f"the image part is all or nothing: {', '.join(missing)} missing")
        if self.showing == "images" and missing:
            raise ValueError("showing the images needs the image keys")
        if self.showing == "ecg" and self.ecg is None:
            raise ValueError("showing the ECG needs the ecg member")
        return self

    @property
    def has_images(self) -> bool:
        return self.study_uid is not None

    def wire(self) -> dict[str, Any]:
        """The state as stored and sent: without an image part when there is none (its keys
        absent, not null: a follower's page reads "no images", not an image state of nulls)."""
        return self.model_dump(exclude=None if self.has_images else set(IMAGE_KEYS))


class ViewUpdate(_Message):
    type: Literal["view.update"]
    room_id: _ID
    base_version: int = Field(ge=0, le=2**53)
    state: ViewState


class ControlTake(_Message):
    type: Literal["control.take"]
    room_id: _ID


class ControlRequest(_Message):
    type: Literal["control.request"]
    room_id: _ID


class ControlHandover(_Message):
    type: Literal["control.handover"]
    room_id: _ID
    to: _ID


class ControlRelease(_Message):
    type: Literal["control.release"]
    room_id: _ID


class PointerMove(_Message):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    type: Literal["pointer"]
    room_id: _ID
    x: float = Field(ge=-1e5, le=1e5)  # image pixel column (float)
    y: float = Field(ge=-1e5, le=1e5)  # image pixel row
    sop_instance_uid: _REQUIRED_UID
    frame: int = Field(default=1, ge=1, le=100_000)


class ChatSend(_Message):
    type: Literal["chat.send"]
    room_id: _ID
    text: str = Field(min_length=1, max_length=2000)


class RoomShare(_Message):
    """The clinic's doctor sends one of their clinic's ECGs into a consult call."""

    type: Literal["room.share"]
    room_id: _ID
    study_uid: _REQUIRED_UID
    series_uid: _REQUIRED_UID
    sop_instance_uid: _REQUIRED_UID


class AgendaCurrent(_Message):
    type: Literal["agenda.current"]
    room_id: _ID
    case_id: _ID


_MODELS = (Auth, Ping, ConsultStart, ConsultCancel, ConsultAccept, RoomJoin, RoomLeave,
           RoomInvite, RtcAnswer, RtcCandidate, NotificationsSince, ViewUpdate, ControlTake,
           ControlRequest, ControlHandover, ControlRelease, PointerMove, ChatSend,
           AgendaCurrent, RoomShare)
Inbound = Annotated[
    Auth | Ping | ConsultStart | ConsultCancel | ConsultAccept | RoomJoin | RoomLeave
    | RoomInvite | RtcAnswer | RtcCandidate | NotificationsSince | ViewUpdate | ControlTake
    | ControlRequest | ControlHandover | ControlRelease | PointerMove | ChatSend
    | AgendaCurrent | RoomShare,
    Field(discriminator="type"),
]
_INBOUND: TypeAdapter[Inbound] = TypeAdapter(Inbound)
TYPES = sorted(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in _MODELS
)
# Sent many times a second by a presenter: their own budget (server/realtime/websocket.py).
LIVE_TYPES = frozenset({"view.update", "pointer"})


def parse(text: str | bytes) -> Inbound:
    """Validate one inbound message; InvalidMessage says exactly what is wrong."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidMessage(f"not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise InvalidMessage("the message nests too deeply") from exc
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InvalidMessage("a number in the message is too long") from exc
    if not isinstance(data, dict):
        raise InvalidMessage("a message is a JSON object with a 'type'")
    if data.get("type") not in TYPES:
        raise InvalidMessage(
            f"unknown message type {data.get('type')!r}; known: {', '.join(TYPES)}",
            ref=data.get("id") if isinstance(data.get("id"), str) else None,
        )
    try:
        return _INBOUND.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or '(message)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidMessage(
            f"invalid {data['type']} message: {problems}",
            ref=data.get("id") if isinstance(data.get("id"), str) else None,
        ) from exc


def error(code: str, message: str, ref: str | None = None, details: dict | None = None) -> dict:
    """The `error` message (its model is server/realtime/outbound.py's `Error`)."""
    return outbound_error(code, message, ref, details)

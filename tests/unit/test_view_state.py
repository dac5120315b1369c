"""The MDT room's ViewState with its ECG member (issue 11 item 6) through the one inbound
parser: strict and bounded (DICOM UIDs, the enumerated gains and speeds, the 12 lead names),
every refusal an `invalid_message` naming the field; the image keys stay beside the ECG, or (an
agenda of ECGs only) are all absent while the ECG is shown — never some of them, never while the
images are shown."""

from __future__ import annotations

import json

import pytest

from server.errors import InvalidMessage
from server.realtime import messages as m

UID = "1.2.826.0.1.3680043.8.498.12"


def image() -> dict:
    return {
        "study_uid": UID, "series_uid": UID + ".1", "sop_instance_uid": UID + ".1.1",
        "frame": 1, "window": {"center": 40.0, "width": 400.0, "function": "LINEAR"},
        "zoom": 1.0, "pan": {"x": 0.0, "y": 0.0}, "rotation": 0, "flip_h": False,
        "flip_v": False, "invert": False, "cine": {"playing": False, "fps": 10},
    }


def ecg(**over) -> dict:
    base = {"study_uid": UID + ".2", "series_uid": UID + ".2.1",
            "sop_instance_uid": UID + ".2.1.1", "gain": 20, "speed": 25, "lead": "V2"}
    return {**base, **over}


def update(state: dict) -> str:
    return json.dumps({"type": "view.update", "room_id": "mdt-a", "base_version": 3,
                       "state": state, "id": "u"})


def refused(state: dict) -> str:
    with pytest.raises(InvalidMessage) as err:
        m.parse(update(state))
    assert err.value.code == "invalid_message" and err.value.details["ref"] == "u"
    return err.value.message


def test_an_image_state_of_before_the_ecg_still_parses_and_shows_the_images():
    msg = m.parse(update(image()))
    assert isinstance(msg, m.ViewUpdate)
    assert msg.state.showing == "images" and msg.state.ecg is None
    # what the room stores and sends has every key
    dumped = msg.state.model_dump()
    assert dumped["showing"] == "images" and dumped["ecg"] is None


def test_the_ecg_member_keeps_the_image_state_beside_it():
    msg = m.parse(update({**image(), "showing": "ecg", "ecg": ecg()}))
    state = msg.state.model_dump()
    assert state["showing"] == "ecg"
    assert state["ecg"] == ecg()
    assert {k: state[k] for k in image()} == image()
    # back to the images: the ECG member may stay (switching back restores it too)
    back = m.parse(update({**image(), "showing": "images", "ecg": ecg(lead=None, gain=5)}))
    assert back.state.showing == "images" and back.state.ecg is not None
    assert back.state.ecg.lead is None and back.state.ecg.gain == 5


@pytest.mark.parametrize("lead", ["I", "II", "III", "aVR", "aVL", "aVF",
                                  "V1", "V2", "V3", "V4", "V5", "V6", None])
def test_every_lead_of_the_twelve_or_none(lead):
    assert m.parse(update({**image(), "showing": "ecg", "ecg": ecg(lead=lead)})).state.ecg.lead \
        == lead


@pytest.mark.parametrize(("over", "field"), [
    ({"gain": 15}, "gain"),
    ({"gain": "10"}, "gain"),
    ({"gain": True}, "gain"),
    ({"gain": 10.5}, "gain"),
    ({"speed": 12.5}, "speed"),
    ({"speed": 100}, "speed"),
    ({"speed": None}, "speed"),
    ({"lead": "avr"}, "lead"),  # the 12-lead spelling, exactly
    ({"lead": "V7"}, "lead"),
    ({"lead": "Lead II"}, "lead"),
    ({"lead": ""}, "lead"),
    ({"lead": 2}, "lead"),
    ({"study_uid": "1.2.03"}, "study_uid"),  # a leading zero is no DICOM UID
    ({"study_uid": "1..2"}, "study_uid"),
    ({"study_uid": ".1.2"}, "study_uid"),
    ({"series_uid": "1.2.3\n"}, "series_uid"),
    ({"series_uid": "1.2.x"}, "series_uid"),
    ({"sop_instance_uid": "1." + "2" * 63}, "sop_instance_uid"),  # 65 characters
    ({"sop_instance_uid": ""}, "sop_instance_uid"),
    ({"sop_instance_uid": "１.２"}, "sop_instance_uid"),  # full-width digits
    ({"extra": 1}, "extra"),
])
def test_a_bad_ecg_member_is_refused_naming_the_field(over, field):
    message = refused({**image(), "showing": "ecg", "ecg": ecg(**over)})
    assert message.startswith("invalid view.update message")
    assert f"state.ecg.{field}" in message


@pytest.mark.parametrize("missing", ["study_uid", "series_uid", "sop_instance_uid", "gain",
                                     "speed", "lead"])
def test_every_key_of_the_ecg_member_is_required(missing):
    member = ecg()
    del member[missing]
    assert f"state.ecg.{missing}" in refused({**image(), "showing": "ecg", "ecg": member})


def test_showing_the_ecg_needs_one_and_only_the_two_views_exist():
    assert "needs the ecg member" in refused({**image(), "showing": "ecg"})
    assert "needs the ecg member" in refused({**image(), "showing": "ecg", "ecg": None})
    assert "state.showing" in refused({**image(), "showing": "video", "ecg": ecg()})
    assert "state.ecg" in refused({**image(), "showing": "ecg", "ecg": [ecg()]})


def test_the_image_keys_are_still_required_while_the_ecg_is_shown():
    state = {**image(), "showing": "ecg", "ecg": ecg()}
    del state["sop_instance_uid"]
    assert "sop_instance_uid missing" in refused(state)


def test_an_ecg_only_room_shows_the_ecg_with_no_image_part():
    msg = m.parse(update({"showing": "ecg", "ecg": ecg()}))
    assert not msg.state.has_images
    # stored and sent without the image keys (absent, not null)
    assert msg.state.wire() == {"showing": "ecg", "ecg": ecg()}
    # an image state keeps every key when sent
    assert set(m.parse(update(image())).state.wire()) == {*image(), "showing", "ecg"}


def test_showing_the_images_still_needs_every_image_key():
    assert "showing the images needs the image keys" in refused({"showing": "images",
                                                                  "ecg": ecg()})
    assert "showing the images needs the image keys" in refused({"ecg": ecg()})  # the default
    assert "needs the ecg member" in refused({"showing": "ecg"})
    assert "invalid view.update message" in refused({})


@pytest.mark.parametrize("kept", sorted(m.IMAGE_KEYS))
def test_the_image_part_is_all_or_nothing_while_the_ecg_is_shown(kept):
    # one image key alone beside the ECG is a broken image state, not an ECG-only one
    state = {kept: image()[kept], "showing": "ecg", "ecg": ecg()}
    assert "the image part is all or nothing" in refused(state)


@pytest.mark.parametrize("key", sorted(m.IMAGE_KEYS))
def test_a_null_image_key_is_refused_while_the_images_are_shown(key):
    assert "image" in refused({**image(), key: None})


def test_the_largest_valid_ecg_state_is_small_and_bounded():
    longest = "1." + "2" * 62  # 64 characters: the longest UID
    state = {**image(), "showing": "ecg",
             "ecg": ecg(study_uid=longest, series_uid=longest, sop_instance_uid=longest,
                        lead="aVF")}
    msg = m.parse(update(state))
    assert len(msg.state.model_dump_json()) < 1024


@pytest.mark.parametrize(("sent", "shared"), [
    ("linear", "LINEAR"), ("linear-exact", "LINEAR_EXACT"), ("sigmoid", "SIGMOID"),
    ("LINEAR_EXACT", "LINEAR_EXACT")])
def test_the_window_function_in_either_standard_spelling(sent, shared):
    """PS3.18's `window` spelling (the rendered resources') or the VOI LUT Function's defined
    term: the room shares the defined term; other spellings are refused."""
    state = {**image(), "window": {"center": 40.0, "width": 400.0, "function": sent}}
    assert m.parse(update(state)).state.window.function == shared


@pytest.mark.parametrize("bad", ["linear_exact", "Linear", "LOG", "", 1])
def test_a_window_function_of_neither_standard_is_refused(bad):
    state = {**image(), "window": {"center": 40.0, "width": 400.0, "function": bad}}
    assert "function" in refused(state)

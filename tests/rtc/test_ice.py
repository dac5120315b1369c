"""TURN REST credentials and ICE server JSON."""

from __future__ import annotations

import base64
import hashlib

import pytest

from media.rtc.ice import IceServer, rtc_configuration, turn_rest_credentials


def _hmac_sha1(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 by hand, so the vector does not reuse the implementation's hmac module."""
    block = 64
    if len(key) > block:
        key = hashlib.sha1(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha1(bytes(k ^ 0x36 for k in key) + msg).digest()
    return hashlib.sha1(bytes(k ^ 0x5C for k in key) + inner).digest()


def test_turn_rest_credentials_known_vector() -> None:
    username, password = turn_rest_credentials(
        "north-county-turn-secret", "kiosk-7", ttl_s=3600, now=1_700_000_000.4
    )
    assert username == "1700003600:kiosk-7"
    # `openssl dgst -sha1 -hmac north-county-turn-secret -binary | base64` of the username.
    assert password == "QMa0YI7Kf+l6zPoz+27cuL2KUpA="
    assert password == base64.b64encode(
        _hmac_sha1(b"north-county-turn-secret", username.encode())
    ).decode()


def test_turn_rest_credentials_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        turn_rest_credentials("s", "a:b", 60)
    with pytest.raises(ValueError):
        turn_rest_credentials("s", "kiosk", 0)


def test_ice_server_json_round_trip_and_explicit_configuration() -> None:
    server = IceServer(urls=["turn:turn.example.cn:3478?transport=udp"], username="u",
                       credential="p")
    assert server.to_json() == {
        "urls": ["turn:turn.example.cn:3478?transport=udp"], "username": "u", "credential": "p",
    }
    assert IceServer.from_json(server.to_json()) == server
    assert IceServer(urls=["stun:a:3478"]).to_json() == {"urls": ["stun:a:3478"]}
    # An empty list must stay empty: aiortc would otherwise add Google's public STUN server.
    config = rtc_configuration([])
    assert config.iceServers == []
    assert config.bundlePolicy.value == "max-bundle"

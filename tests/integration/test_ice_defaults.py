"""ICE defaults: `make run` (HUIZHEN_HOST=127.0.0.1, nothing else set) gives a working local
call; a production listener ignores loopback candidates. Real aiortc peers through the SFU."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from server import appkeys
from server.config import Settings
from server.realtime.services import sfu_host_addresses
from tests.integration import test_consult_call as calls
from tests.integration.test_consult_call import _start_and_accept

call = calls.call


@pytest.fixture
def settings(settings):
    # What `make run` leaves: no HUIZHEN_ICE_HOST_ADDRESSES, no allowed networks, loopback host.
    assert settings.host == "127.0.0.1"
    return dataclasses.replace(settings, ice_host_addresses=None, ice_allowed_networks=None)


def test_host_addresses_follow_the_listen_address():
    assert "127.0.0.1" in sfu_host_addresses(Settings(host="127.0.0.1"))
    assert sfu_host_addresses(Settings(host="0.0.0.0")) is None  # aioice: every interface
    assert sfu_host_addresses(Settings(host="0.0.0.0", ice_host_addresses=("10.0.0.2",))) == [
        "10.0.0.2"]


async def test_make_run_defaults_give_a_working_local_call(call):
    doctor, expert, _ = await _start_and_accept(call)
    await doctor.sees("exp.zhang")
    await expert.sees("dr.li")


async def test_a_production_listener_ignores_loopback_candidates(aiohttp_client, settings, store,
                                                                 people):
    from server.app import create_app
    from server.store import Store
    from tests.integration.conftest import login
    from tests.integration.test_consult_call import Participant
    from tests.integration.ws_client import PageSocket

    prod = dataclasses.replace(settings, host="0.0.0.0", ice_host_addresses=("127.0.0.1",))
    client = await aiohttp_client(create_app(prod, Store.from_url(prod.redis_url)))
    pages = []
    for user in ("dr.li", "exp.zhang"):
        token = (await login(client, user))["Authorization"].split()[1]
        sock = PageSocket(await client.ws_connect("/api/ws"))
        await sock.send(type="auth", token=token)
        await sock.expect("ready")
        pages.append(Participant(user, sock))
    doctor, expert = pages
    await doctor.sock.send(type="consult.start", department="radiology", question="q")
    consult = (await doctor.sock.expect("consult.created"))["consult"]
    await expert.sock.send(type="consult.accept", consult_id=consult["id"])
    room_id = (await expert.sock.expect("consult.accepted"))["consult"]["room_id"]
    await doctor.sock.send(type="room.join", room_id=room_id)
    await doctor.sock.expect("room.state")
    sfu = client.app[appkeys.REALTIME].sfu
    room = sfu.room(room_id)
    async with asyncio.timeout(10):  # the doctor's page answers the SFU's offer
        while room.stats().get("dr.li", {}).get("answers", 0) < 1:
            await asyncio.sleep(0.02)
    assert room.stats()["dr.li"]["ignored_candidates"] >= 1
    assert "a=candidate:" not in room._participants["dr.li"].pc.remoteDescription.sdp
    for p in pages:
        await p.sock.close()
        await p.close()

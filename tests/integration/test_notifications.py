"""Notifications reach exactly their audience, live on every open page and again after a
reconnect (inbox stream + read marker), through the real WebSocket and HTTP API."""

from __future__ import annotations

import asyncio

import pytest

from server.notifications import Audience, Notifier
from server.store import Store
from server.store.directory import Role


class _Published:
    """Publishes through the real Redis like the hub does (the pages listen via the hub)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def publish(self, channel: str, message: dict) -> None:
        import json

        await self.store.redis.publish(channel, json.dumps(message, ensure_ascii=False))


@pytest.fixture
async def notifier(client, store):
    return Notifier(store, _Published(store))


async def test_audience_resolves_by_clinic_department_role(notifier, more_people):
    got = await notifier.recipients(Audience.of(clinics=["qingshui"]))
    assert got == ["dr.li"]
    got = await notifier.recipients(Audience.of(departments=["radiology"], users=["dr.wang"]))
    assert got == ["dr.wang", "exp.li", "exp.zhang"]
    assert await notifier.recipients(Audience.of(roles=[Role.COORDINATOR.value])) == [
        "coord.liu"]
    assert await notifier.recipients(Audience.of()) == []


async def test_member_index_is_rebuilt_for_older_data(store, people):
    from server.store import keys

    await store.redis.delete(keys.clinic_users("qingshui"), keys.role_users("expert"))
    assert await store.directory.members(clinics=["qingshui"]) == set()
    await store.directory.index_members()
    assert await store.directory.members(clinics=["qingshui"], roles=["expert"]) == {
        "dr.li", "exp.zhang"}


async def test_live_push_to_every_page_of_the_audience_only(notifier, page_sockets):
    li_kiosk = await page_sockets("dr.li")
    li_tab = await page_sockets("dr.li")
    wang = await page_sockets("dr.wang")
    sent = await notifier.notify(Audience.of(clinics=["qingshui"]), "report.final",
                                 {"report_id": "r1", "text": "报告已签发"})
    assert sent == ["dr.li"]
    for page in (li_kiosk, li_tab):
        msg = await page.expect("notification")
        assert msg["notification"]["kind"] == "report.final"
        assert msg["notification"]["data"] == {"report_id": "r1", "text": "报告已签发"}
        assert msg["unread"] == 1
    await notifier.notify(Audience.of(clinics=["hetang"]), "alert.raised", {"alert_id": "a"})
    got = await wang.expect("notification")
    assert got["notification"]["data"] == {"alert_id": "a"}
    # dr.li's pages saw nothing of hetang's: the next thing they get is their own second one.
    await notifier.notify(Audience.of(users=["dr.li"]), "mdt.invited", {"mdt_id": "m"})
    assert (await li_kiosk.expect("notification"))["notification"]["kind"] == "mdt.invited"


async def test_exclude_skips_the_author(notifier):
    sent = await notifier.notify(Audience.of(departments=["radiology"], users=["dr.li"]),
                                 "x", {}, exclude="exp.zhang")
    assert sent == ["dr.li"]


async def test_reconnecting_page_gets_what_it_missed(notifier, page_sockets, client, auth):
    page = await page_sockets("dr.li")
    await notifier.notify(Audience.of(users=["dr.li"]), "a", {"n": 1})
    first = (await page.expect("notification"))["notification"]
    await page.close()
    for n in (2, 3, 4):  # while the page is closed
        await notifier.notify(Audience.of(users=["dr.li"]), "a", {"n": n})
    again = await page_sockets("dr.li")
    unread = await again.expect("notifications.unread")
    assert unread["count"] == 4
    await again.send(type="notifications.since", after=first["id"], id="s")
    caught_up = await again.expect("notifications", ref="s")
    assert [i["data"]["n"] for i in caught_up["items"]] == [2, 3, 4]
    assert unread["last_id"] == caught_up["items"][-1]["id"]
    # The same over HTTP, and marking read moves the badge to zero on every page.
    headers = await auth("dr.li")
    resp = await client.get("/api/notifications", params={"after": first["id"]}, headers=headers)
    body = await resp.json()
    assert [i["data"]["n"] for i in body["notifications"]] == [2, 3, 4]
    assert body["unread"] == 4
    newest_first = await (await client.get("/api/notifications", headers=headers)).json()
    assert [i["data"]["n"] for i in newest_first["notifications"]] == [4, 3, 2, 1]
    resp = await client.post("/api/notifications/read",
                             json={"up_to": caught_up["items"][0]["id"]}, headers=headers)
    assert (await resp.json()) == {"unread": 2}
    # An older marker never moves it back.
    resp = await client.post("/api/notifications/read", json={"up_to": first["id"]},
                             headers=headers)
    assert (await resp.json()) == {"unread": 2}
    resp = await client.post("/api/notifications/read", json={"up_to": "+"}, headers=headers)
    assert (await resp.json()) == {"unread": 0}
    listed = await (await client.get("/api/notifications", headers=headers)).json()
    assert all(i["read"] for i in listed["notifications"])


async def test_one_inbox_each_and_bad_input_is_4xx(client, auth, notifier):
    await notifier.notify(Audience.of(users=["dr.wang"]), "secret", {"x": 1})
    mine = await (await client.get("/api/notifications", headers=await auth("dr.li"))).json()
    assert mine["notifications"] == [] and mine["unread"] == 0
    headers = await auth("dr.li")
    for params in ({"after": "1-2-3"}, {"after": "x"}, {"limit": "0"}, {"limit": "9999"}):
        resp = await client.get("/api/notifications", params=params, headers=headers)
        assert resp.status == 400, params
        assert "error" in await resp.json()
    for body in ({"up_to": "abc"}, {}, {"up_to": "1-1", "extra": 1}, [1]):
        resp = await client.post("/api/notifications/read", json=body, headers=headers)
        assert resp.status == 400, body
    assert (await client.get("/api/notifications")).status == 401


async def test_inbox_is_capped(notifier, store):
    from server.store.notifications import INBOX_KEPT

    for batch in range(26):
        await asyncio.gather(*(notifier.notify(Audience.of(users=["dr.li"]), "k", {"i": i})
                               for i in range(batch * 25, batch * 25 + 25)))
    count, last = await store.notifications.unread("dr.li")
    assert INBOX_KEPT <= count <= INBOX_KEPT + 150  # MAXLEN ~: trimmed in whole nodes
    assert last

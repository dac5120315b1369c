"""The call pages say why the server closed their WebSocket (here: too many pages open, 4409)
instead of a bare "offline"."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.browser.test_viewer import tid

pytestmark = pytest.mark.browser

# Opens `n` authenticated page WebSockets for `token` and resolves once each said `ready`.
OPEN_SOCKETS = """async ([token, n]) => {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  window.heldSockets = [];
  for (let i = 0; i < n; i++) {
    await new Promise((resolve, reject) => {
      const ws = new WebSocket(`${proto}//${location.host}/api/ws`);
      ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
      ws.onmessage = (ev) => { if (JSON.parse(ev.data).type === "ready") resolve(); };
      ws.onclose = (ev) => reject(new Error(`closed ${ev.code}`));
      window.heldSockets.push(ws);
    });
  }
  return window.heldSockets.length;
}"""


def _token(live_server, username: str) -> str:
    body = json.dumps({"username": username, "password": live_server.password}).encode()
    req = urllib.request.Request(f"{live_server.url}/api/auth/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["token"]


@pytest.mark.parametrize("locale, text", [
    ("en-US", "too many pages or devices"),
    ("zh-CN", "打开的页面或设备过多"),
])
def test_kiosk_says_too_many_pages_when_the_server_refuses_its_socket(
    new_probe, live_server, locale, text
):
    # Every connection this account may hold (HUIZHEN_WS_MAX_PER_USER, 10) is taken elsewhere.
    holder = new_probe()
    holder.page.goto("/ui/404-nothing-here")
    assert holder.page.evaluate(OPEN_SOCKETS, [_token(live_server, "dr.wang"), 10]) == 10

    kiosk = new_probe(locale=locale)
    page = kiosk.page
    page.goto("/ui/kiosk.html?video=320x240")
    tid(page, "login-username").fill("dr.wang")
    tid(page, "login-password").fill(live_server.password)
    tid(page, "login-submit").click()
    pill = tid(page, "net-status")
    pill.and_(page.locator(f"text={text}")).wait_for()
    assert pill.get_attribute("data-state") != "open"

    # One page closed elsewhere: the kiosk's next retry gets in, and the reason goes away.
    holder.page.evaluate("() => window.heldSockets.forEach((ws) => ws.close())")
    pill.and_(page.locator("[data-state=open]")).wait_for(timeout=40_000)
    assert text not in pill.inner_text()

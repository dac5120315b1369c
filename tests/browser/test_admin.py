"""The admin page in a real chromium: an admin lands there, adds an account, disables it (and
the account can no longer sign in), registers a kiosk and revokes it — in English and Chinese."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_viewer import HTTP_ERROR_LOG, sign_in, tid

pytestmark = pytest.mark.browser


def _login(live_server, username: str, password: str, device_token: str | None = None) -> int:
    body = {"username": username, "password": password}
    if device_token:
        body["device_token"] = device_token
    req = urllib.request.Request(
        f"{live_server.url}/api/auth/login", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _row(page, testid: str, **data: str):
    attrs = "".join(f'[data-{k.replace("_", "-")}="{v}"]' for k, v in data.items())
    return page.locator(f'[data-testid="{testid}"]{attrs}')


def test_admin_adds_disables_and_revokes(new_probe, live_server):
    p = new_probe()
    page = p.page
    sign_in(page, "admin", live_server.password)
    page.wait_for_url(re.compile(r"/ui/admin\.html$"))  # the admin lands on the admin page
    tid(page, "admin-page").wait_for()
    assert tid(page, "admin-forbidden").is_hidden()
    _row(page, "user-row", username="dr.li").wait_for()
    assert _row(page, "user-row", username="admin").locator(
        '[data-testid="user-disable"]').count() == 0  # no disabling oneself

    # add a doctor of clinic qingshui
    tid(page, "user-add-username").fill("dr.pagetest")
    tid(page, "user-add-display-name").fill("页面测试医生")
    tid(page, "user-add-role").select_option("doctor")
    tid(page, "user-add-clinic").select_option("qingshui")
    tid(page, "user-add-password").fill("page-test-pw-1")
    tid(page, "user-add-submit").click()
    row = _row(page, "user-row", username="dr.pagetest")
    row.wait_for()
    assert "dr.pagetest" in tid(page, "admin-notice").inner_text()
    assert row.locator('[data-testid="user-state"]').get_attribute("data-state") == "enabled"
    assert _login(live_server, "dr.pagetest", "page-test-pw-1") == 200

    # disable them: they can no longer sign in, on the page or over HTTP
    row.locator('[data-testid="user-disable"]').click()
    _row(page, "user-row", username="dr.pagetest", state="disabled").wait_for()
    assert "disabled" in tid(page, "admin-notice").inner_text()
    assert _login(live_server, "dr.pagetest", "page-test-pw-1") == 401
    other = new_probe().page
    sign_in(other, "dr.pagetest", "page-test-pw-1")
    tid(other, "login-error").wait_for()
    assert tid(other, "login-error").get_attribute("data-code") == "invalid_credentials"

    # register a kiosk, sign in with its token, revoke it
    tid(page, "device-add-name").fill("Page test kiosk")
    tid(page, "device-add-clinic").select_option("qingshui")
    tid(page, "device-add-submit").click()
    tid(page, "device-token-box").wait_for()
    link = tid(page, "device-token").inner_text()
    token = link.split("device_token=", 1)[1]
    assert token.startswith("hzd_")
    assert _login(live_server, "dr.li", live_server.password, token) == 200
    device_row = _row(page, "device-row", name="Page test kiosk")
    device_row.locator('[data-testid="device-revoke"]').click()
    device_row.locator('[data-testid="device-revoke-confirm"]').click()
    _row(page, "device-row", name="Page test kiosk", state="revoked").wait_for()
    assert _login(live_server, "dr.li", live_server.password, token) == 401
    # the demo kiosk is untouched
    assert _login(live_server, "dr.li", live_server.password,
                  live_server.kiosk_device_token()) == 200

    # a refused action shows the error code's text, not the server's English
    tid(page, "clinic-add-name").fill("Qingshui again")
    tid(page, "clinic-add-id").fill("qingshui")
    tid(page, "clinic-add-submit").click()
    tid(page, "admin-error").wait_for()
    assert tid(page, "admin-error").get_attribute("data-code") == "conflict"

    screenshot(page, "admin")
    # Chinese
    topbar_click(page, "lang-toggle")
    assert "账号" in page.locator("#users-heading").inner_text()
    assert tid(page, "user-state").first.inner_text() in ("正常", "已停用")
    assert "已吊销" in _row(page, "device-row", name="Page test kiosk").inner_text()
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_non_admins_are_told_the_page_is_not_theirs(new_probe, live_server):
    p = new_probe()
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    page.wait_for_url(re.compile(r"/ui/$"))
    tid(page, "user-name").wait_for()
    page.goto("/ui/admin.html")
    tid(page, "admin-forbidden").wait_for()
    assert tid(page, "admin-page").is_hidden()
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []

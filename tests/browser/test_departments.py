"""Departments show how many experts are online before calling (#8); with none online the kiosk
says so and offers another department or leaving a request."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_call import SMALL, no_errors, sign_in, tid

pytestmark = pytest.mark.browser


def has_departments_api(base_url: str, page) -> bool:
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('hz.session') || '{}').token")
    req = urllib.request.Request(
        f"{base_url}/api/departments", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5):
            return True
    except urllib.error.HTTPError as e:
        return e.code != 404


def online_text(page, dept: str) -> str:
    return tid(page, f"dept-{dept}").locator("[data-testid=dept-online]").inner_text()


def test_online_counts_none_online_and_leave_a_request(new_probe, live_server):
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    page = kiosk.page
    if not has_departments_api(live_server.url, page):
        pytest.skip("GET /api/departments is not on this server yet")
    # nobody of respiratory is online (the demo has no respiratory expert)
    tid(page, "dept-respiratory").locator("[data-testid=dept-online]").wait_for()
    assert online_text(page, "respiratory") == "no one online"
    # an expert signing in shows up live (the `departments` push)
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    page.wait_for_function(
        "() => { const b = document.querySelector('[data-testid=dept-radiology]');"
        " return b && Number(b.dataset.online) >= 1; }", timeout=15_000)
    assert "online" in online_text(page, "radiology")

    # choosing a department with nobody online says so and offers the way out
    tid(page, "dept-respiratory").click()
    tid(page, "dept-none").wait_for()
    assert "No Respiratory expert is online" in tid(page, "dept-none-text").inner_text()
    assert tid(page, "call-start").is_hidden()
    screenshot(page, "kiosk-none-online")
    tid(page, "consult-question").fill("咳嗽两周，请留言会诊")
    tid(page, "request-leave").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=notice]').textContent"
        ".includes('request was left')")
    # another department with someone online: Call is back
    tid(page, "dept-radiology").click()
    tid(page, "call-start").wait_for()
    assert tid(page, "dept-none").is_hidden()
    no_errors(kiosk, zhang)

"""The workflow pages link to each other from the top bar: an expert's workstation and a
doctor's study list reach the worklist and the critical-value register; the kiosk keeps its top
bar for the call."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import topbar_click
from tests.browser.test_call import SMALL, sign_in, tid

pytestmark = pytest.mark.browser


def test_expert_and_doctor_reach_worklist_and_register(new_probe, live_server):
    expert = new_probe()
    sign_in(expert, "/ui/expert.html", "exp.zhang", live_server.password)
    page = expert.page
    topbar_click(page, "nav-worklist")
    page.wait_for_url(re.compile(r"/ui/worklist\.html"))
    tid(page, "worklist-counts").wait_for()
    assert page.locator('[data-testid="nav-worklist"]').count() == 0  # not to the page it is on
    topbar_click(page, "nav-register")
    page.wait_for_url(re.compile(r"/ui/alerts\.html"))
    tid(page, "register-view").wait_for()

    doctor = new_probe(locale="zh-CN")
    dp = doctor.page
    dp.goto("/ui/index.html")
    tid(dp, "login-username").fill("dr.li")
    tid(dp, "login-password").fill(live_server.password)
    tid(dp, "login-submit").click()
    tid(dp, "logout").wait_for()
    tid(doctor.page, "nav-register").wait_for(state="attached")  # on the bar or in its menu
    if tid(doctor.page, "nav-register").inner_text() != "危急值登记":
        topbar_click(doctor.page, "lang-toggle")
    assert tid(doctor.page, "nav-register").inner_text() == "危急值登记"
    assert tid(doctor.page, "nav-worklist").get_attribute("href") == "worklist.html"

    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    tid(kiosk.page, "logout").wait_for()
    assert kiosk.page.locator('[data-testid="nav-worklist"]').count() == 0

"""An expert opening a study they hold no grant for: "no access — request emergency access"."""

from __future__ import annotations

import re

import pytest
from pydicom.uid import generate_uid

from tests.browser.conftest import topbar_click
from tests.browser.test_viewer import HTTP_ERROR_LOG, sign_in, tid, wait_shown, wait_text

pytestmark = pytest.mark.browser

# A demo study the demo grants no expert (server/demo/seed.py: pydicom samples get UIDs of their
# own, derived from their names).
UNGRANTED = generate_uid(entropy_srcs=["huizhen-demo-samples", "CT_small.dcm", "StudyInstanceUID"])


def test_expert_requests_emergency_access_with_a_reason(new_probe, live_server):
    p = new_probe(locale="zh-CN")
    page = p.page
    sign_in(page, "exp.chen", live_server.password)
    tid(page, "logout").wait_for()
    page.goto(f"/ui/viewer.html?study={UNGRANTED}")
    panel = tid(page, "break-glass-panel")
    panel.wait_for()
    assert "无权查看此检查" in panel.inner_text()
    topbar_click(page, "lang-toggle")
    wait_text(page, "break-glass-submit", "^Request emergency access$")
    assert "No access to this study" in panel.inner_text()
    # No reason: refused in the page, nothing sent.
    tid(page, "break-glass-submit").click()
    wait_text(page, "break-glass-error", re.escape("Please give a reason"))
    tid(page, "break-glass-reason").fill("browser test: suspected stroke, clinic unreachable")
    tid(page, "break-glass-submit").click()
    wait_shown(page, 1)  # the page reloaded under the one-hour grant and shows the image
    assert tid(page, "break-glass-panel").count() == 0
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_a_doctor_gets_no_emergency_access_offer(new_probe, live_server):
    p = new_probe(locale="en-US")
    page = p.page
    sign_in(page, "dr.wang", live_server.password)
    tid(page, "logout").wait_for()
    page.goto(f"/ui/viewer.html?study={UNGRANTED}")
    wait_text(page, "viewer-status", re.escape("Not found, or this account may not see it."))
    assert tid(page, "break-glass-panel").count() == 0
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []

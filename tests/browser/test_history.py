"""Consult history (#8): after a call, the doctor sees it in the kiosk's history panel and the
expert in the workstation's — time, patient, department, participants, duration, outcome."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import topbar_click
from tests.browser.test_call import SMALL, no_errors, sign_in, start_consult, tid

pytestmark = pytest.mark.browser


def has_history_api(page, base_url: str) -> bool:
    token = page.evaluate("() => JSON.parse(sessionStorage.getItem('hz.session') || '{}').token")
    req = urllib.request.Request(
        f"{base_url}/api/consults?limit=1", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            json.loads(r.read())
            return True
    except urllib.error.HTTPError as e:
        return e.code != 404


def test_history_lists_the_call_for_doctor_and_expert(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-ring").wait_for()
    tid(zhang.page, "consult-accept").click()
    kiosk.page.locator(
        '[data-testid=participant][data-participant="exp.zhang"][data-state=connected]'
    ).wait_for(timeout=20_000)
    tid(kiosk.page, "hang-up").click()
    tid(kiosk.page, "call-start").wait_for()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()

    topbar_click(kiosk.page, "history-open")
    tid(kiosk.page, "history-panel").wait_for()
    if not has_history_api(kiosk.page, live_server.url):
        tid(kiosk.page, "history-status").wait_for()
        assert "not available" in tid(kiosk.page, "history-status").inner_text()
        pytest.skip("GET /api/consults is not on this server yet")
    for page in (kiosk.page, zhang.page):
        if page is zhang.page:
            topbar_click(page, "history-open")
        row = page.locator('[data-testid=history-row]').filter(has_text="QS-2024-0815").first
        row.wait_for()
        assert "Radiology" in row.locator("[data-testid=history-department]").inner_text()
        who = row.locator("[data-testid=history-participants]").inner_text()
        assert "Dr. Li" in who and "Prof. Zhang" in who, who
        assert row.locator("[data-testid=history-duration]").inner_text() != "—"
        assert row.get_attribute("data-outcome") == "completed"
        tid(page, "history-close").click()
        tid(page, "history-panel").wait_for(state="hidden")
    no_errors(zhang, kiosk)

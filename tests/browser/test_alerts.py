"""The reading worklist and a critical alert in the browser: a doctor sends the demo CT for
reading, it appears live on the expert's worklist, the expert claims it and raises a critical
value; the kiosk rings until a doctor acknowledges with a read-back (a wrong one is refused and
it keeps ringing), the expert sees the acknowledgement live, the clinic records the action, and
the register shows the whole timeline."""

from __future__ import annotations

import json

import pytest

from server.demo.seed import DEMO_CT_STUDY_UID
from tests.browser.test_call import SMALL, no_errors, sign_in, tid

pytestmark = pytest.mark.browser

FINDING = "Serum potassium 6.9 mmol/L"


def _token(page) -> str:
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('hz.session') || '{}').token")


def _post(page, path: str, body: dict) -> dict:
    return page.evaluate(
        """async ([path, body, token]) => {
            const r = await fetch(path, {method: "POST", headers: {
                "Content-Type": "application/json", Authorization: `Bearer ${token}`},
                body: JSON.stringify(body)});
            return {status: r.status, body: await r.json()};
        }""", [path, body, _token(page)])


def test_kiosk_rings_until_a_doctor_acknowledges_with_a_read_back(new_probe, live_server):
    expert = new_probe()
    sign_in(expert, "/ui/worklist.html", "exp.zhang", live_server.password)
    tid(expert.page, "worklist-counts").wait_for()
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    desk = new_probe()
    sign_in(desk, "/ui/worklist.html", "dr.li", live_server.password)

    # The doctor sends the demo CT for reading; the expert's list shows it without a reload.
    form = tid(desk.page, "worklist-send-form")
    form.wait_for()
    tid(desk.page, "worklist-send-study").select_option(DEMO_CT_STUDY_UID)
    tid(desk.page, "worklist-send-department").select_option("radiology")
    tid(desk.page, "worklist-send-priority").select_option("emergency")
    tid(desk.page, "worklist-send-question").fill("胸痛，排除气胸 Chest pain")
    tid(desk.page, "worklist-send-submit").click()
    row = expert.page.locator(
        '[data-testid=worklist-row][data-priority=emergency][data-state=scheduled]').first
    row.wait_for(timeout=15_000)
    item_id = row.get_attribute("data-item-id")
    row.locator("[data-testid=worklist-claim]").click()
    expert.page.locator(
        f'[data-testid=worklist-row][data-item-id="{item_id}"][data-state=in_progress]'
    ).wait_for()
    # The clinic's page follows the state live too.
    desk.page.locator(
        f'[data-testid=worklist-row][data-item-id="{item_id}"][data-state=in_progress]'
    ).wait_for(timeout=15_000)

    # The expert raises a critical value on the request.
    raised = _post(expert.page, "/api/alerts",
                   {"item_id": item_id, "tier": "critical", "finding": FINDING})
    assert raised["status"] == 201, raised
    alert_id = raised["body"]["alert"]["id"]

    banner = tid(kiosk.page, "alert-banner")
    item = kiosk.page.locator(f'[data-testid=alert-item][data-alert-id="{alert_id}"]')
    item.wait_for(timeout=10_000)
    assert FINDING in item.locator("[data-testid=alert-finding]").inner_text()
    kiosk.page.locator("[data-testid=alert-banner][data-ringing='1']").wait_for()
    # It keeps ringing: the tone repeats.
    kiosk.page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=alert-banner]').dataset.beeps||0) >= 2",
        timeout=10_000)
    # Every page of the clinic has it, the worklist page too.
    desk.page.locator(f'[data-testid=alert-item][data-alert-id="{alert_id}"]').wait_for()

    # A read-back with the wrong value is refused; the kiosk still rings.
    item.locator("[data-testid=alert-readback]").fill("Serum potassium 5.9 mmol/L")
    item.locator("[data-testid=alert-ack]").click()
    error = item.locator("[data-testid=alert-error]")
    error.wait_for()
    assert error.get_attribute("data-code") == "read_back_mismatch"
    assert banner.get_attribute("data-ringing") == "1"

    item.locator("[data-testid=alert-readback]").fill("serum potassium 6.9 mmol/l")
    item.locator("[data-testid=alert-receiver]").fill("李医生")
    item.locator("[data-testid=alert-ack]").click()
    item.wait_for(state="detached")
    kiosk.page.locator("[data-testid=alert-banner][data-ringing='0']").wait_for()
    # The other page of the clinic stops ringing too.
    desk.page.locator(f'[data-testid=alert-item][data-alert-id="{alert_id}"]').wait_for(
        state="detached")

    # The raising expert sees the acknowledgement live, with the read-back.
    notice = expert.page.locator(
        f'[data-testid=alert-acked-notice][data-alert-id="{alert_id}"]')
    notice.wait_for(timeout=10_000)
    assert "李医生" in notice.inner_text() and "6.9" in notice.inner_text()

    # The clinic records the action taken.
    tid(kiosk.page, "alert-action").fill("Calcium gluconate given; transferred to county")
    tid(kiosk.page, "alert-action-submit").click()
    tid(kiosk.page, "alert-action-item").wait_for(state="detached")

    # The register (a coordinator) shows it handled, with its timeline; CSV exports.
    coord = new_probe()
    sign_in(coord, "/ui/alerts.html", "coord.liu", live_server.password)
    reg = coord.page.locator(f'[data-testid=register-row][data-alert-id="{alert_id}"]')
    reg.wait_for(timeout=10_000)
    assert reg.get_attribute("data-state") == "handled"
    steps = reg.locator("[data-testid=register-timeline] li")
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == [
        "raised", "acknowledged", "handled"]
    with coord.page.expect_download() as download:
        tid(coord.page, "register-csv").click()
    with open(download.value.path(), encoding="utf-8-sig") as fh:
        text = fh.read()
    assert alert_id in text and FINDING in text
    # A doctor of another clinic sees none of it.
    other = new_probe()
    sign_in(other, "/ui/alerts.html", "dr.wang", live_server.password)
    tid(other.page, "register-count").wait_for()
    other.page.wait_for_function(
        "() => document.querySelector('[data-testid=register-count]').textContent.length > 0")
    assert other.page.locator(f'[data-alert-id="{alert_id}"]').count() == 0
    got = json.loads(json.dumps(_post(other.page, f"/api/alerts/{alert_id}/acknowledge",
                                      {"read_back": FINDING})))
    assert got["status"] == 404
    no_errors(expert, kiosk, desk, coord, other)

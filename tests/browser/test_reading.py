"""The reading page (reading.html?request=…): the claim holder reads the study in the viewer,
writes the report (autosaved), marks a key image from the viewer, signs; the signed version is
listed and prints with the key image."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.browser.test_call import no_errors, sign_in, tid

pytestmark = pytest.mark.browser


def _api(base: str, path: str, token: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"{base}{path}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _login(base: str, user: str, password: str) -> str:
    req = urllib.request.Request(f"{base}/api/auth/login", method="POST",
                                 data=json.dumps({"username": user, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["token"]


def test_reading_page_writes_signs_and_prints(new_probe, live_server):
    base = live_server.url
    doctor = _login(base, "dr.li", live_server.password)
    studies = _api(base, "/dicomweb/studies?ModalitiesInStudy=CT&limit=1", doctor)
    study_uid = studies[0]["0020000D"]["Value"][0]
    item = _api(base, "/api/worklist", doctor, {
        "study_uid": study_uid, "question": "Nodule?", "priority": "urgent",
        "department": "radiology"})["item"]
    expert = _login(base, "exp.zhang", live_server.password)
    _api(base, f"/api/worklist/{item['id']}/claim", expert, {})

    zhang = new_probe()
    sign_in(zhang, "/ui/expert.html", "exp.zhang", live_server.password)
    page = zhang.page
    page.goto(f"/ui/reading.html?request={item['id']}")
    editor = page.locator('[data-testid=report-editor][data-kind=reading]')
    editor.wait_for(timeout=20_000)
    page.locator("[data-testid=viewport] canvas, [data-testid=viewport] img").first.wait_for(
        timeout=30_000)
    tid(page, "report-field-findings").fill("右肺上叶见 8 mm 磨玻璃结节。")
    tid(page, "report-field-impression").fill("右肺上叶磨玻璃结节。")
    tid(page, "report-field-recommendation").fill("建议 6 个月后复查。")
    page.wait_for_function("() => window.huizhenViewer && window.huizhenViewer.getViewState()"
                           " && window.huizhenViewer.getViewState().sop_instance_uid")
    tid(page, "reading-key-image").click()
    tid(page, "report-key-image").wait_for()
    page.locator('[data-testid=report-save-status][data-key="editor.saved"]').wait_for(
        timeout=15_000)
    # Raise a critical value from the report (the finding to read back is asked for).
    page.once("dialog", lambda d: d.accept("右肺上叶磨玻璃结节（测试）"))
    tid(page, "report-critical-raise").click()
    page.locator('[data-testid=report-save-status][data-key="editor.critical.raised"]').wait_for(
        timeout=15_000)
    # The clinic closes the loop at once (other tests' kiosk pages share this server).
    rid = page.locator("[data-testid=report-editor]").get_attribute("data-report-id")
    alert_id = _api(base, f"/api/reports/{rid}", expert)["communication"][0]["alert_id"]
    _api(base, f"/api/alerts/{alert_id}/acknowledge", doctor,
         {"read_back": "右肺上叶磨玻璃结节（测试）", "receiver_name": "李医生"})
    _api(base, f"/api/alerts/{alert_id}/handled", doctor, {"action": "test: nothing to do"})
    # The raising expert sees the acknowledgement with the read-back live (H6's banner).
    notice = page.locator("[data-testid=alert-acked-notice]")
    notice.wait_for(timeout=15_000)
    notice.locator("button").click()
    notice.wait_for(state="detached", timeout=10_000)
    tid(page, "report-sign").click()
    page.locator('[data-testid=report-version][data-status=final]').wait_for(timeout=20_000)
    assert _api(base, f"/api/worklist/{item['id']}", doctor)["item"]["state"] == "completed"
    # The critical value raised on it is listed with the report.
    tid(page, "report-communication-item").first.wait_for(timeout=15_000)

    with page.context.expect_page() as new_page:
        tid(page, "report-print").first.click()
    paper = new_page.value
    tid(paper, "print-document").wait_for(timeout=20_000)
    assert "右肺上叶磨玻璃结节。" in tid(paper, "print-sections").inner_text()
    tid(paper, "print-image").first.wait_for()
    assert paper.locator("[data-testid=print-image] img").first.get_attribute("src").startswith(
        "data:image/png;base64,")
    no_errors(zhang)

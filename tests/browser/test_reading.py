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


def _claimed_request(live_server, question: str, priority: str) -> tuple[str, str, dict]:
    """dr.li sends the first CT for reading, exp.zhang claims it: (doctor's token, expert's
    token, the work item)."""
    base = live_server.url
    doctor = _login(base, "dr.li", live_server.password)
    studies = _api(base, "/dicomweb/studies?ModalitiesInStudy=CT&limit=1", doctor)
    study_uid = studies[0]["0020000D"]["Value"][0]
    item = _api(base, "/api/worklist", doctor, {
        "study_uid": study_uid, "question": question, "priority": priority,
        "department": "radiology"})["item"]
    expert = _login(base, "exp.zhang", live_server.password)
    _api(base, f"/api/worklist/{item['id']}/claim", expert, {})
    return doctor, expert, item


def test_reading_page_writes_signs_and_prints(new_probe, live_server):
    base = live_server.url
    doctor, expert, item = _claimed_request(live_server, "Nodule?", "urgent")

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


def _field(page, name: str) -> str:
    return tid(page, f"report-field-{name}").input_value()


def _status(page, key: str, timeout: int = 15_000) -> None:
    page.locator(f'[data-testid=report-save-status][data-key="{key}"]').wait_for(
        timeout=timeout)


def test_two_pages_editing_one_draft_merge_and_keep_the_users_text(new_probe, live_server):
    """Two pages of the reader on one draft: a save based on an older revision is refused
    (409) and the page merges onto the newer draft — fields only it changed are saved on top,
    fields only the other page changed are taken over, and a field both changed keeps this
    page's text with the other version shown beside it. No one's text is lost."""
    base = live_server.url
    _, expert, item = _claimed_request(live_server, "Two tabs", "routine")
    a, b = new_probe(), new_probe()
    for probe in (a, b):
        sign_in(probe, "/ui/expert.html", "exp.zhang", live_server.password)
        probe.page.goto(f"/ui/reading.html?request={item['id']}")
        probe.page.locator('[data-testid=report-editor][data-kind=reading]').wait_for(
            timeout=20_000)
    pa, pb = a.page, b.page
    rid = pa.locator("[data-testid=report-editor]").get_attribute("data-report-id")

    # A saves the findings (revision 1); B, still on revision 0, writes the impression.
    tid(pa, "report-field-findings").fill("A: 右肺上叶结节 8 mm。")
    _status(pa, "editor.saved")
    tid(pb, "report-field-impression").fill("B: 考虑良性。")
    # B's save is stale: merged onto revision 1 and saved as revision 2, A's findings shown.
    _status(pb, "editor.merged")
    assert _field(pb, "findings") == "A: 右肺上叶结节 8 mm。"
    assert _field(pb, "impression") == "B: 考虑良性。"
    draft = _api(base, f"/api/reports/{rid}", expert)["draft"]
    assert draft["revision"] == 2
    assert draft["content"]["findings"] == "A: 右肺上叶结节 8 mm。"
    assert draft["content"]["impression"] == "B: 考虑良性。"

    # A (still on revision 1) changes the findings: merged onto 2, saved as 3. B (on 2) then
    # changes the findings too: both sides changed that field, a conflict.
    tid(pa, "report-field-findings").fill("A2: 右肺上叶结节 9 mm。")
    _status(pa, "editor.merged")  # A was on revision 1; B's impression is taken over
    assert _field(pa, "impression") == "B: 考虑良性。"
    tid(pb, "report-field-findings").fill("B2: 右肺上叶结节 10 mm。")
    _status(pb, "editor.conflict")
    # B's text stays in the field; A's version is shown beside it.
    assert _field(pb, "findings") == "B2: 右肺上叶结节 10 mm。"
    row = pb.locator('[data-testid=report-conflict-field][data-field=findings]')
    assert row.locator("[data-testid=report-conflict-theirs]").inner_text() == (
        "A2: 右肺上叶结节 9 mm。")
    assert _api(base, f"/api/reports/{rid}", expert)["draft"]["content"]["findings"] == (
        "A2: 右肺上叶结节 9 mm。")  # nothing overwritten behind the user's back
    # B takes A's version: saved on top of revision 3, nothing lost on either side.
    row.locator("[data-testid=report-conflict-use]").click()
    _status(pb, "editor.saved")
    draft = _api(base, f"/api/reports/{rid}", expert)["draft"]
    assert draft["revision"] == 4
    assert draft["content"]["findings"] == "A2: 右肺上叶结节 9 mm。"
    assert draft["content"]["impression"] == "B: 考虑良性。"
    no_errors(a, b)

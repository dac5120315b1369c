"""Consult opinion end to end in the browser: the call ends, the expert's opinion form opens,
autosaves and is signed; the kiosk is told live, opens the printable page (verification code)
and sees the opinion in its consult history and reports panel; /verify answers for the code."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.browser.conftest import topbar_click
from tests.browser.test_call import SMALL, no_errors, sign_in, start_consult, tid

pytestmark = pytest.mark.browser


def _token(page) -> str:
    return page.evaluate("() => JSON.parse(sessionStorage.getItem('hz.session') || '{}').token")


def test_kiosk_receives_a_signed_opinion(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-ring").wait_for()
    tid(zhang.page, "consult-accept").click()
    kiosk.page.locator(
        '[data-testid=participant][data-participant="exp.zhang"][data-state=connected]'
    ).wait_for(timeout=30_000)
    baseline = tid(zhang.page, "reports-open").get_attribute("data-pending") or "0"
    tid(zhang.page, "hang-up").click()

    # The expert's opinion form opens when the call ends; it autosaves.
    editor = zhang.page.locator('[data-testid=report-editor][data-kind=opinion]')
    editor.wait_for(timeout=20_000)
    tid(zhang.page, "report-field-findings").fill("右肺上叶结节 12 mm。")
    tid(zhang.page, "report-field-advice").fill("建议胸外科门诊就诊。")
    tid(zhang.page, "report-field-refer").check()
    zhang.page.locator('[data-testid=report-save-status][data-key="editor.saved"]').wait_for(
        timeout=15_000)
    tid(zhang.page, "report-sign").click()
    zhang.page.locator('[data-testid=report-version][data-status=final]').wait_for(timeout=15_000)

    # The kiosk hears of it at once and opens the printable page.
    toast = tid(kiosk.page, "report-toast")
    toast.wait_for(timeout=15_000)
    assert "Prof. Zhang" in toast.inner_text() or "exp.zhang" in toast.inner_text()
    with kiosk.page.context.expect_page() as new_page:
        tid(kiosk.page, "report-toast-open").click()
    paper = new_page.value
    paper.wait_for_load_state()
    tid(paper, "print-document").wait_for(timeout=15_000)
    assert "建议胸外科门诊就诊。" in tid(paper, "print-sections").inner_text()
    code = tid(paper, "print-verification").get_attribute("data-code")
    assert code and len(code) == 14
    tid(paper, "print-pdf").wait_for()

    # Anyone holding the paper checks the code (public, no token).
    with urllib.request.urlopen(f"{live_server.url}/api/verify/{code}", timeout=10) as r:
        verdict = json.loads(r.read())
    assert verdict["authentic"] is True and verdict["current"] is True
    paper.goto(f"{live_server.url}/verify/{code}")
    assert paper.locator("[data-testid=verify-verdict]").get_attribute("data-state") == "current"

    # The kiosk's history shows the opinion; its reports panel lists it.
    tid(kiosk.page, "call-ended-done").click()
    topbar_click(kiosk.page, "history-open")
    row = kiosk.page.locator('[data-testid=history-row]').filter(has_text="QS-2024-0815").first
    row.wait_for()
    kiosk.page.locator('[data-testid=history-opinion][data-state=signed]').first.wait_for()
    tid(kiosk.page, "history-close").click()
    topbar_click(kiosk.page, "reports-open")
    kiosk.page.locator('[data-testid=reports-row][data-kind=opinion]').first.wait_for()
    tid(kiosk.page, "reports-close").click()
    assert _token(kiosk.page)
    # The doctor's study list page has the same Reports dialog.
    kiosk.page.goto("/ui/index.html")
    topbar_click(kiosk.page, "reports-open")
    kiosk.page.locator('[data-testid=reports-row][data-kind=opinion]').first.wait_for()
    tid(kiosk.page, "reports-close").click()
    # The expert's count of opinions to write is back where it was before this consult.
    zhang.page.wait_for_function(
        "(n) => document.querySelector('[data-testid=reports-open]').dataset.pending === n",
        arg=baseline, timeout=15_000)
    no_errors(zhang, kiosk)

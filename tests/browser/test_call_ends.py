"""Ends and absences are always told (#8): who left and why, the kiosk's clear screen when the
last other participant leaves, signing out mid-call asks first, cancel and an unanswered ring
keep the typed request, the ringing card names the doctor and says whether a study is
attached."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_call import SMALL, no_errors, sign_in, start_consult, tid

pytestmark = pytest.mark.browser


def connected(page, participant: str):
    return page.locator(
        f'[data-testid=participant][data-participant="{participant}"][data-state=connected]')


def test_expert_hangs_up_and_the_kiosk_says_so(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk)
    ring = tid(zhang.page, "consult-ring")
    ring.wait_for()
    # the ringing card names the calling doctor and says a study is attached
    assert "Dr. Li" in tid(zhang.page, "consult-ring-doctor").inner_text()
    assert tid(zhang.page, "consult-ring-study").get_attribute("data-has-study") == "true"
    assert "Study attached" in tid(zhang.page, "consult-ring-study").inner_text()
    tid(zhang.page, "consult-accept").click()
    connected(kiosk.page, "exp.zhang").wait_for(timeout=20_000)
    connected(zhang.page, "dr.li").wait_for(timeout=20_000)

    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    # the kiosk is alone: a clear "call has ended" screen saying who hung up
    tid(kiosk.page, "call-ended-heading").wait_for()
    reason = tid(kiosk.page, "call-ended-reason").inner_text()
    assert "Prof. Zhang" in reason and "hung up" in reason, reason
    screenshot(kiosk.page, "kiosk-call-ended")
    assert kiosk.page.locator("#call-view").is_hidden()
    assert kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')") is None
    tid(kiosk.page, "call-ended-done").click()
    tid(kiosk.page, "call-start").wait_for()
    no_errors(zhang, kiosk)


def test_sign_out_mid_call_asks_first_and_tells_the_expert(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe(locale="zh-CN")
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-ring").wait_for()
    assert tid(zhang.page, "consult-ring-study").get_attribute("data-has-study") == "false"
    tid(zhang.page, "consult-accept").click()
    connected(kiosk.page, "exp.zhang").wait_for(timeout=20_000)

    # Sign out asks; "Stay" keeps the call
    tid(kiosk.page, "logout").click()
    dialog = tid(kiosk.page, "confirm-dialog")
    dialog.wait_for()
    assert "通话" in tid(kiosk.page, "confirm-text").inner_text()
    screenshot(kiosk.page, "kiosk-signout-confirm")
    tid(kiosk.page, "confirm-cancel").click()
    dialog.wait_for(state="hidden")
    assert kiosk.page.locator("#call-view").is_visible()
    connected(zhang.page, "dr.li").wait_for()

    # Sign out, confirmed: the kiosk goes to sign-in, the expert is told who left
    tid(kiosk.page, "logout").click()
    tid(kiosk.page, "confirm-ok").click()
    tid(kiosk.page, "login-form").wait_for()
    note = tid(zhang.page, "notice")
    note.wait_for()
    zhang.page.wait_for_function(
        "() => /Dr\\. Li signed out/.test("
        "document.querySelector('[data-testid=notice]').textContent)")
    zhang.page.locator('[data-testid=participant][data-participant="dr.li"][data-state=left]').wait_for()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    no_errors(zhang, kiosk)


def test_cancel_keeps_the_form(new_probe, live_server):
    zhang = new_probe()  # someone online in radiology (who does not answer)
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    page = kiosk.page
    start_consult(kiosk, study=False)
    tid(page, "call-cancel").click()
    tid(page, "call-start").wait_for()
    assert tid(page, "consult-question").input_value().startswith("Nodule in the right upper lobe")
    assert tid(page, "patient-name").input_value() == "王小明"
    assert tid(page, "patient-id").input_value() == "QS-2024-0815"
    assert tid(page, "dept-radiology").get_attribute("aria-pressed") == "true"
    assert tid(page, "urgency-urgent").get_attribute("aria-pressed") == "true"
    # a reload while waiting, then cancel: the request comes back from the consult
    start_consult(kiosk, study=False)
    page.reload()
    tid(page, "call-cancel").click()
    tid(page, "call-start").wait_for()
    assert tid(page, "consult-question").input_value().startswith("Nodule in the right upper lobe")
    assert tid(page, "dept-radiology").get_attribute("aria-pressed") == "true"
    no_errors(kiosk, zhang)


def test_unanswered_ring_stops_with_a_message_and_keeps_the_form(new_probe, odd_server):
    chen = new_probe(base_url=odd_server.url)  # online in neurology, does not answer
    sign_in(chen, f"/ui/expert.html?{SMALL}", "exp.chen", odd_server.password)
    kiosk = new_probe(base_url=odd_server.url)
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", odd_server.password)
    page = kiosk.page
    start_consult(kiosk, department="neurology", study=False)
    tid(chen.page, "consult-ring").wait_for()
    # HUIZHEN_RING_TIMEOUT_S=5 on that server
    tid(page, "call-start").wait_for(timeout=15_000)
    text = tid(page, "notice").inner_text()
    assert "No expert answered" in text, text
    assert tid(page, "consult-question").input_value().startswith("Nodule in the right upper lobe")
    assert tid(page, "dept-neurology").get_attribute("aria-pressed") == "true"
    assert page.evaluate("() => sessionStorage.getItem('hz.consult')") is None
    # the expert's card went away too
    tid(chen.page, "consult-empty").wait_for()
    no_errors(kiosk, chen)


def test_kiosk_signs_out_mid_call_and_rejoins_from_its_consult_list(new_probe, live_server):
    """The consult stays open while the expert is in it: after signing in again the kiosk is
    offered it (consult.accepted again) and rejoins the same room."""
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-ring").wait_for()
    tid(zhang.page, "consult-accept").click()
    connected(kiosk.page, "exp.zhang").wait_for(timeout=20_000)
    room = kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')")
    tid(kiosk.page, "logout").click()
    tid(kiosk.page, "confirm-ok").click()
    tid(kiosk.page, "login-form").wait_for()
    zhang.page.locator(
        '[data-testid=participant][data-participant="dr.li"][data-state=left]').wait_for()

    tid(kiosk.page, "login-username").fill("dr.li")
    tid(kiosk.page, "login-password").fill(live_server.password)
    tid(kiosk.page, "login-submit").click()
    card = tid(kiosk.page, "rejoin-card")
    card.wait_for(timeout=15_000)
    assert "QS-2024-0815" in card.inner_text()
    # the consult list (history) offers the same: Rejoin from there
    topbar_click(kiosk.page, "history-open")
    row = kiosk.page.locator("[data-testid=history-row]").filter(has_text="QS-2024-0815").first
    row.locator("[data-testid=history-rejoin]").click()
    tid(kiosk.page, "history-panel").wait_for(state="hidden")
    connected(kiosk.page, "exp.zhang").wait_for(timeout=20_000)
    connected(zhang.page, "dr.li").wait_for(timeout=20_000)
    assert kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')") == room
    assert tid(kiosk.page, "rejoin-list").is_hidden()
    tid(zhang.page, "hang-up").click()
    tid(kiosk.page, "call-ended-heading").wait_for()
    no_errors(zhang, kiosk)

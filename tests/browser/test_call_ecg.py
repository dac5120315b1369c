"""An ECG sent into a live consult call in real chromium pages (issue 11 item 6): the kiosk picks
one of its clinic's ECGs in the call and sends it; the expert's page shows the ECG viewer beside
the video, with a switch back to the images."""

from __future__ import annotations

import pytest

from server.demo.seed import DEMO_ECG_STEMI_STUDY_UID
from tests.browser.conftest import screenshot
from tests.browser.test_call import SMALL, expect_text, no_errors, sign_in, start_consult, tid

pytestmark = pytest.mark.browser


def test_kiosk_sends_an_ecg_the_expert_sees_it_beside_the_video(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    tid(zhang.page, "consult-empty").wait_for()
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    tid(kiosk.page, "selfcheck-camera").and_(kiosk.page.locator("[data-state=ok]")).wait_for()
    start_consult(kiosk)
    tid(zhang.page, "consult-ring").wait_for()
    tid(zhang.page, "consult-accept").click()
    tid(kiosk.page, "remote-video").first.wait_for(timeout=30_000)
    # the consult's CT opens beside the video; no switch until an ECG arrives
    zhang.page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=viewport]');"
        " return Boolean(v && v.dataset.shownSlice); }", timeout=30_000)
    assert tid(zhang.page, "study-tabs").is_hidden()

    # The kiosk lists its clinic's ECGs (the demo STEMI among them) and sends the STEMI.
    send = tid(kiosk.page, "ecg-share-send")
    kiosk.page.wait_for_function(
        "() => !document.querySelector('[data-testid=ecg-share-send]').disabled", timeout=30_000)
    labels = kiosk.page.eval_on_selector_all(
        '[data-testid="ecg-share-select"] option', "os => os.map(o => o.textContent)")
    stemi = next(i for i, label in enumerate(labels) if "QS-2025-0107" in label)
    tid(kiosk.page, "ecg-share-select").select_option(str(stemi))
    send.click()
    expect_text(kiosk.page, "ecg-share-status", "Sent")

    # The expert sees the ECG viewer beside the video, drawn from the shared instance.
    zhang.page.locator('[data-testid="study-ecg"] [data-testid="ecg-view"][data-ready="true"]'
                       ).wait_for(timeout=30_000)
    assert zhang.page.evaluate("() => window.huizhenEcg.state.study") == DEMO_ECG_STEMI_STUDY_UID
    assert tid(zhang.page, "study-images").is_hidden()
    assert tid(zhang.page, "study-tab-ecg").get_attribute("aria-pressed") == "true"
    screenshot(zhang.page, "expert-call-ecg")
    # The switch goes back to the images and forth to the ECG.
    tid(zhang.page, "study-tab-images").click()
    assert tid(zhang.page, "study-ecg").is_hidden()
    assert not tid(zhang.page, "study-images").is_hidden()
    tid(zhang.page, "study-tab-ecg").click()
    assert not tid(zhang.page, "study-ecg").is_hidden()

    tid(kiosk.page, "hang-up").click()
    tid(kiosk.page, "call-start").wait_for()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for(timeout=30_000)
    assert tid(zhang.page, "study-tabs").is_hidden()  # the next call starts with no ECG
    no_errors(zhang, kiosk)

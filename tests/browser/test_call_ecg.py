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

    # The clinic uploads a new ECG during the call: the kiosk's list gains it at once (the
    # `ecg.stored` push, no reload, no polling), the STEMI stays chosen, and the new one can be
    # sent.
    before = int(tid(kiosk.page, "ecg-share-select").get_attribute("data-count"))
    chosen = tid(kiosk.page, "ecg-share-select").input_value()
    new_uid = _upload_ecg(live_server, "QS-LIVE-ECG")
    kiosk.page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=ecg-share-select] option')]"
        ".some(o => o.textContent.includes('QS-LIVE-ECG'))", timeout=15_000)
    assert int(tid(kiosk.page, "ecg-share-select").get_attribute("data-count")) == before + 1
    selected = kiosk.page.eval_on_selector(
        '[data-testid="ecg-share-select"]', "s => s.selectedOptions[0].textContent")
    assert "QS-2025-0107" in selected, (chosen, selected)
    labels = kiosk.page.eval_on_selector_all(
        '[data-testid="ecg-share-select"] option', "os => os.map(o => o.textContent)")
    fresh = next(i for i, label in enumerate(labels) if "QS-LIVE-ECG" in label)
    tid(kiosk.page, "ecg-share-select").select_option(str(fresh))
    send.click()
    zhang.page.wait_for_function(
        "uid => window.huizhenEcg && window.huizhenEcg.state.study === uid", arg=new_uid,
        timeout=30_000)

    tid(kiosk.page, "hang-up").click()
    tid(kiosk.page, "call-start").wait_for()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for(timeout=30_000)
    assert tid(zhang.page, "study-tabs").is_hidden()  # the next call starts with no ECG
    no_errors(zhang, kiosk)


def _upload_ecg(live_server, patient_id: str) -> str:
    """Dr Li's clinic uploads a synthetic ECG (the kiosk upload route, from another device);
    returns its StudyInstanceUID."""
    import io
    import json
    import urllib.request

    import pydicom

    from media.ecg.synthetic import Spec, ecg_bytes

    def call(path: str, data: bytes, ctype: str, token: str = "") -> dict:
        headers = {"Content-Type": ctype}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{live_server.url}{path}", data=data, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    token = call("/api/auth/login", json.dumps(
        {"username": "dr.li", "password": live_server.password}).encode(),
        "application/json")["token"]
    body = ecg_bytes(Spec("nsr", seed=77), patient_id=patient_id)
    boundary = "hzliveecg"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"ecg.dcm\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + body + f"\r\n--{boundary}--\r\n".encode()
    call("/api/uploads", form, f"multipart/form-data; boundary={boundary}", token)
    return str(pydicom.dcmread(io.BytesIO(body)).StudyInstanceUID)

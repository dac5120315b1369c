"""Consult calls in real chromium pages (fake camera and microphone) through the live server's SFU:
the kiosk calls, an expert accepts, media flows both ways, a colleague is invited, the kiosk
reloads mid-call and rejoins; the same through coturn with ?ice=relay; the kiosk self-check and
cancel."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

DEMO_CT_STUDY_UID = "1.2.826.0.1.3680043.8.498.20261120.1"
SMALL = "video=320x240"  # small camera frames keep three pages and the SFU cheap on 2 cores
DIAG = "() => window.huizhenCall ? window.huizhenCall.diagnostics() : null"
# The kiosk reload tears the old page's media down mid-flight; chromium may log that.
ALLOWED_CONSOLE = ("Failed to load resource",)


def tid(page, testid: str):
    return page.locator(f'[data-testid="{testid}"]')


def sign_in(probe, path: str, username: str, password: str) -> None:
    page = probe.page
    page.goto(path)
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()
    tid(page, "net-status").and_(page.locator("[data-state=open]")).wait_for()


def wait_media(page, participant: str, *, timeout_s: float = 25.0) -> dict:
    """Waits until `participant`'s video frames are being decoded and audio received on `page`
    (both counters rise between two getStats samples); returns the last diagnostics."""
    end = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < end:
        a = page.evaluate(DIAG)
        time.sleep(0.7)
        b = page.evaluate(DIAG)
        last = b
        pa = (a or {}).get("participants", {}).get(participant)
        pb = (b or {}).get("participants", {}).get(participant)
        if pa and pb and pb["framesDecoded"] > pa["framesDecoded"] and (
            pb["audioSamples"] > pa["audioSamples"] or pb["audioPackets"] > pa["audioPackets"]
        ):
            return b
    raise AssertionError(f"no media from {participant} on {page.url}: {last}")


def start_consult(kiosk, *, department: str = "radiology", study: bool = True) -> None:
    """Without a study the patient is 王小明 / QS-2024-0815; with the demo CT attached the kiosk
    takes the patient from the study."""
    page = kiosk.page
    tid(page, f"dept-{department}").click()
    tid(page, "urgency-urgent").click()
    tid(page, "patient-name").fill("王小明")
    tid(page, "patient-id").fill("QS-2024-0815")
    if study:
        page.wait_for_function(
            "uid => [...document.querySelectorAll('[data-testid=study-select] option')]"
            ".some(o => o.value === uid)", arg=DEMO_CT_STUDY_UID)
        tid(page, "study-select").select_option(DEMO_CT_STUDY_UID)
        assert tid(page, "patient-mismatch").is_hidden()
    tid(page, "consult-question").fill("Nodule in the right upper lobe: follow-up or refer?")
    tid(page, "call-start").click()
    tid(page, "waiting-elapsed").wait_for()


def no_errors(*probes) -> None:
    for p in probes:
        assert p.console_errors(allow=ALLOWED_CONSOLE) == [], p.page.url


def test_consult_call_invite_and_kiosk_reload(new_probe, live_server):
    t0 = time.monotonic()
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    tid(zhang.page, "consult-empty").wait_for()
    chen = new_probe()
    sign_in(chen, f"/ui/expert.html?{SMALL}", "exp.chen", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    tid(kiosk.page, "selfcheck-camera").and_(kiosk.page.locator("[data-state=ok]")).wait_for()
    screenshot(kiosk.page, "kiosk-precall")

    start_consult(kiosk)
    kiosk.page.wait_for_function(
        "() => document.querySelector('[data-testid=waiting-elapsed]').textContent !== '00:00'")
    screenshot(kiosk.page, "kiosk-waiting")

    # It rings for the radiology expert (not for neurology's exp.chen).
    ring = tid(zhang.page, "consult-ring")
    ring.wait_for()
    patient_id = tid(kiosk.page, "patient-id").input_value()
    assert patient_id and patient_id in ring.inner_text()
    assert ring.get_attribute("data-urgency") == "urgent"
    assert tid(chen.page, "consult-ring").count() == 0
    screenshot(zhang.page, "expert-ringing")

    tid(zhang.page, "consult-accept").click()
    tid(kiosk.page, "remote-video").first.wait_for()
    wait_media(kiosk.page, "exp.zhang")
    wait_media(zhang.page, "dr.li")
    # the attached study opens beside the video
    zhang.page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=viewport]');"
        " return Boolean(v && v.dataset.shownSlice); }")
    tid(kiosk.page, "net-quality").and_(
        kiosk.page.locator("[data-level=good], [data-level=fair], [data-level=poor]")).wait_for()
    screenshot(kiosk.page, "kiosk-call")
    print("kiosk network:", tid(kiosk.page, "net-quality").get_attribute("title"))
    t_call = time.monotonic() - t0

    # Invite exp.chen by username; the invitation rings on chen's page, chen joins.
    tid(zhang.page, "invite-username").fill("exp.chen")
    tid(zhang.page, "invite-send").click()
    expect_text(zhang.page, "invite-status", "Invitation sent")
    tid(chen.page, "invite-join").click()
    wait_media(chen.page, "dr.li")
    wait_media(chen.page, "exp.zhang")
    wait_media(zhang.page, "exp.chen")
    wait_media(kiosk.page, "exp.chen")
    screenshot(zhang.page, "expert-call")

    # The kiosk reloads mid-call: it rejoins the same room with a new peer connection.
    room = kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')")
    assert room
    kiosk.page.reload()
    kiosk.page.locator("#call-view").wait_for()
    assert kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')") == room
    wait_media(kiosk.page, "exp.zhang")
    after = wait_media(zhang.page, "dr.li", timeout_s=30)
    assert after["participants"]["dr.li"]["framesDecoded"] > 0
    wait_media(chen.page, "dr.li", timeout_s=30)
    zhang.page.locator('[data-testid=participant][data-participant="dr.li"][data-state=connected]').wait_for()

    # Everyone hangs up; the pages return to where they started.
    tid(chen.page, "hang-up").click()
    tid(chen.page, "consult-empty").wait_for()
    tid(kiosk.page, "hang-up").click()
    tid(kiosk.page, "call-start").wait_for()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    assert kiosk.page.evaluate("() => sessionStorage.getItem('hz.room')") is None
    no_errors(zhang, chen, kiosk)
    print(f"call connected after {t_call:.1f}s, whole flow {time.monotonic() - t0:.1f}s")


def expect_text(page, testid: str, text: str) -> None:
    page.wait_for_function(
        "([id, s]) => document.querySelector(`[data-testid=\"${id}\"]`).textContent.includes(s)",
        arg=[testid, text],
    )


def test_call_through_turn_relay(new_probe, live_server):
    if live_server.turn is None:
        pytest.skip("/usr/bin/turnserver (coturn) is not installed; `make test` installs it")
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?ice=relay&{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?ice=relay&{SMALL}", "dr.li", live_server.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-accept").click()
    k = wait_media(kiosk.page, "exp.zhang")
    z = wait_media(zhang.page, "dr.li")
    assert k["pair"]["local"] == "relay", k
    assert z["pair"]["local"] == "relay", z
    tid(kiosk.page, "net-quality").and_(kiosk.page.locator("[data-relay=true]")).wait_for()
    tid(kiosk.page, "hang-up").click()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    no_errors(zhang, kiosk)


def test_kiosk_self_check_device_token_and_cancel(new_probe, live_server):
    # a neurology expert online (a request to a department with nobody online is refused)
    chen = new_probe()
    sign_in(chen, f"/ui/expert.html?{SMALL}", "exp.chen", live_server.password)
    kiosk = new_probe(locale="zh-CN")
    page = kiosk.page
    token = live_server.kiosk_device_token()
    page.goto(f"/ui/kiosk.html?device_token={token}&{SMALL}")
    # stored once, and gone from the address bar
    assert "device_token" not in page.url
    assert page.evaluate("() => localStorage.getItem('hz.device_token')") == token
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"
    tid(page, "login-device").wait_for()
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/api/auth/login") else None)
    tid(page, "login-username").fill("dr.li")
    tid(page, "login-password").fill(live_server.password)
    tid(page, "login-submit").click()
    tid(page, "net-status").and_(page.locator("[data-state=open]")).wait_for()
    assert requests and requests[0].post_data_json.get("device_token") == token

    tid(page, "selfcheck-camera").and_(page.locator("[data-state=ok]")).wait_for()
    tid(page, "selfcheck-mic").and_(page.locator("[data-state=ok]")).wait_for()
    assert "✓" in tid(page, "selfcheck-camera").inner_text()
    assert "✓" in tid(page, "selfcheck-mic").inner_text()
    tid(page, "selfcheck-retry").click()
    tid(page, "selfcheck-mic").and_(page.locator("[data-state=ok]")).wait_for()
    assert re.search("呼叫专家", tid(page, "call-start").inner_text())

    # A consult without a department is refused on the page; then cancel while waiting.
    tid(page, "call-start").click()
    tid(page, "consult-error").wait_for()
    tid(page, "dept-neurology").click()
    tid(page, "consult-question").fill("头痛两周，请会诊")
    tid(page, "call-start").click()
    tid(page, "waiting-elapsed").wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=waiting-elapsed]').textContent !== '00:00'")
    tid(page, "call-cancel").click()
    tid(page, "call-start").wait_for()
    assert "取消" in tid(page, "notice").inner_text()
    assert page.evaluate("() => sessionStorage.getItem('hz.consult')") is None
    no_errors(kiosk, chen)

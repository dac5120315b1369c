"""Media that cannot fail silently (#8): per-tile media state from what really flows, "media failed"
within 10 s when ICE cannot connect (a server whose only ICE address cannot be bound, so it
offers no candidate the browser can reach — the `make run` on loopback failure of the issue),
the relay-only retry with TURN configured, and the accept → both sides decoding video figure."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_call import DIAG, SMALL, no_errors, sign_in, start_consult, tid

pytestmark = pytest.mark.browser

FIRST_FRAME = (
    "id => { const t = document.querySelector("
    "`[data-testid=remote-tile][data-participant=\"${id}\"]`);"
    " return t && t.dataset.firstFrameAt ? Number(t.dataset.firstFrameAt) : 0; }"
)


def chip(page, participant: str, state: str):
    return page.locator(
        f'[data-testid=participant][data-participant="{participant}"][data-state={state}]')


def test_accept_to_video_on_both_sides_and_states(new_probe, live_server):
    """Three calls: accept → the first remote frame on screen on both sides (p50 printed, the
    issue's figure is ≤ 1.5 s); chips say connected only once media flows; loopback is "good";
    the tab title drops the ringing count in the call; remote mute and camera off show on the
    tile."""
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    latencies = []
    for i in range(3):
        start_consult(kiosk, study=(i == 0))
        ring = tid(zhang.page, "consult-ring")
        ring.wait_for()
        zhang.page.wait_for_function("() => document.title.startsWith('(1)')")
        t_accept = zhang.page.evaluate("() => Date.now()")
        tid(zhang.page, "consult-accept").click()
        try:
            kiosk.page.wait_for_function(FIRST_FRAME, arg="exp.zhang", timeout=20_000)
            zhang.page.wait_for_function(FIRST_FRAME, arg="dr.li", timeout=20_000)
        except Exception:
            k_diag, z_diag = kiosk.page.evaluate(DIAG), zhang.page.evaluate(DIAG)
            print(f"call {i}: kiosk {k_diag} expert {z_diag}")
            raise
        k = kiosk.page.evaluate(FIRST_FRAME, "exp.zhang")
        z = zhang.page.evaluate(FIRST_FRAME, "dr.li")
        latencies.append((max(k, z) - t_accept) / 1000)
        # chips and tiles say connected once frames are decoded
        chip(kiosk.page, "exp.zhang", "connected").wait_for()
        chip(zhang.page, "dr.li", "connected").wait_for()
        assert tid(kiosk.page, "remote-tile").first.get_attribute("data-media") == "connected"
        assert not zhang.page.title().startswith("(")
        if i == 0:
            # loopback (≈ 1 ms RTT, no loss) is a good network, not "Poor"
            q = tid(kiosk.page, "net-quality")
            q.and_(kiosk.page.locator("[data-level=good]")).wait_for(timeout=15_000)
            print("kiosk network:", q.get_attribute("title"))
            print("expert network:", tid(zhang.page, "net-quality").get_attribute("title"),
                  tid(zhang.page, "net-quality").get_attribute("data-level"))
            # the expert mutes and turns the camera off: the kiosk's tile says so
            tile = '[data-testid=remote-tile][data-participant="exp.zhang"]'
            tid(zhang.page, "camera-off").click()
            tid(zhang.page, "mute").click()
            kiosk.page.locator(f"{tile}[data-camera-off=true]").wait_for(timeout=10_000)
            kiosk.page.locator(f"{tile}[data-muted=true]").wait_for(timeout=10_000)
            assert kiosk.page.locator(f"{tile} [data-testid=tile-camera-off]").is_visible()
            assert kiosk.page.locator(f"{tile} [data-testid=tile-muted]").is_visible()
            tid(zhang.page, "camera-off").click()
            tid(zhang.page, "mute").click()
            kiosk.page.locator(f"{tile}[data-camera-off=false][data-muted=false]").wait_for(
                timeout=10_000)
        tid(kiosk.page, "hang-up").click()
        tid(kiosk.page, "call-start").wait_for()
        tid(zhang.page, "hang-up").click()
        tid(zhang.page, "consult-empty").wait_for()
    p50 = statistics.median(latencies)
    rounded = [round(x, 2) for x in latencies]
    print(f"accept → both sides decoding video: {rounded} s, p50 {p50:.2f} s")
    # generous bound (2 cores shared by several test runs); the figure is the printed p50
    assert p50 < 5.0, latencies
    no_errors(zhang, kiosk)


def test_media_failed_is_shown_within_10_s(new_probe, odd_server):
    srv = odd_server
    zhang = new_probe(base_url=srv.url)
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", srv.password)
    kiosk = new_probe(base_url=srv.url)
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", srv.password)
    start_consult(kiosk, study=False)
    tid(zhang.page, "consult-ring").wait_for()
    t0 = time.monotonic()
    tid(zhang.page, "consult-accept").click()
    # while it tries, it says connecting — never "connected"
    tid(kiosk.page, "remote-tile").first.wait_for()
    assert tid(kiosk.page, "remote-tile").first.get_attribute("data-state") == "connecting"
    failed_tile = '[data-testid=remote-tile][data-state=failed]'
    kiosk.page.locator(failed_tile).wait_for(timeout=12_000)
    zhang.page.locator(failed_tile).wait_for(timeout=12_000)
    shown_after = time.monotonic() - t0
    print(f"media failed shown {shown_after:.1f} s after accept")
    assert shown_after < 10.0
    chip(kiosk.page, "exp.zhang", "failed").wait_for()
    chip(zhang.page, "dr.li", "failed").wait_for()
    # With TURN configured the page retries relay-only once, then tells what to do.
    if srv.turn is not None:
        kiosk.page.wait_for_function(
            "() => window.huizhenCall && window.huizhenCall.relay === true", timeout=10_000)
    retry = tid(kiosk.page, "media-retry")
    retry.wait_for(timeout=20_000)
    screenshot(kiosk.page, "kiosk-media-failed")
    text = tid(kiosk.page, "tile-media").first.inner_text()
    assert "Media failed" in text and "Try again" in text, text
    assert "network" in text.lower(), text
    # never "connected" anywhere
    assert kiosk.page.locator("[data-testid=participant][data-state=connected]").count() == 0
    assert zhang.page.locator("[data-testid=participant][data-state=connected]").count() == 0
    # Try again starts a new attempt (connecting), which fails the same way
    retry.click()
    kiosk.page.locator('[data-testid=remote-tile][data-state=connecting]').wait_for()
    tid(kiosk.page, "hang-up").click()
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    no_errors(zhang, kiosk)

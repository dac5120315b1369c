"""Annotations in the viewer (#9.5): draw a length on the demo CT with the mouse, the value the
page shows is the server's mm (computed from the stored file's Pixel Spacing), an ellipse ROI
shows HU statistics, both languages label the tools, undo removes one's own."""

from __future__ import annotations

import math
import re

import pytest

from tests.browser.conftest import topbar_click
from tests.browser.test_call import DEMO_CT_STUDY_UID
from tests.browser.test_viewer import sign_in, tid, use_tool, wait_shown

pytestmark = pytest.mark.browser

SERVER_MARKS = """async (study) => {
  const s = JSON.parse(sessionStorage.getItem('hz.session'));
  const r = await fetch(`/api/studies/${study}/annotations`,
                        {headers: {Authorization: `Bearer ${s.token}`}});
  return (await r.json()).annotations;
}"""


def _drag(page, a, b) -> None:
    page.mouse.move(*a)
    page.mouse.down()
    for i in range(1, 6):
        page.mouse.move(a[0] + (b[0] - a[0]) * i / 5, a[1] + (b[1] - a[1]) * i / 5)
    page.mouse.up()


def test_length_drawn_on_the_phantom_shows_the_servers_mm(probe, live_server):
    page = probe.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "study-row").first.wait_for()
    page.goto(f"/ui/viewer.html?study={DEMO_CT_STUDY_UID}")
    wait_shown(page, 1)
    before = {a["id"] for a in page.evaluate(SERVER_MARKS, DEMO_CT_STUDY_UID)}

    use_tool(page, "ann-tool-length")
    assert tid(page, "ann-tool-length").get_attribute("aria-pressed") == "true"
    box = tid(page, "viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    _drag(page, (cx - 120, cy), (cx + 120, cy))
    item = tid(page, "ann-item").filter(has=page.locator('[data-testid="ann-value"]'))
    item.first.wait_for(timeout=20_000)
    shown = tid(page, "ann-value").first.inner_text()

    marks = [a for a in page.evaluate(SERVER_MARKS, DEMO_CT_STUDY_UID) if a["id"] not in before]
    assert len(marks) == 1 and marks[0]["kind"] == "length"
    server = marks[0]
    m = server["measurement"]
    assert m["calibrated"] is True and m["spacing_source"] == "PixelSpacing"
    assert shown == f"{m['length_mm']:.1f} mm"
    # The drag spans 240 CSS px: the server measured the image pixels under it.
    (c0, r0), (c1, r1) = server["points"]
    px = page.evaluate("() => window.huizhenViewer.screenToImage([0, 0])")
    assert px is not None
    assert abs(r1 - r0) < 1.0 and abs(c1 - c0) > 10
    assert m["length_mm"] == pytest.approx(
        math.hypot((c1 - c0) * m["spacing_mm"][1], (r1 - r0) * m["spacing_mm"][0]), abs=0.01)

    # An ellipse ROI: area and mean ± SD in HU from the server.
    use_tool(page, "ann-tool-ellipse")
    _drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    tid(page, "ann-item").filter(has_text="HU").wait_for(timeout=20_000)
    roi_text = tid(page, "ann-item").filter(has_text="HU").inner_text()
    assert re.search(r"Area [\d.]+ mm² · mean -?[\d.]+ ± [\d.]+ HU", roi_text), roi_text

    # Chinese labels; the value stays the server's.
    topbar_click(page, "lang-toggle")
    assert tid(page, "ann-tool-length").inner_text().strip() == "长度"
    assert "面积" in tid(page, "ann-item").filter(has_text="HU").inner_text()
    topbar_click(page, "lang-toggle")

    # Undo removes one's own (newest first), the × the other; nothing left of this test.
    use_tool(page, "ann-undo")
    page.wait_for_function("() => !document.querySelector('[data-testid=ann-item] .ann-value')"
                           " || ![...document.querySelectorAll('[data-testid=ann-value]')]"
                           ".some(e => e.textContent.includes('HU'))")
    tid(page, "ann-remove").first.click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=ann-item]').length === 0")
    after = {a["id"] for a in page.evaluate(SERVER_MARKS, DEMO_CT_STUDY_UID)}
    assert after == before
    assert probe.console_errors() == []


def test_marks_in_the_mdt_room_reach_the_other_participants(new_probe, live_server):
    """The presenter measures in the MDT room: a follower's page shows the same value at once
    (room event), only the presenter may mark the key image, which the room's minutes hold."""
    from tests.browser.test_mdt_sync import (
        _api,
        _token,
        coordinator_presents_to_zhang,
        make_mdt,
        wait_same,
    )

    mdt_id = make_mdt(live_server)
    coord, zhang = coordinator_presents_to_zhang(new_probe, live_server, mdt_id)
    cp, zp = coord.page, zhang.page
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    wait_same(zp, cp.evaluate("() => window.huizhenViewer.getViewState()"))
    assert tid(cp, "ann-key-image").is_visible()
    assert not tid(zp, "ann-key-image").is_visible()  # a follower: not the presenter

    use_tool(cp, "ann-tool-length")
    box = tid(cp, "viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    _drag(cp, (cx - 100, cy - 20), (cx + 60, cy + 40))
    tid(cp, "ann-value").first.wait_for(timeout=20_000)
    mine = tid(cp, "ann-value").first.inner_text()
    assert re.fullmatch(r"\d+\.\d mm", mine), mine
    tid(zp, "ann-value").first.wait_for(timeout=20_000)
    assert tid(zp, "ann-value").first.inner_text() == mine
    assert tid(zp, "ann-remove").count() == 0  # not theirs to undo

    use_tool(cp, "ann-key-image")
    wait_status = "() => document.querySelector('[data-testid=ann-status]').textContent"
    cp.wait_for_function(f"{wait_status} === 'Key image marked.'", timeout=20_000)
    study = cp.evaluate("() => window.huizhenViewer.studyUid")
    keys = _api(live_server, "GET", f"/api/studies/{study}/key-images?room_id=mdt-{mdt_id}",
                _token(live_server, "coord.liu"))["key_images"]
    assert len(keys) == 1 and keys[0]["by"] == "coord.liu"

    # undo by the presenter disappears from the follower too
    use_tool(cp, "ann-undo")
    zp.wait_for_function(
        "() => document.querySelectorAll('[data-testid=ann-item]').length === 0",
        timeout=20_000)
    assert coord.console_errors() == [] and zhang.console_errors() == []

"""Annotations in the viewer (#9.5): draw a length on the demo CT with the mouse, the value the
page shows is the server's mm (computed from the stored file's Pixel Spacing), an ellipse ROI
shows HU statistics, both languages label the tools, undo removes one's own."""

from __future__ import annotations

import math
import re

import pytest

from tests.browser.test_call import DEMO_CT_STUDY_UID
from tests.browser.test_viewer import sign_in, tid, wait_shown

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

    tid(page, "ann-tool-length").click()
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
    tid(page, "ann-tool-ellipse").click()
    _drag(page, (cx - 40, cy - 30), (cx + 40, cy + 30))
    tid(page, "ann-item").filter(has_text="HU").wait_for(timeout=20_000)
    roi_text = tid(page, "ann-item").filter(has_text="HU").inner_text()
    assert re.search(r"Area [\d.]+ mm² · mean -?[\d.]+ ± [\d.]+ HU", roi_text), roi_text

    # Chinese labels; the value stays the server's.
    tid(page, "lang-toggle").click()
    assert tid(page, "ann-tool-length").inner_text().strip() == "长度"
    assert "面积" in tid(page, "ann-item").filter(has_text="HU").inner_text()
    tid(page, "lang-toggle").click()

    # Undo removes one's own (newest first), the × the other; nothing left of this test.
    tid(page, "ann-undo").click()
    page.wait_for_function("() => !document.querySelector('[data-testid=ann-item] .ann-value')"
                           " || ![...document.querySelectorAll('[data-testid=ann-value]')]"
                           ".some(e => e.textContent.includes('HU'))")
    tid(page, "ann-remove").first.click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=ann-item]').length === 0")
    after = {a["id"] for a in page.evaluate(SERVER_MARKS, DEMO_CT_STUDY_UID)}
    assert after == before
    assert probe.console_errors() == []

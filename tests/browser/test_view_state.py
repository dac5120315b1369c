"""The viewer's view state as one object (#9): getViewState() / applyViewState() round-trip
between two pages of different screen sizes — the ViewState has exactly the protocol's keys,
the second page ends on the same state, and the image centre sits at the same fraction of
each viewport (zoom relative to fit, pan as fractions of the viewport)."""

from __future__ import annotations

import pytest

from tests.browser.test_call import DEMO_CT_STUDY_UID
from tests.browser.test_viewer import sign_in, tid, use_tool, wait_shown

pytestmark = pytest.mark.browser

KEYS = ["cine", "flip_h", "flip_v", "frame", "invert", "pan", "rotation", "series_uid",
        "sop_instance_uid", "study_uid", "window", "zoom"]


def open_viewer(new_probe, live_server, size):
    p = new_probe(viewport=size)
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "study-row").first.wait_for()
    page.goto(f"/ui/viewer.html?study={DEMO_CT_STUDY_UID}")
    wait_shown(page)
    return p


# where the image's centre lands, as fractions of the viewport, and a point mapped there and back
FRACTIONS = """() => {
  const v = window.huizhenViewer, vp = v.viewport, d = v.drawn;
  const [x, y] = v.imageToScreen([d.cols / 2, d.rows / 2]);
  const [px, py] = v.imageToScreen([100, 200]);
  return {x: x / vp.clientWidth, y: y / vp.clientHeight, back: v.screenToImage([px, py])};
}"""


def test_view_state_round_trip_between_two_screen_sizes(new_probe, live_server):
    a = open_viewer(new_probe, live_server, (1280, 800))
    b = open_viewer(new_probe, live_server, (800, 1000))
    pa, pb = a.page, b.page

    # the presenter's page: slice 37, lung preset, zoomed, panned, rotated, flipped, inverted
    pa.evaluate("""() => {
      const v = window.huizhenViewer;
      v.setIndex(36);
      v.setZoom(2.5, 40, -30);
      v.panBy(64, -32);
      v.rotate(90);
      v.flip('h');
      v.setInvert(true);
    }""")
    use_tool(pa, "preset-lung")
    wait_shown(pa, 37, "-600,1500")
    state = pa.evaluate("() => window.huizhenViewer.getViewState()")
    assert sorted(state) == KEYS
    assert state["study_uid"] == DEMO_CT_STUDY_UID
    assert state["window"] == {"center": -600, "width": 1500, "function": "LINEAR"}
    assert state["rotation"] == 90 and state["flip_h"] and not state["flip_v"] and state["invert"]
    assert state["zoom"] == pytest.approx(2.5)
    assert state["cine"] == {"playing": False, "fps": 10}
    assert state["frame"] == 1
    # pan is a fraction of the viewport: 64 px of 1280-ish wide is about 0.05
    vp_w = pa.evaluate("() => window.huizhenViewer.viewport.clientWidth")
    assert abs(state["pan"]["x"] - (40 - 40 * 2.5 + 64) / vp_w) < 1e-6

    # the other screen applies it and ends on the same state, showing the same slice/window
    assert pb.evaluate("s => window.huizhenViewer.applyViewState(s)", state) is True
    wait_shown(pb, 37, "-600,1500")
    got = pb.evaluate("() => window.huizhenViewer.getViewState()")
    assert got == state
    assert tid(pb, "slice-label").inner_text().strip() == "37 / 120"
    assert tid(pb, "zoom-label").inner_text().strip() == "Zoom 250%"

    fa = pa.evaluate(FRACTIONS)
    fb = pb.evaluate(FRACTIONS)
    # the image centre is at the same fraction of both viewports: ½ + pan
    for f in (fa, fb):
        assert f["x"] == pytest.approx(0.5 + state["pan"]["x"], abs=1e-6)
        assert f["y"] == pytest.approx(0.5 + state["pan"]["y"], abs=1e-6)
    assert fa["back"] == pytest.approx([100, 200]) and fb["back"] == pytest.approx([100, 200])

    # a second round trip back: applying what the second page reports changes nothing
    pa.evaluate("s => window.huizhenViewer.applyViewState(s)", got)
    assert pa.evaluate("() => window.huizhenViewer.getViewState()") == state

    # out-of-range values are clamped to the protocol's ranges, not refused
    pb.evaluate("""s => window.huizhenViewer.applyViewState({...s, zoom: 1000,
        pan: {x: 50, y: -50}, rotation: 450, cine: {playing: false, fps: 500}})""", state)
    clamped = pb.evaluate("() => window.huizhenViewer.getViewState()")
    assert clamped["zoom"] == 40 and clamped["pan"] == {"x": 10, "y": -10}
    assert clamped["rotation"] == 90 and clamped["cine"]["fps"] == 60
    # another study's state is not applied here
    assert pb.evaluate("s => window.huizhenViewer.applyViewState({...s, study_uid: '1.2.3'})",
                       state) is False
    assert a.console_errors() == [] and b.console_errors() == []

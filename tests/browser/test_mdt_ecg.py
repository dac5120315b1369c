"""An ECG in an MDT room's shared view (issue 11 item 6: "in an MDT, it follows the presenter like
an image") with two real Chromium pages: the presenter opens the agenda's ECG, sets 20 mm/mV and
zooms lead V2; the follower ends on the same ECG state drawn at the same scale; the follower's own
gain change detaches it and Re-sync brings it back; switching back to the images leaves the
follower on the image state of before the ECG."""

from __future__ import annotations

import io
import time

import pytest

from media.ecg import synthetic
from tests.browser.conftest import screenshot
from tests.browser.test_mdt_sync import (
    STATE,
    _api,
    _series,
    _token,
    _upload,
    coordinator_presents_to_zhang,
    scroll,
    use_tool,
    wait_same,
)
from tests.browser.test_viewer import HTTP_ERROR_LOG, tid, wait_text

pytestmark = pytest.mark.browser

SETTLED = "() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty"
ECG_STATE = "() => window.huizhenEcg && window.huizhenEcg.getViewState()"
ECG_SAME = """(want) => {
  const e = window.huizhenEcg;
  const got = e && e.getViewState();
  return Boolean(got) && JSON.stringify(got) === JSON.stringify(want)
    && document.querySelector('[data-testid=mdt-ecg-pane] [data-testid=ecg-view]')
      .dataset.ready === 'true';
}"""


def _schedule_ecg_mdt(live_server, ecg, image_files: list[bytes], study_uids: list[str],
                      reason: str, title: str) -> tuple[str, str]:
    """dr.li uploads `image_files` and the ECG and proposes `study_uids` as one case; coord.liu
    schedules the MDT with exp.zhang and opens its room: (session id, the ECG's study UID)."""
    doctor = _token(live_server, "dr.li")
    buf = io.BytesIO()
    ecg.save_as(buf, enforce_file_format=True)
    _upload(live_server, doctor, [*image_files, buf.getvalue()])
    proposal = _api(live_server, "POST", "/api/mdt/proposals", doctor, {
        "study_uids": study_uids, "reason": reason, "departments": ["radiology"]})["proposal"]
    coord = _token(live_server, "coord.liu")
    mdt = _api(live_server, "POST", "/api/mdt", coord, {
        "title": title, "starts_at": int(time.time()) + 120, "duration_min": 60,
        "departments": ["radiology"], "experts": ["exp.zhang"], "clinics": ["qingshui"],
        "cases": [{"proposal_id": proposal["id"]}]})["mdt"]
    if mdt["state"] == "scheduled":
        _api(live_server, "POST", f"/api/mdt/{mdt['id']}/open", coord, {})
    return mdt["id"], ecg.StudyInstanceUID


def make_ecg_mdt(live_server) -> tuple[str, str]:
    """One patient's CT and ECG as one case."""
    study, files = _series(12)
    ecg = synthetic.ecg_dataset(synthetic.Spec("stemi", rate=75, seed=9),
                                patient_id="HZ-MDT-0001", patient_name="Zhou^Ping")
    return _schedule_ecg_mdt(live_server, ecg, files, [study, ecg.StudyInstanceUID],
                             "Chest pain, ST elevation", "Chest pain board")


@pytest.mark.timeout(300)
def test_the_presenter_shows_an_ecg_and_the_follower_follows_it_and_back(new_probe, live_server):
    mdt_id, ecg_study = make_ecg_mdt(live_server)
    coord, zhang = coordinator_presents_to_zhang(new_probe, live_server, mdt_id)
    cp, zp = coord.page, zhang.page
    wait_text(cp, "mdt-presenter-banner", "^You are presenting$")

    # the images first: somewhere of the presenter's own
    scroll(cp, 5)
    use_tool(cp, "preset-lung")
    use_tool(cp, "zoom-in")
    cp.wait_for_function(SETTLED)
    images = cp.evaluate(STATE)
    assert images["window"]["center"] == -600
    wait_same(zp, images)

    # the presenter picks the agenda's ECG, 20 mm/mV, lead V2 zoomed
    tid(cp, "mdt-ecg-pick").wait_for()
    assert tid(cp, "mdt-ecg-select").locator("option").count() == 1
    tid(cp, "mdt-ecg-open").click()
    ready = '[data-testid=mdt-ecg-pane] [data-testid=ecg-view][data-ready="true"]'
    cp.locator(ready).wait_for(timeout=30_000)
    assert tid(cp, "mdt-viewer-pane").is_hidden()
    assert tid(cp, "mdt-tab-ecg").get_attribute("aria-pressed") == "true"
    tid(cp, "ecg-gain").select_option("20")
    tid(cp, "ecg-lead").select_option("V2")
    cp.wait_for_function(SETTLED)
    want = cp.evaluate(ECG_STATE)
    assert want["study_uid"] == ecg_study
    assert (want["gain"], want["speed"], want["lead"]) == (20, 25, "V2")
    shared = cp.evaluate("() => window.huizhenMdt.sync.state")
    assert shared["showing"] == "ecg" and shared["ecg"] == want

    # the follower is on the same ECG, the same way, drawn at the same scale
    zp.wait_for_function(ECG_SAME, arg=want, timeout=30_000)
    assert tid(zp, "mdt-viewer-pane").is_hidden() and not tid(zp, "mdt-ecg-pane").is_hidden()
    assert tid(zp, "ecg-gain").input_value() == "20"
    assert tid(zp, "ecg-lead").input_value() == "V2"
    assert tid(zp, "mdt-follow-state").get_attribute("data-mode") == "following"
    scale = "() => window.huizhenEcg.scale()"
    mine, theirs = cp.evaluate(scale), zp.evaluate(scale)
    for key in ("pxPerMm", "pxPerMv", "pxPerSample", "mmPerSample", "widthMm", "gain", "speed"):
        assert theirs[key] == pytest.approx(mine[key]), key
    # lead zoom doubles the paper: 20 mm/mV drawn at 40 mm per mV, 25 mm/s at 50 mm per second
    assert theirs["gain"] == 40 and theirs["speed"] == 50
    assert theirs["pxPerMv"] == pytest.approx(40 * theirs["pxPerMm"])
    screenshot(zp, "mdt-room-ecg-follower")

    # the follower's own gain change: browsing privately, as a manual pan; Re-sync brings it back
    tid(zp, "ecg-gain").select_option("5")
    zp.locator('[data-testid=mdt-follow-state][data-mode=detached]').wait_for()
    assert zp.evaluate(ECG_STATE)["gain"] == 5
    tid(zp, "mdt-resync").click()
    zp.wait_for_function(ECG_SAME, arg=want, timeout=20_000)
    assert tid(zp, "mdt-follow-state").get_attribute("data-mode") == "following"

    # back to the images: the follower's image state is the one before the ECG
    tid(cp, "mdt-tab-images").click()
    cp.wait_for_function(SETTLED)
    assert cp.evaluate("() => window.huizhenMdt.sync.state.showing") == "images"
    zp.wait_for_function(
        "() => !document.querySelector('[data-testid=mdt-viewer-pane]').hidden"
        " && document.querySelector('[data-testid=mdt-ecg-pane]').hidden", timeout=20_000)
    wait_same(zp, images)
    assert zp.evaluate(STATE) == images
    assert tid(zp, "mdt-tab-images").get_attribute("aria-pressed") == "true"
    for p in (coord, zhang):
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []


ECG_READY = ("() => Boolean(document.querySelector("
             "'[data-testid=mdt-ecg-pane] [data-testid=ecg-view][data-ready=\"true\"]'))")


def make_ecg_only_mdt(live_server) -> tuple[str, str]:
    """A cardiology MDT: one patient's ECG only (no images at all)."""
    ecg = synthetic.ecg_dataset(synthetic.Spec("af_rvr", rate=130, seed=4),
                                patient_id="HZ-MDT-0002", patient_name="Qian^Yu")
    return _schedule_ecg_mdt(live_server, ecg, [], [ecg.StudyInstanceUID],
                             "Irregular tachycardia", "Cardiology board")


@pytest.mark.timeout(300)
def test_an_ecg_only_room_opens_on_the_ecg_and_the_follower_follows_it(new_probe, live_server):
    """An agenda of ECGs only: both pages open on the case's ECG (no image viewer, nothing to
    pick first); the presenter's gain and lead zoom are shared with no image part and the
    follower ends on the same ECG state."""
    mdt_id, ecg_study = make_ecg_only_mdt(live_server)
    coord, zhang = coordinator_presents_to_zhang(new_probe, live_server, mdt_id, ready=ECG_READY)
    cp, zp = coord.page, zhang.page
    wait_text(cp, "mdt-presenter-banner", "^You are presenting$")
    for page in (cp, zp):
        assert tid(page, "mdt-ecg-pane").is_visible()
        assert tid(page, "mdt-tab-ecg").get_attribute("aria-pressed") == "true"
        assert tid(page, "viewport").count() == 0  # no image viewer: there are no images
    tid(cp, "ecg-gain").select_option("20")
    tid(cp, "ecg-lead").select_option("II")
    cp.wait_for_function(SETTLED)
    want = cp.evaluate(ECG_STATE)
    assert want["study_uid"] == ecg_study and (want["gain"], want["lead"]) == (20, "II")
    shared = cp.evaluate("() => window.huizhenMdt.sync.state")
    assert shared["showing"] == "ecg" and shared["ecg"] == want
    assert "study_uid" not in shared  # no image part
    zp.wait_for_function(ECG_SAME, arg=want, timeout=30_000)
    assert tid(zp, "ecg-gain").input_value() == "20"
    assert tid(zp, "mdt-follow-state").get_attribute("data-mode") == "following"
    assert zp.evaluate("() => window.huizhenMdt.sync.applied.length") >= 1
    for p in (coord, zhang):
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []

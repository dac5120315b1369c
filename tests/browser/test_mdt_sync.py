"""Synchronised viewing in an MDT room (#9) with several real Chromium pages: the presenter
scrolls and changes the window and every follower ends on the same state, in order; a follower
detaches by browsing and re-syncs with one click; chat; reconnect-and-resume; hand-over; a stale
update adopts the server's state."""

from __future__ import annotations

import io

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_viewer import HTTP_ERROR_LOG, tid, use_tool, wait_text

pytestmark = pytest.mark.browser


# ---- synchronised viewing with several real pages ------------------------------------------------

def _api(live_server, method: str, path: str, token: str | None = None, body=None) -> dict:
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        live_server.url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
    except urllib.error.HTTPError as err:
        raise AssertionError(f"{method} {path}: {err.code} {err.read()[:500]!r}") from err
    return json.loads(raw) if raw else {}


def _token(live_server, username: str) -> str:
    return _api(live_server, "POST", "/api/auth/login",
                body={"username": username, "password": live_server.password})["token"]


def _series(n: int = 40, frames: int = 1) -> tuple[str, list[bytes]]:
    """A CT series of `n` 64×64 slices of its own patient (a study no MDT has yet); with
    `frames` > 1 each instance is a multi-frame image of that many frames."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series = generate_uid(), generate_uid()
    files = []
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = "Zhou^Ping", "HZ-MDT-0001"
        ds.StudyDate, ds.Modality, ds.StudyDescription = "20261201", "CT", "MDT sync test"
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.Rows = ds.Columns = 64
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.ImagePositionPatient = [0, 0, -2.5 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
        yy, xx = np.mgrid[0:64, 0:64]
        disc = ((xx - 32) ** 2 + (yy - 32) ** 2) < (8 + i % 20) ** 2
        ds.PixelData = b"".join(
            np.where(disc, 1100 + 10 * i + 7 * f, 200).astype(np.int16).tobytes()
            for f in range(frames))
        if frames > 1:
            ds.NumberOfFrames = frames
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        files.append(buf.getvalue())
    return study, files


def _upload(live_server, token: str, files: list[bytes]) -> None:
    import secrets
    import urllib.request

    boundary = secrets.token_hex(16)
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
        f"filename=\"s{i}.dcm\"\r\nContent-Type: application/dicom\r\n\r\n".encode() + f + b"\r\n"
        for i, f in enumerate(files)) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        live_server.url + "/api/uploads", method="POST", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200


def make_mdt(live_server, n: int = 40, frames: int = 1) -> str:
    """dr.li uploads and proposes a CT (`_series(n, frames)`), coord.liu schedules an MDT with
    two experts and the clinic and opens its room; the session id."""
    import time

    doctor = _token(live_server, "dr.li")
    study, files = _series(n, frames)
    _upload(live_server, doctor, files)
    proposal = _api(live_server, "POST", "/api/mdt/proposals", doctor, {
        "study_uids": [study], "reason": "Nodule in the right upper lobe",
        "departments": ["radiology"]})["proposal"]
    coord = _token(live_server, "coord.liu")
    mdt = _api(live_server, "POST", "/api/mdt", coord, {
        "title": "Thoracic board", "starts_at": int(time.time()) + 120, "duration_min": 60,
        "departments": ["radiology"], "experts": ["exp.zhang", "exp.chen"],
        "clinics": ["qingshui"], "cases": [{"proposal_id": proposal["id"]}]})["mdt"]
    if mdt["state"] == "scheduled":  # a start within 15 minutes opens the room at once
        _api(live_server, "POST", f"/api/mdt/{mdt['id']}/open", coord, {})
    return mdt["id"]


IMAGE_READY = ("() => { const v = document.querySelector('[data-testid=viewport]');"
               " return Boolean(v && v.dataset.shownSlice); }")


def enter_room(new_probe, live_server, username: str, mdt_id: str, size=(1280, 800),
               ready: str = IMAGE_READY):
    """`username` signed in to the room, once `ready` (JS) holds: an image on screen."""
    p = new_probe(viewport=size)
    page = p.page
    page.goto(f"/ui/mdt.html?id={mdt_id}&video=320x240")
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill(live_server.password)
    tid(page, "login-submit").click()
    tid(page, "mdt-room").wait_for()
    page.wait_for_function(ready, timeout=30_000)
    return p


def coordinator_presents_to_zhang(new_probe, live_server, mdt_id: str, zhang_size=(1024, 768),
                                  ready: str = IMAGE_READY):
    """coord.liu (1280×800) and exp.zhang (`zhang_size`) in the room, each seeing the other; the
    coordinator takes control and Prof. Zhang's page says so: (coord, zhang) probes."""
    coord = enter_room(new_probe, live_server, "coord.liu", mdt_id, ready=ready)
    zhang = enter_room(new_probe, live_server, "exp.zhang", mdt_id, size=zhang_size, ready=ready)
    for page in (coord.page, zhang.page):
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=mdt-participant]').length === 2",
            timeout=30_000)
    tid(coord.page, "mdt-take").click()
    zhang.page.wait_for_function(
        "() => document.querySelector('[data-testid=mdt-presenter-banner]')"
        ".dataset.presenter === 'coord.liu'", timeout=20_000)
    return coord, zhang


STATE = "() => window.huizhenViewer && window.huizhenViewer.getViewState()"
SAME = """(want) => {
  const got = window.huizhenViewer && window.huizhenViewer.getViewState();
  const vp = document.querySelector('[data-testid=viewport]');
  return Boolean(got) && JSON.stringify(got) === JSON.stringify(want)
    && vp.dataset.shownSop === want.sop_instance_uid
    && vp.dataset.shownFrame === String(want.frame);
}"""


def wait_same(page, want, timeout=20_000) -> None:
    page.wait_for_function(SAME, arg=want, timeout=timeout)


def scroll(page, notches: int) -> None:
    vp = tid(page, "viewport")
    box = vp.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(notches):
        page.mouse.wheel(0, 120)


@pytest.mark.timeout(360)  # three pages with media on a shared 2-core machine
def test_presenter_scrolls_and_windows_and_every_follower_ends_on_the_same_state(
        new_probe, live_server):
    mdt_id = make_mdt(live_server)
    coord = enter_room(new_probe, live_server, "coord.liu", mdt_id)
    zhang = enter_room(new_probe, live_server, "exp.zhang", mdt_id, size=(1024, 768))
    li = enter_room(new_probe, live_server, "dr.li", mdt_id, size=(1366, 768))
    pages = [coord.page, zhang.page, li.page]
    for page in pages:
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=mdt-participant]').length === 3",
            timeout=30_000)

    # the coordinator takes control: everyone's banner says so
    cp = coord.page
    tid(cp, "mdt-take").click()
    wait_text(cp, "mdt-presenter-banner", "^You are presenting$")
    for page in (zhang.page, li.page):
        wait_text(page, "mdt-presenter-banner", "is presenting$")
        assert tid(page, "mdt-presenter-banner").get_attribute("data-presenter") == "coord.liu"
        assert tid(page, "mdt-follow-state").get_attribute("data-mode") == "following"
        assert page.locator(
            '[data-testid=mdt-participant][data-participant="coord.liu"]'
            '[data-presenting=true]').count() == 1

    # the coordinator puts the case on now: every agenda marks it
    tid(cp, "mdt-case-set-current").click()
    for page in pages:
        page.locator("[data-testid=mdt-case][data-current=true]").wait_for()
    # the presenter's pointer shows on the followers' viewers
    box = tid(cp, "viewport").bounding_box()
    cp.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    cp.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.55, steps=5)
    for page in (zhang.page, li.page):
        page.wait_for_function("() => window.huizhenMdt.pointer && window.huizhenMdt.pointer.by"
                               " === 'coord.liu'")

    # the presenter scrolls, changes the window, zooms and scrolls on
    scroll(cp, 12)
    use_tool(cp, "preset-lung")
    scroll(cp, 7)
    use_tool(cp, "zoom-in")
    use_tool(cp, "mdt-rotate")
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = cp.evaluate(STATE)
    assert final["window"]["center"] == -600 and final["rotation"] == 90
    for page in (zhang.page, li.page):
        wait_same(page, final)
        applied = page.evaluate("() => window.huizhenMdt.sync.applied")
        assert applied == sorted(set(applied)), applied  # in order, never an old one again
    sent = cp.evaluate("() => window.huizhenMdt.sync.sentCount")
    assert 2 <= sent <= 12 + 7 + 3 + 1  # on change only, coalesced: never per rendered frame

    # a follower scrolls on its own: browsing privately; the presenter goes on without it
    zp = zhang.page
    scroll(zp, 3)
    zp.locator('[data-testid=mdt-follow-state][data-mode=detached]').wait_for()
    assert tid(zp, "mdt-resync").is_visible()
    mine = zp.evaluate(STATE)
    scroll(cp, 5)
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = cp.evaluate(STATE)
    wait_same(li.page, final)
    assert zp.evaluate(STATE) == mine
    # one click: back on the presenter's view, following again
    tid(zp, "mdt-resync").click()
    wait_same(zp, final)
    assert tid(zp, "mdt-follow-state").get_attribute("data-mode") == "following"

    # chat reaches everyone
    tid(li.page, "mdt-chat-input").fill("Patient is stable")
    tid(li.page, "mdt-chat-send").click()
    for page in pages:
        tid(page, "mdt-chat-text").filter(has_text="Patient is stable").wait_for()
    screenshot(cp, "mdt-room-presenter")
    screenshot(zp, "mdt-room-follower")

    # a follower's connection drops: the presenter goes on and someone writes; back online,
    # the page rejoins from its newest event id: on the current state, every message once
    lp = li.page
    lp.evaluate("() => window.huizhenMdt.signal.stop()")
    tid(zp, "mdt-chat-input").fill("While you were away")
    tid(zp, "mdt-chat-send").click()
    scroll(cp, 4)
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = cp.evaluate(STATE)
    tid(cp, "mdt-chat-text").filter(has_text="While you were away").wait_for()
    lp.evaluate("() => window.huizhenMdt.signal.start()")
    wait_same(lp, final)
    tid(lp, "mdt-chat-text").filter(has_text="While you were away").wait_for()
    assert tid(lp, "mdt-chat-message").count() == 2

    # the coordinator hands control to Prof. Zhang, whose scrolling everyone now follows
    tid(cp, "mdt-handover-to").select_option("exp.zhang")
    tid(cp, "mdt-handover").click()
    wait_text(zp, "mdt-presenter-banner", "^You are presenting$")
    for page in (cp, lp):
        page.locator('[data-testid=mdt-presenter-banner][data-presenter="exp.zhang"]').wait_for()
        assert tid(page, "mdt-follow-state").get_attribute("data-mode") == "following"
    assert tid(cp, "mdt-take").is_visible()  # the coordinator can always take it back
    scroll(zp, 6)
    use_tool(zp, "preset-bone")
    zp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = zp.evaluate(STATE)
    assert final["window"]["center"] != -600
    for page in (cp, lp):
        wait_same(page, final)

    # an update based on an old version is refused (stale_view): the presenter's page adopts
    # the server's state and version, and its next change goes through
    version = zp.evaluate("() => window.huizhenMdt.sync.version")
    zp.evaluate("() => { window.huizhenMdt.sync.version -= 1; }")
    scroll(zp, 1)
    zp.wait_for_function("v => window.huizhenMdt.sync.version === v && !window.huizhenMdt.sync"
                         ".inflight", arg=version)
    wait_same(zp, final)
    scroll(zp, 3)
    zp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = zp.evaluate(STATE)
    assert zp.evaluate("() => window.huizhenMdt.sync.version") > version
    for page in (cp, lp):
        wait_same(page, final)
    for p in (coord, zhang, li):
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def choose_fps(page, fps: int) -> None:
    """Picks the cine speed, from the toolbar's "More" menu when the row has no room for it."""
    target = tid(page, "mdt-cine-fps")
    if not target.is_visible():
        tid(page, "viewer-more").click()
    target.select_option(str(fps))
    page.keyboard.press("Escape")


SHOWN = "() => document.querySelector('[data-testid=viewport]').dataset.shownSop"
PLAYING = """(fps) => {
  const v = window.huizhenViewer && window.huizhenViewer.getViewState();
  const shared = window.huizhenMdt.sync.state;
  return Boolean(v && shared) && v.cine.playing && v.cine.fps === fps
    && shared.cine.playing && shared.cine.fps === fps
    && document.querySelector('[data-testid=viewport]').dataset.cine === 'playing';
}"""


def shown_frames(page, seconds: float) -> int:
    """How many different images the page put on screen in `seconds`."""
    return page.evaluate("""(ms) => new Promise((done) => {
      const seen = new Set(), end = performance.now() + ms;
      const look = () => {
        const vp = document.querySelector('[data-testid=viewport]');
        seen.add(`${vp.dataset.shownSop}/${vp.dataset.shownFrame}`);
        if (performance.now() < end) requestAnimationFrame(look); else done(seen.size);
      };
      look();
    })""", seconds * 1000)


@pytest.mark.timeout(300)
def test_cine_plays_for_every_follower_and_stops_on_the_same_frame(new_probe, live_server):
    mdt_id = make_mdt(live_server, n=4, frames=8)  # 4 instances of 8 frames: 32 images
    coord, zhang = coordinator_presents_to_zhang(new_probe, live_server, mdt_id)
    cp, zp = coord.page, zhang.page
    for page in (cp, zp):
        assert page.evaluate("() => window.huizhenViewer.slices.length") == 32
    scroll(cp, 3)
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    wait_same(zp, cp.evaluate(STATE))

    # the presenter plays the 32 frames at 30 fps: the follower plays too, at that speed
    applied = cp.evaluate("() => window.huizhenMdt.sync.applied.length")
    choose_fps(cp, 30)
    use_tool(cp, "mdt-cine")
    for page in (cp, zp):
        page.wait_for_function(PLAYING, arg=30, timeout=20_000)
    assert tid(zp, "mdt-cine").get_attribute("aria-pressed") == "true"
    assert tid(zp, "mdt-cine-fps").input_value() == "30"
    # both pages show image after image (2 s at 30 fps is 60 frames; a loaded machine drops some)
    assert shown_frames(zp, 2.0) >= 8
    assert shown_frames(cp, 2.0) >= 8
    # cine frames are not the follower's own browsing: it still follows
    assert tid(zp, "mdt-follow-state").get_attribute("data-mode") == "following"
    sent = cp.evaluate("() => window.huizhenMdt.sync.sentCount")

    # the presenter stops: both end on the frame the presenter stopped on, and stay there
    use_tool(cp, "mdt-cine")
    cp.wait_for_function("() => !window.huizhenMdt.sync.inflight && !window.huizhenMdt.sync.dirty")
    final = cp.evaluate(STATE)
    assert final["cine"] == {"playing": False, "fps": 30}
    wait_same(zp, final)
    # playing sent nothing per frame: one update to stop; and the presenter's own updates
    # coming back never put its cine back on the frame they were sent from
    assert cp.evaluate("() => window.huizhenMdt.sync.sentCount") - sent <= 1
    assert cp.evaluate("() => window.huizhenMdt.sync.applied.length") == applied
    cp.wait_for_timeout(600)  # no cine timer left running on either page
    for page in (cp, zp):
        assert page.evaluate(STATE) == final
        assert tid(page, "viewport").get_attribute("data-cine") == "stopped"
        assert page.evaluate(SHOWN) == final["sop_instance_uid"]
    for p in (coord, zhang):
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []

"""The web client in a real (headless Debian) chromium against a live demo server."""

from __future__ import annotations

import io
import re

import pytest

from tests.browser.conftest import screenshot, topbar_click

pytestmark = pytest.mark.browser

DEMO_DESCRIPTION = "CT Chest/Abdomen (demo)"
DEMO_PATIENT_ID = "QS-2024-0815"  # 王小明, the demo CT (server/demo/seed.py)
SLICES = 120
# Chrome logs every non-2xx fetch as "Failed to load resource"; expected in error-path tests.
HTTP_ERROR_LOG = ("Failed to load resource",)


def tid(page, testid: str):
    return page.locator(f'[data-testid="{testid}"]')


def use_tool(page, testid: str) -> None:
    """Clicks a viewer tool, from the toolbar's "More tools" menu when the row has no room for it
    (every viewer's toolbar is one row: js/components/viewer/toolbar-fit.js)."""
    target = tid(page, testid)
    if not target.is_visible():
        tid(page, "viewer-more").click()
    target.click()


def sign_in(page, username: str, password: str) -> None:
    page.goto("/ui/")
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()


CANVAS_STATS = """() => {
  const c = document.querySelector('[data-testid="viewport-canvas"]');
  const ctx = c.getContext('2d');
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let lit = 0, n = 0, sum = 0;
  const stepX = Math.max(1, Math.floor(c.width / 64));
  const stepY = Math.max(1, Math.floor(c.height / 64));
  const samples = [];
  for (let y = 0; y < c.height; y += stepY) {
    for (let x = 0; x < c.width; x += stepX) {
      const i = (y * c.width + x) * 4;
      const v = d[i] + d[i + 1] + d[i + 2];
      n++; sum += v; if (v > 30) lit++;
      samples.push(v);
    }
  }
  return {lit: lit / n, mean: sum / n / 3, samples, w: c.width, h: c.height};
}"""


def canvas_stats(page) -> dict:
    return page.evaluate(CANVAS_STATS)


def differs(a: dict, b: dict, min_fraction: float = 0.02) -> bool:
    changed = sum(1 for x, y in zip(a["samples"], b["samples"], strict=True) if abs(x - y) > 24)
    return changed / len(a["samples"]) >= min_fraction


def wait_shown(page, slice_no: int | None = None, window: str | None = None) -> None:
    """Waits until the canvas shows slice `slice_no` (1-based) rendered with `window` ("C,W")."""
    page.wait_for_function(
        """([s, w]) => {
          const v = document.querySelector('[data-testid="viewport"]');
          if (!v || !v.dataset.shownSlice) return false;  // the viewer module builds it
          if (s !== null && v.dataset.shownSlice !== String(s)) return false;
          if (w !== null) {
            const [c, ww] = (v.dataset.shownWindow || '').split(',').map(Number);
            const [ec, ew] = w.split(',').map(Number);
            if (c !== ec || ww !== ew) return false;
          }
          return true;
        }""",
        arg=[slice_no, window],
    )


def wait_text(page, testid: str, pattern: str, absent: str | None = None) -> None:
    """Waits until the element's text matches `pattern` (and not `absent`), both JS regexps."""
    page.wait_for_function(
        """([id, re, no]) => {
          const t = document.querySelector(`[data-testid="${id}"]`).textContent.trim();
          return new RegExp(re).test(t) && !(no && new RegExp(no).test(t));
        }""",
        arg=[testid, pattern, absent],
    )


def slice_label(page) -> str:
    return tid(page, "slice-label").inner_text().strip()


def test_doctor_reads_the_demo_ct(probe, live_server):
    page = probe.page
    page.goto("/")
    assert page.url.endswith("/ui/")
    tid(page, "login-username").wait_for()
    screenshot(page, "sign-in")

    sign_in(page, "dr.li", live_server.password)
    row = tid(page, "study-row").filter(has_text=DEMO_DESCRIPTION)
    row.wait_for()
    assert DEMO_PATIENT_ID in row.inner_text()
    # the Images column (hidden below 1400 px wide: the viewer has the counts)
    assert row.locator("td").nth(6).text_content() == "120"
    assert tid(page, "upload-open").is_visible()  # doctors may upload
    screenshot(page, "study-list")

    # search by patient ID narrows the list to the demo study, a miss empties it
    tid(page, "study-search").fill("QS-2024-08")
    tid(page, "search-submit").click()
    row.wait_for()
    tid(page, "study-search").fill("nobody-by-this-name")
    tid(page, "search-submit").click()
    tid(page, "studies-empty").wait_for()
    assert tid(page, "study-row").count() == 0
    tid(page, "search-clear").click()
    row.wait_for()

    row.click()
    page.wait_for_url(re.compile(r"/ui/viewer\.html\?study="))
    wait_shown(page, 1)
    assert slice_label(page) == f"1 / {SLICES}"
    assert tid(page, "series-thumb").count() >= 1
    first = canvas_stats(page)
    assert first["lit"] > 0.05, "the canvas stayed black"
    wl = tid(page, "wl-label").inner_text().strip()
    assert re.fullmatch(r"W -?\d+(\.\d)? L -?\d+(\.\d)?", wl), wl
    assert DEMO_PATIENT_ID in tid(page, "ov-patient-id").inner_text()
    assert tid(page, "ov-study-date").inner_text().strip()

    viewport = tid(page, "viewport")
    box = viewport.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # mouse wheel: one notch, one slice
    page.mouse.move(cx, cy)
    for _ in range(3):
        page.mouse.wheel(0, 100)
    wait_text(page, "slice-label", "^4 / 120$")
    wait_shown(page, 4)

    # keyboard
    viewport.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert slice_label(page) == f"6 / {SLICES}"
    page.keyboard.press("ArrowUp")
    assert slice_label(page) == f"5 / {SLICES}"
    page.keyboard.press("End")
    assert slice_label(page) == f"{SLICES} / {SLICES}"
    page.keyboard.press("Home")
    assert slice_label(page) == f"1 / {SLICES}"
    page.keyboard.press("PageDown")
    assert slice_label(page) == f"13 / {SLICES}"

    # slider to the middle of the stack: a different anatomy level, different pixels
    slider = tid(page, "slice-slider")
    slider.evaluate(
        "(el) => { el.value = '60'; el.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    assert slice_label(page) == f"60 / {SLICES}"
    wait_shown(page, 60)
    assert tid(page, "position-label").inner_text().strip()
    middle = canvas_stats(page)
    assert middle["lit"] > 0.05

    # lung preset: server renders with the new window, pixels change, the label follows
    use_tool(page, "preset-lung")
    assert tid(page, "wl-label").inner_text().strip() == "W 1500 L -600"
    wait_shown(page, 60, "-600,1500")
    lung = canvas_stats(page)
    assert differs(middle, lung), "lung window did not change the image"
    screenshot(page, "viewer-lung")

    # left-drag = window/level: right widens the window, down raises the level
    # ... with at most one rendered request in flight while dragging
    drag = {"now": 0, "max": 0, "sent": 0}

    def sent(req):
        if "/rendered?" in req.url and "quality=75" in req.url:
            drag["now"] += 1
            drag["sent"] += 1
            drag["max"] = max(drag["max"], drag["now"])

    def done(req):
        if "/rendered?" in req.url and "quality=75" in req.url:
            drag["now"] -= 1

    page.on("request", sent)
    page.on("requestfinished", done)
    page.on("requestfailed", done)
    page.mouse.move(cx, cy)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(cx + 8 * i, cy + 6 * i)
        page.wait_for_timeout(15)
    page.mouse.up()
    dragged = tid(page, "wl-label").inner_text().strip()
    m = re.fullmatch(r"W (-?\d+) L (-?\d+)", dragged)
    assert m, dragged
    assert int(m.group(1)) > 1500 and int(m.group(2)) > -600, dragged
    wait_shown(page, 60, f"{m.group(2)},{m.group(1)}")
    page.remove_listener("request", sent)
    assert drag["sent"] >= 1 and drag["max"] == 1, drag

    # zoom in/out and reset
    assert tid(page, "zoom-label").inner_text().strip() == "Zoom 100%"
    use_tool(page, "zoom-in")
    use_tool(page, "zoom-in")
    assert tid(page, "zoom-label").inner_text().strip() == "Zoom 156%"
    page.wait_for_timeout(50)
    zoomed = canvas_stats(page)
    assert differs(lung, zoomed)
    use_tool(page, "zoom-out")
    assert tid(page, "zoom-label").inner_text().strip() == "Zoom 125%"
    page.mouse.move(cx, cy)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    assert tid(page, "zoom-label").inner_text().strip() != "Zoom 125%"
    use_tool(page, "reset")
    assert tid(page, "zoom-label").inner_text().strip() == "Zoom 100%"
    wait_shown(page, 60)
    wait_text(page, "wl-label", r"^W \d+ L -?\d+$", absent=r"^W 1[5-9]\d\d ")
    screenshot(page, "viewer")

    # Chinese UI, remembered across pages
    topbar_click(page, "lang-toggle")
    assert tid(page, "reset").inner_text().strip() == "复位"
    assert tid(page, "preset-lung").inner_text().strip() == "肺窗"
    assert tid(page, "wl-label").inner_text().strip().startswith("窗宽")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    screenshot(page, "viewer-zh")
    tid(page, "back").click()
    page.wait_for_url(re.compile(r"/ui/(index\.html)?$"))
    tid(page, "study-row").first.wait_for()
    assert tid(page, "logout").inner_text().strip() == "退出登录"
    topbar_click(page, "lang-toggle")
    assert tid(page, "logout").inner_text().strip() == "Sign out"

    tid(page, "logout").click()
    tid(page, "login-username").wait_for()
    assert tid(page, "login-message").is_visible()

    assert probe.console_errors() == []


def test_other_clinic_does_not_see_the_demo_ct(probe, live_server):
    page = probe.page
    sign_in(page, "dr.wang", live_server.password)
    tid(page, "logout").wait_for()
    wait_text(page, "study-count", "", absent="Loading|加载")
    assert tid(page, "studies-error").is_hidden()
    assert DEMO_DESCRIPTION not in page.locator("body").inner_text()
    assert probe.console_errors() == []


def test_wrong_password_shows_an_error(probe, live_server):
    page = probe.page
    sign_in(page, "dr.li", live_server.password + "-wrong")
    err = tid(page, "login-error")
    err.wait_for()
    assert "Wrong username or password" in err.inner_text()
    assert tid(page, "study-row").count() == 0
    assert probe.console_errors(allow=HTTP_ERROR_LOG) == []


def test_rejected_token_returns_to_sign_in(probe, live_server):
    page = probe.page
    page.goto("/ui/")
    page.evaluate(
        """() => sessionStorage.setItem('hz.session', JSON.stringify(
             {token: 'not-a-valid-token', expires_at: Date.now() / 1000 + 3600,
              user: {username: 'x'}}))"""
    )
    page.goto("/ui/viewer.html?study=1.2.3")
    page.wait_for_url(re.compile(r"/ui/index\.html$"))
    msg = tid(page, "login-message")
    msg.wait_for()
    assert "expired" in msg.inner_text()
    assert probe.console_errors(allow=HTTP_ERROR_LOG) == []


def _tiny_ct() -> bytes:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Upload^Test"
    ds.PatientID = "HZ-UPLOAD-0001"
    ds.StudyDate = "20240102"
    ds.Modality = "CT"
    ds.StudyDescription = "Browser upload test"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.PixelData = (np.arange(32 * 32, dtype=np.int16).reshape(32, 32) - 500).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_doctor_uploads_files(probe, live_server):
    page = probe.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "upload-open").click()
    tid(page, "upload-input").set_input_files(
        [
            {"name": "slice1.dcm", "mimeType": "application/dicom", "buffer": _tiny_ct()},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a dicom file"},
        ]
    )
    results = tid(page, "upload-results")
    tid(page, "upload-result-ok").wait_for()
    assert "slice1.dcm" in tid(page, "upload-result-ok").inner_text()
    assert "notes.txt" in tid(page, "upload-result-failed").inner_text()
    assert "1 stored, 1 failed" in tid(page, "upload-status").inner_text()
    assert results.is_visible()
    tid(page, "study-row").filter(has_text="HZ-UPLOAD-0001").wait_for()
    screenshot(page, "upload")
    assert probe.console_errors() == []


def test_expert_has_no_upload_button(probe, live_server):
    page = probe.page
    sign_in(page, "exp.zhang", live_server.password)
    page.wait_for_url(re.compile(r"/ui/expert\.html"))  # experts land on their workstation
    page.goto("/ui/")  # and may still browse the study list
    tid(page, "study-row").first.wait_for()
    assert tid(page, "upload-open").is_hidden()
    assert probe.console_errors() == []


def test_touch_scroll_pinch_and_window_level(browser, live_server):
    """A kiosk touch screen: one finger scrolls (or sets W/L in that tool), two fingers zoom."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": 1024, "height": 768},
        has_touch=True,
        locale="zh-CN",
    )
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        sign_in(page, "dr.li", live_server.password)
        tid(page, "study-row").filter(has_text=DEMO_DESCRIPTION).click()
        wait_shown(page, 1)
        assert tid(page, "reset").inner_text().strip() == "复位"  # zh-CN browser → Chinese UI

        cdp = context.new_cdp_session(page)
        box = tid(page, "viewport").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        def touch(kind: str, *points: tuple[float, float]) -> None:
            cdp.send(
                "Input.dispatchTouchEvent",
                {
                    "type": kind,
                    "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)],
                },
            )

        tid(page, "tool-scroll").click()
        assert tid(page, "tool-scroll").get_attribute("aria-pressed") == "true"
        touch("touchStart", (cx, cy - 100))
        for i in range(1, 11):
            touch("touchMove", (cx, cy - 100 + 10 * i))
        touch("touchEnd")
        n = int(slice_label(page).split("/")[0])
        assert n > 5, slice_label(page)

        touch("touchStart", (cx - 50, cy), (cx + 50, cy))
        for i in range(1, 6):
            touch("touchMove", (cx - 50 - 10 * i, cy), (cx + 50 + 10 * i, cy))
        touch("touchEnd")
        zoom = int(re.search(r"(\d+)%", tid(page, "zoom-label").inner_text()).group(1))
        assert zoom >= 180, zoom

        tid(page, "tool-wl").click()
        before = tid(page, "wl-label").inner_text()
        touch("touchStart", (cx, cy))
        for i in range(1, 6):
            touch("touchMove", (cx + 12 * i, cy))
        touch("touchEnd")
        assert tid(page, "wl-label").inner_text() != before
        assert errors == []
    finally:
        context.close()

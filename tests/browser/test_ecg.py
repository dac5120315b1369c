"""The ECG viewer (ecg.html) in chromium against the live demo server: the demo STEMI opens from
the study list, its values equal pydicom's waveform_array, the paper is drawn to scale (px per
mm, per sample, per mV) and follows the calibration, calipers measure, both languages."""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pydicom
import pytest

from server.demo.seed import DEMO_ECG_STEMI_STUDY_UID
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

STEMI_PATIENT_ID = "QS-2025-0107"


def tid(page, testid: str):
    return page.locator(f'[data-testid="{testid}"]')


def sign_in(page, username: str, password: str) -> None:
    page.goto("/ui/")
    tid(page, "login-username").fill(username)
    tid(page, "login-password").fill(password)
    tid(page, "login-submit").click()


def _waveform_arrays(live_server) -> list[np.ndarray]:
    """The stored instance, read back over WADO-RS and decoded by pydicom."""
    body = json.dumps({"username": "dr.li", "password": live_server.password}).encode()
    req = urllib.request.Request(f"{live_server.url}/api/auth/login", data=body,
                                 headers={"Content-Type": "application/json"})
    token = json.loads(urllib.request.urlopen(req, timeout=30).read())["token"]
    req = urllib.request.Request(
        f"{live_server.url}/dicomweb/studies/{DEMO_ECG_STEMI_STUDY_UID}",
        headers={"Authorization": f"Bearer {token}",
                 "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    response = urllib.request.urlopen(req, timeout=30)
    ctype = response.headers["Content-Type"]
    boundary = ctype.split("boundary=")[1].split(";")[0].strip('"').encode()
    data = response.read()
    part = data.split(b"--" + boundary)[1]
    ds = pydicom.dcmread(io.BytesIO(part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]))
    return [ds.waveform_array(i) for i in range(len(ds.WaveformSequence))]


def _open_stemi(page, live_server) -> None:
    sign_in(page, "dr.li", live_server.password)
    row = tid(page, "study-row").filter(has_text=STEMI_PATIENT_ID)
    row.first.wait_for(timeout=30_000)
    row.first.click()
    page.wait_for_url("**/ecg.html?study=*", timeout=30_000)
    page.locator('[data-testid="ecg-view"][data-ready="true"]').wait_for(timeout=30_000)


def test_ecg_viewer_values_scale_calipers(new_probe, live_server):
    probe = new_probe(viewport=(1920, 1080))
    page = probe.page
    page.set_default_timeout(30_000)
    _open_stemi(page, live_server)

    # Screening and the device's readings beside the tracing.
    assert "Suspected critical" in tid(page, "ecg-screening-flag").inner_text()
    codes = page.eval_on_selector_all('[data-testid="ecg-screening-reasons"] li',
                                      "els => els.map(e => e.dataset.code)")
    assert "st_elevation" in codes and "device" in codes
    assert tid(page, "ecg-qrs").inner_text() == "92 ms"
    assert tid(page, "ecg-hr").inner_text().endswith("/min")
    assert not tid(page, "ecg-median-section").is_hidden()

    # Values in the viewer's data equal pydicom's waveform_array (every group, every lead).
    expected = _waveform_arrays(live_server)
    for g, arr in enumerate(expected):
        for c in range(arr.shape[1]):
            mine = np.asarray(page.evaluate(f"() => window.huizhenEcg.values({g}, {c})"))
            np.testing.assert_array_equal(mine, arr[:, c])

    # Scale: 25 mm/s and 10 mm/mV on the screen's px/mm (96/25.4 until calibrated).
    scale = page.evaluate("() => window.huizhenEcg.scale()")
    px = 96 / 25.4
    assert scale["pxPerMm"] == pytest.approx(px)
    assert scale["speed"] == 25 and scale["gain"] == 10
    assert scale["pxPerSample"] == pytest.approx(25 * px / 500)
    assert scale["mmPerSample"] == pytest.approx(0.05)
    assert scale["pxPerMv"] == pytest.approx(10 * px)
    assert scale["cssWidth"] == pytest.approx(scale["widthMm"] * px, abs=0.6)
    # 10 s at 25 mm/s = 250 mm of rhythm strip, plus the margins.
    assert scale["widthMm"] == pytest.approx(265)
    screenshot(page, "ecg-stemi-1080p")

    tid(page, "ecg-gain").select_option("20")
    tid(page, "ecg-speed").select_option("50")
    scale = page.evaluate("() => window.huizhenEcg.scale()")
    assert scale["pxPerMv"] == pytest.approx(20 * px)
    assert scale["pxPerSample"] == pytest.approx(50 * px / 500)
    tid(page, "ecg-gain").select_option("10")
    tid(page, "ecg-speed").select_option("25")

    # Calipers: 25 mm across at 25 mm/s = 1000 ms; 10 mm up at 10 mm/mV = 1 mV; 60/min.
    page.evaluate("() => window.huizhenEcg.caliper({x: 20, y: 30}, {x: 45, y: 20})")
    assert tid(page, "ecg-caliper-ms").inner_text() == "1000 ms"
    assert tid(page, "ecg-caliper-mv").inner_text() == "1.00 mV"
    assert tid(page, "ecg-caliper-bpm").inner_text() == "60 /min"
    # ... and with the mouse: a drag of 20 mm (800 ms at 25 mm/s).
    box = tid(page, "ecg-paper").bounding_box()
    page.mouse.move(box["x"] + 30 * px, box["y"] + 20 * px)
    page.mouse.down()
    page.mouse.move(box["x"] + 50 * px, box["y"] + 20 * px, steps=5)
    page.mouse.up()
    ms = float(tid(page, "ecg-caliper-ms").inner_text().split()[0])
    assert abs(ms - 800) <= 12  # a CSS pixel is ~10.6 ms at this scale

    # Calibration: the 100 mm bar measured 80 mm → px/mm × 1.25, kept across a reload.
    tid(page, "ecg-calibrate").click()
    bar = tid(page, "ecg-calibration-bar").bounding_box()
    assert bar["width"] == pytest.approx(100 * px, abs=0.6)
    tid(page, "ecg-calibration-mm").fill("80")
    tid(page, "ecg-calibration-save").click()
    scale = page.evaluate("() => window.huizhenEcg.scale()")
    assert scale["pxPerMm"] == pytest.approx(px * 1.25)
    assert scale["cssWidth"] == pytest.approx(scale["widthMm"] * px * 1.25, abs=0.6)
    assert "(calibrated)" in tid(page, "ecg-scale").inner_text()
    page.reload()
    page.locator('[data-testid="ecg-view"][data-ready="true"]').wait_for()
    assert page.evaluate("() => window.huizhenEcg.scale().pxPerMm") == pytest.approx(px * 1.25)
    tid(page, "ecg-calibrate").click()
    tid(page, "ecg-calibration-reset").click()
    assert page.evaluate("() => window.huizhenEcg.scale().pxPerMm") == pytest.approx(px)

    # Single-lead zoom: V2 for the whole 10 s at 50 mm/s, 20 mm/mV.
    tid(page, "ecg-lead").select_option("V2")
    scale = page.evaluate("() => window.huizhenEcg.scale()")
    assert scale["speed"] == 50 and scale["gain"] == 20
    assert scale["widthMm"] == pytest.approx(10 + 500 + 5)

    # The full tracing is drawn soon after the page asks for it (bench/ecg.py measures).
    timing = page.evaluate("() => window.huizhenEcg.state.timing")
    assert timing["drawn"] - timing["requested"] < 3000

    # Chinese.
    page.locator('[data-testid="lang-toggle"]').click()
    assert "疑似危急值" in tid(page, "ecg-screening-flag").inner_text()
    assert "走纸速度" in page.locator(".ecg-tools").inner_text()
    assert probe.console_errors() == []


def test_ecg_print_is_true_scale(new_probe, live_server):
    probe = new_probe()
    page = probe.page
    page.set_default_timeout(30_000)
    _open_stemi(page, live_server)
    page.emulate_media(media="print")
    page.evaluate("() => window.dispatchEvent(new Event('beforeprint'))")
    width = page.evaluate(
        "() => document.querySelector('[data-testid=ecg-paper]').style.width")
    assert width == "265mm"
    assert tid(page, "ecg-tools").count() == 0 or page.locator(".ecg-tools").is_hidden()
    pdf = page.pdf(format="A4", landscape=True)
    assert pdf[:4] == b"%PDF"
    assert probe.console_errors() == []


@pytest.fixture(scope="module")
def ecg_room_server(redis_server, turn_server, live_server):
    """A server of its own (the uploads below do not reach the shared one's study lists) with
    the demo's ECG centre (department ecg) and one more reader, exp.ecg."""
    from tests.browser.conftest import REDIS_DB, start_live_server

    with start_live_server(redis_server, REDIS_DB + 7, turn_server) as server:
        admin = _token(server, "admin")
        _post(server, "/api/admin/users", {"username": "exp.ecg", "role": "expert",
                                           "password": server.password, "department": "ecg"},
              admin)
        yield server


def _token(server, user: str) -> str:
    return _post(server, "/api/auth/login", {"username": user, "password": server.password})[
        "token"]


def _post(server, path: str, body: dict, token: str | None = None, raw: bytes | None = None,
          ctype: str = "application/json") -> dict:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{server.url}{path}", headers=headers,
                                 data=raw if raw is not None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"{}")


@pytest.mark.timeout(600)  # a second demo server is seeded first
def test_ecg_reading_from_upload_to_critical_value(new_probe, ecg_room_server):
    """#11's 'done when' across the pages: a township upload of an acute MI goes to the top of
    the ECG reading list flagged; the reader opens it on the reading page, which shows the ECG
    viewer (calipers, true scale) beside the report; the critical value is raised and the clinic
    acknowledges it with a read-back."""
    from media.ecg.synthetic import Spec, ecg_bytes

    server = ecg_room_server
    doctor = _token(server, "dr.li")
    boundary = "hzecgboundary"
    for spec in (Spec("nsr", seed=21), Spec("stemi", rate=88, seed=22)):
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"ecg.dcm\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode() + ecg_bytes(spec, patient_id=f"QS-ECG-{spec.condition}") + \
            f"\r\n--{boundary}--\r\n".encode()
        _post(server, "/api/uploads", {}, doctor, raw=body,
              ctype=f"multipart/form-data; boundary={boundary}")
    reader = _token(server, "exp.ecg")
    req = urllib.request.Request(f"{server.url}/api/worklist?modality=ECG",
                                 headers={"Authorization": f"Bearer {reader}"})
    items = json.loads(urllib.request.urlopen(req, timeout=30).read())["items"]
    # The demo's two ECGs are on the list too: every suspected-critical one comes before every
    # other, so the new STEMI is above the new normal ECG and among the flagged at the top.
    flagged = [i["flags"].startswith("suspected_critical") for i in items]
    assert flagged == sorted(flagged, reverse=True), items
    uploaded = [i for i in items if i["patient_id"].startswith("QS-ECG-")]
    assert [i["patient_id"] for i in uploaded] == ["QS-ECG-stemi", "QS-ECG-nsr"]
    top = uploaded[0]
    assert top["flags"].startswith("suspected_critical") and flagged[items.index(top)]
    _post(server, f"/api/worklist/{top['id']}/claim", {}, reader)

    probe = new_probe(viewport=(1920, 1080), base_url=server.url)
    page = probe.page
    page.set_default_timeout(30_000)
    page.goto("/ui/expert.html")
    tid(page, "login-username").fill("exp.ecg")
    tid(page, "login-password").fill(server.password)
    tid(page, "login-submit").click()
    tid(page, "logout").wait_for()  # signed in: the session is in sessionStorage
    page.goto(f"/ui/reading.html?request={top['id']}")
    page.locator('[data-testid="ecg-view"][data-ready="true"]').wait_for()
    assert "Suspected critical" in tid(page, "ecg-screening-flag").inner_text()
    page.evaluate("() => window.huizhenEcg.caliper({x: 20, y: 30}, {x: 30, y: 30})")
    assert tid(page, "ecg-caliper-ms").inner_text() == "400 ms"
    screenshot(page, "ecg-reading-page")
    # The report editor holds the ECG template, prefilled from the device's measurements.
    page.locator('[data-testid=report-editor][data-kind=reading]').wait_for()
    assert tid(page, "report-ecg-rate").input_value() != ""
    tid(page, "report-ecg-rhythm").fill("Sinus rhythm 窦性心律")
    tid(page, "report-ecg-st_t").fill("ST elevation V1-V4 ST段抬高")
    tid(page, "report-ecg-conclusion").fill("Acute anterior STEMI 急性前壁心肌梗死")
    tid(page, "report-field-findings").fill("ST elevation in V1-V4.")
    tid(page, "report-field-impression").fill("Acute anterior STEMI.")
    page.locator('[data-testid=report-save-status][data-key="editor.saved"]').wait_for(
        timeout=15_000)
    tid(page, "report-sign").click()
    page.locator('[data-testid=report-version][data-status=final]').wait_for(timeout=20_000)
    with page.context.expect_page() as new_page:
        tid(page, "report-print").first.click()
    paper = new_page.value
    tid(paper, "print-document").wait_for(timeout=20_000)
    assert "Sinus rhythm 窦性心律" in tid(paper, "print-sections").inner_text()
    # The tracing at true scale in CSS mm (96 px per 25.4 mm): the rhythm sheet 260 × 140 mm
    # (10 mm calibration lead-in + 10 s), then the synthetic ECG's median beats.
    img = paper.locator("[data-testid=print-tracing] img")
    img.first.wait_for()
    assert img.count() == 2
    sizes = paper.evaluate("(all) => all.map((i) => [i.getBoundingClientRect().width, "
                           "i.getBoundingClientRect().height])", img.element_handles())
    mm = 96 / 25.4
    assert abs(sizes[0][0] - 260 * mm) < 1.0 and abs(sizes[0][1] - 140 * mm) < 1.0, sizes
    assert abs(sizes[1][1] - 105 * mm) < 1.0, sizes
    screenshot(paper, "ecg-report-print")
    # The reader raises the critical value on the request; the clinic acknowledges it.
    alert = _post(server, "/api/alerts", {"finding": "Acute anterior STEMI",
                                          "item_id": top["id"]}, reader)["alert"]
    acked = _post(server, f"/api/alerts/{alert['id']}/acknowledge",
                  {"read_back": "acute anterior STEMI", "receiver_name": "Dr Li"}, doctor)
    assert acked["alert"]["state"] == "acknowledged"
    assert probe.console_errors(allow=("Failed to load resource",)) == []

"""Messages, landing pages and the 404 page of the web client, in a real chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import REDIS_DB, REPO, screenshot, topbar_click
from tests.browser.test_viewer import HTTP_ERROR_LOG, sign_in, tid, wait_text

pytestmark = pytest.mark.browser


def test_unknown_ui_path_gets_the_404_page(new_probe, live_server):
    p = new_probe()
    page = p.page
    response = page.goto("/ui/no/such/page.html")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    tid(page, "not-found").wait_for()
    assert "Page not found" in tid(page, "not-found").inner_text()
    assert tid(page, "not-found-path").inner_text() == "/ui/no/such/page.html"
    screenshot(page, "not-found")
    # the page's own stylesheet and script loaded from that depth (absolute URLs)
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != "rgba(0, 0, 0, 0)"
    topbar_click(page, "lang-toggle")
    assert "页面不存在" in tid(page, "not-found").inner_text()
    tid(page, "not-found-home").click()
    page.wait_for_url(re.compile(r"/ui/$"))
    tid(page, "login-form").wait_for()
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_unknown_ui_path_in_chinese_and_api_404_stays_json(new_probe, live_server):
    p = new_probe(locale="zh-CN")
    page = p.page
    assert page.goto("/ui/js/").status == 404  # a directory is not a page either
    assert "页面不存在" in tid(page, "not-found").inner_text()
    login = urllib.request.Request(
        f"{live_server.url}/api/auth/login", method="POST",
        data=json.dumps({"username": "dr.li", "password": live_server.password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login) as r:
        token = json.load(r)["token"]
    api = urllib.request.Request(
        f"{live_server.url}/api/no-such-route", headers={"Authorization": f"Bearer {token}"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(api)
    assert caught.value.code == 404
    assert caught.value.headers["Content-Type"].startswith("application/json")
    assert json.load(caught.value)["error"]["code"] == "not_found"
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_doctor_lands_on_the_study_list(probe, live_server):
    page = probe.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "study-row").first.wait_for()
    assert page.url.endswith("/ui/")
    assert tid(page, "nav-kiosk").is_visible()
    assert tid(page, "role-home").is_hidden()
    assert probe.console_errors() == []


def test_expert_lands_on_the_expert_workstation(probe, live_server):
    page = probe.page
    sign_in(page, "exp.zhang", live_server.password)
    page.wait_for_url(re.compile(r"/ui/expert\.html"))
    tid(page, "consult-list").wait_for(state="attached")
    tid(page, "logout").wait_for()  # signed in there with the same session, no second sign-in
    assert tid(page, "login-form").count() == 0 or tid(page, "login-form").is_hidden()
    assert probe.console_errors() == []


def test_coordinator_lands_on_the_coordination_page(new_probe, live_server):
    p = new_probe(locale="zh-CN")
    page = p.page
    sign_in(page, "coord.liu", live_server.password)
    page.wait_for_url(re.compile(r"/ui/coordinator\.html"))  # lands on the MDT page
    tid(page, "coordinator-page").wait_for()
    page.goto("/ui/")  # the study list's address: the panel links back to it
    home = tid(page, "role-home")
    home.wait_for()
    assert home.get_attribute("data-role") == "coordinator"
    assert "多学科会诊（MDT）" in tid(page, "role-home-text").inner_text()
    assert tid(page, "role-home-coordinator").is_visible()
    wait_text(page, "study-count", "个检查", absent="加载")
    assert tid(page, "studies-error").is_hidden()
    screenshot(page, "coordinator-home-zh")
    topbar_click(page, "lang-toggle")
    assert "MDT" in tid(page, "role-home-text").inner_text()
    tid(page, "role-home-coordinator").click()
    page.wait_for_url(re.compile(r"/ui/coordinator\.html"))
    assert p.console_errors() == []


def test_admin_gets_a_manage_page_not_an_error(probe, live_server):
    page = probe.page
    sign_in(page, "admin", live_server.password)
    page.wait_for_url(re.compile(r"/ui/admin\.html$"))  # lands on the admin page
    tid(page, "admin-page").wait_for()
    page.goto("/ui/")  # the study-list address shows the admin panel, linking back
    home = tid(page, "role-home")
    home.wait_for()
    assert tid(page, "role-home-admin").is_visible()
    assert home.get_attribute("data-role") == "admin"
    assert "not patient data" in tid(page, "role-home-text").inner_text()
    assert "huizhen user add" in tid(page, "role-home-cli").inner_text()
    screenshot(page, "admin-home")
    assert tid(page, "studies-error").is_hidden()
    assert tid(page, "study-table").is_hidden()
    page.reload()  # a reload keeps the panel (no study list request, no red error)
    home.wait_for()
    assert tid(page, "studies-error").is_hidden()
    assert probe.console_errors() == []


def test_empty_search_says_zero_studies(new_probe, live_server):
    for locale, zero in (("en-US", "^0 studies$"), ("zh-CN", "^共 0 个检查$")):
        p = new_probe(locale=locale)
        page = p.page
        sign_in(page, "dr.li", live_server.password)
        tid(page, "study-row").first.wait_for()
        tid(page, "study-search").fill("nobody-by-this-name")
        tid(page, "search-submit").click()
        wait_text(page, "study-count", zero)
        assert tid(page, "studies-empty").is_visible()
        assert p.console_errors() == []


def test_viewer_shows_the_error_code_text_not_the_server_message(new_probe, live_server):
    for locale, expected in (("zh-CN", "错误：未找到，或当前账号无权查看。"),
                             ("en-US", "Error: Not found, or this account may not see it.")):
        p = new_probe(locale=locale)
        page = p.page
        sign_in(page, "dr.li", live_server.password)
        tid(page, "study-row").first.wait_for()
        page.goto("/ui/viewer.html?study=1.2.826.0.1.3680043.8.498.999")
        wait_text(page, "viewer-status", re.escape(expected))
        assert "no such study" not in page.locator("body").inner_text()
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_error_catalogue_in_the_page(probe, live_server):
    """messages.js as the pages load it: texts by code with details, ApiError.message follows
    the language, unknown codes never fall back to the server's English."""
    page = probe.page
    page.goto("/ui/")
    out = page.evaluate("""async () => {
      const m = await import('/ui/js/messages.js');
      const api = await import('/ui/js/lib/api.js');
      const i18n = await import('/ui/js/lib/i18n.js');
      const err = new api.ApiError(429, 'too_many_requests', 'wait 15 minutes',
                                   {retry_after_s: 900});
      i18n.setLang('zh');
      const zh = err.message;
      const zhNotFound = String(new api.ApiError(404, 'not_found', 'no such study'));
      // a notice with an error param follows a language switch whole (no "{message}" left)
      const ui = await import('/ui/js/components/call-ui.js');
      const box = document.createElement('div');
      document.body.append(box);
      ui.showNotice(box, 'consult.startFailed', 'error',
                    {message: new api.ApiError(0, 'no_expert_online', 'nobody online')});
      const noticeZh = box.textContent;
      i18n.setLang('en');
      const noticeEn = box.textContent;
      return {
        noticeZh, noticeEn,
        zh, zhNotFound, en: err.message,
        limit: m.errorText('payload_too_large', {limit_bytes: 512 * 2 ** 20}, 'en'),
        unknown: m.errorText('brand_new_code', {}, 'zh'),
        reason: m.failureReasonText(0xC122, 'zh'),
        close: m.closeText(4409, 'en'),
        proxy: new api.ApiError(502, '', '').message,
        network: new api.ApiError(0, '', '').message,
        dom: m.describeError(new DOMException('Permission denied', 'NotAllowedError')),
      };
    }""")
    assert out["zh"] == "短时间内尝试次数过多。请在15分钟后重试。"
    assert out["en"] == "Too many attempts in a short time. Try again in 15 min."
    assert out["zhNotFound"] == "未找到，或当前账号无权查看。"
    assert out["limit"] == "The upload is too large. The limit is 512 MB."
    assert out["unknown"] == "出错了（代码 brand_new_code）。"
    assert out["reason"] == "图像的压缩格式服务器无法读取。"
    assert out["close"].startswith("This account is open on too many pages")
    assert out["proxy"] == "The server could not handle this request."
    assert out["network"].startswith("Cannot reach the server")
    assert out["dom"] == "Permission denied"
    assert out["noticeZh"] == (
        "无法发起呼叫：该科室目前没有专家在线，请选择其他科室，或留下会诊请求。")
    assert out["noticeEn"].startswith("Could not start the call: No expert of this department")
    assert probe.console_errors() == []


def test_upload_lists_each_file_with_a_plain_reason(new_probe, live_server):
    from tests.browser.test_viewer import _tiny_ct

    p = new_probe(locale="zh-CN")
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "upload-open").click()
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(_tiny_ct()))
    ds.PatientID = "QS-UPLOAD-0815"  # not the patient test_viewer's upload test looks for
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    ct = buf.getvalue()
    files = [
        {"name": "胸部CT-1.dcm", "mimeType": "application/dicom", "buffer": ct},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a dicom file"},
    ]
    tid(page, "upload-input").set_input_files(files)
    tid(page, "upload-result-ok").wait_for()
    failed = tid(page, "upload-result-failed")
    assert failed.get_attribute("data-code") == "invalid_dicom"
    assert tid(page, "upload-result-file").inner_text() == "notes.txt"
    assert tid(page, "upload-result-reason").inner_text() == "不是可读取的医学影像文件（DICOM）。"
    assert "成功 1 个，失败 1 个" in tid(page, "upload-status").inner_text()
    screenshot(page, "upload-reasons-zh")

    # the same file again is not "stored" twice; a batch where nothing is stored still lists
    # each file's reason (the server answers 400 nothing_stored)
    tid(page, "upload-input").set_input_files([files[0]])
    wait_text(page, "upload-results", "服务器上已有: 胸部CT-1.dcm")
    tid(page, "upload-input").set_input_files([files[1]])
    wait_text(page, "upload-status", "成功 0 个，失败 1 个")
    assert "不是可读取的医学影像文件（DICOM）" in tid(page, "upload-result-reason").inner_text()
    topbar_click(page, "lang-toggle")  # re-rendered in English
    assert tid(page, "upload-result-reason").inner_text() == (
        "Not a medical image file (DICOM) that can be read.")
    text = tid(page, "upload-results").inner_text()
    assert "0x" not in text and "Failure" not in text  # no DICOM status jargon
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def _add_doctor(live_server, redis_server, username: str) -> None:
    """An account of its own (the CLI, as an operator adds one): locking it out touches no other
    test's account."""
    env = {**os.environ, "HUIZHEN_DATA_DIR": str(live_server.data_dir),
           "HUIZHEN_REDIS_URL": redis_server.url(REDIS_DB)}
    r = subprocess.run(
        [sys.executable, "-m", "server", "user", "add", username, "--role", "doctor",
         "--clinic", "qingshui", "--password", "-"],
        cwd=REPO, env=env, input="right-password-1\n", capture_output=True, text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


def _login_status(live_server, username: str, password: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"{live_server.url}/api/auth/login", method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_lockout_is_shown_as_such_with_the_wait(new_probe, live_server, redis_server):
    _add_doctor(live_server, redis_server, "dr.locked")
    for _ in range(30):  # wrong passwords until the server locks the account (429)
        status, body = _login_status(live_server, "dr.locked", "wrong-password")
        if status == 429:
            break
        assert status == 401, body
    assert status == 429, "the account was never locked"
    assert body["error"]["details"]["retry_after_s"] > 0
    p = new_probe(locale="zh-CN")
    page = p.page
    sign_in(page, "dr.locked", "right-password-1")  # even the right password waits
    err = tid(page, "login-error")
    err.wait_for()
    assert err.get_attribute("data-code") == "too_many_requests"
    text = err.inner_text()
    assert "登录失败次数过多" in text and re.search(r"请在\d+分钟后重试", text), text
    assert "无法连接服务器" not in text
    topbar_click(page, "lang-toggle")
    text = err.inner_text()
    assert re.search(r"Too many failed sign-ins.*try again in \d+ min", text), text
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []

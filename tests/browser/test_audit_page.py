"""The audit page in a real chromium: an auditor lands there, sees the trail newest first,
filters by user and action, lists break-glass views flagged, pages back and exports CSV — in
English and Chinese; other roles are refused."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from pathlib import Path

import pytest

from server.demo.seed import DEMO_HETANG_CR_STUDY_UID
from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_viewer import sign_in, tid

pytestmark = pytest.mark.browser


def _api(live_server, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{live_server.url}{path}", method="POST",
                                 data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def test_auditor_filters_the_trail_and_exports(new_probe, live_server):
    # something to find: the neurologist breaks the glass on a Hetang study
    token = _api(live_server, "/api/auth/login",
                 {"username": "exp.chen", "password": live_server.password})["token"]
    _api(live_server, f"/api/studies/{DEMO_HETANG_CR_STUDY_UID}/break-glass",
         {"reason": "stroke alarm, no consult reachable"}, token)

    p = new_probe()
    page = p.page
    sign_in(page, "audit.zhou", live_server.password)
    page.wait_for_url(re.compile(r"/ui/audit\.html$"))
    tid(page, "audit-page").wait_for()
    tid(page, "audit-row").first.wait_for()
    assert tid(page, "notification-badge").count() == 1  # the shell's badge on every page

    tid(page, "audit-user").fill("exp.chen")
    tid(page, "audit-search").click()
    page.wait_for_function("""() => {
      const rows = [...document.querySelectorAll('[data-testid=audit-row]')];
      return rows.length > 0 && rows.every(r => r.dataset.user === 'exp.chen');
    }""")
    tid(page, "audit-action").fill("break_glass.*")
    tid(page, "audit-search").click()
    page.wait_for_function("""() => {
      const rows = [...document.querySelectorAll('[data-testid=audit-row]')];
      return rows.length > 0 && rows.every(r => r.dataset.action === 'break_glass.grant');
    }""")
    row = tid(page, "audit-row").first
    assert row.get_attribute("data-break-glass") == "1"
    assert row.locator('[data-testid="audit-row-break-glass"]').inner_text() == "BREAK-GLASS"
    assert "stroke alarm" in row.locator('[data-testid="audit-row-details"]').inner_text()

    tid(page, "audit-reset").click()
    tid(page, "audit-break-glass").check()
    tid(page, "audit-search").click()
    page.wait_for_function("""() => {
      const rows = [...document.querySelectorAll('[data-testid=audit-row]')];
      return rows.length > 0 && rows.every(r => r.dataset.breakGlass === '1');
    }""")
    with page.expect_download() as download:
        tid(page, "audit-export").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and all(r["break_glass"] == "1" for r in rows)

    topbar_click(page, "lang-toggle")
    assert tid(page, "audit-row-break-glass").first.inner_text() == "紧急访问"
    assert page.locator("th").first.inner_text() == "时间"
    screenshot(page, "audit-zh")
    topbar_click(page, "lang-toggle")
    assert p.console_errors() == []


def test_other_roles_are_refused(new_probe, live_server):
    p = new_probe()
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "logout").wait_for()
    page.goto("/ui/audit.html")
    tid(page, "audit-forbidden").wait_for()
    assert tid(page, "audit-page").is_hidden()

"""The MDT coordinator's page in a real chromium: a coordinator lands on it, schedules an MDT
with two experts and a clinic from a proposed case, sees the time conflict with the demo's MDT,
edits it; the invited expert sees the invitation on the workstation; the doctor proposes a study
from the study list; the coordinator cancels the session. In English and Chinese."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_viewer import sign_in, tid, wait_text

pytestmark = pytest.mark.browser
DEMO_MDT_ID = "de00000000000001"
# Half an hour into the demo's MDT (tomorrow, on the hour): the same experts are double-booked.
SET_START = """() => {
  const d = new Date((Math.floor(Date.now() / 3600000) + 24) * 3600000 + 1800000);
  const pad = (n) => String(n).padStart(2, "0");
  const el = document.querySelector('[data-testid="mdt-start"]');
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  el.value = `${day}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  el.dispatchEvent(new Event("change", { bubbles: true }));
}"""


def _api(live_server, username: str, path: str) -> dict:
    login = urllib.request.Request(
        f"{live_server.url}/api/auth/login", method="POST",
        data=json.dumps({"username": username, "password": live_server.password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(f"{live_server.url}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def test_coordinator_schedules_an_mdt_with_two_experts_and_a_clinic(new_probe, live_server):
    p = new_probe()
    page = p.page
    page.set_default_timeout(20_000)
    sign_in(page, "coord.liu", live_server.password)
    page.wait_for_url(re.compile(r"/ui/coordinator\.html"))
    tid(page, "coordinator-page").wait_for()
    # the demo's scheduled session is listed
    page.locator(f'[data-testid="mdt-row"][data-mdt-id="{DEMO_MDT_ID}"]').wait_for()

    tid(page, "mdt-title").fill("Lung nodule board")
    page.evaluate(SET_START)
    tid(page, "mdt-duration").fill("45")
    page.locator('[data-testid="mdt-department"][value="radiology"]').check()
    page.locator('[data-testid="mdt-expert"][value="exp.zhang"]').check()
    page.locator('[data-testid="mdt-expert"][value="exp.chen"]').check()
    tid(page, "mdt-lead").select_option("exp.zhang")
    page.locator('[data-testid="mdt-clinic"][value="hetang"]').check()
    # the waiting proposed case (Qingshui's chest film), found by the coordinator's search
    tid(page, "mdt-proposal-search").fill("QS-2024-0816")
    proposal = page.locator('[data-testid="mdt-proposal"]', has_text="QS-2024-0816")
    proposal.wait_for()
    proposal.locator('[data-testid="mdt-proposal-add"]').click()
    tid(page, "mdt-agenda-case").wait_for()
    assert tid(page, "mdt-agenda-case").count() == 1
    # the experts are also in the demo's MDT then: flagged before scheduling
    page.locator('[data-testid="mdt-conflict"][data-who="exp.zhang"]').wait_for()
    screenshot(page, "coordinator-form")
    tid(page, "mdt-submit").click()
    wait_text(page, "mdt-notice", "Lung nodule board")
    row = page.locator('[data-testid="mdt-row"]', has_text="Lung nodule board")
    row.wait_for()
    assert row.get_attribute("data-state") == "scheduled"
    row.locator('[data-testid="mdt-row-conflict"]').wait_for()
    mdt_id = row.get_attribute("data-mdt-id")

    # what the server holds: two experts, Hetang invited and Qingshui with its case
    seen = _api(live_server, "coord.liu", f"/api/mdt/{mdt_id}")["mdt"]
    assert sorted(seen["experts"]) == ["exp.chen", "exp.zhang"]
    assert sorted(seen["clinics"]) == ["hetang", "qingshui"]
    assert seen["duration_min"] == 45 and seen["lead_expert"] == "exp.zhang"
    assert [c["patient_id"] for c in seen["cases"]] == ["QS-2024-0816"]

    # edit: a new title, SEQUENCE goes up
    row.locator('[data-testid="mdt-edit"]').click()
    assert tid(page, "mdt-title").input_value() == "Lung nodule board"
    assert tid(page, "mdt-agenda-case").count() == 1
    tid(page, "mdt-title").fill("Lung nodule board (2)")
    tid(page, "mdt-submit").click()
    wait_text(page, "mdt-notice", r"Lung nodule board \(2\)")
    page.locator('[data-testid="mdt-row"]', has_text="Lung nodule board (2)").wait_for()
    assert _api(live_server, "coord.liu", f"/api/mdt/{mdt_id}")["mdt"]["sequence"] == 1

    # the invited expert sees the invitation on the workstation (join from 15 min before)
    expert = new_probe()
    sign_in(expert.page, "exp.chen", live_server.password)
    expert.page.wait_for_url(re.compile(r"/ui/expert\.html"))
    invitation = expert.page.locator(
        f'[data-testid="mdt-invitation"][data-mdt-id="{mdt_id}"]')
    invitation.wait_for()
    assert "Lung nodule board (2)" in invitation.inner_text()
    invitation.locator('[data-testid="mdt-invitation-join-later"]').wait_for()
    # Hetang's doctor sees it on the study list, without Qingshui's patient
    doctor = new_probe()
    sign_in(doctor.page, "dr.wang", live_server.password)
    doc_inv = doctor.page.locator(f'[data-testid="mdt-invitation"][data-mdt-id="{mdt_id}"]')
    doc_inv.wait_for()
    assert "QS-2024-0816" not in doctor.page.content()

    # Chinese
    topbar_click(page, "lang-toggle")
    wait_text(page, "mdt-form-heading", "安排 MDT")
    assert "已安排" in row.inner_text() or "已安排" in page.locator(
        '[data-testid="mdt-row"]', has_text="Lung nodule board (2)").inner_text()
    topbar_click(page, "lang-toggle")

    # cancel (two steps): it moves to the past, the proposal waits again
    r = page.locator('[data-testid="mdt-row"]', has_text="Lung nodule board (2)")
    r.locator('[data-testid="mdt-cancel"]').click()
    r.locator('[data-testid="mdt-cancel-confirm"]').click()
    wait_text(page, "mdt-notice", "cancelled")
    page.locator(f'[data-testid="mdt-past"] [data-testid="mdt-row"][data-mdt-id="{mdt_id}"]'
                 ).wait_for()
    assert page.locator(f'[data-testid="mdt-past"] [data-mdt-id="{mdt_id}"]'
                        ).get_attribute("data-state") == "cancelled"
    waiting = _api(live_server, "coord.liu", "/api/mdt/proposals")["proposals"]
    assert "QS-2024-0816" in [x["patient_id"] for x in waiting]
    for probe in (p, expert, doctor):
        assert probe.console_errors() == []


def test_doctor_proposes_a_study_for_an_mdt(new_probe, live_server):
    p = new_probe(locale="zh-CN")
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    row = page.locator('[data-testid="study-row"]', has_text="QS-2024-0815")
    row.wait_for()
    row.locator('[data-testid="study-propose-mdt"]').click()
    tid(page, "mdt-propose-dialog").wait_for()
    tid(page, "mdt-propose-reason").fill("结节增大，请多学科讨论")
    page.locator('[data-testid="mdt-propose-department"][value="radiology"]').check()
    tid(page, "mdt-propose-submit").click()
    page.locator('[data-testid="mdt-propose-status"][data-state="done"]').wait_for()
    assert "协调员" in tid(page, "mdt-propose-status").inner_text()
    found = _api(live_server, "coord.liu", "/api/mdt/proposals?q=%E7%BB%93%E8%8A%82")
    assert [x["patient_id"] for x in found["proposals"]] == ["QS-2024-0815"]
    assert p.console_errors() == []


def _post(live_server, username: str, path: str, body: dict, method: str = "POST") -> dict:
    login = urllib.request.Request(
        f"{live_server.url}/api/auth/login", method="POST",
        data=json.dumps({"username": username, "password": live_server.password}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(f"{live_server.url}{path}", method=method,
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def test_lead_expert_records_in_the_room_coordinator_concludes_clinic_gets_summary(
        new_probe, live_server):
    import time

    # a session starting in 5 minutes (open at once) with the Hetang chest film on its agenda
    hetang = _post(live_server, "dr.wang", "/api/mdt/proposals", {
        "study_uids": ["1.2.826.0.1.3680043.8.498.20261120.3"], "reason": "Mediastinum"},
    )["proposal"]
    mdt = _post(live_server, "coord.liu", "/api/mdt", {
        "title": "Short board", "starts_at": int(time.time()) + 300, "duration_min": 15,
        "experts": ["exp.zhang"], "lead_expert": "exp.zhang",
        "cases": [{"proposal_id": hetang["id"]}]})["mdt"]
    assert mdt["state"] == "open"

    lead = new_probe()
    page = lead.page
    page.set_default_timeout(20_000)
    sign_in(page, "exp.zhang", live_server.password)
    page.wait_for_url(re.compile(r"/ui/expert\.html"))
    invitation = page.locator(f'[data-testid="mdt-invitation"][data-mdt-id="{mdt["id"]}"]')
    invitation.locator('[data-testid="mdt-invitation-join"]').click()
    page.wait_for_url(re.compile(r"/ui/mdt\.html\?id="))
    tid(page, "mdt-case-conclude").first.click()
    tid(page, "mdt-conclusion-dialog").wait_for()
    tid(page, "mdt-conclusion-diagnosis").fill("Thymoma, stage I")
    tid(page, "mdt-conclusion-plan").fill("Thymectomy")
    tid(page, "mdt-conclusion-department").select_option("radiology")
    tid(page, "mdt-conclusion-save").click()
    page.wait_for_function("""() => !document.querySelector(
        '[data-testid="mdt-conclusion-dialog"]').open""")
    seen = _api(live_server, "coord.liu", f"/api/mdt/{mdt['id']}")["mdt"]
    assert seen["cases"][0]["conclusion"]["diagnosis"] == "Thymoma, stage I"
    assert seen["cases"][0]["conclusion"]["by"] == "exp.zhang"

    coord = new_probe()
    cp = coord.page
    cp.set_default_timeout(20_000)
    sign_in(cp, "coord.liu", live_server.password)
    cp.wait_for_url(re.compile(r"/ui/coordinator\.html"))
    row = cp.locator(f'[data-testid="mdt-row"][data-mdt-id="{mdt["id"]}"]')
    row.locator('[data-testid="mdt-conclusions-open"]').click()
    form = cp.locator('[data-testid="mdt-conclusion-form"]')
    assert form.get_attribute("data-recorded") == "1"
    assert form.locator('[data-testid="mdt-conclusion-diagnosis"]').input_value() == \
        "Thymoma, stage I"
    tid(cp, "mdt-conclude").click()
    wait_text(cp, "mdt-notice", "concluded")
    cp.locator(f'[data-testid="mdt-past"] [data-mdt-id="{mdt["id"]}"] '
               '[data-testid="mdt-summary"]').wait_for()

    # Hetang's doctor: the summary on their page (print page link and PDF)
    doctor = new_probe()
    dp = doctor.page
    sign_in(dp, "dr.wang", live_server.password)
    item = dp.locator(f'[data-testid="mdt-invitation"][data-mdt-id="{mdt["id"]}"]')
    item.locator('[data-testid="mdt-invitation-summary"]').wait_for()
    href = item.locator('[data-testid="mdt-invitation-summary"]').get_attribute("href")
    assert href.startswith("print.html?src=")
    summary = _api(live_server, "dr.wang", f"/api/mdt/{mdt['id']}/summary")
    assert "Thymoma, stage I" in str(summary)
    for probe in (lead, coord, doctor):
        assert probe.console_errors(allow=("404", "Failed to load resource")) == []

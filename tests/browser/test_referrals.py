"""Referrals and the notification badge in a real chromium: a clinic doctor refers a patient up
with the demo CT, the county expert's workstation shows it live (and its badge counts it), the
expert accepts and the doctor's page shows "accepted" live, without a reload — in English and
Chinese."""

from __future__ import annotations

import re

import pytest

from server.demo.seed import DEMO_CT_STUDY_UID
from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_viewer import sign_in, tid

pytestmark = pytest.mark.browser


def _item(page, **data: str):
    attrs = "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    return page.locator(f'[data-testid="referral-item"]{attrs}')


def test_a_referral_accepted_live_on_both_sides(new_probe, live_server):
    doctor, expert = new_probe(), new_probe(locale="zh-CN")
    dp, ep = doctor.page, expert.page
    sign_in(ep, "exp.zhang", live_server.password)
    ep.wait_for_url(re.compile(r"/ui/expert\.html$"))
    tid(ep, "referrals").wait_for()
    tid(ep, "notification-badge").wait_for()
    unread_before = int(tid(ep, "notifications").get_attribute("data-unread") or 0)

    sign_in(dp, "dr.li", live_server.password)
    tid(dp, "referral-new").click()  # the doctor's study list carries the clinic's referrals
    form = tid(dp, "referral-form")
    form.wait_for()
    tid(dp, "referral-route").select_option(label="Up to 影像科 Radiology")
    tid(dp, "referral-reason-input").fill("Suspected intracranial haemorrhage: CT for review")
    tid(dp, "referral-diagnosis").fill("左侧肢体无力")
    tid(dp, "referral-studies").locator("option").first.wait_for(state="attached")
    tid(dp, "referral-studies").select_option(DEMO_CT_STUDY_UID)
    tid(dp, "referral-submit").click()
    tid(dp, "referrals-notice").wait_for()
    mine = _item(dp, state="requested", side="sender").first
    mine.wait_for()
    rid = mine.get_attribute("data-id")
    assert "Radiology" in mine.locator('[data-testid="referral-direction"]').inner_text()
    assert mine.locator('[data-testid="referral-cancel"]').count() == 1

    # the county side sees it at once (a notification over the page WebSocket), in Chinese
    theirs = _item(ep, id=rid)
    theirs.wait_for(timeout=15_000)
    assert theirs.get_attribute("data-state") == "requested"
    assert theirs.locator('[data-testid="referral-state"]').inner_text() == "已申请"
    ep.wait_for_function(
        "n => Number(document.querySelector('[data-testid=notifications]').dataset.unread) > n",
        arg=unread_before)
    tid(ep, "notification-badge").click()
    first = tid(ep, "notification-item").first
    assert first.get_attribute("data-kind") == "referral.changed"
    assert "已申请" in first.inner_text()
    screenshot(ep, "referral-expert-zh")
    tid(ep, "notification-badge").click()
    assert theirs.locator('[data-testid="referral-study"]').count() == 1

    theirs.locator('[data-testid="referral-accept"]').click()
    _item(ep, id=rid, state="accepted").wait_for()
    # ... and the doctor's page follows live
    _item(dp, id=rid, state="accepted").wait_for(timeout=15_000)
    assert _item(dp, id=rid).locator('[data-testid="referral-state"]').inner_text() == "Accepted"
    assert int(tid(dp, "notifications").get_attribute("data-unread")) >= 1
    assert _item(dp, id=rid).locator('[data-testid="referral-cancel"]').count() == 1
    screenshot(dp, "referral-doctor-en")

    # declining needs a reason; the doctor reads it (another referral)
    tid(dp, "referral-new").click()
    tid(dp, "referral-route").select_option(label="Up to 影像科 Radiology")
    tid(dp, "referral-patient-id").fill("QS-2024-0999")
    tid(dp, "referral-reason-input").fill("chest pain")
    tid(dp, "referral-submit").click()
    tid(dp, "referrals-notice").wait_for()
    second = _item(dp, state="requested", side="sender").first
    rid2 = second.get_attribute("data-id")
    other = _item(ep, id=rid2)
    other.wait_for(timeout=15_000)
    other.locator('[data-testid="referral-decline"]').click()
    tid(ep, "referral-note").fill("请转呼吸内科")
    tid(ep, "referral-note-submit").click()
    _item(dp, id=rid2, state="declined").wait_for(timeout=15_000)
    assert "请转呼吸内科" in _item(dp, id=rid2).locator(
        '[data-testid="referral-decline-reason"]').inner_text()
    assert doctor.console_errors() == [] and expert.console_errors() == []


def test_the_kiosk_receives_a_down_referral_live(new_probe, live_server):
    from tests.browser.test_audit_page import _api
    from tests.browser.test_call import sign_in as kiosk_sign_in

    kiosk = new_probe(locale="zh-CN")
    page = kiosk.page
    kiosk_sign_in(kiosk, "/ui/kiosk.html?video=320x240", "dr.li", live_server.password)
    topbar_click(page, "referrals-open")  # the pre-call screen keeps its layout: a dialog
    tid(page, "referrals-dialog").wait_for()
    tid(page, "referrals").wait_for()

    token = _api(live_server, "/api/auth/login",
                 {"username": "exp.zhang", "password": live_server.password})["token"]
    down = _api(live_server, "/api/referrals", {
        "direction": "down", "clinic": "qingshui", "reason": "出院，转回基层康复",
        "care_plan": "康复训练 3 个月；阿司匹林 100 mg 每日一次；1 个月后复查 CT",
        "study_uids": [DEMO_CT_STUDY_UID]}, token)
    item = _item(page, id=down["id"])
    item.wait_for(timeout=15_000)  # live, while the dialog is open
    assert item.get_attribute("data-direction") == "down"
    assert item.get_attribute("data-side") == "receiver"
    assert "阿司匹林" in item.locator('[data-testid="referral-care-plan"]').inner_text()
    item.locator('[data-testid="referral-accept"]').click()
    _item(page, id=down["id"], state="accepted").wait_for()
    _item(page, id=down["id"]).locator('[data-testid="referral-arrive"]').click()
    _item(page, id=down["id"], state="arrived").wait_for()
    screenshot(page, "referral-kiosk-zh")
    tid(page, "referrals-close").click()
    assert tid(page, "referrals-dialog").is_hidden()
    assert kiosk.console_errors() == []


def test_admin_configures_referral_routes(new_probe, live_server):
    p = new_probe()
    page = p.page
    sign_in(page, "admin", live_server.password)
    page.wait_for_url(re.compile(r"/ui/admin\.html$"))
    row = page.locator(
        '[data-testid="route-row"][data-clinic="hetang"][data-department="radiology"]')
    page.locator('[data-testid="route-row"][data-clinic="qingshui"]').first.wait_for()  # demo
    assert row.count() == 0
    tid(page, "route-add-clinic").select_option("hetang")
    tid(page, "route-add-department").select_option("radiology")
    tid(page, "route-add-direction").select_option("up")
    tid(page, "route-add-submit").click()
    row.wait_for()
    assert row.get_attribute("data-direction") == "up"
    row.locator('[data-testid="route-remove"]').click()
    row.wait_for(state="detached")
    assert p.console_errors() == []

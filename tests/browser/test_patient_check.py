"""Patient safety on the call pages (#8): the kiosk takes the patient from the attached study;
a typed patient that is not the study's needs the doctor's explicit confirmation before the
call (the server refuses it too: `patient_mismatch`, then `confirm_patient_mismatch`); the
expert sees the confirmed mismatch as a warning banner."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot
from tests.browser.test_call import DEMO_CT_STUDY_UID, SMALL, no_errors, sign_in, tid

pytestmark = pytest.mark.browser


def test_study_sets_the_patient_and_a_mismatch_needs_confirmation(new_probe, live_server):
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    page = kiosk.page
    tid(page, "dept-radiology").click()
    tid(page, "patient-name").fill("赵六")
    tid(page, "patient-id").fill("QS-2099-0001")
    page.wait_for_function(
        "uid => [...document.querySelectorAll('[data-testid=study-select] option')]"
        ".some(o => o.value === uid)", arg=DEMO_CT_STUDY_UID)
    tid(page, "study-select").select_option(DEMO_CT_STUDY_UID)
    # the patient comes from the study (its option label starts with name · ID)
    label = page.evaluate(
        "uid => [...document.querySelectorAll('[data-testid=study-select] option')]"
        ".find(o => o.value === uid).textContent", DEMO_CT_STUDY_UID)
    study_id = tid(page, "patient-id").input_value()
    assert study_id and study_id != "QS-2099-0001" and study_id in label
    assert tid(page, "patient-name").input_value() not in ("", "赵六")
    tid(page, "patient-from-study").wait_for()
    assert tid(page, "patient-mismatch").is_hidden()

    # typing another patient over it: a warning, and Call needs the explicit confirmation
    tid(page, "patient-name").fill("赵六")
    tid(page, "patient-id").fill("QS-2099-0001")
    tid(page, "patient-mismatch").wait_for()
    text = tid(page, "patient-mismatch-text").inner_text()
    assert study_id in text and "QS-2099-0001" in text, text
    tid(page, "consult-question").fill("Which patient is this CT?")
    tid(page, "call-start").click()
    tid(page, "consult-error").wait_for()
    assert "tick" in tid(page, "consult-error").inner_text()
    screenshot(page, "kiosk-patient-mismatch")
    assert page.locator("#waiting-view").is_hidden()
    tid(page, "patient-mismatch-confirm").check()
    tid(page, "call-start").click()
    tid(page, "waiting-elapsed").wait_for()

    ring = tid(zhang.page, "consult-ring")
    ring.wait_for()
    tid(zhang.page, "consult-accept").click()
    tid(zhang.page, "consult-info").wait_for()
    # the server marks the consult (patient_check "mismatch_confirmed"); the expert is warned
    consult = zhang.page.wait_for_function(
        "() => window.huizhenConsult && window.huizhenConsult.id ? window.huizhenConsult : null",
        timeout=10_000).json_value()
    assert consult["patient_check"] == "mismatch_confirmed", consult
    banner = tid(zhang.page, "patient-mismatch-banner")
    banner.wait_for()
    zhang.page.locator('[data-testid=participant][data-participant="dr.li"][data-state=connected]'
                       ).wait_for(timeout=20_000)
    assert "QS-2099-0001" in banner.inner_text() and study_id in banner.inner_text()
    screenshot(zhang.page, "expert-patient-mismatch")
    tid(zhang.page, "hang-up").click()
    tid(zhang.page, "consult-empty").wait_for()
    tid(page, "call-ended-done").click()
    no_errors(zhang, kiosk)

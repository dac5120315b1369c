"""The MDT room page (mdt.html, #9) in a real chromium against the live demo server."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_viewer import HTTP_ERROR_LOG, sign_in, tid, wait_text

pytestmark = pytest.mark.browser


def test_mdt_page_signs_in_on_its_own_page_and_explains_a_bad_address(new_probe, live_server):
    for locale, no_id, failed in (
        ("en-US", "^No MDT session in the address", "^Could not open this MDT: "),
        ("zh-CN", "^地址中没有 MDT 会议", "^无法打开该 MDT："),
    ):
        p = new_probe(locale=locale)
        page = p.page
        # no session: the shell's sign-in card on this page, then the room page itself
        page.goto("/ui/mdt.html?id=no-such-mdt")
        tid(page, "login-username").fill("exp.zhang")
        tid(page, "login-password").fill(live_server.password)
        tid(page, "login-submit").click()
        wait_text(page, "notice", failed)
        assert tid(page, "notice").get_attribute("data-kind") == "error"
        assert re.search(r"\?id=no-such-mdt$", page.url)
        assert tid(page, "logout").is_visible() and tid(page, "user-name").is_visible()
        page.goto("/ui/mdt.html")
        wait_text(page, "notice", no_id)
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []


def test_mdt_page_for_a_doctor_without_an_invitation(new_probe, live_server):
    p = new_probe()
    page = p.page
    sign_in(page, "dr.li", live_server.password)
    tid(page, "study-row").first.wait_for()
    page.goto("/ui/mdt.html?id=not-invited")
    wait_text(page, "notice", "^Could not open this MDT: ")
    assert tid(page, "mdt-call").inner_html() == ""  # never joined a room
    assert p.console_errors(allow=HTTP_ERROR_LOG) == []


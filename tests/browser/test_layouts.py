"""Every page fits the real kiosk and workstation screens (#8): at 1024×768, 1280×800, 1366×768,
1920×1080 and portrait 768×1024 the main controls of the kiosk (before the call, with a form
error, waiting, in the call), the expert workstation (ringing, in the call with the viewer
toolbar), the study list and the viewer are inside the viewport and not covered or clipped by a
scrolled container, touch targets are at least 44 px, and each page is screenshotted (into a
temporary directory, printed; `HUIZHEN_LAYOUT_SHOTS=dir` keeps them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.browser.conftest import screenshot, topbar_click
from tests.browser.test_call import (
    DEMO_CT_STUDY_UID,
    SMALL,
    no_errors,
    sign_in,
    start_consult,
    tid,
)
from tests.browser.test_mdt_sync import make_mdt

pytestmark = pytest.mark.browser

SIZES = [(1024, 768), (1280, 800), (1366, 768), (1920, 1080), (768, 1024)]
MIN_TOUCH_PX = 44

# For each listed testid: every visible match must be inside the viewport, inside every clipping
# ancestor, and (unless `cover_ok`) on top at its centre. Returns the problems found.
CHECK_JS = """
([ids, coverOk, firstOnly, scrollOk, minPx]) => {
  const vw = window.innerWidth, vh = window.innerHeight, problems = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && cs.visibility !== 'hidden';
  };
  for (const id of ids) {
    let els = [...document.querySelectorAll(`[data-testid="${id}"]`)].filter(visible);
    if (firstOnly.includes(id)) els = els.slice(0, 1);
    if (!els.length) { problems.push(`${id}: not shown`); continue; }
    for (const el of els) {
      const r = el.getBoundingClientRect();
      if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1) {
        const at = [r.left, r.top, r.width, r.height].map(Math.round);
        problems.push(`${id}: outside the ${vw}x${vh} viewport at ${at}`);
        continue;
      }
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const cs = getComputedStyle(a);
        if (cs.overflowX === 'visible' && cs.overflowY === 'visible') continue;
        const ar = a.getBoundingClientRect();
        if (r.left < ar.left - 1 || r.top < ar.top - 1
            || r.right > ar.right + 1 || r.bottom > ar.bottom + 1) {
          problems.push(`${id}: clipped by ${a.tagName.toLowerCase()}.${a.className}`);
          break;
        }
      }
      if (!coverOk.includes(id)) {
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        if (!hit || !(el === hit || el.contains(hit) || hit.contains(el))) {
          const what = hit ? `${hit.tagName.toLowerCase()}.${hit.className}` : "nothing";
          problems.push(`${id}: covered by ${what}`);
        }
      }
    }
  }
  // the shell's top bar: every shown item (slots are display: contents) inside the bar and the
  // viewport, its own content not cut (a shrunk button's label spills over its neighbour), and
  // no two items overlapping
  const bar = document.querySelector('[data-shell=topbar]');
  if (bar && visible(bar)) {
    const items = [];
    const walk = (parent) => {
      for (const c of parent.children) {
        if (getComputedStyle(c).display === 'contents') walk(c);
        else if (visible(c) && !c.closest('[hidden]')) items.push(c);
      }
    };
    walk(bar);
    for (const el of bar.querySelectorAll('button, a')) {
      const r = el.getBoundingClientRect();
      if (visible(el) && !el.closest('[hidden]') && (r.height < minPx || r.width < minPx)) {
        const what = el.dataset.testid || el.textContent.trim().slice(0, 20);
        problems.push(`top bar touch target ${what}: ${[r.width, r.height].map(Math.round)}`);
      }
    }
    const name = (el) => el.dataset.testid || el.className || el.tagName.toLowerCase();
    const br = bar.getBoundingClientRect();
    const rects = items.map((el) => el.getBoundingClientRect());
    items.forEach((el, i) => {
      const r = rects[i];
      if (r.left < Math.max(br.left, 0) - 1 || r.right > Math.min(br.right, vw) + 1
          || r.top < br.top - 1 || r.bottom > br.bottom + 1) {
        const at = [r.left, r.top, r.width, r.height].map(Math.round);
        problems.push(`top bar ${name(el)}: outside the bar at ${at}`);
      }
      if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) {
        const sizes = `${el.scrollWidth}x${el.scrollHeight} in `
          + `${el.clientWidth}x${el.clientHeight}`;
        problems.push(`top bar ${name(el)}: content clipped (${sizes})`);
      }
      for (let j = 0; j < i; j++) {
        const o = rects[j];
        const dx = Math.min(r.right, o.right) - Math.max(r.left, o.left);
        const dy = Math.min(r.bottom, o.bottom) - Math.max(r.top, o.top);
        if (dx > 1 && dy > 1) problems.push(`top bar ${name(el)} overlaps ${name(items[j])}`);
      }
    });
  }
  const se = document.scrollingElement;
  if (!scrollOk && (se.scrollHeight > vh + 1 || se.scrollWidth > vw + 1)) {
    problems.push(`page scrolls: ${se.scrollWidth}x${se.scrollHeight}`);
  }
  const controls = 'button, select, input:not([type=range]):not([type=file]):not([type=checkbox])';
  for (const el of document.querySelectorAll(controls)) {
    if (!visible(el) || el.closest('[hidden]')) continue;
    const r = el.getBoundingClientRect();
    if (r.height < minPx || r.width < minPx) {
      const name = el.dataset.testid || el.id || el.textContent.trim().slice(0, 20);
      problems.push(`touch target ${name}: ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  return problems;
}
"""

KIOSK_PRECALL = [
    "logout", "selfcheck-retry", "selfcheck-camera", "selfcheck-mic",
    "dept-radiology", "dept-neurology", "dept-respiratory", "dept-ecg", "urgency-routine",
    "urgency-urgent",
    "urgency-emergency", "patient-name", "patient-id", "study-select", "consult-question",
    "call-start",
]
KIOSK_WAITING = ["logout", "waiting-heading", "waiting-elapsed", "waiting-summary", "call-cancel"]
KIOSK_CALL = ["logout", "remote-tile", "self-video", "participants", "mute", "camera-off",
              "hang-up", "net-quality"]
EXPERT_RINGING = ["logout", "consult-ring", "consult-accept"]
VIEWER_TOOLS = ["toolbar", "tool-scroll", "tool-wl", "tool-pan", "viewport", "slice-prev",
                "slice-next", "slice-slider", "series-thumb"]
# on the toolbar's one row or in its "More tools" menu (js/components/viewer/toolbar-fit.js)
VIEWER_MENU_OK = ["preset-lung", "preset-bone", "zoom-out", "zoom-in", "reset"]
EXPERT_CALL = ["logout", "consult-patient", "remote-tile", "self-video", "participants", "mute",
               "camera-off", "hang-up", "invite-username", "invite-department", "invite-send",
               "net-quality", *VIEWER_TOOLS]
STUDY_LIST = ["logout", "nav-kiosk", "upload-open", "study-search",
              "search-submit", "search-clear", "studies-refresh", "study-patient", "study-open"]
# kept in docs/screenshots/ (HUIZHEN_SCREENSHOTS=1) as layout-<page>-<size>.png
DOC_SHOTS = {("kiosk-precall-error", (1024, 768)), ("kiosk-call", (768, 1024)),
             ("expert-call", (1366, 768)), ("expert-call", (768, 1024)),
             ("kiosk-precall", (768, 1024))}
HISTORY = ["history-panel", "history-close", "history-row", "history-outcome"]
FIRST_ONLY = ["history-row", "history-outcome", "study-patient", "study-open", "series-thumb",
              "remote-tile"]
VIEWER = ["back", "lang-toggle", "logout", *VIEWER_TOOLS]
# tiles sit under the self view / overlays by design; the textarea's corner grip is fine
COVER_OK = ["remote-tile", "self-video", "participants", "toolbar", "viewport", "slice-slider",
            "series-thumb", "consult-ring", "waiting-summary"]


# the shell's less-used top-bar links and the viewer's less-used tools: on their bar, or in its
# "More" menu (toolbar-fit.js) with the More button shown
MENU_OK_JS = """
(ids) => ids.flatMap((id) => {
  const el = document.querySelector(`[data-testid="${id}"]`);
  if (!el || el.hidden) return [];
  const menu = el.closest('.tools-menu');
  if (menu) {
    const more = menu.closest('.tools-more').querySelector('button');
    return more.getBoundingClientRect().width > 0 ? [] : [`${id}: in a hidden menu`];
  }
  return el.getBoundingClientRect().width > 0 ? [] : [`${id}: neither on its bar nor in its menu`];
})
"""
# the viewer's toolbar: its buttons on one row, the bar one button high
ONE_ROW_JS = """
() => {
  const bar = document.querySelector('[data-testid=toolbar]');
  const box = (el) => el.getBoundingClientRect();
  const buttons = [...bar.querySelectorAll('button')]
    .filter((b) => !b.closest('[popover]') && box(b).width > 0);
  const tops = buttons.map((b) => Math.round(box(b).top));
  const problems = [];
  if (Math.max(...tops) - Math.min(...tops) > 2) {
    problems.push(`toolbar: ${new Set(tops).size} rows`);
  }
  const tallest = Math.max(...buttons.map((b) => box(b).height));
  if (box(bar).height > tallest + 20) {
    problems.push(`toolbar: ${Math.round(box(bar).height)} px high`);
  }
  return problems;
}
"""


def on_bar_or_menu(*ids: str):
    """A check_sizes `extra`: each of `ids` on its bar or in the bar's "More" menu."""
    return lambda page: page.evaluate(MENU_OK_JS, list(ids))


def viewer_checks(*top_bar_ids: str):
    """A check_sizes `extra` for a page with a viewer: the toolbar on one row, its tools (and
    `top_bar_ids`) on their bar or in its menu."""
    menu_ok = on_bar_or_menu(*VIEWER_MENU_OK, *top_bar_ids)
    return lambda page: page.evaluate(ONE_ROW_JS) + menu_ok(page)


@pytest.fixture(scope="module")
def shots() -> Path:
    keep = os.environ.get("HUIZHEN_LAYOUT_SHOTS")
    path = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="hz-layouts-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"layout screenshots in {path}")
    return path


def check_sizes(
    page, name: str, ids: list[str], shots: Path, failures: list[str], *, scroll_ok: bool = False,
    sizes: list[tuple[int, int]] = SIZES, cover_ok: list[str] = COVER_OK, extra=None,
) -> None:
    """`scroll_ok`: a list page may scroll below its first rows (the study list); `extra(page)`:
    more checks at each size (a list of problems)."""
    for w, h in sizes:
        page.set_viewport_size({"width": w, "height": h})
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")
        page.screenshot(path=str(shots / f"{name}-{w}x{h}.png"))
        if (name, (w, h)) in DOC_SHOTS:
            screenshot(page, f"layout-{name}-{w}x{h}")
        args = [ids, cover_ok, FIRST_ONLY, scroll_ok, MIN_TOUCH_PX]
        problems = page.evaluate(CHECK_JS, args) + (extra(page) if extra else [])
        failures.extend(f"{name} {w}x{h}: {problem}" for problem in problems)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_pages_fit_every_screen(new_probe, live_server, shots):
    failures: list[str] = []
    zhang = new_probe()
    sign_in(zhang, f"/ui/expert.html?{SMALL}", "exp.zhang", live_server.password)
    kiosk = new_probe()
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    kp, zp = kiosk.page, zhang.page
    tid(kp, "selfcheck-camera").and_(kp.locator("[data-state=ok]")).wait_for()
    tid(kp, "dept-ecg").wait_for()  # the departments come from the server (/api/departments)
    kp.wait_for_function(
        "uid => [...document.querySelectorAll('[data-testid=study-select] option')]"
        ".some(o => o.value === uid)", arg=DEMO_CT_STUDY_UID)
    history = on_bar_or_menu("history-open", "lang-toggle")
    check_sizes(kp, "kiosk-precall", KIOSK_PRECALL, shots, failures, extra=history)
    # a form error must not push the Call button off the screen
    tid(kp, "call-start").click()
    tid(kp, "consult-error").wait_for()
    check_sizes(kp, "kiosk-precall-error", [*KIOSK_PRECALL, "consult-error"], shots, failures,
                extra=history)

    start_consult(kiosk)
    check_sizes(kp, "kiosk-waiting", KIOSK_WAITING, shots, failures)
    tid(zp, "consult-ring").wait_for()
    check_sizes(zp, "expert-ringing", EXPERT_RINGING, shots, failures, extra=history)

    tid(zp, "consult-accept").click()
    kp.locator('[data-testid=participant][data-state=connected]').wait_for(timeout=20_000)
    zp.locator('[data-testid=participant][data-state=connected]').wait_for(timeout=20_000)
    zp.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=viewport]');"
        " return Boolean(v && v.dataset.shownSlice); }")
    tid(zp, "series-thumb").first.wait_for()
    check_sizes(kp, "kiosk-call", KIOSK_CALL, shots, failures)
    check_sizes(zp, "expert-call", EXPERT_CALL, shots, failures,
                extra=viewer_checks("history-open"))
    tid(kp, "hang-up").click()
    tid(zp, "hang-up").click()
    tid(zp, "consult-empty").wait_for()
    # the consult history dialog
    tid(kp, "call-start").wait_for()
    topbar_click(kp, "history-open")
    tid(kp, "history-row").first.wait_for()
    check_sizes(kp, "kiosk-history", HISTORY, shots, failures)
    tid(kp, "history-close").click()

    doc = new_probe()
    sign_in_list(doc, live_server)
    check_sizes(doc.page, "study-list", STUDY_LIST, shots, failures, scroll_ok=True,
                extra=on_bar_or_menu("lang-toggle"))
    doc.page.goto(f"/ui/viewer.html?study={DEMO_CT_STUDY_UID}")
    doc.page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=viewport]');"
        " return Boolean(v && v.dataset.shownSlice); }")
    tid(doc.page, "series-thumb").first.wait_for()
    check_sizes(doc.page, "viewer", VIEWER, shots, failures, extra=viewer_checks())
    assert failures == [], "\n".join(failures)
    no_errors(zhang, kiosk, doc)


def sign_in_list(probe, live_server) -> None:
    page = probe.page
    page.goto("/ui/")
    tid(page, "login-username").fill("dr.li")
    tid(page, "login-password").fill(live_server.password)
    tid(page, "login-submit").click()
    tid(page, "study-row").first.wait_for()


# the kiosk's top bar with everything a clinic doctor gets in it: an MDT invitation, reports,
# referrals, the history, the notification badge, the connection pill
KIOSK_TOPBAR = ["logout", "notifications", "net-status", "mdt-open"]
KIOSK_SIZES = [*SIZES, (1080, 1920)]  # and the portrait kiosk


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_kiosk_top_bar_fits_every_screen(new_probe, live_server, shots, locale):
    make_mdt(live_server, n=4)  # dr.li's clinic is invited: "MDT meetings (n)"
    kiosk = new_probe(locale=locale)
    kp = kiosk.page
    sign_in(kiosk, f"/ui/kiosk.html?{SMALL}", "dr.li", live_server.password)
    tid(kp, "mdt-open").wait_for()
    tid(kp, "net-status").and_(kp.locator("[data-state=open]")).wait_for()
    failures: list[str] = []
    tid(kp, "reports-open").wait_for(state="attached")
    tid(kp, "referrals-open").wait_for(state="attached")
    check_sizes(kp, f"kiosk-topbar-{locale}", KIOSK_TOPBAR, shots, failures, sizes=KIOSK_SIZES,
                extra=on_bar_or_menu("history-open", "reports-open", "referrals-open",
                                     "lang-toggle"))
    assert failures == [], "\n".join(failures)
    no_errors(kiosk)

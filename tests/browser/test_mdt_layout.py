"""The MDT room (mdt.html, #9) fits the real screens: at 1024×768, 1280×800, 1366×768,
1920×1080, portrait 768×1024 and the kiosk's portrait 1080×1920, in English and Chinese, for the
presenter and a follower: the viewer's toolbar is one row (what does not fit is in its "More"
menu), the video tiles, the viewer, the agenda and the chat do not overlap, nothing is outside
the viewport or clipped, the image keeps a usable size, and every touch target is ≥ 44 px."""

from __future__ import annotations

import pytest

from tests.browser.conftest import topbar_click
from tests.browser.test_layouts import SIZES, check_sizes, shots  # noqa: F401 (fixture)
from tests.browser.test_mdt_sync import coordinator_presents_to_zhang, make_mdt
from tests.browser.test_viewer import HTTP_ERROR_LOG, tid

pytestmark = pytest.mark.browser

MDT_SIZES = [*SIZES, (1080, 1920)]
ROOM = ["logout", "lang-toggle", "mdt-title", "mdt-presenter-banner", "toolbar", "tool-scroll",
        "tool-wl", "tool-pan", "viewer-more", "viewport", "slice-prev", "slice-slider",
        "slice-next", "series-thumb", "self-video", "remote-tile", "mute", "camera-off",
        "hang-up", "mdt-case", "mdt-participant", "mdt-chat-input", "mdt-chat-send"]
# the tiles sit under their labels; the viewport under its overlays and the slider its thumb
COVER_OK = ["remote-tile", "self-video", "toolbar", "viewport", "slice-slider", "series-thumb",
            "mdt-participant"]
MIN_IMAGE_PX = 300  # the image's viewport, each side (it was squeezed to a strip before)

# The room's regions and the toolbar's rows, measured: a list of problems.
ROOM_JS = """
(minImage) => {
  const problems = [];
  const vw = window.innerWidth, vh = window.innerHeight;
  const box = (el) => el.getBoundingClientRect();
  const shown = (el) => { const r = box(el); return r.width > 0 && r.height > 0; };
  const q = (sel) => [...document.querySelectorAll(sel)].filter(shown);
  // the toolbar: its buttons on one row, the bar itself one button high
  const bar = document.querySelector('[data-testid=toolbar]');
  const buttons = q('[data-testid=toolbar] button').filter((b) => !b.closest('[popover]'));
  if (buttons.length < 6) problems.push(`toolbar: only ${buttons.length} buttons shown`);
  const tops = buttons.map((b) => Math.round(box(b).top));
  if (Math.max(...tops) - Math.min(...tops) > 2) {
    problems.push(`toolbar: ${new Set(tops).size} rows`);
  }
  const tallest = Math.max(...buttons.map((b) => box(b).height));
  if (box(bar).height > tallest + 20) {
    problems.push(`toolbar: ${Math.round(box(bar).height)} px high`);
  }
  // regions that must not overlap one another
  const regions = [
    ['room bar', q('.mdt-bar')], ['toolbar', [bar]], ['series', q('[data-testid=series-strip]')],
    ['viewport', q('[data-testid=viewport]')], ['slice rail', q('.slice-rail')],
    ['tiles', q('[data-testid=mdt-call] .stage > *, [data-testid=mdt-call] .remote-grid > *')],
    ['call controls', q('[data-testid=mdt-call] .controls')],
    ['agenda', q('[data-testid=mdt-agenda]')],
    ['participants', q('[data-testid=mdt-participants]')], ['chat', q('.mdt-chat')],
  ];
  const flat = [];
  for (const [name, els] of regions) {
    if (!els.length) problems.push(`${name}: not shown`);
    els.forEach((el, i) => flat.push([els.length > 1 ? `${name} ${i + 1}` : name, box(el)]));
  }
  for (const [name, r] of flat) {
    if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1) {
      const at = [r.left, r.top, r.width, r.height].map(Math.round);
      problems.push(`${name}: outside the viewport at ${at}`);
    }
  }
  for (let i = 0; i < flat.length; i++) {
    for (let j = i + 1; j < flat.length; j++) {
      const [a, ra] = flat[i], [b, rb] = flat[j];
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) problems.push(`${a} overlaps ${b} (${Math.round(w)}x${Math.round(h)})`);
    }
  }
  const vp = document.querySelector('[data-testid=viewport]');
  if (vp && (box(vp).width < minImage || box(vp).height < minImage)) {
    const r = box(vp);
    problems.push(`viewport squeezed to ${Math.round(r.width)}x${Math.round(r.height)}`);
  }
  return problems;
}
"""

# The "More" menu open: each of its items inside the viewport and ≥ 44 px.
MENU_JS = """
(minPx) => {
  const problems = [];
  const menu = document.querySelector('[data-testid=viewer-more-menu]');
  if (!menu || !menu.matches(':popover-open')) return ['more menu: not open'];
  const vw = window.innerWidth, vh = window.innerHeight;
  for (const b of menu.querySelectorAll('button, select')) {
    const r = b.getBoundingClientRect();
    const name = b.dataset.testid || b.textContent.trim();
    if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1) {
      problems.push(`${name}: outside`);
    }
    if (r.width < minPx || r.height < minPx) {
      problems.push(`${name}: ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!hit || !(b === hit || b.contains(hit))) problems.push(`${name}: covered`);
  }
  return problems;
}
"""


def room_checks(page) -> list[str]:
    problems = page.evaluate(ROOM_JS, MIN_IMAGE_PX)
    if tid(page, "viewer-more").is_visible():
        tid(page, "viewer-more").click()
        problems += [f"more menu: {p}" for p in page.evaluate(MENU_JS, 44)]
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.querySelector("
                               "'[data-testid=viewer-more-menu]').matches(':popover-open')")
    return problems


@pytest.mark.timeout(300)
def test_mdt_room_fits_every_screen_in_both_languages(new_probe, live_server, shots):  # noqa: F811
    mdt_id = make_mdt(live_server)
    coord, zhang = coordinator_presents_to_zhang(
        new_probe, live_server, mdt_id, zhang_size=(1280, 800))
    cp, zp = coord.page, zhang.page
    for page in (cp, zp):
        page.locator("[data-testid=remote-tile]").first.wait_for()
    failures: list[str] = []
    for lang in ("en", "zh"):
        for name, page in (("presenter", cp), ("follower", zp)):
            check_sizes(page, f"mdt-{name}-{lang}", ROOM, shots, failures, sizes=MDT_SIZES,
                        cover_ok=COVER_OK, extra=room_checks)
        if lang == "en":
            for page in (cp, zp):
                topbar_click(page, "lang-toggle")
                page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    assert failures == [], "\n".join(failures)
    for p in (coord, zhang):
        assert p.console_errors(allow=HTTP_ERROR_LOG) == []

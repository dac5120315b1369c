// The viewer's toolbar on one row: the tools are laid out by rank (the most used first) and
// those that do not fit the row go into a "More" menu at its end, in their toolbar order. A
// wrapping toolbar took 4 rows of a 1024×768 MDT room and squeezed the image; a scrolling one
// hides tools without saying so.
//
// The same elements move between the row and the menu (each leaves a comment node where it
// was), so their data-testids, listeners and the viewer's `$(testid)` lookups stay as they are.
// The menu is a popover: in the top layer, so no scrolled or clipped ancestor cuts it, and it
// closes on Escape, on a click outside and after a tool in it is chosen. The row is laid out
// again when the toolbar's width changes, when a tool appears or hides, when the window
// presets arrive and after a language change.

import { applyI18n, offLangChange, onLangChange } from "../../lib/i18n.js";
import { iconMarkup } from "../../lib/icons.js";

const MENU_GAP_PX = 4;
const EDGE_PX = 8;

export class ToolbarFit {
  /**
   * `toolbar`: the viewer's [data-testid=toolbar]. `ranks`: data-testids, the most important
   * first (the last to leave the row); a unit is a button, a select or a whole group (the
   * presets). Toolbar controls not named keep their toolbar order after the named ones.
   */
  constructor(toolbar, ranks) {
    this.bar = toolbar;
    this.ranks = ranks;
    this.marks = new Map(); // unit -> the comment node where it sits in the row
    this.frame = 0;
    this.bar.classList.add("tools-fit");
    this.bar.insertAdjacentHTML("beforeend", `
      <div class="tools-more">
        <button type="button" class="icon" data-testid="viewer-more" aria-haspopup="true"
                aria-expanded="false" data-i18n-aria-label="tool.more" data-i18n-title="tool.more">
          ${iconMarkup("more")}</button>
        <div class="tools-menu" popover="auto" data-testid="viewer-more-menu" role="group"
             data-i18n-aria-label="tool.more"></div>
      </div>`);
    this.more = this.bar.querySelector(".tools-more");
    this.button = this.more.querySelector("[data-testid=viewer-more]");
    this.menu = this.more.querySelector("[data-testid=viewer-more-menu]");
    applyI18n(this.more);
    // the browser's own invoker: a click toggles it, and the click that opens is not "outside"
    this.button.popoverTargetElement = this.menu;
    this.menu.addEventListener("beforetoggle", (e) => {
      if (e.newState === "open") this.place(); // before it is first painted
    });
    this.menu.addEventListener("toggle", (e) => {
      this.button.setAttribute("aria-expanded", String(e.newState === "open"));
    });
    // a tool chosen from the menu is in use at once (a drag tool on the image, a preset)
    this.menu.addEventListener("click", (e) => {
      if (e.target.closest("button") && this.menu.matches(":popover-open")) this.menu.hidePopover();
    });
    this.schedule = this.schedule.bind(this);
    this.resize = new ResizeObserver(this.schedule);
    this.resize.observe(this.bar);
    this.mutations = new MutationObserver(this.schedule);
    onLangChange(this.schedule);
    this.fit();
  }

  observe() {
    this.mutations.observe(this.bar, {
      subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["hidden"],
    });
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.fit();
    });
  }

  /** The units in rank order: the named ones, then the toolbar's other controls. */
  units() {
    const named = this.ranks.map((id) => this.bar.querySelector(`[data-testid="${id}"]`)).filter(Boolean);
    const inNamed = (node) => named.some((u) => u === node || u.contains(node));
    const rest = [...this.bar.querySelectorAll("button, select")]
      .filter((node) => !this.more.contains(node) && !inNamed(node));
    return [...named, ...rest];
  }

  fit() {
    this.mutations.disconnect();
    const wasOpen = this.menu.matches(":popover-open");
    for (const [unit, mark] of this.marks) mark.replaceWith(unit);
    this.marks.clear();
    this.more.hidden = false; // measured with the row
    const units = this.units();
    const cs = getComputedStyle(this.bar);
    const gap = parseFloat(cs.columnGap) || 0;
    const room = this.bar.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const widths = units.map((u) => (u.hidden ? 0 : u.getBoundingClientRect().width));
    const total = widths.reduce((sum, w) => sum + (w ? w + gap : 0), 0);
    const out = [];
    if (room > 0 && total - gap > room) {
      // by rank, whatever still fits the row beside the More button; the rest goes in the menu
      let used = this.more.getBoundingClientRect().width;
      units.forEach((unit, i) => {
        if (!widths[i]) return;
        if (used + gap + widths[i] <= room) used += gap + widths[i];
        else out.push(unit);
      });
    }
    this.more.hidden = out.length === 0;
    // the menu lists them in their toolbar order
    out.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    for (const unit of out) {
      const mark = document.createComment(unit.dataset.testid || "tool");
      unit.replaceWith(mark);
      this.marks.set(unit, mark);
      this.menu.append(unit);
    }
    if (wasOpen && out.length) this.place();
    else if (wasOpen) this.menu.hidePopover();
    this.mutations.takeRecords();
    this.observe();
  }

  /** The menu under the More button, right-aligned with it, inside the window. */
  place() {
    const r = this.button.getBoundingClientRect();
    const m = this.menu.style;
    m.top = `${r.bottom + MENU_GAP_PX}px`;
    m.right = `${Math.max(EDGE_PX, window.innerWidth - r.right)}px`;
    m.maxHeight = `${Math.max(120, window.innerHeight - r.bottom - MENU_GAP_PX - EDGE_PX)}px`;
  }

  destroy() {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
    this.mutations.disconnect();
    offLangChange(this.schedule);
    if (this.menu.matches(":popover-open")) this.menu.hidePopover();
  }
}

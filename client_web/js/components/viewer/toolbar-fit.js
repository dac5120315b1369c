// A toolbar on one row: the tools are laid out by rank (the most used first) and those that do
// not fit the row go into a "More" menu at its end, in their toolbar order. A wrapping toolbar
// took 4 rows of a 1024×768 MDT room and squeezed the image; a scrolling one hides tools without
// saying so. The viewer's toolbar (every page with a viewer) and the page shell's top bar
// (js/components/shell.js: its less-used links; the brand, the badges and sign-out stay) use it.
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

// The viewer's tools with an icon (js/lib/icons.js), and its tools by rank: the first stay on
// the row longest. Tools a page does not have (the MDT room's, the annotations) are skipped.
export const TOOL_ICONS = {
  "tool-scroll": "scroll", "tool-wl": "window", "tool-pan": "pan", reset: "reset",
  "ann-tool-arrow": "arrow", "ann-tool-text": "text", "ann-tool-length": "length",
  "ann-tool-angle": "angle", "ann-tool-ellipse": "ellipse", "ann-tool-polygon": "polygon",
  "ann-undo": "undo", "ann-key-image": "key", "ann-export-sr": "save",
  "mdt-rotate": "rotate", "mdt-flip": "flip", "mdt-invert": "invert", "mdt-cine": "cine",
};
export const TOOL_RANKS = [
  "tool-scroll", "tool-wl", "tool-pan", "mdt-cine", "mdt-cine-fps", "zoom-out", "zoom-in",
  "ann-tool-length", "ann-tool-arrow", "ann-key-image", "ann-undo", "presets", "reset",
  "ann-tool-ellipse", "ann-tool-angle", "ann-tool-text", "ann-tool-polygon",
  "mdt-rotate", "mdt-flip", "mdt-invert", "ann-export-sr",
];
const EDGE_PX = 8;

export class ToolbarFit {
  /**
   * `toolbar`: the viewer's [data-testid=toolbar] (or the shell's top bar). `ranks`:
   * data-testids, the most important first (the last to leave the row); a unit is a button, a
   * select or a whole group (the presets). Options:
   * - `onlyNamed`: only the named units may leave the row; the bar's other items (the shell's
   *   brand, badges, sign-out) always stay, and their width is kept for them;
   * - `keep(unit)`: true keeps a named unit on the row for now (a link showing a count);
   * - `testid` / `label`: the More button's data-testid (its menu: `<testid>-menu`) and i18n key.
   * Without `onlyNamed`, controls not named keep their toolbar order after the named ones.
   */
  constructor(toolbar, ranks, {
    onlyNamed = false, keep = () => false, testid = "viewer-more", label = "tool.more",
  } = {}) {
    this.bar = toolbar;
    this.ranks = ranks;
    this.onlyNamed = onlyNamed;
    this.keep = keep;
    this.marks = new Map(); // unit -> the comment node where it sits in the row
    this.frame = 0;
    this.bar.classList.add("tools-fit");
    this.bar.insertAdjacentHTML("beforeend", `
      <div class="tools-more">
        <button type="button" class="icon" data-testid="${testid}" aria-haspopup="true"
                aria-expanded="false" data-i18n-aria-label="${label}" data-i18n-title="${label}">
          ${iconMarkup("more")}</button>
        <div class="tools-menu" popover="auto" data-testid="${testid}-menu" role="group"
             data-i18n-aria-label="${label}"></div>
      </div>`);
    this.more = this.bar.querySelector(":scope > .tools-more");
    this.button = this.more.querySelector(`[data-testid="${testid}"]`);
    this.menu = this.more.querySelector(`[data-testid="${testid}-menu"]`);
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
      if (e.target.closest("button, a") && this.menu.matches(":popover-open")) this.menu.hidePopover();
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
      subtree: true, childList: true, characterData: true, attributes: true,
      attributeFilter: ["hidden", "data-pending"],
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
    const named = this.ranks.map((id) => this.bar.querySelector(`[data-testid="${id}"]`))
      .filter((unit) => unit && !this.keep(unit));
    if (this.onlyNamed) return named;
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
    this.bar.classList.add("tools-measure"); // items at their natural width (css: the shell's brand)
    const units = this.units();
    const cs = getComputedStyle(this.bar);
    const gap = parseFloat(cs.columnGap) || 0;
    let room = this.bar.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    if (this.onlyNamed) room -= this.keptWidth(units, gap);
    const widths = units.map((u) => (u.hidden ? 0 : u.getBoundingClientRect().width));
    const total = widths.reduce((sum, w) => sum + (w ? w + gap : 0), 0);
    const out = [];
    if ((room > 0 || this.onlyNamed) && total - gap > room) {
      // by rank, whatever still fits the row beside the More button; the rest goes in the menu
      let used = this.more.getBoundingClientRect().width;
      units.forEach((unit, i) => {
        if (!widths[i]) return;
        if (used + gap + widths[i] <= room) used += gap + widths[i];
        else out.push(unit);
      });
    }
    this.bar.classList.remove("tools-measure");
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

  /** The width (with a gap each) of the bar's items that never leave it: not units, not More;
   * the shell's slots are `display: contents`, their children are the items. */
  keptWidth(units, gap) {
    let width = 0;
    const walk = (parent) => {
      for (const node of parent.children) {
        if (node === this.more || units.includes(node) || node.hidden) continue;
        if (getComputedStyle(node).display === "contents") walk(node);
        else if (node.getBoundingClientRect().width) width += node.getBoundingClientRect().width + gap;
      }
    };
    walk(this.bar);
    return width;
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

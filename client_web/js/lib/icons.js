// The client's icons: inline SVG, drawn in the text colour (`currentColor`). The one way an icon
// gets onto a page — never an emoji or a symbol character: the product's machines install only
// fonts-noto-cjk, which has no colour emoji, so a bell emoji and friends render as empty boxes
// ("tofu").
//
// `icon(name, {label})` is an <svg> element: decorative (aria-hidden) without a label, an image
// named `label` with one. `iconMarkup(name)` is the same decorative SVG as HTML text for
// templates. `withIcon(button, name)` gives a labelled button its icon: the label moves into a
// `.label` span (pages may hide it visually: the button keeps it as its accessible name) and
// becomes the button's title too, so an icon-only button still says what it does.

// 24×24 outlines, stroked with the text colour (paths after the Feather/Lucide style, MIT)
const PATHS = {
  bell: '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>',
  warning: '<path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/><path d="M12 9v4"/><path d="M12 17h.01"/>',
  check: '<path d="M20 6 9 17l-5-5"/>',
  cross: '<path d="M18 6 6 18"/><path d="m6 6 12 12"/>',
  more: '<circle cx="12" cy="5" r="1.5"/><circle cx="12" cy="12" r="1.5"/><circle cx="12" cy="19" r="1.5"/>',
  scroll: '<path d="m12 2 4 4H8z"/><path d="m12 22-4-4h8z"/><rect x="6" y="9" width="12" height="6" rx="1"/>',
  window: '<circle cx="12" cy="12" r="9"/><path d="M12 3a9 9 0 0 1 0 18z" fill="currentColor"/>',
  pan: '<path d="M12 2v20M2 12h20"/><path d="m9 5 3-3 3 3M9 19l3 3 3-3M5 9l-3 3 3 3M19 9l3 3-3 3"/>',
  reset: '<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5"/>',
  arrow: '<path d="M7 17 17 7"/><path d="M8 7h9v9"/>',
  text: '<path d="M4 7V4h16v3"/><path d="M9 20h6"/><path d="M12 4v16"/>',
  length: '<path d="M21.3 15.3a2.4 2.4 0 0 1 0 3.4l-2.6 2.6a2.4 2.4 0 0 1-3.4 0L2.7 8.7a2.4 2.4 0 0 1 0-3.4l2.6-2.6a2.4 2.4 0 0 1 3.4 0z"/><path d="m14.5 12.5 2-2M11.5 9.5l2-2M8.5 6.5l2-2M17.5 15.5l2-2"/>',
  angle: '<path d="M4 20h16"/><path d="M4 20 16 5"/><path d="M10 20a6 6 0 0 0-2.2-4.7"/>',
  ellipse: '<ellipse cx="12" cy="12" rx="9" ry="6"/>',
  polygon: '<path d="m12 3 9 6.5-3.5 10.5h-11L3 9.5z"/>',
  undo: '<path d="M9 14 4 9l5-5"/><path d="M4 9h10.5a5.5 5.5 0 0 1 0 11H11"/>',
  key: '<path d="m12 2 3.1 6.3 6.9 1-5 4.9 1.2 6.8L12 17.8 5.8 21l1.2-6.8-5-4.9 6.9-1z"/>',
  save: '<path d="M15.2 3a2 2 0 0 1 1.4.6l3.8 3.8a2 2 0 0 1 .6 1.4V19a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/><path d="M17 21v-7a1 1 0 0 0-1-1H8a1 1 0 0 0-1 1v7"/><path d="M7 3v4a1 1 0 0 0 1 1h7"/>',
  rotate: '<path d="M21 12a9 9 0 1 1-3-6.7L21 8"/><path d="M21 3v5h-5"/>',
  flip: '<path d="M12 3v18"/><path d="M8 7 3 12l5 5z"/><path d="m16 7 5 5-5 5z"/>',
  invert: '<rect x="3" y="3" width="18" height="18" rx="2"/><path d="M3 21 21 3v16a2 2 0 0 1-2 2z" fill="currentColor"/>',
  // the call controls: a `.slash` path shows on a pressed (muted / camera off) button (call.css)
  mic: '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3"/><path class="slash" d="M4 3l16 18"/>',
  camera: '<rect x="2" y="6" width="13" height="12" rx="2"/><path d="M15 10l6-3v10l-6-3z"/><path class="slash" d="M3 3l18 18"/>',
  phone: '<path d="M5 3h4l2 5-2.5 1.5a11 11 0 0 0 6 6L16 13l5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 5a2 2 0 0 1 2-2z"/>',
  cine: '<rect x="2" y="4" width="20" height="16" rx="2"/><path d="m10 9 5 3-5 3z" fill="currentColor"/>',
};

export const ICONS = Object.freeze(Object.keys(PATHS));

function pathsOf(name) {
  const paths = PATHS[name];
  if (!paths) throw new Error(`no icon "${name}"`);
  return paths;
}

/** A decorative icon as HTML text (for markup templates); `cls`: more classes for it. */
export function iconMarkup(name, cls = "") {
  return `<svg class="icon-svg${cls ? ` ${cls}` : ""}" viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor"
    stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"
    data-icon="${name}">${pathsOf(name)}</svg>`;
}

/** An icon element; with `label` an image of that name, else hidden from assistive technology. */
export function icon(name, { label = "" } = {}) {
  const tpl = document.createElement("template");
  tpl.innerHTML = iconMarkup(name);
  const svg = tpl.content.firstElementChild;
  if (label) {
    svg.removeAttribute("aria-hidden");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
  }
  return svg;
}

/** Static HTML's icons: each `<span data-icon-slot="name" data-icon-class="…">` becomes one. */
export function fillIcons(root = document) {
  for (const slot of root.querySelectorAll("[data-icon-slot]")) {
    const tpl = document.createElement("template");
    tpl.innerHTML = iconMarkup(slot.dataset.iconSlot, slot.dataset.iconClass || "");
    slot.replaceWith(tpl.content);
  }
}

/**
 * `button` (labelled by `data-i18n` or its text) gets icon `name` before its label, the label in a
 * `.label` span (translated as before) and the same key as its title when it has none.
 */
export function withIcon(button, name) {
  if (button.querySelector(":scope > svg.icon-svg")) return button;
  const label = document.createElement("span");
  label.className = "label";
  const key = button.dataset.i18n;
  if (key) {
    label.dataset.i18n = key;
    delete button.dataset.i18n;
    if (!button.dataset.i18nTitle) button.dataset.i18nTitle = key;
  }
  label.textContent = button.textContent.trim();
  button.textContent = "";
  button.append(icon(name), label);
  button.dataset.icon = name;
  if (!button.title) button.title = label.textContent;
  return button;
}

// Links between the workflow pages (a shell part, js/components/shell-parts.js): on a page whose
// <body> has `data-workflow-nav`, a doctor, an expert or a coordinator gets top-bar links to the
// reading worklist (worklist.html) and the critical-value register (alerts.html), except to the
// page they are on. The kiosk and the call/room pages leave it out: their top bars are for the
// call (docs/ui.md).

import { onLangChange, t } from "../lib/i18n.js";
import { el } from "../lib/dom.js";
import "../i18n/workflow-nav.js";

const ROLES = ["doctor", "expert", "coordinator"];
const LINKS = [
  { href: "worklist.html", key: "nav.worklist", testid: "nav-worklist" },
  { href: "alerts.html", key: "nav.register", testid: "nav-register" },
];

export function workflowNavPart(shell) {
  const role = ((shell.session || {}).user || {}).role;
  if (!("workflowNav" in document.body.dataset) || !ROLES.includes(role)) return;
  const here = window.location.pathname.split("/").pop();
  const slot = shell.slot("actions");
  for (const link of LINKS) {
    if (link.href === here) continue;
    const a = el("a", { className: "button nav-link", href: link.href, testid: link.testid,
      textContent: t(link.key) });
    onLangChange(() => { a.textContent = t(link.key); });
    slot.prepend(a);
  }
}

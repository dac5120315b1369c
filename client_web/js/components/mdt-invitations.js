// MDT invitations on an invitee's page (a shell part: js/components/shell-parts.js). On any page
// with a `data-slot="mdt"` element, a doctor or an expert sees the MDT sessions they (or their
// clinic) are invited to: time, state, a join button once the room opens (15 minutes before the
// start), and for concluded ones the summary page and PDF. New invitations, changes and
// summaries arrive live as notifications (`mdt.*`) on the page WebSocket.

import { getLang, onLangChange, t } from "../lib/i18n.js";
import { apiFetch, apiJson } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import "../i18n/mdt-invitations.js";

const ROLES = ["doctor", "expert"];
const PAST_SHOWN = 5;

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "medium", timeStyle: "short" });
}

/** Opens a file the server sends only with the bearer header (the summary PDF). */
export async function openWithToken(path) {
  const response = await apiFetch(path);
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", { href: url, target: "_blank", rel: "noopener" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export class MdtInvitations {
  constructor(root) {
    this.root = root;
    this.upcoming = [];
    this.past = [];
    this.error = null;
    this.timer = setInterval(() => this.tick(), 30_000);
    onLangChange(() => this.render());
  }

  async load() {
    try {
      const [upcoming, past] = await Promise.all([
        apiJson("/api/mdt?scope=upcoming&limit=20"),
        apiJson(`/api/mdt?scope=past&limit=${PAST_SHOWN}`),
      ]);
      this.upcoming = upcoming.mdts;
      this.past = past.mdts.filter((m) => m.state === "concluded");
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  /** A scheduled session whose room should be open by now: ask again (the server opens it). */
  tick() {
    const now = Date.now() / 1000;
    if (this.upcoming.some((m) => m.state === "scheduled" && m.joinable_from <= now)) this.load();
    else this.render();
  }

  onMessage(msg) {
    if (msg && msg.type === "notification" && String((msg.notification || {}).kind || "").startsWith("mdt.")) {
      this.load();
    }
  }

  item(m) {
    const li = el("li", { className: "mdt-invitation", testid: "mdt-invitation",
      dataset: { mdtId: m.id, state: m.state } });
    li.append(el("div", {},
      el("strong", { testid: "mdt-invitation-title", textContent: m.title }),
      el("div", { className: "mdt-muted", testid: "mdt-invitation-when",
        textContent: `${when(m.starts_at)} · ${t(`mdtinv.state.${m.state}`)}` })));
    const actions = el("div", { className: "actions" });
    const may = m.may || {};
    if (may.join) {
      actions.append(el("a", { className: "button call-link", testid: "mdt-invitation-join",
        href: `mdt.html?id=${encodeURIComponent(m.id)}`, textContent: t("mdtinv.join") }));
    } else if (m.state === "scheduled") {
      const from = new Date(m.joinable_from * 1000).toLocaleTimeString(
        getLang() === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
      actions.append(el("button", { type: "button", disabled: true,
        testid: "mdt-invitation-join-later", textContent: t("mdtinv.joinFrom", { time: from }) }));
    }
    if (may.summary) {
      actions.append(el("a", { className: "button", testid: "mdt-invitation-summary",
        href: `print.html?src=${encodeURIComponent(`/api/mdt/${m.id}/summary?lang=${getLang()}`)}`,
        textContent: t("mdtinv.summary") }));
      actions.append(el("button", { type: "button", testid: "mdt-invitation-pdf",
        textContent: t("mdtinv.pdf"), onclick: () => openWithToken(
          `/api/mdt/${m.id}/summary.pdf?lang=${getLang()}`).catch((err) => {
          this.error = err;
          this.render();
        }) }));
    }
    li.append(actions);
    return li;
  }

  render() {
    const root = this.root;
    root.replaceChildren();
    const shown = [...this.upcoming, ...this.past];
    root.hidden = !shown.length && !this.error;
    root.dataset.testid = "mdt-invitations";
    root.classList.add("mdt-invitations");
    root.append(el("h2", { textContent: t("mdtinv.heading") }));
    if (this.error) {
      root.append(el("div", { className: "msg error", testid: "mdt-invitations-error",
        textContent: describeError(this.error) }));
    }
    const list = el("ul", { testid: "mdt-invitation-list" });
    for (const m of shown) list.append(this.item(m));
    root.append(list);
    if (this.onRender) this.onRender();
  }
}

/** The shell part: mounts on pages that have a `data-slot="mdt"` element. On a page with no room
 * for the list (the kiosk) the slot is a <dialog>: a top-bar button, shown while there is
 * something to show and marked while a room is open to join, opens it. */
export function mdtInvitationsPart(shell) {
  const root = document.querySelector('[data-slot="mdt"]');
  const role = ((shell.session || {}).user || {}).role;
  if (!root || !ROLES.includes(role)) return;
  let panel;
  if (root.tagName === "DIALOG") {
    const inner = el("section");
    const close = el("button", { type: "button", className: "dialog-close", testid: "mdt-dialog-close",
      textContent: t("mdtinv.close"), onclick: () => root.close() });
    root.append(inner, close);
    panel = new MdtInvitations(inner);
    const open = el("button", { type: "button", testid: "mdt-open", hidden: true,
      onclick: () => {
        root.showModal();
        panel.load();
      } });
    panel.onRender = () => {
      const shown = panel.upcoming.length + panel.past.length;
      const joinable = panel.upcoming.some((m) => (m.may || {}).join);
      open.hidden = !shown && !panel.error;
      open.dataset.joinable = joinable ? "1" : "0";
      open.classList.toggle("attention", joinable);
      open.textContent = shown ? `${t("mdtinv.heading")} (${shown})` : t("mdtinv.heading");
      close.textContent = t("mdtinv.close");
    };
    shell.slot("actions").append(open);
  } else {
    panel = new MdtInvitations(root);
  }
  const signal = shell.connect();
  signal.addEventListener("message", (ev) => panel.onMessage(ev.detail));
  panel.load();
}

// The notification badge (a shell part: js/components/shell-parts.js), in the top bar of every
// page once someone is signed in: the unread count, and on click the list of the newest
// notifications (MDT invitations, reports, critical alerts, referrals, …). Over the page
// WebSocket: `notifications.unread` after `ready` gives the count and the newest id; each
// `notification` adds one live; a page that reconnects sends `notifications.since` with the
// newest id it had and gets what it missed (`notifications`). Opening the list marks everything
// shown as read (`POST /api/notifications/read`).
//
// Other parts of the page hear about notifications caught up after a reconnect through a
// `hz-notification` event on `document` (detail: the notification), as for live ones.

import { getLang, onLangChange, t } from "../lib/i18n.js";
import { apiJson } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { icon } from "../lib/icons.js";
import { describeError } from "../messages.js";
import "../i18n/notifications.js";

const KEPT = 50;

function when(epoch) {
  const d = new Date(epoch * 1000);
  const sameDay = d.toDateString() === new Date().toDateString();
  return d.toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    sameDay ? { hour: "2-digit", minute: "2-digit" } : { dateStyle: "short", timeStyle: "short" });
}

/** The line shown for one notification: its kind's text with the data filled in. */
export function notificationText(n) {
  const data = n.data || {};
  const params = { ...data };
  if (n.kind === "referral.changed") {
    params.state = t(`notif.referral.state.${data.state}`);
    params.direction = t(`notif.referral.direction.${data.direction}`, data);
  }
  const key = `notif.kind.${n.kind}`;
  const text = t(key, params);
  if (text === key) return t("notif.kind.other", { kind: n.kind });
  // a kind whose data lacks a field: no "{title}" on the screen
  return text.replace(/\{[a-z_]+\}/g, "").replace(/[:：]\s*$/, "").replace(/（）|\(\)/g, "").trim();
}

export class NotificationBadge {
  constructor(root, signal) {
    this.root = root;
    this.signal = signal;
    this.items = [];
    this.unread = 0;
    this.lastId = null; // the newest id this page has (for notifications.since)
    this.open = false;
    this.error = null;
    this.build();
    signal.addEventListener("message", (ev) => this.onMessage(ev.detail));
    onLangChange(() => this.render());
    document.addEventListener("click", (ev) => {
      if (this.open && !this.root.contains(ev.target)) this.toggle(false);
    });
    document.addEventListener("keydown", (ev) => {
      if (this.open && ev.key === "Escape") this.toggle(false);
    });
  }

  build() {
    this.root.classList.add("notif");
    this.button = el("button", { type: "button", className: "notif-button",
      testid: "notification-badge", onclick: () => this.toggle(!this.open) });
    this.button.setAttribute("aria-haspopup", "true");
    this.button.setAttribute("aria-expanded", "false");
    this.icon = icon("bell"); // decorative: the button's aria-label says "Notifications: N unread"
    this.icon.classList.add("notif-icon");
    this.count = el("span", { className: "notif-count", testid: "notification-count", hidden: true });
    this.button.append(this.icon, this.count);
    this.panel = el("div", { className: "notif-panel", testid: "notification-panel", hidden: true });
    this.panel.setAttribute("role", "dialog");
    this.root.append(this.button, this.panel);
    this.render();
  }

  async loadLatest() {
    try {
      const page = await apiJson(`/api/notifications?limit=${KEPT}`);
      this.items = page.notifications;
      this.unread = page.unread;
      if (page.last_id && page.last_id !== "0") this.lastId = page.last_id;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  onMessage(msg) {
    if (!msg) return;
    if (msg.type === "notifications.unread") {
      this.unread = msg.count;
      const newest = msg.last_id && msg.last_id !== "0" ? msg.last_id : null;
      if (this.lastId && newest && newest !== this.lastId) {
        // Back after a drop: ask for what came meanwhile.
        this.signal.send({ type: "notifications.since", after: this.lastId });
      } else if (!this.lastId) {
        this.loadLatest();
      }
      this.render();
    } else if (msg.type === "notification" && msg.notification) {
      this.add([msg.notification]);
      if (typeof msg.unread === "number") this.unread = msg.unread;
      this.render();
    } else if (msg.type === "notifications" && Array.isArray(msg.items)) {
      const fresh = this.add(msg.items);
      this.unread = Math.max(this.unread, this.items.filter((n) => !n.read).length);
      for (const n of fresh) {
        document.dispatchEvent(new CustomEvent("hz-notification", { detail: n }));
      }
      this.render();
    }
  }

  /** Adds notifications (newest first, each once); returns the ones not seen before. */
  add(list) {
    const known = new Set(this.items.map((n) => n.id));
    const fresh = list.filter((n) => n && n.id && !known.has(n.id));
    this.items = [...fresh, ...this.items].sort((a, b) => compareIds(b.id, a.id)).slice(0, KEPT);
    for (const n of fresh) {
      if (!this.lastId || compareIds(n.id, this.lastId) > 0) this.lastId = n.id;
    }
    return fresh;
  }

  toggle(open) {
    this.open = open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open && this.unread > 0 && this.lastId) this.markRead();
    this.render();
  }

  async markRead() {
    try {
      const res = await apiJson("/api/notifications/read", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ up_to: this.lastId }) });
      this.unread = res.unread;
      for (const n of this.items) n.read = true;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  render() {
    const n = this.unread;
    this.count.hidden = n <= 0;
    this.count.textContent = n > 99 ? "99+" : String(n);
    this.root.dataset.unread = String(n);
    this.button.setAttribute("aria-label", n > 0 ? t("notif.badge.unread", { n }) : t("notif.badge"));
    this.button.title = this.button.getAttribute("aria-label");
    this.panel.hidden = !this.open;
    if (!this.open) return;
    this.panel.replaceChildren(el("h2", { textContent: t("notif.heading") }));
    if (this.error) {
      this.panel.append(el("div", { className: "msg error", testid: "notification-error",
        textContent: describeError(this.error) }));
    }
    if (!this.items.length) {
      this.panel.append(el("p", { className: "notif-empty", testid: "notification-empty",
        textContent: t("notif.empty") }));
      return;
    }
    const list = el("ul", { className: "notif-list", testid: "notification-list" });
    for (const item of this.items) {
      const li = el("li", { className: `notif-item${item.read ? "" : " unread"}`,
        testid: "notification-item",
        dataset: { id: item.id, kind: item.kind, read: item.read ? "1" : "0" } });
      li.append(el("span", { className: "notif-text", textContent: notificationText(item) }),
        el("time", { className: "notif-time", textContent: when(item.at) }));
      list.append(li);
    }
    this.panel.append(list);
  }
}

/** Stream ids `ms-seq`, compared as numbers. */
function compareIds(a, b) {
  const [am, as] = String(a).split("-").map(Number);
  const [bm, bs] = String(b).split("-").map(Number);
  return am === bm ? (as || 0) - (bs || 0) : am - bm;
}

/** The shell part: the badge in the top bar's badge slot of every signed-in page. */
export function notificationBadgePart(shell) {
  const slot = shell.slot("badge");
  if (!slot || !shell.session) return;
  const root = el("span", { testid: "notifications" });
  slot.append(root);
  const badge = new NotificationBadge(root, shell.connect());
  window.huizhenNotifications = badge; // for tests and other parts
}

// The critical-value alert banner (docs/ui.md "Critical alerts"), a shell part mounted on every
// page in the shell's `alerts` slot. A clinic doctor's page (kiosks included) shows every
// unacknowledged alert of the clinic and rings until a doctor acknowledges it by reading the
// finding back; then asks for the action taken. Experts and coordinators see their department's
// open alerts and the acknowledgements live, and ring when an escalation step names them.
// Fed by the page WebSocket only: `alerts.open` on every (re)connect, then `alert.*` messages.

import { apiJson, getSession } from "../lib/api.js";
import { onLangChange, t } from "../lib/i18n.js";
import { el } from "../lib/dom.js";
import "../i18n/alerts.js";

const RING_MS = { critical: 1500, significant: 4000 };
const ACK_NOTICE_MS = 20_000;

class AlertBanner {
  constructor(shell) {
    this.shell = shell;
    this.session = getSession() || shell.session;
    this.role = this.session && this.session.user ? this.session.user.role : "";
    this.me = this.session && this.session.user ? this.session.user.username : "";
    this.open = new Map(); // id -> alert (unacknowledged)
    this.toRecord = new Map(); // id -> alert acknowledged here, action not yet recorded
    this.notices = new Map(); // id -> {alert, step} acknowledgement seen by the raiser's side
    this.errors = new Map(); // id -> error text
    this.ringTimer = 0;
    this.audio = null;
    this.root = el("section", { className: "alert-banner", testid: "alert-banner" });
    this.root.setAttribute("role", "alert");
    this.root.setAttribute("aria-live", "assertive");
    this.root.dataset.count = "0";
    this.root.dataset.ringing = "0";
    shell.slot("alerts").append(this.root);
    const signal = shell.connect();
    signal.addEventListener("message", (ev) => this.onMessage(ev.detail));
    onLangChange(() => this.render());
    this.render();
  }

  get receiver() {
    return this.role === "doctor";
  }

  onMessage(msg) {
    switch (msg.type) {
      case "alerts.open":
        this.open.clear();
        for (const a of msg.alerts || []) this.open.set(a.id, a);
        break;
      case "alert.raised":
      case "alert.escalated":
        if (msg.alert.state === "raised") this.open.set(msg.alert.id, msg.alert);
        break;
      case "alert.acknowledged":
        this.open.delete(msg.alert.id);
        if (this.receiver && msg.alert.acknowledged_by === this.me) {
          this.toRecord.set(msg.alert.id, msg.alert);
        } else if (!this.receiver) {
          this.notices.set(msg.alert.id, { alert: msg.alert, step: msg.step });
          setTimeout(() => { this.notices.delete(msg.alert.id); this.render(); }, ACK_NOTICE_MS);
        }
        break;
      case "alert.handled":
        this.open.delete(msg.alert.id);
        this.toRecord.delete(msg.alert.id);
        break;
      default:
        return;
    }
    this.render();
  }

  /** Which open alerts ring here: all of them for a clinic doctor; for anyone else, those whose
   *  escalation named them (the head, a coordinator), or raised by themselves past step 1. */
  ringing() {
    return [...this.open.values()].filter((a) => this.receiver
      || (a.told || []).includes(this.me) || (a.raised_by === this.me && a.level >= 2));
  }

  render() {
    this.root.replaceChildren();
    const alerts = [...this.open.values()].sort((a, b) => a.created_at - b.created_at);
    for (const a of alerts) this.root.append(this.item(a));
    for (const a of this.toRecord.values()) this.root.append(this.actionForm(a));
    for (const { alert, step } of this.notices.values()) this.root.append(this.notice(alert, step));
    this.root.dataset.count = String(alerts.length);
    this.root.hidden = !this.root.childElementCount;
    this.ring(this.ringing());
  }

  item(a) {
    const node = el("article", {
      className: `alert-item tier-${a.tier}`, testid: "alert-item",
      dataset: { alertId: a.id, state: a.state, tier: a.tier, level: String(a.level || 0) },
    });
    const head = el("div", { className: "alert-head" },
      el("strong", { className: "alert-tier", testid: "alert-tier" }, t(`alerts.tier.${a.tier}`)),
      el("span", { className: "alert-meta" }, t("alerts.meta", {
        name: a.raised_by_name, clinic: a.clinic_name, time: clock(a.created_at),
      })));
    if (a.level) head.append(el("span", { className: "alert-level", testid: "alert-level" },
      t(`alerts.level.${a.level}`)));
    node.append(head);
    if (a.patient_name || a.patient_id) {
      node.append(el("div", { className: "alert-patient", testid: "alert-patient" },
        t("alerts.patient", { name: a.patient_name || "—", id: a.patient_id || "—" })));
    }
    node.append(el("p", { className: "alert-finding", testid: "alert-finding" }, a.finding));
    if (!this.receiver) {
      node.append(el("p", { className: "alert-wait" }, t("alerts.waitingForClinic")));
      return node;
    }
    const readBack = el("textarea", {
      testid: "alert-readback", rows: 2, maxLength: 1000, required: true,
    });
    readBack.setAttribute("aria-label", t("alerts.readBack"));
    readBack.placeholder = t("alerts.readBack.placeholder");
    const receiver = el("input", { type: "text", testid: "alert-receiver", maxLength: 100 });
    receiver.placeholder = (this.session.user && this.session.user.display_name) || "";
    receiver.setAttribute("aria-label", t("alerts.receiver"));
    const error = el("div", { className: "msg error", testid: "alert-error", hidden: true });
    if (this.errors.has(a.id)) { error.textContent = this.errors.get(a.id); error.hidden = false; }
    const submit = el("button", { type: "submit", className: "primary", testid: "alert-ack" },
      t("alerts.ack"));
    const form = el("form", { className: "alert-ack-form", testid: "alert-ack-form" },
      el("label", { className: "alert-label" }, t("alerts.readBack"), readBack),
      el("label", { className: "alert-label" }, t("alerts.receiver"), receiver),
      submit, error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        const body = { read_back: readBack.value.trim(), receiver_name: receiver.value.trim() };
        const answer = await apiJson(`/api/alerts/${a.id}/acknowledge`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        this.errors.delete(a.id);
        this.open.delete(a.id);
        this.toRecord.set(a.id, answer.alert);
        this.render();
      } catch (err) {
        this.errors.set(a.id, String(err.message || err));
        error.textContent = this.errors.get(a.id);
        error.hidden = false;
        error.dataset.code = err.code || "";
        submit.disabled = false;
      }
    });
    node.append(form);
    return node;
  }

  actionForm(a) {
    const node = el("article", {
      className: "alert-item alert-acked", testid: "alert-action-item",
      dataset: { alertId: a.id, state: a.state },
    });
    const action = el("textarea", { testid: "alert-action", rows: 2, maxLength: 2000 });
    action.setAttribute("aria-label", t("alerts.action"));
    action.placeholder = t("alerts.action.placeholder");
    const error = el("div", { className: "msg error", testid: "alert-action-error", hidden: true });
    const submit = el("button", { type: "submit", className: "primary",
      testid: "alert-action-submit" }, t("alerts.action.submit"));
    const later = el("button", { type: "button", testid: "alert-action-later",
      onclick: () => { this.toRecord.delete(a.id); this.render(); } }, t("alerts.action.later"));
    const form = el("form", { className: "alert-ack-form" },
      el("p", { className: "alert-done", testid: "alert-acked" },
        t("alerts.ackedHere", { finding: a.finding })),
      el("label", { className: "alert-label" }, t("alerts.action"), action), submit, later, error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!action.value.trim()) return;
      try {
        await apiJson(`/api/alerts/${a.id}/handled`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ action: action.value.trim() }),
        });
        this.toRecord.delete(a.id);
        this.render();
      } catch (err) {
        error.textContent = String(err.message || err);
        error.hidden = false;
      }
    });
    node.append(form);
    return node;
  }

  notice(a, step) {
    return el("article", {
      className: "alert-item alert-notice", testid: "alert-acked-notice",
      dataset: { alertId: a.id },
    }, el("strong", {}, t("alerts.ackedBy", {
      name: a.acknowledged_name || a.acknowledged_by, clinic: a.clinic_name,
      time: clock(a.acknowledged_at),
    })), el("p", { className: "alert-readback", testid: "alert-acked-readback" },
      t("alerts.readBackWas", { text: (step && step.read_back) || a.read_back })),
    el("button", { type: "button", onclick: () => { this.notices.delete(a.id); this.render(); } },
      t("alerts.dismiss")));
  }

  /** A tone every RING_MS while something rings here (WebAudio: no file to load). */
  ring(alerts) {
    const on = alerts.length > 0;
    this.root.dataset.ringing = on ? "1" : "0";
    clearInterval(this.ringTimer);
    this.ringTimer = 0;
    if (!on) return;
    const critical = alerts.some((a) => a.tier === "critical");
    const louder = alerts.some((a) => (a.level || 0) >= 1);
    const beep = () => this.beep(critical ? 880 : 660, louder ? 0.5 : 0.25);
    beep();
    this.ringTimer = setInterval(beep, critical ? RING_MS.critical : RING_MS.significant);
  }

  beep(freq, gain) {
    try {
      this.audio = this.audio || new (window.AudioContext || window.webkitAudioContext)();
      const ctx = this.audio;
      if (ctx.state === "suspended") ctx.resume().catch(() => {});
      const osc = ctx.createOscillator();
      const vol = ctx.createGain();
      osc.frequency.value = freq;
      vol.gain.value = gain;
      osc.connect(vol).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.35);
      this.root.dataset.beeps = String(Number(this.root.dataset.beeps || 0) + 1);
    } catch {
      // no audio device: the banner still shows
    }
  }
}

function clock(ts) {
  if (!ts) return "—";
  const d = new Date(ts * 1000);
  const p = (x) => String(x).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The shell part: one banner per page. */
export function mountAlertBanner(shell) {
  const role = shell.session && shell.session.user ? shell.session.user.role : "";
  if (!["doctor", "expert", "coordinator"].includes(role)) return null;
  return new AlertBanner(shell);
}

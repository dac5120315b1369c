// Referrals (双向转诊) on the clinic's and the county's pages (a shell part: js/components/
// shell-parts.js). On a page with a `data-slot="referrals"` element, a doctor sees the clinic's
// referrals (up to county departments, back down for rehabilitation) and an expert their
// department's: state, patient, reason, care plan, the studies (opened in the viewer), and the
// steps they may take (`actions` from the server: accept / decline with a reason / patient
// arrived / complete on the receiving side, cancel on the referring side). "New referral"
// refers along the configured routes (GET /api/referrals/routes). Every step of either side
// arrives live as a `referral.changed` notification on the page WebSocket.

import { getLang, onLangChange, t } from "../lib/i18n.js";
import { apiJson, personName, first, TAG } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import "../i18n/referrals.js";

const ROLES = ["doctor", "expert"];
const LIMIT = 30;
const NOTE_ACTIONS = new Set(["decline", "cancel"]);

function post(path, body = {}) {
  return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
}

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "medium", timeStyle: "short" });
}

function shownPatient(name) {
  // DICOM PN "Wang^Xiaoming=王^小明": the ideographic form in Chinese, else the alphabetic one
  const [alpha, ideo] = String(name || "").split("=");
  const fmt = (s) => (s || "").split("^").filter(Boolean).join(getLang() === "zh" ? "" : " ");
  if (getLang() === "zh" && ideo) return fmt(ideo);
  return fmt(alpha) || fmt(ideo);
}

export class ReferralsPanel {
  constructor(root, role) {
    this.root = root;
    this.role = role;
    this.referrals = [];
    this.routes = [];
    this.studies = [];
    this.error = null;
    this.notice = null;
    this.formOpen = false;
    this.noteFor = null; // {id, action} while a decline/cancel reason is being typed
    this.busy = false;
    onLangChange(() => this.render());
  }

  async load() {
    try {
      const [page, routes] = await Promise.all([
        apiJson(`/api/referrals?limit=${LIMIT}`),
        apiJson("/api/referrals/routes"),
      ]);
      this.referrals = page.referrals;
      this.routes = routes.routes;
      this.error = null;
    } catch (err) {
      this.error = err;
    }
    this.render();
  }

  onMessage(msg) {
    const n = msg && msg.type === "notification" ? msg.notification : null;
    if (n && n.kind === "referral.changed") this.load();
  }

  async loadStudies() {
    try {
      const list = await apiJson("/dicomweb/studies?limit=50&includefield=00081030");
      this.studies = list.map((s) => ({
        uid: first(s, TAG.StudyInstanceUID),
        label: [personName(s, TAG.PatientName, getLang()), first(s, TAG.PatientID, ""),
          first(s, TAG.StudyDate, ""), first(s, TAG.StudyDescription, "")].filter(Boolean).join(" · "),
      }));
    } catch {
      this.studies = []; // the form works without attaching a study
    }
  }

  async act(referral, action, note = "") {
    this.busy = true;
    try {
      await post(`/api/referrals/${referral.id}/${action}`, note ? { note } : {});
      this.noteFor = null;
      this.notice = t(`ref.done.${action}`);
      this.error = null;
      await this.load();
    } catch (err) {
      this.error = err;
      await this.load();
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async submit(form) {
    const route = this.routes[Number(form.elements.route.value)];
    if (!route) return;
    const body = {
      direction: route.direction,
      reason: form.elements.reason.value,
      diagnosis: form.elements.diagnosis.value,
      patient_name: form.elements.patient_name.value,
      patient_id: form.elements.patient_id.value,
      study_uids: [...form.elements.studies.selectedOptions].map((o) => o.value),
    };
    if (route.direction === "up") body.department = route.department;
    else {
      body.clinic = route.clinic;
      body.care_plan = form.elements.care_plan.value;
      if (form.elements.parent.value) body.parent = form.elements.parent.value;
    }
    this.busy = true;
    try {
      await post("/api/referrals", body);
      this.formOpen = false;
      this.notice = t("ref.done.create");
      this.error = null;
      await this.load();
    } catch (err) {
      this.error = err;
    } finally {
      this.busy = false;
      this.render();
    }
  }

  routeLabel(r) {
    return r.direction === "up" ? t("ref.route.up", { to: r.department_name || r.department })
      : t("ref.route.down", { to: r.clinic_name || r.clinic });
  }

  directionText(r) {
    if (r.direction === "up") {
      return t("ref.dir.up", { from: r.clinic_name, to: r.department_name });
    }
    return t("ref.dir.down", { from: r.department_name, to: r.clinic_name });
  }

  item(r) {
    const li = el("li", { className: "referral", testid: "referral-item",
      dataset: { id: r.id, state: r.state, direction: r.direction, side: r.side || "" } });
    const who = [shownPatient(r.patient_name), r.patient_id].filter(Boolean).join(" · ");
    li.append(el("div", { className: "referral-head" },
      el("strong", { testid: "referral-patient", textContent: who }),
      el("span", { className: "referral-state", testid: "referral-state",
        textContent: t(`ref.state.${r.state}`) }),
      el("span", { className: "referral-meta", testid: "referral-direction",
        textContent: this.directionText(r) })));
    const detail = [t("ref.reason", { text: r.reason })];
    if (r.diagnosis) detail.push(t("ref.diagnosis", { text: r.diagnosis }));
    li.append(el("div", { className: "referral-detail", testid: "referral-reason",
      textContent: detail.join(" · ") }));
    if (r.care_plan) {
      li.append(el("div", { className: "referral-detail", testid: "referral-care-plan",
        textContent: t("ref.carePlan", { text: r.care_plan }) }));
    }
    if (r.decline_reason) {
      li.append(el("div", { className: "referral-detail", testid: "referral-decline-reason",
        textContent: t("ref.declinedBecause", { text: r.decline_reason }) }));
    }
    const last = r.history[r.history.length - 1];
    li.append(el("div", { className: "referral-meta", testid: "referral-last",
      textContent: t("ref.lastStep", { state: t(`ref.state.${last.state}`),
        name: last.by_name || last.by, time: when(last.at) }) + (last.note && last.state !== "declined"
        ? ` — ${last.note}` : "") }));
    if (r.studies.length || r.reports.length) {
      const links = el("div", { className: "referral-actions" });
      for (const s of r.studies) {
        links.append(el("a", { className: "button", testid: "referral-study",
          href: `viewer.html?study=${encodeURIComponent(s.study_uid)}`, textContent: t("ref.openStudy") }));
      }
      for (const id of r.reports) {
        links.append(el("a", { className: "button", testid: "referral-report",
          href: `print.html?src=${encodeURIComponent(`/api/reports/${id}/document`)}`,
          textContent: t("ref.openReport") }));
      }
      li.append(links);
    }
    const actions = el("div", { className: "referral-actions" });
    for (const action of r.actions || []) {
      actions.append(el("button", { type: "button", testid: `referral-${action}`,
        className: action === "accept" || action === "complete" ? "primary" : "",
        disabled: this.busy, textContent: t(`ref.action.${action}`),
        onclick: () => {
          if (NOTE_ACTIONS.has(action)) {
            this.noteFor = { id: r.id, action };
            this.render();
          } else {
            this.act(r, action);
          }
        } }));
    }
    li.append(actions);
    if (this.noteFor && this.noteFor.id === r.id) li.append(this.noteForm(r, this.noteFor.action));
    return li;
  }

  noteForm(r, action) {
    const form = el("form", { className: "referral-form", testid: "referral-note-form" });
    const input = el("input", { testid: "referral-note", name: "note", maxLength: 1000,
      required: action === "decline", minLength: action === "decline" ? 4 : 0 });
    form.append(el("label", {}, el("span", { textContent: t(`ref.note.${action}`) }), input),
      el("div", { className: "referral-actions" },
        el("button", { type: "submit", className: "primary", testid: "referral-note-submit",
          textContent: t(`ref.action.${action}`) }),
        el("button", { type: "button", testid: "referral-note-cancel", textContent: t("ref.back"),
          onclick: () => { this.noteFor = null; this.render(); } })));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.act(r, action, input.value.trim());
    });
    setTimeout(() => input.focus(), 0);
    return form;
  }

  newForm() {
    const form = el("form", { className: "referral-form", testid: "referral-form" });
    const route = el("select", { name: "route", testid: "referral-route" });
    this.routes.forEach((r, i) => route.append(el("option", { value: String(i), textContent: this.routeLabel(r) })));
    const field = (key, node) => el("label", {}, el("span", { textContent: t(key) }), node);
    const studies = el("select", { name: "studies", testid: "referral-studies", multiple: true, size: 3 });
    for (const s of this.studies) studies.append(el("option", { value: s.uid, textContent: s.label }));
    const parent = el("select", { name: "parent", testid: "referral-parent" });
    parent.append(el("option", { value: "", textContent: t("ref.f.parent.none") }));
    const care = el("textarea", { name: "care_plan", testid: "referral-care-plan-input", maxLength: 4000 });
    const careField = field("ref.f.carePlan", care);
    const parentField = field("ref.f.parent", parent);
    const sync = () => {
      const r = this.routes[Number(route.value)];
      const down = r && r.direction === "down";
      careField.hidden = !down;
      parentField.hidden = !down;
      care.required = down;
      parent.replaceChildren(el("option", { value: "", textContent: t("ref.f.parent.none") }));
      if (down) {
        for (const up of this.referrals.filter((x) => x.direction === "up" && x.clinic === r.clinic
            && ["accepted", "arrived", "completed"].includes(x.state))) {
          parent.append(el("option", { value: up.id,
            textContent: `${shownPatient(up.patient_name)} ${up.patient_id} · ${t(`ref.state.${up.state}`)}` }));
        }
      }
    };
    route.addEventListener("change", sync);
    form.append(
      field("ref.f.route", route),
      field("ref.f.patientName", el("input", { name: "patient_name", testid: "referral-patient-name", maxLength: 200 })),
      field("ref.f.patientId", el("input", { name: "patient_id", testid: "referral-patient-id", maxLength: 64 })),
      field("ref.f.reason", el("textarea", { name: "reason", testid: "referral-reason-input", required: true, maxLength: 2000 })),
      field("ref.f.diagnosis", el("input", { name: "diagnosis", testid: "referral-diagnosis", maxLength: 1000 })),
      careField, parentField,
      field("ref.f.studies", studies),
      el("div", { className: "referral-actions" },
        el("button", { type: "submit", className: "primary", testid: "referral-submit", textContent: t("ref.f.submit") }),
        el("button", { type: "button", testid: "referral-form-cancel", textContent: t("ref.back"),
          onclick: () => { this.formOpen = false; this.render(); } })));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit(form);
    });
    sync();
    return form;
  }

  render() {
    const root = this.root;
    root.hidden = false;
    root.dataset.testid = "referrals";
    root.classList.add("referrals");
    const heading = el("h2", {}, el("span", { textContent: t("ref.heading") }));
    if (this.onClose) {
      heading.append(el("button", { type: "button", testid: "referrals-close",
        textContent: t("ref.close"), onclick: this.onClose }));
    }
    if (this.routes.length && !this.formOpen) {
      heading.append(el("button", { type: "button", testid: "referral-new", textContent: t("ref.new"),
        onclick: async () => {
          this.formOpen = true;
          await this.loadStudies();
          this.render();
        } }));
    }
    const parts = [heading];
    if (this.notice) parts.push(el("div", { className: "msg ok", testid: "referrals-notice", textContent: this.notice }));
    if (this.error) {
      parts.push(el("div", { className: "msg error", testid: "referrals-error",
        dataset: { code: this.error.code || "" }, textContent: describeError(this.error) }));
    }
    if (this.formOpen) parts.push(this.newForm());
    const list = el("ul", { className: "referral-list", testid: "referral-list" });
    for (const r of this.referrals) list.append(this.item(r));
    if (!this.referrals.length) parts.push(el("p", { className: "referral-meta", testid: "referrals-empty", textContent: t("ref.empty") }));
    parts.push(list);
    root.replaceChildren(...parts);
  }
}

/** The shell part: mounts on pages that have a `data-slot="referrals"` element. */
export function referralsPart(shell) {
  const root = document.querySelector('[data-slot="referrals"]');
  const role = ((shell.session || {}).user || {}).role;
  if (!root || !ROLES.includes(role)) return;
  let panel;
  if (root.tagName === "DIALOG") {
    // a page with no room for the list (the kiosk): a top-bar button opens it as a dialog
    const inner = el("section");
    root.append(inner);
    panel = new ReferralsPanel(inner, role);
    panel.onClose = () => root.close();
    const open = el("button", { type: "button", testid: "referrals-open", textContent: t("ref.heading"),
      onclick: () => {
        root.showModal();
        panel.load();
      } });
    onLangChange(() => { open.textContent = t("ref.heading"); });
    shell.slot("actions").append(open);
  } else {
    panel = new ReferralsPanel(root, role);
  }
  const signal = shell.connect();
  signal.addEventListener("message", (ev) => panel.onMessage(ev.detail));
  // caught up after a reconnect (notification-badge.js), or back online: read again
  document.addEventListener("hz-notification", (ev) => {
    if (ev.detail && ev.detail.kind === "referral.changed") panel.load();
  });
  let connectedOnce = false;
  signal.addEventListener("ready", () => {
    if (connectedOnce) panel.load();
    connectedOnce = true;
  });
  window.huizhenReferrals = panel; // for tests
  panel.load();
}

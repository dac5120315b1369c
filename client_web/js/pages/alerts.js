// The critical-value register (alerts.html, 统一登记): every alert the signed-in user may see,
// with its timeline, filterable by clinic, department, date, state and tier; CSV export. Live:
// any alert message on the page WebSocket reloads it.

import { apiFetch, apiJson } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { el, show, testIds } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import "../i18n/alerts.js";
import "../i18n/worklist.js";

const $ = testIds();
const state = { rows: [], timer: 0 };

const shell = mountShell({
  title: "register.title",
  net: true,
  onSignInShown: () => show($("register-view"), false),
  onSession: (session) => start(session),
  onLangChange: () => render(),
});
shell.start();

function start(session) {
  show($("register-view"), true);
  const r = session.user.role;
  show($("register-clinic-field"), r === "coordinator");
  show($("register-department-field"), r === "coordinator");
  $("register-filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("register-csv").addEventListener("click", () => exportCsv());
  shell.connect().addEventListener("message", (ev) => {
    if (String(ev.detail.type).startsWith("alert.")) {
      clearTimeout(state.timer);
      state.timer = setTimeout(() => load(), 200);
    }
  });
  load();
}

function query() {
  const q = new URLSearchParams();
  const add = (name, testid) => { const v = $(testid).value.trim(); if (v) q.set(name, v); };
  add("clinic", "register-clinic");
  add("department", "register-department");
  add("from", "register-from");
  add("to", "register-to");
  add("state", "register-state");
  add("tier", "register-tier");
  return q.toString();
}

async function load() {
  try {
    const data = await apiJson(`/api/alerts?${query()}`);
    state.rows = data.alerts;
    show($("register-error"), false);
  } catch (err) {
    const box = $("register-error");
    box.textContent = t("register.loadFailed", { message: err.message });
    box.dataset.code = err.code || "";
    box.hidden = false;
    return;
  }
  render();
}

function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts * 1000);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function render() {
  $("register-count").textContent = t("register.count", { n: state.rows.length });
  $("register-rows").replaceChildren(...state.rows.map((a) => el("tr", {
    testid: "register-row", dataset: { alertId: a.id, state: a.state, tier: a.tier },
  },
  el("td", {}, when(a.created_at)),
  el("td", {}, t(`alerts.tier.${a.tier}`)),
  el("td", {}, a.clinic_name),
  el("td", {}, `${a.patient_name || "—"} · ${a.patient_id || ""}`),
  el("td", { className: "question" }, a.finding),
  el("td", {}, a.raised_by_name),
  el("td", { testid: "register-state-cell" }, t(`register.state.${a.state}`)),
  el("td", {}, a.acknowledged_at ? `${when(a.acknowledged_at)} · ${a.acknowledged_name}` : "—",
    a.read_back ? el("br") : "", a.read_back ? el("small", {}, t("alerts.readBackWas", { text: a.read_back })) : ""),
  el("td", {}, el("ol", { className: "register-timeline", testid: "register-timeline" },
    ...(a.timeline || []).map((e) => el("li", { dataset: { step: e.step } },
      `${when(e.at)} ${t(`register.step.${e.step}`)}${e.to && e.to.length ? ` → ${e.to.join(", ")}` : ""}`)))),
  )));
}

async function exportCsv() {
  try {
    const resp = await apiFetch(`/api/alerts.csv?${query()}`);
    const blob = await resp.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: "critical-values.csv" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  } catch (err) {
    const box = $("register-error");
    box.textContent = t("register.loadFailed", { message: err.message });
    box.hidden = false;
  }
}

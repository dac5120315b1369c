// audit.html: the audit trail for auditor accounts — filter by user, patient, clinic, action
// and time, break-glass views flagged, newest first, paged by stream id ("Older events"), and
// the same search as a CSV file (GET /api/audit, /api/audit.csv; docs/api.md "Audit search").

import { getLang, t } from "../lib/i18n.js";
import { apiFetch, apiJson } from "../lib/api.js";
import { byTestId as $, el } from "../lib/dom.js";
import { describeError } from "../messages.js";
import { mountShell } from "../components/shell.js";
import "../i18n/audit.js";

const PAGE = 100;
const state = { events: [], next: null, scanned: 0, error: null, loading: false, params: null };

/** The filter form as query parameters (times: the browser's local time → unix seconds). */
function filterParams() {
  const form = $("audit-filters");
  const p = new URLSearchParams();
  for (const name of ["user", "patient", "clinic", "action"]) {
    const v = form.elements[name].value.trim();
    if (v) p.set(name, v);
  }
  for (const name of ["since", "until"]) {
    const v = form.elements[name].value;
    if (v) {
      let secs = new Date(v).getTime() / 1000;
      if (name === "until") secs += 59.999; // the whole chosen minute
      p.set(name, secs.toFixed(3));
    }
  }
  if (form.elements.break_glass.checked) p.set("break_glass", "1");
  return p;
}

async function search(more = false) {
  if (!more) {
    state.params = filterParams();
    state.events = [];
    state.next = null;
  }
  const p = new URLSearchParams(state.params);
  p.set("limit", String(PAGE));
  if (more && state.next) p.set("before", state.next);
  state.loading = true;
  state.error = null;
  render();
  try {
    const page = await apiJson(`/api/audit?${p}`);
    state.events = more ? [...state.events, ...page.events] : page.events;
    state.next = page.next;
    state.scanned = (more ? state.scanned : 0) + page.scanned;
  } catch (err) {
    state.error = err;
  } finally {
    state.loading = false;
  }
  render();
}

async function exportCsv() {
  try {
    const response = await apiFetch(`/api/audit.csv?${filterParams()}`);
    const url = URL.createObjectURL(await response.blob());
    const a = el("a", { href: url, download: `huizhen-audit-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    state.error = err;
    render();
  }
}

function when(ts) {
  return new Date(ts * 1000).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "short", timeStyle: "medium" });
}

function row(e) {
  const tr = el("tr", { className: "audit-row", testid: "audit-row",
    dataset: { id: e.id, action: e.action, user: e.user, breakGlass: e.break_glass ? "1" : "0" } });
  const action = el("td", { testid: "audit-row-action" }, e.action);
  if (e.break_glass) {
    action.append(el("span", { className: "audit-flag", testid: "audit-row-break-glass",
      textContent: t("audit.breakGlass") }));
  }
  const details = Object.entries(e.details).map(([k, v]) => `${k}=${v}`).join("  ");
  tr.append(
    el("td", { textContent: when(e.ts) }),
    action,
    el("td", { testid: "audit-row-user", textContent: e.role ? `${e.user} (${e.role})` : e.user }),
    el("td", { textContent: e.clinic || "" }),
    el("td", { textContent: e.device ? `${e.remote} · ${e.device}` : e.remote }),
    el("td", { className: "audit-details", testid: "audit-row-details", textContent: details }),
  );
  return tr;
}

function render() {
  const error = $("audit-error");
  error.hidden = !state.error;
  if (state.error) {
    error.textContent = t("audit.failed", { message: describeError(state.error) });
    error.dataset.code = state.error.code || "";
  }
  $("audit-rows").replaceChildren(...state.events.map(row));
  const n = state.events.length;
  const summary = $("audit-summary");
  if (state.loading) summary.textContent = t("audit.loading");
  else if (!n && state.next) summary.textContent = t("audit.none.yet", { n: state.scanned });
  else if (!n) summary.textContent = state.params ? t("audit.none") : "";
  else summary.textContent = t(state.next ? "audit.count.more" : "audit.count", { n });
  $("audit-more").hidden = !state.next || state.loading;
}

function bind() {
  $("audit-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    search(false);
  });
  $("audit-more").addEventListener("click", () => search(true));
  $("audit-export").addEventListener("click", exportCsv);
  $("audit-reset").addEventListener("click", () => {
    $("audit-filters").reset();
    search(false);
  });
}

mountShell({
  title: "audit.title",
  subtitle: "audit.subtitle",
  loginPage: "audit.html",
  onSession: (session) => {
    if ((session.user || {}).role !== "auditor") {
      $("audit-forbidden").hidden = false;
      return;
    }
    $("audit-page").hidden = false;
    bind();
    search(false);
  },
  onLangChange: () => {
    if (!$("audit-page").hidden) render();
  },
}).start();

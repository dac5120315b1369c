// coordinator.html: the MDT coordinator's page — schedule, edit, reschedule and cancel MDT
// sessions, pick proposed cases for the agenda, see invitees' time conflicts, list upcoming and
// past sessions, record conclusions, conclude, open the summary. Everything goes through
// /api/mdt (docs/api.md "MDT sessions"); the server decides and audits.

import { getLang, t } from "../lib/i18n.js";
import { apiFetch, apiJson } from "../lib/api.js";
import { byTestId as $, el } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import { PageMessages } from "../components/page-messages.js";
import "../i18n/coordinator.js";

const state = {
  upcoming: [], past: [], names: { users: {}, clinics: {}, departments: {} },
  directory: { departments: [], clinics: [] }, proposals: [],
  editing: null,        // the session being edited (its public dict), or null for a new one
  agenda: [],           // [{case_id} | {proposal_id}, label]
  conflicts: [],
  concluding: null,     // the session whose conclusions are open
  confirmCancel: null,
};
let conflictTimer = null;
let proposalTimer = null;

function send(path, method, body = {}) {
  return apiJson(path, { method, headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
}

// ---- messages -------------------------------------------------------------------------------

const messages = new PageMessages($("mdt-notice"), $("mdt-error"), "coord.failed");
const showNotice = (key, params) => messages.showNotice(key, params);
const showError = (err) => messages.showError(err);
const renderMessages = () => messages.render();
const act = (fn, button) => messages.act(fn, button);

// ---- formatting -----------------------------------------------------------------------------

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB",
    { dateStyle: "medium", timeStyle: "short" });
}

/** A datetime-local value (the browser's local time) <-> unix seconds. */
function toLocalInput(epoch) {
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? Math.round(ms / 1000) : null;
}

function userName(u) {
  return state.names.users[u] || u;
}

function caseLabel(c) {
  if (c.hidden) return t("coord.hiddenCase");
  const clinic = state.names.clinics[c.clinic] || c.clinic;
  return `${c.patient_name || "—"} · ${c.patient_id || "—"} · ${clinic}`;
}

function proposalLabel(p) {
  return `${p.patient_name || "—"} · ${p.patient_id || "—"} · ${clinicName(p.clinic)}`;
}

function clinicName(id) {
  const found = state.directory.clinics.find((c) => c.id === id);
  return found ? found.name : (state.names.clinics[id] || id);
}

// ---- lists ----------------------------------------------------------------------------------

/** Sessions in the upcoming list that share an invitee with another overlapping one. */
function listConflicts(sessions) {
  const found = new Map();
  for (const a of sessions) {
    for (const b of sessions) {
      if (a.id === b.id || !(a.starts_at < b.ends_at && b.starts_at < a.ends_at)) continue;
      const people = a.experts.filter((e) => b.experts.includes(e));
      const clinics = a.clinics.filter((c) => b.clinics.includes(c));
      const who = [...people.map(userName), ...clinics.map(clinicName)];
      if (who.length) found.set(a.id, [...new Set([...(found.get(a.id) || []), ...who])]);
    }
  }
  return found;
}

function renderList(testid, sessions, conflicts = new Map()) {
  const list = $(testid);
  list.replaceChildren();
  if (!sessions.length) list.append(el("li", { className: "empty", textContent: t("coord.none") }));
  for (const s of sessions) {
    const row = el("li", { className: "mdt-row", testid: "mdt-row",
      dataset: { mdtId: s.id, state: s.state } });
    row.append(el("div", { className: "mdt-row-head" },
      el("strong", { testid: "mdt-row-title", textContent: s.title }),
      el("span", { className: "mdt-state", testid: "mdt-row-state", dataset: { state: s.state },
        textContent: t(`coord.state.${s.state}`) })));
    row.append(el("div", { className: "mdt-muted", testid: "mdt-row-when",
      textContent: `${when(s.starts_at)} · ${t("coord.minutes", { n: s.duration_min })} · ${t("coord.caseCount", { n: s.cases.length })}` }));
    row.append(el("div", { className: "mdt-muted", textContent:
      s.experts.map(userName).join(", ") + (s.clinics.length ? ` · ${s.clinics.map(clinicName).join(", ")}` : "") }));
    if (conflicts.has(s.id)) {
      row.append(el("div", { className: "mdt-row-conflict", testid: "mdt-row-conflict",
        textContent: t("coord.rowConflict", { who: conflicts.get(s.id).join(", ") }) }));
    }
    const actions = el("div", { className: "actions" });
    const may = s.may || {};
    if (may.edit) actions.append(el("button", { type: "button", testid: "mdt-edit",
      textContent: t("coord.edit"), onclick: () => startEdit(s) }));
    if (may.open) actions.append(el("button", { type: "button", testid: "mdt-open",
      textContent: t("coord.openNow"), onclick: (ev) => act(async () => {
        await send(`/api/mdt/${s.id}/open`, "POST");
        await reload();
        showNotice("coord.done.opened", { title: s.title });
      }, ev.currentTarget) }));
    if (may.join) actions.append(el("a", { className: "button call-link", testid: "mdt-join",
      href: `mdt.html?id=${encodeURIComponent(s.id)}`, textContent: t("coord.join") }));
    if (may.record_conclusions) actions.append(el("button", { type: "button",
      testid: "mdt-conclusions-open", textContent: t("coord.conclusions"),
      onclick: () => openConclusions(s) }));
    if (may.summary) {
      actions.append(el("a", { className: "button", testid: "mdt-summary",
        href: `print.html?src=${encodeURIComponent(`/api/mdt/${s.id}/summary?lang=${getLang()}`)}`,
        textContent: t("coord.summary") }));
      actions.append(el("button", { type: "button", testid: "mdt-summary-pdf",
        textContent: t("coord.summaryPdf"),
        onclick: (ev) => act(() => openBlob(`/api/mdt/${s.id}/summary.pdf?lang=${getLang()}`),
          ev.currentTarget) }));
    }
    actions.append(el("button", { type: "button", testid: "mdt-ics", textContent: t("coord.ics"),
      onclick: (ev) => act(() => openBlob(`/api/mdt/${s.id}.ics`, `mdt-${s.id}.ics`),
        ev.currentTarget) }));
    if (may.cancel && state.confirmCancel === s.id) {
      actions.append(
        el("button", { type: "button", className: "danger", testid: "mdt-cancel-confirm",
          textContent: t("coord.cancelConfirm"), onclick: (ev) => act(async () => {
            await send(`/api/mdt/${s.id}/cancel`, "POST", {});
            state.confirmCancel = null;
            if (state.editing && state.editing.id === s.id) resetForm();
            await reload();
            showNotice("coord.done.cancelled", { title: s.title });
          }, ev.currentTarget) }),
        el("button", { type: "button", testid: "mdt-cancel-keep", textContent: t("coord.keep"),
          onclick: () => { state.confirmCancel = null; renderLists(); } }));
    } else if (may.cancel) {
      actions.append(el("button", { type: "button", testid: "mdt-cancel",
        textContent: t("coord.cancel"),
        onclick: () => { state.confirmCancel = s.id; renderLists(); } }));
    }
    row.append(actions);
    list.append(row);
  }
}

function renderLists() {
  renderList("mdt-upcoming", state.upcoming, listConflicts(state.upcoming));
  renderList("mdt-past", state.past);
}

/** A file the server sends only with the bearer header (PDF, .ics): fetched, then opened. */
async function openBlob(path, download = "") {
  const response = await apiFetch(path);
  const url = URL.createObjectURL(await response.blob());
  const a = el("a", { href: url, target: "_blank", rel: "noopener" });
  if (download) a.download = download;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---- the form -------------------------------------------------------------------------------

function checked(testid) {
  return [...$(testid).querySelectorAll("input[type=checkbox]:checked")].map((x) => x.value);
}

function renderChoices() {
  const deps = $("mdt-departments");
  const experts = $("mdt-experts");
  const clinics = $("mdt-clinics");
  const keep = { deps: checked("mdt-departments"), experts: checked("mdt-experts"),
    clinics: checked("mdt-clinics") };
  for (const box of [deps, experts, clinics]) {
    box.querySelectorAll("label, .mdt-choice-group").forEach((x) => x.remove());
  }
  const box = (testid, value, label, on) => el("label", { className: "mdt-check" },
    el("input", { type: "checkbox", value, checked: on, dataset: { testid } }), ` ${label}`);
  for (const d of state.directory.departments) {
    deps.append(box("mdt-department", d.id, d.name, keep.deps.includes(d.id)));
    if (!d.experts.length) continue;
    const group = el("div", { className: "mdt-choice-group" }, el("span", { className: "mdt-muted", textContent: d.name }));
    for (const e of d.experts) {
      group.append(box("mdt-expert", e.username, e.display_name, keep.experts.includes(e.username)));
    }
    experts.append(group);
  }
  for (const c of state.directory.clinics) {
    clinics.append(box("mdt-clinic", c.id, c.name, keep.clinics.includes(c.id)));
  }
  renderLead();
}

function renderLead() {
  const select = $("mdt-lead");
  const keep = select.value;
  const experts = checked("mdt-experts");
  const all = state.directory.departments.flatMap((d) => d.experts);
  select.replaceChildren(el("option", { value: "", textContent: t("coord.noLead") }),
    ...experts.map((u) => el("option", { value: u,
      textContent: (all.find((e) => e.username === u) || {}).display_name || u })));
  if (experts.includes(keep)) select.value = keep;
}

function renderAgenda() {
  const list = $("mdt-agenda");
  list.replaceChildren();
  state.agenda.forEach((item, i) => {
    list.append(el("li", { testid: "mdt-agenda-case",
      dataset: item.case_id ? { caseId: item.case_id } : { proposalId: item.proposal_id } },
      el("span", { textContent: item.label }),
      el("button", { type: "button", testid: "mdt-agenda-remove", textContent: t("coord.remove"),
        onclick: () => { state.agenda.splice(i, 1); renderAgenda(); renderProposals(); } })));
  });
  $("mdt-agenda-empty").hidden = state.agenda.length > 0;
}

function renderProposals() {
  const list = $("mdt-proposals");
  list.replaceChildren();
  const onAgenda = new Set(state.agenda.map((a) => a.proposal_id).filter(Boolean));
  const shown = state.proposals.filter((p) => !onAgenda.has(p.id));
  if (!shown.length) list.append(el("li", { className: "empty", textContent: t("coord.noProposals") }));
  for (const p of shown) {
    list.append(el("li", { testid: "mdt-proposal", dataset: { proposalId: p.id } },
      el("div", {}, el("strong", { textContent: proposalLabel(p) }),
        el("div", { className: "mdt-muted", textContent: p.reason })),
      el("button", { type: "button", testid: "mdt-proposal-add", textContent: t("coord.add"),
        onclick: () => {
          state.agenda.push({ proposal_id: p.id, label: proposalLabel(p) });
          renderAgenda();
          renderProposals();
        } })));
  }
}

function renderConflicts() {
  const box = $("mdt-conflicts");
  box.replaceChildren();
  box.hidden = !state.conflicts.length;
  if (!state.conflicts.length) return;
  box.append(el("strong", { textContent: t("coord.conflicts") }));
  for (const c of state.conflicts) {
    const who = c.kind === "clinic" ? clinicName(c.who) : userName(c.who);
    box.append(el("div", { testid: "mdt-conflict", dataset: { who: c.who, mdtId: c.mdt_id },
      textContent: t("coord.conflict", { who, title: c.title, when: when(c.starts_at) }) }));
  }
}

function formBody() {
  return {
    title: $("mdt-title").value.trim(),
    starts_at: fromLocalInput($("mdt-start").value),
    duration_min: Number($("mdt-duration").value) || 60,
    departments: checked("mdt-departments"),
    experts: checked("mdt-experts"),
    clinics: checked("mdt-clinics"),
    lead_expert: $("mdt-lead").value,
    notes: $("mdt-notes").value.trim(),
    cases: state.agenda.map((a) => (a.case_id ? { case_id: a.case_id } : { proposal_id: a.proposal_id })),
  };
}

function scheduleConflictCheck() {
  clearTimeout(conflictTimer);
  conflictTimer = setTimeout(async () => {
    const b = formBody();
    if (b.starts_at === null) return;
    try {
      const body = { starts_at: b.starts_at, duration_min: b.duration_min, experts: b.experts,
        clinics: b.clinics };
      if (state.editing) body.exclude = state.editing.id;
      state.conflicts = (await send("/api/mdt/conflicts", "POST", body)).conflicts;
    } catch (err) {
      state.conflicts = [];
    }
    renderConflicts();
  }, 250);
}

function resetForm() {
  state.editing = null;
  state.agenda = [];
  state.conflicts = [];
  $("mdt-form").reset();
  $("mdt-duration").value = "60";
  const start = new Date(Date.now() + 24 * 3600 * 1000);
  start.setMinutes(0, 0, 0);
  $("mdt-start").value = toLocalInput(start.getTime() / 1000);
  $("mdt-form-heading").textContent = t("coord.new");
  $("mdt-submit").textContent = t("coord.schedule");
  $("mdt-start").disabled = false;
  $("mdt-duration").disabled = false;
  renderChoices();
  renderAgenda();
  renderProposals();
  renderConflicts();
}

function startEdit(s) {
  state.editing = s;
  $("mdt-title").value = s.title;
  $("mdt-start").value = toLocalInput(s.starts_at);
  $("mdt-duration").value = String(s.duration_min);
  $("mdt-notes").value = s.notes || "";
  const setChecks = (testid, values) => {
    for (const box of $(testid).querySelectorAll("input[type=checkbox]")) box.checked = values.includes(box.value);
  };
  setChecks("mdt-departments", s.departments);
  setChecks("mdt-experts", s.experts);
  setChecks("mdt-clinics", s.clinics);
  renderLead();
  $("mdt-lead").value = s.lead_expert || "";
  // rescheduling is for scheduled sessions only (the server says so too)
  const fixed = !(s.may && s.may.reschedule);
  $("mdt-start").disabled = fixed;
  $("mdt-duration").disabled = fixed;
  state.agenda = s.cases.map((c) => ({ case_id: c.case_id, label: caseLabel(c) }));
  $("mdt-form-heading").textContent = t("coord.editing", { title: s.title });
  $("mdt-submit").textContent = t("coord.save");
  renderAgenda();
  renderProposals();
  scheduleConflictCheck();
  $("mdt-title").focus();
}

async function submitForm(ev) {
  ev.preventDefault();
  const body = formBody();
  if (body.starts_at === null) return;
  await act(async () => {
    let answer;
    if (state.editing) {
      if ($("mdt-start").disabled) {
        delete body.starts_at;
        delete body.duration_min;
      }
      answer = await send(`/api/mdt/${state.editing.id}`, "PATCH", body);
    } else {
      answer = await send("/api/mdt", "POST", body);
    }
    const key = state.editing ? "coord.done.saved" : "coord.done.scheduled";
    resetForm();
    await reload();
    state.conflicts = answer.conflicts || [];
    renderConflicts();
    showNotice(state.conflicts.length ? `${key}.conflicts` : key,
      { title: answer.mdt.title, n: state.conflicts.length });
  }, $("mdt-submit"));
}

// ---- conclusions ----------------------------------------------------------------------------

function openConclusions(s) {
  state.concluding = s;
  renderConclusions();
  $("mdt-conclusions").hidden = false;
  $("mdt-conclusions").scrollIntoView({ block: "start" });
}

function renderConclusions() {
  const s = state.concluding;
  if (!s) return;
  $("mdt-conclusions-heading").textContent = t("coord.conclusionsFor", { title: s.title });
  const box = $("mdt-conclusion-cases");
  box.replaceChildren();
  const deps = state.directory.departments;
  s.cases.forEach((c, i) => {
    const done = c.conclusion || {};
    const form = el("form", { className: "mdt-conclusion", testid: "mdt-conclusion-form",
      dataset: { caseId: c.case_id, recorded: c.conclusion ? "1" : "0" } });
    const field = (key, input) => el("div", { className: "field" },
      el("label", { textContent: t(`coord.c.${key}`) }), input);
    const dep = el("select", { dataset: { testid: "mdt-conclusion-department" } },
      ...deps.map((d) => el("option", { value: d.id, textContent: d.name })));
    if (done.responsible_department) dep.value = done.responsible_department;
    form.append(
      el("h3", { textContent: `${i + 1}. ${caseLabel(c)}` }),
      c.question ? el("p", { className: "mdt-muted", textContent: c.question }) : "",
      field("diagnosis", el("textarea", { rows: 2, value: done.diagnosis || "", required: true,
        maxLength: 4000, dataset: { testid: "mdt-conclusion-diagnosis" } })),
      field("plan", el("textarea", { rows: 2, value: done.plan || "", required: true,
        maxLength: 4000, dataset: { testid: "mdt-conclusion-plan" } })),
      el("div", { className: "field-row" },
        field("department", dep),
        field("followUp", el("input", { type: "date", value: done.follow_up_date || "",
          dataset: { testid: "mdt-conclusion-followup" } }))),
      el("div", { className: "mdt-actions" },
        el("button", { type: "submit", className: "primary", testid: "mdt-conclusion-save",
          textContent: t("coord.c.save") }),
        el("span", { className: "mdt-muted", testid: "mdt-conclusion-state",
          textContent: c.conclusion ? t("coord.c.recorded", { who: userName(c.conclusion.by) }) : "" })));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const q = (testid) => form.querySelector(`[data-testid="${testid}"]`);
      act(async () => {
        const answer = await send(`/api/mdt/${s.id}/cases/${c.case_id}/conclusion`, "PUT", {
          diagnosis: q("mdt-conclusion-diagnosis").value.trim(),
          plan: q("mdt-conclusion-plan").value.trim(),
          responsible_department: q("mdt-conclusion-department").value,
          follow_up_date: q("mdt-conclusion-followup").value,
        });
        state.names = answer.names;
        state.concluding = { ...answer.mdt, may: answer.may };
        renderConclusions();
        showNotice("coord.done.conclusion", { n: i + 1 });
      }, form.querySelector("button[type=submit]"));
    });
    box.append(form);
  });
}

async function conclude(ev) {
  const s = state.concluding;
  if (!s) return;
  await act(async () => {
    await send(`/api/mdt/${s.id}/conclude`, "POST");
    state.concluding = null;
    $("mdt-conclusions").hidden = true;
    await reload();
    showNotice("coord.done.concluded", { title: s.title });
  }, ev.currentTarget);
}

// ---- loading --------------------------------------------------------------------------------

async function loadProposals() {
  const q = $("mdt-proposal-search").value.trim();
  const found = await apiJson(`/api/mdt/proposals?limit=50&q=${encodeURIComponent(q)}`);
  state.proposals = found.proposals;
  renderProposals();
}

async function reload() {
  const [upcoming, past] = await Promise.all([
    apiJson("/api/mdt?scope=upcoming&limit=100"), apiJson("/api/mdt?scope=past&limit=50"),
  ]);
  state.upcoming = upcoming.mdts;
  state.past = past.mdts;
  state.names = {
    users: { ...upcoming.names.users, ...past.names.users },
    clinics: { ...upcoming.names.clinics, ...past.names.clinics },
    departments: { ...upcoming.names.departments, ...past.names.departments },
  };
  renderLists();
  await loadProposals();
}

async function start() {
  state.directory = await apiJson("/api/mdt/directory");
  resetForm();
  await reload();
}

function bind() {
  $("mdt-form").addEventListener("submit", submitForm);
  $("mdt-form-reset").addEventListener("click", () => { resetForm(); scheduleConflictCheck(); });
  $("mdt-experts").addEventListener("change", () => { renderLead(); scheduleConflictCheck(); });
  for (const id of ["mdt-clinics", "mdt-start", "mdt-duration"]) {
    $(id).addEventListener("change", scheduleConflictCheck);
  }
  $("mdt-proposal-search").addEventListener("input", () => {
    clearTimeout(proposalTimer);
    proposalTimer = setTimeout(() => act(loadProposals), 250);
  });
  $("mdt-conclude").addEventListener("click", conclude);
  $("mdt-conclusions-close").addEventListener("click", () => {
    state.concluding = null;
    $("mdt-conclusions").hidden = true;
  });
  $("mdt-feed").addEventListener("click", (ev) => act(async () => {
    showFeed(await apiJson("/api/mdt/calendar"));
  }, ev.currentTarget));
  $("mdt-feed-rotate").addEventListener("click", (ev) => act(async () => {
    showFeed(await send("/api/mdt/calendar/rotate", "POST"));
    showNotice("coord.done.feedRotated");
  }, ev.currentTarget));
}

function showFeed(feed) {
  const url = $("mdt-feed-url");
  url.hidden = false;
  url.textContent = feed.url;
  $("mdt-feed-rotate").hidden = false;
}

bind();
const shell = mountShell({
  title: "coord.title",
  subtitle: "coord.subtitle",
  net: true,
  loginPage: "coordinator.html",
  userDetail: (u) => ` · ${t(`role.${u.role}`)}`,
  onSession: (session) => {
    if ((session.user || {}).role !== "coordinator") {
      $("coordinator-forbidden").hidden = false;
      return;
    }
    $("coordinator-page").hidden = false;
    act(start);
    // invitations, proposals and changes by other coordinators arrive as notifications
    const signal = shell.connect();
    signal.addEventListener("message", (ev) => {
      const msg = ev.detail || {};
      if (msg.type === "notification" && String((msg.notification || {}).kind || "").startsWith("mdt.")) {
        act(reload);
      }
    });
  },
  onLangChange: () => {
    if ($("coordinator-page").hidden) return;
    renderLists();
    renderChoices();
    renderAgenda();
    renderProposals();
    renderConflicts();
    renderConclusions();
    renderMessages();
  },
});
shell.start();

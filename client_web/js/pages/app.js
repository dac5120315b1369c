// index.html: sign-in, study list (QIDO-RS), search, doctor upload, sign-out.

import { applyI18n, getLang, t } from "../lib/i18n.js";
import { TAG, apiJson, first, formatDate, getSession, num, personName, uploadFiles, values } from "../lib/api.js";
import { show, testIds } from "../lib/dom.js";
import { icon } from "../lib/icons.js";
import { errorText, failureReasonText, hasErrorText } from "../messages.js";
import { mountShell } from "../components/shell.js";
import { proposeForMdt } from "../components/mdt-propose.js";
import { ReportsPanel } from "../components/reports-panel.js";
import "../i18n/studies.js";

const PAGE_SIZE = 50;
// Where a role goes after signing in here. Doctors stay on the study list (with the kiosk link);
// a role missing here gets the role-home panel instead of a list it cannot use.
const ROLE_PAGE = { expert: "expert.html", coordinator: "coordinator.html", auditor: "audit.html" };
// The administrators' page: an admin lands there after signing in; the panel here links to it.
const ADMIN_PAGE = "admin.html";
const $ = testIds();

const state = {
  studies: [],      // DICOM JSON study objects, in display order
  term: "",
  offset: 0,
  more: false,
  loadSeq: 0,
  lastUpload: null, // last /api/uploads body (re-rendered on language change)
  mayPropose: false, // doctors and experts propose studies for an MDT
};

let shell = null;

function hideViews() {
  show(document.getElementById("studies-view"), false);
  show(document.getElementById("home-view"), false);
}

// ---- study list ---------------------------------------------------------------------------

/** The role-home panel: what a coordinator or an administrator does from here. */
function renderHome(role) {
  const view = document.getElementById("home-view");
  const known = role === "coordinator" || role === "admin";
  show(view, known);
  if (!known) return;
  view.dataset.role = role;
  $("role-home-heading").textContent = t(`home.${role}.heading`);
  $("role-home-text").textContent = t(`home.${role}.text`);
  show($("role-home-cli"), role === "admin");
  show($("role-home-admin"), role === "admin" && Boolean(ADMIN_PAGE));
  show($("role-home-coordinator"), role === "coordinator");
}

/** After a sign-in on this page: the page that fits the role (`fromSignIn`: not on a reload). */
function startStudies(session, { fromSignIn = false } = {}) {
  const role = (session.user && session.user.role) || "";
  const target = role === "admin" ? ADMIN_PAGE : ROLE_PAGE[role];
  // Only right after signing in: an expert may still come back to browse the list. An auditor
  // reads no patient data, so the audit page is their only page.
  if ((fromSignIn && target) || role === "auditor") {
    window.location.assign(target);
    return;
  }
  renderHome(role);
  // administrators have no patient data: no study list at all, not a list that fails
  show(document.getElementById("studies-view"), role !== "admin");
  if (role === "admin") return;
  const isDoctor = session.user && session.user.role === "doctor";
  state.mayPropose = isDoctor || role === "expert";
  show($("upload-open"), isDoctor);
  // the tele-consultation pages: doctors call from the kiosk, experts answer at the workstation
  show($("nav-kiosk"), isDoctor);
  show($("nav-expert"), Boolean(session.user && session.user.role === "expert"));
  // The clinic's signed reports and opinions, arriving live (a doctor) / the expert's own.
  show($("reports-open"), isDoctor || role === "expert");
  if ((isDoctor || role === "expert") && !state.reports) {
    state.reports = new ReportsPanel(document.querySelector("[data-testid=reports-panel]"));
    applyI18n(document.querySelector("[data-testid=reports-panel]"));
    state.reports.listen(shell.connect());
    state.reports.refreshCount($("reports-open"));
  }
  loadStudies(true);
}

function qidoUrl(params) {
  const q = new URLSearchParams({ includefield: "all", limit: String(PAGE_SIZE), ...params });
  return `/dicomweb/studies?${q}`;
}

async function qido(params) {
  return apiJson(qidoUrl(params), { headers: { Accept: "application/dicom+json, application/json" } });
}

/**
 * Loads a page of studies. One search box covers patient name and patient ID: both QIDO
 * queries run and their results are merged (QIDO ANDs the attributes of one query).
 */
async function loadStudies(reset) {
  const seq = ++state.loadSeq;
  if (reset) {
    state.offset = 0;
    state.studies = [];
  }
  const errBox = $("studies-error");
  show(errBox, false);
  $("study-count").textContent = t("studies.loading");
  $("studies-more").disabled = true;
  const term = state.term;
  const page = { offset: String(state.offset) };
  try {
    let lists;
    if (!term) {
      lists = [await qido(page)];
    } else {
      const wild = term.includes("*") || term.includes("?");
      const settled = await Promise.allSettled([
        // names match anywhere ("ming" finds "Li^Ming"), IDs by prefix
        qido({ ...page, PatientName: wild ? term : `*${term}*` }),
        qido({ ...page, PatientID: wild ? term : `${term}*` }),
      ]);
      const ok = settled.filter((r) => r.status === "fulfilled").map((r) => r.value);
      if (!ok.length) throw settled[0].reason;
      lists = ok;
    }
    if (seq !== state.loadSeq) return;
    const seen = new Set(state.studies.map((s) => first(s, TAG.StudyInstanceUID)));
    let pageMax = 0;
    for (const list of lists) {
      const arr = Array.isArray(list) ? list : [];
      pageMax = Math.max(pageMax, arr.length);
      for (const study of arr) {
        const uid = first(study, TAG.StudyInstanceUID);
        if (!uid || seen.has(uid)) continue;
        seen.add(uid);
        state.studies.push(study);
      }
    }
    state.offset += pageMax;
    state.more = pageMax >= PAGE_SIZE;
    renderStudies();
  } catch (err) {
    if (seq !== state.loadSeq) return;
    const role = (getSession()?.user || {}).role;
    if (role === "coordinator" && err.status === 403) {
      // no studies shared with this coordinator: the role-home panel says what comes next
      show(document.getElementById("studies-view"), false);
      return;
    }
    // by the error's code, in the page's language (js/messages.js), re-rendered on a switch
    errBox.dataset.i18n = "studies.error";
    errBox.i18nParams = { message: err };
    errBox.dataset.code = err.code || "";
    errBox.textContent = t("studies.error", errBox.i18nParams);
    show(errBox, true);
    $("study-count").textContent = "";
  } finally {
    if (seq === state.loadSeq) $("studies-more").disabled = false;
  }
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  tr.append(td);
  return td;
}

/** An ECG-only study opens in the ECG viewer (ecg.html), anything else in the image viewer. */
function openStudy(uid, modalities = []) {
  const ecgOnly = modalities.length > 0 && modalities.every((m) => m === "ECG");
  const page = ecgOnly ? "ecg.html" : "viewer.html";
  window.location.assign(`${page}?study=${encodeURIComponent(uid)}`);
}

function renderStudies() {
  const body = $("study-rows");
  body.textContent = "";
  const lang = getLang();
  for (const study of state.studies) {
    const uid = first(study, TAG.StudyInstanceUID);
    const name = personName(study, TAG.PatientName, lang);
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "study-row");
    tr.dataset.studyUid = uid;
    cell(tr, name || "—", "patient").dataset.testid = "study-patient";
    cell(tr, first(study, TAG.PatientID, ""), "nowrap");
    cell(tr, formatDate(first(study, TAG.StudyDate, "")), "nowrap");
    const modalities = values(study, TAG.ModalitiesInStudy);
    cell(tr, modalities.join(", "), "nowrap");
    cell(tr, first(study, TAG.StudyDescription, "")).dataset.testid = "study-description";
    cell(tr, String(num(study, TAG.NumberOfStudyRelatedSeries, "")), "num");
    cell(tr, String(num(study, TAG.NumberOfStudyRelatedInstances, "")), "num");
    const td = document.createElement("td");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "primary";
    btn.textContent = t("studies.open");
    btn.setAttribute("aria-label", t("studies.open.aria", { name: name || uid }));
    btn.setAttribute("data-testid", "study-open");
    btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      openStudy(uid, modalities);
    });
    td.append(btn);
    if (state.mayPropose) {
      // a doctor's clinic study, or a study shared with an expert: a case for an MDT
      const propose = document.createElement("button");
      propose.type = "button";
      propose.textContent = t("mdtprop.open");
      propose.setAttribute("data-testid", "study-propose-mdt");
      propose.addEventListener("click", (ev) => {
        ev.stopPropagation();
        proposeForMdt([uid], [name, first(study, TAG.PatientID, "")].filter(Boolean).join(" · "));
      });
      td.append(" ", propose);
    }
    if (modalities.includes("ECG") && !modalities.every((m) => m === "ECG")) {
      // a study with images and an ECG: the ECG viewer one click away
      const ecg = document.createElement("button");
      ecg.type = "button";
      ecg.textContent = t("studies.ecg");
      ecg.setAttribute("data-testid", "study-ecg");
      ecg.addEventListener("click", (ev) => {
        ev.stopPropagation();
        window.location.assign(`ecg.html?study=${encodeURIComponent(uid)}`);
      });
      td.append(" ", ecg);
    }
    tr.append(td);
    tr.addEventListener("click", () => openStudy(uid, modalities));
    body.append(tr);
  }
  const n = state.studies.length;
  // "0 studies" too: an empty search says so in the count, not only by an empty table
  $("study-count").textContent = t(n === 1 ? "studies.count.one" : "studies.count", { n });
  const empty = $("studies-empty");
  empty.textContent = t("studies.empty");
  show(empty, n === 0);
  show($("studies-more"), state.more);
}

// ---- upload (doctors) ---------------------------------------------------------------------

function toggleUpload(open) {
  const panel = $("upload-panel");
  const btn = $("upload-open");
  show(panel, open);
  btn.setAttribute("aria-expanded", String(open));
  if (open) panel.querySelector("input[type=file]").focus();
}

/** A failed file's reason in plain words: its code's text, else its PS3.4 Failure Reason's. */
function uploadReason(item) {
  const e = item.error || {};
  const reason = item.failure_reason ?? item.FailureReason ?? e.failure_reason;
  if (e.code && hasErrorText(e.code)) return errorText(e.code, e.details);
  return failureReasonText(reason) || errorText(e.code || "unknown", e.details);
}

function renderUploadResults() {
  const box = $("upload-results");
  box.textContent = "";
  const body = state.lastUpload;
  if (!body) return;
  const stored = body.stored || [];
  const failed = body.failed || [];
  $("upload-status").textContent = t("upload.done", { stored: stored.length, failed: failed.length });
  const ul = document.createElement("ul");
  for (const item of stored) {
    const li = document.createElement("li");
    li.className = "ok";
    li.setAttribute("data-testid", "upload-result-ok");
    // a file sent twice is stored once: say so rather than "stored" again
    li.append(icon("check"), `${t(item.duplicate ? "upload.duplicate" : "upload.stored")}: ${item.file}`);
    ul.append(li);
  }
  for (const item of failed) {
    const li = document.createElement("li");
    li.className = "fail";
    li.setAttribute("data-testid", "upload-result-failed");
    li.dataset.code = (item.error && item.error.code) || "";
    const name = document.createElement("span");
    name.className = "file";
    name.dataset.testid = "upload-result-file";
    name.textContent = item.file;
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.dataset.testid = "upload-result-reason";
    reason.textContent = uploadReason(item);
    li.append(icon("cross"), `${t("upload.failedItem")}: `, name, " — ", reason);
    ul.append(li);
  }
  box.append(ul);
}

async function onFilesChosen(ev) {
  const input = ev.target;
  const files = Array.from(input.files || []);
  if (!files.length) return;
  const status = $("upload-status");
  const progress = $("upload-progress");
  state.lastUpload = null;
  $("upload-results").textContent = "";
  progress.value = 0;
  show(progress, true);
  input.disabled = true;
  status.textContent = t("upload.sending", { n: files.length, pct: 0 });
  try {
    const body = await uploadFiles(files, (fraction) => {
      progress.value = fraction;
      status.textContent = fraction >= 1
        ? t("upload.processing")
        : t("upload.sending", { n: files.length, pct: Math.round(fraction * 100) });
    });
    state.lastUpload = body;
    renderUploadResults();
    loadStudies(true);
  } catch (err) {
    if (err.body) {
      // nothing stored (400 nothing_stored): the per-file reasons are the useful part
      state.lastUpload = err.body;
      renderUploadResults();
    } else {
      status.textContent = t("upload.error", { message: err });
    }
  } finally {
    show(progress, false);
    input.disabled = false;
    input.value = "";
  }
}

// ---- wiring -------------------------------------------------------------------------------

function init() {
  shell = mountShell({
    title: "app.title",
    subtitle: "app.subtitle",
    userDetail: (u) => (u.role ? ` · ${t(`role.${u.role}`)}` : ""),
    actions: `<button type="button" data-testid="reports-open" data-i18n="reports.open" hidden>Reports</button>`,
    onSignInShown: hideViews,
    onSession: (session, { fromSignIn }) => startStudies(session, { fromSignIn }),
    onLangChange: () => {
      const session = shell.session && getSession();
      if (!session) return;
      renderHome((session.user && session.user.role) || "");
      renderStudies();
      renderUploadResults();
    },
  });
  document.querySelector("[data-testid=search-form]").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.term = $("study-search").value.trim();
    loadStudies(true);
  });
  $("search-clear").addEventListener("click", () => {
    $("study-search").value = "";
    state.term = "";
    loadStudies(true);
  });
  $("studies-refresh").addEventListener("click", () => loadStudies(true));
  shell.$("reports-open").addEventListener("click", () => state.reports && state.reports.open());
  $("studies-more").addEventListener("click", () => loadStudies(false));
  $("upload-open").addEventListener("click", () => toggleUpload($("upload-panel").hidden));
  $("upload-close").addEventListener("click", () => toggleUpload(false));
  $("upload-input").addEventListener("change", onFilesChosen);
  shell.start();
}

init();

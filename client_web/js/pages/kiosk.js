// kiosk.html: the township doctor's consult kiosk. Sign in (with the kiosk's device token),
// camera/microphone self-check, the consult request, waiting, the call (js/call.js).

import { applyI18n, t } from "../lib/i18n.js";
import { TAG, apiJson, first, formatDate, personName } from "../lib/api.js";
import { testIds } from "../lib/dom.js";
import { fillIcons } from "../lib/icons.js";
import { LevelMeter, RoomCall, elapsed, getLocalMedia, savedRoom, urlOptions } from "../components/call.js";
import { CallView, callMarkup, confirmAction, leftKey, showNotice } from "../components/call-ui.js";
import { mountShell } from "../components/shell.js";
import { DEPARTMENTS, departmentLabel, orderDepartments } from "../lib/departments.js";
import { HistoryPanel, historyMarkup } from "../components/history.js";
import { ReportsPanel } from "../components/reports-panel.js";
import { ECG_CLASSES } from "../components/ecg/viewer.js";
import { errorText } from "../messages.js";
import "../i18n/call.js";
import "../i18n/kiosk.js";

export const URGENCIES = ["routine", "urgent", "emergency"];
const DEVICE_KEY = "hz.device_token";
const CONSULT_KEY = "hz.consult";
const MIC_SIGNAL_LEVEL = 0.02;
const ECG_STUDIES_LISTED = 10; // the clinic's newest ECG studies offered in the call
const MIC_TIMEOUT_MS = 8000;
const CAMERA_TIMEOUT_MS = 6000;

const $ = testIds();
const opts = urlOptions();

const state = {
  signal: null,
  stream: null,
  meter: null,
  checkSeq: 0,
  department: null,
  urgency: "routine",
  studies: [],
  consult: null, // waiting consult {consult, startedAt}
  waitTimer: 0,
  call: null,
  view: null,
  ecgs: [], // the clinic's ECG instances the doctor may send into the call
  ecgLoad: null, // the list's load under way (a promise), and whether another was asked for
  ecgReload: false,
  endedBy: null, // {key, name}: why the call ended when everyone else left
  mismatch: null, // {study, consult}: the typed patient is not the attached study's
  rejoinable: new Map(), // consult id -> consult still open without us
  online: null, // department id -> experts online (null: the server does not say)
  departments: null, // the server's department ids, ordered (null: not known yet)
  departmentNames: new Map(), // id -> the directory's name (for ids without our label)
  checks: { camera: { state: "pending", key: "selfcheck.pending" }, mic: { state: "pending", key: "selfcheck.pending" } },
};

function showView(id) {
  for (const v of ["login-view", "precall-view", "waiting-view", "call-view", "ended-view"]) {
    document.getElementById(v).hidden = v !== id;
  }
}

function notice(key, kind = "info") {
  showNotice($("notice"), key, kind);
}

/** `?device_token=…` is stored once and removed from the address bar (and history). */
function takeDeviceToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("device_token");
  if (given) {
    try {
      localStorage.setItem(DEVICE_KEY, given);
    } catch {
      // storage unavailable: the token applies to this sign-in only
    }
    url.searchParams.delete("device_token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
    return given;
  }
  try {
    return localStorage.getItem(DEVICE_KEY);
  } catch {
    return null;
  }
}

// ---- self-check ---------------------------------------------------------------------------

function setCheck(which, st, key, params = {}) {
  state.checks[which] = { state: st, key, params };
  const li = $(`selfcheck-${which}`);
  li.dataset.state = st;
  li.querySelector(".mark").textContent = st === "ok" ? "✓" : st === "fail" ? "✗" : "…";
  $(`selfcheck-${which}-text`).textContent = t(key, params);
}

function stopLocalMedia() {
  if (state.meter) state.meter.stop();
  state.meter = null;
  if (state.stream) for (const tr of state.stream.getTracks()) tr.stop();
  state.stream = null;
}

function mediaErrorKey(err) {
  if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) return ["selfcheck.denied", {}];
  if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError")) return ["selfcheck.missing", {}];
  return ["selfcheck.failed", { message: (err && err.message) || String(err) }];
}

async function runSelfCheck() {
  const seq = ++state.checkSeq;
  stopLocalMedia();
  setCheck("camera", "pending", "selfcheck.pending");
  setCheck("mic", "pending", "selfcheck.pending");
  $("mic-meter").value = 0;
  let stream;
  try {
    stream = await getLocalMedia(opts);
  } catch (err) {
    if (seq !== state.checkSeq) return;
    const [key, params] = mediaErrorKey(err);
    setCheck("camera", "fail", key, params);
    setCheck("mic", "fail", key, params);
    return;
  }
  if (seq !== state.checkSeq) {
    for (const tr of stream.getTracks()) tr.stop();
    return;
  }
  state.stream = stream;
  const preview = $("self-preview");
  preview.srcObject = stream;
  preview.play().catch(() => {});

  // Camera: a live video track whose frames reach the preview.
  if (!stream.getVideoTracks().length) {
    setCheck("camera", "fail", "selfcheck.missing");
  } else {
    const started = Date.now();
    const poll = () => {
      if (seq !== state.checkSeq) return;
      const track = stream.getVideoTracks()[0];
      if (track.readyState !== "live") setCheck("camera", "fail", "selfcheck.failed", { message: "ended" });
      else if (preview.videoWidth > 0 && preview.readyState >= 2) setCheck("camera", "ok", "selfcheck.ok");
      else if (Date.now() - started > CAMERA_TIMEOUT_MS) setCheck("camera", "fail", "selfcheck.failed", { message: "no picture" });
      else setTimeout(poll, 150);
    };
    poll();
  }

  // Microphone: a live audio track with some sound on it.
  if (!stream.getAudioTracks().length) {
    setCheck("mic", "fail", "selfcheck.missing");
    return;
  }
  setCheck("mic", "pending", "selfcheck.speak");
  const started = Date.now();
  try {
    state.meter = new LevelMeter(stream, (level) => {
      if (seq !== state.checkSeq) return;
      $("mic-meter").value = level;
      const cur = state.checks.mic.state;
      if (level >= MIC_SIGNAL_LEVEL && cur !== "ok") setCheck("mic", "ok", "selfcheck.ok");
      else if (cur === "pending" && Date.now() - started > MIC_TIMEOUT_MS) setCheck("mic", "fail", "selfcheck.noSound");
    });
  } catch (err) {
    setCheck("mic", "fail", "selfcheck.failed", { message: err.message });
  }
}

// ---- the request form ---------------------------------------------------------------------

function renderChoices() {
  const depts = $("departments");
  depts.textContent = "";
  const shown = state.departments || DEPARTMENTS;
  // One row for up to 4 (css/call.css): a second row would push Call off a 768 px screen.
  depts.style.setProperty("--choices", String(Math.min(shown.length, 4) || 1));
  for (const d of shown) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "choice";
    b.dataset.testid = `dept-${d}`;
    b.setAttribute("aria-pressed", String(state.department === d));
    const label = document.createElement("span");
    label.className = "dept-label";
    label.textContent = departmentLabel(d, state.departmentNames.get(d));
    b.append(label);
    // how many experts are online (GET /api/departments + the `departments` push)
    const n = state.online ? state.online.get(d) : undefined;
    if (n !== undefined) {
      const online = document.createElement("span");
      online.className = "dept-online";
      online.dataset.testid = "dept-online";
      online.textContent = n === 0 ? t("dept.offline") : n === 1 ? t("dept.online.one") : t("dept.online", { n });
      b.append(online);
      b.dataset.online = String(n);
    }
    b.addEventListener("click", () => {
      state.department = d;
      renderChoices();
    });
    depts.append(b);
  }
  renderNoneOnline();
  const urg = $("urgencies");
  urg.textContent = "";
  for (const u of URGENCIES) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `choice urgency-${u}`;
    b.dataset.testid = `urgency-${u}`;
    b.setAttribute("aria-pressed", String(state.urgency === u));
    b.textContent = t(`urgency.${u}`);
    b.addEventListener("click", () => {
      state.urgency = u;
      renderChoices();
    });
    urg.append(b);
  }
}

/** Nobody of the chosen department online: say so, offer another one or leaving a request. */
function renderNoneOnline() {
  const box = $("dept-none");
  const d = state.department;
  const none = Boolean(d && state.online && state.online.get(d) === 0);
  box.hidden = !none;
  $("call-start").hidden = none; // "Leave a request" instead
  if (none) {
    $("dept-none-text").textContent = t("dept.noneOnline",
      { dept: departmentLabel(d, state.departmentNames.get(d)) });
  }
}

function setOnline(list) {
  if (!Array.isArray(list)) return;
  state.online = new Map(list.map((x) => [x.id, Number(x.experts_online) || 0]));
  state.departments = orderDepartments(list);
  state.departmentNames = new Map(list.map((x) => [x.id, String(x.name || "")]));
  if (state.department && !state.departments.includes(state.department)) state.department = null;
  renderChoices();
}

async function loadDepartments() {
  try {
    const reply = await apiJson("/api/departments");
    setOnline(reply && reply.departments);
  } catch {
    // a server without online counts: the kiosk calls as before
  }
}

function renderStudyOptions(loading = false) {
  const sel = $("study-select");
  const current = sel.value;
  sel.textContent = "";
  const none = new Option(t(loading ? "consult.study.loading" : "consult.study.none"), "");
  sel.append(none);
  for (const st of state.studies) {
    const uid = first(st, TAG.StudyInstanceUID);
    const label = [
      personName(st, TAG.PatientName), first(st, TAG.PatientID, ""),
      formatDate(first(st, TAG.StudyDate, "")), first(st, TAG.StudyDescription, ""),
    ].filter(Boolean).join(" · ");
    sel.append(new Option(label, uid));
  }
  const want = state.pendingStudy || current;
  sel.value = state.studies.some((s) => first(s, TAG.StudyInstanceUID) === want) ? want : "";
  if (!loading) state.pendingStudy = null;
}

async function loadStudies() {
  renderStudyOptions(true);
  try {
    const list = await apiJson("/dicomweb/studies?includefield=all&limit=50", {
      headers: { Accept: "application/dicom+json, application/json" },
    });
    state.studies = Array.isArray(list) ? list : [];
  } catch {
    state.studies = []; // the call works without a study
  }
  renderStudyOptions();
}

/** The study's patient name as the consult should carry it: the ideographic (Chinese) name
 * when the file has one, else the alphabetic one. */
function studyPatientName(st) {
  const pn = first(st, TAG.PatientName);
  if (pn && typeof pn === "object" && pn.Ideographic) return String(pn.Ideographic).split("^").filter(Boolean).join("");
  return personName(st, TAG.PatientName);
}

function chosenStudy() {
  const uid = $("study-select").value;
  return state.studies.find((s) => first(s, TAG.StudyInstanceUID) === uid) || null;
}

/** The kiosk takes the patient from the attached study when one is chosen. */
function onStudyChosen() {
  const st = chosenStudy();
  $("patient-from-study").hidden = !st;
  if (st) {
    $("patient-name").value = studyPatientName(st);
    $("patient-id").value = first(st, TAG.PatientID, "");
  }
  checkPatient();
}

/** A typed patient that is not the attached study's needs the doctor's explicit confirmation
 * (the server checks it too: error `patient_mismatch`, then `confirm_patient_mismatch`). */
function checkPatient(serverSays = null) {
  const st = chosenStudy();
  const box = $("patient-mismatch");
  let study = null;
  if (serverSays) {
    study = [serverSays.study_patient_name, serverSays.study_patient_id].filter(Boolean).join(" · ") || "?";
  } else if (st) {
    const name = studyPatientName(st);
    const id = first(st, TAG.PatientID, "");
    const typedName = $("patient-name").value.trim();
    const typedId = $("patient-id").value.trim();
    const norm = (x) => String(x || "").replace(/[\s^]+/g, "").toLowerCase();
    if ((typedId && norm(typedId) !== norm(id)) || (typedName && norm(typedName) !== norm(name))) {
      study = [name, id].filter(Boolean).join(" · ");
    }
  }
  const wasShown = !box.hidden;
  box.hidden = !study;
  if (!study) {
    $("patient-mismatch-confirm").checked = false;
    state.mismatch = null;
    return;
  }
  const consult = [$("patient-name").value.trim(), $("patient-id").value.trim()].filter(Boolean).join(" · ") || "—";
  state.mismatch = { study, consult };
  if (!wasShown) $("patient-mismatch-confirm").checked = false;
  renderMismatch();
}

function renderMismatch() {
  if (!state.mismatch) return;
  $("patient-mismatch-text").textContent = t("patient.mismatch", state.mismatch);
}

/** Puts a consult's request back into the form: cancelling or an unanswered ring keeps it. */
function fillForm(c) {
  if (!c) return;
  if ((state.departments || DEPARTMENTS).includes(c.department)) state.department = c.department;
  if (URGENCIES.includes(c.urgency)) state.urgency = c.urgency;
  renderChoices();
  $("patient-name").value = c.patient_name || "";
  $("patient-id").value = c.patient_id || "";
  $("consult-question").value = c.question || "";
  const sel = $("study-select");
  if (c.study_uid && [...sel.options].some((o) => o.value === c.study_uid)) sel.value = c.study_uid;
  else if (!c.study_uid) sel.value = "";
  state.pendingStudy = c.study_uid || null; // the study list may still be loading
  $("patient-from-study").hidden = true;
  checkPatient();
}

function formError(key, params) {
  const box = $("consult-error");
  box.hidden = !key;
  box.textContent = key ? t(key, params) : "";
}

async function onCall(ev, leaveRequest = false) {
  if (ev) ev.preventDefault();
  formError(null);
  notice(null);
  const question = $("consult-question").value.trim();
  if (!state.department || !question) {
    formError("consult.missing");
    return;
  }
  checkPatient();
  if (state.mismatch && !$("patient-mismatch-confirm").checked) {
    formError("patient.confirmFirst");
    $("patient-mismatch").scrollIntoView({ block: "nearest" });
    return;
  }
  if (state.meter) state.meter.resume(); // a user gesture: audio may start now
  const button = $("call-start");
  button.disabled = true;
  const msg = {
    type: "consult.start",
    ...(leaveRequest ? { leave_request: true } : {}),
    department: state.department,
    urgency: state.urgency,
    question,
    patient_name: $("patient-name").value.trim(),
    patient_id: $("patient-id").value.trim(),
    study_uid: $("study-select").value,
  };
  try {
    let reply;
    try {
      reply = await state.signal.request(msg);
    } catch (err) {
      if (err.code !== "patient_mismatch") throw err;
      // the server compared the study's patient with the typed one
      if (!state.mismatch || !$("patient-mismatch-confirm").checked) {
        checkPatient(err.details || {});
        formError("patient.confirmFirst");
        return;
      }
      reply = await state.signal.request({ ...msg, confirm_patient_mismatch: true });
    }
    if (leaveRequest || (reply.consult && reply.consult.state === "requested")) {
      // left for the department: an expert takes it later (the kiosk is told, see offerRejoin)
      notice("request.left", "info", { dept: t(`dept.${state.department}`) });
      return;
    }
    startWaiting({ consult: reply.consult, startedAt: Date.now() });
  } catch (err) {
    if (err.code === "no_expert_online") {
      if (!state.online) state.online = new Map();
      state.online.set(state.department, 0);
      renderChoices();
      return;
    }
    formError(leaveRequest ? "request.failed" : "consult.startFailed", { message: err.message });
  } finally {
    button.disabled = false;
  }
}

// ---- consults still open (rejoin) --------------------------------------------------------

/** A consult of ours that is accepted and still open while we are not in it: the doctor
 * dropped or signed out; the server offers it again (consult.accepted) for the grace period. */
function offerRejoin(consult) {
  if (!consult || !consult.room_id) return;
  state.rejoinable.set(consult.id, consult);
  renderRejoin();
}

function renderRejoin() {
  const box = $("rejoin-list");
  box.textContent = "";
  for (const c of state.rejoinable.values()) {
    const card = document.createElement("div");
    card.className = "rejoin-card";
    card.dataset.testid = "rejoin-card";
    card.dataset.consultId = c.id;
    const text = document.createElement("span");
    text.textContent = t("rejoin.text", {
      dept: t(`dept.${c.department}`),
      patient: [c.patient_name, c.patient_id].filter(Boolean).join(" · ") || "—",
    });
    const b = document.createElement("button");
    b.type = "button";
    b.className = "primary";
    b.dataset.testid = "rejoin-join";
    b.textContent = t("history.rejoin");
    b.addEventListener("click", () => {
      state.rejoinable.delete(c.id);
      renderRejoin();
      enterCall(c.room_id);
    });
    card.append(text, b);
    box.append(card);
  }
  box.hidden = state.rejoinable.size === 0;
}

// ---- waiting ------------------------------------------------------------------------------

function startWaiting(waiting) {
  state.consult = waiting;
  sessionStorage.setItem(CONSULT_KEY, JSON.stringify(waiting));
  showView("waiting-view");
  renderWaiting();
  clearInterval(state.waitTimer);
  state.waitTimer = setInterval(renderWaiting, 500);
}

function renderWaiting() {
  const w = state.consult;
  if (!w) return;
  const c = w.consult;
  $("waiting-heading").textContent = t("waiting.heading", { dept: t(`dept.${c.department}`) });
  $("waiting-elapsed").textContent = elapsed(w.startedAt);
  $("waiting-summary").textContent = [
    t(`urgency.${c.urgency}`), c.patient_name, c.patient_id, c.question,
  ].filter(Boolean).join(" · ");
}

function stopWaiting() {
  clearInterval(state.waitTimer);
  state.consult = null;
  sessionStorage.removeItem(CONSULT_KEY);
}

async function onCancel() {
  const w = state.consult;
  if (!w) return;
  $("call-cancel").disabled = true;
  try {
    const reply = await state.signal.request({ type: "consult.cancel", consult_id: w.consult.id });
    stopWaiting();
    showPrecall();
    fillForm((reply && reply.consult) || w.consult);
    notice("waiting.cancelled");
  } catch {
    // already accepted (consult.accepted is on its way) or offline: keep waiting
  } finally {
    $("call-cancel").disabled = false;
  }
}

// ---- the call -----------------------------------------------------------------------------

function showPrecall() {
  showView("precall-view");
  if (!state.stream) runSelfCheck();
}

async function enterCall(roomId) {
  for (const [id, c] of state.rejoinable) if (c.room_id === roomId) state.rejoinable.delete(id);
  renderRejoin();
  stopWaiting();
  notice(null);
  if (state.meter) state.meter.stop();
  state.meter = null;
  if (!state.stream) {
    try {
      state.stream = await getLocalMedia(opts);
    } catch (err) {
      notice("media.failed", "error");
      state.stream = new MediaStream(); // the expert can still speak to and see the clinic
    }
  }
  const call = new RoomCall(state.signal, { localStream: state.stream, relay: opts.relay });
  state.call = call;
  window.huizhenCall = call; // for tests and field diagnosis
  state.view = new CallView(document.getElementById("call-view"), {
    signal: state.signal,
    call,
    localStream: state.stream,
    onHangUp: () => call.leave(),
  });
  call.addEventListener("left", (ev) => {
    const { participant, event, reason } = ev.detail;
    const key = leftKey(event, reason);
    const name = participant.display_name || participant.id;
    notice(key, "info", { name });
    // the last other participant gone: the call is over for the kiosk too
    const others = [...call.participants.values()].filter((p) => p.state !== "left");
    if (!others.length) {
      state.endedBy = { key, name };
      call.leave();
    }
  });
  call.addEventListener("ended", (ev) => {
    if (state.view) state.view.destroy();
    state.view = null;
    state.call = null;
    const reason = ev.detail;
    // the self-check preview shows the camera again
    $("self-preview").srcObject = state.stream;
    if (state.endedBy) {
      showEnded(state.endedBy);
      state.endedBy = null;
      return;
    }
    notice(reason === "replaced" ? "call.replaced" : reason === "closed" ? "call.closed" : "call.ended");
    showPrecall();
  });
  showView("call-view");
  call.join(roomId);
  loadEcgs();
}

// ---- send an ECG into the call (room.share; the expert's page shows it beside the video) -----

const ECG_SHARE_MARKUP = `
      <div class="ecg-share" data-testid="ecg-share">
        <select data-testid="ecg-share-select" aria-label="ECG"></select>
        <button type="button" class="primary" data-testid="ecg-share-send" data-i18n="ecgshare.send" disabled>Send ECG to the expert</button>
        <span class="ecg-share-status" data-testid="ecg-share-status" role="status"></span>
      </div>`;

/** The clinic's newest ECGs (studies with an ECG, then their waveform instances): when the call
 * starts, and again on `ecg.stored` (the clinic uploaded one) — `keep`: a reload in the call,
 * which leaves the status alone and keeps the chosen ECG chosen. Loads never overlap: one asked
 * for during a load runs after it, so the newest upload is always in the list. */
async function loadEcgs({ keep = false } = {}) {
  if (state.ecgLoad) {
    state.ecgReload = true;
    return state.ecgLoad;
  }
  state.ecgLoad = fillEcgs(keep);
  try {
    await state.ecgLoad;
  } finally {
    state.ecgLoad = null;
  }
  if (state.ecgReload) {
    state.ecgReload = false;
    await loadEcgs({ keep: true });
  }
}

async function fillEcgs(keep) {
  const sel = $("ecg-share-select");
  const chosen = keep ? state.ecgs[Number(sel.value)] : null;
  if (!keep) {
    sel.textContent = "";
    sel.append(new Option(t("ecgshare.loading"), ""));
    $("ecg-share-send").disabled = true;
    $("ecg-share-status").textContent = "";
  }
  const found = [];
  try {
    const studies = await apiJson(
      `/dicomweb/studies?ModalitiesInStudy=ECG&includefield=all&limit=${ECG_STUDIES_LISTED}`,
      { headers: { Accept: "application/dicom+json" } });
    for (const st of Array.isArray(studies) ? studies : []) {
      const uid = first(st, TAG.StudyInstanceUID);
      const list = await apiJson(`/dicomweb/studies/${encodeURIComponent(uid)}/instances?includefield=all`,
        { headers: { Accept: "application/dicom+json" } });
      for (const inst of Array.isArray(list) ? list : []) {
        if (!ECG_CLASSES.includes(first(inst, "00080016"))) continue;
        found.push({
          study: uid, series: first(inst, TAG.SeriesInstanceUID), sop: first(inst, TAG.SOPInstanceUID),
          label: [personName(st, TAG.PatientName), first(st, TAG.PatientID, ""),
            formatDate(first(st, TAG.StudyDate, "")), first(st, TAG.StudyTime, "").slice(0, 4),
            `#${first(inst, TAG.InstanceNumber, "") || found.length + 1}`].filter(Boolean).join(" · "),
        });
      }
    }
  } catch (err) {
    $("ecg-share-status").textContent = t("ecgshare.failed", { message: err.message });
  }
  state.ecgs = found;
  sel.textContent = "";
  if (!found.length) sel.append(new Option(t("ecgshare.none"), ""));
  found.forEach((e, i) => sel.append(new Option(e.label, String(i))));
  const again = chosen ? found.findIndex((e) => e.sop === chosen.sop) : -1;
  if (again >= 0) sel.value = String(again);
  sel.dataset.count = String(found.length);
  $("ecg-share-send").disabled = !found.length;
}

async function onShareEcg() {
  const ecg = state.ecgs[Number($("ecg-share-select").value)];
  if (!ecg || !state.call || !state.call.roomId) return;
  const button = $("ecg-share-send");
  const status = $("ecg-share-status");
  button.disabled = true;
  status.textContent = t("ecgshare.sending");
  try {
    await state.signal.request({ type: "room.share", room_id: state.call.roomId,
      study_uid: ecg.study, series_uid: ecg.series, sop_instance_uid: ecg.sop });
    status.textContent = t("ecgshare.sent");
  } catch (err) {
    status.textContent = t("ecgshare.failed", { message: errorText(err.code, err.details || {}) || err.message });
  } finally {
    button.disabled = false;
  }
}

/** The clear "call has ended" screen: who left and why, and the way back. */
function showEnded(by) {
  notice(null);
  state.ended = by;
  renderEnded();
  showView("ended-view");
}

function renderEnded() {
  const by = state.ended;
  if (!by) return;
  $("call-ended-reason").textContent = t(by.key, { name: by.name });
  $("call-ended-detail").textContent = t("ended.alone");
}

function onSignalMessage(msg) {
  if (msg.type === "departments") {
    setOnline(msg.departments);
    return;
  }
  if (msg.type === "ecg.stored") {
    // The clinic uploaded an ECG: in a call it can be sent at once (the list is loaded when
    // a call starts, so outside one there is nothing to refresh).
    if (state.call) loadEcgs({ keep: true });
    return;
  }
  if (msg.type === "consult.accepted" && state.consult && msg.consult.id === state.consult.consult.id) {
    enterCall(msg.consult.room_id);
  } else if (msg.type === "consult.accepted" && msg.consult && !(state.call && state.call.roomId === msg.consult.room_id)) {
    offerRejoin(msg.consult);
  } else if (msg.type === "consult.cancelled" && state.consult && msg.consult_id === state.consult.consult.id) {
    const c = msg.consult || state.consult.consult;
    stopWaiting();
    showPrecall();
    fillForm(c);
  } else if (msg.type === "consult.unanswered" && state.consult && msg.consult_id === state.consult.consult.id) {
    // rang for the configured time without an answer: back to the form, as typed
    const c = msg.consult || state.consult.consult;
    stopWaiting();
    showPrecall();
    fillForm(c);
    const min = Math.max(1, Math.round((Number(msg.ring_timeout_s) || 0) / 60));
    notice(msg.ring_timeout_s ? "waiting.unanswered" : "waiting.unansweredShort", "error", { min });
  }
}

function start(shell) {
  $("history-open").hidden = false;
  $("reports-open").hidden = false;
  const signal = shell.connect();
  state.reports.listen(signal);
  state.signal = signal;
  signal.addEventListener("message", (ev) => onSignalMessage(ev.detail));
  renderChoices();
  loadStudies();
  loadDepartments();
  const room = savedRoom();
  if (room) {
    enterCall(room); // a reload mid-call: rejoin the same room with a new peer connection
    return;
  }
  let waiting = null;
  try {
    waiting = JSON.parse(sessionStorage.getItem(CONSULT_KEY) || "null");
  } catch {
    waiting = null;
  }
  if (waiting && waiting.consult) {
    startWaiting(waiting);
    runSelfCheck();
  } else {
    showPrecall();
  }
}

function init() {
  const deviceToken = takeDeviceToken();
  fillIcons(); // the Call button's and the waiting screen's (kiosk.html)
  document.getElementById("call-view").insertAdjacentHTML("beforeend", callMarkup(ECG_SHARE_MARKUP));
  $("ecg-share-send").addEventListener("click", onShareEcg);
  const shell = mountShell({
    title: "kiosk.title",
    // keep dev/diagnosis parameters (?ice=relay, ?video=…) across a forced sign-in
    loginPage: `kiosk.html${window.location.search}`,
    deviceToken,
    net: true,
    actions: `<button type="button" data-testid="history-open" data-i18n="history.open" hidden>History</button>
      <button type="button" data-testid="reports-open" data-i18n="reports.open" hidden>Reports</button>`,
    onSignInShown: () => showView("login-view"),
    onSession: () => start(shell),
    // signing out mid-call or while a request waits asks first, and tells the others why
    beforeSignOut: async () => {
      if (state.call) {
        if (!(await confirmAction("confirm.signOutCall"))) return false;
        if (state.call) await state.call.leave("signed_out");
      } else if (state.consult) {
        if (!(await confirmAction("confirm.signOutWaiting"))) return false;
        if (state.consult) await onCancel();
      }
      return true;
    },
    onSignOut: stopLocalMedia,
    onLangChange: () => {
      renderChoices();
      renderStudyOptions();
      renderWaiting();
      renderEnded();
      renderMismatch();
      renderRejoin();
      if (state.history) state.history.render();
      if (state.reports) state.reports.render();
      for (const which of ["camera", "mic"]) {
        const c = state.checks[which];
        setCheck(which, c.state, c.key, c.params);
      }
    },
  });
  document.querySelector("[data-testid=consult-form]").addEventListener("submit", onCall);
  $("call-cancel").addEventListener("click", onCancel);
  $("selfcheck-retry").addEventListener("click", () => runSelfCheck());
  const historyRoot = $("history-panel");
  historyRoot.innerHTML = historyMarkup();
  applyI18n(historyRoot);
  state.history = new HistoryPanel(historyRoot, {
    // a consult of ours still open (we dropped or signed out): back into its room
    onRejoin: (c) => {
      if (!state.call && !state.consult) enterCall(c.room_id);
    },
  });
  $("history-open").addEventListener("click", () => state.history.open());
  state.reports = new ReportsPanel($("reports-panel"));
  applyI18n($("reports-panel"));
  $("reports-open").addEventListener("click", () => state.reports.open());
  $("call-ended-done").addEventListener("click", () => {
    state.ended = null;
    showPrecall();
  });
  $("study-select").addEventListener("change", onStudyChosen);
  $("request-leave").addEventListener("click", () => onCall(null, true));
  for (const id of ["patient-name", "patient-id"]) $(id).addEventListener("input", () => checkPatient());
  $("patient-mismatch-confirm").addEventListener("change", () => formError(null));
  shell.start();
}

init();

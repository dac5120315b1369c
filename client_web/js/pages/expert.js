// expert.html: the county expert's workstation. Ringing consult requests and invitations; in a
// consult, the video beside the attached study in the imaging viewer; invite a colleague.

import { proposeForMdt } from "../components/mdt-propose.js";
import { applyI18n, t } from "../lib/i18n.js";
import { testIds } from "../lib/dom.js";
import { icon } from "../lib/icons.js";
import { getSession } from "../lib/api.js";
import { RoomCall, elapsed, getLocalMedia, savedRoom, urlOptions } from "../components/call.js";
import { CallView, callMarkup, callSignOut, leftKey, showNotice } from "../components/call-ui.js";
import { mountShell } from "../components/shell.js";
import { Viewer, viewerMarkup } from "../components/viewer/viewer.js";
import { ecgMarkup, mountEcgViewer } from "../components/ecg/viewer.js";
import { DEPARTMENTS_FOR_INVITE } from "../lib/departments.js";
import { HistoryPanel, historyMarkup } from "../components/history.js";
import { ReportsPanel } from "../components/reports-panel.js";
import { ReportEditor, openReport } from "../components/report-editor.js";
import "../i18n/call.js";
import "../i18n/expert.js";

const $ = testIds();
const opts = urlOptions();
const RING_EVERY_MS = 3000;
// the invite form, after the call buttons
const INVITE = `
  <form class="invite" data-testid="invite-form" novalidate>
    <label class="visually-hidden" for="invite-username" data-i18n="invite.username">Username</label>
    <input id="invite-username" type="text" autocapitalize="off" spellcheck="false"
           data-testid="invite-username" data-i18n-placeholder="invite.username"
           data-i18n-title="invite.heading">
    <label class="visually-hidden" for="invite-department" data-i18n="invite.department">or a department</label>
    <select id="invite-department" data-testid="invite-department"></select>
    <button type="submit" class="primary" data-testid="invite-send" data-i18n="invite.send">Invite</button>
  </form>
  <div class="invite-status" data-testid="invite-status" role="status"></div>`;

const state = {
  signal: null,
  stream: null,
  ringing: new Map(), // consult id -> {consult, seenAt}
  invitations: new Map(), // room id -> {room_id, from, consult}
  call: null,
  view: null,
  viewer: null,
  ecg: null, // the ECG the doctor sent into the call: {sop, root, viewer}
  lastEventId: "", // the newest room event seen (a rejoin asks for the ones after it)
  consult: null, // the consult of the current room
  tickTimer: 0,
  ringTimer: 0,
  audio: null,
};

function showView(id) {
  for (const v of ["login-view", "lobby-view", "call-view"]) document.getElementById(v).hidden = v !== id;
}

function notice(key, kind = "info", params = {}) {
  showNotice($("notice"), key, kind, params);
}

// ---- ringing ------------------------------------------------------------------------------

function createdMs(consult) {
  const c = Number(consult.created_at);
  return Number.isFinite(c) && c > 0 ? c * 1000 : Date.now();
}

function consultCard(consult, { invitation = null } = {}) {
  const card = document.createElement("article");
  card.className = `consult-card${invitation ? " invitation" : ""}`;
  card.dataset.testid = invitation ? "invite-card" : "consult-ring";
  card.dataset.consultId = consult ? consult.id : "";
  card.dataset.urgency = (consult && consult.urgency) || "routine";
  const stripe = document.createElement("div");
  stripe.className = "stripe";
  const body = document.createElement("div");
  body.className = "body";
  const line1 = document.createElement("div");
  line1.className = "line1";
  if (invitation) {
    const who = document.createElement("span");
    who.className = "patient";
    who.textContent = t("expert.invitedBy", { from: invitation.from });
    line1.append(who);
  }
  if (consult) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.urgency = consult.urgency;
    badge.textContent = t(`urgency.${consult.urgency}`);
    const patient = document.createElement("span");
    patient.className = invitation ? "meta" : "patient";
    patient.dataset.testid = "consult-ring-patient";
    patient.textContent = [consult.patient_name, consult.patient_id].filter(Boolean).join(" · ") || "—";
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${t("expert.clinic")}: ${consult.clinic_name || consult.clinic} · ${t(`dept.${consult.department}`)}`;
    const el = document.createElement("span");
    el.className = "elapsed";
    el.dataset.testid = "consult-elapsed";
    el.dataset.since = String(createdMs(consult));
    el.textContent = t("expert.waitingFor", { t: elapsed(createdMs(consult)) });
    line1.prepend(badge);
    line1.append(patient, meta);
    if (!invitation) line1.append(el);
    const line2 = document.createElement("div");
    line2.className = "line2";
    const doctor = document.createElement("span");
    doctor.className = "doctor";
    doctor.dataset.testid = "consult-ring-doctor";
    doctor.textContent = t("expert.calledBy", { name: consult.doctor_name || consult.doctor || "—" });
    const study = document.createElement("span");
    const hasStudy = consult.has_study ?? Boolean(consult.study_uid);
    study.className = `study-flag${hasStudy ? " yes" : ""}`;
    study.dataset.testid = "consult-ring-study";
    study.dataset.hasStudy = String(Boolean(hasStudy));
    study.textContent = t(hasStudy ? "expert.studyAttached" : "expert.noStudyAttached");
    line2.append(doctor, study);
    if (consult.state === "requested") {
      const req = document.createElement("span");
      req.className = "request-flag";
      req.dataset.testid = "consult-ring-request";
      req.textContent = t("expert.requestLeft");
      line2.append(req);
    }
    if (isMismatch(consult)) {
      const warn = document.createElement("span");
      warn.className = "mismatch-flag";
      warn.dataset.testid = "consult-ring-mismatch";
      warn.append(icon("warning"), t("patient.mismatchShort"));
      line2.append(warn);
    }
    const q = document.createElement("div");
    q.className = "question";
    q.textContent = consult.question;
    body.append(line1, line2, q);
  } else {
    body.append(line1);
  }
  const button = document.createElement("button");
  button.type = "button";
  if (invitation) {
    button.className = "primary";
    button.dataset.testid = "invite-join";
    button.textContent = t("expert.join");
    button.addEventListener("click", () => joinInvitation(invitation));
  } else {
    button.className = "accept";
    button.dataset.testid = "consult-accept";
    button.textContent = t("expert.accept");
    button.addEventListener("click", () => accept(consult, button));
  }
  card.append(stripe, body, button);
  return card;
}

function renderLobby() {
  const list = $("consult-list");
  list.textContent = "";
  const order = { emergency: 0, urgent: 1, routine: 2 };
  const items = [...state.ringing.values()].map((r) => r.consult).sort(
    (a, b) => (order[a.urgency] ?? 3) - (order[b.urgency] ?? 3) || createdMs(a) - createdMs(b),
  );
  for (const c of items) list.append(consultCard(c));
  $("consult-empty").hidden = items.length > 0;
  const count = $("ring-count");
  count.dataset.n = String(items.length);
  count.textContent = items.length ? String(items.length) : "";
  const inv = $("invite-list");
  inv.textContent = "";
  for (const i of state.invitations.values()) inv.append(consultCard(i.consult, { invitation: i }));
  $("invite-section").hidden = state.invitations.size === 0;
  const n = items.length + state.invitations.size;
  document.title = n && !state.call ? `(${n}) ${t("expert.title")}` : t("expert.title");
  updateRinging();
}

function tick() {
  for (const el of document.querySelectorAll("[data-testid=consult-elapsed]")) {
    el.textContent = t("expert.waitingFor", { t: elapsed(Number(el.dataset.since)) });
  }
}

/** A soft two-tone chime every few seconds while something rings and we are not in a call. */
function updateRinging() {
  const ringing = !state.call && (state.ringing.size > 0 || state.invitations.size > 0);
  if (ringing && !state.ringTimer) {
    chime();
    state.ringTimer = setInterval(chime, RING_EVERY_MS);
  } else if (!ringing && state.ringTimer) {
    clearInterval(state.ringTimer);
    state.ringTimer = 0;
  }
}

function chime() {
  try {
    if (!state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
    const ctx = state.audio;
    if (ctx.state === "suspended") {
      ctx.resume().catch(() => {});
      return; // no user gesture yet: the visual ring carries it
    }
    const now = ctx.currentTime;
    for (const [i, f] of [[0, 880], [1, 660]]) {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, now + i * 0.25);
      g.gain.exponentialRampToValueAtTime(0.2, now + i * 0.25 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.25 + 0.22);
      o.connect(g).connect(ctx.destination);
      o.start(now + i * 0.25);
      o.stop(now + i * 0.25 + 0.24);
    }
  } catch {
    // no audio output: the visual ring is enough
  }
}

async function ensureStream() {
  if (state.stream) return state.stream;
  try {
    state.stream = await getLocalMedia(opts);
  } catch (err) {
    notice("media.failed", "error", { message: err.message });
    state.stream = new MediaStream(); // the expert can still see and hear the clinic
  }
  return state.stream;
}

async function accept(consult, button) {
  button.disabled = true;
  button.textContent = t("expert.accepting");
  notice(null);
  await ensureStream();
  try {
    const reply = await state.signal.request({ type: "consult.accept", consult_id: consult.id });
    state.ringing.delete(consult.id);
    enterCall(reply.consult.room_id, reply.consult);
  } catch (err) {
    state.ringing.delete(consult.id);
    if (err.code === "conflict") notice("expert.taken");
    else notice("consult.startFailed", "error", { message: err.message });
    renderLobby();
  }
}

async function joinInvitation(invitation) {
  state.invitations.delete(invitation.room_id);
  notice(null);
  await ensureStream();
  enterCall(invitation.room_id, invitation.consult);
}

// ---- in the consult -----------------------------------------------------------------------

function renderConsultInfo() {
  const c = state.consult;
  window.huizhenConsult = c; // for tests and field diagnosis
  $("consult-patient").textContent = c
    ? [t(`urgency.${c.urgency}`), c.patient_name, c.patient_id, `${t("expert.clinic")}: ${c.clinic_name || c.clinic}`].filter(Boolean).join(" · ")
    : "";
  $("consult-question-text").textContent = c ? `${t("expert.question")}: ${c.question}` : "";
  // the doctor confirmed a study of another patient: the expert must see it (docs/signaling.md)
  const banner = $("patient-mismatch-banner");
  const mismatch = Boolean(c && isMismatch(c));
  banner.hidden = !mismatch;
  banner.replaceChildren();
  if (mismatch) {
    banner.append(icon("warning"), t("patient.mismatchBanner", {
      study: [c.study_patient_name, c.study_patient_id].filter(Boolean).join(" · ") || "?",
      consult: [c.patient_name, c.patient_id].filter(Boolean).join(" · ") || "—",
    }));
  }
}

/** The consult's `patient_check` says the attached study is of another patient. */
function isMismatch(c) {
  return typeof c.patient_check === "string" && c.patient_check.includes("mismatch");
}

function openStudy(studyUid) {
  // the consult's study may go to an MDT: the expert proposes it (js/components/mdt-propose.js)
  const propose = $("expert-propose-mdt");
  propose.hidden = !studyUid;
  propose.onclick = () => proposeForMdt([studyUid], $("consult-patient").textContent);
  if (state.viewer && state.viewer.studyUid === studyUid) return;
  closeStudy();
  const pane = $("study-images");
  if (!studyUid) {
    const empty = document.createElement("div");
    empty.className = "study-empty";
    empty.dataset.testid = "study-empty";
    empty.dataset.i18n = "expert.noStudy";
    empty.textContent = t("expert.noStudy");
    pane.append(empty);
    return;
  }
  const root = document.createElement("div");
  root.className = "viewer embedded";
  root.innerHTML = viewerMarkup();
  pane.append(root);
  applyI18n(root);
  const viewer = new Viewer(root, studyUid, { globalKeys: false, setTitle: false });
  viewer.fitToolbar(); // one row beside the video (it wrapped to 2–3 rows at 1024–1366 px)
  state.viewer = viewer;
  window.huizhenViewer = viewer;
  viewer.start().catch((err) => viewer.status(t("viewer.error", { message: err.message }), true));
}

function closeStudy() {
  if (state.viewer) state.viewer.destroy();
  state.viewer = null;
  $("study-images").textContent = "";
}

// ---- an ECG the doctor sent into the call (room.share -> event ecg.shared) --------------------

/** Show the images or the ECG beside the video (the switch appears once an ECG arrives). */
function showStudyTab(which) {
  const ecg = which === "ecg" && state.ecg;
  $("study-images").hidden = Boolean(ecg);
  $("study-ecg").hidden = !ecg;
  $("study-tab-images").setAttribute("aria-pressed", String(!ecg));
  $("study-tab-ecg").setAttribute("aria-pressed", String(Boolean(ecg)));
}

function openSharedEcg(ev) {
  if (state.ecg && state.ecg.sop === ev.sop_instance_uid) {
    showStudyTab("ecg");
    return;
  }
  closeEcg();
  const root = document.createElement("div");
  root.className = "ecg-embedded";
  root.innerHTML = ecgMarkup();
  $("study-ecg").append(root);
  const viewer = mountEcgViewer(root, ev.study_uid, { instance: ev.sop_instance_uid });
  state.ecg = { sop: ev.sop_instance_uid, root, viewer };
  window.huizhenEcg = viewer; // for tests and field diagnosis
  $("study-tabs").hidden = false;
  $("study-pane").classList.add("has-tabs");
  showStudyTab("ecg");
  notice("expert.ecgArrived");
  viewer.start();
}

function closeEcg() {
  state.ecg = null;
  $("study-ecg").textContent = "";
  $("study-tabs").hidden = true;
  $("study-pane").classList.remove("has-tabs");
  showStudyTab("images");
}

/** Redis stream ids "ms-seq": is `a` after `b`? */
function newerEvent(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am > bm || (am === bm && (as || 0) > (bs || 0));
}

/** room.event / room.events of the current room: open each ECG the doctor sends. */
function onRoomEvents(roomId, events) {
  if (!state.call || state.call.roomId !== roomId) return;
  for (const ev of events || []) {
    if (!ev || !ev.id) continue;
    if (state.lastEventId && !newerEvent(ev.id, state.lastEventId)) continue; // seen already
    state.lastEventId = ev.id;
    if (ev.type === "ecg.shared") openSharedEcg(ev);
  }
}

async function enterCall(roomId, consult = null) {
  await ensureStream();
  state.consult = consult;
  renderConsultInfo();
  state.lastEventId = "";
  closeEcg();
  const call = new RoomCall(state.signal, {
    localStream: state.stream, relay: opts.relay,
    // every event since the last one seen (all of them on entering): an ECG sent before a
    // reload or a reconnect opens again
    joinFields: () => ({ last_event_id: state.lastEventId || "0-0" }),
  });
  state.call = call;
  window.huizhenCall = call; // for tests and field diagnosis
  state.view = new CallView(document.querySelector("#call-view .in-call"), {
    signal: state.signal,
    call,
    localStream: state.stream,
    onHangUp: () => call.leave(),
  });
  call.addEventListener("left", (ev) => {
    const { participant, event, reason } = ev.detail;
    notice(leftKey(event, reason), "info", { name: participant.display_name || participant.id });
  });
  call.addEventListener("state", (ev) => {
    state.consult = ev.detail.consult || state.consult;
    renderConsultInfo();
    openStudy(state.consult ? state.consult.study_uid : "");
  });
  call.addEventListener("ended", (ev) => {
    const ended = state.consult;
    if (state.view) state.view.destroy();
    state.view = null;
    state.call = null;
    state.consult = null;
    closeStudy();
    closeEcg();
    $("invite-status").textContent = "";
    const reason = ev.detail;
    notice(reason === "replaced" ? "call.replaced" : reason === "closed" ? "call.closed" : "call.ended");
    showView("lobby-view");
    renderLobby();
    // The consult ends with the expert's opinion (会诊意见): its form opens at once.
    const me = (getSession()?.user || {}).username;
    if (ended && ended.id && ended.accepted_by === me) openOpinion(ended.id);
  });
  if (consult) openStudy(consult.study_uid);
  showView("call-view");
  renderLobby(); // the tab title drops the ringing count in a call; ringing stops
  call.join(roomId);
}

/** The opinion form of a consult, in the lobby (not a modal: the next ring must be answerable). */
async function openOpinion(consultId) {
  const pane = $("opinion-pane");
  try {
    const report = await openReport("opinion", consultId);
    pane.hidden = false;
    state.opinion = new ReportEditor(pane, report, {
      onSigned: () => state.reports.refreshCount($("reports-open")),
      onClose: () => {
        if (state.opinion) state.opinion.save();
        state.opinion = null;
        pane.textContent = "";
        pane.hidden = true;
      },
    });
  } catch (err) {
    console.warn("opinion form", err);
  }
}

async function onInvite(ev) {
  ev.preventDefault();
  if (!state.call || !state.call.roomId) return;
  const username = $("invite-username").value.trim();
  const department = $("invite-department").value;
  if (!username && !department) return;
  const msg = { type: "room.invite", room_id: state.call.roomId };
  if (username) msg.username = username;
  else msg.department = department;
  const status = $("invite-status");
  $("invite-send").disabled = true;
  try {
    await state.signal.request(msg);
    status.textContent = t("invite.sent");
    $("invite-username").value = "";
    $("invite-department").value = "";
  } catch (err) {
    status.textContent = t("invite.failed", { message: err.message });
  } finally {
    $("invite-send").disabled = false;
  }
}

function renderInviteDepartments() {
  const sel = $("invite-department");
  const cur = sel.value;
  sel.textContent = "";
  sel.append(new Option(`${t("invite.department")}…`, ""));
  for (const d of DEPARTMENTS_FOR_INVITE) sel.append(new Option(t(`dept.${d}`), d));
  sel.value = cur;
}

// ---- signaling ----------------------------------------------------------------------------

function onSignalMessage(msg) {
  switch (msg.type) {
    case "consult.ringing":
    case "consult.requested": // left for the department while nobody was online
      state.ringing.set(msg.consult.id, { consult: msg.consult, seenAt: Date.now() });
      renderLobby();
      break;
    case "consult.taken":
    case "consult.cancelled":
    case "consult.unanswered":
      if (state.ringing.delete(msg.consult_id)) renderLobby();
      break;
    case "room.event":
      onRoomEvents(msg.room_id, [msg.event]);
      break;
    case "room.events":
      onRoomEvents(msg.room_id, msg.events);
      break;
    case "room.invited":
      if (!state.call || state.call.roomId !== msg.room_id) {
        state.invitations.set(msg.room_id, msg);
        renderLobby();
      }
      break;
    default:
  }
}

function start(shell) {
  $("history-open").hidden = false;
  $("reports-open").hidden = false;
  const signal = shell.connect();
  state.reports.listen(signal);
  state.reports.refreshCount($("reports-open"));
  state.signal = signal;
  signal.addEventListener("ready", () => {
    // the server sends what is ringing now on every (re)connect
    state.ringing.clear();
  });
  signal.addEventListener("message", (ev) => onSignalMessage(ev.detail));
  renderInviteDepartments();
  $("study-tab-images").addEventListener("click", () => showStudyTab("images"));
  $("study-tab-ecg").addEventListener("click", () => showStudyTab("ecg"));
  state.tickTimer = setInterval(tick, 1000);
  const room = savedRoom();
  if (room) {
    enterCall(room);
  } else {
    showView("lobby-view");
    renderLobby();
  }
}

function init() {
  document.querySelector("#call-view .in-call").insertAdjacentHTML("beforeend", callMarkup(INVITE));
  const shell = mountShell({
    title: "expert.title",
    loginPage: `expert.html${window.location.search}`,
    net: true,
    actions: `<button type="button" data-testid="history-open" data-i18n="history.open" hidden>History</button>
      <button type="button" data-testid="reports-open" data-i18n="reports.open" hidden>Reports</button>`,
    userDetail: (u) => (u.department ? ` · ${t(`dept.${u.department}`)}` : ""),
    onSignInShown: () => showView("login-view"),
    onSession: () => start(shell),
    ...callSignOut(() => state), // a call asks first
    onLangChange: () => {
      renderLobby();
      renderConsultInfo();
      renderInviteDepartments();
      state.history.render();
      state.reports.render();
      if (state.opinion) state.opinion.render();
    },
  });
  document.querySelector("[data-testid=invite-form]").addEventListener("submit", onInvite);
  const historyRoot = $("history-panel");
  historyRoot.innerHTML = historyMarkup();
  applyI18n(historyRoot);
  state.history = new HistoryPanel(historyRoot);
  $("history-open").addEventListener("click", () => state.history.open());
  state.reports = new ReportsPanel($("reports-panel"));
  applyI18n($("reports-panel"));
  $("reports-open").addEventListener("click", () => state.reports.open());
  // a click anywhere lets the chime play (browsers start audio only after a user gesture)
  document.addEventListener("pointerdown", () => {
    if (state.audio && state.audio.state === "suspended") state.audio.resume().catch(() => {});
  });
  shell.start();
}

init();

// mdt.html?id=<MDT session id>: the MDT room (mdt-<id>). Video tiles beside the viewer, the
// agenda with the current case, chat, the participants with who presents; synchronised viewing
// (js/components/view-sync.js): the presenter's view is everyone's, a follower may browse
// privately and re-sync. The presenter may show an ECG of the agenda instead of the images (the
// ECG viewer component, js/components/ecg/viewer.js), and switch back to the images as they
// were. Protocol: docs/signaling.md "MDT rooms".

import { recordConclusion } from "../components/mdt-conclusion.js";
import { applyI18n, t } from "../lib/i18n.js";
import { ApiError, apiJson, first } from "../lib/api.js";
import { el, show, testIds } from "../lib/dom.js";
import { RoomCall, getLocalMedia, urlOptions } from "../components/call.js";
import { CallView, callMarkup, callSignOut, leftKey, showNotice } from "../components/call-ui.js";
import { Viewer, viewerMarkup } from "../components/viewer/viewer.js";
import { mountAnnotations } from "../components/viewer/annotations.js";
import { ViewSync } from "../components/view-sync.js";
import { ECG_CLASSES, ecgMarkup, mountEcgViewer } from "../components/ecg/viewer.js";
import { mountShell } from "../components/shell.js";
import "../i18n/call.js";
import "../i18n/mdt.js";

const $ = testIds();
const opts = urlOptions();
const POINTER_EVERY_MS = 50; // the server drops pointers above 30/s
const POINTER_SHOWN_MS = 4000;

const state = {
  shell: null,
  signal: null,
  me: "",
  role: "",
  mdtId: "",
  roomId: "",
  mdt: null, // MdtSession.public() as this user may see it
  may: {}, // what this user may do (GET /api/mdt/<id> "may"): record conclusions
  names: {}, // {users: {username: display name}}
  stream: null,
  call: null,
  view: null, // CallView
  viewer: null,
  ecg: null, // the ECG viewer (js/components/ecg/viewer.js) of the ECG pane, or null
  ecgChoices: [], // the agenda's ECGs this user may see: [{study, series, sop, patient, number}]
  ecgFor: "", // the agenda's studies the choices are of
  ecgStudies: new Set(), // the agenda's studies holding only ECGs (no image to open in the viewer)
  choicesLoaded: Promise.resolve(), // loadEcgChoices() of the agenda as it is now
  annotations: null,
  sync: null,
  participants: new Map(), // id -> participant (others)
  events: new Map(), // event id -> event (the room's log as far as we have it)
  lastEventId: "",
  currentCase: "",
  pointer: null, // {x, y, sop, frame, by, at}
  pointerSentAt: 0,
  requests: new Set(), // usernames asking to present
  ended: null, // why the room ended for us
};

window.huizhenMdt = state; // for tests and field diagnosis

function notice(key, kind = "info", params = {}) {
  showNotice($("notice"), key, kind, params);
}

function showView(id) {
  for (const v of ["login-view", "mdt-view", "mdt-ended"]) {
    const node = document.getElementById(v);
    if (node) node.hidden = v !== id;
  }
}

/** Stream ids "ms-seq" in order. */
function newerId(a, b) {
  const [am, as] = String(a || "0-0").split("-").map(Number);
  const [bm, bs] = String(b || "0-0").split("-").map(Number);
  return am !== bm ? am > bm : (as || 0) > (bs || 0);
}

function nameOf(id) {
  if (!id) return "";
  if (id === state.me) return (state.shell.session.user || {}).display_name || id;
  const p = state.participants.get(id);
  return (p && p.display_name) || (state.names.users && state.names.users[id]) || id;
}

/** A DICOM person name ("Zhou^Ping") as people write it. */
function pn(name) {
  return String(name || "").replace(/\^+/g, " ").trim();
}

function isCoordinator() {
  return state.role === "coordinator" || Boolean(state.mdt && state.mdt.coordinator === state.me);
}

function caseById(id) {
  return ((state.mdt && state.mdt.cases) || []).find((c) => c.case_id === id) || null;
}

// ---- the viewer ---------------------------------------------------------------------------------

const EXTRA_TOOLS = `
  <span class="sep" aria-hidden="true"></span>
  <div class="group" role="group" data-testid="mdt-view-tools" data-i18n-aria-label="mdt.tools">
    <button type="button" data-testid="mdt-rotate" data-i18n="mdt.rotate">Rotate</button>
    <button type="button" data-testid="mdt-flip" data-i18n="mdt.flipH" aria-pressed="false">Flip</button>
    <button type="button" data-testid="mdt-invert" data-i18n="mdt.invert" aria-pressed="false">Invert</button>
    <button type="button" data-testid="mdt-cine" data-i18n="mdt.cine" aria-pressed="false">Cine</button>
    <select data-testid="mdt-cine-fps" data-i18n-aria-label="mdt.cineFps" data-i18n-title="mdt.cineFps"></select>
  </div>`;
const CINE_FPS = [2, 5, 10, 15, 20, 25, 30];

/** The viewer for `studyUid` (a new one when the study changes), attached to the sync. */
function ensureViewer(studyUid) {
  if (!studyUid) return null;
  if (state.viewer && state.viewer.studyUid === studyUid) return state.viewer;
  closeViewer();
  const pane = $("mdt-viewer-pane");
  const root = el("div", { className: "viewer embedded" });
  root.innerHTML = viewerMarkup();
  root.querySelector("[data-testid=toolbar]").insertAdjacentHTML("beforeend", EXTRA_TOOLS);
  pane.append(root);
  applyI18n(root);
  const viewer = new Viewer(root, studyUid, { globalKeys: false, setTitle: false });
  state.viewer = viewer;
  window.huizhenViewer = viewer;
  const q = testIds(root);
  q("mdt-rotate").addEventListener("click", () => viewer.rotate(90));
  q("mdt-flip").addEventListener("click", () => viewer.flip("h"));
  q("mdt-invert").addEventListener("click", () => viewer.setInvert(!viewer.view.invert));
  q("mdt-cine").addEventListener("click", () => viewer.setCine(!viewer.view.cine.playing));
  q("mdt-cine-fps").addEventListener("change", (e) => viewer.setCine(viewer.view.cine.playing, Number(e.target.value)));
  renderFpsOptions(root, viewer);
  viewer.addEventListener("viewchange", () => renderViewTools(root, viewer));
  viewer.addLayer(drawPointer);
  bindPointer(viewer);
  // shared annotations and measurements; key images by the presenter or the coordinator
  state.annotations = mountAnnotations(viewer, {
    roomId: state.roomId, username: state.me, caseId: () => state.currentCase,
    canMarkKey: () => isCoordinator() || Boolean(state.sync && state.sync.isPresenter),
  });
  viewer.fitToolbar(); // one row, icons, the rest in "More tools" (toolbar-fit.js)
  state.sync.attach(viewer);
  viewer.start().catch((err) => viewer.status(t("viewer.error", { message: err.message }), true));
  return viewer;
}

function closeViewer() {
  if (state.annotations) state.annotations.destroy();
  state.annotations = null;
  if (state.viewer) state.viewer.destroy();
  state.viewer = null;
  $("mdt-viewer-pane").textContent = "";
}

function renderViewTools(root, viewer) {
  const q = testIds(root);
  q("mdt-flip").setAttribute("aria-pressed", String(viewer.view.flip_h));
  q("mdt-invert").setAttribute("aria-pressed", String(viewer.view.invert));
  q("mdt-cine").setAttribute("aria-pressed", String(viewer.view.cine.playing));
  const fps = q("mdt-cine-fps");
  if (fps.value !== String(viewer.view.cine.fps)) renderFpsOptions(root, viewer);
}

/** The cine speeds offered, with the one the view plays at (a shared state may carry another). */
function renderFpsOptions(root, viewer) {
  const sel = testIds(root)("mdt-cine-fps");
  const now = viewer.view.cine.fps;
  sel.textContent = "";
  for (const n of [...new Set([...CINE_FPS, now])].sort((a, b) => a - b)) {
    sel.append(new Option(t("mdt.fps", { n }), String(n), false, n === now));
  }
}

// ---- an ECG of the agenda ------------------------------------------------------------------------

/** The ECG viewer for this study (showing `sop` first), attached to the sync; a new one when
 * the study changes, or when `fresh` (another instance picked by hand). */
function ensureEcg(studyUid, sop, { fresh = false } = {}) {
  const cur = state.ecg;
  if (cur && cur.studyUid === studyUid && !(fresh && cur.state.current && cur.state.current.sop !== sop)) {
    return cur;
  }
  closeEcg();
  const root = el("div", { className: "ecg-embedded" });
  root.innerHTML = ecgMarkup();
  $("mdt-ecg-pane").append(root);
  const viewer = mountEcgViewer(root, studyUid, { instance: sop });
  state.ecg = viewer;
  window.huizhenEcg = viewer; // for tests and field diagnosis
  show($("mdt-tab-ecg"), true);
  state.sync.attachEcg(viewer); // a follower's viewer is given the shared ECG state here
  viewer.start();
  return viewer;
}

function closeEcg() {
  if (state.ecg) state.ecg.destroy();
  state.ecg = null;
  if (state.sync) state.sync.attachEcg(null);
  $("mdt-ecg-pane").textContent = "";
  show($("mdt-tab-ecg"), false);
  showPane("images");
}

/** Show the images or the ECG (the sync's `showing`). */
function showPane(which) {
  const ecg = which === "ecg" && Boolean(state.ecg);
  $("mdt-viewer-pane").hidden = ecg;
  $("mdt-ecg-pane").hidden = !ecg;
  $("mdt-tab-images").setAttribute("aria-pressed", String(!ecg));
  $("mdt-tab-ecg").setAttribute("aria-pressed", String(ecg));
}

/** The picked ECG of the agenda: shown (and shared, when presenting; a follower browses). */
function openEcg() {
  const pick = state.ecgChoices[Number($("mdt-ecg-select").value)];
  if (!pick) return;
  if (!state.sync.isPresenter && state.sync.presenter) state.sync.detach();
  ensureEcg(pick.study, pick.sop, { fresh: true });
  state.sync.show("ecg");
}

/** The ECGs of the agenda's studies this user may see (QIDO per study; none: no picker). */
async function loadEcgChoices() {
  const cases = ((state.mdt && state.mdt.cases) || []).filter((c) => !c.hidden);
  const choices = [];
  const ecgStudies = new Set();
  for (const c of cases) {
    const patient = [pn(c.patient_name), c.patient_id].filter(Boolean).join(" · ") || c.case_id;
    for (const uid of c.study_uids || []) {
      let list = [];
      try {
        list = await apiJson(`/dicomweb/studies/${encodeURIComponent(uid)}/instances?includefield=0020000E`,
          { headers: { Accept: "application/dicom+json" } });
      } catch {
        continue; // a study this page may not read (or gone): nothing to pick from it
      }
      const instances = Array.isArray(list) ? list : [];
      const ecgs = instances.filter((inst) => ECG_CLASSES.includes(first(inst, "00080016")));
      if (ecgs.length && ecgs.length === instances.length) ecgStudies.add(uid);
      for (const inst of ecgs) {
        choices.push({ study: uid, series: first(inst, "0020000E"), sop: first(inst, "00080018"),
          patient, number: first(inst, "00200013", "") });
      }
    }
  }
  state.ecgChoices = choices;
  state.ecgStudies = ecgStudies;
  renderEcgPicker();
}

function renderEcgPicker() {
  const sel = $("mdt-ecg-select");
  sel.textContent = "";
  state.ecgChoices.forEach((c, i) => {
    sel.append(new Option(t("mdt.ecgLabel", { patient: c.patient, number: c.number ? `#${c.number}` : i + 1 }), String(i)));
  });
  show($("mdt-ecg-pick"), state.ecgChoices.length > 0);
}

// ---- the presenter's pointer --------------------------------------------------------------------

function bindPointer(viewer) {
  viewer.viewport.addEventListener("pointermove", (e) => {
    if (!state.sync.isPresenter || viewer.dragging) return;
    const now = performance.now();
    if (now - state.pointerSentAt < POINTER_EVERY_MS) return;
    const r = viewer.viewport.getBoundingClientRect();
    const p = viewer.screenToImage([e.clientX - r.left, e.clientY - r.top]);
    const s = viewer.slices[viewer.index];
    if (!p || !s) return;
    state.pointerSentAt = now;
    state.signal.send({
      type: "pointer", room_id: state.roomId, x: p[0], y: p[1], sop_instance_uid: s.sop, frame: s.frame,
    });
  });
}

function onPointer(msg) {
  if (msg.by === state.me) return;
  state.pointer = { x: Number(msg.x), y: Number(msg.y), sop: msg.sop_instance_uid, frame: Number(msg.frame) || 1, by: msg.by, at: Date.now() };
  if (state.viewer) state.viewer.canvas.schedule();
  clearTimeout(state.pointerTimer);
  state.pointerTimer = setTimeout(() => state.viewer && state.viewer.canvas.schedule(), POINTER_SHOWN_MS + 50);
}

/** Overlay layer: the presenter's pointer on the slice it points at. */
function drawPointer(ctx, view) {
  const p = state.pointer;
  if (!p || !view.slice || Date.now() - p.at > POINTER_SHOWN_MS) return;
  if (p.sop !== view.slice.sop || p.frame !== view.slice.frame) return;
  const at = view.toScreen([p.x, p.y]);
  if (!at) return;
  const [x, y] = [at[0] * view.dpr, at[1] * view.dpr];
  ctx.lineWidth = 3 * view.dpr;
  ctx.strokeStyle = "#ffd33d";
  ctx.fillStyle = "rgba(255, 211, 61, 0.35)";
  ctx.beginPath();
  ctx.arc(x, y, 9 * view.dpr, 0, 2 * Math.PI);
  ctx.fill();
  ctx.stroke();
}

// ---- rendering ----------------------------------------------------------------------------------

function renderHead() {
  const m = state.mdt;
  $("mdt-title").textContent = m ? m.title : "";
  $("mdt-state").textContent = m && m.state ? t(`mdt.state.${m.state}`) : "";
  $("mdt-state").dataset.state = (m && m.state) || "";
}

function renderPresenter() {
  const sync = state.sync;
  const banner = $("mdt-presenter-banner");
  const presenter = sync ? sync.presenter : null;
  banner.dataset.presenter = presenter || "";
  banner.textContent = !presenter ? t("mdt.nobodyPresents")
    : presenter === state.me ? t("mdt.presentingYou") : t("mdt.presenting", { name: nameOf(presenter) });
  const mode = sync ? sync.mode : "following";
  const follow = $("mdt-follow-state");
  follow.dataset.mode = mode;
  follow.textContent = mode === "presenter" ? t("mdt.presenterMode")
    : mode === "detached" ? t("mdt.detached") : presenter ? t("mdt.following") : "";
  show($("mdt-resync"), mode === "detached" && Boolean(sync && sync.state));
  const mine = presenter === state.me;
  const coord = isCoordinator();
  show($("mdt-take"), !mine && (!presenter || coord));
  show($("mdt-request"), Boolean(presenter) && !mine && !coord);
  show($("mdt-release"), mine);
  const canHand = mine || (coord && Boolean(presenter));
  show($("mdt-handover-group"), canHand);
  if (canHand) renderHandoverOptions();
  renderRequests();
  renderPeople();
}

function connectedOthers() {
  return [...state.participants.values()].filter((p) => p.state !== "left");
}

function renderHandoverOptions() {
  const sel = $("mdt-handover-to");
  const cur = sel.value;
  sel.textContent = "";
  sel.append(new Option(t("mdt.handoverTo"), ""));
  const ids = [state.me, ...connectedOthers().map((p) => p.id)];
  for (const id of ids) {
    if (id === (state.sync && state.sync.presenter)) continue;
    sel.append(new Option(nameOf(id), id));
  }
  sel.value = [...sel.options].some((o) => o.value === cur) ? cur : "";
}

function renderRequests() {
  const box = $("mdt-control-requests");
  box.textContent = "";
  const sync = state.sync;
  if (!sync || !(sync.isPresenter || isCoordinator())) return;
  for (const by of state.requests) {
    const grant = el("button", { type: "button", className: "primary", testid: "mdt-grant", textContent: t("mdt.grant") });
    grant.addEventListener("click", () => control({ type: "control.handover", to: by }));
    const dismiss = el("button", { type: "button", testid: "mdt-dismiss", textContent: t("mdt.dismiss") });
    dismiss.addEventListener("click", () => {
      state.requests.delete(by);
      renderRequests();
    });
    box.append(el("div", { className: "msg info mdt-request-card", testid: "mdt-control-request", dataset: { by } },
      el("span", { textContent: t("mdt.asks", { name: nameOf(by) }) }), grant, dismiss));
  }
}

function renderPeople() {
  const list = $("mdt-participants");
  list.textContent = "";
  const presenter = state.sync ? state.sync.presenter : null;
  const coordinator = state.mdt ? state.mdt.coordinator : "";
  const people = [{ id: state.me, state: state.signal && state.signal.status === "open" ? "connected" : "reconnecting" },
    ...connectedOthers()];
  for (const p of people) {
    const li = el("li", { testid: "mdt-participant", dataset: { participant: p.id, state: p.state || "connected", presenting: String(p.id === presenter) } },
      el("span", { className: "name", textContent: p.id === state.me ? `${nameOf(p.id)} (${t("call.you")})` : nameOf(p.id) }));
    if (p.id === presenter) li.append(el("span", { className: "mdt-badge presenting", testid: "mdt-presenter-badge", textContent: t("mdt.presenterBadge") }));
    if (p.id === coordinator) li.append(el("span", { className: "mdt-badge", textContent: t("mdt.coordinatorBadge") }));
    list.append(li);
  }
}

function renderAgenda() {
  const list = $("mdt-agenda");
  list.textContent = "";
  const cases = (state.mdt && state.mdt.cases) || [];
  const mayDrive = isCoordinator() || (state.sync && state.sync.isPresenter);
  cases.forEach((c, i) => {
    const current = c.case_id === state.currentCase;
    const li = el("li", { className: "mdt-case", testid: "mdt-case", dataset: { caseId: c.case_id, current: String(current) } });
    const label = c.hidden ? t("mdt.case.hidden")
      : [pn(c.patient_name), c.patient_id].filter(Boolean).join(" · ") || c.case_id;
    li.append(el("span", { className: "num", textContent: `${i + 1}.` }),
      el("span", { className: "who", testid: "mdt-case-label", textContent: label }));
    if (current) li.append(el("span", { className: "mdt-badge now", testid: "mdt-case-current-badge", textContent: t("mdt.case.current") }));
    if (c.conclusion) li.append(el("span", { className: "mdt-badge", textContent: t("mdt.case.concluded") }));
    if (!c.hidden && c.question) li.append(el("div", { className: "question", textContent: c.question }));
    const actions = el("div", { className: "actions" });
    if (!c.hidden && (c.study_uids || []).length) {
      actions.append(el("button", { type: "button", testid: "mdt-case-open", textContent: t("mdt.case.open"), onclick: () => openCase(c) }));
    }
    if (mayDrive && !current) {
      actions.append(el("button", { type: "button", testid: "mdt-case-set-current", textContent: t("mdt.case.setCurrent"), onclick: () => setCurrentCase(c) }));
    }
    if (!c.hidden && state.may && state.may.record_conclusions) {
      // the coordinator or the lead expert (js/components/mdt-conclusion.js)
      actions.append(el("button", { type: "button", testid: "mdt-case-conclude", textContent: t("mdtcon.open"),
        onclick: async () => {
          const answer = await recordConclusion(state.mdtId, c, label);
          if (answer) {
            state.mdt = answer.mdt;
            state.may = answer.may;
            renderAgenda();
          }
        } }));
    }
    if (actions.childElementCount) li.append(actions);
    list.append(li);
  });
}

function renderChat() {
  const log = $("mdt-chat-log");
  const chats = [...state.events.values()].filter((e) => e.type === "chat")
    .sort((a, b) => (newerId(a.id, b.id) ? 1 : -1));
  log.textContent = "";
  if (!chats.length) {
    log.append(el("li", { className: "empty", testid: "mdt-chat-empty", textContent: t("mdt.chat.empty") }));
    return;
  }
  for (const e of chats) {
    const who = e.by || e.from || e.user || e.participant || "";
    const at = Number(e.at || e.ts);
    const time = Number.isFinite(at) && at > 0
      ? new Date(at > 1e12 ? at : at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
    log.append(el("li", { testid: "mdt-chat-message", dataset: { eventId: e.id, by: who } },
      el("span", { className: "time", textContent: time }),
      el("span", { className: "who", textContent: e.display_name || nameOf(who) }),
      el("span", { className: "text", testid: "mdt-chat-text", textContent: e.text || "" })));
  }
  log.scrollTop = log.scrollHeight;
}

function renderAll() {
  renderHead();
  renderPresenter();
  renderAgenda();
  renderChat();
}

// ---- actions ------------------------------------------------------------------------------------

async function control(msg) {
  if (msg.type === "control.request") {
    // no answer on success (the presenter and the coordinator are told); a refusal is an error
    state.signal.send({ ...msg, room_id: state.roomId });
    notice("mdt.requested");
    return;
  }
  try {
    await state.signal.request({ ...msg, room_id: state.roomId });
    if (msg.type === "control.handover") {
      state.requests.delete(msg.to);
      renderRequests();
    }
  } catch (err) {
    notice("mdt.controlFailed", "error", { message: err });
  }
}

/** A case's first imaging study (a case may list its ECG first), or null: an ECG-only case. */
function imagingStudy(c) {
  return (c.study_uids || []).find((uid) => !state.ecgStudies.has(uid)) || null;
}

/** The case's studies opened: its first imaging study in the image viewer, its first ECG in
 * the ECG pane — shown at once when the case has no images (a cardiology MDT). False: the case
 * has nothing to open. Waits for the agenda's ECGs to be known (which studies are ECGs). */
async function openStudies(c) {
  await state.choicesLoaded;
  const uid = imagingStudy(c);
  const ecg = state.ecgChoices.find((e) => (c.study_uids || []).includes(e.study));
  if (uid) ensureViewer(uid);
  if (ecg) ensureEcg(ecg.study, ecg.sop);
  if (!uid && ecg) state.sync.show("ecg");
  return Boolean(uid || ecg);
}

async function openCase(c) {
  if (!(c.study_uids || []).length) {
    notice("mdt.case.noStudy");
    return;
  }
  if (!state.sync.isPresenter && state.sync.presenter) state.sync.detach();
  if (!(await openStudies(c))) notice("mdt.case.noStudy");
}

function setCurrentCase(c) {
  // no answer: the case.current event reaches everyone (this page too)
  state.signal.send({ type: "agenda.current", room_id: state.roomId, case_id: c.case_id });
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("mdt-chat-input");
  const text = input.value.trim();
  if (!text) return;
  $("mdt-chat-send").disabled = true;
  try {
    await state.signal.request({ type: "chat.send", room_id: state.roomId, text: text.slice(0, 2000) });
    input.value = "";
  } catch (err) {
    notice("mdt.chat.failed", "error", { message: err });
  } finally {
    $("mdt-chat-send").disabled = false;
  }
}

// ---- the room's messages ------------------------------------------------------------------------

function onEvent(e) {
  if (!e || !e.id || state.events.has(e.id)) return false; // a resume page and a live event: once
  state.events.set(e.id, e);
  if (newerId(e.id, state.lastEventId)) state.lastEventId = e.id;
  if (state.annotations) state.annotations.onRoomEvent(e);
  switch (e.type) {
    case "case.current":
      setCurrent(e.case_id);
      break;
    case "control.changed":
      // the log replays old ones on a resume: only one at least as new as the view counts
      if (Number(e.version) >= state.sync.version) onControlChanged(e);
      break;
    case "conclusion.recorded": {
      // the minutes say a case is concluded; a case hidden from this viewer stays hidden
      const c = ((state.mdt && state.mdt.cases) || []).find((x) => x.case_id === e.case_id);
      if (c && !c.hidden && !c.conclusion) {
        c.conclusion = { diagnosis: e.diagnosis, plan: e.plan, by: e.by,
          responsible_department: e.responsible_department, follow_up_date: e.follow_up_date };
        renderAgenda();
      }
      break;
    }
    case "mdt.concluded":
      if (e.mdt) state.mdt = e.mdt;
      break;
    default:
  }
  return e.type === "chat";
}

function setCurrent(caseId) {
  if (!caseId || caseId === state.currentCase) return;
  state.currentCase = caseId;
  renderAgenda();
  // the presenter (or, with nobody presenting, everyone) opens the case now discussed
  const c = caseById(caseId);
  if (c && (state.sync.isPresenter || !state.sync.presenter)) openStudies(c);
}

function onControlChanged(msg) {
  state.sync.onControlChanged(msg);
  state.requests.delete(msg.presenter);
  if (state.annotations) state.annotations.renderKeyButton();
  renderPresenter();
  renderAgenda();
}

function onRoomState(msg) {
  if (msg.mdt) state.mdt = msg.mdt;
  // the ECG picker: again only when the agenda's studies changed (a rejoin has the same)
  const studies = JSON.stringify(((state.mdt && state.mdt.cases) || []).map((c) => c.study_uids));
  if (studies !== state.ecgFor) {
    state.ecgFor = studies;
    state.choicesLoaded = loadEcgChoices();
  }
  if (msg.names) state.names = msg.names;
  if (msg.view) state.sync.onRoomView(msg.view);
  const cur = msg.current_case && typeof msg.current_case === "object" ? msg.current_case.case_id : msg.current_case;
  if (cur) setCurrent(cur);
  if (!state.viewer) {
    // the shared images, or (nothing shared yet) the current case's (or the first case's)
    // studies: its first imaging study, or its ECG when it has no images
    const v = state.sync.state;
    const c = caseById(state.currentCase) || ((state.mdt && state.mdt.cases) || []).find((x) => !x.hidden && (x.study_uids || []).length);
    if (v && v.study_uid) ensureViewer(v.study_uid);
    else if (!v && c) openStudies(c);
  }
  renderAll();
}

function onMessage(msg) {
  if (msg.room_id && msg.room_id !== state.roomId) return;
  switch (msg.type) {
    case "view.state":
      state.sync.onViewState(msg);
      break;
    case "control.changed": // the answer to our control.* (everyone else: a room.event)
      onControlChanged(msg);
      break;
    case "control.requested":
      if (msg.by && msg.by !== state.me) state.requests.add(msg.by);
      renderRequests();
      break;
    case "pointer":
      onPointer(msg);
      break;
    case "error": // the room refused our join: the ended view says why
      if (state.call && msg.ref && msg.ref === state.call.joinRef) {
        state.joinError = new ApiError(0, msg.code, msg.message, msg.details);
      }
      break;
    case "room.event": {
      if (onEvent(msg.event)) renderChat();
      break;
    }
    case "room.events": {
      let chat = false;
      for (const e of msg.events || []) chat = onEvent(e) || chat;
      if (chat) renderChat();
      break;
    }
    default:
  }
}

// ---- joining and leaving ------------------------------------------------------------------------

async function ensureStream() {
  if (state.stream) return state.stream;
  try {
    state.stream = await getLocalMedia(opts);
  } catch (err) {
    notice("media.failed", "error", { message: err.message });
    state.stream = new MediaStream(); // still see and hear the others
  }
  return state.stream;
}

async function join() {
  state.ended = null;
  showView("mdt-view");
  await ensureStream();
  const call = new RoomCall(state.signal, {
    localStream: state.stream,
    relay: opts.relay,
    remember: false, // the room is in the address; the consult pages' saved room stays theirs
    // a rejoin resumes the log after the newest event we hold ("0-0": all of it)
    joinFields: () => ({ last_event_id: state.lastEventId || "0-0" }),
  });
  state.call = call;
  window.huizhenCall = call;
  const callRoot = $("mdt-call");
  callRoot.innerHTML = callMarkup();
  applyI18n(callRoot);
  state.view = new CallView(callRoot, {
    signal: state.signal,
    call,
    localStream: state.stream,
    onHangUp: () => call.leave(),
    decorateParticipant: (node, id) => {
      node.dataset.presenting = String(Boolean(state.sync && state.sync.presenter === id));
    },
  });
  call.addEventListener("state", (ev) => onRoomState(ev.detail));
  call.addEventListener("participants", (ev) => {
    state.participants = new Map(ev.detail);
    renderPresenter();
  });
  call.addEventListener("left", (ev) => {
    const { participant, event, reason } = ev.detail;
    notice(leftKey(event, reason), "info", { name: participant.display_name || participant.id });
  });
  call.addEventListener("ended", (ev) => onEnded(ev.detail));
  call.join(state.roomId);
}

function onEnded(reason) {
  if (state.view) state.view.destroy();
  state.view = null;
  state.call = null;
  closeViewer();
  closeEcg();
  state.ended = reason;
  const refused = reason === "closed" ? state.joinError : null;
  state.joinError = null;
  const key = refused ? "mdt.ended.refused" : reason === "closed" ? "mdt.ended.closed"
    : reason === "replaced" ? "mdt.ended.replaced" : "mdt.ended.left";
  const box = $("mdt-ended-reason");
  box.dataset.i18n = key;
  box.i18nParams = refused ? { message: refused } : {};
  box.dataset.reason = reason || "";
  box.dataset.code = refused ? refused.code : "";
  box.textContent = t(key, box.i18nParams);
  show($("mdt-rejoin"), reason !== "closed");
  showView("mdt-ended");
}

async function start(shell) {
  const session = shell.session;
  state.me = (session.user && session.user.username) || "";
  state.role = (session.user && session.user.role) || "";
  state.mdtId = new URLSearchParams(window.location.search).get("id") || "";
  if (!state.mdtId) {
    showView("mdt-view");
    notice("mdt.noId", "error");
    return;
  }
  state.roomId = `mdt-${state.mdtId}`;
  state.signal = shell.connect();
  state.sync = new ViewSync(state.signal, state.roomId, state.me);
  state.sync.addEventListener("mode", () => renderPresenter());
  state.sync.addEventListener("study", (ev) => ensureViewer(ev.detail));
  state.sync.addEventListener("ecg", (ev) => ensureEcg(ev.detail.study_uid, ev.detail.sop_instance_uid));
  state.sync.addEventListener("showing", (ev) => showPane(ev.detail));
  state.signal.addEventListener("message", (ev) => onMessage(ev.detail));
  state.signal.addEventListener("status", () => renderPeople());
  try {
    const body = await apiJson(`/api/mdt/${encodeURIComponent(state.mdtId)}`);
    state.mdt = body.mdt || null;
    state.names = body.names || {};
    state.may = body.may || {};
  } catch (err) {
    showView("mdt-view");
    notice("mdt.loadFailed", "error", { message: err });
    if (err.status === 403 || err.status === 404) return;
  }
  renderAll();
  await join();
}

function init() {
  const shell = mountShell({
    title: "mdt.title",
    loginPage: `mdt.html${window.location.search}`,
    net: true,
    onSignInShown: () => showView("login-view"),
    onSession: () => start(shell),
    ...callSignOut(() => state), // a call asks first
    onLangChange: () => {
      if (state.sync) renderAll();
      if (state.viewer) renderFpsOptions(state.viewer.root, state.viewer);
    },
  });
  state.shell = shell;
  $("mdt-resync").addEventListener("click", () => state.sync.resync());
  $("mdt-tab-images").addEventListener("click", () => state.sync.show("images"));
  $("mdt-tab-ecg").addEventListener("click", () => state.sync.show("ecg"));
  $("mdt-ecg-open").addEventListener("click", openEcg);
  $("mdt-take").addEventListener("click", () => control({ type: "control.take" }));
  $("mdt-request").addEventListener("click", () => control({ type: "control.request" }));
  $("mdt-release").addEventListener("click", () => control({ type: "control.release" }));
  $("mdt-handover").addEventListener("click", () => {
    const to = $("mdt-handover-to").value;
    if (to) control({ type: "control.handover", to });
  });
  $("mdt-chat-form").addEventListener("submit", sendChat);
  $("mdt-rejoin").addEventListener("click", () => join());
  shell.start();
}

init();

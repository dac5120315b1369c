// The reading worklist (worklist.html, docs/ui.md "Reading worklist"): an expert's department's
// reading requests by priority then age, live over the page WebSocket (`worklist.item`), with
// counts, filters and turn-around times; claim, release, reassign (the head), the report of a
// claimed request (the report editor) and its images. A clinic doctor sends studies for
// reading here and follows their state; a coordinator looks at any department.

import { apiJson, first, personName, TAG } from "../lib/api.js";
import { getLang, t } from "../lib/i18n.js";
import { el, show, testIds } from "../lib/dom.js";
import { mountShell } from "../components/shell.js";
import { openReport, ReportEditor } from "../components/report-editor.js";
import "../i18n/worklist.js";

const $ = testIds();
const state = { session: null, data: null, reloadTimer: 0, editor: null };

const shell = mountShell({
  title: "worklist.title",
  net: true,
  userDetail: (u) => (u.department ? ` · ${u.department}` : u.clinic ? ` · ${u.clinic}` : ""),
  onSignInShown: () => show($("worklist-view"), false),
  onSession: (session) => start(session),
  onLangChange: () => render(),
});
shell.start();

function role() {
  return state.session && state.session.user ? state.session.user.role : "";
}

function me() {
  return state.session && state.session.user ? state.session.user.username : "";
}

async function start(session) {
  state.session = session;
  show($("worklist-view"), true);
  const signal = shell.connect();
  signal.addEventListener("message", (ev) => {
    if (ev.detail.type === "worklist.item") scheduleReload();
  });
  signal.addEventListener("ready", () => scheduleReload()); // caught up after a reconnect
  for (const id of ["worklist-filter-state", "worklist-filter-priority", "worklist-filter-mine",
    "worklist-filter-department"]) {
    $(id).addEventListener("change", () => load());
  }
  if (role() === "doctor") await setUpSendForm();
  if (role() === "coordinator") await setUpDepartmentFilter();
  if (role() !== "expert") show($("worklist-filter-mine").closest("label"), false);
  await load();
}

function scheduleReload() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => load(), 150);
}

function query() {
  const q = new URLSearchParams();
  q.set("state", $("worklist-filter-state").value);
  if ($("worklist-filter-priority").value) q.set("priority", $("worklist-filter-priority").value);
  if ($("worklist-filter-mine").checked) q.set("mine", "1");
  const dept = $("worklist-filter-department").value;
  if (role() === "coordinator" && dept) q.set("department", dept);
  return q.toString();
}

async function load() {
  try {
    state.data = await apiJson(`/api/worklist?${query()}`);
    showError(null);
  } catch (err) {
    showError(err);
    return;
  }
  render();
}

function showError(err) {
  const box = $("worklist-error");
  if (!err) {
    box.hidden = true;
    return;
  }
  box.textContent = t("worklist.failed", { message: err.message });
  box.dataset.code = err.code || "";
  box.hidden = false;
}

function age(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t("worklist.age.s", { n: s });
  if (s < 3600) return t("worklist.age.m", { n: Math.round(s / 60) });
  return t("worklist.age.h", { h: Math.floor(s / 3600), m: Math.round((s % 3600) / 60) });
}

function render() {
  const data = state.data;
  if (!data) return;
  renderCounts(data);
  const rows = $("worklist-rows");
  rows.replaceChildren(...data.items.map((item) => row(item, data.head)));
  show($("worklist-empty"), data.items.length === 0);
}

function renderCounts(data) {
  const c = data.counts;
  const tat = data.turnaround;
  const chip = (testid, text) => el("span", { className: "count", testid }, text);
  const chips = [
    chip("worklist-count-scheduled", t("worklist.count.scheduled", { n: c.scheduled })),
    chip("worklist-count-in_progress", t("worklist.count.in_progress", { n: c.in_progress })),
    chip("worklist-count-emergency", t("worklist.count.emergency", { n: c.by_priority.emergency })),
    chip("worklist-count-urgent", t("worklist.count.urgent", { n: c.by_priority.urgent })),
    chip("worklist-count-completed", t("worklist.count.completed", { n: c.completed_24h })),
  ];
  if (role() === "expert") chips.push(chip("worklist-count-mine", t("worklist.count.mine", { n: c.mine })));
  chips.push(chip("worklist-tat", tat.median_s == null ? t("worklist.tat.none")
    : t("worklist.tat", { median: age(tat.median_s), p90: age(tat.p90_s) })));
  if (tat.oldest_waiting_s) {
    chips.push(chip("worklist-oldest", t("worklist.oldest", { age: age(tat.oldest_waiting_s) })));
  }
  $("worklist-counts").replaceChildren(...chips);
}

function row(item, head) {
  const tr = el("tr", {
    testid: "worklist-row",
    dataset: { itemId: item.id, state: item.state, priority: item.priority },
  });
  const holder = item.claimed_by ? t("worklist.heldBy", { name: item.claimed_by }) : "";
  const waiting = item.state === "scheduled" || item.state === "in_progress"
    ? age(Date.now() / 1000 - item.created_at) : (item.turnaround_s != null
      ? t("worklist.took", { age: age(item.turnaround_s) }) : "—");
  tr.append(
    el("td", {}, el("span", { className: `prio prio-${item.priority}`, testid: "worklist-priority" },
      t(`worklist.priority.${item.priority}`))),
    el("td", { testid: "worklist-age" }, waiting),
    el("td", {}, `${item.patient_name || "—"} · ${item.patient_id || ""}`,
      el("br"), el("small", {}, [item.modalities, item.study_description].filter(Boolean).join(" · "))),
    el("td", {}, item.clinic_name),
    el("td", { className: "question" }, item.question),
    el("td", { testid: "worklist-state" }, t(`worklist.state.${item.state}`), holder ? el("br") : "",
      holder ? el("small", { testid: "worklist-holder" }, holder) : ""),
    el("td", { className: "actions" }, ...actions(item, head)),
  );
  return tr;
}

function actions(item, head) {
  const out = [];
  const mine = item.claimed_by === me() && item.state === "in_progress";
  if (role() === "expert" && item.state === "scheduled") {
    out.push(button("worklist-claim", "worklist.claim", () => act(item, "claim")));
  }
  if (mine) {
    out.push(button("worklist-open-report", "worklist.openReport", () => openEditor(item)));
    out.push(button("worklist-release", "worklist.release",
      () => act(item, "release", { claim_token: item.claim_token })));
  }
  if (item.study_uid) {
    out.push(el("a", {
      className: "button", testid: "worklist-view-images",
      href: `viewer.html?study=${encodeURIComponent(item.study_uid)}`,
    }, t("worklist.images")));
  }
  if (role() === "expert" && head === me() && (item.state === "scheduled" || item.state === "in_progress")) {
    const to = el("input", { type: "text", className: "reassign", testid: "worklist-reassign-to",
      maxLength: 64 });
    to.placeholder = t("worklist.reassignTo");
    to.setAttribute("aria-label", t("worklist.reassignTo"));
    out.push(to, button("worklist-reassign", "worklist.reassign",
      () => act(item, "reassign", { to: to.value.trim() })));
  }
  if (role() === "doctor" && (item.state === "scheduled" || item.state === "in_progress")) {
    out.push(button("worklist-cancel", "worklist.cancel",
      () => act(item, "cancel", { reason: t("worklist.cancelReason") })));
  }
  return out;
}

function button(testid, key, onclick) {
  return el("button", { type: "button", testid, onclick }, t(key));
}

async function act(item, verb, body = null) {
  try {
    const init = { method: "POST" };
    if (body) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    await apiJson(`/api/worklist/${item.id}/${verb}`, init);
    showError(null);
  } catch (err) {
    showError(err);
  }
  await load();
}

async function openEditor(item) {
  const box = $("worklist-report");
  try {
    const report = await openReport("reading", item.id);
    box.replaceChildren();
    state.editor = new ReportEditor(box, report, {
      onSigned: () => load(),
      onClose: () => { box.hidden = true; },
    });
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  } catch (err) {
    showError(err);
  }
}

// a clinic doctor: send a study ---------------------------------------------------------------
async function setUpSendForm() {
  const form = $("worklist-send-form");
  form.hidden = false;
  try {
    const [studies, depts] = await Promise.all([
      apiJson("/dicomweb/studies?limit=100&includefield=all"),
      apiJson("/api/departments"),
    ]);
    $("worklist-send-study").replaceChildren(...studies.map((s) => el("option", {
      value: first(s, TAG.StudyInstanceUID),
    }, [personName(s, TAG.PatientName, getLang()), first(s, TAG.PatientID, ""),
      first(s, TAG.StudyDescription, ""), first(s, TAG.StudyDate, "")].filter(Boolean).join(" · "))));
    $("worklist-send-department").replaceChildren(...depts.departments.map((d) => el("option", {
      value: d.id,
    }, d.name)));
  } catch (err) {
    showError(err);
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const question = $("worklist-send-question").value.trim();
    if (!question || !$("worklist-send-study").value) {
      showError({ message: t("worklist.send.missing"), code: "invalid_parameter" });
      return;
    }
    try {
      await apiJson("/api/worklist", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          study_uid: $("worklist-send-study").value, question,
          priority: $("worklist-send-priority").value,
          department: $("worklist-send-department").value,
        }),
      });
      $("worklist-send-question").value = "";
      showError(null);
    } catch (err) {
      showError(err);
    }
    await load();
  });
}

async function setUpDepartmentFilter() {
  show($("worklist-filter-department-field"), true);
  const select = $("worklist-filter-department");
  try {
    const depts = await apiJson("/api/departments");
    select.replaceChildren(el("option", { value: "" }, t("worklist.any")),
      ...depts.departments.map((d) => el("option", { value: d.id }, d.name)));
  } catch (err) {
    showError(err);
  }
}

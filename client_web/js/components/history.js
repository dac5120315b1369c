// The consult history panel of the kiosk and the expert workstation (#8): doctors see their
// clinic's consults, experts the ones they joined (`GET /api/consults`, decided by the server) —
// time, patient, department, participants, duration, outcome. A consult of ours still open
// offers "Rejoin" (the kiosk).

import { apiJson } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import "../i18n/history.js";
import "../i18n/reports.js";

const $in = (root, testid) => root.querySelector(`[data-testid="${testid}"]`);

/** "2026-12-01 21:42" in local time from Unix seconds. */
export function formatTime(unixS) {
  const n = Number(unixS);
  if (!Number.isFinite(n) || n <= 0) return "—";
  const d = new Date(n * 1000);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "12:05" / "1:02:03" from seconds; "—" when unknown. */
export function formatDuration(seconds) {
  const s = Math.round(Number(seconds));
  if (!Number.isFinite(s) || s < 0) return "—";
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function consultsOf(reply) {
  if (Array.isArray(reply)) return reply;
  if (reply && Array.isArray(reply.consults)) return reply.consults;
  if (reply && Array.isArray(reply.items)) return reply.items;
  return [];
}

function participantNames(c) {
  if (Array.isArray(c.participants) && c.participants.length) {
    return c.participants.map((p) => (typeof p === "string" ? p : p.display_name || p.id || p.username)).filter(Boolean);
  }
  return [c.doctor_name || c.doctor, c.accepted_by_name || c.accepted_by].filter(Boolean);
}

function durationOf(c) {
  if (!c.accepted_at || Number(c.accepted_at) <= 0) return null; // never connected
  if (Number.isFinite(Number(c.duration_s)) && c.duration_s !== null && c.duration_s !== "" && (c.ended_at || c.outcome)) {
    return Number(c.duration_s);
  }
  const start = Number(c.accepted_at);
  const end = Number(c.ended_at);
  if (start > 0 && end >= start) return end - start;
  return null;
}

/** The consult's outcome word: the server's `outcome` once over, else its `state`. */
export function outcomeKey(c) {
  const v = c.outcome || (c.state === "accepted" ? "active" : c.state) || "";
  return v;
}

export class HistoryPanel {
  /**
   * `root`: the panel (testids history-panel, history-close, history-status, history-table,
   * history-rows); `onRejoin(consult)` when given offers Rejoin on consults still open.
   */
  constructor(root, { onRejoin = null } = {}) {
    this.root = root;
    this.onRejoin = onRejoin;
    this.consults = [];
    this.status = null; // [key, params]
    $in(root, "history-close").addEventListener("click", () => this.close());
    root.addEventListener("cancel", () => this.close());
  }

  async open() {
    if (typeof this.root.showModal === "function" && !this.root.open) this.root.showModal();
    else this.root.hidden = false;
    this.status = ["history.loading", {}];
    this.render();
    try {
      this.consults = consultsOf(await apiJson("/api/consults?limit=50"));
      this.status = this.consults.length ? null : ["history.empty", {}];
    } catch (err) {
      this.consults = [];
      this.status = err.status === 404 ? ["history.unavailable", {}] : ["history.error", { message: err.message }];
    }
    this.render();
  }

  close() {
    if (this.root.open) this.root.close();
  }

  render() {
    const status = $in(this.root, "history-status");
    status.hidden = !this.status;
    status.textContent = this.status ? t(this.status[0], this.status[1]) : "";
    $in(this.root, "history-table").hidden = !this.consults.length;
    const rows = $in(this.root, "history-rows");
    rows.textContent = "";
    const sorted = [...this.consults].sort((a, b) => Number(b.created_at || 0) - Number(a.created_at || 0));
    for (const c of sorted) {
      const tr = document.createElement("tr");
      tr.dataset.testid = "history-row";
      tr.dataset.consultId = c.id || "";
      tr.dataset.outcome = outcomeKey(c);
      const cells = [
        ["history-time", formatTime(c.created_at)],
        ["history-patient", [c.patient_name, c.patient_id].filter(Boolean).join(" · ") || "—"],
        ["history-department", c.department ? t(`dept.${c.department}`) : "—"],
        ["history-participants", participantNames(c).join(", ") || "—"],
        ["history-duration", formatDuration(durationOf(c) ?? NaN)],
        ["history-outcome", outcomeKey(c) ? t(`outcome.${outcomeKey(c)}`) : "—"],
      ];
      for (const [testid, text] of cells) {
        const td = document.createElement("td");
        td.dataset.testid = testid;
        td.textContent = text;
        tr.append(td);
      }
      // The consult's opinion (会诊意见): signed (open it), or pending once the call happened.
      const op = document.createElement("td");
      op.dataset.testid = "history-opinion";
      if (c.opinion) {
        const a = document.createElement("a");
        a.href = `print.html?src=${encodeURIComponent(`/api/reports/${c.opinion.report_id}/document`)}`;
        a.target = "_blank";
        a.rel = "opener"; // the new tab gets this tab's session (sessionStorage)
        a.dataset.testid = "history-opinion-open";
        a.textContent = `${t(`status.${c.opinion.status}`)} · ${c.opinion.signer_name || ""}`;
        op.append(a);
        op.dataset.state = "signed";
      } else {
        op.textContent = c.opinion_pending ? t("history.opinion.pending") : "—";
        op.dataset.state = c.opinion_pending ? "pending" : "none";
      }
      tr.append(op);
      const act = document.createElement("td");
      const rejoinable = c.rejoinable ?? (c.state === "accepted" && !c.outcome);
      if (this.onRejoin && c.room_id && rejoinable) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "primary";
        b.dataset.testid = "history-rejoin";
        b.textContent = t("history.rejoin");
        b.addEventListener("click", () => {
          this.close();
          this.onRejoin(c);
        });
        act.append(b);
      }
      tr.append(act);
      rows.append(tr);
    }
  }
}

/** The panel's markup, the same on both pages (a <dialog>). */
export function historyMarkup() {
  return `
    <div class="history-head">
      <h2 data-i18n="history.heading">Consult history</h2>
      <button type="button" data-testid="history-close" data-i18n="history.close">Close</button>
    </div>
    <p class="history-status" data-testid="history-status" role="status"></p>
    <div class="history-wrap">
      <table class="history" data-testid="history-table" hidden>
        <thead><tr>
          <th data-i18n="history.col.time">Time</th>
          <th data-i18n="history.col.patient">Patient</th>
          <th data-i18n="history.col.department">Department</th>
          <th data-i18n="history.col.participants">Participants</th>
          <th data-i18n="history.col.duration">Duration</th>
          <th data-i18n="history.col.outcome">Outcome</th>
          <th data-i18n="history.col.opinion">Opinion</th>
          <th></th>
        </tr></thead>
        <tbody data-testid="history-rows"></tbody>
      </table>
    </div>`;
}

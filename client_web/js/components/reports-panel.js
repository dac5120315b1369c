// The reports panel of the kiosk, the doctor's page and the expert workstation (docs/ui.md
// "Reports"): a doctor sees the clinic's signed reports and consult opinions, an expert their
// own and the consults still waiting for their opinion (GET /api/reports, decided by the
// server). A report signed for the clinic arrives live (the `notification` of kind
// report.final / report.amended / opinion.final on the page WebSocket): a toast that opens it,
// and the list refreshes.

import { apiJson } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { el } from "../lib/dom.js";
import { ReportEditor, formatSignedAt, openReport, printUrl } from "./report-editor.js";
import "../i18n/reports.js";

export const REPORT_KINDS = ["report.final", "report.amended", "opinion.final"];

export function reportsMarkup() {
  return `
    <div class="history-head">
      <h2 data-i18n="reports.heading">Reports and opinions</h2>
      <button type="button" data-testid="reports-close" data-i18n="reports.close">Close</button>
    </div>
    <p class="history-status" data-testid="reports-status" role="status"></p>
    <div data-testid="reports-pending" hidden>
      <h3 data-i18n="reports.pending.heading">Opinions to write</h3>
      <ul class="reports-pending" data-testid="reports-pending-list"></ul>
    </div>
    <div class="history-wrap">
      <table class="history" data-testid="reports-table" hidden>
        <thead><tr>
          <th data-i18n="reports.col.time">Signed</th>
          <th data-i18n="reports.col.patient">Patient</th>
          <th data-i18n="reports.col.kind">Document</th>
          <th data-i18n="reports.col.signer">Signed by</th>
          <th data-i18n="reports.col.status">Status</th>
          <th></th>
        </tr></thead>
        <tbody data-testid="reports-rows"></tbody>
      </table>
    </div>
    <div data-testid="reports-editor"></div>`;
}

export class ReportsPanel {
  /** `root`: the <dialog>; `toastRoot`: where live toasts go (default document.body). */
  constructor(root, { toastRoot = document.body } = {}) {
    this.root = root;
    this.toastRoot = toastRoot;
    this.reports = [];
    this.pending = [];
    this.status = null;
    this.editor = null;
    root.innerHTML = reportsMarkup();
    this.$ = (id) => root.querySelector(`[data-testid="${id}"]`);
    this.$("reports-close").addEventListener("click", () => this.close());
  }

  /** Show on `button` how many opinions wait for this expert ("Reports (2)", data-pending). */
  async refreshCount(button) {
    this.countButton = button;
    try {
      const reply = await apiJson("/api/reports?limit=1");
      const n = (reply.opinions_pending || []).length;
      button.dataset.pending = String(n);
      button.textContent = n ? `${t("reports.open")} (${n})` : t("reports.open");
    } catch {
      // the button keeps its plain label
    }
  }

  /** Listen to the page WebSocket (`Signal`) for reports signed for us. */
  listen(signal) {
    signal.addEventListener("message", (ev) => {
      const msg = ev.detail;
      if (msg.type !== "notification" || !msg.notification) return;
      if (!REPORT_KINDS.includes(msg.notification.kind)) return;
      this.toast(msg.notification.data || {});
      if (this.root.open) this.load();
    });
  }

  toast(data) {
    const kind = t(`kind.${data.kind || "reading"}`);
    const box = el("div", { className: "report-toast", testid: "report-toast", role: "alert",
      dataset: { reportId: data.report_id || "", critical: data.critical ? "1" : "0" } },
      el("span", {}, t("reports.new", { kind, signer: data.signer_name || "", patient: data.patient_name || "" })),
      el("a", { className: "button primary", href: printUrl(data.report_id), target: "_blank",
        rel: "opener", testid: "report-toast-open" }, t("reports.view")),
      el("button", { type: "button", testid: "report-toast-close", onclick: () => box.remove() }, "×"));
    this.toastRoot.append(box);
  }

  async open() {
    if (typeof this.root.showModal === "function" && !this.root.open) this.root.showModal();
    await this.load();
  }

  close() {
    if (this.editor) this.editor.save();
    this.editor = null;
    this.$("reports-editor").textContent = "";
    if (this.root.open) this.root.close();
  }

  async load() {
    this.status = ["reports.loading", {}];
    this.render();
    try {
      const reply = await apiJson("/api/reports?limit=50");
      this.reports = reply.reports || [];
      this.pending = reply.opinions_pending || [];
      if (this.countButton) this.countButton.dataset.pending = String(this.pending.length);
      this.status = this.reports.length || this.pending.length ? null : ["reports.empty", {}];
    } catch (err) {
      this.reports = [];
      this.status = ["reports.error", { message: err.message }];
    }
    this.render();
  }

  /** Open the opinion editor of a consult (the expert, after a call or from the list). */
  async writeOpinion(consultId) {
    if (typeof this.root.showModal === "function" && !this.root.open) this.root.showModal();
    const report = await openReport("opinion", consultId);
    this.editor = new ReportEditor(this.$("reports-editor"), report, {
      onSigned: () => this.load(),
      onClose: () => { this.editor = null; this.$("reports-editor").textContent = ""; },
    });
  }

  render() {
    if (this.countButton) {
      const n = Number(this.countButton.dataset.pending || 0);
      this.countButton.textContent = n ? `${t("reports.open")} (${n})` : t("reports.open");
    }
    const status = this.$("reports-status");
    status.hidden = !this.status;
    status.textContent = this.status ? t(this.status[0], this.status[1]) : "";
    this.$("reports-pending").hidden = !this.pending.length;
    const plist = this.$("reports-pending-list");
    plist.textContent = "";
    for (const p of this.pending) {
      plist.append(el("li", { testid: "reports-pending-item", dataset: { consultId: p.consult_id } },
        el("span", {}, [p.patient_name, p.clinic_name, p.question].filter(Boolean).join(" · ")), " ",
        el("button", { type: "button", className: "primary", testid: "reports-write-opinion",
          onclick: () => this.writeOpinion(p.consult_id) }, t("reports.pending.write"))));
    }
    this.$("reports-table").hidden = !this.reports.length;
    const rows = this.$("reports-rows");
    rows.textContent = "";
    for (const r of this.reports) {
      const tr = el("tr", { testid: "reports-row", dataset: { reportId: r.id, status: r.status, kind: r.kind } });
      const cells = [
        ["reports-time", formatSignedAt(r.signed_at)],
        ["reports-patient", [r.subject.patient_name, r.subject.patient_id].filter(Boolean).join(" · ") || "—"],
        ["reports-kind", t(`kind.${r.kind}`) + (r.critical ? ` · ${t("reports.critical")}` : "")],
        ["reports-signer", r.signer_name || "—"],
        ["reports-status", t(`status.${r.status}`) + (r.current_version > 1 ? ` (v${r.current_version})` : "")],
      ];
      for (const [testid, text] of cells) tr.append(el("td", { testid }, text));
      const act = el("td", {});
      if (r.current_version) {
        act.append(el("a", { className: "button", href: printUrl(r.id), target: "_blank", rel: "opener",
          testid: "reports-view" }, t("reports.view")));
      }
      tr.append(act);
      rows.append(tr);
    }
  }
}

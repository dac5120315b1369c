// The report / consult-opinion editor (docs/ui.md "Reports"): the draft's fields with autosave
// (PUT /api/reports/{id}/draft against the revision it was based on), Sign, the signed versions
// (each printable), Amend, and for a reading report "Raise critical value" (POST /api/alerts).
// One editor for both kinds: reading (findings, impression, recommendation, critical) and
// opinion (findings, advice, refer, follow-up).

import { apiJson, getSession } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { el } from "../lib/dom.js";
import "../i18n/reports.js";

const TEXT_FIELDS = {
  reading: ["findings", "impression", "recommendation"],
  opinion: ["findings", "advice", "follow_up"],
};
const FLAG_FIELDS = { reading: ["critical"], opinion: ["refer"] };
const AUTOSAVE_MS = 1200;

/** "2026-12-02 09:30" (local time) from the server's UTC `2026-12-02T01:30:00.000Z`. */
export function formatSignedAt(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "—";
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The print page of a report's signed version (js/pages/print.js). */
export function printUrl(reportId, version = null) {
  const src = `/api/reports/${reportId}/document${version ? `?version=${version}` : ""}`;
  return `print.html?src=${encodeURIComponent(src)}`;
}

/** Open (or create) the report of a reading request / the opinion of a consult. */
export function openReport(kind, ref) {
  const body = kind === "reading" ? { kind, reading_request_id: ref } : { kind, consult_id: ref };
  return apiJson("/api/reports", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The ECG template (server/clinical/report_model.py ECG_NUMBERS / ECG_TEXTS). */
export const ECG_NUMBERS = { rate: [0, 400], pr: [0, 1000], qrs: [0, 400], qt: [0, 1000],
  qtc: [0, 1000], axis: [-180, 360], p_axis: [-180, 360], t_axis: [-180, 360] };
export const ECG_TEXTS = { rhythm: 200, st_t: 2000, conclusion: 4000 };
const ECG_ORDER = ["rhythm", "rate", "pr", "qrs", "qt", "qtc", "axis", "p_axis", "t_axis", "st_t",
  "conclusion"];

/** An ECG number input's value as the API wants it: a whole number, or null when empty. */
export function ecgNumber(text) {
  const v = String(text).trim();
  if (!v) return null;
  const n = Number(v);
  return Number.isFinite(n) ? Math.round(n) : null;
}

const MAX_REBASES = 3;

/** JSON with object keys sorted: equal content compares equal whatever the key order. */
function stable(value) {
  if (Array.isArray(value)) return `[${value.map(stable).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${stable(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Three-way merge of a draft's content by field: `base` the draft an edit started from,
 * `mine` the edit, `theirs` the newer draft saved elsewhere. A field only one side changed
 * takes that side; a field both changed differently is a conflict (it keeps mine). */
export function mergeDraft(base, mine, theirs) {
  const merged = {};
  const conflicts = [];
  for (const k of new Set([...Object.keys(base), ...Object.keys(mine), ...Object.keys(theirs)])) {
    const [b, m, th] = [stable(base[k]), stable(mine[k]), stable(theirs[k])];
    if (m === b || m === th) merged[k] = theirs[k];
    else {
      merged[k] = mine[k];
      if (th !== b) conflicts.push(k);
    }
  }
  return { merged, conflicts };
}

export class ReportEditor {
  /** `root`: an element to fill; `report`: GET/POST /api/reports answer. */
  constructor(root, report, { onSigned = null, onClose = null } = {}) {
    this.root = root;
    this.report = report;
    this.onSigned = onSigned;
    this.onClose = onClose;
    this.saving = null;
    this.dirty = false;
    this.timer = null;
    this.status = null; // [key, params, kind]
    this.conflicted = false; // a stale save's conflict is shown (see showConflict)
    this.keyImages = [...((report.draft && report.draft.content.key_images) || [])];
    this.render();
  }

  get me() {
    const s = getSession();
    return s && s.user ? s.user.username : "";
  }

  get draft() {
    return this.report.draft;
  }

  content() {
    const out = { ...(this.draft ? this.draft.content : {}), key_images: this.keyImages };
    for (const f of TEXT_FIELDS[this.report.kind]) {
      const input = this.root.querySelector(`[data-testid="report-field-${f}"]`);
      if (input) out[f] = input.value;
    }
    for (const f of FLAG_FIELDS[this.report.kind]) {
      const input = this.root.querySelector(`[data-testid="report-field-${f}"]`);
      if (input) out[f] = input.checked;
    }
    if (out.ecg) {
      const ecg = {};
      for (const f of ECG_ORDER) {
        const input = this.root.querySelector(`[data-testid="report-ecg-${f}"]`);
        if (!input) { ecg[f] = out.ecg[f] ?? (f in ECG_NUMBERS ? null : ""); continue; }
        ecg[f] = f in ECG_NUMBERS ? ecgNumber(input.value) : input.value;
      }
      out.ecg = ecg;
    }
    return out;
  }

  /** The ECG template's inputs (an ECG study's report): numbers bounded as the server's. */
  ecgFields(ecg) {
    const set = el("fieldset", { className: "report-ecg", testid: "report-ecg" },
      el("legend", {}, t("editor.ecg")));
    for (const f of ECG_ORDER) {
      let input;
      if (f in ECG_NUMBERS) {
        const [min, max] = ECG_NUMBERS[f];
        input = el("input", { type: "number", step: "1", min: String(min), max: String(max) });
        input.value = ecg[f] === null || ecg[f] === undefined ? "" : String(ecg[f]);
      } else {
        input = f === "rhythm" ? el("input", { type: "text" })
          : el("textarea", { rows: f === "conclusion" ? 3 : 2 });
        input.maxLength = ECG_TEXTS[f];
        input.value = ecg[f] || "";
      }
      input.dataset.testid = `report-ecg-${f}`;
      input.addEventListener("input", () => this.changed());
      input.addEventListener("blur", () => this.saveOnBlur());
      set.append(el("label", { className: "report-label" }, el("span", {}, t(`editor.ecg.${f}`)), input));
    }
    return set;
  }

  setStatus(key, params = {}, kind = "info") {
    this.status = [key, params, kind];
    const line = this.root.querySelector("[data-testid=report-save-status]");
    if (line) {
      line.textContent = t(key, params);
      line.dataset.kind = kind;
      line.dataset.key = key;
    }
  }

  changed() {
    this.dirty = true;
    this.setStatus("editor.unsaved");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), AUTOSAVE_MS);
  }

  /** Save the draft if it changed; resolves once it is stored (or failed). A save refused
   * as stale (409 draft_stale: another tab or server saved first) is rebased on the newer
   * draft and sent again; the user's text is never dropped (see `rebase`). */
  async save() {
    clearTimeout(this.timer);
    if (this.saving) {
      await this.saving;
      if (!this.dirty) return true;
    }
    if (!this.dirty || !this.draft) return true;
    this.dirty = false;
    let body = { revision: this.draft.revision, content: this.content() };
    this.setStatus("editor.saving");
    this.saving = (async () => {
      try {
        for (let attempt = 0; ; attempt += 1) {
          try {
            const saved = await apiJson(`/api/reports/${this.report.id}/draft`, {
              method: "PUT",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify(body),
            });
            this.report.draft = saved;
            this.clearConflict();
            this.setStatus(attempt ? "editor.merged" : "editor.saved", { revision: saved.revision }, "ok");
            return true;
          } catch (err) {
            if (err.code !== "draft_stale" || attempt >= MAX_REBASES) {
              this.dirty = true;
              if (err.code === "draft_stale") this.showStale();
              else this.setStatus("editor.failed", { message: err.message }, "error");
              return false;
            }
            const next = await this.rebase();
            if (next === true || next === false) return next;
            body = next;
          }
        }
      } finally {
        this.saving = null;
      }
    })();
    return this.saving;
  }

  /** After a 409: fetch the newer draft and merge field by field against the draft this
   * edit started from (mergeDraft). Returns the body to send again, true when the newer draft
   * already holds everything (nothing to send), or false when the user must look: a field
   * both sides changed keeps the user's text, with the other version shown beside it. */
  async rebase() {
    const base = this.draft ? this.draft.content : {};
    const mine = this.content();
    let fresh;
    try {
      fresh = await apiJson(`/api/reports/${this.report.id}`);
    } catch (err) {
      this.dirty = true;
      this.showStale();
      return false;
    }
    if (!fresh.draft || !fresh.may_edit) {  // signed or withdrawn meanwhile: keep the text shown
      this.dirty = true;
      this.showStale();
      return false;
    }
    const theirs = fresh.draft.content;
    const { merged, conflicts } = mergeDraft(base, mine, theirs);
    this.report = fresh;
    this.keyImages = [...(merged.key_images || [])];
    this.fill(merged);
    this.renderKeyImages();
    if (conflicts.length) {
      this.dirty = true;
      this.showConflict(conflicts, theirs, fresh.draft.revision);
      return false;
    }
    if (stable(merged) === stable(theirs)) {
      this.setStatus("editor.updated", { revision: fresh.draft.revision }, "ok");
      return true;
    }
    return { revision: fresh.draft.revision, content: this.content() };
  }

  /** Put a draft's content into the inputs (only those that differ: the caret stays put). */
  fill(content) {
    const set = (testid, value, checkbox = false) => {
      const input = this.root.querySelector(`[data-testid="${testid}"]`);
      if (!input) return;
      if (checkbox) input.checked = Boolean(value);
      else if (input.value !== String(value ?? "")) input.value = String(value ?? "");
    };
    for (const f of TEXT_FIELDS[this.report.kind]) set(`report-field-${f}`, content[f] || "");
    for (const f of FLAG_FIELDS[this.report.kind]) set(`report-field-${f}`, content[f], true);
    for (const f of ECG_ORDER) if (content.ecg) set(`report-ecg-${f}`, content.ecg[f] ?? "");
  }

  /** Both sides changed these fields: the user's text stays in them; the other version is
   * listed below with "Use this version". The next save (typing, "Use this version", Sign)
   * stores what the fields show, on top of the newer revision. */
  showConflict(fields, theirs, revision) {
    this.setStatus("editor.conflict", { revision, fields: fields.map((f) => t(`editor.${f}`)).join(", ") }, "error");
    const box = this.root.querySelector("[data-testid=report-conflict]");
    if (!box) return;
    this.conflicted = true;
    box.textContent = "";
    for (const f of fields) {
      const value = theirs[f];
      const text = typeof value === "string" ? value : JSON.stringify(value ?? "");
      const row = el("div", { className: "report-conflict-row", testid: "report-conflict-field", dataset: { field: f } },
        el("span", {}, t("editor.conflict.theirs", { field: t(`editor.${f}`) })),
        el("pre", { testid: "report-conflict-theirs" }, text),
        el("button", { type: "button", testid: "report-conflict-use", onclick: () => {
          if (f === "key_images") this.keyImages = [...(value || [])];
          this.fill({ ...this.content(), [f]: value });
          this.renderKeyImages();
          row.remove();
          box.hidden = !box.children.length;
          this.changed();
        } }, t("editor.conflict.use")));
      box.append(row);
    }
    box.hidden = !fields.length;
  }

  /** Leaving a field saves it, except while a conflict is shown: the user has not chosen yet
   * (typing, "Use this version" or Sign save). */
  saveOnBlur() {
    if (!this.conflicted) this.save();
  }

  clearConflict() {
    this.conflicted = false;
    const box = this.root.querySelector("[data-testid=report-conflict]");
    if (box) {
      box.textContent = "";
      box.hidden = true;
    }
  }

  showStale() {
    this.setStatus("editor.stale", {}, "error");
    const reload = this.root.querySelector("[data-testid=report-reload]");
    if (reload) reload.hidden = false;
  }

  async reload() {
    this.report = await apiJson(`/api/reports/${this.report.id}`);
    this.keyImages = [...((this.report.draft && this.report.draft.content.key_images) || [])];
    this.dirty = false;
    this.render();
  }

  /** Add the image a viewer shows (its ViewState, CONTRACTS §2) to the key images (max 8). */
  addKeyImage(view) {
    if (!view || !view.sop_instance_uid || !this.draft || this.keyImages.length >= 8) return false;
    const w = view.window || {};
    const round = (x) => (Number.isFinite(Number(x)) ? Math.round(Number(x)) : null);
    const center = round(w.center);
    const width = round(w.width);
    this.keyImages.push({
      series_uid: view.series_uid, sop_uid: view.sop_instance_uid, frame: Math.max(1, view.frame || 1),
      center: center !== null && width ? center : null, width: center !== null && width ? Math.max(1, width) : null,
      caption: `${t("editor.keyImage")} ${this.keyImages.length + 1}`,
    });
    this.renderKeyImages();
    this.changed();
    return true;
  }

  renderKeyImages() {
    const list = this.root.querySelector("[data-testid=report-key-images]");
    if (!list) return;
    list.textContent = "";
    this.keyImages.forEach((k, i) => {
      list.append(el("li", { testid: "report-key-image", dataset: { sop: k.sop_uid } },
        el("span", {}, `${k.caption} · #${k.frame}${k.center !== null ? ` · W ${k.width} / L ${k.center}` : ""}`), " ",
        el("button", { type: "button", testid: "report-key-image-remove", onclick: () => {
          this.keyImages.splice(i, 1);
          this.renderKeyImages();
          this.changed();
        } }, "×")));
    });
    list.hidden = !this.keyImages.length;
  }

  async sign(button) {
    button.disabled = true;
    try {
      if (!(await this.save())) return;
      this.setStatus("editor.signing");
      const signed = await apiJson(`/api/reports/${this.report.id}/sign`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ revision: this.draft.revision }),
      });
      this.report = await apiJson(`/api/reports/${this.report.id}`);
      this.render();
      this.setStatus("editor.signed", {
        version: signed.version, status: t(`status.${signed.status}`),
        time: formatSignedAt(signed.signed_at),
      }, "ok");
      if (this.onSigned) this.onSigned(signed, this.report);
    } catch (err) {
      if (err.code === "draft_stale") this.showStale();
      else this.setStatus("editor.sign.failed", { message: err.message }, "error");
    } finally {
      button.disabled = false;
    }
  }

  async amend(status) {
    const reason = window.prompt(t("editor.amend.reason"));
    if (!reason) return;
    try {
      await apiJson(`/api/reports/${this.report.id}/amend`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason, status }),
      });
      await this.reload();
    } catch (err) {
      this.setStatus("editor.failed", { message: err.message }, "error");
    }
  }

  async raiseCritical() {
    const c = this.content();
    const finding = window.prompt(t("editor.critical.prompt"), (c.impression || "").slice(0, 300));
    if (!finding) return;
    try {
      await apiJson("/api/alerts", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ tier: "critical", finding, report_id: this.report.id }),
      });
      this.setStatus("editor.critical.raised", {}, "ok");
    } catch (err) {
      this.setStatus("editor.critical.failed", { message: err.message }, "error");
    }
  }

  render() {
    this.conflicted = false; // a fresh form shows no conflict
    const r = this.report;
    const kind = r.kind;
    this.root.textContent = "";
    const box = el("section", { className: "report-editor", testid: "report-editor" });
    box.dataset.kind = kind;
    box.dataset.status = r.status;
    box.dataset.reportId = r.id;
    const head = el("div", { className: "report-head" },
      el("h2", {}, t(`editor.heading.${kind}`)),
      el("span", { className: "report-patient", testid: "report-patient" },
        [r.subject.patient_name, r.subject.patient_id].filter(Boolean).join(" · ")));
    if (this.onClose) {
      head.append(el("button", { type: "button", testid: "report-close", onclick: () => this.onClose() },
        t("editor.close")));
    }
    box.append(head);

    const versions = el("ol", { className: "report-versions", testid: "report-versions" });
    for (const v of r.versions) {
      const li = el("li", { testid: "report-version", dataset: { version: String(v.version), status: v.status } },
        el("span", {}, t("editor.version", {
          version: v.version, status: t(`status.${v.status}`), signer: v.signer_name,
          time: formatSignedAt(v.signed_at),
        })),
        " ",
        el("a", { href: printUrl(r.id, v.version), target: "_blank", rel: "opener",
          testid: "report-print" }, t("editor.print")));
      if (v.supersedes) li.append(el("div", { className: "hint" }, t("editor.supersedes", { version: v.supersedes, reason: v.reason })));
      versions.append(li);
    }
    versions.hidden = !r.versions.length;
    box.append(versions);

    // Critical values raised on it (who was told, when, the read-back): part of the record.
    const comm = el("ul", { className: "report-communication", testid: "report-communication" });
    for (const a of r.communication || []) {
      const raised = formatSignedAt(new Date(Number(a.raised_at) * 1000).toISOString());
      const ack = a.acknowledged_at
        ? t("editor.comm.ack", { by: a.acknowledged_by || "", time: formatSignedAt(new Date(Number(a.acknowledged_at) * 1000).toISOString()), read_back: a.read_back || "" })
        : t("editor.comm.unack", { state: a.state || "" });
      comm.append(el("li", { testid: "report-communication-item", dataset: { state: a.state || "" } },
        `${t("editor.comm.raised", { finding: a.finding || "", by: a.raised_by || "", time: raised })} · ${ack}`));
    }
    comm.hidden = !(r.communication || []).length;
    box.append(comm);

    const draft = r.draft;
    if (draft && r.may_edit) {
      const form = el("div", { className: "report-form" });
      if (kind === "reading" && draft.content.ecg) form.append(this.ecgFields(draft.content.ecg));
      for (const f of TEXT_FIELDS[kind]) {
        const area = el("textarea", { rows: f === "findings" ? 6 : 3, maxLength: 20000 });
        area.dataset.testid = `report-field-${f}`;
        area.value = draft.content[f] || "";
        area.addEventListener("input", () => this.changed());
        area.addEventListener("blur", () => this.saveOnBlur());
        form.append(el("label", { className: "report-label" }, el("span", {}, t(`editor.${f}`)), area));
      }
      for (const f of FLAG_FIELDS[kind]) {
        const box2 = el("input", { type: "checkbox", checked: Boolean(draft.content[f]) });
        box2.dataset.testid = `report-field-${f}`;
        box2.addEventListener("change", () => this.changed());
        form.append(el("label", { className: "report-flag" }, box2, el("span", {}, t(`editor.${f}`))));
      }
      box.append(form);
      box.append(el("div", { className: "report-conflict", testid: "report-conflict", hidden: true }));
      box.append(el("ul", { className: "report-key-images", testid: "report-key-images", hidden: true }));
      const actions = el("div", { className: "report-actions" });
      const sign = el("button", { type: "button", className: "primary", testid: "report-sign" }, t("editor.sign"));
      sign.addEventListener("click", () => this.sign(sign));
      actions.append(sign);
      if (kind === "reading") {
        actions.append(el("button", { type: "button", className: "danger", testid: "report-critical-raise",
          onclick: () => this.raiseCritical() }, t("editor.critical.raise")));
      }
      const reload = el("button", { type: "button", testid: "report-reload", hidden: true,
        onclick: () => this.reload() }, t("editor.reload"));
      actions.append(reload);
      box.append(actions);
    } else if (!draft && r.versions.length) {
      const current = r.versions[r.versions.length - 1];
      if (current.signer === this.me && current.status !== "entered-in-error") {
        const actions = el("div", { className: "report-actions" });
        actions.append(el("button", { type: "button", testid: "report-amend",
          onclick: () => this.amend("amended") }, t("editor.amend")));
        actions.append(el("button", { type: "button", testid: "report-correct",
          onclick: () => this.amend("corrected") }, t("editor.correct")));
        box.append(actions);
      }
    } else if (draft && !r.may_edit) {
      box.append(el("p", { className: "hint", testid: "report-readonly" }, t("editor.readonly")));
    }
    box.append(el("p", { className: "report-status", testid: "report-save-status", role: "status" }));
    this.root.append(box);
    this.renderKeyImages();
    if (this.status) this.setStatus(...this.status);
  }
}

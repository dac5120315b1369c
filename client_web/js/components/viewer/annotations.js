// Annotations on the viewer: tools for arrow, text, length, angle, ellipse and polygon; every
// annotation of the shown image drawn over it (anyone's: they are shared with everyone who may
// see the study), the server's measurement beside it (mm, degrees, mm² and HU statistics, always
// computed by the server from the stored pixels), undo of one's own, and "mark key image".
//
// Points are image pixel coordinates [column, row] (0,0 = the top-left pixel's corner), mapped
// to the screen through the viewer's transform (viewer.imageToScreen), so they stay on the
// anatomy under zoom, pan, rotation and flips. In an MDT or consult room (`roomId`), new marks
// carry the room and `onRoomEvent(event)` applies the room's annotation/key-image events.
//
// API: docs/api.md "Annotations, measurements and key images".

import { applyI18n, onLangChange, offLangChange, t } from "../../lib/i18n.js";
import { apiJson } from "../../lib/api.js";
import "../../i18n/annotations.js";

const KINDS = ["arrow", "text", "length", "angle", "ellipse", "polygon"];
const MAX_POLYGON_POINTS = 256;
const CLOSE_PX = 10; // a polygon click this near its first point closes it
const COLORS = { own: "#ffd33d", other: "#5cc8ff", draft: "#7CFC00" };

function toolbarMarkup() {
  const buttons = KINDS.map((k) => `
    <button type="button" data-testid="ann-tool-${k}" data-tool="ann-${k}" aria-pressed="false"
            data-i18n="ann.tool.${k}" data-i18n-title="ann.tool.${k}.title">${k}</button>`).join("");
  return `
    <span class="sep" aria-hidden="true"></span>
    <div class="group" role="group" data-testid="ann-tools" data-i18n-aria-label="ann.tools">
      ${buttons}
      <button type="button" data-testid="ann-undo" data-i18n="ann.undo" data-i18n-title="ann.undo.title">Undo</button>
      <button type="button" data-testid="ann-key-image" data-i18n="ann.keyImage"
              data-i18n-title="ann.keyImage.title">Key image</button>
      <button type="button" data-testid="ann-export-sr" data-i18n="ann.exportSr"
              data-i18n-title="ann.exportSr.title">Save SR</button>
    </div>`;
}

function panelMarkup() {
  return `
    <div class="ann-panel" data-testid="ann-panel" hidden>
      <ul class="ann-list" data-testid="ann-list"></ul>
      <form class="ann-text" data-testid="ann-text-form" hidden>
        <input type="text" maxlength="500" data-testid="ann-text-input"
               data-i18n-placeholder="ann.text.placeholder" data-i18n-aria-label="ann.text.placeholder">
        <button type="submit" data-testid="ann-text-ok" data-i18n="ann.text.ok">OK</button>
      </form>
      <div class="ann-status" data-testid="ann-status" role="status"></div>
    </div>`;
}

function fmt(n, digits = 1) {
  return Number(n).toFixed(digits);
}

/** The measurement of an annotation as one short line in the page's language. */
export function measurementText(a) {
  const m = a.measurement;
  if (!m) return a.text || "";
  const uncal = m.calibrated ? "" : ` ${t(m.spacing_source === "none" ? "ann.pixels" : "ann.uncalibrated")}`;
  let out = "";
  if (m.length_mm != null) out = `${fmt(m.length_mm)} mm${uncal}`;
  else if (m.length_px != null) out = `${fmt(m.length_px)} px${uncal}`;
  else if (m.angle_deg != null) out = `${fmt(m.angle_deg)}°`;
  else if (m.area_mm2 != null || m.area_px2 != null) {
    const area = m.area_mm2 != null ? `${fmt(m.area_mm2)} mm²` : `${fmt(m.area_px2)} px²`;
    out = t("ann.area", { area }) + uncal;
    if (m.mean != null) {
      const unit = m.unit ? ` ${m.unit}` : "";
      out += " · " + t("ann.stats", {
        mean: fmt(m.mean), sd: fmt(m.sd), min: fmt(m.min, 0), max: fmt(m.max, 0), unit,
      });
    }
  }
  return a.text ? `${a.text} — ${out}` : out;
}

export class Annotations {
  /**
   * `viewer`: a started or starting Viewer. Options: `roomId` (marks are shared with that room),
   * `username` (whose marks may be undone), `canMarkKey()` (false hides "key image"; the MDT
   * room passes "am I the presenter or coordinator").
   */
  constructor(viewer, { roomId = null, username = "", canMarkKey = () => true, caseId = null } = {}) {
    this.viewer = viewer;
    this.roomId = roomId;
    this.username = username;
    this.canMarkKey = canMarkKey;
    this.caseId = caseId;
    this.items = new Map(); // id -> annotation
    this.draft = null; // {kind, points: [[c, r]...], hover: [c, r] | null}
    this.loadedStudy = null;
    this.removers = [];
  }

  $(testid) {
    return this.viewer.$(testid);
  }

  mount() {
    const v = this.viewer;
    v.$("toolbar").insertAdjacentHTML("beforeend", toolbarMarkup());
    v.viewport.insertAdjacentHTML("beforeend", panelMarkup());
    applyI18n(v.$("ann-tools"));
    applyI18n(v.$("ann-panel"));
    const panel = this.$("ann-panel");
    // the panel sits in the viewport: its clicks are not image drags
    panel.addEventListener("pointerdown", (e) => e.stopPropagation());
    panel.addEventListener("wheel", (e) => e.stopPropagation());
    this.$("ann-undo").addEventListener("click", () => this.undoLast());
    this.$("ann-key-image").addEventListener("click", () => this.markKeyImage());
    this.$("ann-export-sr").addEventListener("click", () => this.exportReport());
    this.$("ann-text-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.finishText();
    });
    this.$("ann-list").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-annotation]");
      if (b) this.remove(b.dataset.annotation);
    });
    for (const kind of KINDS) this.removers.push(v.registerTool(`ann-${kind}`, this.tool(kind)));
    this.removers.push(v.addLayer((ctx, view) => this.draw(ctx, view)));
    this.keyListener = (e) => this.onKey(e);
    v.root.addEventListener("keydown", this.keyListener);
    this.onView = () => {
      if (v.studyUid && v.studyUid !== this.loadedStudy) this.load();
      this.renderList();
    };
    v.addEventListener("viewchange", this.onView);
    this.langListener = () => this.renderList();
    onLangChange(this.langListener);
    this.renderKeyButton();
    if (v.studyUid) this.load();
    return this;
  }

  destroy() {
    for (const r of this.removers) r();
    this.removers = [];
    this.viewer.removeEventListener("viewchange", this.onView);
    this.viewer.root.removeEventListener("keydown", this.keyListener);
    offLangChange(this.langListener);
  }

  status(key, params = {}) {
    const box = this.$("ann-status");
    box.textContent = key ? t(key, params) : "";
    box.i18nParams = params;
    this.$("ann-panel").hidden = !key && !this.current().length && this.$("ann-text-form").hidden;
  }

  async load() {
    const study = this.viewer.studyUid;
    this.loadedStudy = study;
    try {
      const data = await apiJson(`/api/studies/${encodeURIComponent(study)}/annotations`);
      if (this.viewer.studyUid !== study) return;
      this.items.clear();
      for (const a of data.annotations) this.items.set(a.id, a);
      this.changed();
    } catch (err) {
      this.status("ann.failed", { message: err.message });
    }
  }

  /** The annotations of the image now shown. */
  current() {
    const s = this.viewer.slices[this.viewer.index];
    if (!s) return [];
    return [...this.items.values()].filter((a) => a.sop_instance_uid === s.sop && a.frame === s.frame);
  }

  changed() {
    this.renderList();
    this.viewer.canvas.schedule();
  }

  renderKeyButton() {
    const b = this.$("ann-key-image");
    if (b) b.hidden = !this.canMarkKey();
  }

  renderList() {
    this.renderKeyButton();
    const list = this.$("ann-list");
    if (!list) return;
    list.textContent = "";
    for (const a of this.current()) {
      const li = document.createElement("li");
      li.dataset.testid = "ann-item";
      li.dataset.kind = a.kind;
      li.dataset.id = a.id;
      const text = document.createElement("span");
      text.className = "ann-value";
      text.dataset.testid = "ann-value";
      text.textContent = measurementText(a) || t(`ann.tool.${a.kind}`);
      const who = document.createElement("span");
      who.className = "ann-author";
      who.textContent = a.author_name || a.author;
      li.append(text, who);
      if (a.author === this.username) {
        const undo = document.createElement("button");
        undo.type = "button";
        undo.className = "icon";
        undo.dataset.testid = "ann-remove";
        undo.dataset.annotation = a.id;
        undo.setAttribute("aria-label", t("ann.remove"));
        undo.title = t("ann.remove");
        undo.textContent = "×";
        li.append(undo);
      }
      list.append(li);
    }
    const panel = this.$("ann-panel");
    panel.hidden = !list.children.length && !this.$("ann-status").textContent && this.$("ann-text-form").hidden;
  }

  // --- tools --------------------------------------------------------------------------------

  /** The drag handler of one kind (viewer.registerTool): drag kinds and click kinds. */
  tool(kind) {
    return {
      down: (_e, p) => {
        if (!p.image) return;
        const pt = this.clampPoint(p.image);
        if (kind === "angle") {
          // drag the first arm, then click the end of the second
          if (this.draft && this.draft.kind === "angle" && this.draft.points.length === 3) {
            this.draft.points[2] = pt;
            return this.finish();
          }
          this.draft = { kind, points: [pt, pt], hover: null };
        } else if (kind === "polygon") {
          // click the corners; click the first again (or Enter) to close
          if (!this.draft || this.draft.kind !== "polygon") this.draft = { kind, points: [pt], hover: pt };
          else if (this.nearFirst(p.screen)) return this.finish();
          else this.draft.points.push(pt);
          if (this.draft.points.length >= MAX_POLYGON_POINTS) return this.finish();
        } else if (kind === "text") {
          this.draft = { kind, points: [pt], hover: null };
          this.askText();
        } else {
          this.draft = { kind, points: [pt, pt], hover: null };
        }
        this.viewer.canvas.schedule();
      },
      move: (_e, p) => {
        if (!this.draft || !p.image) return;
        const pt = this.clampPoint(p.image);
        const d = this.draft;
        if (d.kind === "angle") d.points[d.points.length - 1] = pt;
        else if (["arrow", "length", "ellipse"].includes(d.kind)) d.points[1] = pt;
        d.hover = pt;
        this.viewer.canvas.schedule();
      },
      up: (_e, p) => {
        const d = this.draft;
        if (!d) return;
        if (["arrow", "length", "ellipse"].includes(d.kind)) {
          if (p.image) d.points[1] = this.clampPoint(p.image);
          const [a, b] = d.points;
          if (Math.hypot(a[0] - b[0], a[1] - b[1]) < 0.5) {
            this.draft = null; // a click, not a drag
            this.viewer.canvas.schedule();
            return;
          }
          this.finish();
        } else if (d.kind === "angle" && d.points.length === 2) {
          const [a, b] = d.points;
          if (Math.hypot(a[0] - b[0], a[1] - b[1]) >= 0.5) d.points.push(b); // next click: arm 2
          else d.points.pop();
          this.viewer.canvas.schedule();
        }
      },
    };
  }

  onKey(e) {
    if (!this.draft) return;
    if (e.key === "Escape") {
      this.cancelDraft();
      e.preventDefault();
    } else if (e.key === "Enter" && this.draft.kind === "polygon" && this.draft.points.length >= 3) {
      this.finish();
      e.preventDefault();
    }
  }

  cancelDraft() {
    this.draft = null;
    this.$("ann-text-form").hidden = true;
    this.renderList();
    this.viewer.canvas.schedule();
  }

  clampPoint([c, r]) {
    const s = this.viewer.slices[this.viewer.index];
    const cols = (this.viewer.drawn && this.viewer.drawn.cols) || (s && s.cols) || Infinity;
    const rows = (this.viewer.drawn && this.viewer.drawn.rows) || (s && s.rows) || Infinity;
    return [Math.min(Math.max(c, 0), cols), Math.min(Math.max(r, 0), rows)];
  }

  nearFirst(screen) {
    const d = this.draft;
    if (!d || d.points.length < 3) return false;
    const p = this.viewer.imageToScreen(d.points[0]);
    return p && Math.hypot(p[0] - screen[0], p[1] - screen[1]) <= CLOSE_PX;
  }

  askText() {
    const form = this.$("ann-text-form");
    form.hidden = false;
    this.$("ann-panel").hidden = false;
    const input = this.$("ann-text-input");
    input.value = "";
    input.focus();
  }

  finishText() {
    const text = this.$("ann-text-input").value.trim();
    this.$("ann-text-form").hidden = true;
    if (!this.draft || this.draft.kind !== "text" || !text) return this.cancelDraft();
    this.finish(text);
  }

  async finish(text = "") {
    const d = this.draft;
    this.draft = null;
    const s = this.viewer.slices[this.viewer.index];
    if (!d || !s) return;
    let points = d.points;
    if (d.kind === "polygon" && points.length < 3) return this.viewer.canvas.schedule();
    points = points.map(([c, r]) => [Math.round(c * 100) / 100, Math.round(r * 100) / 100]);
    const body = {
      series_uid: this.viewer.seriesUid, sop_instance_uid: s.sop, frame: s.frame, kind: d.kind,
      points, text,
    };
    if (this.roomId) body.room_id = this.roomId;
    this.viewer.canvas.schedule();
    try {
      const made = await apiJson(`/api/studies/${encodeURIComponent(this.viewer.studyUid)}/annotations`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      this.items.set(made.id, made);
      this.status("");
      this.changed();
    } catch (err) {
      this.status("ann.failed", { message: err.message });
    }
  }

  async remove(id) {
    const a = this.items.get(id);
    if (!a) return;
    try {
      await apiJson(`/api/studies/${encodeURIComponent(a.study_uid)}/annotations/${id}`, { method: "DELETE" });
      this.items.delete(id);
      this.changed();
    } catch (err) {
      this.status("ann.failed", { message: err.message });
    }
  }

  /** Removes one's newest annotation on the shown image. */
  undoLast() {
    if (this.draft) return this.cancelDraft();
    const own = this.current().filter((a) => a.author === this.username).sort((a, b) => a.at - b.at);
    if (own.length) this.remove(own[own.length - 1].id);
  }

  async markKeyImage() {
    const vs = this.viewer.getViewState();
    if (!vs) return;
    const body = {
      series_uid: vs.series_uid, sop_instance_uid: vs.sop_instance_uid, frame: vs.frame,
      window: vs.window,
    };
    if (this.roomId) body.room_id = this.roomId;
    if (this.caseId) body.case_id = typeof this.caseId === "function" ? this.caseId() : this.caseId;
    if (!body.case_id) delete body.case_id;
    try {
      await apiJson(`/api/studies/${encodeURIComponent(vs.study_uid)}/key-images`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      this.status("ann.keyImage.done", { n: vs.frame });
    } catch (err) {
      this.status("ann.failed", { message: err.message });
    }
  }

  async exportReport() {
    const body = this.roomId ? { room_id: this.roomId } : {};
    try {
      const out = await apiJson(`/api/studies/${encodeURIComponent(this.viewer.studyUid)}/measurement-report`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      this.status("ann.exportSr.done", { n: out.count });
    } catch (err) {
      this.status("ann.failed", { message: err.message });
    }
  }

  /** A room event (room.event .event): another participant's marks appear and go at once. */
  onRoomEvent(event) {
    if (!event || !event.type) return false;
    if (event.type === "annotation.added" && event.annotation) {
      if (event.annotation.study_uid !== this.viewer.studyUid) return true;
      this.items.set(event.annotation.id, event.annotation);
      this.changed();
      return true;
    }
    if (event.type === "control.changed") {
      // the page updates who presents after this event: show/hide "key image" after it
      setTimeout(() => this.renderKeyButton(), 0);
      return false;
    }
    if (event.type === "annotation.removed") {
      this.items.delete(event.annotation_id);
      this.changed();
      return true;
    }
    return event.type === "key_image.added" || event.type === "key_image.removed";
  }

  // --- drawing ------------------------------------------------------------------------------

  draw(ctx, view) {
    if (!view.slice) return;
    const dpr = view.dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.lineWidth = 2;
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.shadowColor = "#000";
    ctx.shadowBlur = 3;
    for (const a of this.current()) {
      this.drawShape(ctx, view, a.kind, a.points, a.author === this.username ? COLORS.own : COLORS.other,
        measurementText(a));
    }
    const d = this.draft;
    if (d) {
      const pts = d.kind === "polygon" && d.hover ? [...d.points, d.hover] : d.points;
      this.drawShape(ctx, view, d.kind, pts, COLORS.draft, "", true);
    }
  }

  drawShape(ctx, view, kind, points, color, label, draft = false) {
    const sp = points.map((p) => view.toScreen(p)).filter(Boolean);
    if (!sp.length) return;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    if (kind === "ellipse" && points.length >= 2) {
      // the ellipse is axis-aligned in the image: draw it in image space through the transform
      const [[c0, r0], [c1, r1]] = points;
      const n = 64;
      for (let i = 0; i <= n; i++) {
        const th = (i / n) * 2 * Math.PI;
        const p = view.toScreen([(c0 + c1) / 2 + ((c1 - c0) / 2) * Math.cos(th), (r0 + r1) / 2 + ((r1 - r0) / 2) * Math.sin(th)]);
        if (i === 0) ctx.moveTo(p[0], p[1]);
        else ctx.lineTo(p[0], p[1]);
      }
    } else if (kind === "text") {
      ctx.arc(sp[0][0], sp[0][1], 3, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      sp.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
      if (kind === "polygon" && !draft) ctx.closePath();
    }
    ctx.stroke();
    if (kind === "arrow" && sp.length >= 2) {
      const [tail, head] = sp;
      const ang = Math.atan2(head[1] - tail[1], head[0] - tail[0]);
      ctx.beginPath();
      for (const side of [-1, 1]) {
        ctx.moveTo(head[0], head[1]);
        ctx.lineTo(head[0] - 12 * Math.cos(ang + side * 0.45), head[1] - 12 * Math.sin(ang + side * 0.45));
      }
      ctx.stroke();
    }
    if (label) {
      const anchor = kind === "arrow" ? sp[0] : sp[sp.length - 1];
      ctx.fillText(label, anchor[0] + 8, anchor[1] - 8);
    }
  }
}

/** Adds the annotation tools to a viewer (viewer.html, the MDT room). */
export function mountAnnotations(viewer, options = {}) {
  return new Annotations(viewer, options).mount();
}

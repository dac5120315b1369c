// The imaging viewer component: series strip, one canvas viewport, toolbar. Used by viewer.html
// (viewer.js) and embedded beside the video on the expert's workstation (expert.js).
//
// The server renders every pixel (server-side window/level). The client fetches frames with
// the bearer header, decodes them with createImageBitmap and draws them; zoom and pan are
// canvas transforms.

import { getLang, offLangChange, onLangChange, t } from "../../lib/i18n.js";
import "../../i18n/viewer.js";
import { TAG, apiFetch, apiJson, first, formatDate, num, personName, values } from "../../lib/api.js";
import { FrameLoader, isAbort } from "./loader.js";

const PREFETCH_RADIUS = 8;
const QUALITY = 90;
const DRAG_QUALITY = 75;
const MAX_RENDER = 1024; // longest side requested from the server
const ZOOM_STEP = 1.25;
const ZOOM_MIN = 0.1;
const ZOOM_MAX = 20;
const DICOM_JSON = { Accept: "application/dicom+json, application/json" };

// ---- small helpers ------------------------------------------------------------------------

function fmtNum(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return String(Number.isInteger(v) ? v : Math.round(v * 10) / 10);
}

/** "40,400,LINEAR" (X-Window) → {c, w, fn}. */
function parseWindow(text) {
  if (!text) return null;
  const [c, w, fn] = String(text).split(",").map((s) => s.trim());
  const cn = Number(c);
  const wn = Number(w);
  if (!Number.isFinite(cn) || !Number.isFinite(wn)) return null;
  return { c: cn, w: wn, fn: (fn || "LINEAR").toUpperCase() };
}

/** The `window=` query value in PS3.18's spelling: linear, linear-exact, sigmoid. */
function windowParam(win) {
  const fn = (win.fn || "LINEAR").toLowerCase().replace("_", "-");
  return `${fmtNum(win.c)},${fmtNum(win.w)},${fn}`;
}

function winKey(win) {
  return win ? `${fmtNum(win.c)},${fmtNum(win.w)},${win.fn}` : "default";
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}


/**
 * The viewer's markup (toolbar, series strip, viewport with overlays, slice rail) for pages that
 * embed it. viewer.html has the same markup inline so it is on screen before any script runs:
 * keep the two in step.
 */
export function viewerMarkup() {
  return `
    <div class="tools" role="toolbar" data-testid="toolbar">
      <div class="group" role="group" data-i18n-aria-label="tool.label">
        <button type="button" data-testid="tool-scroll" data-tool="scroll" aria-pressed="false"
                data-i18n="tool.scroll" data-i18n-title="tool.scroll.aria">Scroll</button>
        <button type="button" data-testid="tool-wl" data-tool="wl" aria-pressed="true"
                data-i18n="tool.wl" data-i18n-title="tool.wl.aria">W/L</button>
        <button type="button" data-testid="tool-pan" data-tool="pan" aria-pressed="false"
                data-i18n="tool.pan" data-i18n-title="tool.pan.aria">Pan</button>
      </div>
      <span class="sep" aria-hidden="true"></span>
      <div class="group" role="group" data-testid="presets" data-i18n-aria-label="presets.label"></div>
      <span class="sep" aria-hidden="true"></span>
      <div class="group">
        <button type="button" class="icon" data-testid="zoom-out" data-i18n-aria-label="zoom.out"
                data-i18n-title="zoom.out"><span aria-hidden="true">−</span></button>
        <button type="button" class="icon" data-testid="zoom-in" data-i18n-aria-label="zoom.in"
                data-i18n-title="zoom.in"><span aria-hidden="true">+</span></button>
        <button type="button" data-testid="reset" data-i18n="reset"
                data-i18n-aria-label="reset.aria">Reset</button>
      </div>
    </div>

    <nav class="series-strip" data-testid="series-strip" data-i18n-aria-label="viewer.series">
      <h2 data-i18n="viewer.series">Series</h2>
    </nav>

    <main class="main-view">
      <div class="viewport" data-testid="viewport" tabindex="0" role="img"
           data-i18n-aria-label="viewer.viewport.aria" data-tool="wl">
        <canvas data-testid="viewport-canvas"></canvas>
        <div class="ov tl">
          <div class="big" data-testid="ov-patient"></div>
          <div data-testid="ov-patient-id"></div>
          <div data-testid="ov-study-date"></div>
        </div>
        <div class="ov tr">
          <div data-testid="ov-series"></div>
          <div data-testid="ov-study-desc"></div>
        </div>
        <div class="ov bl">
          <div class="big" data-testid="slice-label"></div>
          <div data-testid="position-label"></div>
        </div>
        <div class="ov br">
          <div class="big" data-testid="wl-label"></div>
          <div data-testid="zoom-label"></div>
        </div>
        <div class="ov-status" data-testid="viewer-status" role="status" hidden></div>
      </div>
      <div class="slice-rail">
        <button type="button" class="icon" data-testid="slice-prev" data-i18n-aria-label="slice.prev"
                data-i18n-title="slice.prev"><span aria-hidden="true">▲</span></button>
        <input type="range" min="1" max="1" value="1" step="1" data-testid="slice-slider"
               data-i18n-aria-label="viewer.slice.aria">
        <button type="button" class="icon" data-testid="slice-next" data-i18n-aria-label="slice.next"
                data-i18n-title="slice.next"><span aria-hidden="true">▼</span></button>
      </div>
    </main>`;
}

// ---- the viewer ---------------------------------------------------------------------------

export class Viewer {
  /**
   * `root` holds the viewer markup (`viewerMarkup()`): the whole document for viewer.html, a
   * panel beside the video on the expert's workstation. Options: `globalKeys` (keyboard
   * shortcuts anywhere on the page, else only while the viewer has focus), `setTitle`.
   */
  constructor(root, studyUid, { globalKeys = true, setTitle = true } = {}) {
    this.root = root;
    this.options = { globalKeys, setTitle };
    this.destroyed = false;
    this.studyUid = studyUid;
    this.study = null;
    this.seriesList = [];
    this.series = null; // current series object
    this.slices = []; // {sop, frame, pos, rows, cols, win}
    this.index = 0;
    this.window = null; // explicit {c, w, fn}; null = the file's default
    this.shownWindow = null; // window reported by the server for the drawn image
    this.zoom = 1;
    this.panX = 0; // CSS pixels
    this.panY = 0;
    this.tool = window.matchMedia("(pointer: coarse)").matches ? "scroll" : "wl";
    this.presets = [];
    this.drawn = null; // {bitmap, rows, cols, index, seq}
    this.seq = 0;
    this.currentKey = null;
    this.wlBusy = false;
    this.wlPending = false;
    this.dragging = null;
    this.pointers = new Map();
    this.wheelAcc = 0;
    this.thumbUrls = [];
    this.drawQueued = false;
    this.prefetchTimer = 0;

    this.viewport = this.$("viewport");
    this.canvas = this.$("viewport-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.slider = this.$("slice-slider");
    this.loader = new FrameLoader((url, init) => apiFetch(url, init));
  }

  $(testid) {
    return this.root.querySelector(`[data-testid="${testid}"]`);
  }

  // -- start-up -------------------------------------------------------------------------------

  async start() {
    this.bindControls();
    this.setTool(this.tool);
    this.renderOverlay();
    this.status(t("viewer.loading"));
    if (!this.studyUid) {
      this.status(t("viewer.noStudy"), true);
      return;
    }
    const base = `/dicomweb/studies/${encodeURIComponent(this.studyUid)}`;
    try {
      const [studies, series, presets] = await Promise.all([
        apiJson(`/dicomweb/studies?StudyInstanceUID=${encodeURIComponent(this.studyUid)}&includefield=all`,
          { headers: DICOM_JSON }),
        apiJson(`${base}/series?includefield=all`, { headers: DICOM_JSON }),
        apiJson("/api/presets").catch(() => []),
      ]);
      this.study = (Array.isArray(studies) && studies[0]) || null;
      this.presets = Array.isArray(presets) ? presets : [];
      this.seriesList = (Array.isArray(series) ? series : []).slice().sort(
        (a, b) => num(a, TAG.SeriesNumber, 1e9) - num(b, TAG.SeriesNumber, 1e9),
      );
    } catch (err) {
      // No such study for this account: the page may offer emergency access (viewer.js).
      if (err.status === 404 && this.onNoAccess) return this.onNoAccess();
      this.status(t("viewer.error", { message: err.message }), true);
      return;
    }
    this.renderHeader();
    this.renderPresets();
    this.renderSeriesStrip();
    if (!this.seriesList.length) {
      this.status(t("viewer.noSeries"), true);
      return;
    }
    await this.loadSeries(this.seriesList[0]);
  }

  async loadSeries(series) {
    const seriesUid = first(series, TAG.SeriesInstanceUID);
    this.series = series;
    for (const el of this.root.querySelectorAll("[data-testid=series-thumb]")) {
      el.setAttribute("aria-pressed", String(el.dataset.seriesUid === seriesUid));
    }
    this.status(t("viewer.loading"));
    this.loader.setPrefetch([]);
    let instances;
    try {
      instances = await apiJson(
        `/dicomweb/studies/${encodeURIComponent(this.studyUid)}/series/${encodeURIComponent(seriesUid)}/instances?includefield=all`,
        { headers: DICOM_JSON },
      );
    } catch (err) {
      this.status(t("viewer.error", { message: err.message }), true);
      return;
    }
    if (this.series !== series) return; // another series was clicked meanwhile
    const slices = [];
    for (const inst of Array.isArray(instances) ? instances : []) {
      const sop = first(inst, TAG.SOPInstanceUID);
      if (!sop || num(inst, TAG.Rows) === undefined) continue; // not an image (SR, KO…)
      const frames = Math.max(1, num(inst, TAG.NumberOfFrames, 1));
      const ipp = values(inst, TAG.ImagePositionPatient);
      let pos = num(inst, TAG.SliceLocation, null);
      if (pos === null && ipp.length === 3) pos = Number(ipp[2]);
      const wc = num(inst, TAG.WindowCenter, null);
      const ww = num(inst, TAG.WindowWidth, null);
      for (let f = 1; f <= frames; f++) {
        slices.push({
          sop,
          frame: f,
          pos: frames === 1 ? pos : null,
          rows: num(inst, TAG.Rows, 512),
          cols: num(inst, TAG.Columns, 512),
          win: wc !== null && ww !== null ? { c: wc, w: ww, fn: "LINEAR" } : null,
        });
      }
    }
    this.seriesUid = seriesUid;
    this.slices = slices;
    this.index = 0;
    this.drawn = null;
    this.shownWindow = null;
    this.slider.max = String(Math.max(1, slices.length));
    this.slider.value = "1";
    this.slider.disabled = slices.length <= 1;
    this.renderOverlay();
    if (!slices.length) {
      this.status(t("viewer.noSeries"), true);
      this.scheduleDraw();
      return;
    }
    this.showCurrent();
  }

  // -- requests -------------------------------------------------------------------------------

  job(index, win, quality) {
    const s = this.slices[index];
    const scale = Math.min(1, MAX_RENDER / Math.max(s.rows, s.cols));
    const vw = Math.max(1, Math.round(s.cols * scale));
    const vh = Math.max(1, Math.round(s.rows * scale));
    const q = new URLSearchParams();
    if (win) q.set("window", windowParam(win));
    q.set("quality", String(quality));
    q.set("viewport", `${vw},${vh}`);
    const url = `/dicomweb/studies/${encodeURIComponent(this.studyUid)}/series/${encodeURIComponent(this.seriesUid)}`
      + `/instances/${encodeURIComponent(s.sop)}/frames/${s.frame}/rendered?${q}`;
    return {
      key: `${this.seriesUid}|${s.sop}|${s.frame}|${winKey(win)}|${quality}|${vw}x${vh}`,
      url,
      accept: "image/jpeg",
      index,
    };
  }

  /** Shows the current slice at full quality, from cache when possible, then prefetches. */
  showCurrent() {
    if (!this.slices.length) return;
    const index = this.index;
    const win = this.window;
    const job = this.job(index, win, QUALITY);
    const seq = ++this.seq;
    const oldKey = this.currentKey;
    this.currentKey = job.key;
    const cached = this.loader.peek(job.key);
    if (cached) {
      this.present(cached, index, seq);
    } else {
      this.loader.fetch(job, "current").then(
        (entry) => this.present(entry, index, seq),
        (err) => this.fail(err, index),
      );
    }
    if (oldKey && oldKey !== job.key) this.loader.release(oldKey, "current");
    this.schedulePrefetch();
  }

  schedulePrefetch() {
    clearTimeout(this.prefetchTimer);
    this.prefetchTimer = setTimeout(() => {
      if (this.dragging && this.dragging.mode === "wl") return;
      const jobs = [];
      for (let d = 1; d <= PREFETCH_RADIUS; d++) {
        for (const i of [this.index + d, this.index - d]) {
          if (i >= 0 && i < this.slices.length) jobs.push(this.job(i, this.window, QUALITY));
        }
      }
      this.loader.setPrefetch(jobs);
    }, 40);
  }

  /** While dragging W/L: at most one request in flight, always for the newest window. */
  requestWindowed() {
    if (this.wlBusy) {
      this.wlPending = true;
      return;
    }
    this.wlBusy = true;
    this.wlPending = false;
    const index = this.index;
    const win = { ...this.window };
    const job = this.job(index, win, DRAG_QUALITY);
    const seq = ++this.seq;
    this.loader.fetch(job, "wl")
      .then((entry) => this.present(entry, index, seq), (err) => this.fail(err, index))
      .finally(() => {
        this.loader.release(job.key, "wl");
        this.wlBusy = false;
        const stillDragging = this.dragging && this.dragging.mode === "wl";
        if (this.wlPending && stillDragging) this.requestWindowed();
        this.wlPending = false;
      });
  }

  async present(entry, index, seq) {
    if (index !== this.index) return;
    if (this.drawn && seq < this.drawn.seq) return; // an older request finished late
    let bitmap;
    try {
      bitmap = await this.loader.bitmap(entry);
    } catch (err) {
      this.fail(err, index);
      return;
    }
    if (index !== this.index || (this.drawn && seq < this.drawn.seq)) return;
    const s = this.slices[index];
    this.drawn = { bitmap, rows: s.rows, cols: s.cols, index, seq };
    this.shownWindow = parseWindow(entry.window) || this.shownWindow;
    // what the canvas shows, for tests and for debugging: "12" and the server's X-Window
    this.viewport.dataset.shownSlice = String(index + 1);
    this.viewport.dataset.shownWindow = entry.window || "";
    this.status(null);
    this.renderOverlay();
    this.scheduleDraw();
  }

  fail(err, index) {
    if (isAbort(err) || index !== this.index) return;
    if (err && err.status === 401) return; // api.js is already leaving for the sign-in page
    this.status(t("viewer.imageError", { message: (err && err.message) || t("error.network") }), true);
  }

  // -- state changes --------------------------------------------------------------------------

  setIndex(i) {
    if (!this.slices.length) return;
    const next = clamp(Math.round(i), 0, this.slices.length - 1);
    if (next === this.index) return;
    this.index = next;
    this.slider.value = String(next + 1);
    this.renderOverlay();
    this.showCurrent();
  }

  /** The window the user starts from when adjusting: explicit, else shown, else the file's. */
  baseWindow() {
    if (this.window) return this.window;
    if (this.shownWindow) return this.shownWindow;
    const s = this.slices[this.index];
    return (s && s.win) || { c: 40, w: 400, fn: "LINEAR" };
  }

  applyPreset(preset) {
    this.window = { c: Number(preset.center), w: Number(preset.width), fn: (preset.function || "LINEAR").toUpperCase() };
    this.renderOverlay();
    this.renderPresets();
    this.showCurrent();
  }

  setZoom(z, cx = 0, cy = 0) {
    const nz = clamp(z, ZOOM_MIN, ZOOM_MAX);
    // keep the point (cx, cy) — relative to the viewport centre — fixed on screen
    this.panX = cx - ((cx - this.panX) * nz) / this.zoom;
    this.panY = cy - ((cy - this.panY) * nz) / this.zoom;
    this.zoom = nz;
    this.renderOverlay();
    this.scheduleDraw();
  }

  reset() {
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    const hadWindow = this.window !== null;
    this.window = null;
    if (hadWindow) this.shownWindow = null;
    this.renderOverlay();
    this.renderPresets();
    this.scheduleDraw();
    if (hadWindow) this.showCurrent();
  }

  setTool(tool) {
    this.tool = tool;
    this.viewport.dataset.tool = tool;
    for (const b of this.root.querySelectorAll("[data-tool]")) {
      if (b.tagName === "BUTTON") b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    }
  }

  // -- drawing --------------------------------------------------------------------------------

  scheduleDraw() {
    if (this.drawQueued) return;
    this.drawQueued = true;
    requestAnimationFrame(() => {
      this.drawQueued = false;
      this.draw();
    });
  }

  resizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.viewport.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.viewport.clientHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  draw() {
    if (this.destroyed) return;
    this.resizeCanvas();
    const { ctx, canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.drawn) return;
    const { bitmap, rows, cols } = this.drawn;
    const fit = Math.min(canvas.width / cols, canvas.height / rows);
    const s = fit * this.zoom;
    ctx.setTransform(s, 0, 0, s, canvas.width / 2 + this.panX * dpr, canvas.height / 2 + this.panY * dpr);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    try {
      ctx.drawImage(bitmap, -cols / 2, -rows / 2, cols, rows);
    } catch {
      // a bitmap released by the cache: the next present() redraws
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
  }

  // -- text -----------------------------------------------------------------------------------

  status(text, isError = false) {
    const box = this.$("viewer-status");
    box.hidden = !text;
    box.textContent = text || "";
    box.classList.toggle("error", Boolean(isError));
  }

  renderHeader() {
    const lang = getLang();
    const st = this.study;
    const name = personName(st, TAG.PatientName, lang);
    const pid = first(st, TAG.PatientID, "");
    const date = formatDate(first(st, TAG.StudyDate, ""));
    const desc = first(st, TAG.StudyDescription, "");
    // the top bar of viewer.html; an embedding page has its own header
    const head = this.$("patient-head");
    if (head) head.textContent = [name, pid].filter(Boolean).join(" · ");
    const sub = this.$("study-head");
    if (sub) sub.textContent = [date, desc].filter(Boolean).join(" · ");
    this.$("ov-patient").textContent = name;
    this.$("ov-patient-id").textContent = pid;
    this.$("ov-study-date").textContent = date;
    this.$("ov-study-desc").textContent = desc;
    if (name && this.options.setTitle) document.title = `${name} — ${t("app.title")}`;
  }

  renderOverlay() {
    const n = this.slices.length;
    this.$("slice-label").textContent = n ? t("viewer.slice", { i: this.index + 1, n }) : "";
    const s = this.slices[this.index];
    this.$("position-label").textContent = s && s.pos !== null && Number.isFinite(s.pos)
      ? t("viewer.position", { pos: s.pos.toFixed(1) }) : "";
    const win = this.window || this.shownWindow;
    this.$("wl-label").textContent = win ? t("viewer.wl", { w: fmtNum(win.w), c: fmtNum(win.c) }) : "";
    this.$("zoom-label").textContent = t("viewer.zoom", { pct: Math.round(this.zoom * 100) });
    const se = this.series;
    this.$("ov-series").textContent = se
      ? [first(se, TAG.Modality, ""), first(se, TAG.SeriesDescription, "")].filter(Boolean).join(" · ")
      : "";
    this.slider.setAttribute("aria-valuetext", this.$("slice-label").textContent);
  }

  renderPresets() {
    const box = this.$("presets");
    box.textContent = "";
    const lang = getLang();
    for (const p of this.presets) {
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-testid", `preset-${p.name}`);
      b.textContent = (lang === "zh" ? p.label_zh : p.label_en) || p.label_en || p.name;
      b.title = `W ${p.width} L ${p.center}`;
      const active = this.window && this.window.c === Number(p.center) && this.window.w === Number(p.width);
      b.setAttribute("aria-pressed", String(Boolean(active)));
      b.addEventListener("click", () => this.applyPreset(p));
      box.append(b);
    }
  }

  renderSeriesStrip() {
    const strip = this.$("series-strip");
    for (const el of strip.querySelectorAll("[data-testid=series-thumb]")) el.remove();
    for (const url of this.thumbUrls) URL.revokeObjectURL(url);
    this.thumbUrls = [];
    for (const se of this.seriesList) {
      const uid = first(se, TAG.SeriesInstanceUID);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "series-thumb";
      b.setAttribute("data-testid", "series-thumb");
      b.dataset.seriesUid = uid;
      b.setAttribute("aria-pressed", String(this.series === se));
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = "";
      const title = document.createElement("span");
      title.className = "thumb-title";
      const number = num(se, TAG.SeriesNumber, null);
      title.textContent = [number !== null ? `#${number}` : "", first(se, TAG.Modality, "")].filter(Boolean).join(" ");
      const desc = document.createElement("span");
      desc.className = "thumb-sub";
      desc.textContent = first(se, TAG.SeriesDescription, "");
      const count = document.createElement("span");
      count.className = "thumb-sub";
      count.textContent = t("viewer.series.images", { n: num(se, TAG.NumberOfSeriesRelatedInstances, "?") });
      b.append(img, title, desc, count);
      b.setAttribute("aria-label", [title.textContent, desc.textContent, count.textContent].join(", "));
      b.addEventListener("click", () => {
        if (this.series !== se) this.loadSeries(se);
      });
      strip.append(b);
      this.loadThumb(uid, img);
    }
  }

  async loadThumb(seriesUid, img) {
    try {
      const r = await apiFetch(
        `/dicomweb/studies/${encodeURIComponent(this.studyUid)}/series/${encodeURIComponent(seriesUid)}/thumbnail?viewport=128,128`,
        { headers: { Accept: "image/jpeg, image/png" } },
      );
      const url = URL.createObjectURL(await r.blob());
      this.thumbUrls.push(url);
      img.src = url;
    } catch {
      img.classList.add("missing"); // the black square stays; the label still identifies it
    }
  }

  /** Stops everything (embedded viewer closed): requests, listeners, object URLs. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.studyUid = null;
    this.loader.setPrefetch([]);
    if (this.currentKey) this.loader.release(this.currentKey, "current");
    clearTimeout(this.prefetchTimer);
    if (this.langListener) offLangChange(this.langListener);
    if (this.resizeObserver) this.resizeObserver.disconnect();
    if (this.keyListener) (this.options.globalKeys ? document : this.root).removeEventListener("keydown", this.keyListener);
    if (this.pagehideListener) window.removeEventListener("pagehide", this.pagehideListener);
    for (const url of this.thumbUrls) URL.revokeObjectURL(url);
    this.thumbUrls = [];
  }

  // -- input ----------------------------------------------------------------------------------

  bindControls() {
    for (const b of this.root.querySelectorAll("button[data-tool]")) {
      b.addEventListener("click", () => this.setTool(b.dataset.tool));
    }
    this.$("zoom-in").addEventListener("click", () => this.setZoom(this.zoom * ZOOM_STEP));
    this.$("zoom-out").addEventListener("click", () => this.setZoom(this.zoom / ZOOM_STEP));
    this.$("reset").addEventListener("click", () => this.reset());
    this.$("slice-prev").addEventListener("click", () => this.setIndex(this.index - 1));
    this.$("slice-next").addEventListener("click", () => this.setIndex(this.index + 1));
    this.slider.addEventListener("input", () => this.setIndex(Number(this.slider.value) - 1));

    this.langListener = () => {
      if (this.destroyed) return;
      this.renderHeader();
      this.renderOverlay();
      this.renderPresets();
      if (this.seriesList.length) this.renderSeriesStrip();
    };
    onLangChange(this.langListener);

    this.resizeObserver = new ResizeObserver(() => this.scheduleDraw());
    this.resizeObserver.observe(this.viewport);

    const vp = this.viewport;
    vp.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    vp.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    vp.addEventListener("pointermove", (e) => this.onPointerMove(e));
    vp.addEventListener("pointerup", (e) => this.onPointerUp(e));
    vp.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    vp.addEventListener("contextmenu", (e) => e.preventDefault());
    vp.addEventListener("auxclick", (e) => e.preventDefault());
    this.keyListener = (e) => this.onKey(e);
    (this.options.globalKeys ? document : this.root).addEventListener("keydown", this.keyListener);
    this.pagehideListener = () => {
      for (const url of this.thumbUrls) URL.revokeObjectURL(url);
    };
    window.addEventListener("pagehide", this.pagehideListener);
  }

  relToCentre(e) {
    const r = this.viewport.getBoundingClientRect();
    return [e.clientX - r.left - r.width / 2, e.clientY - r.top - r.height / 2];
  }

  onWheel(e) {
    e.preventDefault();
    let delta = e.deltaY;
    if (e.deltaMode === 1) delta *= 40; // lines
    else if (e.deltaMode === 2) delta *= this.viewport.clientHeight; // pages
    if (e.ctrlKey) {
      const [cx, cy] = this.relToCentre(e);
      this.setZoom(this.zoom * Math.exp(-delta * 0.0025), cx, cy);
      return;
    }
    // One mouse notch (~100 px) = one slice; small trackpad deltas accumulate.
    this.wheelAcc += delta;
    if (Math.abs(this.wheelAcc) < 40) return;
    const steps = Math.sign(this.wheelAcc) * Math.max(1, Math.round(Math.abs(this.wheelAcc) / 120));
    this.wheelAcc = 0;
    this.setIndex(this.index + steps);
  }

  onKey(e) {
    const target = e.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (e.altKey || e.metaKey) return;
    const n = this.slices.length;
    const page = Math.max(1, Math.round(n / 10));
    let handled = true;
    switch (e.key) {
      case "ArrowUp": this.setIndex(this.index - 1); break;
      case "ArrowDown": this.setIndex(this.index + 1); break;
      case "PageUp": this.setIndex(this.index - page); break;
      case "PageDown": this.setIndex(this.index + page); break;
      case "Home": this.setIndex(0); break;
      case "End": this.setIndex(n - 1); break;
      case "+": case "=": this.setZoom(this.zoom * ZOOM_STEP); break;
      case "-": case "_": this.setZoom(this.zoom / ZOOM_STEP); break;
      case "r": case "R":
        if (e.ctrlKey) handled = false; // leave Ctrl+R (reload) alone
        else this.reset();
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  onPointerDown(e) {
    this.viewport.focus({ preventScroll: true });
    try {
      this.viewport.setPointerCapture(e.pointerId);
    } catch {
      // synthetic or already-released pointer: dragging still works inside the viewport
    }
    this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    e.preventDefault();
    if (this.pointers.size === 2) {
      this.endDrag();
      const [a, b] = [...this.pointers.values()];
      this.dragging = {
        mode: "pinch",
        dist: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        mid: [(a.x + b.x) / 2, (a.y + b.y) / 2],
      };
      return;
    }
    if (this.pointers.size > 2) return;
    let mode = this.tool;
    if (e.pointerType === "mouse" && (e.button === 1 || e.button === 2)) mode = "pan";
    else if (e.pointerType === "mouse" && e.button !== 0) return;
    this.dragging = { mode, x: e.clientX, y: e.clientY, acc: 0 };
    if (mode === "wl") {
      const base = this.baseWindow();
      this.dragging.base = { ...base };
      this.dragging.k = clamp(base.w / 250, 0.5, 8);
    }
  }

  onPointerMove(e) {
    const p = this.pointers.get(e.pointerId);
    if (!p || !this.dragging) return;
    p.x = e.clientX;
    p.y = e.clientY;
    const d = this.dragging;
    if (d.mode === "pinch") {
      if (this.pointers.size < 2) return;
      const [a, b] = [...this.pointers.values()];
      const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const mid = [(a.x + b.x) / 2, (a.y + b.y) / 2];
      this.panX += mid[0] - d.mid[0];
      this.panY += mid[1] - d.mid[1];
      const r = this.viewport.getBoundingClientRect();
      this.setZoom(this.zoom * (dist / d.dist), mid[0] - r.left - r.width / 2, mid[1] - r.top - r.height / 2);
      d.dist = dist;
      d.mid = mid;
      return;
    }
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    d.x = e.clientX;
    d.y = e.clientY;
    if (d.mode === "pan") {
      this.panX += dx;
      this.panY += dy;
      this.scheduleDraw();
    } else if (d.mode === "scroll") {
      // the whole stack over about one viewport height, but never faster than 4 px per slice
      const perSlice = Math.max(4, this.viewport.clientHeight / Math.max(1, this.slices.length));
      d.acc += dy;
      const steps = Math.trunc(d.acc / perSlice);
      if (steps) {
        d.acc -= steps * perSlice;
        this.setIndex(this.index + steps);
      }
    } else if (d.mode === "wl") {
      if (!dx && !dy) return;
      if (!d.moved) {
        d.moved = true;
        this.window = d.base;
        this.loader.setPrefetch([]);
      }
      const w = Math.max(1, this.window.w + dx * d.k);
      const c = this.window.c + dy * d.k;
      this.window = { c: Math.round(c), w: Math.max(1, Math.round(w)), fn: this.window.fn };
      this.renderOverlay();
      this.renderPresets();
      this.requestWindowed();
    }
  }

  onPointerUp(e) {
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    if (this.viewport.hasPointerCapture(e.pointerId)) this.viewport.releasePointerCapture(e.pointerId);
    if (this.pointers.size === 0) this.endDrag();
    else if (this.dragging && this.dragging.mode === "pinch") this.dragging = null; // lift 1 of 2
  }

  endDrag() {
    const d = this.dragging;
    this.dragging = null;
    if (d && d.mode === "wl" && d.moved) this.showCurrent(); // final full-quality image + prefetch
  }
}

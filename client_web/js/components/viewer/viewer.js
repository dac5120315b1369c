// The imaging viewer component: series strip, one canvas viewport, toolbar. Used by viewer.html,
// embedded beside the video on the expert's workstation and in the MDT room.
//
// The server renders every pixel (server-side window/level). The client fetches frames with
// the bearer header, decodes them with createImageBitmap and draws them; zoom, pan, rotation
// and flips are canvas transforms, invert a canvas filter.
//
// What the viewer shows is one serialisable object: `getViewState()` / `applyViewState(vs)`
// with the ViewState of js/components/viewer/view-state.js (docs/signaling.md). Every change
// dispatches `viewchange` (detail {source: "user" | "load" | "apply" | "cine", what}); `shown` fires once
// an image is on the canvas.
//
// Modules: view-state.js (the ViewState, windows), loading.js (metadata, frames, prefetch),
// drawing.js (canvas, overlay layers, image to screen and back), input.js (toolbar, wheel, keys, drags,
// registered tools), chrome.js (markup, overlays, presets, series strip).

import { applyI18n, offLangChange, onLangChange, t } from "../../lib/i18n.js";
import { TAG, first } from "../../lib/api.js";
import { withIcon } from "../../lib/icons.js";
import { TOOL_ICONS, TOOL_RANKS, ToolbarFit } from "./toolbar-fit.js";
import { ViewerChrome, viewerMarkup } from "./chrome.js";
import { ViewerCanvas } from "./drawing.js";
import { ViewerInput } from "./input.js";
import { ViewerLoading } from "./loading.js";
import {
  FPS_MAX, FPS_MIN, PAN_MAX, ROTATIONS, ZOOM_MAX, ZOOM_MIN, clamp, fromWin, initialDisplay,
  normalizeViewState, sameWindow, toWin,
} from "./view-state.js";

export { viewerMarkup };

export class Viewer extends EventTarget {
  /**
   * `root` holds the viewer markup (`viewerMarkup()`): the whole document for viewer.html, a
   * panel beside the video on the expert's workstation. Options: `globalKeys` (keyboard
   * shortcuts anywhere on the page, else only while the viewer has focus), `setTitle`.
   */
  constructor(root, studyUid, { globalKeys = true, setTitle = true } = {}) {
    super();
    this.root = root;
    this.options = { globalKeys, setTitle };
    this.destroyed = false;
    this.studyUid = studyUid;
    // what is loaded
    this.study = null;
    this.seriesList = [];
    this.presets = [];
    this.series = null; // current series object
    this.seriesUid = null;
    this.slices = []; // {sop, frame, pos, rows, cols, win}
    // what is shown: the slice and the display state (window, zoom, pan, rotation, …)
    this.index = 0;
    this.view = initialDisplay();
    this.drawn = null; // {bitmap, rows, cols, index, seq}
    this.shownWindow = null; // window reported by the server for the drawn image
    this.wanted = null; // a ViewState to apply once its series is loaded
    this.source = "user"; // who makes the current change (applyViewState: "apply")
    this.tool = window.matchMedia("(pointer: coarse)").matches ? "scroll" : "wl";
    this.dragging = null;
    this.cineTimer = 0;

    this.viewport = this.$("viewport");
    this.chrome = new ViewerChrome(this);
    this.canvas = new ViewerCanvas(this);
    this.loading = new ViewerLoading(this);
    this.input = new ViewerInput(this);
    this.toolbarFit = null;
  }

  /**
   * The toolbar on one row, its tools as icons, what does not fit in "More tools"
   * (toolbar-fit.js). Every page with a viewer calls it once its own tools (annotations, the
   * MDT room's) are in the toolbar: the one way a viewer's toolbar is laid out.
   */
  fitToolbar(ranks = TOOL_RANKS) {
    const bar = this.$("toolbar");
    for (const [id, name] of Object.entries(TOOL_ICONS)) {
      const button = this.$(id);
      if (button) withIcon(button, name);
    }
    applyI18n(bar);
    this.toolbarFit = new ToolbarFit(bar, ranks);
    return this.toolbarFit;
  }

  $(testid) {
    return this.root.querySelector(`[data-testid="${testid}"]`);
  }

  status(text, isError = false) {
    this.chrome.status(text, isError);
  }

  // -- start-up -------------------------------------------------------------------------------

  async start() {
    this.input.bind();
    this.langListener = () => {
      if (this.destroyed) return;
      this.chrome.renderHeader();
      this.chrome.renderOverlay();
      this.chrome.renderPresets();
      if (this.seriesList.length) this.chrome.renderSeriesStrip();
    };
    onLangChange(this.langListener);
    this.pagehideListener = () => this.chrome.revokeThumbs();
    window.addEventListener("pagehide", this.pagehideListener);
    this.setTool(this.tool);
    this.chrome.renderOverlay();
    this.status(t("viewer.loading"));
    if (!this.studyUid) {
      this.status(t("viewer.noStudy"), true);
      return;
    }
    try {
      Object.assign(this, await this.loading.loadStudy());
    } catch (err) {
      // No such study for this account: the page may offer emergency access (viewer.js).
      if (err.status === 404 && this.onNoAccess) return this.onNoAccess();
      this.status(t("viewer.error", { message: err.message }), true);
      return;
    }
    if (this.destroyed) return;
    this.chrome.renderHeader();
    this.chrome.renderPresets();
    this.chrome.renderSeriesStrip();
    if (!this.seriesList.length) {
      this.status(t("viewer.noSeries"), true);
      return;
    }
    const wanted = this.wanted && this.findSeries(this.wanted.series_uid);
    this.source = "load"; // the first series is not the user's change
    const loaded = this.loadSeries(wanted || this.seriesList[0]);
    this.source = "user";
    await loaded;
  }

  findSeries(seriesUid) {
    return this.seriesList.find((se) => first(se, TAG.SeriesInstanceUID) === seriesUid) || null;
  }

  /** The user picked a series in the strip. */
  selectSeries(series) {
    this.wanted = null;
    return this.loadSeries(series);
  }

  async loadSeries(series) {
    const source = this.source;
    const seriesUid = first(series, TAG.SeriesInstanceUID);
    this.series = series;
    this.chrome.renderSeriesPressed();
    this.status(t("viewer.loading"));
    let slices;
    try {
      slices = await this.loading.loadSlices(seriesUid);
    } catch (err) {
      if (this.series === series) this.status(t("viewer.error", { message: err.message }), true);
      return;
    }
    if (this.series !== series || this.destroyed) return; // another series was chosen meanwhile
    this.seriesUid = seriesUid;
    this.slices = slices;
    this.index = 0;
    this.drawn = null;
    this.shownWindow = null;
    this.chrome.renderSlider();
    this.chrome.renderOverlay();
    if (!slices.length) {
      this.status(t("viewer.noSeries"), true);
      this.canvas.schedule();
      return;
    }
    if (this.wanted && this.wanted.series_uid === seriesUid) {
      this.applyNow(this.wanted);
      return;
    }
    this.loading.showCurrent();
    this.changed("series", source);
  }

  // -- the view state -------------------------------------------------------------------------

  /** What the viewer shows now as a ViewState (null before a series is loaded). */
  getViewState() {
    const s = this.slices[this.index];
    if (!s || !this.seriesUid) return null;
    const v = this.view;
    return {
      study_uid: this.studyUid,
      series_uid: this.seriesUid,
      sop_instance_uid: s.sop,
      frame: s.frame,
      window: fromWin(this.baseWindow()),
      zoom: v.zoom,
      pan: { x: v.pan.x, y: v.pan.y },
      rotation: v.rotation,
      flip_h: v.flip_h,
      flip_v: v.flip_v,
      invert: v.invert,
      cine: { playing: v.cine.playing, fps: v.cine.fps },
    };
  }

  /**
   * Shows `vs` (a ViewState). The newest call wins: a state for a series still loading replaces
   * any state waiting before it. Returns false for a state of another study (the page opens
   * that study) or one that names no image.
   */
  applyViewState(vs) {
    const s = normalizeViewState(vs);
    if (!s || s.study_uid !== this.studyUid) return false;
    this.wanted = s;
    if (!this.seriesList.length) return true; // start() applies it once the study is loaded
    if (s.series_uid !== this.seriesUid) {
      const series = this.findSeries(s.series_uid);
      if (!series) return false;
      if (this.series !== series) {
        this.source = "apply";
        this.loadSeries(series);
        this.source = "user";
      }
      return true; // loadSeries applies this.wanted (or a newer one) when its slices are in
    }
    this.applyNow(s);
    return true;
  }

  applyNow(s) {
    this.wanted = null;
    const prevIndex = this.index;
    const prevWindow = this.view.window;
    let index = this.slices.findIndex((x) => x.sop === s.sop_instance_uid && x.frame === s.frame);
    if (index < 0) index = this.slices.findIndex((x) => x.sop === s.sop_instance_uid);
    if (index >= 0) this.index = index;
    const win = toWin(s.window);
    const slice = this.slices[this.index];
    // the file's own window stays "default", so every page requests the same rendered image
    this.view.window = slice && slice.win && sameWindow(slice.win, win) ? null : win;
    this.view.zoom = s.zoom;
    this.view.pan = { ...s.pan };
    this.view.rotation = s.rotation;
    this.view.flip_h = s.flip_h;
    this.view.flip_v = s.flip_v;
    this.view.invert = s.invert;
    this.view.cine = { ...s.cine };
    this.chrome.renderOverlay();
    this.chrome.renderPresets();
    if (!this.drawn || this.index !== prevIndex || !sameWindow(this.view.window, prevWindow)) {
      if (!sameWindow(this.view.window, prevWindow)) this.shownWindow = null;
      this.loading.showCurrent();
    }
    this.canvas.schedule();
    this.runCine();
    this.changed("apply", "apply");
  }

  changed(what, source = this.source) {
    this.dispatchEvent(new CustomEvent("viewchange", { detail: { what, source } }));
  }

  // -- actions (the toolbar, the input, the page) ----------------------------------------------

  setIndex(i, source = "user") {
    if (!this.slices.length) return;
    const next = clamp(Math.round(i), 0, this.slices.length - 1);
    if (next === this.index) return;
    this.index = next;
    this.chrome.renderOverlay();
    this.loading.showCurrent();
    this.changed("index", source);
  }

  /** The window the user starts from when adjusting: explicit, else shown, else the file's. */
  baseWindow() {
    if (this.view.window) return this.view.window;
    const s = this.slices[this.index];
    if (s && s.win) return s.win;
    if (this.shownWindow) return this.shownWindow;
    return { c: 40, w: 400, fn: "LINEAR" };
  }

  /** An explicit window; `dragging`: a W/L drag (one low-quality request in flight). */
  setWindow(win, { dragging = false } = {}) {
    this.view.window = { c: win.c, w: Math.max(1, win.w), fn: (win.fn || "LINEAR").toUpperCase() };
    this.chrome.renderOverlay();
    this.chrome.renderPresets();
    if (dragging) this.loading.requestWindowed();
    else this.loading.showCurrent();
    this.changed("window");
  }

  applyPreset(preset) {
    this.setWindow({ c: Number(preset.center), w: Number(preset.width), fn: preset.function || "LINEAR" });
  }

  /** Zoom to `z`, keeping the point (cx, cy) — CSS px from the viewport centre — in place. */
  setZoom(z, cx = 0, cy = 0) {
    const v = this.view;
    const nz = clamp(z, ZOOM_MIN, ZOOM_MAX);
    const w = this.viewport.clientWidth || 1;
    const h = this.viewport.clientHeight || 1;
    const px = v.pan.x * w;
    const py = v.pan.y * h;
    v.pan = {
      x: clamp((cx - ((cx - px) * nz) / v.zoom) / w, -PAN_MAX, PAN_MAX),
      y: clamp((cy - ((cy - py) * nz) / v.zoom) / h, -PAN_MAX, PAN_MAX),
    };
    v.zoom = nz;
    this.chrome.renderOverlay();
    this.canvas.schedule();
    this.changed("zoom");
  }

  /** Moves the image by (dx, dy) CSS px. */
  panBy(dx, dy) {
    const w = this.viewport.clientWidth || 1;
    const h = this.viewport.clientHeight || 1;
    this.view.pan = {
      x: clamp(this.view.pan.x + dx / w, -PAN_MAX, PAN_MAX),
      y: clamp(this.view.pan.y + dy / h, -PAN_MAX, PAN_MAX),
    };
    this.canvas.schedule();
    this.changed("pan");
  }

  /** Rotate by `deg` (a multiple of 90) clockwise. */
  rotate(deg = 90) {
    const r = (((this.view.rotation + deg) % 360) + 360) % 360;
    this.view.rotation = ROTATIONS.includes(r) ? r : 0;
    this.chrome.renderOverlay();
    this.canvas.schedule();
    this.changed("rotation");
  }

  flip(axis) {
    if (axis === "v") this.view.flip_v = !this.view.flip_v;
    else this.view.flip_h = !this.view.flip_h;
    this.canvas.schedule();
    this.changed("flip");
  }

  setInvert(on) {
    this.view.invert = Boolean(on);
    this.chrome.renderOverlay();
    this.canvas.schedule();
    this.changed("invert");
  }

  /** Cine: plays the series at `fps` (wrapping); frame changes it makes are source "cine". */
  setCine(playing, fps = this.view.cine.fps) {
    this.view.cine = { playing: Boolean(playing), fps: clamp(Math.round(fps), FPS_MIN, FPS_MAX) };
    this.chrome.renderOverlay();
    this.runCine();
    this.changed("cine");
  }

  runCine() {
    clearInterval(this.cineTimer);
    this.cineTimer = 0;
    const c = this.view.cine;
    if (!c.playing || this.slices.length < 2 || this.destroyed) return;
    this.cineTimer = setInterval(() => {
      const n = this.slices.length;
      if (n < 2) return;
      this.setIndex((this.index + 1) % n, "cine");
    }, 1000 / c.fps);
  }

  reset() {
    const hadWindow = this.view.window !== null;
    const cine = this.view.cine;
    this.view = { ...initialDisplay(), cine: { ...cine } };
    if (hadWindow) this.shownWindow = null;
    this.chrome.renderOverlay();
    this.chrome.renderPresets();
    this.canvas.schedule();
    if (hadWindow) this.loading.showCurrent();
    this.changed("reset");
  }

  setTool(tool) {
    this.tool = tool;
    this.chrome.renderTool(tool);
  }

  /** A drag tool of another module (annotations): see js/components/viewer/input.js. */
  registerTool(name, handler) {
    return this.input.registerTool(name, handler);
  }

  /** A layer drawn over the image after every redraw: see js/components/viewer/drawing.js. */
  addLayer(draw) {
    return this.canvas.addLayer(draw);
  }

  imageToScreen(point) {
    return this.canvas.imageToScreen(point);
  }

  screenToImage(point) {
    return this.canvas.screenToImage(point);
  }

  /** Stops everything (embedded viewer closed): requests, listeners, timers, object URLs. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.studyUid = null;
    if (this.toolbarFit) this.toolbarFit.destroy();
    clearInterval(this.cineTimer);
    this.loading.destroy();
    this.canvas.destroy();
    this.input.unbind();
    if (this.langListener) offLangChange(this.langListener);
    if (this.pagehideListener) window.removeEventListener("pagehide", this.pagehideListener);
    this.chrome.revokeThumbs();
  }
}

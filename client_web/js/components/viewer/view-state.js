// The viewer's view state as one serialisable object: exactly the ViewState of the MDT live
// protocol (docs/signaling.md, CONTRACTS §2), all keys always present:
//
//   {study_uid, series_uid, sop_instance_uid, frame (≥1),
//    window: {center, width (>0), function: "LINEAR"|"LINEAR_EXACT"|"SIGMOID"},
//    zoom (1 = fit, 0.05–40), pan: {x, y} (fractions of the viewport, −10..10),
//    rotation: 0|90|180|270, flip_h, flip_v, invert, cine: {playing, fps (1–60)}}
//
// Zoom is relative to "fit" and pan is a fraction of the viewport's width/height, so screens of
// different sizes show the same part of the image. Pure functions, no DOM.

export const ZOOM_MIN = 0.05;
export const ZOOM_MAX = 40;
export const PAN_MAX = 10;
export const FPS_MIN = 1;
export const FPS_MAX = 60;
export const DEFAULT_FPS = 10;
export const WINDOW_FUNCTIONS = ["LINEAR", "LINEAR_EXACT", "SIGMOID"];
export const ROTATIONS = [0, 90, 180, 270];

export function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

function finite(v, fallback) {
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** The viewer's own display state (what is not "which image"), at its reset values. */
export function initialDisplay() {
  return {
    window: null, // explicit {c, w, fn}; null = the file's default
    zoom: 1,
    pan: { x: 0, y: 0 },
    rotation: 0,
    flip_h: false,
    flip_v: false,
    invert: false,
    cine: { playing: false, fps: DEFAULT_FPS },
  };
}

/**
 * A ViewState checked and clamped to the protocol's ranges, or null when it names no image
 * (no study/series/instance uid). Unknown keys are dropped; missing display keys get defaults.
 */
export function normalizeViewState(vs) {
  if (!vs || typeof vs !== "object") return null;
  const uid = (v) => (typeof v === "string" && v.length > 0 && v.length <= 64 ? v : null);
  const study = uid(vs.study_uid);
  const series = uid(vs.series_uid);
  const sop = uid(vs.sop_instance_uid);
  if (!study || !series || !sop) return null;
  const w = vs.window || {};
  const fn = String(w.function || "LINEAR").toUpperCase();
  const rot = ((Math.round(finite(vs.rotation, 0) / 90) * 90) % 360 + 360) % 360;
  const pan = vs.pan || {};
  const cine = vs.cine || {};
  return {
    study_uid: study,
    series_uid: series,
    sop_instance_uid: sop,
    frame: Math.max(1, Math.round(finite(vs.frame, 1))),
    window: {
      center: finite(w.center, 40),
      width: Math.max(1e-3, finite(w.width, 400)),
      function: WINDOW_FUNCTIONS.includes(fn) ? fn : "LINEAR",
    },
    zoom: clamp(finite(vs.zoom, 1), ZOOM_MIN, ZOOM_MAX),
    pan: { x: clamp(finite(pan.x, 0), -PAN_MAX, PAN_MAX), y: clamp(finite(pan.y, 0), -PAN_MAX, PAN_MAX) },
    rotation: rot,
    flip_h: Boolean(vs.flip_h),
    flip_v: Boolean(vs.flip_v),
    invert: Boolean(vs.invert),
    cine: { playing: Boolean(cine.playing), fps: clamp(Math.round(finite(cine.fps, DEFAULT_FPS)), FPS_MIN, FPS_MAX) },
  };
}

const EPS = 1e-6;

/** Two ViewStates show the same thing (floats compared with a small tolerance). */
export function sameViewState(a, b) {
  if (!a || !b) return a === b;
  const near = (x, y) => Math.abs(x - y) <= EPS * Math.max(1, Math.abs(x), Math.abs(y));
  return a.study_uid === b.study_uid && a.series_uid === b.series_uid
    && a.sop_instance_uid === b.sop_instance_uid && a.frame === b.frame
    && near(a.window.center, b.window.center) && near(a.window.width, b.window.width)
    && a.window.function === b.window.function
    && near(a.zoom, b.zoom) && near(a.pan.x, b.pan.x) && near(a.pan.y, b.pan.y)
    && a.rotation === b.rotation && a.flip_h === b.flip_h && a.flip_v === b.flip_v
    && a.invert === b.invert && a.cine.playing === b.cine.playing && a.cine.fps === b.cine.fps;
}

// ---- windows ----------------------------------------------------------------------------------

export function fmtNum(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return String(Number.isInteger(v) ? v : Math.round(v * 10) / 10);
}

/** "40,400,LINEAR" (the server's X-Window header) → {c, w, fn}. */
export function parseWindow(text) {
  if (!text) return null;
  const [c, w, fn] = String(text).split(",").map((s) => s.trim());
  const cn = Number(c);
  const wn = Number(w);
  if (!Number.isFinite(cn) || !Number.isFinite(wn)) return null;
  return { c: cn, w: wn, fn: (fn || "LINEAR").toUpperCase().replace("-", "_") };
}

/** The `window=` query value in PS3.18's spelling: linear, linear-exact, sigmoid. */
export function windowParam(win) {
  const fn = (win.fn || "LINEAR").toLowerCase().replace("_", "-");
  return `${fmtNum(win.c)},${fmtNum(win.w)},${fn}`;
}

/** The cache key part of a window (null: the file's default). */
export function winKey(win) {
  return win ? `${fmtNum(win.c)},${fmtNum(win.w)},${win.fn}` : "default";
}

export function sameWindow(a, b) {
  if (!a || !b) return a === b;
  return a.c === b.c && a.w === b.w && (a.fn || "LINEAR") === (b.fn || "LINEAR");
}

/** ViewState window {center, width, function} to and from the viewer's {c, w, fn}. */
export function toWin(w) {
  return { c: w.center, w: w.width, fn: w.function };
}

export function fromWin(win) {
  return { center: win.c, width: win.w, function: win.fn || "LINEAR" };
}

// Loading: the study's metadata (QIDO-RS study, series, instances → the slice list), the
// rendered frame of the current slice at the current window (from the cache when it is there),
// the prefetch of its neighbours, and at most one request in flight while W/L is dragged.
// Every request goes through FrameLoader (js/components/viewer/loader.js): bounded cache,
// owners, cancellation — fast scrolling never queues stale slices.

import { t } from "../../lib/i18n.js";
import { TAG, apiFetch, apiJson, first, num, values } from "../../lib/api.js";
import { FrameLoader, isAbort } from "./loader.js";
import { parseWindow, winKey, windowParam } from "./view-state.js";

export const PREFETCH_RADIUS = 8;
const QUALITY = 90;
const DRAG_QUALITY = 75;
const MAX_RENDER = 1024; // longest side requested from the server
const DICOM_JSON = { Accept: "application/dicom+json, application/json" };

/** The slices of a series' instances (QIDO-RS JSON): one per frame, in the server's order. */
export function slicesOf(instances) {
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
  return slices;
}

export class ViewerLoading {
  constructor(viewer) {
    this.viewer = viewer;
    this.loader = new FrameLoader((url, init) => apiFetch(url, init));
    this.seq = 0;
    this.currentKey = null;
    this.wlBusy = false;
    this.wlPending = false;
    this.prefetchTimer = 0;
  }

  studyBase() {
    return `/dicomweb/studies/${encodeURIComponent(this.viewer.studyUid)}`;
  }

  /** {study, seriesList (by series number), presets}; throws the API error. */
  async loadStudy() {
    const uid = encodeURIComponent(this.viewer.studyUid);
    const [studies, series, presets] = await Promise.all([
      apiJson(`/dicomweb/studies?StudyInstanceUID=${uid}&includefield=all`, { headers: DICOM_JSON }),
      apiJson(`${this.studyBase()}/series?includefield=all`, { headers: DICOM_JSON }),
      apiJson("/api/presets").catch(() => []),
    ]);
    return {
      study: (Array.isArray(studies) && studies[0]) || null,
      presets: Array.isArray(presets) ? presets : [],
      seriesList: (Array.isArray(series) ? series : []).slice().sort(
        (a, b) => num(a, TAG.SeriesNumber, 1e9) - num(b, TAG.SeriesNumber, 1e9),
      ),
    };
  }

  /** The slices of one series; throws the API error. */
  async loadSlices(seriesUid) {
    this.loader.setPrefetch([]);
    const instances = await apiJson(
      `${this.studyBase()}/series/${encodeURIComponent(seriesUid)}/instances?includefield=all`,
      { headers: DICOM_JSON },
    );
    return slicesOf(instances);
  }

  /** The request for slice `index` at `win` (null: the file's default window). */
  job(index, win, quality) {
    const v = this.viewer;
    const s = v.slices[index];
    const scale = Math.min(1, MAX_RENDER / Math.max(s.rows, s.cols));
    const vw = Math.max(1, Math.round(s.cols * scale));
    const vh = Math.max(1, Math.round(s.rows * scale));
    const q = new URLSearchParams();
    if (win) q.set("window", windowParam(win));
    q.set("quality", String(quality));
    q.set("viewport", `${vw},${vh}`);
    const url = `${this.studyBase()}/series/${encodeURIComponent(v.seriesUid)}`
      + `/instances/${encodeURIComponent(s.sop)}/frames/${s.frame}/rendered?${q}`;
    return {
      key: `${v.seriesUid}|${s.sop}|${s.frame}|${winKey(win)}|${quality}|${vw}x${vh}`,
      url,
      accept: "image/jpeg",
      index,
    };
  }

  /** Shows the current slice at full quality, from cache when possible, then prefetches. */
  showCurrent() {
    const v = this.viewer;
    if (!v.slices.length) return;
    const index = v.index;
    const job = this.job(index, v.view.window, QUALITY);
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

  /** The neighbours of the current slice at the current window, nearest first. */
  schedulePrefetch() {
    clearTimeout(this.prefetchTimer);
    this.prefetchTimer = setTimeout(() => {
      const v = this.viewer;
      if (v.destroyed || (v.dragging && v.dragging.mode === "wl")) return;
      const jobs = [];
      for (let d = 1; d <= PREFETCH_RADIUS; d++) {
        for (const i of [v.index + d, v.index - d]) {
          if (i >= 0 && i < v.slices.length) jobs.push(this.job(i, v.view.window, QUALITY));
        }
      }
      this.loader.setPrefetch(jobs);
    }, 40);
  }

  stopPrefetch() {
    clearTimeout(this.prefetchTimer);
    this.loader.setPrefetch([]);
  }

  /** While dragging W/L: at most one request in flight, always for the newest window. */
  requestWindowed() {
    if (this.wlBusy) {
      this.wlPending = true;
      return;
    }
    const v = this.viewer;
    this.wlBusy = true;
    this.wlPending = false;
    const index = v.index;
    const win = { ...v.view.window };
    const job = this.job(index, win, DRAG_QUALITY);
    const seq = ++this.seq;
    this.loader.fetch(job, "wl")
      .then((entry) => this.present(entry, index, seq), (err) => this.fail(err, index))
      .finally(() => {
        this.loader.release(job.key, "wl");
        this.wlBusy = false;
        const stillDragging = v.dragging && v.dragging.mode === "wl";
        if (this.wlPending && stillDragging) this.requestWindowed();
        this.wlPending = false;
      });
  }

  async present(entry, index, seq) {
    const v = this.viewer;
    if (index !== v.index) return;
    if (v.drawn && seq < v.drawn.seq) return; // an older request finished late
    let bitmap;
    try {
      bitmap = await this.loader.bitmap(entry);
    } catch (err) {
      this.fail(err, index);
      return;
    }
    if (index !== v.index || (v.drawn && seq < v.drawn.seq)) return;
    const s = v.slices[index];
    // `shown`: what the canvas shows once drawn, for tests and for debugging ("12" and the
    // server's X-Window); the drawing module writes it onto the viewport after painting it, so
    // it never names an image the canvas does not show yet
    const shown = { shownSlice: String(index + 1), shownSop: s.sop, shownFrame: String(s.frame), shownWindow: entry.window || "" };
    v.drawn = { bitmap, rows: s.rows, cols: s.cols, index, seq, shown };
    v.shownWindow = parseWindow(entry.window) || v.shownWindow;
    v.chrome.status(null);
    v.chrome.renderOverlay();
    v.canvas.schedule();
    v.dispatchEvent(new CustomEvent("shown", { detail: { index, sop: s.sop, frame: s.frame } }));
  }

  fail(err, index) {
    const v = this.viewer;
    if (isAbort(err) || index !== v.index) return;
    if (err && err.status === 401) return; // api.js is already leaving for the sign-in page
    v.chrome.status(t("viewer.imageError", { message: (err && err.message) || t("error.network") }), true);
  }

  destroy() {
    this.stopPrefetch();
    if (this.currentKey) this.loader.release(this.currentKey, "current");
  }
}

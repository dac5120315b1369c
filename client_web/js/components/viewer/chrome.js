// The viewer's chrome: its markup (toolbar, series strip, viewport, slice rail), the text
// overlays (patient, series, slice, position, window, zoom), the status line, the window
// presets and the series strip with thumbnails. Reads the viewer's state; changes go back
// through the viewer's actions.

import { getLang, t } from "../../lib/i18n.js";
import { TAG, apiFetch, first, formatDate, num, personName } from "../../lib/api.js";
import { fmtNum } from "./view-state.js";
import "../../i18n/viewer.js";

/**
 * The viewer's markup (toolbar, series strip, viewport with its image and overlay canvases and
 * text overlays, slice rail); every page that shows a viewer inserts it (one copy).
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
        <canvas class="overlay" data-testid="viewport-overlay" aria-hidden="true"></canvas>
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

export class ViewerChrome {
  constructor(viewer) {
    this.viewer = viewer;
    this.slider = viewer.$("slice-slider");
    this.thumbUrls = [];
  }

  $(testid) {
    return this.viewer.$(testid);
  }

  status(text, isError = false) {
    const box = this.$("viewer-status");
    box.hidden = !text;
    box.textContent = text || "";
    box.classList.toggle("error", Boolean(isError));
  }

  renderHeader() {
    const v = this.viewer;
    const lang = getLang();
    const st = v.study;
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
    if (name && v.options.setTitle) document.title = `${name} — ${t("app.title")}`;
  }

  /** The slider's range for the loaded series. */
  renderSlider() {
    const n = this.viewer.slices.length;
    this.slider.max = String(Math.max(1, n));
    this.slider.value = String(this.viewer.index + 1);
    this.slider.disabled = n <= 1;
  }

  renderOverlay() {
    const v = this.viewer;
    const n = v.slices.length;
    this.slider.value = String(v.index + 1);
    this.$("slice-label").textContent = n ? t("viewer.slice", { i: v.index + 1, n }) : "";
    const s = v.slices[v.index];
    this.$("position-label").textContent = s && s.pos !== null && Number.isFinite(s.pos)
      ? t("viewer.position", { pos: s.pos.toFixed(1) }) : "";
    const win = v.view.window || v.shownWindow;
    this.$("wl-label").textContent = win ? t("viewer.wl", { w: fmtNum(win.w), c: fmtNum(win.c) }) : "";
    this.$("zoom-label").textContent = t("viewer.zoom", { pct: Math.round(v.view.zoom * 100) });
    const se = v.series;
    this.$("ov-series").textContent = se
      ? [first(se, TAG.Modality, ""), first(se, TAG.SeriesDescription, "")].filter(Boolean).join(" · ")
      : "";
    this.slider.setAttribute("aria-valuetext", this.$("slice-label").textContent);
    const vp = this.$("viewport");
    vp.dataset.rotation = String(v.view.rotation);
    vp.dataset.invert = String(v.view.invert);
    vp.dataset.cine = v.view.cine.playing ? "playing" : "stopped";
  }

  renderPresets() {
    const v = this.viewer;
    const box = this.$("presets");
    box.textContent = "";
    const lang = getLang();
    for (const p of v.presets) {
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-testid", `preset-${p.name}`);
      b.textContent = (lang === "zh" ? p.label_zh : p.label_en) || p.label_en || p.name;
      b.title = `W ${p.width} L ${p.center}`;
      const win = v.view.window;
      const active = win && win.c === Number(p.center) && win.w === Number(p.width);
      b.setAttribute("aria-pressed", String(Boolean(active)));
      b.addEventListener("click", () => v.applyPreset(p));
      box.append(b);
    }
  }

  renderTool(tool) {
    this.$("viewport").dataset.tool = tool;
    for (const b of this.viewer.root.querySelectorAll("[data-tool]")) {
      if (b.tagName === "BUTTON") b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    }
  }

  /** Marks the series being shown in the strip. */
  renderSeriesPressed() {
    const uid = this.viewer.series ? first(this.viewer.series, TAG.SeriesInstanceUID) : null;
    for (const el of this.viewer.root.querySelectorAll("[data-testid=series-thumb]")) {
      el.setAttribute("aria-pressed", String(el.dataset.seriesUid === uid));
    }
  }

  renderSeriesStrip() {
    const v = this.viewer;
    const strip = this.$("series-strip");
    for (const el of strip.querySelectorAll("[data-testid=series-thumb]")) el.remove();
    this.revokeThumbs();
    for (const se of v.seriesList) {
      const uid = first(se, TAG.SeriesInstanceUID);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "series-thumb";
      b.setAttribute("data-testid", "series-thumb");
      b.dataset.seriesUid = uid;
      b.setAttribute("aria-pressed", String(v.series === se));
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
        if (v.series !== se) v.selectSeries(se);
      });
      strip.append(b);
      this.loadThumb(uid, img);
    }
  }

  async loadThumb(seriesUid, img) {
    const v = this.viewer;
    try {
      const r = await apiFetch(
        `/dicomweb/studies/${encodeURIComponent(v.studyUid)}/series/${encodeURIComponent(seriesUid)}/thumbnail?viewport=128,128`,
        { headers: { Accept: "image/jpeg, image/png" } },
      );
      const url = URL.createObjectURL(await r.blob());
      this.thumbUrls.push(url);
      img.src = url;
    } catch {
      img.classList.add("missing"); // the black square stays; the label still identifies it
    }
  }

  revokeThumbs() {
    for (const url of this.thumbUrls) URL.revokeObjectURL(url);
    this.thumbUrls = [];
  }
}

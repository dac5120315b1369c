// The ECG viewer (docs/ui.md "ECG viewer"): the paper to true scale (paper.js), calipers
// (calipers.js), the device's measurements and statements and the pre-screening beside it. One
// component for ecg.html, the reading page (reading.html, an ECG study's reading request), the
// expert's call page and the MDT room.
//
//   root.innerHTML = ecgMarkup();
//   const ecg = mountEcgViewer(root, studyUid, { instance, patientHead });
//   await ecg.start();
//
// What it shows is one serialisable object, the MDT ViewState's `ecg` member (docs/signaling.md):
// `getViewState()` / `applyViewState(vs)` with {study_uid, series_uid, sop_instance_uid,
// gain (5|10|20 mm/mV), speed (25|50 mm/s), lead (one of the 12, or null: all)}; every change
// fires `viewchange` {source: "user" | "load" | "apply"}, as the image viewer does.

import { t } from "../../lib/i18n.js";
import { apiJson, first, personName } from "../../lib/api.js";
import { testIds } from "../../lib/dom.js";
import { applyI18n, getLang } from "../../lib/i18n.js";
import { loadEcg } from "./data.js";
import {
  DEFAULT_PX_PER_MM, GAINS, SPEEDS, calibrate, drawPaper, layoutMedian, layoutPaper, pxPerMm,
  resetCalibration,
} from "./paper.js";
import { Calipers } from "./calipers.js";
import "../../i18n/ecg.js";

export const ECG_CLASSES = ["1.2.840.10008.5.1.4.1.1.9.1.1", "1.2.840.10008.5.1.4.1.1.9.1.2",
  "1.2.840.10008.5.1.4.1.1.9.1.3"];

/** The 12 leads as the shared view spells them (server/realtime/messages.py `Lead`). */
export const TWELVE_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];

/** `name` in the 12-lead spelling ("AVR" -> "aVR"), or null for none or another lead. */
export function twelveLead(name) {
  const upper = String(name || "").toUpperCase();
  return TWELVE_LEADS.find((l) => l.toUpperCase() === upper) || null;
}

/** An ECG view state checked against the protocol's sets, or null when it names no ECG. */
export function normalizeEcgView(vs) {
  if (!vs || typeof vs !== "object") return null;
  const uid = (v) => (typeof v === "string" && /^[0-9]+(\.[0-9]+)*$/.test(v) && v.length <= 64 ? v : null);
  const study = uid(vs.study_uid);
  const series = uid(vs.series_uid);
  const sop = uid(vs.sop_instance_uid);
  if (!study || !series || !sop) return null;
  const gain = Number(vs.gain);
  const speed = Number(vs.speed);
  return {
    study_uid: study, series_uid: series, sop_instance_uid: sop,
    gain: GAINS.includes(gain) ? gain : 10,
    speed: SPEEDS.includes(speed) ? speed : 25,
    lead: twelveLead(vs.lead),
  };
}

/** Two ECG view states show the same (null equals only null). */
export function sameEcgView(a, b) {
  if (!a || !b) return !a && !b;
  return a.study_uid === b.study_uid && a.series_uid === b.series_uid
    && a.sop_instance_uid === b.sop_instance_uid && a.gain === b.gain && a.speed === b.speed
    && a.lead === b.lead;
}

export function ecgMarkup() {
  return `
    <main class="ecg" data-testid="ecg-view" hidden>
      <div class="ecg-tools" role="toolbar" data-i18n-aria-label="ecg.tools">
        <label><span data-i18n="ecg.record">Recording</span>
          <select data-testid="ecg-select"></select></label>
        <label><span data-i18n="ecg.gain">Gain</span>
          <select data-testid="ecg-gain">
            <option value="5">5 mm/mV</option><option value="10" selected>10 mm/mV</option><option value="20">20 mm/mV</option>
          </select></label>
        <label><span data-i18n="ecg.speed">Speed</span>
          <select data-testid="ecg-speed">
            <option value="25" selected>25 mm/s</option><option value="50">50 mm/s</option>
          </select></label>
        <label><span data-i18n="ecg.lead">Leads</span>
          <select data-testid="ecg-lead"><option value="" data-i18n="ecg.lead.all">All (3 × 4 + II)</option></select></label>
        <button type="button" data-testid="ecg-caliper-clear" data-i18n="ecg.caliper.clear">Clear caliper</button>
        <button type="button" data-testid="ecg-calibrate" data-i18n="ecg.calibrate">Calibrate screen</button>
        <button type="button" data-testid="ecg-print" data-i18n="ecg.print">Print</button>
      </div>
      <div class="msg" data-testid="ecg-status" role="status" aria-live="polite" hidden></div>
      <div class="ecg-body">
        <div class="ecg-papers">
          <div class="ecg-scale" data-testid="ecg-scale"></div>
          <div class="ecg-scroll"><canvas data-testid="ecg-paper" class="ecg-paper"
              data-i18n-aria-label="ecg.paper.aria" role="img"></canvas></div>
          <section data-testid="ecg-median-section" hidden>
            <h3 data-i18n="ecg.median">Median beats</h3>
            <div class="ecg-scroll"><canvas data-testid="ecg-median" class="ecg-paper" role="img"
                data-i18n-aria-label="ecg.median"></canvas></div>
          </section>
        </div>
        <aside class="ecg-side">
          <section class="ecg-screening" data-testid="ecg-screening"></section>
          <section>
            <h3 data-i18n="ecg.caliper">Caliper</h3>
            <p class="hint" data-i18n="ecg.caliper.hint">Drag on the tracing to measure.</p>
            <dl data-testid="ecg-caliper-readout" class="ecg-dl"></dl>
          </section>
          <section>
            <h3 data-i18n="ecg.measurements">Measurements</h3>
            <dl data-testid="ecg-measurements" class="ecg-dl"></dl>
          </section>
          <section>
            <h3 data-i18n="ecg.statements">Device statements</h3>
            <ul data-testid="ecg-statements" class="ecg-statements"></ul>
          </section>
          <section>
            <h3 data-i18n="ecg.recording">Recording</h3>
            <dl data-testid="ecg-details" class="ecg-dl"></dl>
          </section>
        </aside>
      </div>
    </main>
    <dialog data-testid="ecg-calibration" class="ecg-calibration">
      <form method="dialog">
        <h3 data-i18n="ecg.calibrate">Calibrate screen</h3>
        <p data-i18n="ecg.calibrate.explain">Measure the bar below with a ruler and enter its length.</p>
        <div class="ecg-bar" data-testid="ecg-calibration-bar"></div>
        <label><span data-i18n="ecg.calibrate.measured">Measured length (mm)</span>
          <input type="number" min="10" max="500" step="0.5" data-testid="ecg-calibration-mm"></label>
        <div class="msg error" data-testid="ecg-calibration-error" hidden data-i18n="ecg.calibrate.invalid"></div>
        <div class="buttons">
          <button type="button" class="primary" data-testid="ecg-calibration-save" data-i18n="ecg.calibrate.save">Save</button>
          <button type="button" data-testid="ecg-calibration-reset" data-i18n="ecg.calibrate.reset">Reset</button>
          <button type="submit" data-testid="ecg-calibration-close" data-i18n="ecg.close">Close</button>
        </div>
      </form>
    </dialog>
`;
}

/**
 * Mount the viewer in `root` (holding ecgMarkup()) for `studyUid`; `instance`: which ECG of the
 * study first; `onPatient(name, detail)`: the study's patient line (the page's top bar).
 */
export function mountEcgViewer(root, studyUid, { instance = null, onPatient = null } = {}) {
  const $ = testIds(root);
  const DICOM_JSON = { Accept: "application/dicom+json" };

  const state = {
    study: null, instances: [], current: null, ecg: null, layout: null, medianLayout: null,
    speed: 25, gain: 10, single: "", reading: null, paint: null, timing: {},
  };
  let calipers = null;
  const events = new EventTarget();
  let wanted = null; // a view state to show once its instance is loaded (applyViewState)
  let loading = null; // the instance being loaded

  function changed(source) {
    events.dispatchEvent(new CustomEvent("viewchange", { detail: { source } }));
  }

  function base(inst) {
    return `/dicomweb/studies/${encodeURIComponent(state.study)}/series/`
      + `${encodeURIComponent(inst.series)}/instances/${encodeURIComponent(inst.sop)}`;
  }

  function status(text, error = false) {
    const box = $("ecg-status");
    box.hidden = !text;
    box.textContent = text || "";
    box.classList.toggle("error", error);
  }

  function fmt(value, digits = 0) {
    return value === null || value === undefined || Number.isNaN(value) ? "—"
      : Number(value).toFixed(digits);
  }

  function dl(box, rows) {
    box.textContent = "";
    for (const [key, value, testid] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = t(key);
      const dd = document.createElement("dd");
      dd.textContent = value;
      if (testid) dd.dataset.testid = testid;
      box.append(dt, dd);
    }
  }

  function renderSide() {
    const ecg = state.ecg;
    if (!ecg) return;
    const m = ecg.summary.measurements || {};
    const s = ecg.screening || {};
    const axis = [m.p_axis, m.qrs_axis, m.t_axis].map((v) => fmt(v)).join(" / ");
    dl($("ecg-measurements"), [
      ["ecg.m.hr", s.heart_rate ? `${fmt(s.heart_rate)} /min` : "—", "ecg-hr"],
      ["ecg.m.device_hr", m.hr ? `${fmt(m.hr)} /min` : "—"],
      ["ecg.m.pr", m.pr_ms ? `${fmt(m.pr_ms)} ms` : "—", "ecg-pr"],
      ["ecg.m.qrs", m.qrs_ms ? `${fmt(m.qrs_ms)} ms` : "—", "ecg-qrs"],
      ["ecg.m.qt", m.qt_ms ? `${fmt(m.qt_ms)} ms` : "—", "ecg-qt"],
      ["ecg.m.qtc", m.qtc_ms ? `${fmt(m.qtc_ms)} ms` : "—", "ecg-qtc"],
      ["ecg.m.axis", `${axis} °`, "ecg-axis"],
    ]);
    const list = $("ecg-statements");
    list.textContent = "";
    for (const text of ecg.summary.statements || []) {
      const li = document.createElement("li");
      li.textContent = text;
      list.append(li);
    }
    if (!list.children.length) {
      const li = document.createElement("li");
      li.textContent = t("ecg.statements.none");
      list.append(li);
    }
    const sum = ecg.summary;
    dl($("ecg-details"), [
      ["ecg.d.iod", sum.iod || "ECG"],
      ["ecg.d.acquired", formatDateTime(sum.acquired || "")],
      ["ecg.d.device", sum.device || "—"],
      ["ecg.d.rate", `${fmt(ecg.rhythm.rate)} Hz`],
      ["ecg.d.duration", `${fmt(ecg.rhythm.duration, 1)} s`],
      ["ecg.d.bytes", state.timing.wireBytes ? `${fmt(state.timing.wireBytes / 1024, 1)} KB` : "—"],
    ]);
    const box = $("ecg-screening");
    box.dataset.critical = String(Boolean(s.suspected_critical));
    box.textContent = "";
    const h = document.createElement("h3");
    h.textContent = t("ecg.screening");
    const flag = document.createElement("p");
    flag.className = "flag";
    flag.dataset.testid = "ecg-screening-flag";
    flag.textContent = t(s.suspected_critical ? "ecg.screening.critical" : "ecg.screening.none");
    const reasons = document.createElement("ul");
    reasons.dataset.testid = "ecg-screening-reasons";
    for (const r of s.reasons || []) {
      const li = document.createElement("li");
      li.dataset.code = r.code;
      li.textContent = t(`ecg.reason.${r.code}`, {
        ...r,
        leads: (r.leads || []).join(", "),
        statements: (r.statements || []).join("; "),
      });
      reasons.append(li);
    }
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = t("ecg.screening.note");
    box.append(h, flag, reasons, note);
    renderCaliper();
  }

  function formatDateTime(v) {
    const d = String(v).replace(/\D/g, "");
    if (d.length < 8) return v || "—";
    const time = d.length >= 12 ? ` ${d.slice(8, 10)}:${d.slice(10, 12)}` : "";
    return `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}${time}`;
  }

  function renderCaliper() {
    const r = state.reading;
    dl($("ecg-caliper-readout"), [
      ["ecg.caliper.interval", r ? `${fmt(r.ms)} ms` : "—", "ecg-caliper-ms"],
      ["ecg.caliper.amplitude", r ? `${fmt(r.mv, 2)} mV` : "—", "ecg-caliper-mv"],
      ["ecg.caliper.rate", r && r.bpm && r.ms >= 200 ? `${fmt(r.bpm)} /min` : "—", "ecg-caliper-bpm"],
    ]);
  }

  function renderScale() {
    const px = pxPerMm();
    const calibrated = px !== DEFAULT_PX_PER_MM;
    $("ecg-scale").textContent = t("ecg.scale", {
      speed: state.layout ? state.layout.speed : state.speed,
      gain: state.layout ? state.layout.gain : state.gain,
      px: px.toFixed(2),
      calibrated: t(calibrated ? "ecg.scale.calibrated" : "ecg.scale.uncalibrated"),
    });
  }

  function draw() {
    const ecg = state.ecg;
    if (!ecg) return;
    const px = pxPerMm();
    state.layout = layoutPaper({
      speed: state.speed, gain: state.gain, duration: ecg.rhythm.duration,
      single: state.single || null,
    });
    state.paint = drawPaper($("ecg-paper"), state.layout, ecg.rhythm, { px });
    if (calipers) calipers.draw(state.paint.k);
    const section = $("ecg-median-section");
    section.hidden = !ecg.median;
    if (ecg.median) {
      state.medianLayout = layoutMedian({ speed: state.speed, gain: state.gain,
        duration: ecg.median.duration });
      drawPaper($("ecg-median"), state.medianLayout, ecg.median, { px });
    }
    renderScale();
  }

  async function pickInstances() {
    const list = await apiJson(
      `/dicomweb/studies/${encodeURIComponent(state.study)}/instances?includefield=all`,
      { headers: DICOM_JSON });
    const out = [];
    for (const inst of Array.isArray(list) ? list : []) {
      if (!ECG_CLASSES.includes(first(inst, "00080016"))) continue;
      out.push({ sop: first(inst, "00080018"), series: first(inst, "0020000E"),
        number: first(inst, "00200013", "") });
    }
    const wanted = instance;
    out.sort((a, b) => (a.sop === wanted ? -1 : b.sop === wanted ? 1 : 0));
    return out;
  }

  async function showInstance(inst, source = "user") {
    loading = inst;
    state.current = inst;
    $("ecg-select").value = String(state.instances.indexOf(inst));
    status(t("ecg.loading"));
    const started = performance.now();
    state.timing = { requested: started };
    const ecg = await loadEcg(base(inst));
    state.timing.loaded = performance.now();
    const entry = performance.getEntriesByType("resource").filter((e) => e.name.endsWith(`${inst.sop}/ecg`)).pop();
    state.timing.wireBytes = entry ? entry.transferSize || entry.encodedBodySize : null;
    state.ecg = ecg;
    state.reading = null;
    if (calipers) calipers.clear();
    const leadSelect = $("ecg-lead");
    leadSelect.length = 1;
    for (const ch of ecg.rhythm.channels) {
      const opt = document.createElement("option");
      opt.value = ch.lead;
      opt.textContent = t("ecg.lead.one", { lead: ch.lead });
      leadSelect.append(opt);
    }
    leadSelect.value = "";
    state.single = "";
    draw();
    state.timing.drawn = performance.now();
    renderSide();
    status("");
    $("ecg-view").dataset.ready = "true";
    loading = null;
    if (wanted && wanted.sop_instance_uid === inst.sop) {
      setView(wanted);
    } else {
      changed(source);
      if (wanted) applyViewState(wanted); // another instance was asked for meanwhile
    }
  }

  /** The view state of what is shown (null before an ECG is drawn). */
  function getViewState() {
    const inst = state.current;
    if (!inst || !state.ecg || loading) return null;
    return { study_uid: state.study, series_uid: inst.series, sop_instance_uid: inst.sop,
      gain: state.gain, speed: state.speed, lead: twelveLead(state.single) };
  }

  /**
   * Show `vs` (an ECG view state) of this study: its instance (loaded first if need be), gain,
   * speed and lead zoom. The newest call wins. False for another study's ECG or none (the page
   * mounts a viewer for that study) and for an instance this study does not list.
   */
  function applyViewState(vs) {
    const s = normalizeEcgView(vs);
    if (!s || s.study_uid !== state.study) return false;
    wanted = s;
    if (!state.instances.length) return true; // start() shows it once the list is in
    const inst = state.instances.find((i) => i.sop === s.sop_instance_uid && i.series === s.series_uid);
    if (!inst) return false;
    if (loading) return true; // showInstance applies `wanted` when the one loading is drawn
    if (state.current !== inst || !state.ecg) {
      showInstance(inst, "apply").catch(fail);
      return true;
    }
    setView(s);
    return true;
  }

  function setView(s) {
    wanted = null;
    state.gain = s.gain;
    state.speed = s.speed;
    const channel = s.lead && state.ecg.rhythm.channels.find((c) => twelveLead(c.lead) === s.lead);
    state.single = channel ? channel.lead : "";
    $("ecg-gain").value = String(state.gain);
    $("ecg-speed").value = String(state.speed);
    $("ecg-lead").value = state.single;
    if (calipers) calipers.clear();
    draw();
    changed("apply");
  }

  async function start() {
    applyI18n(root); // the markup may arrive after the shell translated the page
    state.study = studyUid;
    $("ecg-view").hidden = false;
    if (!state.study) {
      status(t("ecg.noStudy"), true);
      return;
    }
    const [studies, instances] = await Promise.all([
      apiJson(`/dicomweb/studies?StudyInstanceUID=${encodeURIComponent(state.study)}`,
        { headers: DICOM_JSON }),
      pickInstances(),
    ]);
    const study = Array.isArray(studies) ? studies[0] : null;
    if (study) {
      if (onPatient) {
        onPatient(personName(study, "00100010", getLang()) || "—",
          [first(study, "00100020", ""), first(study, "00081030", "")].filter(Boolean).join(" · "));
      }
    }
    state.instances = instances;
    const select = $("ecg-select");
    select.textContent = "";
    instances.forEach((inst, i) => {
      const opt = document.createElement("option");
      opt.value = String(i);
      opt.textContent = `#${inst.number || i + 1}`;
      select.append(opt);
    });
    select.disabled = instances.length < 2;
    if (!instances.length) {
      status(t("ecg.noEcg"), true);
      return;
    }
    const asked = wanted && instances.find((i) => i.sop === wanted.sop_instance_uid);
    await showInstance(asked || instances[0], "load");
  }

  function bind() {
    const redraw = () => {
      calipers.clear();
      draw();
      changed("user");
    };
    $("ecg-gain").addEventListener("change", (ev) => { state.gain = Number(ev.target.value); redraw(); });
    $("ecg-speed").addEventListener("change", (ev) => { state.speed = Number(ev.target.value); redraw(); });
    $("ecg-lead").addEventListener("change", (ev) => { state.single = ev.target.value; redraw(); });
    $("ecg-select").addEventListener("change", (ev) => {
      showInstance(state.instances[Number(ev.target.value)]).catch(fail);
    });
    $("ecg-caliper-clear").addEventListener("click", () => calipers.clear());
    $("ecg-print").addEventListener("click", () => window.print());
    calipers = new Calipers($("ecg-paper"),
      () => ({ speed: state.layout.speed, gain: state.layout.gain, px: pxPerMm() }),
      (reading) => {
        state.reading = reading;
        renderCaliper();
        if (state.ecg && state.layout) {
          state.paint = drawPaper($("ecg-paper"), state.layout, state.ecg.rhythm, { px: pxPerMm() });
          calipers.draw(state.paint.k);
        }
      });
    // Calibration: a bar of 100 mm at the current setting, measured with a ruler.
    const dialog = $("ecg-calibration");
    const BAR_MM = 100;
    $("ecg-calibrate").addEventListener("click", () => {
      $("ecg-calibration-bar").style.width = `${BAR_MM * pxPerMm()}px`;
      $("ecg-calibration-mm").value = "";
      $("ecg-calibration-error").hidden = true;
      dialog.showModal();
    });
    $("ecg-calibration-save").addEventListener("click", () => {
      const measured = Number($("ecg-calibration-mm").value);
      try {
        if (!(measured >= 10 && measured <= 500)) throw new RangeError("calibration");
        calibrate(BAR_MM, measured);
      } catch {
        $("ecg-calibration-error").hidden = false;
        return;
      }
      dialog.close();
      draw();
    });
    $("ecg-calibration-reset").addEventListener("click", () => {
      resetCalibration();
      dialog.close();
      draw();
    });
    // Print at true scale: the paper's CSS size in millimetres while printing.
    window.addEventListener("beforeprint", beforePrint);
    window.addEventListener("afterprint", draw);
  }

  function beforePrint() {
    for (const id of ["ecg-paper", "ecg-median"]) {
      const c = $(id);
      if (c.dataset.widthMm) {
        c.style.width = `${c.dataset.widthMm}mm`;
        c.style.height = `${c.dataset.heightMm}mm`;
      }
    }
  }

  function fail(err) {
    loading = null;
    status(t("ecg.error", { message: err.message }), true);
  }

  // For tests and the console: the data as decoded and the layout's scale.
  const api = {
    state,
    studyUid,
    getViewState,
    applyViewState,
    addEventListener: (...a) => events.addEventListener(...a),
    removeEventListener: (...a) => events.removeEventListener(...a),
    /** Unmounted (a page that mounts another): the window's print hooks go with it. */
    destroy: () => {
      window.removeEventListener("beforeprint", beforePrint);
      window.removeEventListener("afterprint", draw);
    },
    /** Load and draw; an error is shown in the viewer's status line. */
    start: () => { bind(); return start().catch(fail); },
    redraw: () => { draw(); renderSide(); },
    renderText: () => { renderSide(); renderScale(); },
    pxPerMm,
    /** Values (channel units, pydicom's waveform_array) of group g (0 rhythm), channel c. */
    values: (g, c) => Array.from(state.ecg.groups[g].channels[c].values),
    scale: () => {
      const rect = $("ecg-paper").getBoundingClientRect();
      const px = pxPerMm();
      return {
        pxPerMm: px,
        cssWidth: rect.width,
        widthMm: state.layout.widthMm,
        pxPerSample: (state.layout.speed * px) / state.ecg.rhythm.rate,
        pxPerMv: state.layout.gain * px,
        mmPerSample: state.layout.speed / state.ecg.rhythm.rate,
        speed: state.layout.speed,
        gain: state.layout.gain,
      };
    },
    caliper: (a, b) => calipers.set(a, b),
  };
  return api;
}

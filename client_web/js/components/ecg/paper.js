// ECG paper: the standard layout (3 × 4 leads, 2.5 s each, plus a 10 s lead II rhythm strip),
// drawn to true scale: 1 mm / 5 mm grid, `speed` mm/s, `gain` mm/mV, on a screen whose CSS
// pixels per millimetre are calibrated (stored locally; 96 / 25.4 until calibrated).

export const GRID = [
  ["I", "aVR", "V1", "V4"],
  ["II", "aVL", "V2", "V5"],
  ["III", "aVF", "V3", "V6"],
];
export const RHYTHM_LEAD = "II";
export const SPEEDS = [25, 50];
export const GAINS = [5, 10, 20];
const CALIBRATION_KEY = "hz.ecg.pxPerMm";
export const DEFAULT_PX_PER_MM = 96 / 25.4;
const MARGIN_MM = 10; // left: the 1 mV calibration pulse and the lead names
const TOP_MM = 5;

/** CSS pixels per millimetre on this screen (the calibration setting). */
export function pxPerMm() {
  const stored = Number(localStorage.getItem(CALIBRATION_KEY));
  return Number.isFinite(stored) && stored >= 1 && stored <= 40 ? stored : DEFAULT_PX_PER_MM;
}

/** Calibrate from a bar drawn `drawnMm` long that measured `measuredMm` with a ruler. */
export function calibrate(drawnMm, measuredMm) {
  const value = (pxPerMm() * drawnMm) / measuredMm;
  if (!(Number.isFinite(value) && value >= 1 && value <= 40)) throw new RangeError("calibration");
  localStorage.setItem(CALIBRATION_KEY, String(value));
  return value;
}

export function resetCalibration() {
  localStorage.removeItem(CALIBRATION_KEY);
  return DEFAULT_PX_PER_MM;
}

/** Row pitch in mm: room for ±1.25 mV at the gain (25 mm at 10 mm/mV). */
function rowPitch(gain) {
  return Math.max(15, 2.5 * gain);
}

/**
 * Where each lead goes, in millimetres of paper. `single`: one lead for its whole duration
 * (zoomed ×`zoom`), else the 3 × 4 grid and the rhythm strip (each cell 2.5 s; the strip the
 * full recording, 10 s of a resting ECG).
 * Returns {widthMm, heightMm, speed, gain, rows: [{baselineMm, cells: [{lead, t0, t1, x0}]}]}.
 */
export function layoutPaper({ speed = 25, gain = 10, duration = 10, single = null, zoom = 2 }) {
  if (single) {
    const s = speed * zoom;
    const g = gain * zoom;
    const pitch = rowPitch(g) + 10;
    return {
      widthMm: MARGIN_MM + duration * s + 5, heightMm: TOP_MM + pitch, speed: s, gain: g,
      rows: [{ baselineMm: TOP_MM + pitch / 2, cells: [{ lead: single, t0: 0, t1: duration, x0: MARGIN_MM }] }],
    };
  }
  const column = Math.min(2.5, duration / 4);
  const pitch = rowPitch(gain);
  const rows = GRID.map((leads, r) => ({
    baselineMm: TOP_MM + pitch * (r + 0.5),
    cells: leads.map((lead, c) => ({
      lead, t0: c * column, t1: (c + 1) * column, x0: MARGIN_MM + c * column * speed,
    })),
  }));
  rows.push({
    baselineMm: TOP_MM + pitch * 3.5,
    cells: [{ lead: RHYTHM_LEAD, t0: 0, t1: duration, x0: MARGIN_MM, rhythm: true }],
  });
  const width = MARGIN_MM + Math.max(4 * column, duration) * speed + 5;
  return { widthMm: width, heightMm: TOP_MM + pitch * 4 + 2, speed, gain, rows };
}

/** Paper millimetres → a point's time (s) and voltage (mV) in the cell it falls in. */
export function locate(layout, xMm, yMm) {
  let best = null;
  for (const row of layout.rows) {
    for (const cell of row.cells) {
      const x1 = cell.x0 + (cell.t1 - cell.t0) * layout.speed;
      if (xMm < cell.x0 || xMm > x1) continue;
      const d = Math.abs(yMm - row.baselineMm);
      if (!best || d < best.d) best = { d, row, cell };
    }
  }
  if (!best) return null;
  return {
    lead: best.cell.lead,
    t: best.cell.t0 + (xMm - best.cell.x0) / layout.speed,
    mv: (best.row.baselineMm - yMm) / layout.gain,
  };
}

/** Draw the grid, the calibration pulses and the traces of `group` onto `canvas`. */
export function drawPaper(canvas, layout, group, { px = pxPerMm(), labels = true } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = layout.widthMm * px;
  const cssH = layout.heightMm * px;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.dataset.widthMm = String(layout.widthMm);
  canvas.dataset.heightMm = String(layout.heightMm);
  const ctx = canvas.getContext("2d");
  const k = px * dpr; // device pixels per mm
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#fffdfb";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  // Grid: hairlines on device pixels (crisp), every 1 mm light, every 5 mm dark.
  const line = (x0, y0, x1, y1) => { ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); };
  for (const major of [false, true]) {
    ctx.beginPath();
    ctx.strokeStyle = major ? "#e79a9a" : "#f6d3d3";
    ctx.lineWidth = major ? Math.max(1, Math.round(dpr)) : 1;
    for (let mm = 0; mm <= layout.widthMm; mm++) {
      if ((mm % 5 === 0) !== major) continue;
      const x = Math.round(mm * k) + 0.5;
      line(x, 0, x, canvas.height);
    }
    for (let mm = 0; mm <= layout.heightMm; mm++) {
      if ((mm % 5 === 0) !== major) continue;
      const y = Math.round(mm * k) + 0.5;
      line(0, y, canvas.width, y);
    }
    ctx.stroke();
  }
  ctx.strokeStyle = "#111";
  ctx.fillStyle = "#111";
  ctx.lineWidth = Math.max(1, 0.3 * k);
  ctx.lineJoin = "round";
  ctx.font = `${Math.round(3 * k)}px sans-serif`;
  for (const row of layout.rows) {
    const y0 = row.baselineMm * k;
    // 1 mV calibration pulse, 0.2 s wide.
    ctx.beginPath();
    const p0 = 2 * k;
    const pw = 0.2 * layout.speed * k;
    ctx.moveTo(0.5 * k, y0);
    ctx.lineTo(p0, y0);
    ctx.lineTo(p0, y0 - layout.gain * k);
    ctx.lineTo(p0 + pw, y0 - layout.gain * k);
    ctx.lineTo(p0 + pw, y0);
    ctx.lineTo(Math.min(9.5, 2 + 0.2 * layout.speed + 1) * k, y0);
    ctx.stroke();
    for (const cell of row.cells) {
      const ch = group.lead(cell.lead);
      if (labels) ctx.fillText(cell.lead, (cell.x0 + 1) * k, y0 - 0.45 * rowHeight(layout) * k);
      if (!ch) continue;
      const fs = group.rate;
      const i0 = Math.max(0, Math.round(cell.t0 * fs));
      const i1 = Math.min(ch.mv.length - 1, Math.round(cell.t1 * fs));
      const mmPerSample = layout.speed / fs;
      ctx.beginPath();
      for (let i = i0; i <= i1; i++) {
        const x = (cell.x0 + (i - i0) * mmPerSample) * k;
        const y = y0 - ch.mv[i] * layout.gain * k;
        if (i === i0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      }
      ctx.stroke();
      if (cell.x0 > 10.5 && !cell.rhythm) {
        // the lead change mark between cells
        ctx.beginPath();
        ctx.moveTo(cell.x0 * k, y0 - 2 * k);
        ctx.lineTo(cell.x0 * k, y0 + 2 * k);
        ctx.stroke();
      }
    }
  }
  return { px, dpr, k };
}

function rowHeight(layout) {
  return layout.rows.length > 1 ? layout.rows[1].baselineMm - layout.rows[0].baselineMm : 20;
}

/** Median beats: 3 × 4 cells of one beat each, same speed and gain. */
export function layoutMedian({ speed = 25, gain = 10, duration = 1.2 }) {
  const pitch = rowPitch(gain);
  const rows = GRID.map((leads, r) => ({
    baselineMm: TOP_MM + pitch * (r + 0.5),
    cells: leads.map((lead, c) => ({
      lead, t0: 0, t1: duration, x0: MARGIN_MM + c * (duration * speed + 5),
    })),
  }));
  return {
    widthMm: MARGIN_MM + 4 * (duration * speed + 5), heightMm: TOP_MM + pitch * 3 + 2,
    speed, gain, rows,
  };
}

// Calipers on ECG paper: two points in paper millimetres → interval (ms), amplitude (mV) and the
// rate that interval would be as an RR interval (/min).

/** {ms, mv, bpm} between paper points a and b ({x, y} in mm) at `speed` mm/s, `gain` mm/mV. */
export function caliperReading(a, b, { speed, gain }) {
  const ms = (Math.abs(b.x - a.x) / speed) * 1000;
  const mv = (a.y - b.y) / gain; // up the paper is positive
  return { ms, mv, bpm: ms > 0 ? 60000 / ms : null };
}

/** Mouse/touch calipers on `canvas`: drag to measure; `onChange(reading|null, a, b)`. */
export class Calipers {
  constructor(canvas, getScale, onChange) {
    this.canvas = canvas;
    this.getScale = getScale; // () => {speed, gain, px}
    this.onChange = onChange;
    this.a = null;
    this.b = null;
    canvas.addEventListener("pointerdown", (ev) => {
      canvas.setPointerCapture(ev.pointerId);
      this.a = this.point(ev);
      this.b = this.a;
      this.update();
    });
    canvas.addEventListener("pointermove", (ev) => {
      if (!this.a || !canvas.hasPointerCapture(ev.pointerId)) return;
      this.b = this.point(ev);
      this.update();
    });
    canvas.addEventListener("pointerup", (ev) => {
      if (canvas.hasPointerCapture(ev.pointerId)) canvas.releasePointerCapture(ev.pointerId);
    });
  }

  point(ev) {
    const rect = this.canvas.getBoundingClientRect();
    const { px } = this.getScale();
    return { x: (ev.clientX - rect.left) / px, y: (ev.clientY - rect.top) / px };
  }

  /** Set both points (paper mm) programmatically (keyboard, tests). */
  set(a, b) {
    this.a = a;
    this.b = b;
    this.update();
  }

  clear() {
    this.a = this.b = null;
    this.update();
  }

  update() {
    const reading = this.a && this.b ? caliperReading(this.a, this.b, this.getScale()) : null;
    this.onChange(reading, this.a, this.b);
  }

  /** Draw the caliper over the paper (after drawPaper). */
  draw(k) {
    if (!this.a || !this.b) return;
    const ctx = this.canvas.getContext("2d");
    ctx.save();
    ctx.strokeStyle = "#1565c0";
    ctx.lineWidth = Math.max(1, 0.25 * k);
    ctx.setLineDash([1.2 * k, 0.8 * k]);
    ctx.beginPath();
    for (const p of [this.a, this.b]) {
      ctx.moveTo(p.x * k, (p.y - 8) * k);
      ctx.lineTo(p.x * k, (p.y + 8) * k);
    }
    ctx.moveTo(this.a.x * k, this.a.y * k);
    ctx.lineTo(this.b.x * k, this.a.y * k);
    ctx.moveTo(this.b.x * k, this.a.y * k);
    ctx.lineTo(this.b.x * k, this.b.y * k);
    ctx.stroke();
    ctx.restore();
  }
}

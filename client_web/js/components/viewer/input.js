// Input: the toolbar and slice rail, the mouse wheel, the keyboard, and pointer drags (scroll,
// window/level, pan, two-finger pinch) on the viewport. Every change goes through the viewer's
// actions (setIndex, setWindow, setZoom, panBy, …), which mark it as the user's.
//
// Other tools (annotations) register with `viewer.registerTool(name, handler)`; while that tool
// is selected, primary-button drags go to `handler.down/move/up(event, point)` with
// point = {screen: [x, y] CSS px in the viewport, image: [col, row] or null}. Middle/right drags
// still pan, the wheel still scrolls.

import { clamp } from "./view-state.js";

export const ZOOM_STEP = 1.25;

export class ViewerInput {
  constructor(viewer) {
    this.viewer = viewer;
    this.viewport = viewer.viewport;
    this.pointers = new Map();
    this.wheelAcc = 0;
    this.tools = new Map(); // name -> handler (registerTool)
    this.toolDrag = null; // the registered tool's pointer id while it drags
  }

  bind() {
    const v = this.viewer;
    // delegation: tool buttons other modules add to the toolbar work the same way
    v.$("toolbar").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-tool]");
      if (b) v.setTool(b.dataset.tool);
    });
    v.$("zoom-in").addEventListener("click", () => v.setZoom(v.view.zoom * ZOOM_STEP));
    v.$("zoom-out").addEventListener("click", () => v.setZoom(v.view.zoom / ZOOM_STEP));
    v.$("reset").addEventListener("click", () => v.reset());
    v.$("slice-prev").addEventListener("click", () => v.setIndex(v.index - 1));
    v.$("slice-next").addEventListener("click", () => v.setIndex(v.index + 1));
    const slider = v.$("slice-slider");
    slider.addEventListener("input", () => v.setIndex(Number(slider.value) - 1));

    const vp = this.viewport;
    vp.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    vp.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    vp.addEventListener("pointermove", (e) => this.onPointerMove(e));
    vp.addEventListener("pointerup", (e) => this.onPointerUp(e));
    vp.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    vp.addEventListener("contextmenu", (e) => e.preventDefault());
    vp.addEventListener("auxclick", (e) => e.preventDefault());
    this.keyListener = (e) => this.onKey(e);
    this.keyTarget = v.options.globalKeys ? document : v.root;
    this.keyTarget.addEventListener("keydown", this.keyListener);
  }

  unbind() {
    if (this.keyListener) this.keyTarget.removeEventListener("keydown", this.keyListener);
  }

  registerTool(name, handler) {
    this.tools.set(name, handler);
    return () => this.tools.delete(name);
  }

  /** Relative to the viewport: [x, y] from the top-left and from the centre, CSS px. */
  at(e) {
    const r = this.viewport.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    return { screen: [x, y], centred: [x - r.width / 2, y - r.height / 2] };
  }

  point(e) {
    const { screen } = this.at(e);
    return { screen, image: this.viewer.canvas.screenToImage(screen) };
  }

  onWheel(e) {
    const v = this.viewer;
    e.preventDefault();
    let delta = e.deltaY;
    if (e.deltaMode === 1) delta *= 40; // lines
    else if (e.deltaMode === 2) delta *= this.viewport.clientHeight; // pages
    if (e.ctrlKey) {
      const [cx, cy] = this.at(e).centred;
      v.setZoom(v.view.zoom * Math.exp(-delta * 0.0025), cx, cy);
      return;
    }
    // One mouse notch (~100 px) = one slice; small trackpad deltas accumulate.
    this.wheelAcc += delta;
    if (Math.abs(this.wheelAcc) < 40) return;
    const steps = Math.sign(this.wheelAcc) * Math.max(1, Math.round(Math.abs(this.wheelAcc) / 120));
    this.wheelAcc = 0;
    v.setIndex(v.index + steps);
  }

  onKey(e) {
    const v = this.viewer;
    const target = e.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    if (e.altKey || e.metaKey) return;
    const n = v.slices.length;
    const page = Math.max(1, Math.round(n / 10));
    let handled = true;
    switch (e.key) {
      case "ArrowUp": v.setIndex(v.index - 1); break;
      case "ArrowDown": v.setIndex(v.index + 1); break;
      case "PageUp": v.setIndex(v.index - page); break;
      case "PageDown": v.setIndex(v.index + page); break;
      case "Home": v.setIndex(0); break;
      case "End": v.setIndex(n - 1); break;
      case "+": case "=": v.setZoom(v.view.zoom * ZOOM_STEP); break;
      case "-": case "_": v.setZoom(v.view.zoom / ZOOM_STEP); break;
      case "r": case "R":
        if (e.ctrlKey) handled = false; // leave Ctrl+R (reload) alone
        else v.reset();
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  onPointerDown(e) {
    const v = this.viewer;
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
      v.dragging = {
        mode: "pinch",
        dist: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        mid: [(a.x + b.x) / 2, (a.y + b.y) / 2],
      };
      return;
    }
    if (this.pointers.size > 2) return;
    let mode = v.tool;
    if (e.pointerType === "mouse" && (e.button === 1 || e.button === 2)) mode = "pan";
    else if (e.pointerType === "mouse" && e.button !== 0) return;
    const tool = this.tools.get(mode);
    if (tool) {
      this.toolDrag = e.pointerId;
      v.dragging = { mode: "tool" };
      if (tool.down) tool.down(e, this.point(e));
      return;
    }
    v.dragging = { mode, x: e.clientX, y: e.clientY, acc: 0 };
    if (mode === "wl") {
      const base = v.baseWindow();
      v.dragging.base = { ...base };
      v.dragging.k = clamp(base.w / 250, 0.5, 8);
    }
  }

  onPointerMove(e) {
    const v = this.viewer;
    const p = this.pointers.get(e.pointerId);
    if (!p || !v.dragging) return;
    p.x = e.clientX;
    p.y = e.clientY;
    const d = v.dragging;
    if (d.mode === "tool") {
      const tool = this.tools.get(v.tool);
      if (tool && tool.move && e.pointerId === this.toolDrag) tool.move(e, this.point(e));
      return;
    }
    if (d.mode === "pinch") {
      if (this.pointers.size < 2) return;
      const [a, b] = [...this.pointers.values()];
      const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const mid = [(a.x + b.x) / 2, (a.y + b.y) / 2];
      v.panBy(mid[0] - d.mid[0], mid[1] - d.mid[1]);
      const r = this.viewport.getBoundingClientRect();
      v.setZoom(v.view.zoom * (dist / d.dist), mid[0] - r.left - r.width / 2, mid[1] - r.top - r.height / 2);
      d.dist = dist;
      d.mid = mid;
      return;
    }
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    d.x = e.clientX;
    d.y = e.clientY;
    if (d.mode === "pan") {
      v.panBy(dx, dy);
    } else if (d.mode === "scroll") {
      // the whole stack over about one viewport height, but never faster than 4 px per slice
      const perSlice = Math.max(4, this.viewport.clientHeight / Math.max(1, v.slices.length));
      d.acc += dy;
      const steps = Math.trunc(d.acc / perSlice);
      if (steps) {
        d.acc -= steps * perSlice;
        v.setIndex(v.index + steps);
      }
    } else if (d.mode === "wl") {
      if (!dx && !dy) return;
      const from = d.moved ? v.view.window : d.base;
      if (!d.moved) {
        d.moved = true;
        v.loading.stopPrefetch();
      }
      const w = Math.max(1, from.w + dx * d.k);
      const c = from.c + dy * d.k;
      v.setWindow({ c: Math.round(c), w: Math.max(1, Math.round(w)), fn: from.fn }, { dragging: true });
    }
  }

  onPointerUp(e) {
    const v = this.viewer;
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.delete(e.pointerId);
    if (this.viewport.hasPointerCapture(e.pointerId)) this.viewport.releasePointerCapture(e.pointerId);
    if (v.dragging && v.dragging.mode === "tool" && e.pointerId === this.toolDrag) {
      const tool = this.tools.get(v.tool);
      if (tool && tool.up) tool.up(e, this.point(e));
      this.toolDrag = null;
    }
    if (this.pointers.size === 0) this.endDrag();
    else if (v.dragging && v.dragging.mode === "pinch") v.dragging = null; // lift 1 of 2
  }

  endDrag() {
    const v = this.viewer;
    const d = v.dragging;
    v.dragging = null;
    if (d && d.mode === "wl" && d.moved) v.loading.showCurrent(); // final full-quality image + prefetch
  }
}

// Drawing: the image canvas (the server's rendered frame under zoom, pan, rotation, flips and
// invert as canvas transforms), and the overlay canvas above it for layers other modules draw
// (the presenter's pointer, annotations: js/components/viewer/annotations.js). Also the
// image-to-screen and back coordinate transforms those layers and the input tools use.
//
// Coordinates: "image" = pixel column/row of the DICOM frame (0,0 = the top-left pixel's
// corner, like the annotation points); "screen" = CSS pixels from the viewport's top-left.

export class ViewerCanvas {
  constructor(viewer) {
    this.viewer = viewer;
    this.viewport = viewer.$("viewport");
    this.canvas = viewer.$("viewport-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.overlay = viewer.$("viewport-overlay");
    this.octx = this.overlay.getContext("2d");
    this.queued = false;
    this.layers = new Set();
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.viewport);
  }

  /** One redraw on the next animation frame however many changes came before it. */
  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.draw();
    });
  }

  /**
   * Adds a layer `draw(ctx, view)` painted on the overlay after every redraw: `ctx` in device
   * pixels, `view` = {toScreen([col,row]) → [x,y] CSS px, toImage([x,y]) → [col,row], dpr,
   * slice: {sop, frame, rows, cols} | null}. Returns a function that removes it.
   */
  addLayer(draw) {
    this.layers.add(draw);
    this.schedule();
    return () => {
      this.layers.delete(draw);
      this.schedule();
    };
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.viewport.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.viewport.clientHeight * dpr));
    for (const c of [this.canvas, this.overlay]) {
      if (c.width !== w || c.height !== h) {
        c.width = w;
        c.height = h;
      }
    }
  }

  /**
   * The image → screen affine map for `rows`×`cols` in CSS pixels: [a, b, c, d, e, f] with
   * x = a·col + c·row + e, y = b·col + d·row + f (canvas setTransform order).
   */
  matrix(rows, cols) {
    const v = this.viewer.view;
    const w = this.viewport.clientWidth || 1;
    const h = this.viewport.clientHeight || 1;
    const quarter = v.rotation === 90 || v.rotation === 270;
    const fit = Math.min(w / (quarter ? rows : cols), h / (quarter ? cols : rows));
    const s = fit * v.zoom;
    const rad = (v.rotation * Math.PI) / 180;
    const cos = Math.round(Math.cos(rad));
    const sin = Math.round(Math.sin(rad));
    const fx = v.flip_h ? -1 : 1;
    const fy = v.flip_v ? -1 : 1;
    // centre the image at the origin, flip, rotate, scale, then move to the panned centre
    const a = s * cos * fx;
    const b = s * sin * fx;
    const c = -s * sin * fy;
    const d = s * cos * fy;
    const e = w / 2 + v.pan.x * w - (a * cols) / 2 - (c * rows) / 2;
    const f = h / 2 + v.pan.y * h - (b * cols) / 2 - (d * rows) / 2;
    return [a, b, c, d, e, f];
  }

  /** The current slice's size (drawn image, else the slice's header), or null. */
  sliceSize() {
    const drawn = this.viewer.drawn;
    if (drawn) return { rows: drawn.rows, cols: drawn.cols };
    const s = this.viewer.slices[this.viewer.index];
    return s ? { rows: s.rows, cols: s.cols } : null;
  }

  /** [col, row] image pixel → [x, y] CSS px from the viewport's top-left (null: no image). */
  imageToScreen([col, row]) {
    const size = this.sliceSize();
    if (!size) return null;
    const [a, b, c, d, e, f] = this.matrix(size.rows, size.cols);
    return [a * col + c * row + e, b * col + d * row + f];
  }

  /** [x, y] CSS px from the viewport's top-left → [col, row] image pixel (null: no image). */
  screenToImage([x, y]) {
    const size = this.sliceSize();
    if (!size) return null;
    const [a, b, c, d, e, f] = this.matrix(size.rows, size.cols);
    const det = a * d - b * c || 1;
    const dx = x - e;
    const dy = y - f;
    return [(d * dx - c * dy) / det, (a * dy - b * dx) / det];
  }

  draw() {
    const viewer = this.viewer;
    if (viewer.destroyed) return;
    this.resize();
    const { ctx, canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.filter = "none";
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const drawn = viewer.drawn;
    if (drawn) {
      const { bitmap, rows, cols } = drawn;
      const [a, b, c, d, e, f] = this.matrix(rows, cols);
      ctx.setTransform(a * dpr, b * dpr, c * dpr, d * dpr, e * dpr, f * dpr);
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = "high";
      if (viewer.view.invert) ctx.filter = "invert(1)";
      try {
        ctx.drawImage(bitmap, 0, 0, cols, rows);
        Object.assign(this.viewport.dataset, drawn.shown); // painted: now it is shown
      } catch {
        // a bitmap released by the cache: the next present() redraws
      }
      ctx.filter = "none";
      ctx.setTransform(1, 0, 0, 1, 0, 0);
    }
    this.drawLayers(dpr);
  }

  drawLayers(dpr) {
    const { octx, overlay } = this;
    octx.setTransform(1, 0, 0, 1, 0, 0);
    octx.clearRect(0, 0, overlay.width, overlay.height);
    if (!this.layers.size) return;
    const s = this.viewer.slices[this.viewer.index] || null;
    const view = {
      dpr,
      slice: s ? { sop: s.sop, frame: s.frame, rows: s.rows, cols: s.cols } : null,
      toScreen: (p) => this.imageToScreen(p),
      toImage: (p) => this.screenToImage(p),
    };
    for (const layer of this.layers) {
      octx.save();
      try {
        layer(octx, view);
      } catch (err) {
        console.error("viewer layer failed", err);
      }
      octx.restore();
    }
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.layers.clear();
  }
}

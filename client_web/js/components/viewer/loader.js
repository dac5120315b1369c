// Fetches rendered frames, keeps them in a bounded cache and prefetches neighbours.
//
// A job is {key, url, accept}. Each in-flight request has owners ("current", "wl", "prefetch");
// it is aborted once nobody wants it any more, so fast scrolling never queues stale slices.

export class FrameLoader {
  /**
   * @param {(url: string, init: object) => Promise<Response>} fetcher authenticated fetch
   */
  constructor(fetcher, { maxBytes = 96 * 2 ** 20, maxBitmaps = 40, concurrency = 4 } = {}) {
    this.fetcher = fetcher;
    this.maxBytes = maxBytes;
    this.maxBitmaps = maxBitmaps;
    this.concurrency = concurrency;
    this.entries = new Map(); // key -> {key, blob, bytes, window, bitmap}; insertion = LRU order
    this.bytes = 0;
    this.decoded = new Set(); // keys whose entry holds a bitmap, oldest first
    this.inflight = new Map(); // key -> {promise, controller, owners: Set}
    this.queue = []; // prefetch jobs not started yet, best first
    this.onError = null;
  }

  /** The cached entry for `key` (marks it recently used), or null. */
  peek(key) {
    const entry = this.entries.get(key);
    if (!entry) return null;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  has(key) {
    return this.entries.has(key) || this.inflight.has(key);
  }

  /** The entry's ImageBitmap, decoding again if it was dropped from the bitmap cache. */
  async bitmap(entry) {
    if (!entry.bitmap) {
      entry.bitmap = await createImageBitmap(entry.blob);
      this._noteDecoded(entry.key);
    }
    return entry.bitmap;
  }

  /** Starts (or joins) the request for `job` on behalf of `owner`; resolves to a decoded entry. */
  fetch(job, owner) {
    const cached = this.peek(job.key);
    if (cached) return this.bitmap(cached).then(() => cached);
    let req = this.inflight.get(job.key);
    if (!req) req = this._start(job);
    req.owners.add(owner);
    this.queue = this.queue.filter((j) => j.key !== job.key);
    return req.promise;
  }

  /** `owner` no longer needs `key`; the request is aborted when no owner is left. */
  release(key, owner) {
    const req = this.inflight.get(key);
    if (!req) return;
    req.owners.delete(owner);
    if (req.owners.size === 0) {
      req.controller.abort();
      this.inflight.delete(key);
      this._pump();
    }
  }

  /** Replaces the wanted prefetch list (best first); stale prefetches are cancelled. */
  setPrefetch(jobs) {
    const wanted = new Set(jobs.map((j) => j.key));
    for (const [key, req] of [...this.inflight]) {
      if (req.owners.has("prefetch") && !wanted.has(key)) this.release(key, "prefetch");
    }
    for (const job of jobs) {
      const req = this.inflight.get(job.key);
      if (req) req.owners.add("prefetch");
    }
    this.queue = jobs.filter((j) => !this.entries.has(j.key) && !this.inflight.has(j.key));
    this._pump();
  }

  _pump() {
    while (this.queue.length && this.inflight.size < this.concurrency) {
      const job = this.queue.shift();
      if (this.entries.has(job.key) || this.inflight.has(job.key)) continue;
      const req = this._start(job);
      req.owners.add("prefetch");
      req.promise.catch(() => {}); // a prefetch failure is retried when the slice is shown
    }
  }

  _start(job) {
    const controller = new AbortController();
    const req = { controller, owners: new Set(), promise: null };
    req.promise = (async () => {
      try {
        const response = await this.fetcher(job.url, {
          signal: controller.signal,
          headers: { Accept: job.accept || "image/jpeg" },
        });
        const blob = await response.blob();
        const bitmap = await createImageBitmap(blob);
        const entry = {
          key: job.key,
          blob,
          bytes: blob.size,
          window: response.headers.get("X-Window"),
          bitmap,
        };
        if (!controller.signal.aborted) this._store(entry);
        return entry;
      } finally {
        if (this.inflight.get(job.key) === req) this.inflight.delete(job.key);
        this._pump();
      }
    })();
    this.inflight.set(job.key, req);
    return req;
  }

  _store(entry) {
    const old = this.entries.get(entry.key);
    if (old) {
      this.bytes -= old.bytes;
      this.entries.delete(entry.key);
    }
    this.entries.set(entry.key, entry);
    this.bytes += entry.bytes;
    this._noteDecoded(entry.key);
    for (const [key, e] of this.entries) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 1) break;
      this.entries.delete(key);
      this.decoded.delete(key);
      this.bytes -= e.bytes;
    }
  }

  _noteDecoded(key) {
    this.decoded.delete(key);
    this.decoded.add(key);
    for (const k of this.decoded) {
      if (this.decoded.size <= this.maxBitmaps) break;
      this.decoded.delete(k);
      const e = this.entries.get(k);
      // Not closed: the viewport may still be drawing it; the garbage collector frees it.
      if (e) e.bitmap = null;
    }
  }
}

export function isAbort(err) {
  return err && (err.name === "AbortError" || err.code === 20);
}

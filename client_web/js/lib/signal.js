// The page WebSocket (docs/signaling.md): authenticates first, pings every 10 s, reconnects with
// backoff, matches replies to requests by `id`/`ref`. One per page: the shell hands it out
// (`shell.connect()`), the call, the MDT room and the shell's parts (badge, alerts) share it.

import { ApiError, goToLogin } from "./api.js";

export const PING_INTERVAL_MS = 10_000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const BACKOFF_MAX_MS = 10_000;
const CLOSE_UNAUTHENTICATED = 4401;

/**
 * Events (EventTarget): `status` (detail: "connecting" | "open" | "closed"), `ready`
 * (detail: {user, role}), `message` (detail: every server message after `ready`).
 */
export class Signal extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.status = "closed";
    this.user = null;
    this.role = null;
    this.attempt = 0;
    this.seq = 0;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.pingTimer = 0;
    this.retryTimer = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: status }));
  }

  connect() {
    clearTimeout(this.retryTimer);
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${window.location.host}/api/ws`);
    this.ws = ws;
    this.setStatus("connecting");
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new ApiError(0, "network", "connection lost"));
      }
      this.pending.clear();
      this.closeCode = ev.code; // the pages say why when the server gave a reason (messages.js)
      this.setStatus("closed");
      if (ev.code === CLOSE_UNAUTHENTICATED) {
        this.stopped = true;
        goToLogin("session.expired");
        return;
      }
      if (this.stopped) return;
      const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt += 1;
      const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
      this.retryTimer = setTimeout(() => this.connect(), delay);
    };
  }

  onMessage(msg) {
    if (msg.type === "ready") {
      this.attempt = 0;
      this.closeCode = 0;
      this.user = msg.user;
      this.role = msg.role;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_INTERVAL_MS);
      this.setStatus("open");
      this.dispatchEvent(new CustomEvent("ready", { detail: msg }));
      return;
    }
    if (msg.ref && this.pending.has(msg.ref)) {
      const p = this.pending.get(msg.ref);
      this.pending.delete(msg.ref);
      clearTimeout(p.timer);
      if (msg.type === "error") {
        p.reject(new ApiError(0, msg.code, msg.message, msg.details)); // shown by code (messages.js)
      } else {
        p.resolve(msg);
      }
    }
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  /** Sends a message; returns false when the socket is not open. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.status !== "open") return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Sends with an `id`; resolves with the reply carrying it as `ref`, rejects on `error`. */
  request(msg, timeoutMs = 15_000) {
    const id = `m-${++this.seq}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...msg, id })) {
        reject(new ApiError(0, "network", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(0, "timeout", "no answer from the server"));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }
}

// Synchronised viewing in an MDT room (docs/signaling.md "MDT rooms", CONTRACTS §2): one
// presenter drives the shared ViewState, everyone else follows it.
//
// - Presenter: the viewer's own changes (viewchange with source "user") are sent as
//   `view.update {room_id, base_version, state}` on change only, at most one per animation
//   frame and one in flight (the next carries the version the last one made); a `stale_view`
//   refusal adopts the server's state and version.
// - Follower: every `view.state` newer than the last one is applied at once (the newest wins; a
//   state arriving while the viewer still loads replaces the one before: nothing queues). A
//   follower's own pan/zoom/scroll/window change detaches it ("browsing privately"); `resync()`
//   applies the newest state again and follows.
//
// Events: `mode` (detail: "presenter" | "following" | "detached"), `applied` (detail:
// {version, state}), `sent` (detail: {base_version, state}), `study` (detail: study uid of a
// state for a study the viewer does not show: the page opens it, then calls `attach(viewer)`).

import { normalizeViewState, sameViewState } from "./viewer/view-state.js";

export class ViewSync extends EventTarget {
  /** `signal`: the page WebSocket; `roomId`; `me`: this user's id (username). */
  constructor(signal, roomId, me) {
    super();
    this.signal = signal;
    this.roomId = roomId;
    this.me = me;
    this.viewer = null;
    this.version = 0; // of the newest shared state we know
    this.state = null; // the newest shared ViewState
    this.presenter = null;
    this.mode = "following";
    this.inflight = null; // {base, state}: a view.update not yet answered
    this.dirty = false;
    this.frame = 0;
    this.applied = []; // versions applied, in order (for tests and diagnosis)
    this.sentCount = 0;
    this.onViewChange = (ev) => this.viewChanged(ev.detail);
  }

  get isPresenter() {
    return Boolean(this.presenter) && this.presenter === this.me;
  }

  /** The viewer showing the room's study (a new one when the study changes). */
  attach(viewer) {
    if (this.viewer) this.viewer.removeEventListener("viewchange", this.onViewChange);
    this.viewer = viewer;
    if (!viewer) return;
    viewer.addEventListener("viewchange", this.onViewChange);
    if (this.isPresenter) {
      this.dirty = true;
      this.schedule();
    } else if (this.mode === "following" && this.state) {
      this.applyShared();
    }
  }

  setMode(mode) {
    if (this.mode === mode) return;
    this.mode = mode;
    this.dispatchEvent(new CustomEvent("mode", { detail: mode }));
  }

  // -- from the server -------------------------------------------------------------------------

  /** room.state's `view` {version, presenter, state} (on every join and rejoin). */
  onRoomView(view) {
    if (!view) return;
    this.onControl(view.presenter || null);
    this.onViewState(view, { force: true });
  }

  /** `view.state` {version, presenter, state}: newer than ours → ours (and shown, following). */
  onViewState(msg, { force = false } = {}) {
    const version = Number(msg.version) || 0;
    // never back to an older one arriving late; the same one again only when asked (a rejoin)
    if (version < this.version || (version === this.version && !force)) return;
    this.version = version;
    if (msg.presenter !== undefined) this.onControl(msg.presenter || null);
    const state = normalizeViewState(msg.state);
    if (this.inflight && version > this.inflight.base) this.inflight = null; // ours landed
    if (!state) return;
    this.state = state;
    if (this.isPresenter) {
      // our own update coming back; a different one (the coordinator took over and back) is shown
      if (this.viewer && !sameViewState(this.viewer.getViewState(), state) && !this.dirty) this.applyShared();
      if (this.dirty) this.schedule();
      return;
    }
    if (this.mode === "following") this.applyShared();
  }

  /** `control.changed` {presenter, version}: a control change bumps the view's version. */
  onControlChanged(msg) {
    const version = Number(msg.version);
    if (Number.isFinite(version) && version > this.version) this.version = version;
    this.onControl(msg.presenter || null);
  }

  /** control.changed / room.state: who presents now. */
  onControl(presenter) {
    const was = this.isPresenter;
    this.presenter = presenter || null;
    if (this.isPresenter) {
      this.setMode("presenter");
      if (!was && this.viewer) {
        // our view becomes the shared one (a detached follower shares what it browsed)
        const mine = this.viewer.getViewState();
        if (mine && !sameViewState(mine, this.state)) {
          this.dirty = true;
          this.schedule();
        }
      }
    } else if (was || this.mode === "presenter") {
      this.dirty = false;
      this.setMode("following");
      if (this.state) this.applyShared();
    }
  }

  /** An `error` answering our view.update: `stale_view` adopts the server's state. */
  onUpdateRefused(err, base = this.inflight && this.inflight.base) {
    if (this.inflight && this.inflight.base === base) this.inflight = null;
    if (err && err.code === "stale_view" && err.details) {
      const d = err.details;
      this.onViewState({ version: d.version, state: d.state, presenter: d.presenter }, { force: true });
      if (this.viewer && this.state) this.applyShared(); // our local change is dropped
      this.dirty = false;
    }
  }

  // -- following -------------------------------------------------------------------------------

  applyShared() {
    const v = this.viewer;
    if (!v || !this.state) return;
    if (this.state.study_uid !== v.studyUid) {
      this.dispatchEvent(new CustomEvent("study", { detail: this.state.study_uid }));
      return;
    }
    if (v.applyViewState(this.state)) {
      this.applied.push(this.version);
      if (this.applied.length > 2000) this.applied.splice(0, 1000);
      this.dispatchEvent(new CustomEvent("applied", { detail: { version: this.version, state: this.state } }));
    }
  }

  /** Browse privately: shared states are kept but not shown. */
  detach() {
    if (this.isPresenter) return;
    this.setMode("detached");
  }

  /** Back to the shared view, at once. */
  resync() {
    if (this.isPresenter) return;
    this.setMode("following");
    this.applyShared();
  }

  viewChanged({ source }) {
    if (this.isPresenter) {
      // the presenter shares its own changes and the first image of a study it opened
      if (source !== "user" && source !== "load") return;
      this.dirty = true;
      this.schedule();
    } else if (source === "user" && this.mode === "following" && this.presenter) {
      this.detach(); // applied states, loads and cine frames are not the user's
    }
  }

  // -- presenting ------------------------------------------------------------------------------

  /** At most one view.update per animation frame, and never two in flight. */
  schedule() {
    if (this.frame || this.inflight) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.flush();
    });
  }

  flush() {
    if (!this.dirty || !this.isPresenter || !this.viewer || this.inflight) return;
    const state = this.viewer.getViewState();
    this.dirty = false;
    if (!state || sameViewState(state, this.state)) return; // nothing new to share
    const base = this.version;
    this.inflight = { base, state };
    this.sentCount += 1;
    this.dispatchEvent(new CustomEvent("sent", { detail: { base_version: base, state } }));
    this.signal.request({ type: "view.update", room_id: this.roomId, base_version: base, state }).then(
      (reply) => {
        if (reply && reply.type === "view.state") this.onViewState(reply);
        if (this.inflight && this.inflight.base === base) this.inflight = null;
        if (this.dirty) this.schedule();
      },
      (err) => {
        this.onUpdateRefused(err, base);
        if (this.dirty) this.schedule();
      },
    );
  }

  destroy() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.attach(null);
  }
}

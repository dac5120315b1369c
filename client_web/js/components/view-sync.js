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
// - The ECG (issue 11): the state's `ecg` member is what the ECG viewer (js/components/ecg/
//   viewer.js, `attachEcg`) shows and `showing` ("images" | "ecg") which of the two the room
//   looks at; the image keys stay while the ECG is shown, so switching back restores them. A
//   room with no images (an agenda of ECGs only) shares the ECG with no image part at all, and
//   a page with only an ECG viewer attached presents and follows with it alone. The ECG
//   viewer's own changes share or detach exactly as the image viewer's; `show(which)` is the
//   page's images/ECG switch.
//
// Events: `mode` (detail: "presenter" | "following" | "detached"), `applied` (detail:
// {version, state}), `sent` (detail: {base_version, state}), `study` (detail: study uid of a
// state for a study the viewer does not show: the page opens it, then calls `attach(viewer)`),
// `ecg` (detail: the ECG member, of a study no attached ECG viewer shows: the page mounts one,
// then calls `attachEcg(viewer)`), `showing` (detail: "images" | "ecg": show that one now).

import { normalizeViewState, sameViewState } from "./viewer/view-state.js";
import { normalizeEcgView, sameEcgView } from "./ecg/viewer.js";

/** A room state of an image part (or none, showing an ECG) and the ECG member; null: nothing
 * to show (no image and no ECG shown). */
function shared(image, ecg, showing) {
  if (showing === "ecg" && ecg) return { ...(image || {}), showing: "ecg", ecg };
  return image ? { ...image, showing: "images", ecg } : null;
}

/** A view.state's state with its ECG member, or null when it names nothing to show. */
function normalizeShared(vs) {
  if (!vs) return null;
  return shared(normalizeViewState(vs), normalizeEcgView(vs.ecg), vs.showing);
}

function sameShared(a, b) {
  if (!a || !b) return a === b;
  const images = a.study_uid || b.study_uid ? sameViewState(a, b) : true;
  return images && a.showing === b.showing && sameEcgView(a.ecg, b.ecg);
}

export class ViewSync extends EventTarget {
  /** `signal`: the page WebSocket; `roomId`; `me`: this user's id (username). */
  constructor(signal, roomId, me) {
    super();
    this.signal = signal;
    this.roomId = roomId;
    this.me = me;
    this.viewer = null;
    this.ecgViewer = null;
    this.showing = "images"; // what this page shows (the presenter's: what it shares)
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

  /** The ECG viewer (a new one when the ECG's study changes), or null. */
  attachEcg(viewer) {
    const old = this.ecgViewer;
    this.ecgViewer = viewer;
    this.listen(old, viewer, Boolean(this.state && this.state.ecg));
  }

  /** Changes of `viewer` instead of `old`'s: a presenter shares what it shows, a follower is
   * shown the shared state (when it has something for it: `shared`). */
  listen(old, viewer, shared) {
    if (old) old.removeEventListener("viewchange", this.onViewChange);
    if (!viewer) return;
    viewer.addEventListener("viewchange", this.onViewChange);
    if (this.isPresenter) {
      this.dirty = true;
      this.schedule();
    } else if (this.mode === "following" && shared) {
      this.applyShared();
    }
  }

  /** The page's images/ECG switch: the presenter shares it, a follower browses privately. */
  show(which) {
    const to = which === "ecg" && this.ecgViewer ? "ecg" : "images";
    if (to === this.showing) return;
    this.setShowing(to);
    this.viewChanged({ source: "user" });
  }

  setShowing(which) {
    if (this.showing === which) return;
    this.showing = which;
    this.dispatchEvent(new CustomEvent("showing", { detail: which }));
  }

  /** What this page shows as the room's ViewState (the image keys kept behind an ECG; none
   * in a room with no images). */
  current() {
    const image = (this.viewer && this.viewer.getViewState())
      || (this.state && this.state.study_uid ? normalizeViewState(this.state) : null);
    const ecg = (this.ecgViewer && this.ecgViewer.getViewState()) || (this.state && this.state.ecg) || null;
    return shared(image, ecg, this.showing);
  }

  /** A viewer of either kind attached (an ECG-only room has only the ECG one). */
  get attached() {
    return Boolean(this.viewer || this.ecgViewer);
  }

  /** The viewer showing the room's study (a new one when the study changes). */
  attach(viewer) {
    const old = this.viewer;
    this.viewer = viewer;
    this.listen(old, viewer, Boolean(this.state));
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

  /**
   * `view.state` {version, presenter, state}: newer than ours → ours (and shown, following).
   * Our own update coming back (`own`: the reply; or its published copy) is never shown again:
   * our viewer is already past it (a cine frame later), and showing it put a playing cine back.
   */
  onViewState(msg, { force = false, own = false } = {}) {
    const version = Number(msg.version) || 0;
    // never back to an older one arriving late; the same one again only when asked (a rejoin)
    if (version < this.version || (version === this.version && !force)) return;
    this.version = version;
    if (msg.presenter !== undefined) this.onControl(msg.presenter || null);
    const state = normalizeShared(msg.state);
    // ours: the reply to our update, or its published copy arriving first
    const ours = own || Boolean(this.inflight && version > this.inflight.base
      && sameShared(state, this.inflight.state));
    if (this.inflight && version > this.inflight.base) this.inflight = null; // ours landed
    if (!state) return;
    this.state = state;
    if (this.isPresenter) {
      // our own update coming back; a different one (the coordinator took over and back) is shown
      if (!ours && this.attached && !sameShared(this.current(), state) && !this.dirty) this.applyShared();
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
      if (!was && this.attached) {
        // our view becomes the shared one (a detached follower shares what it browsed)
        const mine = this.current();
        if (mine && !sameShared(mine, this.state)) {
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
      if (this.attached && this.state) this.applyShared(); // our local change is dropped
      this.dirty = false;
    }
  }

  // -- following -------------------------------------------------------------------------------

  applyShared() {
    const v = this.viewer;
    const s = this.state;
    if (!s) return; // with no viewer yet, the `study` / `ecg` events have the page mount one
    // the ECG first: it may be what the room looks at while the images load behind it
    let ecgShown = false;
    if (s.ecg) {
      const e = this.ecgViewer;
      if (!e || e.studyUid !== s.ecg.study_uid) {
        this.dispatchEvent(new CustomEvent("ecg", { detail: s.ecg }));
        // the page mounted one and attached it: attachEcg applied all of this state already
        if (this.ecgViewer !== e && this.mode === "following") return;
      } else {
        ecgShown = e.applyViewState(s.ecg);
      }
    }
    this.setShowing(s.showing === "ecg" && this.ecgViewer ? "ecg" : "images");
    if (s.study_uid && (!v || s.study_uid !== v.studyUid)) {
      this.dispatchEvent(new CustomEvent("study", { detail: s.study_uid }));
      return;
    }
    // an ECG-only state has no image part: the image viewer (if any) stays as it is
    if ((s.study_uid && v.applyViewState(s)) || ecgShown) {
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
    if (!this.dirty || !this.isPresenter || !this.attached || this.inflight) return;
    // an ECG still loading is shared once drawn (its `load` change), not as the one before it
    if (this.showing === "ecg" && this.ecgViewer && !this.ecgViewer.getViewState()) return;
    const state = this.current();
    this.dirty = false;
    if (!state || sameShared(state, this.state)) return; // nothing new to share
    const base = this.version;
    this.inflight = { base, state };
    this.sentCount += 1;
    this.dispatchEvent(new CustomEvent("sent", { detail: { base_version: base, state } }));
    this.signal.request({ type: "view.update", room_id: this.roomId, base_version: base, state }).then(
      (reply) => {
        if (reply && reply.type === "view.state") this.onViewState(reply, { own: true });
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
    this.attachEcg(null);
  }
}

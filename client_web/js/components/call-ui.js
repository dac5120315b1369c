// The in-call view shared by the kiosk and the expert workstation: remote video tiles (one per
// participant), the self view, mute / camera / hang-up, participant states, the network quality
// indicator and the reconnecting banners.

import { onLangChange, offLangChange, t } from "../lib/i18n.js";
import { icon, iconMarkup } from "../lib/icons.js";
import { playMedia } from "./call.js";
import "../i18n/call.js";

// The connection pill belongs to the page shell; re-exported for the pages that import it here.
export { renderNetStatus } from "./shell.js";

/**
 * The in-call markup CallView drives (banners, the remote tiles and the self view, the
 * participant states, mute / camera / hang-up, the quality indicator), for a page that builds
 * its call section in script (the MDT room). `extra` goes after the buttons.
 */
export function callMarkup(extra = "") {
  return `
    <div class="banner warn" data-testid="banner-reconnecting" role="alert" hidden></div>
    <button type="button" class="banner sound" data-testid="sound-unblock" data-i18n="call.soundBlocked" hidden>Tap for sound</button>
    <div class="stage">
      <div class="remote-grid" data-testid="remote-grid"></div>
      <div class="self-tile">
        <video data-testid="self-video" autoplay muted playsinline></video>
        <span class="tile-name" data-i18n="call.you">You</span>
      </div>
    </div>
    <div class="controls">
      <div class="participants" data-testid="participants" aria-live="polite"></div>
      <div class="buttons">
        <button type="button" class="ctl" data-testid="mute" aria-pressed="false">
          ${iconMarkup("mic", "icon")}<span class="txt" data-i18n="call.mute">Mute</span>
        </button>
        <button type="button" class="ctl" data-testid="camera-off" aria-pressed="false">
          ${iconMarkup("camera", "icon")}<span class="txt" data-i18n="call.cameraOff">Camera off</span>
        </button>
        <button type="button" class="ctl danger" data-testid="hang-up">
          ${iconMarkup("phone", "icon hang")}<span class="txt" data-i18n="call.hangUp">Hang up</span>
        </button>
      </div>
      ${extra}
      <div class="quality" data-testid="net-quality" data-level="unknown" role="status">
        <span class="bars" aria-hidden="true"><i></i><i></i><i></i></span>
        <span class="txt"></span>
      </div>
    </div>`;
}

/**
 * The shell's sign-out hooks for a call page: in a call it asks first and tells the others why
 * (`room.leave` reason `signed_out`), then the camera and microphone stop. `get()` returns the
 * page's {call, stream}.
 */
export function callSignOut(get) {
  return {
    beforeSignOut: async () => {
      if (get().call) {
        if (!(await confirmAction("confirm.signOutCall"))) return false;
        if (get().call) await get().call.leave("signed_out");
      }
      return true;
    },
    onSignOut: () => {
      const { stream } = get();
      if (stream) for (const tr of stream.getTracks()) tr.stop();
    },
  };
}

/** Show a translated notice in `box` (null `key` hides it); `setLang` re-translates it via its
 * `data-i18n`. */
export function showNotice(box, key, kind = "info", params = {}) {
  if (!key) {
    box.hidden = true;
    delete box.dataset.i18n;
    return;
  }
  box.dataset.i18n = key;
  box.i18nParams = params; // applyI18n re-renders with them; an ApiError param re-translates too
  box.dataset.kind = kind;
  box.textContent = t(key, params);
  box.hidden = false;
}

/**
 * The connection pill of a call page: the page WebSocket's state and, until it is ready again,
 * why the server closed it when it said so (too many pages open: 4409, a flood: 4429, …).
 */
/** The translation key telling why `participant` left (room.participant `event`/`reason`). */
export function leftKey(event, reason) {
  if (["hung_up", "signed_out", "media_failed", "replaced"].includes(reason)) return `left.${reason}`;
  if (reason === "timed_out" || event === "timeout") return "left.timeout";
  return "left.hung_up"; // a plain room.leave is a hang-up
}

/**
 * Asks before something that ends a call (the page's `confirm-dialog`): resolves true for OK,
 * false for Stay, Escape or a click outside.
 */
export function confirmAction(key) {
  const dlg = document.querySelector('[data-testid="confirm-dialog"]');
  if (!dlg || typeof dlg.showModal !== "function") return Promise.resolve(window.confirm(t(key)));
  dlg.querySelector('[data-testid="confirm-text"]').textContent = t(key);
  dlg.querySelector('[data-testid="confirm-ok"]').textContent = t("confirm.ok");
  dlg.querySelector('[data-testid="confirm-cancel"]').textContent = t("confirm.cancel");
  return new Promise((resolve) => {
    const done = (answer) => {
      dlg.removeEventListener("close", onClose);
      if (dlg.open) dlg.close();
      resolve(answer);
    };
    const onClose = () => done(dlg.returnValue === "ok");
    dlg.returnValue = "";
    dlg.addEventListener("close", onClose);
    dlg.querySelector('[data-testid="confirm-ok"]').onclick = () => {
      dlg.returnValue = "ok";
      dlg.close();
    };
    dlg.querySelector('[data-testid="confirm-cancel"]').onclick = () => dlg.close();
    dlg.showModal();
    dlg.querySelector('[data-testid="confirm-cancel"]').focus();
  });
}

export class CallView {
  /**
   * `root` holds the call markup (testids remote-grid, self-video, participants, mute,
   * camera-off, hang-up, net-quality, banner-reconnecting, sound-unblock).
   */
  constructor(root, { signal, call, localStream, onHangUp, decorateParticipant = null }) {
    this.root = root;
    this.decorateParticipant = decorateParticipant; // (el, id) after each participant is drawn
    this.signal = signal;
    this.call = call;
    this.localStream = localStream;
    this.onHangUp = onHangUp;
    this.tiles = new Map(); // id -> {el, video, stream}
    this.participants = new Map();
    this.rtcState = "new";
    this.muted = false;
    this.cameraOff = false;
    this.quality = { level: "unknown" };
    this.media = { state: "connecting", participants: new Map() };
    this.listeners = [];
    this.probe = document.createElement("canvas"); // camera-off check: is a remote picture black?
    this.probe.width = 16;
    this.probe.height = 12;

    const self = this.$("self-video");
    self.srcObject = localStream;
    playMedia(self);

    this.on(this.$("mute"), "click", () => this.setMuted(!this.muted));
    this.on(this.$("camera-off"), "click", () => this.setCameraOff(!this.cameraOff));
    this.on(this.$("hang-up"), "click", () => this.onHangUp());
    this.on(this.$("sound-unblock"), "click", () => this.unblockSound());
    this.on(call, "participants", (ev) => {
      this.participants = new Map(ev.detail);
      this.render();
    });
    this.on(call, "track", (ev) => this.setTrack(ev.detail));
    this.on(call, "quality", (ev) => {
      this.quality = ev.detail;
      this.renderQuality();
    });
    this.on(call, "media", (ev) => {
      this.media = ev.detail;
      this.checkBlack();
      this.render();
    });
    this.on(call, "rtc", (ev) => {
      this.rtcState = ev.detail;
      this.renderBanner();
    });
    this.on(signal, "status", () => this.renderBanner());
    this.langListener = () => this.renderAll();
    onLangChange(this.langListener);
    this.renderAll();
  }

  $(testid) {
    return this.root.querySelector(`[data-testid="${testid}"]`);
  }

  on(target, type, fn) {
    target.addEventListener(type, fn);
    this.listeners.push([target, type, fn]);
  }

  destroy() {
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn);
    this.listeners = [];
    offLangChange(this.langListener);
    for (const tile of this.tiles.values()) {
      tile.video.srcObject = null;
      tile.el.remove();
    }
    this.tiles.clear();
    this.$("self-video").srcObject = null;
    this.$("banner-reconnecting").hidden = true;
    this.$("sound-unblock").hidden = true;
  }

  setMuted(muted) {
    this.muted = muted;
    this.call.setMuted(muted);
    this.renderButtons();
  }

  setCameraOff(off) {
    this.cameraOff = off;
    this.call.setCameraOff(off);
    this.renderButtons();
  }

  unblockSound() {
    for (const tile of this.tiles.values()) {
      tile.video.muted = false;
      playMedia(tile.video);
    }
    this.$("sound-unblock").hidden = true;
  }

  // -- tiles ------------------------------------------------------------------------------------

  tile(id) {
    let tile = this.tiles.get(id);
    if (tile) return tile;
    const el = document.createElement("div");
    el.className = "tile";
    el.dataset.testid = "remote-tile";
    el.dataset.participant = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.dataset.testid = "remote-video";
    video.dataset.participant = id;
    const placeholder = document.createElement("div");
    placeholder.className = "tile-placeholder";
    const name = document.createElement("span");
    name.className = "tile-name";
    const state = document.createElement("span");
    state.className = "tile-state";
    state.dataset.testid = "tile-state";
    const flags = document.createElement("span");
    flags.className = "tile-flags";
    const micOff = document.createElement("span");
    micOff.className = "flag";
    micOff.dataset.testid = "tile-muted";
    micOff.hidden = true;
    const camOff = document.createElement("span");
    camOff.className = "flag";
    camOff.dataset.testid = "tile-camera-off";
    camOff.hidden = true;
    flags.append(micOff, camOff);
    // connecting / media failed: what it is and what to do
    const status = document.createElement("div");
    status.className = "tile-status";
    status.dataset.testid = "tile-media";
    const statusText = document.createElement("div");
    statusText.className = "status-text";
    const statusHint = document.createElement("div");
    statusHint.className = "status-hint";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "primary";
    retry.dataset.testid = "media-retry";
    retry.addEventListener("click", () => this.call.retry());
    const warn = icon("warning"); // shown for a failed tile only (call.css)
    warn.classList.add("status-icon");
    status.append(warn, statusText, statusHint, retry);
    el.append(video, placeholder, status, name, flags, state);
    this.$("remote-grid").append(el);
    tile = { el, video, placeholder, name, state, status, statusText, statusHint, retry, micOff, camOff, stream: null, hasVideo: false };
    this.tiles.set(id, tile);
    return tile;
  }

  setTrack({ id, stream, hasVideo }) {
    if (!stream && !this.tiles.has(id)) return;
    const tile = this.tile(id);
    tile.stream = stream;
    tile.hasVideo = hasVideo;
    tile.video.srcObject = stream;
    if (stream && hasVideo && !tile.el.dataset.firstFrameAt && tile.video.requestVideoFrameCallback) {
      // when the first remote frame is on screen (tests measure accept → video with it)
      tile.video.requestVideoFrameCallback(() => {
        tile.el.dataset.firstFrameAt = String(Date.now());
      });
    }
    if (stream) {
      playMedia(tile.video, () => {
        this.$("sound-unblock").hidden = false;
      });
    }
    this.render();
  }

  /** What a participant's tile and chip say: signaling first (left, reconnecting), then what
   * really flows (connecting, connected, failed). */
  shownState(p) {
    if (p.state === "left" || p.state === "reconnecting") return p.state;
    const m = this.media.participants && this.media.participants.get(p.id);
    return m ? m.state : "connecting";
  }

  mediaOf(id) {
    return (this.media.participants && this.media.participants.get(id)) || {};
  }

  /** Draws each remote picture into a 16×12 canvas: all black means the camera is off. */
  checkBlack() {
    const ctx = this.probe.getContext("2d", { willReadFrequently: true });
    for (const [id, tile] of this.tiles) {
      const v = tile.video;
      if (!tile.hasVideo || v.readyState < 2 || !v.videoWidth) continue;
      try {
        ctx.drawImage(v, 0, 0, 16, 12);
        const px = ctx.getImageData(0, 0, 16, 12).data;
        let max = 0;
        for (let i = 0; i < px.length; i += 4) max = Math.max(max, px[i], px[i + 1], px[i + 2]);
        this.call.setBlack(id, max < 8); // a disabled track's frames are exactly black
      } catch {
        // not drawable yet
      }
    }
  }

  render() {
    const grid = this.$("remote-grid");
    // participants who are in the room (or still have media) get a tile, in join order
    const visible = [...this.participants.values()]
      .filter((p) => p.state !== "left" || (this.tiles.get(p.id) && this.tiles.get(p.id).stream))
      .sort((a, b) => (a.joined_at || 0) - (b.joined_at || 0));
    const keep = new Set(visible.map((p) => p.id));
    for (const [id, tile] of this.tiles) {
      if (!keep.has(id) && !tile.stream) {
        tile.video.srcObject = null;
        tile.el.remove();
        this.tiles.delete(id);
      }
    }
    const relayRetry = this.media.state === "retrying";
    for (const p of visible) {
      const tile = this.tile(p.id);
      grid.append(tile.el); // keeps the order
      const shown = this.shownState(p);
      const m = this.mediaOf(p.id);
      tile.name.textContent = p.display_name || p.id;
      tile.el.dataset.state = shown;
      tile.el.dataset.media = m.state || "connecting";
      // connecting / failed are said in the status box; reconnecting / left on the label
      tile.state.textContent = shown === "reconnecting" || shown === "left" ? t(`pstate.${shown}`) : "";
      tile.micOff.hidden = !(shown === "connected" && m.muted);
      tile.micOff.textContent = t("call.remoteMuted");
      tile.camOff.hidden = !(shown === "connected" && m.cameraOff);
      tile.camOff.textContent = t("call.remoteCameraOff");
      tile.el.dataset.muted = String(Boolean(m.muted));
      tile.el.dataset.cameraOff = String(Boolean(m.cameraOff));
      // the status box: connecting (with a spinner) or failed (with what to do)
      const failed = shown === "failed";
      const connecting = shown === "connecting" && !(tile.hasVideo && m.video);
      tile.status.hidden = !(failed || connecting);
      tile.status.dataset.kind = failed ? "failed" : "connecting";
      tile.statusText.textContent = failed ? t(relayRetry ? "media.retryingRelay" : (m.remote ? "media.remoteFailed" : "media.failedTile"), { name: p.display_name || p.id }) : t("call.waitingVideo");
      tile.statusHint.textContent = failed && !relayRetry ? t(m.remote ? "media.remoteHint" : "media.hint") : "";
      tile.retry.hidden = !failed || relayRetry;
      tile.retry.textContent = t("media.retry");
      tile.placeholder.textContent = tile.hasVideo || failed || connecting ? "" : (tile.stream ? t("call.noVideo") : "");
      tile.placeholder.hidden = tile.hasVideo || failed || connecting;
    }
    grid.dataset.count = String(Math.max(1, this.tiles.size));
    this.renderParticipants();
  }

  renderParticipants() {
    const box = this.$("participants");
    box.textContent = "";
    const me = document.createElement("span");
    me.className = "who";
    me.dataset.state = this.signal.status === "open" ? "connected" : "reconnecting";
    me.textContent = t("call.you");
    if (this.decorateParticipant) this.decorateParticipant(me, this.signal.user);
    box.append(me);
    for (const p of this.participants.values()) {
      const shown = this.shownState(p);
      const s = document.createElement("span");
      s.className = "who";
      s.dataset.testid = "participant";
      s.dataset.participant = p.id;
      s.dataset.state = shown;
      s.textContent = `${p.display_name || p.id} · ${t(`pstate.${shown}`)}`;
      if (this.decorateParticipant) this.decorateParticipant(s, p.id);
      box.append(s);
    }
  }

  renderButtons() {
    const mute = this.$("mute");
    mute.setAttribute("aria-pressed", String(this.muted));
    mute.querySelector(".txt").textContent = t(this.muted ? "call.unmute" : "call.mute");
    const cam = this.$("camera-off");
    cam.setAttribute("aria-pressed", String(this.cameraOff));
    cam.querySelector(".txt").textContent = t(this.cameraOff ? "call.cameraOn" : "call.cameraOff");
  }

  renderQuality() {
    const q = this.$("net-quality");
    const level = this.quality.level || "unknown";
    q.dataset.level = level;
    q.dataset.relay = String(Boolean(this.quality.relay));
    q.querySelector(".txt").textContent = `${t("net.quality")}: ${t(`quality.${level}`)}`;
    const parts = [];
    if (this.quality.rtt !== null && this.quality.rtt !== undefined) parts.push(`RTT ${Math.round(this.quality.rtt * 1000)} ms`);
    if (this.quality.loss !== null && this.quality.loss !== undefined) parts.push(`loss ${(this.quality.loss * 100).toFixed(1)} %`);
    if (this.quality.jitter !== null && this.quality.jitter !== undefined) parts.push(`jitter ${Math.round(this.quality.jitter * 1000)} ms`);
    if (this.quality.bitrate) parts.push(`${Math.round(this.quality.bitrate / 1000)} kbit/s`);
    if (this.quality.relay) parts.push("TURN");
    q.title = parts.join(" · ");
  }

  renderBanner() {
    const banner = this.$("banner-reconnecting");
    let key = null;
    if (this.signal.status !== "open") key = "call.reconnecting";
    else if (["disconnected", "failed", "reconnecting"].includes(this.rtcState)) key = "call.mediaReconnecting";
    banner.hidden = !key;
    banner.textContent = key ? t(key) : "";
    this.renderParticipants();
  }

  renderAll() {
    this.render();
    this.renderButtons();
    this.renderQuality();
    this.renderBanner();
  }
}

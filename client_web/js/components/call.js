// The call machinery shared by the kiosk and the expert workstation (docs/signaling.md):
//
// - `Signal` (js/lib/signal.js, re-exported): the page WebSocket.
// - `RoomCall`: one consult room. A NEW RTCPeerConnection per join (and per rejoin); the server
//   always offers, the page answers after ICE gathering (bounded) and trickles what comes later.
//   Forwarded tracks arrive with stream id = the publisher's participant id.
// - local media (camera + microphone with dev constraints), a mic level meter, and the network
//   quality estimate from getStats().


// The page WebSocket lives in js/lib/signal.js (every page may have one); re-exported for the
// pages that import it from here.
export { PING_INTERVAL_MS, Signal } from "../lib/signal.js";

export const GATHER_TIMEOUT_MS = 2_000;
// 0: the answer waits for complete gathering (bounded by GATHER_TIMEOUT_MS). Answering early
// and trickling the rest made the first frame miss now and then in the browser tests (a
// candidate racing the server's setRemoteDescription), so it stays off.
const GATHER_SETTLE_MS = 0;
/** A peer connection whose media has not connected by then counts as failed (issue #8: "media
 * failed" within 10 s); a remote participant whose media stopped that long, too. */
export const MEDIA_TIMEOUT_MS = 7_000;
const MEDIA_SAMPLE_MS = 1_000;
const ROOM_KEY = "hz.room";

/** Page options from the URL: `?ice=relay` forces TURN; `?video=320x240` caps the camera. */
export function urlOptions(search = window.location.search) {
  const q = new URLSearchParams(search);
  const m = /^(\d{2,4})x(\d{2,4})$/.exec(q.get("video") || "");
  return {
    relay: q.get("ice") === "relay",
    video: m ? { width: Number(m[1]), height: Number(m[2]) } : null,
  };
}

// ---- local media --------------------------------------------------------------------------

export async function getLocalMedia({ video = null } = {}) {
  const v = video
    ? { width: { ideal: video.width }, height: { ideal: video.height }, frameRate: { ideal: 15 } }
    : { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 20 } }; // 4G-friendly
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    video: v,
  });
}

/** Microphone level 0…1 from an AnalyserNode; `onLevel(level)` about 15 times a second. */
export class LevelMeter {
  constructor(stream, onLevel) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    this.ctx = new Ctx();
    this.source = this.ctx.createMediaStreamSource(stream);
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    this.buf = new Float32Array(this.analyser.fftSize);
    this.timer = setInterval(() => {
      this.analyser.getFloatTimeDomainData(this.buf);
      let sum = 0;
      for (const x of this.buf) sum += x * x;
      const rms = Math.sqrt(sum / this.buf.length);
      onLevel(Math.min(1, rms * 4));
    }, 66);
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
  }

  resume() {
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
  }

  stop() {
    clearInterval(this.timer);
    try {
      this.source.disconnect();
    } catch {
      // already disconnected
    }
    this.ctx.close().catch(() => {});
  }
}

// ---- network quality ----------------------------------------------------------------------

/**
 * good / fair / poor from the selected candidate pair's round-trip time, the inbound packet loss
 * and jitter since the previous sample, and the available outgoing bitrate. The bitrate only
 * counts once media has had time to ramp it up and only when it is really low: the estimate
 * starts near 300 kbit/s and grows only as far as the encoder asks, so an idle 3 ms loopback link
 * must not look "poor" because of it.
 */
export function classifyQuality({ rtt = null, loss = null, jitter = null, bitrate = null, rampedUp = true }) {
  if (rtt === null && loss === null && jitter === null && bitrate === null) return "unknown";
  let level = 0; // 0 good, 1 fair, 2 poor
  if (rtt !== null) level = Math.max(level, rtt > 0.6 ? 2 : rtt > 0.3 ? 1 : 0);
  if (loss !== null) level = Math.max(level, loss > 0.1 ? 2 : loss > 0.03 ? 1 : 0);
  // video jitter runs higher than audio's; a busy but healthy link shows 20–60 ms
  if (jitter !== null) level = Math.max(level, jitter > 0.25 ? 2 : jitter > 0.1 ? 1 : 0);
  if (bitrate !== null && rampedUp) level = Math.max(level, bitrate < 60_000 ? 2 : bitrate < 120_000 ? 1 : 0);
  return ["good", "fair", "poor"][level];
}

/** The selected candidate pair and its local/remote candidates from an RTCStatsReport. */
export function selectedPair(report) {
  let pair = null;
  for (const s of report.values()) {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  }
  if (!pair) {
    for (const s of report.values()) {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    }
  }
  if (!pair) return null;
  return {
    pair,
    local: report.get(pair.localCandidateId) || null,
    remote: report.get(pair.remoteCandidateId) || null,
  };
}

// ---- one room -----------------------------------------------------------------------------

export function savedRoom() {
  return sessionStorage.getItem(ROOM_KEY);
}

/**
 * A page's presence in one consult room. Events: `state` (room.state arrived; detail: the
 * message), `participants` (detail: Map id → participant), `track` (detail: {id, stream}: the
 * participant's current media, null when it has none), `rtc` (detail: connection state),
 * `media` (detail: {state, relay, participants: Map id → {state, video, audio, cameraOff, muted}}
 * — what really flows, see `sampleMedia`), `quality` (detail: {level, rtt, loss, jitter,
 * bitrate}), `left` (detail: {participant, event, reason}: someone left the room), `ended`
 * (detail: reason: "left", "closed", "replaced", "alone").
 */
export class RoomCall extends EventTarget {
  constructor(signal, { localStream, relay = false, joinFields = null, remember = true }) {
    super();
    this.remember = remember; // keep the room in sessionStorage (a reload of a call page rejoins)
    this.signal = signal;
    this.joinFields = joinFields; // () => extra room.join fields (an MDT room: last_event_id)
    this.localStream = localStream;
    this.forceRelay = relay; // ?ice=relay: every attempt is relay-only
    this.relay = relay; // this attempt's policy
    this.relayTried = relay;
    this.iceServers = [];
    this.roomId = null;
    this.pc = null;
    this.participants = new Map();
    this.media = new Map(); // participant id -> {audio, video} MediaStreamTracks
    this.flow = new Map(); // participant id -> media flow bookkeeping (sampleMedia)
    this.mediaState = "connecting"; // this page's media path: connecting | connected | failed | retrying
    this.chain = Promise.resolve();
    this.sampleTimer = 0;
    this.sampleCount = 0;
    this.lastInbound = null;
    this.joinRef = null;
    this.rejoinTimer = 0;
    this.onSignalMessage = (ev) => this.onMessage(ev.detail);
    this.onSignalReady = () => {
      if (this.roomId) this.sendJoin();
    };
    this.onSignalStatus = (ev) => {
      if (ev.detail === "closed" && this.roomId) this.dropMedia("reconnecting");
    };
    signal.addEventListener("message", this.onSignalMessage);
    signal.addEventListener("ready", this.onSignalReady);
    signal.addEventListener("status", this.onSignalStatus);
  }

  /** Joins (or, after a reload, rejoins) `roomId`; kept in sessionStorage until hang-up. */
  join(roomId) {
    this.roomId = roomId;
    if (this.remember) sessionStorage.setItem(ROOM_KEY, roomId);
    if (this.signal.status === "open") this.sendJoin();
  }

  sendJoin() {
    this.joinRef = `join-${Date.now()}`;
    const extra = this.joinFields ? this.joinFields() : {};
    this.signal.send({ ...extra, type: "room.join", room_id: this.roomId, id: this.joinRef });
  }

  /** "Try again" after media failed: a fresh direct attempt (then relay, with TURN). */
  retry() {
    if (!this.roomId) return;
    this.relay = this.forceRelay;
    this.relayTried = this.forceRelay;
    this.setMediaState("connecting");
    this.sendJoin();
  }

  /**
   * Hang up: room.leave (with `reason`, e.g. "signed_out", when the server knows it), then
   * everything is released.
   */
  async leave(reason = null) {
    const roomId = this.roomId;
    if (roomId) {
      try {
        await this.signal.request({ type: "room.leave", room_id: roomId, ...(reason ? { reason } : {}) }, 5000);
      } catch (err) {
        if (reason && err.code === "invalid_message") {
          // a server without room.leave reasons: leave all the same
          try {
            await this.signal.request({ type: "room.leave", room_id: roomId }, 5000);
          } catch {
            // gone already
          }
        }
        // not connected or already gone: the server's grace period ends our place
      }
    }
    this.end("left");
  }

  end(reason) {
    if (!this.roomId && !this.pc) return;
    this.roomId = null;
    if (this.remember) sessionStorage.removeItem(ROOM_KEY);
    this.closePc();
    this.signal.removeEventListener("message", this.onSignalMessage);
    this.signal.removeEventListener("ready", this.onSignalReady);
    this.signal.removeEventListener("status", this.onSignalStatus);
    this.dispatchEvent(new CustomEvent("ended", { detail: reason }));
  }

  setMuted(muted) {
    for (const t of this.localStream.getAudioTracks()) t.enabled = !muted;
  }

  setCameraOff(off) {
    for (const t of this.localStream.getVideoTracks()) t.enabled = !off;
  }

  // -- signaling ------------------------------------------------------------------------------

  onMessage(msg) {
    if (msg.room_id && msg.room_id !== this.roomId) return;
    switch (msg.type) {
      case "room.state":
        this.onRoomState(msg);
        break;
      case "room.participant": {
        const p = msg.participant;
        if (!p || p.id === this.signal.user) break;
        const before = this.participants.get(p.id);
        this.participants.set(p.id, p);
        if (p.state === "left") {
          this.setMedia(p.id, null);
          this.flow.delete(p.id);
          if (!before || before.state !== "left") {
            this.emit("left", { participant: p, event: msg.event, reason: msg.reason || p.reason || null });
          }
        }
        if (msg.event === "joined" || msg.event === "rejoined") this.flow.delete(p.id);
        this.emit("participants", this.participants);
        break;
      }
      case "rtc.offer": {
        const pc = this.pc;
        if (!pc) break;
        this.chain = this.chain.then(() => this.answer(pc, msg.sdp)).catch((err) => {
          console.warn("answering the offer failed", err);
        });
        break;
      }
      case "rtc.state":
        this.emit("rtc", msg.state);
        // the server gave up on our media (HUIZHEN_MEDIA_TIMEOUT_S or ICE failed there)
        if (msg.state === "failed" && this.pc) this.pcFailed(this.pc);
        break;
      case "room.replaced":
        this.end("replaced");
        break;
      case "room.closed": // an MDT concluded or cancelled
        this.end("closed");
        break;
      case "error":
        if (msg.ref && msg.ref === this.joinRef) this.end("closed"); // room gone or not ours
        break;
      default:
    }
  }

  onRoomState(msg) {
    this.participants = new Map(
      (msg.participants || []).filter((p) => p.id !== this.signal.user).map((p) => [p.id, p]),
    );
    this.iceServers = msg.ice_servers || [];
    this.newPc(this.iceServers);
    this.emit("state", msg);
    this.emit("participants", this.participants);
  }

  /** True when room.state offered a TURN server (a relay-only retry can help). */
  hasTurn() {
    return this.iceServers.some((s) => [].concat(s.urls || s.url || []).some((u) => /^turns?:/.test(u)));
  }

  newPc(iceServers) {
    this.closePc();
    const config = { iceServers, bundlePolicy: "max-bundle" };
    if (this.relay) config.iceTransportPolicy = "relay";
    const pc = new RTCPeerConnection(config);
    pc.tracksAdded = false;
    pc.answered = false;
    pc.createdAt = Date.now();
    pc.connectedAt = 0;
    pc.everConnected = false;
    this.pc = pc;
    this.chain = Promise.resolve();
    this.lastInbound = null;
    this.flow.clear();
    if (this.mediaState !== "retrying") this.setMediaState("connecting");
    pc.onicecandidate = (ev) => {
      // Candidates found before the answer went out are in its SDP; later ones trickle.
      if (pc !== this.pc || !pc.answered || !ev.candidate || !ev.candidate.candidate) return;
      this.signal.send({
        type: "rtc.candidate",
        room_id: this.roomId,
        candidate: {
          candidate: ev.candidate.candidate,
          sdpMid: ev.candidate.sdpMid,
          sdpMLineIndex: ev.candidate.sdpMLineIndex,
        },
      });
    };
    pc.ontrack = (ev) => {
      if (pc !== this.pc) return;
      const stream = ev.streams && ev.streams[0];
      const id = stream && stream.id;
      if (!id || id === this.signal.user) return;
      const m = this.media.get(id) || {};
      m[ev.track.kind] = ev.track;
      this.media.set(id, m);
      // An inactive transceiver (the publisher left or reconnects) removes the track.
      stream.onremovetrack = (e) => {
        const cur = this.media.get(id);
        if (cur && cur[e.track.kind] === e.track) {
          delete cur[e.track.kind];
          this.emitTrack(id);
        }
      };
      this.emitTrack(id);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      this.emit("rtc", pc.connectionState);
      if (pc.connectionState === "connected" && !pc.connectedAt) {
        pc.connectedAt = Date.now();
        pc.everConnected = true;
      }
      if (pc.connectionState === "failed") this.pcFailed(pc);
    };
    pc.oniceconnectionstatechange = () => {
      if (pc === this.pc && pc.iceConnectionState === "failed") this.pcFailed(pc);
    };
    clearInterval(this.sampleTimer);
    this.sampleCount = 0;
    this.sampleTimer = setInterval(() => this.sample(), MEDIA_SAMPLE_MS);
  }

  /**
   * The media path failed (ICE/DTLS failed, or nothing connected within MEDIA_TIMEOUT_MS).
   * A connection that worked before and dropped rejoins with a new peer connection (aiortc has no
   * ICE restart); one that never connected is retried relay-only once when TURN is configured,
   * and otherwise told as "media failed" (the page offers "Try again").
   */
  pcFailed(pc) {
    if (pc !== this.pc || pc.failedHandled) return;
    pc.failedHandled = true;
    if (this.signal.status !== "open") return; // the WebSocket's rejoin builds a new one
    clearTimeout(this.rejoinTimer);
    if (pc.everConnected && pc.connectionState === "failed") {
      this.setMediaState("connecting");
      this.rejoinTimer = setTimeout(() => this.roomId && this.sendJoin(), 1000);
      return;
    }
    if (!this.relayTried && this.hasTurn()) {
      this.relayTried = true;
      this.relay = true;
      this.setMediaState("retrying");
      this.rejoinTimer = setTimeout(() => this.roomId && this.sendJoin(), 300);
      return;
    }
    // Keep this peer connection: should ICE still find a path, the media state recovers.
    this.setMediaState("failed");
  }

  setMediaState(st) {
    if (this.mediaState === st) return;
    this.mediaState = st;
    this.emitMedia();
  }

  closePc() {
    clearInterval(this.sampleTimer);
    clearTimeout(this.rejoinTimer);
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onicecandidate = null;
      this.pc.onconnectionstatechange = null;
      this.pc.oniceconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
    for (const id of [...this.media.keys()]) this.setMedia(id, null);
  }

  /** The WebSocket dropped: the media path goes with it (the rejoin builds a new one). */
  dropMedia(state) {
    this.closePc();
    this.emit("rtc", state);
    this.setMediaState("connecting");
  }

  async answer(pc, sdp) {
    if (pc !== this.pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp });
    if (!pc.tracksAdded) {
      // The offer's first audio and video transceivers are recvonly for our camera and mic.
      for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
      pc.tracksAdded = true;
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await waitForGathering(pc, GATHER_TIMEOUT_MS);
    if (pc !== this.pc) return;
    this.signal.send({ type: "rtc.answer", room_id: this.roomId, sdp: pc.localDescription.sdp });
    pc.answered = true;
  }

  // -- media ----------------------------------------------------------------------------------

  setMedia(id, m) {
    if (m) this.media.set(id, m);
    else this.media.delete(id);
    this.emitTrack(id);
  }

  emitTrack(id) {
    const m = this.media.get(id);
    const tracks = m ? [m.video, m.audio].filter(Boolean) : [];
    this.emit("track", { id, stream: tracks.length ? new MediaStream(tracks) : null, hasVideo: Boolean(m && m.video) });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Per remote participant: what this page really receives from them (see `sampleMedia`). */
  participantMedia(id) {
    const f = this.flow.get(id);
    const p = this.participants.get(id);
    const none = { video: false, audio: false, cameraOff: false, muted: false, firstFrameAt: 0 };
    // our own media path failed: nothing flows from anyone
    if (this.mediaState === "failed" || this.mediaState === "retrying") return { ...none, state: "failed", remote: false };
    // the server saw that participant's media never connect (docs/signaling.md `media`)
    if (p && p.media === "failed" && !(f && f.state === "connected")) return { ...none, state: "failed", remote: true };
    if (!f) return { ...none, state: "connecting", remote: false };
    return {
      state: f.state, remote: f.state === "failed", video: f.video, audio: f.audio,
      cameraOff: f.cameraOff, muted: f.muted, firstFrameAt: f.firstFrameAt,
    };
  }

  emitMedia() {
    const participants = new Map();
    for (const id of this.participants.keys()) participants.set(id, this.participantMedia(id));
    this.emit("media", { state: this.mediaState, relay: this.relay, participants });
  }

  async sample() {
    const pc = this.pc;
    if (!pc) return;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    }
    if (pc !== this.pc) return;
    this.sampleCount += 1;
    this.sampleMedia(pc, report);
    if (this.sampleCount % 2 === 0 && pc.connectionState === "connected") this.sampleQuality(pc, report);
  }

  /**
   * Media that cannot fail silently: a participant counts as "connected" only while their video
   * frames are being decoded (or, without video, their audio packets arrive); the peer connection
   * as failed when ICE and DTLS are not connected within MEDIA_TIMEOUT_MS. Camera off shows as
   * black frames (a disabled track still sends them), mute as decoded silence.
   */
  sampleMedia(pc, report) {
    const now = Date.now();
    const byTrack = new Map(); // track id -> inbound-rtp stats
    let dtls = null;
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.trackIdentifier) byTrack.set(s.trackIdentifier, s);
      if (s.type === "transport") dtls = s.dtlsState || dtls;
    }
    const iceUp = pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed";
    const connected = pc.connectionState === "connected" || (iceUp && dtls === "connected");
    if (connected && !pc.connectedAt) {
      pc.connectedAt = now;
      pc.everConnected = true;
    }
    // ICE up but DTLS still handshaking (a very busy server): give it a second period
    const limit = iceUp ? 2 * MEDIA_TIMEOUT_MS : MEDIA_TIMEOUT_MS;
    if (!connected && !pc.connectedAt && now - pc.createdAt > limit) this.pcFailed(pc);
    if (connected) this.mediaState = "connected"; // also after a late success of a "failed" one

    for (const id of this.participants.keys()) {
      const m = this.media.get(id) || {};
      const f = this.flow.get(id) || { since: now, frames: 0, packets: 0, energy: 0, lastFlowAt: 0, firstFrameAt: 0, silentSince: 0, state: "connecting", video: false, audio: false, cameraOff: false, muted: false };
      const v = m.video ? byTrack.get(m.video.id) : null;
      const a = m.audio ? byTrack.get(m.audio.id) : null;
      const frames = v ? v.framesDecoded || 0 : 0;
      const packets = a ? a.packetsReceived || 0 : 0;
      const energy = a ? a.totalAudioEnergy || 0 : 0;
      const video = frames > f.frames;
      const audio = packets > f.packets;
      if (video && !f.firstFrameAt) f.firstFrameAt = now;
      if (video || audio) f.lastFlowAt = now;
      f.video = video;
      f.audio = audio;
      // a disabled camera track sends black frames: black in two samples in a row is "camera off"
      f.blackRun = video && f.blackFrames ? (f.blackRun || 0) + 1 : 0;
      f.cameraOff = Boolean(m.video && f.blackRun >= 2);
      // a disabled microphone sends digital silence: no audio energy at all while packets arrive
      if (audio && energy - f.energy < 1e-9) f.silentSince = f.silentSince || now;
      else if (audio) f.silentSince = 0;
      f.muted = Boolean(f.silentSince && now - f.silentSince >= 2000);
      f.frames = frames;
      f.packets = packets;
      f.energy = energy;
      const reference = Math.max(f.since, pc.connectedAt || pc.createdAt);
      if (!pc.connectedAt) f.state = "connecting";
      else if (video || audio || (f.lastFlowAt && now - f.lastFlowAt < 2500)) f.state = "connected";
      else if (now - Math.max(reference, f.lastFlowAt) > MEDIA_TIMEOUT_MS) f.state = "failed";
      else f.state = "connecting";
      this.flow.set(id, f);
    }
    this.emitMedia();
  }

  /** The tile tells whether a remote picture is black (camera off); see CallView. */
  setBlack(id, black) {
    const f = this.flow.get(id);
    if (f) f.blackFrames = black;
  }

  sampleQuality(pc, report) {
    const sel = selectedPair(report);
    const rtt = sel && Number.isFinite(sel.pair.currentRoundTripTime) ? sel.pair.currentRoundTripTime : null;
    const bitrate = sel && Number.isFinite(sel.pair.availableOutgoingBitrate) ? sel.pair.availableOutgoingBitrate : null;
    let lost = 0;
    let received = 0;
    let jitter = null;
    for (const s of report.values()) {
      if (s.type === "inbound-rtp") {
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
        if (Number.isFinite(s.jitter)) jitter = Math.max(jitter ?? 0, s.jitter);
      }
    }
    let loss = null;
    if (this.lastInbound) {
      const dl = lost - this.lastInbound.lost;
      const dr = received - this.lastInbound.received;
      if (dl + dr > 0) loss = Math.max(0, dl) / (Math.max(0, dl) + Math.max(0, dr));
    }
    this.lastInbound = { lost, received };
    const rampedUp = pc.connectedAt && Date.now() - pc.connectedAt > 10_000;
    const level = classifyQuality({ rtt, loss, jitter, bitrate, rampedUp });
    this.emit("quality", { level, rtt, loss, jitter, bitrate, relay: Boolean(sel && sel.local && sel.local.candidateType === "relay") });
  }

  /**
   * For tests and field diagnosis: per remote participant the decoded video frames and received
   * audio samples, the media state the page shows and when the first frame was decoded, and the
   * selected candidate pair's types.
   */
  async diagnostics() {
    const out = {
      participants: {}, pair: null, state: this.pc ? this.pc.connectionState : "none",
      ice: this.pc ? this.pc.iceConnectionState : "none", media: this.mediaState, relay: this.relay,
    };
    const pc = this.pc;
    if (!pc) return out;
    for (const [id, m] of this.media) {
      const shown = this.participantMedia(id);
      const entry = {
        framesDecoded: 0, audioSamples: 0, audioPackets: 0, hasVideo: Boolean(m.video), hasAudio: Boolean(m.audio),
        media: shown.state, firstFrameAt: shown.firstFrameAt || 0, cameraOff: shown.cameraOff, muted: shown.muted,
      };
      for (const kind of ["video", "audio"]) {
        const track = m[kind];
        if (!track) continue;
        const report = await pc.getStats(track);
        for (const s of report.values()) {
          if (s.type !== "inbound-rtp") continue;
          if (kind === "video") entry.framesDecoded += s.framesDecoded || 0;
          else {
            entry.audioSamples += s.totalSamplesReceived || 0;
            entry.audioPackets += s.packetsReceived || 0;
          }
        }
      }
      out.participants[id] = entry;
    }
    const sel = selectedPair(await pc.getStats());
    if (sel) {
      out.pair = {
        local: sel.local && sel.local.candidateType,
        remote: sel.remote && sel.remote.candidateType,
        rtt: sel.pair.currentRoundTripTime ?? null,
      };
    }
    return out;
  }
}

/**
 * Resolves when ICE gathering is complete, or after `timeoutMs` (the rest then trickles), or —
 * with `settleMs` > 0 — that long after the first candidate.
 */
export function waitForGathering(pc, timeoutMs, settleMs = GATHER_SETTLE_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve(true);
  return new Promise((resolve) => {
    let settle = 0;
    const done = (complete) => {
      clearTimeout(timer);
      clearTimeout(settle);
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", onCandidate);
      resolve(complete);
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done(true);
    };
    const onCandidate = (ev) => {
      if (settleMs > 0 && ev.candidate && ev.candidate.candidate && !settle) {
        settle = setTimeout(() => done(false), settleMs);
      }
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", onCandidate);
  });
}

/** "mm:ss" (or "h:mm:ss") since `startMs`. */
export function elapsed(startMs, now = Date.now()) {
  const s = Math.max(0, Math.floor((now - startMs) / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Plays a media element; when the browser blocks autoplay with sound (a reload mid-call has no
 * user gesture) it plays muted and calls `onBlocked()` so the page can offer "tap for sound".
 */
export async function playMedia(el, onBlocked) {
  try {
    await el.play();
  } catch (err) {
    if (err && err.name === "NotAllowedError" && !el.muted) {
      el.muted = true;
      try {
        await el.play();
      } catch {
        // still blocked: the tap brings it back
      }
      if (onBlocked) onBlocked(el);
    }
    // AbortError: a newer srcObject replaced this one; nothing to do
  }
}

// A call session in the browser: signaling, plan checks, peer connections. No DOM.
// The same rules as summitline/client/session.py (Python): trust nothing the server
// says without a signature this device can check; refuse and raise an alarm otherwise.
//
// Events (CustomEvent, `detail` as noted):
//   plan {plan, hash}   the verified plan       phase {phase, deadline}
//   track {remote, stream}                      sas {remote, sas}
//   peers {}            the set of links changed
//   alarm {text}        a check failed; nothing was sent on its strength
//   fatal {code, message}  the session stopped for good   ended {}
//   press {sending}     the floor goes to the press gateway, or no longer
//   paged {page}        our principal calls (aides)      acked {page, by} (principal, aides)
//   held {device, on}   a principal's floor audio is on hold, or back

import { hex, sdpFingerprints, sas, sha256, sign, statements, verify } from "./crypto.js";
import { mayConnect, media, participant, pressChannels, verifySignedPlan } from "./plan.js";

const VERSION = 1;
const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 5000;
const GATHER_TIMEOUT_MS = 5000; // non-trickle: offers carry their candidates
const STATS_EVERY_MS = 2000;
// An interpreter that hands over speaks on this long, so listeners hear no gap while
// the partner's voice reaches them (as HANDOVER_TAIL_S in client/session.py).
export const HANDOVER_TAIL_MS = 1500;
// After the press deadline the server should announce the doors shut within moments.
const PRESS_GRACE_MS = 2000;

class Link {
  constructor(remote, generation, pc, send, receive) {
    Object.assign(this, { remote, generation, pc, send, receive });
    this.stream = new MediaStream();
    this.last = null; // previous stats sample, for bitrates
  }
  get live() {
    return ["new", "connecting", "connected"].includes(this.pc.connectionState);
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

export class CallSession extends EventTarget {
  constructor({ url, call, identity, pinned, localStream, iceServers = [] }) {
    super();
    Object.assign(this, { url, call, identity, pinned, localStream, iceServers });
    this.device = identity.fingerprint;
    this.signed = null;
    this.planHash = null;
    this.phase = "planned";
    this.deadline = null;
    this.links = new Map();
    this.generations = new Map();
    this.present = new Map(); // remote -> true if it was there before me (so I offer)
    this.alarms = [];
    this.ws = null;
    this.stopped = false;
    this.fatal = null;
    this.statsTimer = null;
    this.booth = { live: {}, sources: {} };
    this.press = null; // the feed to the press gateway, during the window
    this.pressTimer = null;
    this.pressCutAt = null;
    this.pages = []; // pages of our principal (aides): {id, by, at, acked}
    this.acks = new Map(); // our pages -> the aides coming (principals)
    this.held = new Set(); // principals on hold
    this.onHold = false;
    this.muted = false;
  }

  // -- interpretation -----------------------------------------------------------------
  get me() {
    return this.signed ? participant(this.signed.plan, this.device) : null;
  }

  get channel() {
    return this.me && this.me.role === "interpreter" ? this.me.language : null;
  }

  get live() {
    return this.channel !== null && this.booth.live[this.channel] === this.device;
  }

  goLive() { this.send({ type: "booth", action: "live" }); }
  handover(partner) { this.send({ type: "booth", action: "handover", to: partner }); }
  goQuiet() { this.send({ type: "booth", action: "quiet" }); }
  setSource(source) { this.send({ type: "source", source }); }

  async on_booth(msg) {
    const wasLive = this.live;
    this.booth = { live: { ...msg.live }, sources: { ...msg.sources } };
    if (this.channel !== null) {
      // an interpreter's microphone is open only while live, and for the tail after a
      // handover (so that listeners hear no gap); off air means off air at once
      clearTimeout(this.tail);
      const holder = this.booth.live[this.channel];
      if (this.live) this.setMuted(false);
      else if (wasLive && holder && holder !== this.device) {
        this.tail = setTimeout(() => { if (!this.live) this.setMuted(true); }, HANDOVER_TAIL_MS);
      } else this.setMuted(true);
    }
    this.emit("booth", this.booth);
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  alarm(text) {
    this.alarms.push(text);
    console.warn("summitline alarm:", text);
    this.emit("alarm", { text });
  }

  // -- connection ---------------------------------------------------------------------
  start() {
    let backoff = RECONNECT_MIN_MS;
    const connect = () => {
      if (this.stopped) return;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let queue = Promise.resolve(); // handle messages one at a time, in order
      ws.onopen = () => { backoff = RECONNECT_MIN_MS; };
      ws.onmessage = (ev) => {
        queue = queue.then(() => this.handle(JSON.parse(ev.data))).catch((err) => {
          this.stop("internal", String(err));
        });
      };
      ws.onclose = () => {
        if (this.ws === ws) this.ws = null;
        if (this.stopped) return;
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
      };
    };
    connect();
    this.statsTimer = setInterval(() => this.reportStats(), STATS_EVERY_MS);
  }

  stop(code, message) {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.statsTimer);
    if (code) {
      this.fatal = { code, message };
      this.emit("fatal", this.fatal);
    }
    if (this.ws) this.ws.close();
    this.closeLinks();
  }

  closeLinks() {
    this.cutPress("the call's media stopped");
    for (const link of this.links.values()) link.pc.close();
    this.links.clear();
    this.emit("peers");
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  endCall() {
    this.send({ type: "end" });
  }

  leave() {
    this.stop();
  }

  async handle(msg) {
    const handler = this[`on_${msg.type.replace("-", "_")}`];
    if (handler) await handler.call(this, msg);
  }

  // -- handshake and plan -------------------------------------------------------------
  async on_challenge(msg) {
    if (!msg.versions.includes(VERSION)) {
      this.stop("unsupported-version", `the server speaks ${msg.versions}`);
      return;
    }
    const signature = await sign(this.identity.privateKey,
                                 statements.join(this.call, this.device, msg.nonce));
    this.send({ type: "hello", version: VERSION, call: this.call, device: this.device,
                nonce: msg.nonce, signature });
  }

  async on_welcome(msg) {
    let hash;
    try {
      hash = await verifySignedPlan(msg.signed_plan, this.pinned);
      const plan = msg.signed_plan.plan;
      if (plan.call !== this.call) throw new Error("the server served the plan of another call");
      if (!participant(plan, this.device)) throw new Error("this device is not in the plan");
      if (this.planHash && hash !== this.planHash) {
        throw new Error("the server now serves a different plan for this call");
      }
    } catch (err) {
      this.alarm(`plan refused: ${err.message}`);
      this.stop("plan-rejected", err.message);
      return;
    }
    this.signed = msg.signed_plan;
    this.planHash = hash;
    this.serverIce = msg.ice_servers || []; // TURN credentials minted for this device
    this.emit("plan", { plan: this.signed.plan, hash });
    this.present = new Map(msg.peers.map((p) => [p.device, true]));
    for (const p of msg.peers) {
      this.generations.set(p.device, Math.max(this.generations.get(p.device) || 0, p.generation));
    }
    await this.on_booth(msg.booth || { live: {}, sources: {} });
    this.held = new Set(msg.held || []);
    await this.takePhase(msg);
    await this.connectPeers();
    await this.pressWindow();
  }

  // Take the phase the server announces, but a start only as a delegation of the plan
  // signed it; the press deadline is computed here from the signed start.
  async takePhase(msg) {
    let phase = msg.phase, deadline = null;
    if (phase === "open" || phase === "closed") {
      const start = await this.signedStart(msg.start);
      if (start === null) {
        this.alarm("the server says the call has started, but no delegation of the plan " +
                   "signed the start: no media sent");
        phase = "planned";
      } else {
        this.startedAt = start;
        if (phase === "open") deadline = start + 1000 * this.signed.plan.press_window_s;
      }
    }
    this.phase = phase;
    this.deadline = deadline;
    this.emit("phase", { phase, deadline });
  }

  async signedStart(proof) {
    if (!proof || !Number.isSafeInteger(proof.at)) return null;
    const d = this.signed.plan.delegations.find((x) => x.id === proof.delegation);
    if (!d) return null;
    const ok = await verify(d.key, statements.control(this.call, "start", d.id, proof.at),
                            proof.signature);
    return ok ? proof.at : null;
  }

  async on_phase(msg) {
    if (!this.signed) return;
    await this.takePhase(msg);
    if (msg.phase === "ended") {
      this.stopped = true;
      clearInterval(this.statsTimer);
      this.closeLinks();
      this.emit("ended");
      return;
    }
    await this.connectPeers();
    await this.pressWindow();
  }

  // -- the press window ---------------------------------------------------------------
  // A principal sends its floor to the press gateway while the window of the signed start
  // is open, and stops at its deadline by itself, whatever the server says.
  async pressWindow() {
    if (this.phase !== "open" || this.deadline === null) {
      this.cutPress("the doors are shut");
      return;
    }
    const me = this.me;
    const pressChannel = this.channel !== null && pressChannels(this.signed.plan)
      .includes(this.channel); // an interpreter of a channel the plan gives the press
    if (!me || !(me.role === "principal" || pressChannel) || this.press ||
        this.pressCutAt !== null) return;
    const left = this.deadline - Date.now();
    if (left <= 0) {
      this.cutPress("the press window of the signed start is over");
      return;
    }
    this.pressTimer = setTimeout(() => this.pressDeadline(), left);
    const pc = new RTCPeerConnection({ iceServers: [...this.iceServers, ...(this.serverIce || [])] });
    this.press = pc;
    pc.onconnectionstatechange = () => { // lost while the window is open: offer again
      if (pc.connectionState !== "failed" || this.press !== pc) return;
      clearTimeout(this.pressTimer);
      this.press = null;
      pc.close();
      console.warn("press feed lost; offering again");
      this.pressWindow();
    };
    for (const track of this.localStream?.getTracks() || []) {
      pc.addTransceiver(track, { direction: "sendonly" });
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (this.press === pc) this.send({ type: "press-offer", sdp: pc.localDescription.sdp });
  }

  pressDeadline() {
    this.cutPress("deadline");
    setTimeout(() => {
      if (this.phase === "open" && !this.stopped) {
        this.alarm("the server keeps the press window open past the deadline of the signed " +
                   "plan; this end stopped sending to the press at the deadline");
      }
    }, PRESS_GRACE_MS);
  }

  cutPress(why) {
    clearTimeout(this.pressTimer);
    const pc = this.press;
    if (!pc) return;
    pc.close(); // synchronous: nothing more leaves for the press
    this.press = null;
    this.pressCutAt = Date.now();
    console.info("press feed closed:", why);
    this.emit("press", { sending: false });
  }

  async on_press_answer(msg) {
    const pc = this.press;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    this.emit("press", { sending: true });
  }

  // -- the aide button ----------------------------------------------------------------
  own(device, role) {
    const me = this.me, them = this.signed && participant(this.signed.plan, device);
    return !!(me && them && them.role === role && them.delegation === me.delegation);
  }

  async page() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
    const at = Date.now();
    const signature = await sign(this.identity.privateKey,
                                 statements.page(this.call, this.device, id, at));
    this.acks.set(id, []);
    this.send({ type: "page", id, at, signature });
    return id;
  }

  async ack(id) {
    const at = Date.now();
    const signature = await sign(this.identity.privateKey,
                                 statements.ack(this.call, this.device, id, at));
    this.send({ type: "ack", page: id, at, signature });
  }

  // An aside: the floor audio falls silent to everyone (the press included); the other
  // side sees only "on hold".
  hold(on) {
    this.onHold = on;
    this.applyMicrophone();
    this.send({ type: "hold", on });
  }

  async signedBy(device, statement, signature) {
    const p = this.signed && participant(this.signed.plan, device);
    return !!p && await verify(p.key, statement, signature);
  }

  async on_paged(msg) {
    if (!this.own(msg.by, "principal") || !await this.signedBy(
      msg.by, statements.page(this.call, msg.by, msg.id, msg.at), msg.signature)) {
      this.alarm("a page that our principal did not sign; ignored");
      return;
    }
    if (this.pages.some((p) => p.id === msg.id)) return; // again, after a reconnect
    const page = { id: msg.id, by: msg.by, at: msg.at, acked: false };
    this.pages.push(page);
    this.emit("paged", { page });
  }

  async on_acked(msg) {
    if (!this.own(msg.by, "aide") || !await this.signedBy(
      msg.by, statements.ack(this.call, msg.by, msg.page, msg.at), msg.signature)) {
      this.alarm("an acknowledgement that no aide of ours signed; ignored");
      return;
    }
    if (!this.acks.has(msg.page)) this.acks.set(msg.page, []);
    this.acks.get(msg.page).push(msg.by);
    for (const p of this.pages) if (p.id === msg.page) p.acked = true;
    this.emit("acked", { page: msg.page, by: msg.by });
  }

  async on_held(msg) {
    if (msg.on) this.held.add(msg.device);
    else this.held.delete(msg.device);
    this.emit("held", { device: msg.device, on: msg.on });
  }

  async on_peer_joined(msg) { this.present.set(msg.device, false); }
  async on_peer_left(msg) { this.present.delete(msg.device); }
  async on_pong() {}

  async on_error(msg) {
    console.warn("summitline server error", msg.code, msg.message);
    this.emit("server-error", msg);
    if (msg.fatal) this.stop(msg.code, msg.message);
  }

  // -- negotiation --------------------------------------------------------------------
  kinds(remote) {
    const plan = this.signed.plan;
    return [media(plan, this.phase, this.device, remote),
            media(plan, this.phase, remote, this.device)];
  }

  newLink(remote, generation) {
    const [send, receive] = this.kinds(remote);
    const pc = new RTCPeerConnection({ iceServers: [...this.iceServers,
                                                    ...(this.serverIce || [])] });
    const link = new Link(remote, generation, pc, send, receive);
    pc.ontrack = (ev) => {
      if (!receive.includes(ev.track.kind)) {
        this.alarm(`${remote.slice(0, 12)} sent ${ev.track.kind} that the plan does not allow`);
        return;
      }
      link.stream.addTrack(ev.track);
      this.emit("track", { remote, stream: link.stream, role: participant(this.signed.plan, remote)?.role });
    };
    pc.onconnectionstatechange = async () => {
      if (pc.connectionState === "connected") {
        // From the SDP as sent and as received over signaling: the peer connection's own
        // descriptions are re-serialised and may drop fingerprint lines.
        const code = await sas(this.call, sdpFingerprints(link.sentSdp),
                               sdpFingerprints(link.receivedSdp));
        link.sas = code;
        this.emit("sas", { remote, sas: code });
      }
      this.emit("peers");
    };
    return link;
  }

  install(link) {
    const old = this.links.get(link.remote);
    this.links.set(link.remote, link);
    this.generations.set(link.remote, link.generation);
    if (old) old.pc.close();
    this.emit("peers");
  }

  localTrack(kind) {
    return this.localStream ? this.localStream.getTracks().find((t) => t.kind === kind) : null;
  }

  async connectPeers() {
    if (!this.signed) return;
    for (const [remote, iOffer] of this.present) {
      const [send, receive] = this.kinds(remote);
      const current = this.links.get(remote);
      if (iOffer && (send.length || receive.length) && (!current || !current.live)) {
        await this.offer(remote);
      }
    }
  }

  async offer(remote) {
    const link = this.newLink(remote, (this.generations.get(remote) || 0) + 1);
    for (const kind of ["audio", "video"]) {
      const track = link.send.includes(kind) ? this.localTrack(kind) : null;
      if (track) link.pc.addTrack(track, this.localStream);
      else if (link.receive.includes(kind)) link.pc.addTransceiver(kind, { direction: "recvonly" });
    }
    await link.pc.setLocalDescription(await link.pc.createOffer());
    await gathered(link.pc);
    this.install(link);
    this.send(await this.signedSdp("offer", link));
  }

  async signedSdp(kind, link) {
    const sdp = link.sentSdp = link.pc.localDescription.sdp;
    const signature = await sign(this.identity.privateKey, statements.sdp({
      call: this.call, planHash: this.planHash, sender: this.device, receiver: link.remote,
      generation: link.generation, kind, sdpHash: hex(await sha256(sdp)) }));
    return { type: kind, to: link.remote, generation: link.generation, sdp, signature };
  }

  async checkSigned(kind, msg) {
    const sender = participant(this.signed.plan, msg.from);
    if (!sender) {
      this.alarm(`${kind} from a device outside the plan; ignored`);
      return false;
    }
    const ok = sdpFingerprints(msg.sdp).length > 0 && await verify(sender.key, statements.sdp({
      call: this.call, planHash: this.planHash, sender: msg.from, receiver: this.device,
      generation: msg.generation, kind, sdpHash: hex(await sha256(msg.sdp)) }), msg.signature);
    if (!ok) {
      this.alarm(`${kind} from ${sender.name} fails its signature: it was changed on the ` +
                 "way (the DTLS fingerprint may have been swapped); no media sent");
    }
    return ok;
  }

  async on_offer(msg) {
    if (!this.signed || !(await this.checkSigned("offer", msg))) return;
    const remote = msg.from;
    if (!mayConnect(this.signed.plan, this.phase, this.device, remote)) {
      this.alarm("offer from a device the plan does not let us connect to; ignored");
      return;
    }
    if (msg.generation <= (this.generations.get(remote) || 0) && this.links.has(remote)) {
      this.alarm(`offer of old generation ${msg.generation} (replayed?); ignored`);
      return;
    }
    const link = this.newLink(remote, msg.generation);
    link.receivedSdp = msg.sdp;
    await link.pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    for (const t of link.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      const sends = link.send.includes(kind), receives = link.receive.includes(kind);
      if (sends && this.localTrack(kind)) await t.sender.replaceTrack(this.localTrack(kind));
      t.direction = sends && receives ? "sendrecv" : sends ? "sendonly" : receives ? "recvonly"
        : "inactive";
      if (sends && this.localStream) t.sender.setStreams(this.localStream);
    }
    await link.pc.setLocalDescription(await link.pc.createAnswer());
    await gathered(link.pc);
    this.install(link);
    this.send(await this.signedSdp("answer", link));
  }

  async on_answer(msg) {
    const link = this.links.get(msg.from);
    if (!link || link.generation !== msg.generation ||
        link.pc.signalingState !== "have-local-offer") {
      this.alarm("answer to no offer of ours; ignored");
      return;
    }
    if (!(await this.checkSigned("answer", msg))) {
      this.links.delete(link.remote);
      link.pc.close();
      this.emit("peers");
      return;
    }
    link.receivedSdp = msg.sdp;
    await link.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  }

  async on_candidate(msg) {
    const link = this.links.get(msg.from);
    if (!link || link.generation !== msg.generation || !msg.candidate) return;
    await link.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid,
                                    sdpMLineIndex: msg.sdp_mline_index }).catch(() => {});
  }

  async on_bye(msg) {
    const link = this.links.get(msg.from);
    if (link && link.generation === msg.generation) {
      this.links.delete(link.remote);
      link.pc.close();
      this.emit("peers");
    }
  }

  // -- media controls and health ------------------------------------------------------
  setMuted(muted) {
    this.muted = muted;
    this.applyMicrophone();
  }

  applyMicrophone() {
    const on = !this.muted && !this.onHold;
    for (const t of this.localStream?.getAudioTracks() || []) t.enabled = on;
  }

  setCamera(on) {
    for (const t of this.localStream?.getVideoTracks() || []) t.enabled = on;
  }

  // Connection health per peer connection, from getStats().
  async health() {
    const out = [];
    for (const link of this.links.values()) {
      out.push({ peer: link.remote, ...(await linkHealth(link)) });
    }
    return out;
  }

  async reportStats() {
    if (!this.signed || this.links.size === 0) return;
    const peers = await this.health();
    this.send({ type: "stats", peers: peers.map((p) => ({
      peer: p.peer, state: p.state, rtt_ms: p.rtt_ms, loss: p.loss,
      bitrate_kbps: p.bitrate_kbps, width: p.width, height: p.height, path: p.path })) });
  }
}

// One link's health: round-trip time, loss, received bitrate, resolution, path, and
// the raw counters tests look at.
export async function linkHealth(link) {
  const report = await link.pc.getStats();
  const h = { state: link.pc.connectionState, rtt_ms: null, loss: null, bitrate_kbps: null,
              width: null, height: null, path: null, framesDecoded: 0, audioLevel: 0,
              audioPacketsReceived: 0, bytesReceived: 0 };
  let lost = 0, received = 0;
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  report.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      if (s.currentRoundTripTime !== undefined) h.rtt_ms = s.currentRoundTripTime * 1000;
      const local = byId.get(s.localCandidateId), remote = byId.get(s.remoteCandidateId);
      const relayed = [local, remote].some((c) => c && c.candidateType === "relay");
      h.path = relayed ? "relayed" : "direct";
    }
    if (s.type === "inbound-rtp") {
      lost += s.packetsLost || 0;
      received += s.packetsReceived || 0;
      h.bytesReceived += s.bytesReceived || 0;
      if (s.kind === "video") {
        h.framesDecoded += s.framesDecoded || 0;
        if (s.frameWidth) { h.width = s.frameWidth; h.height = s.frameHeight; }
      } else if (s.kind === "audio") {
        h.audioPacketsReceived += s.packetsReceived || 0;
        h.audioLevel = s.audioLevel || 0;
      }
    }
  });
  if (received + lost > 0) h.loss = Math.max(0, lost) / (received + Math.max(0, lost));
  const now = performance.now();
  if (link.last) {
    const seconds = (now - link.last.at) / 1000;
    if (seconds > 0) h.bitrate_kbps = ((h.bytesReceived - link.last.bytes) * 8) / 1000 / seconds;
  }
  link.last = { at: now, bytes: h.bytesReceived };
  return h;
}

// A call session in the browser: signaling, plan checks, peer connections. No DOM.
// The same rules as summitline/client/session.py (Python): trust nothing the server
// says without a signature this device can check; refuse and raise an alarm otherwise.
//
// Which links to hold, who offers, when a link has stalled and how it is repaired are
// the rules of web/endpoint.js (a port of core/endpoint.py): this session feeds them
// what happens (server messages, connection states, decoded frames, time) and carries
// out the actions they return (offer, answer, close, report, show, alarm).
//
// Events (CustomEvent, `detail` as noted):
//   plan {plan, hash}   the verified plan       phase {phase, deadline}
//   stream {remote, generation, stream}  a link's stream got a track: hold it in a
//                       (muted) media element, so that its audio plays out and counts
//   track {remote, stream, role}  the stream that plays for `remote` now: the first
//                       link once it carries media, and a repair's once it carries
//                       (make-before-break: the old one plays until then)
//   sas {remote, sas}   the verification code of the link that plays (all: `codes`)
//   remote-media {remote, muted, cameraOff}  what a peer says of its own microphone and
//                       camera, over the peer connection itself (the state channel: the
//                       server cannot forge or alter it; docs/protocol.md 5.8)
//   status {remote, state, since}  "connecting", "ok" or "reconnecting" (since: clock())
//   peers {}            the set of links changed
//   alarm {text}        a check failed; nothing was sent on its strength
//   fatal {code, message}  the session stopped for good   ended {}
//   press {sending}     the floor goes to the press gateway, or no longer
//   paged {page}        our principal calls (aides)      acked {page, by} (principal, aides)
//   held {device, on}   a principal's floor audio is on hold, or back
//   revoked {device, delegation, name}  a verified revocation: the device's delegation
//                       revoked it; its links are closed and it is refused from now on
//   route {route}       "mesh" or "sfu": how this briefing's media goes (docs/protocol.md
//                       5.12), decided on each welcome before `plan` is emitted
//
// On the SFU route (web/sfu.js) there are no links between endpoints: the same events
// (stream, track, status, peers) come from the feeds of the SFU, every frame encrypted.

import { b64u, groupCode, hex, sdpFingerprints, sas, sha256, sign, statements, unb64u,
         verify } from "./crypto.js";
import { FrameError, generateEcdh, KINDS, randomFrameKey, unwrapKey, wrapKey } from "./frames.js";
import { BoothLedger } from "./booth.js";
import { floorSdp, lowDelay, studioMicrophone } from "./floor.js";
import { apply, endpoint, pressDeadline, START_SKEW_MS, startAhead, TICK_MS } from "./endpoint.js";
import { SfuRoute, sfuRoute } from "./sfu.js";
import { followRotations, mayConnect, media, participant, pressChannels, studioAudio,
         verifySignedPlan, whoIs } from "./plan.js";

const VERSION = 1;
// Reconnection of the signaling connection: quick first, never more than a second
// apart, so that the page rejoins within 2 s of the server's (or the network's) return.
const RECONNECT_MIN_MS = 200;
const RECONNECT_MAX_MS = 1000;
// A connection that has not opened by then is given up.
const OPEN_TIMEOUT_MS = 2000;
// Once open, the server has 10 s for the handshake (as it gives the hello): a slow
// welcome is waited for, not raced by a second join of the same device.
const HANDSHAKE_TIMEOUT_MS = 10000;
// Pinged this often once joined, and given up after this long without any message
// from the server: a cut network is noticed in seconds, not after TCP's minutes.
const KEEPALIVE_MS = 1000;
const KEEPALIVE_TIMEOUT_MS = 3000;
const KEEPALIVE_CHECK_MS = 250;
// Ticks are skipped while this many inputs wait for the rules (an offer gathering its
// candidates holds them up): time is not lost, it is only not fed twice over.
const MAX_PENDING_INPUTS = 8;
const GATHER_TIMEOUT_MS = 5000; // non-trickle: offers carry their candidates
const STATS_EVERY_MS = 2000;
// An interpreter that hands over speaks on this long, so listeners hear no gap while
// the partner's voice reaches them (as HANDOVER_TAIL_S in client/session.py).
export const HANDOVER_TAIL_MS = 1500;
// After the press deadline the server should announce the doors shut within moments.
const PRESS_GRACE_MS = 2000;
// The peer-to-peer state channel of every link (docs/protocol.md 5.8): a data channel
// negotiated in the signed SDP, so that only the peer's DTLS end can write into it.
export const STATE_CHANNEL = { label: "summitline-state", id: 0 };
const STATE_MAX_BYTES = 256; // a state message is a few dozen bytes; more is refused
// The booth channel of every link (docs/protocol.md 5.11): booth partners' notes and
// nudges, and an interpreter's signals to the principal speaking. Peer-to-peer inside
// the link's DTLS, like the state channel: the server never sees it, nor any record.
export const BOOTH_CHANNEL = { label: "summitline-booth", id: 1 };
export const BOOTH_NOTE_MAX_CHARS = 500; // a line typed in a booth, not a document
const BOOTH_MAX_BYTES = 2048; // the longest note, UTF-8 and JSON-escaped, fits
export const SPEAKER_SIGNALS = ["slow-down", "cannot-hear"];
// The browser sends what fits its uplink: one video encoding per peer (a mesh), so the
// uplink is shared out. UPLINK_KBPS is what this end may send in all; each peer's audio
// is set aside first (Opus speech and its packet overhead), and the rest is split evenly
// between the peers it sends video to, capped per peer (what one picture needs: a
// bilateral sends about as much as Chromium would unbidden) and floored (below it a
// picture is not worth sending; the uplink is then over budget, and the encoder's own
// congestion control still has the last word). Re-applied whenever a link comes or goes
// (RTCRtpSender.setParameters, encodings[].maxBitrate).
export const UPLINK_KBPS = 2500;
export const UPLINK_AUDIO_KBPS = 40;
export const VIDEO_MAX_KBPS = 1500;
export const VIDEO_MIN_KBPS = 100;

// Each peer's share of the uplink for video, in kbps, when video goes to `peers` peers.
export function videoShare(peers, uplink = UPLINK_KBPS) {
  if (peers <= 0) return VIDEO_MAX_KBPS;
  const share = Math.floor((uplink - peers * UPLINK_AUDIO_KBPS) / peers);
  return Math.max(VIDEO_MIN_KBPS, Math.min(VIDEO_MAX_KBPS, share));
}

// The rules' clock: monotonic milliseconds, so that a changed wall clock fakes no stall.
export const clock = () => Math.floor(performance.now());

const keyOf = (remote, generation) => `${remote} ${generation}`;

// One peer connection with a remote device, at a generation.
class Link {
  constructor(remote, generation, pc, send, receive) {
    Object.assign(this, { remote, generation, pc, send, receive });
    this.stream = new MediaStream();
    this.last = {}; // the previous stats sample of each reader, for bitrates
    this.counts = null; // previous decoded counts, for media health
    this.sas = null;
    this.state = null; // the data channel of peer state (STATE_CHANNEL)
    this.boothChannel = null; // the booth channel (BOOTH_CHANNEL)
  }
}

// A booth message, checked: {kind: "note", text} | {kind: "nudge"} | {kind: "signal",
// signal}, or null.
export function boothMessage(text) {
  if (typeof text !== "string" || text.length > BOOTH_MAX_BYTES) return null;
  let msg;
  try { msg = JSON.parse(text); } catch { return null; }
  if (!msg || msg.v !== 1) return null;
  if (msg.kind === "note" && typeof msg.text === "string" && msg.text.length > 0 &&
      msg.text.length <= BOOTH_NOTE_MAX_CHARS) return { kind: "note", text: msg.text };
  if (msg.kind === "nudge") return { kind: "nudge" };
  if (msg.kind === "signal" && SPEAKER_SIGNALS.includes(msg.signal)) {
    return { kind: "signal", signal: msg.signal };
  }
  return null;
}

// A peer's state message, checked: {v: 1, muted: bool, camera_off: bool}, or null.
export function peerState(text) {
  if (typeof text !== "string" || text.length > STATE_MAX_BYTES) return null;
  let msg;
  try { msg = JSON.parse(text); } catch { return null; }
  if (!msg || msg.v !== 1 || typeof msg.muted !== "boolean" ||
      typeof msg.camera_off !== "boolean") return null;
  return { muted: msg.muted, cameraOff: msg.camera_off };
}

// What a peer connection decoded so far, from getStats() inbound-rtp: video frames;
// audio samples played out, and of them the concealed ones (made up for lost packets),
// and packets (for a stream nothing plays out, which decodes no samples).
async function decoded(pc) {
  const c = { video: 0, samples: 0, concealed: 0, packets: 0 };
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") c.video += s.framesDecoded || 0;
    else if (s.kind === "audio") {
      c.samples += s.totalSamplesReceived || 0;
      c.concealed += s.concealedSamples || 0;
      c.packets += s.packetsReceived || 0;
    }
  });
  return c;
}

// The kinds that brought new frames between two readings of `decoded`. Concealment is
// not a frame: while audio plays out, only samples that were not concealed count.
export function progressed(before, after) {
  const b = before || { video: 0, samples: 0, concealed: 0, packets: 0 };
  const kinds = [];
  const playing = after.samples > b.samples;
  if (playing ? after.samples - after.concealed > b.samples - b.concealed
    : after.packets > b.packets) kinds.push("audio");
  if (after.video > b.video) kinds.push("video");
  return kinds;
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  const began = performance.now();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        const took = performance.now() - began;
        // a slow gathering delays the answer past the offerer's patience (endpoint.js)
        if (took > 1000) console.info(`summitline: ICE gathering took ${Math.round(took)} ms`);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(() => {
      if (pc.iceGatheringState !== "complete") {
        console.info(`summitline: ICE gathering unfinished after ${GATHER_TIMEOUT_MS} ms`);
      }
      resolve();
    }, GATHER_TIMEOUT_MS);
  });
}

export class CallSession extends EventTarget {
  constructor({ url, call, identity, pinned, localStream, iceServers = [],
                frameEncryption = false }) {
    super();
    Object.assign(this, { url, call, identity, pinned, localStream, iceServers });
    // End-to-end frame encryption (docs/protocol.md 5.9): off by default, as a
    // peer-to-peer link is end to end under DTLS-SRTP already; an SFU needs it, and the
    // SFU route turns it on whatever this option (`startFrames`).
    this.frameOption = frameEncryption; // the mesh's links encrypt frames too
    this.e2ee = null;
    if (frameEncryption) this.startFrames();
    this.route = null; // "mesh" or "sfu", from the verified plan and the welcome
    this.sfu = new SfuRoute(this, { decoded, progressed, gathered, clock });
    this.offKinds = new Map(); // remote -> the kinds it said it sends none of (`media`)
    this.device = identity.fingerprint;
    this.signed = null;
    this.planHash = null;
    this.phase = "planned";
    this.deadline = null;
    this.rules = endpoint(this.device); // web/endpoint.js: the link rules
    this.peers = new Map(); // keyOf(remote, generation) -> Link, every open one
    this.offers = new Map(); // keyOf(remote, generation) -> a verified offer to answer
    this.offered = new Set(); // keyOf(remote, generation) of every offer this end sent
    this.shown = new Map(); // remote -> the generation whose stream plays
    this.status = new Map(); // remote -> {state, since}, as the rules say to show
    this.stalls = []; // every link report made, lost and restored
    this.reports = []; // link reports waiting for signaling (for the record)
    // Link reports sent but not known to have arrived: a report is known to have arrived
    // once a ping sent after it is answered (the server reads a connection in order).
    // Those still unknown when the connection is given up go again after the next
    // welcome: a stall is seen in 1.5 s, a dead connection only after 3.
    this.unconfirmed = []; // {report, ping: the id of the first ping sent after it}
    this.ruleQueue = Promise.resolve(); // inputs are applied in order, one at a time
    this.pending = 0;
    this.ticking = false;
    this.alarms = [];
    this.ws = null;
    this.welcomed = false; // the current signaling connection has been welcomed
    this.studio = null; // the microphone's settings once the plan turned its processing off
    this.replacedAudio = []; // the microphone's tracks from before (web/floor.js)
    this.pings = 0;
    this.stopped = false;
    this.fatal = null;
    this.statsTimer = null;
    this.tickTimer = null;
    // Who is live, as far as signed booth actions bear the server out (web/booth.js)
    this.booth = { live: {}, sources: {} };
    this.ledger = null; // the booth actions seen, across rejoins
    this.ignoredCandidates = 0; // candidate messages: only the signed SDP's count
    this.startSeen = null; // wall clock when this end first saw the signed start
    this.otherStarts = new Set(); // later, different signed starts (alarmed)
    this.began = Date.now(); // booth actions from before this page do not put it on air
    this.inherited = new Set(); // "channel/seq" of such actions, alarmed once
    this.press = null; // the feed to the press gateway, during the window
    this.pressTimer = null;
    this.pressCutAt = null;
    this.pages = []; // pages of our principal (aides): {id, by, at, acked}
    this.acks = new Map(); // our pages -> the aides coming (principals)
    this.held = new Set(); // principals on hold
    this.onHold = false;
    this.coughing = false; // the cough key is held
    this.muted = false;
    this.cameraOn = true;
    this.announced = null; // the kinds announced off on this signaling connection
    // Devices of the plan their delegation revoked (each a verified revocation): no
    // link with them from then on, across reconnections.
    this.revoked = new Map();
    this.codes = new Map(); // remote -> the verification code of the link that plays
    this.remoteMedia = new Map(); // remote -> {muted, cameraOff}, from the state channel
    this.groupCode = null; // over the verified plan and every delegation's key (crypto.js)
    this.uplink = { peers: 0, kbps: null }; // the video share each peer gets now
    this.uplinkQueue = Promise.resolve(); // setParameters calls, one round at a time
  }

  // The frame worker and this call's keys (docs/protocol.md 5.9, 5.10), once.
  startFrames() {
    if (this.e2ee) return;
    this.e2ee = {
      worker: new Worker(new URL("./e2ee-worker.js", import.meta.url), { type: "module" }),
      ecdh: generateEcdh(), // a promise: {privateKey, publicRaw}
      // a media key per kind: a device is handed only the kinds the plan lets it receive
      own: { audio: randomFrameKey(0), video: randomFrameKey(0) },
      peerEcdh: new Map(), // device -> b64u of its ECDH key for the call
      handed: new Map(), // device -> { kind: the id of our key of that kind last wrapped to it }
      present: new Set(),
    };
    const worker = this.e2ee.worker;
    // per kind, the last of our keys the worker sealed a frame under (it says so at the first)
    this.e2ee.sealed = { audio: null, video: null };
    worker.addEventListener("message", ({ data }) => {
      if (data.type === "sealed" && data.kind in this.e2ee.sealed) {
        this.e2ee.sealed[data.kind] = data.keyId;
      }
    });
    this.e2ee.ready = new Promise((resolve) => {
      const ready = ({ data }) => {
        if (data.type !== "ready") return;
        worker.removeEventListener("message", ready);
        resolve();
      };
      worker.addEventListener("message", ready);
    });
    for (const kind of KINDS) worker.postMessage({ type: "own", kind, key: this.e2ee.own[kind] });
  }

  // Whether the mesh's links encrypt their frames (the session's option).
  get meshFrames() {
    return this.frameOption && this.e2ee !== null;
  }

  rtcIceServers() {
    return [...this.iceServers, ...(this.serverIce || [])];
  }

  // Per remote device, the link that plays (or, before any did, the one tried); on the
  // SFU route, its feed.
  get links() {
    if (this.route === "sfu") return this.sfu.links;
    const out = new Map();
    for (const [remote, rules] of this.rules.links) {
      for (const t of [rules.playing, rules.trying]) {
        const link = t ? this.peers.get(keyOf(remote, t.generation)) : undefined;
        if (link && !out.has(remote)) out.set(remote, link);
      }
    }
    return out;
  }

  // Remote devices whose link is being repaired, and for how many seconds.
  reconnecting() {
    const now = clock(), out = new Map();
    for (const [remote, { state, since }] of this.status) {
      if (state === "reconnecting") out.set(remote, Math.max(0, (now - since) / 1000));
    }
    return out;
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

  async goLive() { this.send(await this.boothAction("live")); }
  async handover(partner) { this.send(await this.boothAction("handover", partner)); }
  // Ask the partner to take over: this interpreter stays live until it accepts.
  async requestHandover(partner) { this.send(await this.boothAction("request", partner)); }
  // The partner asking this interpreter to take over (the booth's latest action is its
  // request naming it), or null.
  get handoverAsker() {
    return this.ledger && this.channel !== null ? this.ledger.asker(this.channel, this.device)
      : null;
  }
  async answerHandover(accept) {
    const asker = this.handoverAsker;
    if (!asker) throw new Error("no booth partner asks this interpreter to take over");
    this.send(await this.boothAction(accept ? "accept" : "decline", asker));
  }
  async goQuiet() { this.send(await this.boothAction("quiet")); }

  // A booth action signed by this interpreter, next in its booth's sequence.
  async boothAction(action, to = null) {
    const channel = this.channel;
    if (!this.ledger || channel === null) {
      throw new Error("only an interpreter of the plan, joined, acts in a booth");
    }
    const seq = this.ledger.nextSeq(channel), at = Date.now();
    const signature = await sign(this.identity.privateKey, statements.booth(
      this.call, this.planHash, channel, action, this.device, seq, at, to));
    return { type: "booth", action, to, seq, at, signature };
  }
  setSource(source) { this.send({ type: "source", source }); }

  async on_booth(msg) {
    if (!this.signed) return;
    const wasLive = this.live;
    if (!this.ledger) this.ledger = new BoothLedger(this.call, this.signed.plan, this.planHash);
    const alarms = await this.ledger.take(msg.actions || {});
    const believed = this.ledger.live(msg.live || {});
    // An interpreter goes on air only by an action made since this page began: an old
    // go-live of its own, replayed after a reload, must not open its microphone.
    const mine = this.channel;
    if (mine !== null && believed.live[mine] === this.device &&
        (this.ledger.since.get(mine) ?? 0) < this.began - START_SKEW_MS) {
      delete believed.live[mine];
      const key = `${mine}/${this.ledger.seq.get(mine)}`;
      if (!this.inherited.has(key)) {
        this.inherited.add(key);
        believed.alarms.push({ text: "the server puts this interpreter on air by a booth " +
                               "action from before this session; not on air: go live again " +
                               "to speak", key: "alarm_booth_inherited", args: {} });
      }
    }
    for (const a of [...alarms, ...believed.alarms]) this.alarm(a.text, a.key, a.args);
    this.booth = { live: believed.live, sources: { ...msg.sources } };
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

  // text: English, for logs and tests; key/args: an i18n key the page shows instead, if any
  alarm(text, key = null, args = {}) {
    this.alarms.push(text);
    console.warn("summitline alarm:", text);
    this.emit("alarm", key ? { text, key, args } : { text });
  }

  // -- connection ---------------------------------------------------------------------
  start() {
    let backoff = RECONNECT_MIN_MS;
    const connect = () => {
      if (this.stopped) return;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.welcomed = false;
      let queue = Promise.resolve(); // handle messages one at a time, in order
      let opened = false, gone = false, heard = performance.now(), pinged = 0;
      let checked = heard;
      // Closed, or given up on: forget this connection and make the next one. A
      // connection given up on is not waited for: on a cut path its close never comes.
      const drop = (why) => {
        if (gone) return;
        gone = true;
        clearInterval(keepalive);
        ws.onopen = ws.onmessage = ws.onclose = null;
        if (ws.readyState !== WebSocket.CLOSED) ws.close();
        if (this.ws === ws) {
          this.ws = null;
          this.welcomed = false;
          this.reports = [...this.unconfirmed.map((u) => u.report), ...this.reports];
          this.unconfirmed = [];
        }
        if (opened) this.feed({ type: "signaling-lost", now_ms: clock() });
        if (this.stopped) return;
        console.info(`signaling lost (${why}); reconnecting in ${backoff} ms`);
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
      };
      const keepalive = setInterval(() => {
        const now = performance.now();
        // Time this page could not run (its own main thread starved on a loaded machine:
        // this check came late, and what the server sent meanwhile may still wait behind
        // it) is not held against the server: its clock stops while the page's does.
        const stalled = now - checked - KEEPALIVE_CHECK_MS;
        if (stalled > KEEPALIVE_CHECK_MS) heard += stalled;
        checked = now;
        const limit = !opened ? OPEN_TIMEOUT_MS
          : this.welcomed ? KEEPALIVE_TIMEOUT_MS : HANDSHAKE_TIMEOUT_MS;
        if (now - heard > limit) {
          drop("nothing from the server");
        } else if (this.welcomed && now - pinged >= KEEPALIVE_MS) {
          pinged = now;
          this.send({ type: "ping", id: this.pings++ });
        }
      }, KEEPALIVE_CHECK_MS);
      ws.onopen = () => { opened = true; heard = performance.now(); backoff = RECONNECT_MIN_MS; };
      ws.onmessage = (ev) => {
        heard = performance.now();
        queue = queue.then(() => (gone ? null : this.handle(JSON.parse(ev.data))))
          .catch((err) => { this.stop("internal", String(err)); });
      };
      ws.onclose = () => drop("closed");
    };
    connect();
    this.statsTimer = setInterval(() => this.reportStats(), STATS_EVERY_MS);
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
  }

  // The plan says studio: the microphone again without voice processing, before any link
  // sends (web/floor.js). The tracks it replaces stay on (and follow mute and go-live)
  // for a page that meters them, until the session stops; "microphone" tells the page.
  async studioSound() {
    try {
      const swapped = await studioMicrophone(this.localStream);
      if (!swapped) return;
      this.replacedAudio = swapped.replaced;
      this.studio = swapped.track.getSettings();
      this.emit("microphone", { track: swapped.track });
    } catch (err) {
      console.warn("studio sound: the microphone keeps its voice processing:", err.message);
    }
  }

  halt() {
    for (const t of this.replacedAudio) t.stop();
    this.stopped = true;
    clearInterval(this.statsTimer);
    clearInterval(this.tickTimer);
  }

  stop(code, message) {
    if (this.stopped) return;
    this.halt();
    if (code) {
      this.fatal = { code, message };
      this.emit("fatal", this.fatal);
    }
    if (this.ws) this.ws.close();
    this.closeLinks();
  }

  closeLinks() {
    this.cutPress("the call's media stopped");
    this.sfu.reset();
    this.rules = Object.freeze({ ...endpoint(this.device), generations: this.rules.generations });
    for (const link of this.peers.values()) link.pc.close();
    this.peers.clear();
    this.offers.clear();
    this.shown.clear();
    this.emit("peers");
  }

  send(message) {
    // Before the welcome only the hello may go: anything else first (a stats report or a
    // click while the handshake is slow) is a fatal bad-handshake for the server.
    if (!this.welcomed && message.type !== "hello") return;
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
      this.alarm(`plan refused: ${err.message}`, "alarm_plan_refused", { reason: err.message });
      this.stop("plan-rejected", err.message);
      return;
    }
    this.signed = msg.signed_plan;
    this.planHash = hash;
    const plan = this.signed.plan;
    this.takeRoute(sfuRoute(plan, msg.sfu) ? "sfu" : "mesh");
    this.groupCode = await groupCode(plan.call, hash,
                                     Object.fromEntries(plan.delegations.map((d) => [d.id, d.key])));
    this.serverIce = msg.ice_servers || []; // TURN credentials minted for this device
    this.welcomed = true;
    this.announced = null; // this connection has heard nothing of our media yet
    if (studioAudio(plan) && !this.studio) await this.studioSound();
    this.emit("plan", { plan: this.signed.plan, hash });
    for (const revocation of msg.revocations || []) await this.takeRevocation(revocation);
    await this.on_booth(msg.booth || { live: {}, sources: {} });
    this.held = new Set(msg.held || []);
    await this.takePhase(msg);
    const now = clock();
    const peers = msg.peers.filter((p) => !this.stranger(p.device));
    this.feed({ type: "welcome", now_ms: now, peers: peers.map((p) => p.device),
                generations: peers.map((p) => [p.device, p.generation]) });
    if (this.e2ee) {
      this.e2ee.present = new Set(peers.map((p) => p.device));
      for (const p of peers) await this.handFrameKey(p.device);
    }
    if (this.route === "sfu") {
      // the server detached this device's publisher and feeds when its signaling went
      this.sfu.reset();
      this.sfuUpdate();
    } else {
      this.grant(now);
    }
    const reports = this.reports; // what happened while signaling was down, for the record
    this.reports = [];
    for (const report of reports) this.sendReport(report);
    this.announce();
    await this.pressWindow();
  }

  // The route of this welcome (docs/protocol.md 5.12). The SFU route encrypts every frame
  // whatever the session's option. A route that changes between welcomes (the server
  // found or lost its SFU) closes what the other one held.
  takeRoute(route) {
    if (route === this.route) return;
    if (this.route === "sfu") this.sfu.reset();
    if (this.route === "mesh" && this.peers.size) {
      this.rules = Object.freeze({ ...endpoint(this.device), generations: this.rules.generations });
      for (const link of this.peers.values()) link.pc.close();
      this.peers.clear();
      this.offers.clear();
      this.shown.clear();
    }
    this.route = route;
    this.status.clear();
    if (route === "sfu") this.startFrames();
    console.info(`summitline: media ${route === "sfu" ? "through the SFU" : "peer to peer"}`);
    this.emit("route", { route });
  }

  // Publish to the SFU in the media phases; close everything outside them. Not awaited:
  // gathering must not hold up the messages behind it.
  sfuUpdate() {
    try {
      this.sfu.update();
    } catch (err) {
      console.error("the SFU route failed", err);
    }
  }

  setStatus(remote, state, since) {
    this.status.set(remote, { state, since });
    this.emit("status", { remote, state, since });
  }

  // The stream of a feed that now carries plays for its sender (as `showTrack`).
  showFeed(feed) {
    this.emit("track", { remote: feed.remote, stream: feed.stream,
                         role: participant(this.signed.plan, feed.remote)?.role });
  }

  // What one copy of this device's video may use on the SFU route.
  sfuVideoKbps() {
    return VIDEO_MAX_KBPS;
  }

  // Tell the rules which links the plan allows in this phase, and what should arrive
  // on each.
  grant(now) {
    if (this.route === "sfu") return; // no links between endpoints on the SFU route
    const plan = this.signed.plan;
    const expect = plan.participants
      .filter((p) => !this.revoked.has(this.device) && !this.revoked.has(p.device) &&
                     mayConnect(plan, this.phase, this.device, p.device))
      .map((p) => [p.device, media(plan, this.phase, p.device, this.device)]);
    this.feed({ type: "grants", now_ms: now, expect });
  }

  // Whether `msg` is a new, valid revocation of a device of the plan: signed by the
  // plan's key of the delegation the device stands under. A forged one is an alarm and
  // changes nothing.
  async takeRevocation(msg) {
    const plan = this.signed.plan;
    const p = participant(plan, msg.device);
    if (!p || this.revoked.has(p.device)) return false; // not ours, or known already
    const d = plan.delegations.find((x) => x.id === p.delegation);
    // the plan's key of the delegation, or a key it rotated to since (each step of the
    // chain signed by the key before; docs/protocol.md 3.5)
    const keys = [d.key];
    const chain = Array.isArray(msg.rotations) ? msg.rotations : [];
    try {
      if (chain.length) {
        await followRotations(d.id, d.key, chain);
        const start = chain.findIndex((r) => r.previous === d.key);
        if (start >= 0) keys.push(...chain.slice(start).map((r) => r.key));
      }
    } catch {
      keys.length = 0; // a chain that does not verify: no key vouches for the revocation
    }
    const said = statements.revocation(p.delegation, p.device, msg.at);
    let ok = msg.delegation === p.delegation && Number.isSafeInteger(msg.at) && keys.length > 0;
    if (ok) ok = (await Promise.all(keys.map((k) => verify(k, said, msg.signature)))).some(Boolean);
    if (!ok) {
      this.alarm(`a revocation of ${p.name} (${p.role}) that ${d.name} did not sign; ignored: ` +
                 "the device stays in the call", "alarm_revocation_unsigned",
                 { name: p.name, role: p.role, by: d.name });
      return false;
    }
    this.revoked.set(p.device, { delegation: p.delegation, device: p.device, at: msg.at,
                                 signature: msg.signature });
    for (const key of [...this.offers.keys()]) {
      if (this.offers.get(key).from === p.device) this.offers.delete(key);
    }
    this.emit("revoked", { device: p.device, delegation: d.id, name: p.name, role: p.role,
                           by: d.name });
    return true;
  }

  async on_revoked(msg) {
    if (!this.signed || !await this.takeRevocation(msg)) return;
    if (this.route === "sfu") this.sfu.drop(msg.device); // its feeds, or all if ours
    else this.grant(clock()); // closes its links
  }

  // Take the phase the server announces, but a start only as a delegation of the plan
  // signed it; the press deadline is computed here from the signed start.
  async takePhase(msg) {
    let phase = msg.phase, deadline = null;
    if (phase === "open" || phase === "closed") {
      const start = await this.signedStart(msg.start);
      const host = this.signed.plan.host;
      if (start === null) {
        this.alarm("the server says the call has started, but no delegation of the plan " +
                   "signed the start: no media sent", "alarm_start_unsigned");
        phase = "planned";
      } else if (host !== undefined && msg.start.delegation !== host) {
        // a briefing is started by its host (docs/protocol.md §3.4), as in Python
        this.alarm("the server says the briefing has started, by a guest's signed start, " +
                   "not the host's: no media sent", "alarm_start_not_host");
        phase = "planned";
      } else {
        if (this.startSeen === null || this.startedAt === null) {
          this.startSeen = Date.now();
          this.startedAt = start;
          if (startAhead(start, this.startSeen)) {
            const s = Math.round((start - this.startSeen) / 1000);
            this.alarm(`the signed start is dated ${s} s ahead of this clock: the press window ` +
                       "is counted from when this end saw the start", "alarm_start_ahead", { s });
          }
        } else if (start !== this.startedAt && !this.otherStarts.has(start)) {
          // A call starts once: a second valid start must not move the deadline later.
          this.otherStarts.add(start);
          this.alarm("a second, different signed start: the press window stays counted " +
                     "from the earliest start this end saw", "alarm_second_start");
        }
        this.startedAt = Math.min(this.startedAt, start);
        if (phase === "open") {
          deadline = pressDeadline(this.startedAt, this.startSeen, this.signed.plan.press_window_s);
        }
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
      this.halt();
      this.closeLinks();
      this.emit("ended");
      return;
    }
    if (this.route === "sfu") this.sfuUpdate();
    else this.grant(clock());
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
                   "plan; this end stopped sending to the press at the deadline",
                   "alarm_press_overrun");
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
      this.alarm("a page that our principal did not sign; ignored", "alarm_page_unsigned");
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
      this.alarm("an acknowledgement that no aide of ours signed; ignored",
                 "alarm_ack_unsigned");
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

  // Whether the server announces `device` present though the plan lets this end never
  // connect to it (outside the plan, or of no pair with us), as client/session.py
  // _stranger: an alarm; the rules then never offer to it.
  stranger(device) {
    const plan = this.signed.plan;
    if (!participant(plan, device)) {
      this.alarm(`the server announces a device outside the plan (${device.slice(0, 12)}) as ` +
                 "present; nothing is sent to it", "alarm_stranger_outside",
                 { id: device.slice(0, 12) });
      return true;
    }
    if (device === this.device || !mayConnect(plan, "closed", this.device, device)) {
      const who = whoIs(plan, device);
      this.alarm(`the server announces ${who.name} as a peer, but the plan gives this end no ` +
                 "link with it; nothing is sent to it", "alarm_stranger_no_pair",
                 { name: who.name });
      return true;
    }
    return false;
  }

  async on_peer_joined(msg) {
    if (this.signed && this.stranger(msg.device)) return;
    this.feed({ type: "peer-joined", now_ms: clock(), remote: msg.device });
    this.announce(true);
    if (this.e2ee) {
      this.e2ee.present.add(msg.device);
      await this.handFrameKey(msg.device);
    }
  }

  // Its signaling is gone; its media may not be: the link stays until it stalls.
  async on_peer_left(msg) {
    this.feed({ type: "peer-left", now_ms: clock(), remote: msg.device });
    if (!this.e2ee || !this.signed) return;
    this.e2ee.present.delete(msg.device);
    if (!this.hears(this.device, msg.device)) return;
    // It held our keys: the others get new ones, which it never sees.
    this.newFrameKey();
    for (const other of this.e2ee.present) await this.sendFrameKey(other);
  }

  // A new media key of each kind: sealed with from now on (counter 0).
  newFrameKey() {
    for (const kind of KINDS) {
      this.e2ee.own[kind] = randomFrameKey(this.e2ee.own[kind].keyId + 1);
      this.e2ee.worker.postMessage({ type: "own", kind, key: this.e2ee.own[kind] });
    }
  }

  // -- frame keys (docs/protocol.md 5.10) ---------------------------------------------
  // The kinds of `sender`'s media the plan lets `receiver` get in some media phase (audio
  // before video): `receiver` is handed `sender`'s keys of those kinds only.
  kindsHeard(sender, receiver) {
    const plan = this.signed.plan;
    const got = new Set([...media(plan, "open", sender, receiver),
                         ...media(plan, "closed", sender, receiver)]);
    return KINDS.filter((kind) => got.has(kind));
  }

  hears(sender, receiver) {
    return this.kindsHeard(sender, receiver).length > 0;
  }

  async handFrameKey(device) {
    if (!this.e2ee || !this.signed || device === this.device ||
        !participant(this.signed.plan, device)) return;
    const peer = this.e2ee.peerEcdh.get(device) || null;
    const handed = this.e2ee.handed.get(device) || {};
    if (peer && this.kindsHeard(this.device, device).some((kind) =>
      this.e2ee.sealed[kind] === this.e2ee.own[kind].keyId &&
        handed[kind] !== this.e2ee.own[kind].keyId)) {
      // It did not hold our key (it joins, or comes back): new ones for all first, so
      // that whoever kept our frames of before cannot have it open them (protocol 5.10).
      this.newFrameKey();
      this.e2ee.handed.set(device, Object.fromEntries(
        this.kindsHeard(this.device, device).map((kind) => [kind, this.e2ee.own[kind].keyId])));
      for (const other of this.e2ee.present) {
        if (other !== device) await this.sendFrameKey(other);
      }
    }
    await this.sendFrameKey(device);
  }

  // Our `frame-key` for `device`: our ECDH key, and our media key of each kind it may
  // receive from us, if we know its ECDH key.
  async sendFrameKey(device) {
    const ecdh = await this.e2ee.ecdh, peer = this.e2ee.peerEcdh.get(device) || null;
    const kinds = peer ? this.kindsHeard(this.device, device) : [];
    const own = Object.fromEntries(kinds.map((kind) => [kind, this.e2ee.own[kind]]));
    if (kinds.length) {
      this.e2ee.handed.set(device, Object.fromEntries(
        kinds.map((kind) => [kind, own[kind].keyId])));
    }
    const keys = [];
    for (const kind of kinds) {
      keys.push({ kind, key_id: own[kind].keyId, wrapped: b64u(await wrapKey(
        ecdh.privateKey, unb64u(peer), own[kind],
        { call: this.call, sender: this.device, receiver: device, kind })) });
    }
    const body = { ecdh: b64u(ecdh.publicRaw), for: keys.length ? peer : null, keys };
    const signature = await sign(this.identity.privateKey, statements.frameKey({
      call: this.call, planHash: this.planHash, sender: this.device, receiver: device,
      ecdh: body.ecdh, forEcdh: body.for, keys }));
    this.send({ type: "frame-key", to: device, ...body, signature });
  }

  async on_frame_key(msg) {
    if (!this.e2ee || !this.signed) return; // this call does not encrypt frames
    const sender = participant(this.signed.plan, msg.from);
    const refuse = (why) => this.alarm(
      `a frame key said to be from ${String(msg.from).slice(0, 12)} is refused: ${why}`,
      "frames_alarm_key_refused", { who: this.nameOf(msg.from) });
    if (!sender) return refuse("not a device of the plan");
    const ok = await verify(sender.key, statements.frameKey({
      call: this.call, planHash: this.planHash, sender: msg.from, receiver: this.device,
      ecdh: msg.ecdh, forEcdh: msg.for, keys: msg.keys }),
      msg.signature);
    if (!ok) return refuse("its signature does not verify");
    if (!Array.isArray(msg.keys)) return refuse("its keys are not a list");
    // a key of a kind the plan does not let us receive from it: not what the plan says
    const allowed = this.kindsHeard(msg.from, this.device), seen = new Set();
    for (const entry of msg.keys) {
      if (!KINDS.includes(entry?.kind) || seen.has(entry.kind)) {
        return refuse("a key of no kind, or a kind twice");
      }
      seen.add(entry.kind);
      if (!allowed.includes(entry.kind)) {
        this.alarm(`a frame key from ${String(msg.from).slice(0, 12)} hands ${entry.kind} ` +
          "the plan does not let this device receive; refused",
        "frames_alarm_key_kind", { who: this.nameOf(msg.from) });
        return;
      }
    }
    const ecdh = await this.e2ee.ecdh;
    const isNew = this.e2ee.peerEcdh.get(msg.from) !== msg.ecdh;
    this.e2ee.peerEcdh.set(msg.from, msg.ecdh);
    if (isNew) this.e2ee.handed.delete(msg.from); // a new session of it: it holds nothing
    if (msg.keys.length && msg.for === b64u(ecdh.publicRaw)) {
      const got = [];
      try {
        for (const { kind, key_id: keyId, wrapped } of msg.keys) {
          got.push({ kind, key: await unwrapKey(ecdh.privateKey, unb64u(msg.ecdh), keyId,
            unb64u(wrapped),
            { call: this.call, sender: msg.from, receiver: this.device, kind }) });
        }
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        return refuse(err.message);
      }
      for (const { kind, key } of got) {
        this.e2ee.worker.postMessage({ type: "peer", remote: msg.from, kind, key });
      }
    }
    if (isNew) await this.handFrameKey(msg.from); // it may not have ours for this key
  }

  // Every sender and receiver of a link through the frame worker (before media flows);
  // on the SFU route, the publisher's senders and a feed's receivers.
  async protect(link, { send = true, receive = true } = {}) {
    if (!this.e2ee || (this.route !== "sfu" && !this.meshFrames)) return;
    await this.e2ee.ready;
    for (const t of link.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      if (send && !t.sender.transform) {
        t.sender.transform = new RTCRtpScriptTransform(this.e2ee.worker,
                                                       { operation: "encrypt", kind });
      }
      if (receive && !t.receiver.transform) {
        t.receiver.transform = new RTCRtpScriptTransform(this.e2ee.worker,
          { operation: "decrypt", kind, remote: link.remote });
      }
    }
  }

  // Frames sealed, opened and refused by this page's frame worker (tests, diagnostics).
  frameCounts() {
    if (!this.e2ee) return Promise.resolve(null);
    const id = Math.random();
    return new Promise((resolve) => {
      const got = ({ data }) => {
        if (data.type !== "counts" || data.id !== id) return;
        this.e2ee.worker.removeEventListener("message", got);
        resolve(data.counts);
      };
      this.e2ee.worker.addEventListener("message", got);
      this.e2ee.worker.postMessage({ type: "counts", id });
    });
  }
  async on_pong(msg) {
    if (!Number.isSafeInteger(msg.id)) return;
    this.unconfirmed = this.unconfirmed.filter((u) => msg.id < u.ping); // the rest arrived
  }

  async on_error(msg) {
    console.warn("summitline server error", msg.code, msg.message);
    this.emit("server-error", msg);
    if (msg.fatal) this.stop(msg.code, msg.message);
    else if (typeof msg.ref === "string" && msg.ref.startsWith("sfu-")) this.sfu.refused(msg);
  }

  // -- the SFU route (web/sfu.js, docs/protocol.md 5.12) --------------------------------
  async on_sfu_published(msg) {
    if (this.route === "sfu") await this.sfu.published(msg);
  }

  // Not awaited: a feed's answer gathers its candidates while the next messages go on.
  async on_sfu_feed(msg) {
    if (this.route !== "sfu" || !this.signed) return;
    this.sfu.feed(msg).catch((err) => {
      if (!this.sfu.feeds.get(msg.feed)?.closed) console.error("an SFU feed failed", err);
    });
  }

  async on_sfu_gone(msg) {
    if (this.route === "sfu") this.sfu.gone(msg);
  }

  // -- negotiation --------------------------------------------------------------------
  kinds(remote) {
    const plan = this.signed.plan;
    return [media(plan, this.phase, this.device, remote),
            media(plan, this.phase, remote, this.device)];
  }

  // A link on the way of an interpretation: the floor to an interpreter, a channel to its
  // listeners, a relay between booths. What the listener hears waits for both hops.
  interpretationPath(remote) {
    return [this.device, remote].some((d) => participant(this.signed.plan, d)?.role ===
                                             "interpreter");
  }

  newLink(remote, generation) {
    const [send, receive] = this.kinds(remote);
    // With frames encrypted, Chromium must not "short-circuit" a sender or receiver that
    // negotiation made before its transform was set (the answerer's: protect() runs after
    // setRemoteDescription): such a one would send and take clear frames for good.
    const pc = new RTCPeerConnection({ iceServers: this.rtcIceServers(),
                                       ...(this.meshFrames ? { encodedInsertableStreams: true }
                                         : {}) });
    const link = new Link(remote, generation, pc, send, receive);
    this.openStateChannel(link);
    this.openBoothChannel(link);
    pc.ontrack = (ev) => {
      if (!receive.includes(ev.track.kind)) {
        this.alarm(`${remote.slice(0, 12)} sent ${ev.track.kind} that the plan does not allow`,
                   `alarm_track_${ev.track.kind === "video" ? "video" : "audio"}`,
                   { who: this.nameOf(remote) });
        return;
      }
      if (ev.track.kind === "audio" && this.interpretationPath(remote)) lowDelay(ev.receiver);
      link.stream.addTrack(ev.track);
      this.emit("stream", { remote, generation, stream: link.stream });
      if (this.shown.get(remote) === generation) this.showTrack(link);
    };
    pc.onconnectionstatechange = async () => {
      this.feed({ type: "state", now_ms: clock(), remote, generation, state: pc.connectionState });
      if (pc.connectionState === "connected") this.shareUplink();
      if (pc.connectionState === "connected" && link.sas === null) {
        // From the SDP as sent and as received over signaling: the peer connection's own
        // descriptions are re-serialised and may drop fingerprint lines.
        link.sas = await sas(this.call, sdpFingerprints(link.sentSdp),
                             sdpFingerprints(link.receivedSdp));
        if (this.shown.get(remote) === generation) this.showSas(link);
      }
      this.emit("peers");
    };
    return link;
  }

  localTrack(kind) {
    return this.localStream ? this.localStream.getTracks().find((t) => t.kind === kind) : null;
  }

  // Whether a link the rules asked for is still wanted after an await (the session may
  // have stopped, or the rules moved on): if not, it is closed here.
  stillTried(link) {
    const rules = this.rules.links.get(link.remote);
    if (!this.stopped && rules?.trying?.generation === link.generation) return true;
    link.pc.close();
    return false;
  }

  install(link) {
    this.peers.set(keyOf(link.remote, link.generation), link);
    this.emit("peers");
    this.shareUplink();
  }

  retire(link) {
    this.peers.delete(keyOf(link.remote, link.generation));
    link.pc.close();
    this.emit("peers");
    this.shareUplink();
  }

  // Split the uplink between the peers this end sends video to (UPLINK_KBPS above): a
  // cap on each video sender's encoding, set again whenever the set of links changes.
  // A repair's link and the one it replaces count as one peer.
  shareUplink() {
    this.uplinkQueue = this.uplinkQueue.then(async () => {
      const senders = [];
      for (const link of this.peers.values()) {
        if (link.pc.connectionState === "closed") continue;
        for (const s of link.pc.getSenders()) if (s.track?.kind === "video") senders.push(s);
      }
      const remotes = new Set([...this.peers.values()]
        .filter((l) => l.pc.getSenders().some((s) => s.track?.kind === "video"))
        .map((l) => l.remote)).size;
      const kbps = videoShare(remotes);
      this.uplink = { peers: remotes, kbps };
      for (const sender of senders) {
        const params = sender.getParameters();
        if (!params.encodings?.length) continue; // not negotiated yet: set on connecting
        if (params.encodings.every((e) => e.maxBitrate === kbps * 1000)) continue;
        for (const e of params.encodings) e.maxBitrate = kbps * 1000;
        try {
          await sender.setParameters(params);
        } catch (err) {  // a link closing meanwhile: the next change sets it again
          console.info("summitline: the uplink share was not set", String(err));
        }
      }
    });
    return this.uplinkQueue;
  }

  // The caps in force now on the link that plays for each remote (kbps), for tests and
  // a look from the console.
  uplinkCaps() {
    const out = {};
    for (const link of this.links.values()) {
      for (const s of link.pc.getSenders()) {
        if (s.track?.kind !== "video") continue;
        const e = s.getParameters().encodings?.[0];
        out[link.remote] = e?.maxBitrate ? e.maxBitrate / 1000 : null;
      }
    }
    return out;
  }

  // -- the link rules (web/endpoint.js) -----------------------------------------------
  // Hand an input to the rules; they are applied in order, one at a time, and each
  // action is carried out before the next input.
  feed(input) {
    this.pending += 1;
    this.ruleQueue = this.ruleQueue.then(() => this.applyRules(input));
  }

  async applyRules(input) {
    this.pending -= 1;
    let actions;
    try {
      [this.rules, actions] = apply(this.rules, input);
    } catch (err) {
      console.error("the link rules refused an input", input, err);
      return;
    }
    for (const action of actions) {
      try {
        await this[`do_${action.type}`](action);
      } catch (err) { // one failed action must not stop the rules
        console.error(`${action.type} failed`, action, err);
      }
    }
    this.showPlaying();
  }

  // Media health: which kinds brought frames on each link since the last tick, then time.
  async tick() {
    if (this.ticking || this.stopped || this.pending > MAX_PENDING_INPUTS) return;
    if (this.route === "sfu") {
      await this.sfu.tick();
      return;
    }
    this.ticking = true;
    try {
      const links = [...this.peers.values()];
      const counts = await Promise.all(links.map((l) => decoded(l.pc).catch(() => null)));
      const now = clock();
      links.forEach((link, i) => {
        if (counts[i] === null) return;
        const kinds = progressed(link.counts, counts[i]);
        link.counts = counts[i];
        if (kinds.length) {
          this.feed({ type: "media", now_ms: now, remote: link.remote,
                      generation: link.generation, kinds });
        }
      });
      this.feed({ type: "tick", now_ms: now });
    } finally {
      this.ticking = false;
    }
  }

  // Make-before-break, as the view sees it: the stream of the link that plays. A
  // repair's stream replaces the old one only once the rules promoted it.
  showPlaying() {
    for (const [remote, rules] of this.rules.links) {
      const generation = rules.playing?.generation;
      const link = generation === undefined ? undefined
        : this.peers.get(keyOf(remote, generation));
      if (!link || this.shown.get(remote) === generation) continue;
      this.shown.set(remote, generation);
      if (link.stream.getTracks().length) this.showTrack(link);
      if (link.sas !== null) this.showSas(link);
    }
  }

  showSas(link) {
    this.codes.set(link.remote, link.sas);
    this.emit("sas", { remote: link.remote, sas: link.sas });
  }

  // Peer state travels inside the link (docs/protocol.md 5.8): each end says on open and
  // on every change whether its microphone is muted and its camera off, on every link it
  // holds. Any link held with the peer speaks for it (a repair's, while it is tried, too:
  // the old one may be the dead one); a closed one no longer does.
  openStateChannel(link) {
    const channel = link.pc.createDataChannel(STATE_CHANNEL.label,
                                              { negotiated: true, id: STATE_CHANNEL.id });
    link.state = channel;
    channel.onopen = () => this.sendState(link);
    channel.onmessage = (ev) => {
      const state = peerState(ev.data);
      if (state === null) {
        this.alarm(`a malformed state message from ${link.remote.slice(0, 12)}; ignored`,
                   "alarm_state_malformed", { who: this.nameOf(link.remote) });
        return;
      }
      if (this.peers.get(keyOf(link.remote, link.generation)) !== link) return;
      this.remoteMedia.set(link.remote, state);
      this.emit("remote-media", { remote: link.remote, ...state });
    };
  }

  // The booth channel (docs/protocol.md 5.11). Taken only from whom the plan allows: notes
  // and nudges between partners of one booth, signals from an interpreter to a principal.
  openBoothChannel(link) {
    const channel = link.pc.createDataChannel(BOOTH_CHANNEL.label,
                                              { negotiated: true, id: BOOTH_CHANNEL.id });
    link.boothChannel = channel;
    channel.onmessage = (ev) => {
      const msg = boothMessage(ev.data);
      const from = this.signed ? participant(this.signed.plan, link.remote) : null;
      const me = this.me;
      const allowed = msg && from && me && (msg.kind === "signal"
        ? from.role === "interpreter" && me.role === "principal"
        : this.isPartner(from));
      if (!allowed) {
        this.alarm(`a booth message from ${link.remote.slice(0, 12)} that the plan does not ` +
                   "allow or that is malformed; ignored", "booth_alarm_message",
                   { who: this.nameOf(link.remote) });
        return;
      }
      this.emit(msg.kind === "signal" ? "speaker-signal" : "booth-mate",
                { from: link.remote, name: from.name, ...msg });
    };
  }

  isPartner(p) {
    return p.role === "interpreter" && this.channel !== null && p.language === this.channel &&
      p.device !== this.device;
  }

  // Send a booth message to `remote` over the newest open link with it; whether it went.
  sendBooth(remote, msg) {
    const links = [...this.peers.values()]
      .filter((l) => l.remote === remote && l.boothChannel?.readyState === "open")
      .sort((a, b) => b.generation - a.generation);
    if (!links.length) return false;
    links[0].boothChannel.send(JSON.stringify({ v: 1, ...msg }));
    return true;
  }

  sendNote(remote, text) { return this.sendBooth(remote, { kind: "note", text }); }
  nudge(remote) { return this.sendBooth(remote, { kind: "nudge" }); }
  signalSpeaker(remote, signal) { return this.sendBooth(remote, { kind: "signal", signal }); }

  sendState(link) {
    if (link.state?.readyState !== "open") return;
    const muted = (this.muted || this.coughing) && Boolean(this.localTrack("audio"));
    const cameraOff = !this.cameraOn && Boolean(this.localTrack("video"));
    link.state.send(JSON.stringify({ v: 1, muted, camera_off: cameraOff }));
  }

  showTrack(link) {
    this.emit("track", { remote: link.remote, stream: link.stream,
                         role: participant(this.signed.plan, link.remote)?.role });
  }

  async do_offer({ remote, generation }) {
    const link = this.newLink(remote, generation);
    for (const kind of ["audio", "video"]) {
      const track = link.send.includes(kind) ? this.localTrack(kind) : null;
      if (track) link.pc.addTrack(track, this.localStream);
      else if (link.receive.includes(kind)) link.pc.addTransceiver(kind, { direction: "recvonly" });
    }
    await this.protect(link);
    await link.pc.setLocalDescription(await link.pc.createOffer());
    await gathered(link.pc);
    if (!this.stillTried(link)) return;
    this.install(link);
    const offer = await this.signedSdp("offer", link);
    if (!/^a=candidate:/m.test(link.pc.localDescription.sdp) && !this.noPath) {
      // gathering found no address to connect from: the link cannot form; say so once
      this.noPath = true;
      this.alarm("this device found no network address for the call (no ICE candidate)",
                 "alarm_no_candidates");
    }
    this.offered.add(keyOf(remote, generation));
    this.send(offer);
  }

  // A newer offer from the same remote waits already: this one was superseded (its
  // offerer gave up on it, and the server holds only the newest). Answering it anyway is a
  // protocol error to the server, and enough of them (a slow end under churn) get this
  // device thrown out of the call.
  superseded(remote, generation) {
    return [...this.offers.values()].some((m) => m.from === remote && m.generation > generation);
  }

  async do_answer({ remote, generation }) {
    const msg = this.offers.get(keyOf(remote, generation));
    this.offers.delete(keyOf(remote, generation));
    if (!msg || this.superseded(remote, generation)) return;
    const link = this.newLink(remote, generation);
    link.receivedSdp = msg.sdp;
    await link.pc.setRemoteDescription({ type: "offer", sdp: floorSdp(msg.sdp) });
    for (const t of link.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      const sends = link.send.includes(kind), receives = link.receive.includes(kind);
      if (sends && this.localTrack(kind)) await t.sender.replaceTrack(this.localTrack(kind));
      t.direction = sends && receives ? "sendrecv" : sends ? "sendonly" : receives ? "recvonly"
        : "inactive";
      if (sends && this.localStream) t.sender.setStreams(this.localStream);
    }
    await this.protect(link);
    await link.pc.setLocalDescription(await link.pc.createAnswer());
    await gathered(link.pc);
    if (this.superseded(remote, generation)) {
      link.pc.close(); // the newer offer is answered next
      return;
    }
    if (!this.stillTried(link)) return;
    this.install(link);
    this.send(await this.signedSdp("answer", link));
  }

  async do_close({ remote, generation }) {
    const link = this.peers.get(keyOf(remote, generation));
    if (link) this.retire(link);
  }

  async do_report({ remote, generation, state, duration_ms }) {
    const report = { type: "link", to: remote, generation, state, duration_ms };
    this.stalls.push({ ...report, at: Date.now() });
    const name = (this.signed && participant(this.signed.plan, remote)?.name) || remote.slice(0, 12);
    console.warn(state === "lost" ? `link to ${name} (generation ${generation}) lost; reconnecting`
      : `link to ${name} back after ${(duration_ms / 1000).toFixed(1)} s (generation ${generation})`);
    if (generation === 0) return; // no link had carried media: nothing for the record
    if (this.welcomed) this.sendReport(report);
    else this.reports.push(report);
  }

  sendReport(report) {
    this.send(report);
    this.unconfirmed.push({ report, ping: this.pings });
  }

  async do_status({ remote, state, since_ms }) {
    this.status.set(remote, { state, since: since_ms });
    this.emit("status", { remote, state, since: since_ms });
  }

  async do_alarm({ text }) {
    // the state machine's alarms (endpoint.js) carry only their English text, as the
    // Python endpoint's do (shared vectors); the key is found here
    const old = /^an offer of old generation (\d+)/.exec(text);
    if (old) this.alarm(text, "alarm_old_generation", { n: old[1] });
    else if (text.startsWith("an offer from a device the plan does not let us")) {
      this.alarm(text, "alarm_offer_not_allowed");
    } else this.alarm(text);
  }

  // A device of the plan by its name and delegation, for alarms; else its fingerprint.
  nameOf(device) {
    const { name, delegation } = whoIs(this.signed?.plan, device);
    return delegation ? `${name} (${delegation})` : name;
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
      this.alarm(`${kind} from a device outside the plan; ignored`, "alarm_outside_plan");
      return false;
    }
    const ok = sdpFingerprints(msg.sdp).length > 0 && await verify(sender.key, statements.sdp({
      call: this.call, planHash: this.planHash, sender: msg.from, receiver: this.device,
      generation: msg.generation, kind, sdpHash: hex(await sha256(msg.sdp)) }), msg.signature);
    if (!ok) {
      this.alarm(`${kind} from ${sender.name} fails its signature: it was changed on the ` +
                 "way (the DTLS fingerprint may have been swapped); no media sent",
                 "alarm_sdp_signature", { name: sender.name });
    }
    return ok;
  }

  // A verified offer goes to the rules, which answer it or not (an old generation: a
  // replay).
  async on_offer(msg) {
    if (this.route === "sfu") { // no links between endpoints on this route
      console.warn(`summitline: an offer from ${String(msg.from).slice(0, 12)} on the SFU ` +
                   "route; ignored");
      return;
    }
    if (this.refused("offer", msg.from)) return;
    if (!this.signed || !Number.isSafeInteger(msg.generation) ||
        !(await this.checkSigned("offer", msg))) return;
    const remote = msg.from;
    if (!mayConnect(this.signed.plan, this.phase, this.device, remote)) {
      this.alarm("offer from a device the plan does not let us connect to; ignored",
                 "alarm_offer_not_allowed");
      return;
    }
    this.offers.set(keyOf(remote, msg.generation), msg);
    this.feed({ type: "offer-in", now_ms: clock(), remote, generation: msg.generation });
  }

  refused(kind, remote) {
    if (!this.revoked.has(remote)) return false;
    this.alarm(`${kind} from a revoked device ${remote.slice(0, 12)}; ignored`,
               "alarm_from_revoked", { who: this.nameOf(remote) });
    return true;
  }

  async on_answer(msg) {
    if (this.refused("answer", msg.from)) return;
    const link = this.peers.get(keyOf(msg.from, msg.generation));
    if (!link || link.pc.signalingState !== "have-local-offer") {
      if (!link && this.offered.has(keyOf(msg.from, msg.generation))) {
        // a try closed meanwhile (a newer one replaced it): its answer came late
        console.info("summitline: answer to a closed try", msg.generation);
        return;
      }
      this.alarm("answer to no offer of ours; ignored", "alarm_answer_unasked");
      return;
    }
    if (!(await this.checkSigned("answer", msg))) {
      this.retire(link);
      this.feed({ type: "state", now_ms: clock(), remote: link.remote,
                  generation: link.generation, state: "failed" });
      return;
    }
    link.receivedSdp = msg.sdp;
    await link.pc.setRemoteDescription({ type: "answer", sdp: floorSdp(msg.sdp) });
  }

  // Ignored: the only candidates taken are those inside the signed SDP (gathered before
  // signing), so the server cannot point connectivity checks at an address of its choosing.
  async on_candidate() {
    this.ignoredCandidates += 1;
    if (this.ignoredCandidates === 1) console.warn("a candidate outside the signed SDP; ignored");
  }

  async on_bye(msg) {
    this.feed({ type: "bye", now_ms: clock(), remote: msg.from, generation: msg.generation });
  }

  // The peer's view of our link: it may see a stall that this end does not.
  async on_link(msg) {
    if (!["lost", "restored"].includes(msg.state) || !Number.isSafeInteger(msg.generation)) {
      this.alarm(`a malformed link report from the server (${msg.state}); ignored`,
                 "alarm_report_malformed");
      return;
    }
    this.feed({ type: "peer-report", now_ms: clock(), remote: msg.from,
                generation: msg.generation, state: msg.state });
  }

  // The peer sends none of these kinds now (microphone muted, camera off): their
  // silence is no stall.
  async on_media(msg) {
    const off = (Array.isArray(msg.off) ? msg.off : []).filter((k) => k === "audio" || k === "video");
    this.offKinds.set(msg.from, [...new Set(off)]);
    this.feed({ type: "muted", now_ms: clock(), remote: msg.from, kinds: [...new Set(off)].sort() });
  }

  // -- media controls and health ------------------------------------------------------
  setMuted(muted) {
    this.muted = muted;
    this.applyMicrophone();
    for (const link of this.peers.values()) this.sendState(link);
  }

  // The cough key: while held, the microphone sends silence, live or not.
  setCough(on) {
    this.coughing = on;
    this.applyMicrophone();
    for (const link of this.peers.values()) this.sendState(link);
  }

  applyMicrophone() {
    const on = !this.muted && !this.onHold && !this.coughing;
    for (const t of [...this.localStream?.getAudioTracks() || [], ...this.replacedAudio]) {
      t.enabled = on;
    }
    this.announce();
  }

  setCamera(on) {
    this.cameraOn = on;
    for (const t of this.localStream?.getVideoTracks() || []) t.enabled = on;
    this.announce();
    for (const link of this.peers.values()) this.sendState(link);
  }

  // The kinds this end does not send now.
  mediaOff() {
    const off = [];
    if (this.localTrack("audio") && (this.muted || this.onHold || this.coughing)) {
      off.push("audio");
    }
    if (this.localTrack("video") && !this.cameraOn) off.push("video");
    return off;
  }

  // Tell the peers which kinds are off (their silence is then no stall): when that
  // changes, on every welcome, and (`again`) to a peer that joins, while anything is off.
  announce(again = false) {
    const off = this.mediaOff(), key = off.join(",");
    if (!this.welcomed || (again ? off.length === 0 : key === this.announced)) return;
    this.announced = key;
    this.send({ type: "media", off });
  }

  // Connection health per peer connection, from getStats().
  // `reader` names whose previous sample the bitrate is measured from: Chromium serves
  // getStats() from a cache for a moment, so a reader of its own (the 2 s report) is not
  // handed a sample that another (the 200 ms level meter) took just before.
  async health(reader = "view") {
    const out = [];
    for (const link of this.links.values()) {
      out.push({ peer: link.remote, ...(await linkHealth(link, reader)) });
    }
    return out;
  }

  async reportStats() {
    if (!this.signed || this.links.size === 0) return;
    const peers = await this.health("report");
    this.send({ type: "stats", peers: peers.map((p) => ({
      peer: p.peer, state: p.state, rtt_ms: p.rtt_ms, loss: p.loss,
      bitrate_kbps: p.bitrate_kbps, width: p.width, height: p.height, path: p.path })) });
  }
}

// One link's health: round-trip time, loss, received bitrate, resolution, path, and
// the raw counters tests look at.
export async function linkHealth(link, reader = "view") {
  const report = await link.pc.getStats();
  const h = { state: link.pc.connectionState, rtt_ms: null, loss: null, bitrate_kbps: null,
              width: null, height: null, path: null, jitter_ms: null, framesDecoded: 0,
              audioLevel: 0, audioPacketsReceived: 0, bytesReceived: 0 };
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
        if (s.jitter !== undefined) h.jitter_ms = s.jitter * 1000;
      }
    }
  });
  if (received + lost > 0) h.loss = Math.max(0, lost) / (received + Math.max(0, lost));
  const now = performance.now();
  const last = link.last[reader];
  if (last) {
    const seconds = (now - last.at) / 1000;
    if (seconds > 0) h.bitrate_kbps = ((h.bytesReceived - last.bytes) * 8) / 1000 / seconds;
  }
  link.last[reader] = { at: now, bytes: h.bytesReceived };
  return h;
}

// The SFU route of a briefing in the browser (docs/protocol.md 5.12). No DOM.
//
// A briefing whose verified plan wants the SFU (plan.js wantsSfu), on a server that says
// it has one for the call (`welcome.sfu`), sends one copy of its media to the server's
// Janus VideoRoom instead of one per peer, and receives each other device's media from
// it. Janus must learn nothing: every frame is sealed by the frame worker of the session
// (web/e2ee-worker.js, section 5.9) with this device's media key, and opened with the key
// of the device the feed comes from, which reached this device only from that device, in
// a signed `frame-key` (section 5.10). A frame that does not open is dropped, never
// decoded: a server that names the wrong sender gets a tile that stays dark, not a
// picture under the wrong name.
//
// - One publisher: a send-only peer connection to the SFU with the tracks this device may
//   send anyone (VP8 and Opus only), all candidates gathered, then `sfu-publish`; Janus's
//   answer comes in `sfu-published`. A publisher whose connection failed after working
//   is published again at once; a refused one (`sfu-failed`), one unanswered for 15 s and
//   one that never connected are tried again after 2, 4, 8, 16, then every 30 s.
// - One receive-only peer connection per `sfu-feed` (Janus's offer), answered with all
//   candidates in `sfu-watch`; `sfu-gone` closes it; a feed whose connection failed, or
//   is not up 20 s after the answer, is asked for again (`sfu-refeed`).
// - The status of a peer is whether its feed decodes: "connecting" until the first feed
//   carries, "ok" while the feed that plays brings a decoded frame of every kind it
//   should (less the kinds the peer said are off) at least every FEED_STALL_MS,
//   "reconnecting" since its last frame otherwise. A new feed of a peer plays once it
//   carries (as a mesh link's repair does).
//
// The session (web/session.js) is the host: it sends, emits the same events as on the
// mesh (stream, track, status, peers), protects the peer connections with its frame
// worker, and asks this route for health (`links`).

import { floorSdp, lowDelay } from "./floor.js";
import { media, participant, wantsSfu } from "./plan.js";

export const SFU_RETRY_FIRST_MS = 2000;
export const SFU_RETRY_MAX_MS = 30000;
export const FEED_STALL_MS = 1000; // as a mesh link (docs/protocol.md 5.6)
// Every wait is bounded, as the Python endpoint's (client/sfu.py): a publish that got no
// `sfu-published` in this time is tried again (after the retry delay), and a feed whose
// connection is not up this long after its answer is asked for again.
export const PUBLISH_WAIT_MS = 15000;
export const FEED_WAIT_MS = 20000;
const KINDS = ["audio", "video"];
const CODECS = { video: /^video\/vp8$/i, audio: /^audio\/opus$/i };

// The delay before the (failures + 1)th try of a refused publish: 2, 4, 8, 16, 30, 30 ... s.
export function retryDelay(failures) {
  return Math.min(SFU_RETRY_MAX_MS, SFU_RETRY_FIRST_MS * 2 ** Math.max(0, failures));
}

// Whether a call goes through the SFU: the verified plan wants it and the server has one.
export function sfuRoute(plan, welcomeSfu) {
  return wantsSfu(plan) && welcomeSfu === true;
}

// The kinds `device` may send to some device of the plan in `phase`.
export function sendKinds(plan, phase, device) {
  const kinds = new Set();
  for (const p of plan.participants) {
    if (p.device !== device) for (const k of media(plan, phase, device, p.device)) kinds.add(k);
  }
  return KINDS.filter((k) => kinds.has(k));
}

// Only VP8 or Opus on a transceiver (what the frame format's clear header knows, and
// what the room takes).
function onlyCodec(transceiver, kind) {
  const caps = globalThis.RTCRtpReceiver?.getCapabilities?.(kind);
  const codecs = caps ? caps.codecs.filter((c) => CODECS[kind].test(c.mimeType)) : [];
  if (codecs.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
}

// One subscription: the media of `remote` from the SFU, on its own peer connection.
export class Feed {
  constructor(id, remote, kinds, pc) {
    Object.assign(this, { id, remote, kinds, pc });
    this.stream = new MediaStream();
    this.last = {}; // the previous stats sample of each reader (session.js linkHealth)
    this.counts = null; // previous decoded counts, for the status
    this.frameAt = {}; // kind -> clock() of its last decoded frame
    this.carried = false; // it brought every kind it should at least once
    this.closed = false;
    this.answered = false;
    this.timer = null; // the wait for its connection
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.pc.close();
  }
}

export class SfuRoute {
  // host: the CallSession. `decoded(pc)`, `progressed(a, b)`, `gathered(pc)`, `clock()`
  // are session.js's, passed in so that the two measure media alike.
  constructor(host, { decoded, progressed, gathered, clock }) {
    Object.assign(this, { host, decoded, progressed, gathered, clock });
    this.publisher = null; // {pc, connected}
    this.failures = 0; // refused publishes in a row
    this.retryTimer = null;
    this.feeds = new Map(); // feed id -> Feed
    this.playing = new Map(); // remote -> the Feed whose stream plays
    this.epoch = 0; // bumped by reset(): the work of an earlier welcome is dropped
    this.unusable = new Map(); // remote -> offers of its feeds refused in a row
    this.ticking = false;
  }

  // Per remote, the feed that plays (or the newest, before one did): for health and the
  // views (as CallSession.links on the mesh).
  get links() {
    const out = new Map(this.playing);
    for (const feed of this.feeds.values()) if (!out.has(feed.remote)) out.set(feed.remote, feed);
    for (const [remote, feed] of out) if (feed.closed) out.delete(remote);
    return out;
  }

  config() {
    // Chromium must not short-circuit a sender or receiver made before its transform was
    // set (docs/protocol.md 5.9): on this route every frame goes through the worker.
    return { iceServers: this.host.rtcIceServers(), encodedInsertableStreams: true };
  }

  // Everything closed, as on a new welcome (the server detached this device's publisher
  // and feeds when its signaling went) or at the end.
  reset() {
    this.epoch += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.dropPublisher();
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
    this.playing.clear();
    this.host.emit("peers");
  }

  dropPublisher() {
    const pub = this.publisher;
    this.publisher = null;
    if (!pub) return;
    clearTimeout(pub.timer);
    pub.pc.close();
  }

  // Publish if this device may send media now and does not yet; close everything outside
  // the media phases.
  update() {
    const phase = this.host.phase;
    if (phase !== "open" && phase !== "closed") {
      if (this.publisher || this.feeds.size) this.reset();
      return;
    }
    if (!this.publisher && this.retryTimer === null) this.startPublishing();
  }

  // Publish, not awaited (gathering must not hold up the messages behind it); a publisher
  // that could not be made is tried again later, never the end of the session.
  startPublishing() {
    this.publish().catch((err) => {
      console.warn("summitline: publishing to the SFU failed", String(err));
      this.dropPublisher();
      this.retry();
    });
  }

  async publish() {
    const host = this.host, plan = host.signed?.plan;
    if (!plan || host.stopped || this.publisher || !host.welcomed) return;
    const kinds = sendKinds(plan, host.phase, host.device).filter((k) => host.localTrack(k));
    if (kinds.length === 0) return; // the plan lets it send nothing (or nothing to send)
    const epoch = this.epoch;
    const pc = new RTCPeerConnection(this.config());
    const pub = { pc, connected: false, timer: null };
    this.publisher = pub;
    for (const kind of kinds) {
      const t = pc.addTransceiver(host.localTrack(kind), { direction: "sendonly",
                                                          streams: [host.localStream] });
      onlyCodec(t, kind);
    }
    pc.onconnectionstatechange = () => {
      if (this.publisher !== pub) return;
      if (pc.connectionState === "connected") {
        pub.connected = true;
        this.failures = 0;
        this.capVideo(pc);
      } else if (pc.connectionState === "failed") {
        console.warn("summitline: the SFU publisher failed; publishing again");
        this.dropPublisher();
        if (pub.connected) this.startPublishing();
        else this.retry();
      }
    };
    await host.protect({ pc, remote: host.device }, { receive: false });
    await pc.setLocalDescription(await pc.createOffer());
    await this.gathered(pc);
    if (this.publisher !== pub || this.epoch !== epoch) return;
    host.send({ type: "sfu-publish", sdp: pc.localDescription.sdp });
    pub.timer = setTimeout(() => { // no answer from the SFU: (a publish lost on the way)
      if (this.publisher !== pub || pc.signalingState !== "have-local-offer") return;
      console.warn(`summitline: no sfu-published within ${PUBLISH_WAIT_MS} ms`);
      this.dropPublisher();
      this.retry();
    }, PUBLISH_WAIT_MS);
  }

  // One copy goes up, whatever the number of peers: the most one picture needs.
  async capVideo(pc) {
    for (const sender of pc.getSenders()) {
      if (sender.track?.kind !== "video") continue;
      const params = sender.getParameters();
      if (!params.encodings?.length) continue;
      for (const e of params.encodings) e.maxBitrate = this.host.sfuVideoKbps() * 1000;
      try {
        await sender.setParameters(params);
      } catch (err) {
        console.info("summitline: the SFU uplink cap was not set", String(err));
      }
    }
  }

  retry() {
    if (this.retryTimer !== null || this.host.stopped) return;
    const delay = retryDelay(this.failures);
    this.failures += 1;
    console.info(`summitline: publishing to the SFU again in ${delay} ms`);
    const epoch = this.epoch;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.epoch === epoch) this.update();
    }, delay);
  }

  async published(msg) {
    const pub = this.publisher;
    if (!pub || pub.pc.signalingState !== "have-local-offer" || typeof msg.sdp !== "string") {
      console.info("summitline: an sfu-published with no publish waiting; ignored");
      return;
    }
    // the floor's Opus parameters (web/floor.js): what this end sends, as on the mesh
    try {
      await pub.pc.setRemoteDescription({ type: "answer", sdp: floorSdp(msg.sdp) });
    } catch (err) { // an answer this browser cannot take: publish again, later
      if (this.publisher !== pub) return;
      console.warn("summitline: the SFU's answer was refused", String(err));
      this.dropPublisher();
      this.retry();
    }
  }

  // A refusal of the server (an `error` whose `ref` is one of ours).
  refused(msg) {
    if (msg.ref === "sfu-publish") {
      this.dropPublisher();
      if (msg.code === "sfu-failed") this.retry(); // Janus refused or did not answer
      else console.warn(`summitline: the SFU refused to publish (${msg.code}): ${msg.message}`);
    } else {
      console.warn(`summitline: the SFU refused ${msg.ref} (${msg.code}): ${msg.message}`);
    }
  }

  // A feed the server offers: taken only from a device of the plan that may send this
  // device media, and only what the plan lets it send (a track of another kind is
  // refused with an alarm, as on a mesh link).
  async feed(msg) {
    const host = this.host, plan = host.signed?.plan;
    if (!plan || typeof msg.feed !== "string" || typeof msg.sdp !== "string") return;
    const from = msg.from;
    if (!participant(plan, from) || from === host.device) {
      host.alarm(`the server offers a feed said to be from a device outside the plan ` +
                 `(${String(from).slice(0, 12)}); refused`, "sfu_alarm_feed_stranger",
                 { id: String(from).slice(0, 12) });
      return;
    }
    if (host.refused("feed", from)) return;
    if (!host.hears(from, host.device)) {
      host.alarm(`the server offers a feed from ${from.slice(0, 12)}, whom the plan does not ` +
                 "let this device receive; refused", "sfu_alarm_feed_not_allowed",
                 { who: host.nameOf(from) });
      return;
    }
    if (this.feeds.has(msg.feed)) this.feeds.get(msg.feed).close();
    const epoch = this.epoch;
    const receive = media(plan, host.phase, from, host.device);
    // what the server says it forwards (a publisher without a camera sends no video),
    // within what the plan lets this device receive
    const said = (Array.isArray(msg.kinds) ? msg.kinds : []).filter((k) => receive.includes(k));
    const kinds = said.length ? said : receive;
    const pc = new RTCPeerConnection(this.config());
    const feed = new Feed(msg.feed, from, kinds, pc);
    this.feeds.set(feed.id, feed);
    if (!host.status.has(from)) host.setStatus(from, "connecting", this.clock());
    pc.ontrack = (ev) => {
      if (!receive.includes(ev.track.kind)) {
        host.alarm(`${from.slice(0, 12)} sent ${ev.track.kind} that the plan does not allow`,
                   `alarm_track_${ev.track.kind === "video" ? "video" : "audio"}`,
                   { who: host.nameOf(from) });
        return;
      }
      if (ev.track.kind === "audio" && host.interpretationPath(from)) lowDelay(ev.receiver);
      feed.stream.addTrack(ev.track);
      host.emit("stream", { remote: from, generation: 0, stream: feed.stream });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && !feed.closed) this.refeed(feed);
      host.emit("peers");
    };
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
      for (const t of pc.getTransceivers()) t.direction = "recvonly";
      await host.protect({ pc, remote: from }, { send: false });
      await pc.setLocalDescription(await pc.createAnswer());
    } catch (err) { // an offer this browser cannot take: ask for another, after a while
      if (feed.closed || this.epoch !== epoch) return;
      console.warn(`summitline: the SFU's feed of ${from.slice(0, 12)} is not usable`,
                   String(err));
      this.refeed(feed, true);
      return;
    }
    await this.gathered(pc);
    if (feed.closed || this.epoch !== epoch) return;
    feed.answered = true;
    host.send({ type: "sfu-watch", feed: feed.id, sdp: pc.localDescription.sdp });
    feed.timer = setTimeout(() => { // its connection never came up: ask again
      if (feed.closed || pc.connectionState === "connected") return;
      console.warn(`summitline: the SFU feed of ${from.slice(0, 12)} not connected within ` +
                   `${FEED_WAIT_MS} ms`);
      this.refeed(feed);
    }, FEED_WAIT_MS);
    host.emit("peers");
  }

  gone(msg) {
    const feed = this.feeds.get(msg.feed);
    if (!feed) return;
    this.feeds.delete(feed.id);
    feed.close();
    if (this.playing.get(feed.remote) === feed) {
      // its media stopped: "reconnecting" from its last frame, until a new feed plays (as
      // a mesh link that stalls when its peer left)
      this.playing.delete(feed.remote);
      const last = Math.max(0, ...Object.values(feed.frameAt));
      this.host.setStatus(feed.remote, "reconnecting", last || this.clock());
    }
    this.host.emit("peers");
  }

  // The feed's connection failed: the server ends it and offers a new one. `later`: an
  // offer this browser could not take, asked for again after the retry delay (2, 4 .. 30 s
  // while they keep failing), not in a loop as fast as the server answers.
  refeed(feed, later = false) {
    console.warn(`summitline: the SFU feed of ${feed.remote.slice(0, 12)} failed; asking again`);
    this.feeds.delete(feed.id);
    feed.close();
    if (this.playing.get(feed.remote) === feed) this.playing.delete(feed.remote);
    this.host.setStatus(feed.remote, "reconnecting",
                        Math.max(0, ...Object.values(feed.frameAt)) || this.clock());
    const ask = () => this.host.send({ type: "sfu-refeed", from: feed.remote });
    if (later) {
      const n = this.unusable.get(feed.remote) ?? 0;
      this.unusable.set(feed.remote, n + 1);
      const epoch = this.epoch;
      setTimeout(() => { if (this.epoch === epoch && !this.host.stopped) ask(); },
                 retryDelay(n));
    } else {
      ask();
    }
    this.host.emit("peers");
  }

  // No more media with `device` (revoked): its feeds close.
  drop(device) {
    for (const feed of [...this.feeds.values()]) {
      if (feed.remote === device || device === this.host.device) this.gone({ feed: feed.id });
    }
    if (device === this.host.device) this.reset();
  }

  // Media health, every TICK_MS: which kinds each feed decoded since the last tick; the
  // status of each peer from the feed that plays.
  async tick() {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const feeds = [...this.feeds.values()].filter((f) => f.answered && !f.closed);
      const counts = await Promise.all(feeds.map((f) => this.decoded(f.pc).catch(() => null)));
      const now = this.clock();
      feeds.forEach((feed, i) => {
        if (counts[i] === null || feed.closed) return;
        for (const kind of this.progressed(feed.counts, counts[i])) feed.frameAt[kind] = now;
        feed.counts = counts[i];
        this.judge(feed, now);
      });
    } finally {
      this.ticking = false;
    }
  }

  // Whether `feed` carries now: every kind it should bring, less those its sender said
  // are off, decoded within FEED_STALL_MS; with all of them off (an interpreter off air),
  // a connected feed does, as a mesh link (web/endpoint.js `carries`): its sound then
  // plays from the moment the interpreter goes on air.
  carries(feed, now) {
    const off = this.host.offKinds.get(feed.remote) || [];
    const expect = feed.kinds.filter((k) => !off.includes(k));
    if (expect.length === 0) return feed.pc.connectionState === "connected";
    return expect.every((k) => feed.frameAt[k] !== undefined && now - feed.frameAt[k] <= FEED_STALL_MS);
  }

  judge(feed, now) {
    const host = this.host, remote = feed.remote;
    const carries = this.carries(feed, now);
    if (carries) feed.carried = true;
    const playing = this.playing.get(remote);
    if (carries && playing !== feed) {
      // a new feed (the first, or one offered again) plays once it carries
      if (playing) {
        this.feeds.delete(playing.id);
        playing.close();
      }
      this.playing.set(remote, feed);
      this.unusable.delete(remote);
      host.showFeed(feed);
      host.setStatus(remote, "ok", now);
      host.emit("peers");
      return;
    }
    if (playing !== feed) return;
    const state = host.status.get(remote)?.state;
    if (carries && state !== "ok") host.setStatus(remote, "ok", now);
    else if (!carries && state === "ok") {
      const last = Math.max(0, ...Object.values(feed.frameAt));
      host.setStatus(remote, "reconnecting", last || now);
    }
  }
}

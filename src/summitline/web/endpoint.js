// The endpoint's rules in the browser: which peer connections a device holds, when one
// has stalled, who repairs it, and what a new generation replaces. No DOM, no I/O, no
// clock.
//
// A port of summitline/core/endpoint.py, rule for rule: read its theory of operation
// there. The state is immutable (frozen objects; Maps and Sets are copied, never
// changed); `apply(state, input)` returns `[state, actions]`, and an input that does not
// apply changes nothing and yields nothing. Inputs and actions are the JSON objects of
// endpoint.py's `to_json` (`type` and its fields, kinds as sorted arrays), so that the
// shared vectors in tests/vectors/endpoint.json replay here to the same actions
// (tests/browser/test_endpoint_vectors.py). web/session.js feeds it and carries out
// what it returns.

// No frame of an expected kind for this long is a stall.
export const STALL_MS = 1000;
// Clients feed a tick at least this often: a stall is seen within STALL_MS + TICK_MS.
export const TICK_MS = 250;
// A try gets this long to carry media before the next one; doubling, capped.
export const FIRST_TRY_MS = 1000;
export const MAX_TRY_MS = 2000;
// A first link that never connects is tried again after this long.
export const CONNECT_TRY_MS = 5000;
// A try that was answered and is connecting gets this long before the next replaces it
// (an ICE round trip and DTLS's two on a long path); unanswered and failed tries are
// replaced on the backoff.
export const NEGOTIATED_TRY_MS = 4000;
const NEGOTIATED = new Set(["connecting", "connected"]);
// The peer's "lost" counts once it has stood this long without its "restored": after an
// outage both reports of the peer arrive together, late.
export const PEER_GRACE_MS = 500;

// Connection states that count as dead (Chromium's "disconnected" too).
export const DEAD = new Set(["failed", "closed", "disconnected"]);
// A signed start dated further ahead of when this end first saw it is an alarm
// (START_SKEW_MS in core/endpoint.py, which says why).
export const START_SKEW_MS = 5000;

// When the press feed is cut: the plan's window from the earlier of the signed start and
// the moment this end first saw it (press_deadline in core/endpoint.py).
export function pressDeadline(atMs, seenMs, windowS) {
  return Math.min(atMs, seenMs) + 1000 * windowS;
}

export function startAhead(atMs, seenMs) {
  return atMs - seenMs > START_SKEW_MS;
}

// Whether `me` offers the links of the pair (me, remote): the id that sorts first.
export function offers(me, remote) {
  return me < remote;
}

const kindsOf = (list) => [...new Set(list)].sort();
const minus = (a, b) => a.filter((k) => !b.includes(k));
const isDead = (t) => DEAD.has(t.state);

// -- state -------------------------------------------------------------------------------
function newTry(generation, startedMs) {
  return Object.freeze({ generation, started_ms: startedMs, state: "new",
                         heard: Object.freeze({}) });
}

const withTry = (t, changes) => Object.freeze({ ...t, ...changes });

// Whether every kind of `kinds` brought a frame within STALL_MS (with no kind to hear:
// whether it is connected).
function carries(t, kinds, nowMs) {
  if (isDead(t)) return false;
  if (kinds.length === 0) return t.state === "connected";
  return kinds.every((k) => nowMs - (t.heard[k] ?? -STALL_MS - 1) < STALL_MS);
}

function newLink(remote, expect) {
  return Object.freeze({ remote, expect, muted: Object.freeze([]), playing: null, trying: null,
                         lost_ms: null, lost_generation: 0, backoff_ms: FIRST_TRY_MS,
                         up_once: false, peer_lost_ms: null });
}

// Whether the peer's report of the playing link lost has stood for PEER_GRACE_MS.
const peerStalled = (link, nowMs) => link.peer_lost_ms !== null &&
  nowMs - link.peer_lost_ms >= PEER_GRACE_MS;

const withLink = (link, changes) => Object.freeze({ ...link, ...changes });
const wanted = (link) => minus(link.expect, link.muted);
const generationsOf = (link) => [link.playing, link.trying].filter((t) => t !== null)
  .map((t) => t.generation);

// What one device knows of its links in one call, before any input.
export function endpoint(me) {
  return Object.freeze({ me, signaling: false, present: new Set(), links: new Map(),
                         generations: new Map() });
}

// What to show of the link to `remote`: "none", "connecting", "ok" or "reconnecting".
export function status(state, remote) {
  const link = state.links.get(remote);
  if (!link) return "none";
  if (link.lost_ms !== null) return "reconnecting";
  return link.up_once ? "ok" : "connecting";
}

// -- one application of an input ---------------------------------------------------------
class Step {
  constructor(state) {
    this.state = state;
    this.actions = [];
  }

  with(changes) {
    this.state = Object.freeze({ ...this.state, ...changes });
  }

  put(link) {
    this.with({ links: new Map(this.state.links).set(link.remote, link) });
  }

  drop(remote) {
    const links = new Map(this.state.links);
    links.delete(remote);
    this.with({ links });
  }

  saw(remote, generation) {
    if (generation > (this.state.generations.get(remote) ?? 0)) {
      this.with({ generations: new Map(this.state.generations).set(remote, generation) });
    }
  }

  nextGeneration(remote) {
    return (this.state.generations.get(remote) ?? 0) + 1;
  }

  mayOffer(remote) {
    return offers(this.state.me, remote) && this.state.signaling && this.state.present.has(remote);
  }

  // Offer a new try (closing an older try that never carried).
  offer(link, nowMs) {
    if (link.trying !== null) this.act("close", link.remote, link.trying.generation);
    const generation = this.nextGeneration(link.remote);
    this.saw(link.remote, generation);
    this.act("offer", link.remote, generation);
    return withLink(link, { trying: newTry(generation, nowMs) });
  }

  // The next try, its window doubled (capped).
  retry(link, nowMs) {
    link = this.offer(link, nowMs);
    return withLink(link, { backoff_ms: Math.min(2 * link.backoff_ms, MAX_TRY_MS) });
  }

  act(type, remote, generation) {
    this.actions.push({ type, remote, generation });
  }

  // The playing link stalled: report and show it once, and start the repair.
  lose(link, sinceMs, nowMs) {
    if (link.lost_ms !== null) return link;
    const generation = link.playing ? link.playing.generation : 0;
    link = withLink(link, { lost_ms: sinceMs, lost_generation: generation,
                            backoff_ms: FIRST_TRY_MS });
    this.actions.push({ type: "report", remote: link.remote, generation, state: "lost",
                        duration_ms: 0 });
    this.actions.push({ type: "status", remote: link.remote, state: "reconnecting",
                        since_ms: sinceMs });
    if (this.mayOffer(link.remote) && (link.trying === null || isDead(link.trying))) {
      link = this.offer(link, nowMs);
    }
    return link;
  }

  // The try carries media: it plays; the old link closes; a stall ends.
  promote(link, nowMs) {
    if (link.playing !== null) this.act("close", link.remote, link.playing.generation);
    link = withLink(link, { playing: link.trying, trying: null, peer_lost_ms: null });
    return this.restored(link, nowMs);
  }

  restored(link, nowMs) {
    if (link.lost_ms !== null) {
      this.actions.push({ type: "report", remote: link.remote,
                          generation: link.playing.generation, state: "restored",
                          duration_ms: nowMs - link.lost_ms });
      this.actions.push({ type: "status", remote: link.remote, state: "ok", since_ms: nowMs });
    } else if (!link.up_once) {
      this.actions.push({ type: "status", remote: link.remote, state: "ok", since_ms: nowMs });
    }
    return withLink(link, { lost_ms: null, up_once: true, backoff_ms: FIRST_TRY_MS });
  }

  updateTry(link, generation, change) {
    if (link.playing !== null && link.playing.generation === generation) {
      return withLink(link, { playing: change(link.playing) });
    }
    if (link.trying !== null && link.trying.generation === generation) {
      return withLink(link, { trying: change(link.trying) });
    }
    return null;
  }

  // Apply the rules after any change of `link`.
  settle(link, nowMs) {
    const want = wanted(link);
    const { trying, playing } = link;
    if (trying !== null && carries(trying, want, nowMs)) return this.promote(link, nowMs);
    const peerLost = peerStalled(link, nowMs);
    if (playing !== null && !peerLost && carries(playing, want, nowMs)) {
      if (link.lost_ms !== null && trying !== null) { // it came back by itself
        this.act("close", link.remote, trying.generation);
        link = withLink(link, { trying: null });
      }
      return this.restored(link, nowMs);
    }
    if (playing !== null && link.lost_ms === null) {
      const since = silentSince(playing, want, nowMs);
      const stalled = isDead(playing) || peerLost || (want.length > 0 && since !== null);
      if (stalled) link = this.lose(link, since === null ? nowMs : since, nowMs);
    }
    return link;
  }
}

// When the first expected kind fell silent for STALL_MS, else null.
function silentSince(t, kinds, nowMs) {
  const late = kinds.map((k) => t.heard[k] ?? t.started_ms).filter((at) => nowMs - at >= STALL_MS);
  return late.length ? Math.min(...late) : null;
}

// -- handlers ----------------------------------------------------------------------------
function onWelcome(s, e) {
  s.with({ signaling: true, present: new Set(e.peers) });
  for (const [remote, generation] of e.generations) s.saw(remote, generation);
  for (const remote of [...s.state.links.keys()]) reach(s, remote, e.now_ms);
}

function onSignalingLost(s) {
  s.with({ signaling: false, present: new Set() });
}

function onPeerJoined(s, e) {
  s.with({ present: new Set(s.state.present).add(e.remote) });
  if (s.state.links.has(e.remote)) reach(s, e.remote, e.now_ms);
}

function onPeerLeft(s, e) {
  // Its signaling is gone; its media may not be: the links stay until they stall.
  const present = new Set(s.state.present);
  present.delete(e.remote);
  s.with({ present });
}

// Signaling can reach `remote` now: offer where a link is missing or stalled.
function reach(s, remote, nowMs) {
  const link = s.state.links.get(remote);
  if (!s.mayOffer(remote)) return;
  const idle = link.trying === null || isDead(link.trying);
  if ((link.playing === null && idle) || (link.lost_ms !== null && idle)) {
    s.put(s.offer(link, nowMs));
  }
}

function onGrants(s, e) {
  const expect = new Map(e.expect.map(([remote, kinds]) => [remote, kindsOf(kinds)]));
  for (const [remote, link] of [...s.state.links]) {
    if (!expect.has(remote)) { // the plan or phase no longer lets us connect
      for (const generation of generationsOf(link)) s.act("close", remote, generation);
      s.drop(remote);
    }
  }
  for (const [remote, kinds] of expect) {
    const known = s.state.links.get(remote);
    if (!known) {
      s.put(newLink(remote, Object.freeze(kinds)));
      s.actions.push({ type: "status", remote, state: "connecting", since_ms: e.now_ms });
    } else {
      s.put(withLink(known, { expect: Object.freeze(kinds) }));
    }
    reach(s, remote, e.now_ms);
  }
}

function onOfferIn(s, e) {
  const link = s.state.links.get(e.remote);
  if (!link) {
    s.actions.push({ type: "alarm", text: "an offer from a device the plan does not let us " +
                     "connect to now; ignored" });
    return;
  }
  if (e.generation <= (s.state.generations.get(e.remote) ?? 0)) {
    s.actions.push({ type: "alarm",
                     text: `an offer of old generation ${e.generation} (replayed?); ignored` });
    return;
  }
  s.saw(e.remote, e.generation);
  if (link.trying !== null) s.act("close", e.remote, link.trying.generation);
  s.act("answer", e.remote, e.generation);
  s.put(withLink(link, { trying: newTry(e.generation, e.now_ms) }));
}

function onState(s, e) {
  const link = s.state.links.get(e.remote);
  if (!link) return;
  const changed = s.updateTry(link, e.generation, (t) => withTry(t, { state: e.state }));
  if (changed !== null) s.put(s.settle(changed, e.now_ms));
}

function onMedia(s, e) {
  const link = s.state.links.get(e.remote);
  if (!link) return;
  const heard = Object.fromEntries(e.kinds.map((k) => [k, e.now_ms]));
  const changed = s.updateTry(link, e.generation,
                              (t) => withTry(t, { heard: Object.freeze({ ...t.heard, ...heard }) }));
  if (changed !== null) s.put(s.settle(changed, e.now_ms));
}

function onMuted(s, e) {
  let link = s.state.links.get(e.remote);
  if (!link) return;
  const now = e.now_ms, kinds = kindsOf(e.kinds);
  // a kind switched back on gets a fresh second before its silence counts
  const back = Object.fromEntries(minus(link.muted, kinds).map((k) => [k, now]));
  const fresh = (t) => (t === null ? null
    : withTry(t, { heard: Object.freeze({ ...t.heard, ...back }) }));
  link = withLink(link, { muted: Object.freeze(kinds), playing: fresh(link.playing),
                          trying: fresh(link.trying) });
  s.put(s.settle(link, now));
}

function onPeerReport(s, e) {
  let link = s.state.links.get(e.remote);
  if (!link || link.playing === null || link.playing.generation !== e.generation) return;
  const since = e.state === "lost" ? link.peer_lost_ms || e.now_ms : null;
  link = withLink(link, { peer_lost_ms: since });
  s.put(s.settle(link, e.now_ms));
}

function onBye(s, e) {
  let link = s.state.links.get(e.remote);
  if (!link) return;
  if (link.trying !== null && link.trying.generation === e.generation) {
    s.act("close", e.remote, e.generation);
    link = withLink(link, { trying: null });
  } else if (link.playing !== null && link.playing.generation === e.generation) {
    s.act("close", e.remote, e.generation);
    if (link.up_once && link.lost_ms === null) {
      link = s.lose(withLink(link, { playing: withTry(link.playing, { state: "closed" }) }),
                    e.now_ms, e.now_ms);
    }
    link = withLink(link, { playing: null });
  } else {
    return;
  }
  s.put(link);
  reach(s, e.remote, e.now_ms);
}

function onRefused(s, e) {
  const link = s.state.links.get(e.remote);
  if (!link || link.trying === null || link.trying.generation !== e.generation) return;
  s.put(withLink(link, { trying: withTry(link.trying, { state: "failed" }) }));
}

function onTick(s, e) {
  const now = e.now_ms;
  for (const remote of [...s.state.links.keys()]) {
    let link = s.settle(s.state.links.get(remote), now);
    const trying = link.trying;
    if (s.mayOffer(remote)) {
      if (link.lost_ms !== null) {
        const age = trying !== null ? now - trying.started_ms : 0;
        if (trying === null || isDead(trying) || (age >= link.backoff_ms &&
            (!NEGOTIATED.has(trying.state) || age >= NEGOTIATED_TRY_MS))) {
          link = s.retry(link, now);
        }
      } else if (link.playing === null && !link.up_once && (
        trying === null || (isDead(trying) && now - trying.started_ms >= FIRST_TRY_MS) ||
        now - trying.started_ms >= CONNECT_TRY_MS)) {
        link = s.offer(link, now);
      }
    }
    s.put(link);
  }
}

const HANDLERS = {
  "welcome": onWelcome, "signaling-lost": onSignalingLost, "peer-joined": onPeerJoined,
  "peer-left": onPeerLeft, "grants": onGrants, "offer-in": onOfferIn, "state": onState,
  "media": onMedia, "muted": onMuted, "peer-report": onPeerReport, "bye": onBye,
  "refused": onRefused, "tick": onTick,
};

// Apply one input (a JSON object as endpoint.py's to_json gives) to `state`: the new
// state and the actions to carry out, in order.
export function apply(state, input) {
  const handler = HANDLERS[input.type];
  if (!handler) throw new TypeError(`not an input of the link rules: ${input.type}`);
  const step = new Step(state);
  handler(step, input);
  return [step.state, step.actions];
}

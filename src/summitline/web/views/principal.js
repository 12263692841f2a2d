// The principal's view: the other principal large, oneself small, the phase at a
// glance, the verification code, and three large controls. Made for someone who is not
// technical and is under pressure: few things on screen, all reachable by keyboard.

import { get, setSigner, wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, ENDONYMS, LANGUAGES, languageName, strings } from "../i18n.js";
import { chooseIdentity, listIdentities, saveIdentity } from "../keystore.js";
import { introducedBy, isBriefing, participant, whoIs } from "../plan.js";
import { Listening } from "../listening.js";
import { CallSession } from "../session.js";
import { aideView } from "./aide.js";
import { interpreterView } from "./interpreter.js";

const LEVELS_EVERY_MS = 200; // how often audio levels are read, to follow a handover
const COUNT_EVERY_MS = 1000; // "Reconnecting… N s" counts in seconds
const SIGNAL_SHOWN_MS = 10_000; // an interpreter's "slow down" stays this long

// Every remote stream also plays, muted, in an element: Chromium feeds Web Audio from a
// remote WebRTC stream only while some media element holds it, and plays out (decodes)
// its audio only then, which is what the link rules count as audio arriving.
const held = new WeakSet();
export function holdStream(root, stream) {
  if (held.has(stream)) return;
  held.add(stream);
  const el = h("audio", { autoplay: true, muted: true, srcObject: stream, hidden: true });
  root.append(el);
  // the element goes when the stream's peer connection closed and its tracks ended
  for (const track of stream.getTracks()) {
    track.addEventListener("ended", () => {
      if (stream.getTracks().every((x) => x.readyState === "ended")) el.remove();
    });
  }
}

// "Reconnecting… N s" for each remote whose link is being repaired (the rules' Status),
// counting from when its media stopped. The count is hidden from screen readers, so
// that the live region speaks once, not every second. `label(remote)` names a remote
// (or returns "" for the one the view is about).
export function showReconnecting(el, session, t, label) {
  const lost = [...session.reconnecting()];
  el.hidden = lost.length === 0;
  el.replaceChildren(...lost.map(([remote, seconds]) => {
    const name = label(remote);
    return h("div", { class: "reconnecting-line", "data-remote": remote },
      h("span", {}, name ? t("reconnecting_to", { name }) : t("reconnecting")), " ",
      h("span", { class: "count", "aria-hidden": "true" },
        t("seconds", { n: Math.floor(seconds) })));
  }));
}

export function followLevels(session, listening) {
  return setInterval(async () => {
    if (session.stopped) return;
    const levels = {};
    for (const hh of await session.health()) levels[hh.peer] = hh.audioLevel || 0;
    listening.levels(levels);
  }, LEVELS_EVERY_MS);
}

// The level of each remote's decoded sound (RMS, 0..1), from an AnalyserNode on its
// stream: whatever the sender (aiortc sends no audio-level header extension for
// getSynchronizationSources, and Chromium's getStats audioLevel stayed 0 for streams
// played through Web Audio in our tests). Not connected to the speakers: only measured.
export class LevelMeter {
  constructor(context) {
    this.ctx = context;
    this.meters = new Map(); // remote -> {stream, source, analyser}
    this.samples = new Float32Array(512);
  }

  attach(remote, stream) {
    const old = this.meters.get(remote);
    if ((old && old.stream === stream) || stream.getAudioTracks().length === 0) return;
    if (old) old.source.disconnect();
    const source = this.ctx.createMediaStreamSource(stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = this.samples.length;
    source.connect(analyser);
    this.meters.set(remote, { stream, source, analyser });
  }

  levels(remotes) {
    const out = {};
    for (const remote of remotes) {
      const meter = this.meters.get(remote);
      if (!meter) { out[remote] = 0; continue; }
      meter.analyser.getFloatTimeDomainData(this.samples);
      let sum = 0;
      for (const x of this.samples) sum += x * x;
      out[remote] = Math.sqrt(sum / this.samples.length);
    }
    return out;
  }
}

// The active speaker of a briefing, from the remote principals' audio levels (0..1, read
// every LEVELS_EVERY_MS): each level is smoothed, so that one loud syllable or a cough
// does not move the marker; another principal takes over only when clearly louder; the
// marker stays a moment after the speaker pauses, so that it does not flicker between
// sentences.
const SPEAKER_SMOOTHING = 0.35; // the weight of a new reading in the smoothed level
const SPEAKER_FLOOR = 0.02; // below this smoothed level, nobody counts as speaking
const SPEAKER_MARGIN = 1.5; // a new speaker must be this many times louder than the one marked
const SPEAKER_HOLD_MS = 1200; // the marker stays this long after its speaker fell quiet

export class ActiveSpeaker {
  constructor() {
    this.smoothed = new Map(); // remote -> smoothed level
    this.current = null;
    this.quietSince = null;
  }

  // Take one reading of {remote: level} (only those that may be marked); the speaker now.
  update(levels, now) {
    for (const remote of [...this.smoothed.keys()]) {
      if (!(remote in levels)) this.smoothed.delete(remote);
    }
    for (const [remote, level] of Object.entries(levels)) {
      const before = this.smoothed.get(remote) ?? 0;
      this.smoothed.set(remote, before + SPEAKER_SMOOTHING * (level - before));
    }
    let loudest = null, top = SPEAKER_FLOOR;
    for (const [remote, level] of this.smoothed) {
      if (level > top) { loudest = remote; top = level; }
    }
    const current = this.current === null ? 0 : this.smoothed.get(this.current) ?? 0;
    if (loudest !== null && loudest !== this.current &&
        (this.current === null || top > current * SPEAKER_MARGIN)) {
      this.current = loudest;
      this.quietSince = null;
    } else if (this.current !== null && current < SPEAKER_FLOOR) {
      this.quietSince ??= now;
      if (now - this.quietSince >= SPEAKER_HOLD_MS) {
        this.current = null;
        this.quietSince = null;
      }
    } else {
      this.quietSince = null;
    }
    return this.current;
  }
}

// How many columns the briefing's grid has for `n` tiles (the remote principals and
// oneself, at most 8): rows of at most three until more than six, so that each picture
// stays large on a room screen.
export const gridColumns = (n) => (n <= 1 ? 1 : n <= 4 ? 2 : n <= 6 ? 3 : 4);

// The language of a device's screens outside a call: the one chosen on its first
// screen, else its language in the last plan, else the browser's. (In a call, a
// principal's screen speaks its language in the plan.)
export const screenLanguage = (identity) =>
  identity?.uiLanguage || identity?.language || browserLanguage();

export async function principalView(root, fingerprint) {
  const identity = await chooseIdentity("device", fingerprint);
  const lang = screenLanguage(identity);
  const t = await strings(lang);
  document.title = t("title");
  document.documentElement.lang = lang;
  if (!identity) {
    const all = await listIdentities("device");
    mount(root, h("main", { class: "narrow" }, all.length === 0
      ? [h("h1", {}, t("not_enrolled")), h("p", {}, t("not_enrolled_help"))]
      : [h("h1", {}, t("choose_device")), h("nav", { class: "choices column" }, all.map((d) =>
          h("a", { class: "button big", href: `#/principal/${d.fingerprint}` }, d.name)))]));
    return;
  }
  setSigner(identity); // this device's reads are signed by its key
  const calls = await get(`/api/devices/${identity.fingerprint}/calls`);
  const open = calls.filter((c) => c.complete && c.phase !== "ended");
  const choose = async (l) => {
    identity.uiLanguage = l;
    await saveIdentity("device", identity);
    await principalView(root, identity.fingerprint);
  };
  mount(root, h("main", { class: "narrow home" },
    h("nav", { class: "languages", "aria-label": t("pr_language") }, LANGUAGES.map((l) =>
      h("button", { class: "link", lang: l, id: `lang-${l}`, onclick: () => choose(l),
                    "aria-current": l === lang ? "true" : null }, ENDONYMS[l]))),
    h("p", { class: "muted" }, `${t("device")}: ${identity.name} · `,
      h("span", { class: "mono" }, shortFingerprint(identity.fingerprint))),
    h("h1", {}, t("your_calls")),
    open.length === 0 ? h("p", {}, t("no_calls")) : h("ul", { class: "calls" },
      open.map((c) => h("li", {}, h("span", { class: "call-title" }, c.title),
        h("button", { class: "primary big", "data-call": c.call,
                      onclick: () => ({ interpreter: interpreterView, aide: aideView }[
                        identity.role] || inCall)(root, identity, c.call) }, t("join")))))));
}

// Shortcuts by physical key (KeyboardEvent.code), so that they work whatever the
// keyboard layout: on a Russian one the M key types "ь" but is still "KeyM".
export const PRINCIPAL_KEYS = { KeyM: "mute", KeyV: "camera", KeyA: "aides", KeyH: "hold",
                                KeyE: "end" };
const QUALITY_EVERY_MS = 2000; // the connection indicator follows getStats this often
// A link is "poor" past any of these, "fair" past half of them (ITU-T G.114 puts the
// comfortable limit of one-way delay at 150 ms; 5 % loss breaks up speech).
const POOR = { rtt_ms: 400, loss: 0.05, jitter_ms: 60 };

// "good", "fair" or "poor" from one link's health (rtt_ms, loss, jitter_ms), or null.
export function quality(hh) {
  if (!hh || hh.rtt_ms === null) return null;
  const worst = Math.max(...Object.entries(POOR).map(([k, limit]) => (hh[k] ?? 0) / limit));
  return worst >= 1 ? "poor" : worst >= 0.5 ? "fair" : "good";
}

// The time of day in the page's language (Intl, not the browser's default).
export function timeOf(ms, lang) {
  return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" }).format(ms);
}

// Elapsed time as H:MM:SS (M:SS under an hour), with tabular figures in CSS.
export function elapsed(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

// The verification codes of a session, one per peer, labelled with who it is for; the
// one with `main` (the other principal) first and large (#sas), the others listed.
export function showCodes(box, session, t, main) {
  const plan = session.signed?.plan;
  // on the SFU route there are no links between endpoints, so no codes (the grid names
  // the route instead)
  box.hidden = session.route === "sfu";
  const [title, code, help, others] = box.children;
  const mainCode = main ? session.codes.get(main) : undefined;
  const label = (device) => {
    const w = whoIs(plan, device);
    return w.delegation ? t("pv_verify_with", { name: w.name, delegation: w.delegation })
      : t("pv_verify_with_name", { name: w.name });
  };
  // set only on a change: the box is a live region, and the view redraws every second
  const put = (el, text) => { if (el.textContent !== text) el.textContent = text; };
  put(title, main ? label(main) : t("verify_title"));
  title.dataset.remote = main || "";
  put(code, mainCode || "");
  code.dataset.remote = main || "";
  put(help, !main ? "" : mainCode ? t("verify_help") : t("verify_pending"));
  const rest = [...session.codes].filter(([remote]) => remote !== main);
  others.hidden = rest.length === 0;
  const drawn = JSON.stringify([rest, plan ? session.planHash : null, t("pv_you")]);
  if (others.dataset.drawn === drawn) return; // redrawn only on a change: text stays selectable
  others.dataset.drawn = drawn;
  others.replaceChildren(...rest.map(([remote, value]) =>
    h("li", { "data-remote": remote }, h("span", { class: "sas-for" }, label(remote)),
      h("span", { class: "sas-small mono" }, value))));
}

export function codesBox(id = "sas-box") {
  return h("aside", { class: "sas", id, "aria-live": "polite" },
    h("div", { class: "sas-title", id: "sas-title" }),
    h("div", { class: "sas-code", id: "sas" }),
    h("div", { class: "sas-help" }),
    h("ul", { class: "sas-others", id: "sas-others", hidden: true }));
}

// A control button: its label, and the physical key that works it as a visible key cap.
function control(id, cap, extra = {}) {
  const label = h("span", { class: "label" });
  const el = h("button", { class: "control", id, "aria-keyshortcuts": cap, ...extra }, label,
               h("kbd", { "aria-hidden": "true" }, cap));
  el.label = label;
  return el;
}

async function inCall(root, identity, call) {
  let t = await strings(identity.language || browserLanguage());
  let lang = identity.language || browserLanguage();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  } catch (err) {
    mount(root, h("main", { class: "narrow" }, h("p", { class: "error", role: "alert" },
      t("camera_error", { error: err.message }))));
    return;
  }
  const session = new CallSession({
    url: wsUrl(), call, identity, localStream: stream,
    pinned: { [identity.delegation.id]: identity.delegation.key },
    // Frames encrypted end to end (docs/protocol.md 5.9). Until an SFU briefing's plan
    // asks for it, a switch in the page's address (?frames=e2ee), on every end alike.
    frameEncryption: new URLSearchParams(location.search).get("frames") === "e2ee",
  });
  window.summitlineSession = session; // for tests and for a look from the console

  const remoteVideo = h("video", { class: "remote", autoplay: true, playsInline: true,
                                   muted: true, id: "remote-video" });  // sound: Web Audio
  const listening = new Listening(new AudioContext());
  window.summitlineListening = listening;
  const channelSelect = h("select", { id: "channel" });
  const duck = h("input", { type: "range", id: "duck", min: 0, max: 100, value: 30 });
  const listenText = h("span"), duckText = h("span");
  const listen = h("div", { class: "listen" }, h("label", {}, listenText, channelSelect),
                   h("label", {}, duckText, duck));
  const selfVideo = h("video", { class: "self", autoplay: true, playsInline: true, muted: true,
                                 id: "self-video", srcObject: stream });
  const selfName = h("div", { class: "tile-name", id: "self-name" });
  const selfTile = h("div", { class: "self-tile" }, selfVideo, selfName);
  const phase = h("div", { class: "phase", id: "phase", role: "status" });
  const timer = h("span", { class: "timer", id: "timer", role: "timer" });
  const qualityEl = h("span", { class: "quality", id: "quality", hidden: true });
  const status = h("div", { class: "status-bar" }, phase, timer, qualityEl);
  const reconnecting = h("div", { class: "reconnecting", id: "reconnecting", role: "status",
                                  "aria-live": "polite", hidden: true });
  const waiting = h("div", { class: "waiting", id: "waiting" });
  const codes = codesBox();
  // The other principal's tile: name and delegation, and what it says of its microphone
  // and camera (over the link itself: session.js, the state channel).
  const remoteName = h("span", { class: "who", id: "remote-name" });
  const remoteMuted = h("span", { class: "state-badge", id: "remote-muted", hidden: true });
  const cameraOffNote = h("div", { class: "camera-off-name", id: "remote-camera-off", hidden: true });
  const tileName = h("div", { class: "tile-name remote-tag" }, remoteName, remoteMuted);
  const mute = control("mute", "M", { "aria-pressed": "false" });
  const camera = control("camera", "V", { "aria-pressed": "false" });
  const end = control("end", "E");
  end.classList.add("danger");
  // The aide button and the aside: the other side learns only "on hold", nothing more.
  const aides = control("call-aides", "A");
  const hold = control("hold", "H", { "aria-pressed": "false" });
  const aideStatus = h("div", { class: "aide-status", id: "aide-status", role: "status",
                                hidden: true });
  const onHold = h("div", { class: "on-hold", id: "on-hold", hidden: true });
  const remoteHold = h("div", { class: "remote-hold", id: "remote-hold", hidden: true });
  const alarm = h("div", { class: "alarm", id: "alarm", role: "alert", hidden: true });
  // An interpreter's signal to the principal speaking (slow down, cannot hear): discreet,
  // in the principal's language, gone after a while; it came over the interpreter's link.
  const speakerSignal = h("div", { class: "speaker-signal", id: "speaker-signal",
                                   role: "status", hidden: true });
  // A device of the call that its delegation revoked (a verified revocation): cut off.
  const revokedNotice = h("div", { class: "info", id: "revoked-notice", role: "status",
                                   hidden: true });
  const panels = h("div", { class: "panels" }, listen, speakerSignal, alarm, revokedNotice);
  const stage = h("div", { class: "stage" }, remoteVideo, cameraOffNote, waiting, reconnecting,
                  remoteHold, tileName, selfTile,
                  // one column: the panels follow the status bar however it wraps
                  h("div", { class: "top-left" }, status, panels), aideStatus, onHold, codes,
                  h("nav", { class: "controls" }, mute, camera, aides, hold, end));
  mount(root, stage);

  // A briefing (more than two delegations, a host): a grid of the remote principals and
  // oneself instead of the one large picture, the group code the host reads aloud, and a
  // code per pair. Built when the verified plan says it is one (`showGrid`).
  const grid = h("section", { class: "grid", id: "grid" });
  const groupTitle = h("div", { class: "group-title", id: "group-title" });
  const groupCodeEl = h("div", { class: "group-code", id: "group-code" });
  const groupHelp = h("div", { class: "group-help", id: "group-help" });
  const pairsTitle = h("div", { class: "pairs-title", id: "pairs-title" });
  const pairs = h("ul", { class: "pairs", id: "pair-codes" });
  // On the SFU route (docs/protocol.md 5.12) there are no links between the delegations,
  // so no code per pair: the route is named instead, and the group code is the check.
  const routeTitle = h("div", { class: "pairs-title", id: "route-title", hidden: true });
  const routeNote = h("p", { class: "route-note", id: "route-note", hidden: true });
  const groupBox = h("aside", { class: "group", id: "group-box" },
    h("div", { "aria-live": "polite" }, groupTitle, groupCodeEl, groupHelp), pairsTitle, pairs,
    routeTitle, routeNote);
  let tiles = null; // remote principal -> its tile, in a briefing
  const speaker = new ActiveSpeaker();
  let speaking = null;

  let muted = false, cameraOn = true, otherName = "", otherDevice = null, lastPage = null;
  let linkQuality = null;
  const nameOf = (device) => whoIs(session.signed?.plan, device).name;
  const render = () => {
    aides.label.textContent = t("call_aides");
    hold.label.textContent = session.onHold ? t("release") : t("hold");
    hold.setAttribute("aria-pressed", String(session.onHold));
    onHold.hidden = !session.onHold;
    onHold.textContent = t("on_hold_self");
    remoteHold.hidden = !(otherDevice && session.held.has(otherDevice));
    remoteHold.textContent = t("on_hold_other", { name: otherName });
    if (lastPage !== null) {
      const coming = session.acks.get(lastPage) || [];
      aideStatus.hidden = false;
      aideStatus.textContent = coming.length
        ? coming.map((d) => t("aide_coming", { name: nameOf(d) })).join(" · ")
        : t("aides_called");
    }
    mute.label.textContent = muted ? t("unmute") : t("mute");
    mute.setAttribute("aria-pressed", String(muted));
    camera.label.textContent = cameraOn ? t("camera_off") : t("camera_on");
    camera.setAttribute("aria-pressed", String(!cameraOn));
    end.label.textContent = tiles ? t("pvg_leave") : t("end");
    if (tiles) renderGrid();
    else showCodes(codes, session, t, otherDevice);
    listenText.textContent = t("listen");
    duckText.textContent = t("original_level");
    phase.textContent = t(`phase_${session.phase}`) + (session.phase === "open" && session.deadline
      ? ` · ${t("press_until", { time: timeOf(session.deadline, lang) })}` : "");
    phase.dataset.phase = session.phase;
    const begun = session.startedAt && session.startSeen
      ? Math.min(session.startedAt, session.startSeen) : null;
    timer.hidden = begun === null || session.phase === "planned";
    timer.textContent = begun === null ? "" : elapsed(Date.now() - begun);
    timer.title = t("pv_timer");
    qualityEl.hidden = linkQuality === null;
    qualityEl.dataset.quality = linkQuality?.grade || "";
    qualityEl.textContent = linkQuality ? t(`pv_quality_${linkQuality.grade}`) : "";
    qualityEl.title = linkQuality ? t("pv_quality_detail", linkQuality.numbers) : "";
    const other = otherDevice ? whoIs(session.signed?.plan, otherDevice) : null;
    remoteName.textContent = other
      ? (other.delegation ? `${other.name} · ${other.delegation}` : other.name) : "";
    tileName.hidden = !other;
    const state = otherDevice ? session.remoteMedia.get(otherDevice) : undefined;
    remoteMuted.hidden = !state?.muted;
    remoteMuted.textContent = t("pv_remote_muted");
    cameraOffNote.hidden = !(state?.cameraOff && remoteVideo.srcObject);
    cameraOffNote.textContent = t("pv_remote_camera_off", { name: otherName });
    const mine = whoIs(session.signed?.plan, identity.fingerprint);
    selfName.textContent = t("pv_you") + (mine.delegation ? ` · ${mine.delegation}` : "");
    waiting.textContent = remoteVideo.srcObject ? "" : t("waiting_other", { name: otherName });
    showReconnecting(reconnecting, session, t, (d) => (d === otherDevice ? "" : nameOf(d)));
  };
  // -- the briefing --------------------------------------------------------------------
  const showGrid = (plan) => {
    const mine = participant(plan, identity.fingerprint);
    const order = plan.delegations.map((d) => d.id);
    const remotes = plan.participants
      .filter((p) => p.role === "principal" && p.device !== identity.fingerprint)
      .sort((a, b) => (a.delegation === plan.host ? -1 : 0) - (b.delegation === plan.host ? -1 : 0)
        || order.indexOf(a.delegation) - order.indexOf(b.delegation));
    tiles = new Map();
    for (const p of remotes) {
      const video = h("video", { class: "tile-video", autoplay: true, playsInline: true,
                                 muted: true });  // sound: Web Audio (Listening)
      const tile = {
        device: p.device, delegation: p.delegation, video,
        off: h("div", { class: "tile-off", hidden: true }),
        wait: h("div", { class: "tile-wait" }),
        person: h("span", { class: "tile-person" }, p.name),
        from: h("span", { class: "tile-delegation" }),
        speaking: h("span", { class: "tile-speaking", hidden: true }),
        muted: h("span", { class: "state-badge tile-muted", hidden: true }),
        hold: h("span", { class: "state-badge tile-hold", hidden: true }),
      };
      tile.el = h("figure", { class: "tile", "data-remote": p.device,
                              "data-delegation": p.delegation }, video, tile.off, tile.wait,
        h("div", { class: "tile-badges" }, tile.speaking, tile.muted, tile.hold),
        h("figcaption", { class: "tile-caption" },
          h("div", { class: "tile-names" }, tile.person, tile.from)));
      tiles.set(p.device, tile);
    }
    selfTile.classList.add("tile");
    selfTile.dataset.delegation = mine.delegation;
    grid.replaceChildren(...[...tiles.values()].map((x) => x.el), selfTile);
    grid.style.setProperty("--cols", String(gridColumns(tiles.size + 1)));
    grid.style.setProperty("--rows", String(Math.ceil((tiles.size + 1) / gridColumns(tiles.size + 1))));
    stage.classList.add("briefing");
    // the bilateral's one large picture and its code box give way to the grid
    for (const el of [remoteVideo, cameraOffNote, waiting, remoteHold, tileName, codes]) el.remove();
    panels.prepend(reconnecting); // in the top row, above the grid, not across a picture
    stage.insertBefore(grid, aideStatus);
    stage.insertBefore(groupBox, aideStatus);
  };

  const renderGrid = () => {
    const plan = session.signed.plan;
    const mine = participant(plan, identity.fingerprint);
    const nameOfDelegation = (id) => plan.delegations.find((d) => d.id === id)?.name ?? id;
    const introduced = introducedBy(plan, mine.delegation);
    const put = (el, text) => { if (el.textContent !== text) el.textContent = text; };
    grid.setAttribute("aria-label", t("pvg_grid"));
    for (const tile of tiles.values()) {
      const by = introduced[tile.delegation];
      put(tile.from, by ? t("pvg_introduced", { delegation: nameOfDelegation(tile.delegation),
                                                  host: nameOfDelegation(by) })
        : nameOfDelegation(tile.delegation));
      const state = session.remoteMedia.get(tile.device);
      const playing = Boolean(tile.video.srcObject);
      tile.wait.hidden = playing;
      put(tile.wait, t("verify_pending"));
      tile.off.hidden = !(state?.cameraOff && playing);
      put(tile.off, t("pvg_camera_off"));
      tile.muted.hidden = !state?.muted;
      put(tile.muted, t("pv_remote_muted"));
      tile.hold.hidden = !session.held.has(tile.device);
      put(tile.hold, t("pvg_on_hold"));
      const on = speaking === tile.device;
      tile.el.classList.toggle("speaking", on);
      tile.el.dataset.speaking = String(on);
      tile.speaking.hidden = !on;
      put(tile.speaking, t("pvg_speaking"));
      // whether its media arrives: its link carries, or on the SFU route its feed decodes
      tile.el.dataset.state = session.status.get(tile.device)?.state ?? "connecting";
    }
    // the group code: the host's principal reads it aloud, everyone else compares
    const hosting = mine.delegation === plan.host;
    put(groupTitle, t("pvg_group_title"));
    put(groupCodeEl, session.groupCode || "");
    put(groupHelp, hosting ? t("pvg_group_read")
      : t("pvg_group_compare", { host: nameOfDelegation(plan.host) }));
    groupBox.dataset.hosting = String(hosting);
    const viaSfu = session.route === "sfu";
    groupBox.dataset.route = session.route ?? "";
    pairsTitle.hidden = pairs.hidden = viaSfu;
    routeTitle.hidden = routeNote.hidden = !viaSfu;
    if (viaSfu) {
      put(routeTitle, t("pvg_sfu_title"));
      put(routeNote, t("pvg_sfu_note"));
      return;
    }
    put(pairsTitle, t("pvg_pairs_title"));
    // a code per pair: the principals by delegation, tile order; then anyone else linked
    const label = (device) => {
      const w = whoIs(plan, device);
      return tiles.has(device) ? t("pvg_verify_with", { delegation: w.delegation })
        : t("pv_verify_with", { name: w.name, delegation: w.delegation });
    };
    const rows = [...tiles.keys(), ...[...session.codes.keys()].filter((d) => !tiles.has(d))]
      .map((device) => [device, label(device), session.codes.get(device) || ""]);
    const drawn = JSON.stringify([rows, t("verify_pending")]);
    if (pairs.dataset.drawn === drawn) return; // redrawn only on a change: text stays selectable
    pairs.dataset.drawn = drawn;
    pairs.replaceChildren(...rows.map(([device, text, code]) =>
      h("li", { "data-remote": device, class: code ? "" : "pending" },
        h("span", { class: "sas-for" }, text),
        h("span", { class: "sas-small mono" }, code || t("verify_pending")))));
  };

  // Leaving a briefing: the others carry on; this page may rejoin. The host's principal
  // may also end it for everyone (the bilateral's End).
  const confirmLeave = () => {
    const hosting = participant(session.signed.plan, identity.fingerprint)?.delegation ===
      session.signed.plan.host;
    const dialog = h("dialog", { class: "confirm", id: "leave-dialog" },
      h("p", {}, t("pvg_leave_confirm")),
      h("button", { class: "control", id: "leave-yes",
                    onclick: () => { dialog.close(); leave(); } }, t("pvg_leave_yes")),
      h("button", { class: "control", id: "leave-no", autofocus: true,
                    onclick: () => dialog.close() }, t("pvg_leave_no")),
      hosting ? h("button", { class: "control danger", id: "end-yes",
                              onclick: () => { dialog.close(); session.endCall(); } },
                  t("pvg_end_all")) : "");
    dialog.addEventListener("close", () => dialog.remove());
    stage.append(dialog);
    dialog.showModal();
  };
  const leave = () => {
    session.leave();
    stop(t("pvg_left_title"), { help: t("pvg_left_help"), rejoin: true });
  };

  const toggleMute = () => { muted = !muted; session.setMuted(muted); render(); };
  const toggleCamera = () => { cameraOn = !cameraOn; session.setCamera(cameraOn); render(); };
  // Ending cannot be undone: ask first, with "continue" as the default.
  const confirmEnd = () => {
    const dialog = h("dialog", { class: "confirm", id: "end-dialog" },
      h("p", {}, t("end_confirm")),
      h("button", { class: "control danger", id: "end-yes",
                    onclick: () => { dialog.close(); session.endCall(); } }, t("end_yes")),
      h("button", { class: "control", id: "end-no", autofocus: true,
                    onclick: () => dialog.close() }, t("end_no")));
    dialog.addEventListener("close", () => dialog.remove());
    stage.append(dialog);
    dialog.showModal();
  };
  const callAides = async () => { lastPage = await session.page(); render(); };
  const toggleHold = () => { session.hold(!session.onHold); render(); };
  mute.onclick = toggleMute;
  camera.onclick = toggleCamera;
  end.onclick = () => (tiles ? confirmLeave() : confirmEnd());
  aides.onclick = callAides;
  hold.onclick = toggleHold;
  session.addEventListener("acked", render);
  session.addEventListener("server-error", (ev) => {
    if (ev.detail.code === "no-aide") {
      aideStatus.hidden = false;
      aideStatus.textContent = t("no_aide");
    }
  });
  session.addEventListener("held", render);
  session.addEventListener("remote-media", render);
  let signalTimer = null;
  session.addEventListener("speaker-signal", (ev) => {
    speakerSignal.textContent = t(ev.detail.signal === "slow-down" ? "booth_signal_slow_down"
      : "booth_signal_cannot_hear");
    speakerSignal.hidden = false;
    clearTimeout(signalTimer);
    signalTimer = setTimeout(() => { speakerSignal.hidden = true; }, SIGNAL_SHOWN_MS);
  });
  session.addEventListener("revoked", (ev) => {
    revokedNotice.hidden = false;
    revokedNotice.textContent = t("revoked_notice", { name: ev.detail.name, by: ev.detail.by });
    render();
  });
  const actions = { mute: toggleMute, camera: toggleCamera, end: () => end.onclick(),
                    aides: callAides, hold: toggleHold };
  const onKey = (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) || ev.repeat ||
        ev.ctrlKey || ev.metaKey || ev.altKey || document.querySelector("dialog[open]")) return;
    const action = PRINCIPAL_KEYS[ev.code];
    if (!action) return;
    ev.preventDefault();
    actions[action]();
  };
  document.addEventListener("keydown", onKey);
  channelSelect.setAttribute("aria-label", t("listen"));
  duck.setAttribute("aria-label", t("original_level"));

  const members = (channel) => (session.signed && channel ? session.signed.plan.participants
    .filter((p) => p.role === "interpreter" && p.language === channel).map((p) => p.device) : []);
  channelSelect.onchange = () => listening.choose(channelSelect.value || null, session.booth,
                                                  members(channelSelect.value));
  duck.oninput = () => listening.setDuck(Number(duck.value) / 100);
  session.addEventListener("booth", () => listening.booth(session.booth));
  const levelsTimer = followLevels(session, listening);
  const meter = new LevelMeter(listening.ctx);
  const speakerTimer = setInterval(() => {
    if (!tiles || session.stopped) return;
    const was = speaking;
    speaking = speaker.update(meter.levels([...tiles.keys()]), performance.now());
    if (speaking !== was) render();
  }, LEVELS_EVERY_MS);
  const GRADES = [null, "good", "fair", "poor"];
  const qualityTimer = setInterval(async () => {
    // the other principal's link; in a briefing, the worst of the principals' links
    const watched = tiles ? [...tiles.keys()] : otherDevice ? [otherDevice] : [];
    if (session.stopped || watched.length === 0) return;
    const all = (await session.health("quality")).filter((x) => watched.includes(x.peer));
    const hh = all.reduce((worst, x) => (
      GRADES.indexOf(quality(x)) > GRADES.indexOf(quality(worst)) ? x : worst), all[0]);
    const grade = quality(hh);
    linkQuality = grade && { grade, numbers: {
      rtt: Math.round(hh.rtt_ms), loss: ((hh.loss || 0) * 100).toFixed(1),
      jitter: Math.round(hh.jitter_ms || 0) } };
    render();
  }, QUALITY_EVERY_MS);
  session.addEventListener("plan", async (ev) => {
    const plan = ev.detail.plan;
    const me = participant(plan, identity.fingerprint);
    if (isBriefing(plan) && !tiles) showGrid(plan); // before any track: each finds its tile
    const other = tiles ? null : plan.participants.find(
      (p) => p.role === "principal" && p.delegation !== me.delegation);
    otherName = other ? other.name : "";
    otherDevice = other ? other.device : null;
    t = await strings(me.language);
    lang = me.language;
    document.documentElement.lang = me.language;
    channelSelect.setAttribute("aria-label", t("listen"));
    duck.setAttribute("aria-label", t("original_level"));
    if (identity.language !== me.language) {  // the next screen speaks it from the start
      identity.language = me.language;
      await saveIdentity("device", identity);
    }
    const channels = [...new Set(plan.participants.filter((p) => p.role === "interpreter")
      .map((p) => p.language))].sort();
    channelSelect.replaceChildren(h("option", { value: "" }, t("original")),
      ...channels.map((c) => h("option", { value: c }, t("channel", {
        language: languageName(t, c) }))));
    listen.hidden = channels.length === 0;
    if (listening.channel === null && channels.includes(me.language)) {
      channelSelect.value = me.language; // one's own, unless the principal chose already
    } else {
      channelSelect.value = listening.channel || "";
    }
    listening.choose(channelSelect.value || null, session.booth, members(channelSelect.value));
    render();
  });
  session.addEventListener("phase", render);
  session.addEventListener("status", render);
  session.addEventListener("route", render);
  // every second: the call timer, and "Reconnecting… N s"
  const countTimer = setInterval(render, COUNT_EVERY_MS);
  session.addEventListener("stream", (ev) => holdStream(stage, ev.detail.stream));
  session.addEventListener("track", (ev) => {  // the stream that plays for a remote now
    holdStream(stage, ev.detail.stream);
    listening.attach(ev.detail.remote, ev.detail.stream, ev.detail.role);
    if (tiles?.has(ev.detail.remote)) meter.attach(ev.detail.remote, ev.detail.stream);
    const video = tiles ? tiles.get(ev.detail.remote)?.video : remoteVideo;
    if (ev.detail.role === "principal" && video && video.srcObject !== ev.detail.stream) {
      video.srcObject = ev.detail.stream;
    }
    render();
  });
  session.addEventListener("sas", render);
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
    clearInterval(levelsTimer);
    clearInterval(speakerTimer);
    clearInterval(countTimer);
    clearInterval(qualityTimer);
    listening.ctx.close();
    for (const track of stream.getTracks()) track.stop();
    mount(root, h("main", { class: "narrow stop", role: "alert", id: "stop" },
      h("h1", {}, title), h("p", {}, detail.help),
      detail.technical ? h("details", {}, h("summary", {}, t("technical_detail")),
                           h("p", { class: "mono", id: "stop-detail" }, detail.technical)) : "",
      h("nav", { class: "choices" },
        detail.rejoin ? h("button", { class: "primary big", id: "rejoin",
                                      onclick: () => inCall(root, identity, call) },
                          t("pvg_rejoin")) : "",
        h("button", { class: "big", id: "back",
                      onclick: () => go(`#/principal/${identity.fingerprint}`) }, t("back")))));
  };
  session.addEventListener("fatal", (ev) => {
    const planProblem = ev.detail.code === "plan-rejected";
    stop(planProblem ? t("stop_title") : t("refused_title"),
         { help: planProblem ? t("stop_help") : "", technical: ev.detail.message });
  });
  session.addEventListener("alarm", (ev) => {
    // A signature that fails between the principals breaks the call's trust: stop.
    // Anything else (a stranger knocking, a replay) was refused; say so and go on.
    if (ev.detail.text.includes("signature")) {
      session.stop("plan-rejected", ev.detail.text);
      return;
    }
    alarm.hidden = false;
    const text = ev.detail.key ? t(ev.detail.key, ev.detail.args) : ev.detail.text;
    alarm.textContent = `${t("alarm_refused")} ${text}`;
  });
  session.addEventListener("ended", () => stop(t("phase_ended"), { help: t("ended_help") }));
  render();
  session.start();
}

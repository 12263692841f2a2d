// The interpreter's console: hears the floor (sees it only where the plan grants it),
// a large microphone control with an unmistakable ON AIR indicator, the channel it
// speaks into, who holds the floor now (a level meter per principal, and its own
// microphone's), the booth partner with the handover, and a verification code per peer.
// Interpreters are never seen: they send audio only.
//
// As a hardware console (ISO 20109) has: a cough key (hold to mute), a handover by
// request (the partner accepts or declines), a private channel with the booth partner
// (peer-to-peer: notes and a "take over now" nudge), signals to the principal speaking
// (slow down, cannot hear), where one works from (the floor or a relay, and who is live
// on it), and the listening controls (volume, tone, the floor under the partner, a clock,
// the time since the last handover).

import { wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, languageName, strings } from "../i18n.js";
import { Earpiece } from "../earpiece.js";
import { LevelMeter, Listening } from "../listening.js";
import { CallSession } from "../session.js";
import { whoIs } from "../plan.js";
import { codesBox, followLevels, holdStream, showCodes, showReconnecting } from "./principal.js";

const SPEAKING = 0.02; // audio level above which a principal is taken to be speaking
const METER_EVERY_MS = 200; // the meters follow the levels this often
// Shortcuts by physical key (KeyboardEvent.code): the same keys on any layout.
export const INTERPRETER_KEYS = { KeyL: "air", KeyH: "handover", KeyN: "nudge" };
export const COUGH_KEY = "KeyC"; // held down: the microphone sends silence
// How long the partner may answer a handover request (HANDOVER_ANSWER_MS, core/call.py).
export const HANDOVER_ANSWER_MS = 60_000;
const FLOOR_UNDER = 0.3; // the floor under the partner's (or a relay's) voice, at first
const NOTICE_MS = 8000; // a nudge, or "signal sent", stays this long

export { languageName }; // (from i18n.js, where the other views take it)

// A meter shows decibels: 0 at -60 dBFS and below, full at 0 dBFS (clipping).
const METER_FLOOR_DB = -60;
export const meterValue = (level) =>
  (level > 0 ? Math.max(0, 1 - (20 * Math.log10(level)) / METER_FLOOR_DB) : 0);

function meter(id) {
  // green up to 0.9, then a warning colour: near clipping
  return h("meter", { id, min: 0, max: 1, high: 0.95, optimum: 0.5, value: 0 });
}

export async function interpreterView(root, identity, call) {
  const lang = identity.uiLanguage || browserLanguage(); // not the channel it speaks into
  const t = await strings(lang);
  document.documentElement.lang = lang;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (err) {
    mount(root, h("main", { class: "narrow" }, h("p", { class: "error", role: "alert" },
      t("iv_mic_error", { error: err.message }))));
    return;
  }
  for (const track of stream.getAudioTracks()) track.enabled = false; // off until live
  const session = new CallSession({
    url: wsUrl(), call, identity, localStream: stream,
    pinned: { [identity.delegation.id]: identity.delegation.key },
  });
  window.summitlineSession = session;
  const ctx = new AudioContext();
  const earpiece = new Earpiece(ctx);
  const listening = new Listening(ctx, earpiece.input);
  listening.setDuck(FLOOR_UNDER);
  window.summitlineListening = listening;
  window.summitlineEarpiece = earpiece;
  const own = new LevelMeter(listening.ctx, stream.getAudioTracks()[0]);
  const voices = new Map(); // principal -> LevelMeter of the voice that plays now

  const onair = h("button", { class: "onair primary", id: "onair", "aria-pressed": "false" });
  const indicator = h("span", { class: "indicator", id: "indicator", role: "status" });
  const channel = h("dd", { id: "booth-channel" });
  const floor = h("dd", { id: "floor-speaker" }, "–");
  const floorMeters = h("div", { class: "meters", id: "floor-meters" });
  const ownMeter = meter("own-level");
  const ownLabel = h("label", { class: "meter-row", for: "own-level" },
                     h("span", { class: "who" }), ownMeter);
  const partnerInfo = h("dd", { id: "partner" });
  const handover = h("button", { id: "handover" });
  const source = h("select", { id: "source" });
  const phase = h("dd", { id: "interp-phase" });
  const video = h("video", { autoplay: true, playsInline: true, muted: true, hidden: true,
                             id: "floor-video" });
  const noVideo = h("p", { class: "muted", id: "no-video" }, t("iv_no_video"));
  const error = h("p", { class: "error", id: "alarm", role: "alert" });
  const reconnecting = h("div", { class: "reconnecting", id: "reconnecting", role: "status",
                                  "aria-live": "polite", hidden: true });
  const codes = codesBox("interp-codes");
  const dt = (key) => h("dt", {}, t(key));
  // the cough key: held (pointer, C, or Space / Enter on it), the microphone is silent
  const cough = h("button", { id: "cough", class: "cough", "aria-pressed": "false",
                              "aria-describedby": "cough-hint" }, t("booth_cough"));
  const coughHint = h("span", { class: "muted", id: "cough-hint" }, t("booth_cough_hint"));
  // a handover request: ours waiting, or the partner's to answer
  const asking = h("p", { id: "handover-waiting", role: "status", hidden: true });
  const accept = h("button", { id: "accept-handover", class: "primary" }, t("booth_accept"));
  const decline = h("button", { id: "decline-handover" }, t("booth_decline"));
  const askedText = h("p", { id: "handover-asked-text" });
  const asked = h("section", { id: "handover-asked", class: "asked", role: "alertdialog",
                               "aria-labelledby": "handover-asked-text", hidden: true },
                  askedText, h("p", { class: "air-row" }, accept, decline));
  // the booth-mate channel
  const mateLog = h("ol", { id: "mate-log", class: "mate-log", role: "log",
                            "aria-live": "polite", "aria-labelledby": "mate-title" });
  const mateText = h("input", { id: "mate-text", type: "text", maxlength: 500,
                                autocomplete: "off" });
  const mateSend = h("button", { id: "mate-send", type: "submit" }, t("booth_mate_send"));
  const nudge = h("button", { id: "nudge", type: "button" }, t("booth_nudge"));
  const nudged = h("p", { id: "nudge-notice", class: "nudge", role: "alert", hidden: true });
  const mate = h("section", { class: "mate", "aria-labelledby": "mate-title" },
    h("h2", { id: "mate-title" }, t("booth_mate_title")),
    h("p", { class: "muted" }, t("booth_mate_private")), nudged, mateLog,
    h("form", { id: "mate-form", class: "mate-form" },
      h("label", { for: "mate-text", class: "sr-only" }, t("booth_mate_label")),
      mateText, mateSend),
    h("p", { class: "air-row" }, nudge, h("kbd", { "aria-hidden": "true" }, "N")));
  // signals to the principal speaking
  const slowDown = h("button", { id: "slow-down", "data-signal": "slow-down" },
                     t("booth_slow_down"));
  const cannotHear = h("button", { id: "cannot-hear", "data-signal": "cannot-hear" },
                       t("booth_cannot_hear"));
  const signalStatus = h("p", { id: "signal-status", class: "muted", role: "status" });
  const signals = h("section", { class: "signals", "aria-labelledby": "signals-title" },
    h("h2", { id: "signals-title" }, t("booth_signals_title")),
    h("p", { class: "air-row" }, slowDown, cannotHear), signalStatus);
  // where one works from, and the listening controls
  const workingFrom = h("dd", { id: "working-from" });
  const relayLive = h("dd", { id: "relay-live" });
  const slider = (id, min, max, value, key) => {
    const input = h("input", { type: "range", id, min, max, value, step: 1 });
    return [input, h("label", { class: "control-row", for: id }, h("span", {}, t(key)), input)];
  };
  const [volume, volumeRow] = slider("volume", 0, 200, 100, "booth_volume");
  const [bass, bassRow] = slider("bass", -12, 12, 0, "booth_bass");
  const [treble, trebleRow] = slider("treble", -12, 12, 0, "booth_treble");
  const [floorUnder, floorUnderRow] = slider("floor-under", 0, 100, FLOOR_UNDER * 100,
                                             "booth_floor_under");
  const clockEl = h("dd", { id: "clock", class: "mono" });
  const shiftEl = h("dd", { id: "shift", class: "mono" });
  const controls = h("section", { class: "ear", "aria-labelledby": "ear-title" },
    h("h2", { id: "ear-title" }, t("booth_ear_title")), volumeRow, bassRow, trebleRow,
    floorUnderRow,
    h("dl", {}, dt("booth_clock"), clockEl, dt("booth_shift"), shiftEl));
  const page = h("main", { class: "booth" }, h("h1", {}, t("iv_title")),
    h("p", {}, indicator, " ", h("span", { class: "muted" }, identity.name, " · ",
      h("span", { class: "mono" }, shortFingerprint(identity.fingerprint)))),
    h("p", { class: "air-row" }, onair, h("kbd", { "aria-hidden": "true" }, "L"), cough,
      h("kbd", { "aria-hidden": "true" }, "C"), coughHint), error,
    reconnecting, asked,
    h("section", { class: "floor", "aria-labelledby": "floor-title" },
      h("h2", { id: "floor-title" }, t("iv_floor_levels")), floorMeters, ownLabel),
    h("dl", {}, dt("iv_into"), channel, dt("iv_on_floor"), floor, dt("iv_partner"),
      partnerInfo, h("dt", {}, h("label", { for: "source" }, t("iv_source"))),
      h("dd", {}, source), dt("booth_working_from"), workingFrom, dt("booth_relay_live"),
      relayLive, dt("iv_call"), phase),
    h("p", { class: "air-row" }, handover, h("kbd", { "aria-hidden": "true" }, "H")), asking,
    mate, signals, controls, codes, video, noVideo);
  mount(root, page);

  const partners = () => session.signed ? session.signed.plan.participants.filter(
    (p) => p.role === "interpreter" && p.language === session.channel &&
      p.device !== identity.fingerprint) : [];
  const principals = () => session.signed ? session.signed.plan.participants.filter(
    (p) => p.role === "principal") : [];
  // The control works only once the server has let this console in (its welcome: the
  // verified plan and the booth): before that a press would go nowhere, and the
  // interpreter would believe to be on air.
  const ready = () => session.signed !== null && !session.stopped;
  const nameOf = (device) => whoIs(session.signed?.plan, device).name;
  // A request as this console saw it arrive: {seq, from, to, seen} (local ms), so that it
  // lapses here after HANDOVER_ANSWER_MS as the server's does.
  let request = null;
  let shiftSince = Date.now(); // the last change of who is live in one's booth
  let lastHolder;
  let speaker = null; // the principal speaking now, or who spoke last
  const openRequest = () => request && Date.now() - request.seen < HANDOVER_ANSWER_MS
    ? request : null;
  const render = () => {
    const live = session.live;
    const holder = session.channel ? session.booth.live[session.channel] : null;
    onair.textContent = !ready() ? t("iv_connecting") : live ? t("iv_stop")
      : holder ? t("iv_partner_on_air") : t("iv_go_on_air");
    onair.disabled = !ready() || (!live && Boolean(holder));
    onair.setAttribute("aria-pressed", String(live));
    const coughing = session.coughing;
    indicator.textContent = live ? (coughing ? t("booth_on_air_coughing") : t("iv_on_air"))
      : t("iv_off_air");
    indicator.classList.toggle("live", live && !coughing);
    indicator.classList.toggle("coughing", live && coughing);
    cough.setAttribute("aria-pressed", String(coughing));
    cough.disabled = !ready();
    channel.textContent = languageName(t, session.channel);
    const partner = partners()[0];
    partnerInfo.textContent = partner ? `${partner.name} — ${holder === partner.device
      ? t("iv_partner_live") : session.links.has(partner.device) ? t("iv_partner_listening")
        : t("iv_partner_away")}` : t("iv_no_partner");
    const open = openRequest();
    const mine = open && open.from === identity.fingerprint && live;
    const theirs = open && open.to === identity.fingerprint && holder === open.from;
    handover.textContent = partner ? t("iv_hand_over_to", { name: partner.name })
      : t("iv_hand_over");
    handover.disabled = !live || !partner || Boolean(mine);
    handover.title = !partner ? t("iv_no_partner") : "";
    asking.hidden = !mine;
    if (mine) {
      asking.textContent = t("booth_waiting_for", { name: nameOf(open.to),
        seconds: String(Math.max(0, Math.ceil((HANDOVER_ANSWER_MS - (Date.now() - open.seen))
          / 1000))) });
    }
    asked.hidden = !theirs;
    if (theirs) askedText.textContent = t("booth_asked", { name: nameOf(open.from) });
    for (const b of [mateSend, nudge, mateText]) b.disabled = !partner;
    for (const b of [slowDown, cannotHear]) b.disabled = !ready() || !speaker;
    const src = session.booth.sources[identity.fingerprint] || "floor";
    workingFrom.textContent = src === "floor" ? t("booth_from_floor")
      : t("booth_from_relay", { language: languageName(t, src) });
    const relayHolder = src === "floor" ? null : session.booth.live[src];
    relayLive.textContent = src === "floor" ? "–"
      : relayHolder ? nameOf(relayHolder) : t("booth_relay_quiet");
    phase.textContent = t(`phase_${session.phase}`);
    ownLabel.firstChild.textContent = t("iv_own_mic");
    showCodes(codes, session, t, null);
    showReconnecting(reconnecting, session, t, (d) => whoIs(session.signed?.plan, d).name);
  };
  const toggle = () => {
    if (onair.disabled) return; // the L key obeys what the button shows
    if (session.live) session.goQuiet();
    else session.goLive();
  };
  // "Hand over" asks the partner; it stays live until the partner accepts.
  const handOver = () => {
    if (handover.disabled) return;
    const p = partners()[0];
    if (p && session.live) session.requestHandover(p.device);
  };
  const answer = (yes) => { if (session.handoverAsker) session.answerHandover(yes); };
  onair.onclick = toggle;
  handover.onclick = handOver;
  accept.onclick = () => answer(true);
  decline.onclick = () => answer(false);
  const setCough = (on) => {
    if (on === session.coughing || (on && cough.disabled)) return;
    session.setCough(on);
    render();
  };
  cough.addEventListener("pointerdown", (ev) => {
    cough.setPointerCapture?.(ev.pointerId); // released wherever the pointer goes
    setCough(true);
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    cough.addEventListener(type, () => setCough(false));
  }
  cough.addEventListener("keydown", (ev) => {
    if (ev.code !== "Space" && ev.code !== "Enter") return;
    ev.preventDefault(); // a hold, not a click
    if (!ev.repeat) setCough(true);
  });
  cough.addEventListener("keyup", (ev) => {
    if (ev.code === "Space" || ev.code === "Enter") setCough(false);
  });
  cough.addEventListener("blur", () => setCough(false));
  cough.onclick = (ev) => ev.preventDefault();
  // the booth-mate channel: kept in this page only, never sent through the server
  const addMate = (who, text, cls) => {
    const time = new Date().toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    mateLog.append(h("li", { class: cls }, h("span", { class: "muted" }, `${time} ${who}: `),
                     text));
    mateLog.scrollTop = mateLog.scrollHeight;
  };
  page.querySelector("#mate-form").onsubmit = (ev) => {
    ev.preventDefault();
    const p = partners()[0], text = mateText.value.trim();
    if (!p || !text) return;
    if (session.sendNote(p.device, text)) {
      addMate(t("booth_mate_me"), text, "mine");
      mateText.value = "";
    } else addMate(t("booth_mate_me"), t("booth_mate_not_sent"), "error");
  };
  const doNudge = () => {
    const p = partners()[0];
    if (!p || nudge.disabled) return;
    addMate(t("booth_mate_me"), session.nudge(p.device) ? t("booth_nudge_sent")
      : t("booth_mate_not_sent"), "mine");
  };
  nudge.onclick = doNudge;
  let nudgeTimer = null;
  session.addEventListener("booth-mate", (ev) => {
    const { name, kind, text } = ev.detail;
    if (kind === "note") addMate(name, text, "theirs");
    else {
      addMate(name, t("booth_nudge_got"), "theirs");
      nudged.textContent = t("booth_nudged", { name });
      nudged.hidden = false;
      clearTimeout(nudgeTimer);
      nudgeTimer = setTimeout(() => { nudged.hidden = true; }, NOTICE_MS);
    }
  });
  // a signal to the principal speaking (or who spoke last), over its own link
  for (const b of [slowDown, cannotHear]) {
    b.onclick = () => {
      if (!speaker) return;
      const sent = session.signalSpeaker(speaker, b.dataset.signal);
      signalStatus.textContent = sent ? t("booth_signal_sent", { name: nameOf(speaker) })
        : t("booth_mate_not_sent");
    };
  }
  volume.oninput = () => earpiece.setVolume(volume.value / 100);
  bass.oninput = () => earpiece.setBass(Number(bass.value));
  treble.oninput = () => earpiece.setTreble(Number(treble.value));
  floorUnder.oninput = () => listening.setDuck(floorUnder.value / 100);
  source.onchange = () => session.setSource(source.value);
  const actions = { air: toggle, handover: handOver, nudge: doNudge };
  const onKey = (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) ||
        ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.code === COUGH_KEY) {
      ev.preventDefault();
      if (!ev.repeat) setCough(true);
      return;
    }
    const action = INTERPRETER_KEYS[ev.code];
    if (!action || ev.repeat) return;
    ev.preventDefault();
    actions[action]();
  };
  const onKeyUp = (ev) => { if (ev.code === COUGH_KEY) setCough(false); };
  const onBlur = () => setCough(false); // a key released in another window
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", onBlur);

  session.addEventListener("plan", (ev) => {
    const plan = ev.detail.plan;
    const others = [...new Set(plan.participants.filter((p) => p.role === "interpreter" &&
      p.language !== session.channel).map((p) => p.language))].sort();
    source.replaceChildren(h("option", { value: "floor" }, t("iv_the_floor")),
      ...others.map((c) => h("option", { value: c },
        t("iv_relay", { language: languageName(t, c) }))));
    noVideo.hidden = plan.interpreter_video;
    floorMeters.replaceChildren(...principals().map((p) => {
      const who = whoIs(plan, p.device);
      return h("label", { class: "meter-row", "data-remote": p.device, for: `level-${p.device}` },
        h("span", { class: "who" }, who.delegation ? `${who.name} · ${who.delegation}` : who.name),
        meter(`level-${p.device}`));
    }));
    render();
  });
  // What the interpreter hears: its source (the floor, or a relay channel); off air while
  // its partner is live, the partner's voice over the floor at the floor-under level.
  const hear = () => {
    const src = session.booth.sources[identity.fingerprint] || "floor";
    const holder = session.channel ? session.booth.live[session.channel] : null;
    const channel = holder && holder !== identity.fingerprint ? session.channel
      : src === "floor" ? null : src;
    if (channel !== listening.channel) {  // re-choose on a change only
      listening.choose(channel, session.booth, session.signed.plan.participants
        .filter((p) => p.role === "interpreter" && p.language === channel).map((p) => p.device));
    } else {
      listening.booth(session.booth);
    }
  };
  session.addEventListener("booth", () => {
    source.value = session.booth.sources[identity.fingerprint] || "floor";
    const holder = session.channel ? session.booth.live[session.channel] : null;
    if (holder !== lastHolder) {
      // on arrival, from the signed time of the action that put the holder there
      const at = session.ledger?.since.get(session.channel);
      shiftSince = lastHolder === undefined && at ? Math.min(Date.now(), at) : Date.now();
      lastHolder = holder;
    }
    const last = session.ledger?.last.get(session.channel);
    if (last?.action === "request" && last.seq !== request?.seq) {
      request = { seq: last.seq, from: last.from, to: last.to, seen: Date.now() };
      if (last.to === identity.fingerprint) accept.focus();
    } else if (last?.action !== "request") request = null;
    hear();
    render();
  });
  session.addEventListener("phase", render);
  session.addEventListener("peers", render);
  session.addEventListener("status", render);
  session.addEventListener("sas", render);
  const clockFormat = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit",
                                                      second: "2-digit", hour12: false });
  const tick = () => {
    clockEl.textContent = clockFormat.format(new Date());
    const s = Math.floor((Date.now() - shiftSince) / 1000);
    shiftEl.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  const countTimer = setInterval(() => {
    tick();
    if (session.reconnecting().size || request) render();
  }, 1000);
  session.addEventListener("stream", (ev) => holdStream(page, ev.detail.stream));
  session.addEventListener("track", (ev) => {  // the stream that plays for a remote now
    holdStream(page, ev.detail.stream);
    listening.attach(ev.detail.remote, ev.detail.stream, ev.detail.role);
    const voice = ev.detail.stream.getAudioTracks()[0];
    if (ev.detail.role === "principal" && voice) {
      voices.get(ev.detail.remote)?.stop();
      voices.set(ev.detail.remote, new LevelMeter(listening.ctx, voice));
    }
    if (ev.detail.role === "principal" && ev.detail.stream.getVideoTracks().length) {
      video.srcObject = ev.detail.stream;  // only where the plan granted the picture
      video.hidden = false;
    }
  });
  const levelsTimer = followLevels(session, listening);
  // The meters, and who holds the floor: the loudest principal above SPEAKING.
  const floorTimer = setInterval(() => {
    ownMeter.value = meterValue(own.level());
    if (!session.signed || session.stopped) return;
    let best = null;
    for (const row of floorMeters.children) {
      const level = voices.get(row.dataset.remote)?.level() || 0;
      row.lastChild.value = meterValue(level);
      row.classList.toggle("speaking", level > SPEAKING);
      if (level > SPEAKING && (!best || level > best.level)) {
        best = { name: row.firstChild.textContent, level, device: row.dataset.remote };
      }
    }
    floor.textContent = best ? best.name : "–";
    if (best && best.device !== speaker) {
      speaker = best.device;  // signals go to whoever speaks now, or spoke last
      render();
    }
  }, METER_EVERY_MS);
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("keyup", onKeyUp);
    window.removeEventListener("blur", onBlur);
    clearTimeout(nudgeTimer);
    clearInterval(levelsTimer);
    clearInterval(floorTimer);
    clearInterval(countTimer);
    own.stop();
    for (const voice of voices.values()) voice.stop();
    listening.ctx.close();
    for (const track of stream.getTracks()) track.stop();
    mount(root, h("main", { class: "narrow stop", role: "alert", id: "stop" }, h("h1", {}, title),
      detail ? h("p", { class: "mono", id: "stop-detail" }, detail) : "",
      h("button", { class: "big", id: "back",
                    onclick: () => go(`#/principal/${identity.fingerprint}`) }, t("back"))));
  };
  session.addEventListener("fatal", (ev) => stop(t("stop_title"), ev.detail.message));
  session.addEventListener("alarm", (ev) => {
    error.textContent = ev.detail.key ? t(ev.detail.key, ev.detail.args) : ev.detail.text;
  });
  session.addEventListener("ended", () => stop(t("phase_ended"), ""));
  render();
  session.start();
}

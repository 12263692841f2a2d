// The interpreter's console: hears the floor (sees it only where the plan grants it),
// a large microphone control with an unmistakable ON AIR indicator, the channel it
// speaks into, who holds the floor now (a level meter per principal, and its own
// microphone's), the booth partner with the handover, and a verification code per peer.
// Interpreters are never seen: they send audio only.

import { wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, languageName, strings } from "../i18n.js";
import { LevelMeter, Listening } from "../listening.js";
import { CallSession } from "../session.js";
import { whoIs } from "../plan.js";
import { codesBox, followLevels, holdStream, showCodes, showReconnecting } from "./principal.js";

const SPEAKING = 0.02; // audio level above which a principal is taken to be speaking
const METER_EVERY_MS = 200; // the meters follow the levels this often
// Shortcuts by physical key (KeyboardEvent.code): the same keys on any layout.
export const INTERPRETER_KEYS = { KeyL: "air", KeyH: "handover" };

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
  const listening = new Listening(new AudioContext());
  window.summitlineListening = listening;
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
  const page = h("main", { class: "booth" }, h("h1", {}, t("iv_title")),
    h("p", {}, indicator, " ", h("span", { class: "muted" }, identity.name, " · ",
      h("span", { class: "mono" }, shortFingerprint(identity.fingerprint)))),
    h("p", { class: "air-row" }, onair, h("kbd", { "aria-hidden": "true" }, "L")), error,
    reconnecting,
    h("section", { class: "floor", "aria-labelledby": "floor-title" },
      h("h2", { id: "floor-title" }, t("iv_floor_levels")), floorMeters, ownLabel),
    h("dl", {}, dt("iv_into"), channel, dt("iv_on_floor"), floor, dt("iv_partner"),
      partnerInfo, h("dt", {}, h("label", { for: "source" }, t("iv_source"))),
      h("dd", {}, source), dt("iv_call"), phase),
    h("p", { class: "air-row" }, handover, h("kbd", { "aria-hidden": "true" }, "H")),
    codes, video, noVideo);
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
  const render = () => {
    const live = session.live;
    const holder = session.channel ? session.booth.live[session.channel] : null;
    onair.textContent = !ready() ? t("iv_connecting") : live ? t("iv_stop")
      : holder ? t("iv_partner_on_air") : t("iv_go_on_air");
    onair.disabled = !ready() || (!live && Boolean(holder));
    onair.setAttribute("aria-pressed", String(live));
    indicator.textContent = live ? t("iv_on_air") : t("iv_off_air");
    indicator.classList.toggle("live", live);
    channel.textContent = languageName(t, session.channel);
    const partner = partners()[0];
    partnerInfo.textContent = partner ? `${partner.name} — ${holder === partner.device
      ? t("iv_partner_live") : session.links.has(partner.device) ? t("iv_partner_listening")
        : t("iv_partner_away")}` : t("iv_no_partner");
    handover.textContent = partner ? t("iv_hand_over_to", { name: partner.name })
      : t("iv_hand_over");
    handover.disabled = !live || !partner;
    handover.title = !partner ? t("iv_no_partner") : "";
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
  const handOver = () => {
    if (handover.disabled) return;
    const p = partners()[0];
    if (p && session.live) session.handover(p.device);
  };
  onair.onclick = toggle;
  handover.onclick = handOver;
  source.onchange = () => session.setSource(source.value);
  const actions = { air: toggle, handover: handOver };
  const onKey = (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) || ev.repeat ||
        ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const action = INTERPRETER_KEYS[ev.code];
    if (!action) return;
    ev.preventDefault();
    actions[action]();
  };
  document.addEventListener("keydown", onKey);

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
  session.addEventListener("booth", () => {
    const src = session.booth.sources[identity.fingerprint] || "floor";
    source.value = src;
    const channel = src === "floor" ? null : src;
    if (channel !== listening.channel) {  // relay: hear that channel (re-choose on change only)
      listening.choose(channel, session.booth, session.signed.plan.participants
        .filter((p) => p.role === "interpreter" && p.language === channel).map((p) => p.device));
    } else {
      listening.booth(session.booth);
    }
    render();
  });
  session.addEventListener("phase", render);
  session.addEventListener("peers", render);
  session.addEventListener("status", render);
  session.addEventListener("sas", render);
  const countTimer = setInterval(() => { if (session.reconnecting().size) render(); }, 1000);
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
        best = { name: row.firstChild.textContent, level };
      }
    }
    floor.textContent = best ? best.name : "–";
  }, METER_EVERY_MS);
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
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

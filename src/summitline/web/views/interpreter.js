// The interpreter's console: hears the floor (sees it only where the plan grants it),
// a large microphone control with an unmistakable ON AIR indicator, the channel it
// speaks into, who speaks on the floor now, and the booth partner with the handover.
// Interpreters are never seen: they send audio only.

import { wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, strings } from "../i18n.js";
import { Listening } from "../listening.js";
import { participant } from "../plan.js";
import { CallSession } from "../session.js";
import { followLevels, holdStream, showReconnecting } from "./principal.js";

const SPEAKING = 0.02; // audio level above which a principal is taken to be speaking

export async function interpreterView(root, identity, call) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (err) {
    mount(root, h("main", { class: "narrow" }, h("p", { class: "error", role: "alert" },
      `The microphone could not be opened: ${err.message}`)));
    return;
  }
  for (const track of stream.getAudioTracks()) track.enabled = false; // off until live
  const t = await strings(browserLanguage());
  const session = new CallSession({
    url: wsUrl(), call, identity, localStream: stream,
    pinned: { [identity.delegation.id]: identity.delegation.key },
  });
  window.summitlineSession = session;
  const listening = new Listening(new AudioContext());
  window.summitlineListening = listening;

  const onair = h("button", { class: "onair primary", id: "onair", "aria-pressed": "false" });
  const indicator = h("span", { class: "indicator", id: "indicator", role: "status" });
  const channel = h("dd", { id: "booth-channel" });
  const floor = h("dd", { id: "floor-speaker" }, "–");
  const partnerInfo = h("dd", { id: "partner" });
  const handover = h("button", { id: "handover" }, "Hand over");
  const source = h("select", { id: "source" });
  const phase = h("dd", { id: "interp-phase" });
  const video = h("video", { autoplay: true, playsInline: true, muted: true, hidden: true,
                             id: "floor-video" });
  const noVideo = h("p", { class: "muted", id: "no-video" }, "Audio only: the plan does not " +
                    "grant you the picture.");
  const error = h("p", { class: "error", id: "alarm", role: "alert" });
  const reconnecting = h("div", { class: "reconnecting", id: "reconnecting", role: "status",
                                  "aria-live": "polite", hidden: true });
  const page = h("main", { class: "booth" }, h("h1", {}, "Interpreter console"),
    h("p", {}, indicator, " ", h("span", { class: "muted" }, identity.name, " · ",
      h("span", { class: "mono" }, shortFingerprint(identity.fingerprint)))),
    h("p", {}, onair), error, reconnecting,
    h("dl", {}, h("dt", {}, "You interpret into"), channel, h("dt", {}, "On the floor now"),
      floor, h("dt", {}, "Booth partner"), partnerInfo, h("dt", {}, "Your source"),
      h("dd", {}, source), h("dt", {}, "Call"), phase),
    h("p", {}, handover), video, noVideo,
    h("p", { class: "muted" }, "Keys: L on air / off air, H hand over"));
  mount(root, page);

  const partners = () => session.signed ? session.signed.plan.participants.filter(
    (p) => p.role === "interpreter" && p.language === session.channel &&
      p.device !== identity.fingerprint) : [];
  // The control works only once the server has let this console in (its welcome: the
  // verified plan and the booth): before that a press would go nowhere, and the
  // interpreter would believe to be on air.
  const ready = () => session.signed !== null && !session.stopped;
  const render = () => {
    const live = session.live;
    const holder = session.channel ? session.booth.live[session.channel] : null;
    onair.textContent = !ready() ? "Connecting…" : live ? "On air — stop"
      : holder ? "Your partner is on air" : "Go on air";
    onair.disabled = !ready() || (!live && Boolean(holder));
    onair.setAttribute("aria-pressed", String(live));
    indicator.textContent = live ? "ON AIR" : "OFF AIR";
    indicator.classList.toggle("live", live);
    channel.textContent = session.channel || "–";
    const partner = partners()[0];
    partnerInfo.textContent = partner ? `${partner.name} — ${holder === partner.device
      ? "on air" : session.links.has(partner.device) ? "listening" : "not connected"}` : "none";
    handover.textContent = partner ? `Hand over to ${partner.name}` : "Hand over";
    handover.disabled = !live || !partner;
    phase.textContent = t(`phase_${session.phase}`);
    showReconnecting(reconnecting, session, t, (d) => (session.signed &&
      participant(session.signed.plan, d)?.name) || d.slice(0, 12));
  };
  const toggle = () => {
    if (onair.disabled) return; // the L key obeys what the button shows
    if (session.live) session.goQuiet();
    else session.goLive();
  };
  const handOver = () => { const p = partners()[0]; if (p && session.live) session.handover(p.device); };
  onair.onclick = toggle;
  handover.onclick = handOver;
  source.onchange = () => session.setSource(source.value);
  const onKey = (ev) => {
    if (ev.target.tagName === "SELECT") return;
    if (ev.key.toLowerCase() === "l") toggle();
    else if (ev.key.toLowerCase() === "h") handOver();
  };
  document.addEventListener("keydown", onKey);

  session.addEventListener("plan", (ev) => {
    const plan = ev.detail.plan;
    const others = [...new Set(plan.participants.filter((p) => p.role === "interpreter" &&
      p.language !== session.channel).map((p) => p.language))].sort();
    source.replaceChildren(h("option", { value: "floor" }, "The floor"),
      ...others.map((c) => h("option", { value: c }, `Relay: the ${c} channel`)));
    noVideo.hidden = plan.interpreter_video;
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
  const countTimer = setInterval(() => { if (session.reconnecting().size) render(); }, 1000);
  session.addEventListener("stream", (ev) => holdStream(page, ev.detail.stream));
  session.addEventListener("track", (ev) => {  // the stream that plays for a remote now
    holdStream(page, ev.detail.stream);
    listening.attach(ev.detail.remote, ev.detail.stream, ev.detail.role);
    if (ev.detail.role === "principal" && ev.detail.stream.getVideoTracks().length) {
      video.srcObject = ev.detail.stream;  // only where the plan granted the picture
      video.hidden = false;
    }
  });
  const levelsTimer = followLevels(session, listening);
  const floorTimer = setInterval(async () => {  // who speaks on the floor now
    if (!session.signed || session.stopped) return;
    let best = null;
    for (const hh of await session.health()) {
      const p = participant(session.signed.plan, hh.peer);
      if (p?.role === "principal" && hh.audioLevel > SPEAKING &&
          (!best || hh.audioLevel > best.level)) best = { name: p.name, level: hh.audioLevel };
    }
    floor.textContent = best ? best.name : "–";
  }, 500);
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
    clearInterval(levelsTimer);
    clearInterval(floorTimer);
    clearInterval(countTimer);
    listening.ctx.close();
    for (const track of stream.getTracks()) track.stop();
    mount(root, h("main", { class: "narrow stop", role: "alert", id: "stop" }, h("h1", {}, title),
      detail ? h("p", { class: "mono", id: "stop-detail" }, detail) : "",
      h("button", { class: "big", id: "back", onclick: () => go(`#/principal/${identity.fingerprint}`) },
        "Back")));
  };
  session.addEventListener("fatal", (ev) => stop("This call cannot be verified", ev.detail.message));
  session.addEventListener("alarm", (ev) => {
    error.textContent = ev.detail.key ? t(ev.detail.key, ev.detail.args) : ev.detail.text;
  });
  session.addEventListener("ended", () => stop("The call has ended", ""));
  render();
  session.start();
}

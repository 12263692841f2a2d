// The principal's view: the other principal large, oneself small, the phase at a
// glance, the verification code, and three large controls. Made for someone who is not
// technical and is under pressure: few things on screen, all reachable by keyboard.

import { get, setSigner, wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, strings } from "../i18n.js";
import { chooseIdentity, listIdentities, saveIdentity } from "../keystore.js";
import { participant } from "../plan.js";
import { Listening } from "../listening.js";
import { CallSession } from "../session.js";
import { aideView } from "./aide.js";
import { interpreterView } from "./interpreter.js";

const LEVELS_EVERY_MS = 200; // how often audio levels are read, to follow a handover
const COUNT_EVERY_MS = 1000; // "Reconnecting… N s" counts in seconds

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

export async function principalView(root, fingerprint) {
  const identity = await chooseIdentity("device", fingerprint);
  const t = await strings(identity?.language || browserLanguage());
  document.title = t("title");
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
  mount(root, h("main", { class: "narrow" },
    h("p", { class: "muted" }, `${t("device")}: ${identity.name} · `,
      h("span", { class: "mono" }, shortFingerprint(identity.fingerprint))),
    h("h1", {}, t("your_calls")),
    open.length === 0 ? h("p", {}, t("no_calls")) : h("ul", { class: "calls" },
      open.map((c) => h("li", {}, h("span", { class: "call-title" }, c.title),
        h("button", { class: "primary big", "data-call": c.call,
                      onclick: () => ({ interpreter: interpreterView, aide: aideView }[
                        identity.role] || inCall)(root, identity, c.call) }, t("join")))))));
}

async function inCall(root, identity, call) {
  let t = await strings(identity.language || browserLanguage());
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
  });
  window.summitlineSession = session; // for tests and for a look from the console

  const remoteVideo = h("video", { class: "remote", autoplay: true, playsInline: true,
                                   muted: true, id: "remote-video" });  // sound: Web Audio
  const listening = new Listening(new AudioContext());
  window.summitlineListening = listening;
  const channelSelect = h("select", { id: "channel", "aria-label": "listen" });
  const duck = h("input", { type: "range", id: "duck", min: 0, max: 100, value: 30,
                            "aria-label": "original" });
  const listenText = h("span"), duckText = h("span");
  const listen = h("div", { class: "listen" }, h("label", {}, listenText, channelSelect),
                   h("label", {}, duckText, duck));
  const selfVideo = h("video", { class: "self", autoplay: true, playsInline: true, muted: true,
                                 id: "self-video", srcObject: stream });
  const phase = h("div", { class: "phase", id: "phase", role: "status" });
  const reconnecting = h("div", { class: "reconnecting", id: "reconnecting", role: "status",
                                  "aria-live": "polite", hidden: true });
  const waiting = h("div", { class: "waiting", id: "waiting" });
  const code = h("div", { class: "sas-code", id: "sas" });
  const sasHelp = h("div", { class: "sas-help" });
  const sasTitle = h("div", { class: "sas-title" });
  const mute = h("button", { class: "control", id: "mute", "aria-pressed": "false" });
  const camera = h("button", { class: "control", id: "camera", "aria-pressed": "false" });
  const end = h("button", { class: "control danger", id: "end" });
  // The aide button and the aside: the other side learns only "on hold", nothing more.
  const aides = h("button", { class: "control", id: "call-aides" });
  const hold = h("button", { class: "control", id: "hold", "aria-pressed": "false" });
  const aideStatus = h("div", { class: "aide-status", id: "aide-status", role: "status",
                                hidden: true });
  const onHold = h("div", { class: "on-hold", id: "on-hold", hidden: true });
  const remoteHold = h("div", { class: "remote-hold", id: "remote-hold", hidden: true });
  const keys = h("div", { class: "keys muted" });
  const alarm = h("div", { class: "alarm", id: "alarm", role: "alert", hidden: true });
  // A device of the call that its delegation revoked (a verified revocation): cut off.
  const revokedNotice = h("div", { class: "info", id: "revoked-notice", role: "status",
                                   hidden: true });
  const panels = h("div", { class: "panels" }, listen, alarm, revokedNotice);
  const stage = h("div", { class: "stage" }, remoteVideo, waiting, reconnecting, remoteHold,
                  selfVideo, phase, panels, aideStatus, onHold,
                  h("aside", { class: "sas", "aria-live": "polite" }, sasTitle, code, sasHelp),
                  h("nav", { class: "controls" }, mute, camera, aides, hold, end), keys);
  mount(root, stage);

  let muted = false, cameraOn = true, otherName = "", otherDevice = null, lastPage = null;
  const nameOf = (device) => (session.signed &&
    participant(session.signed.plan, device)?.name) || device.slice(0, 12);
  const render = () => {
    aides.textContent = t("call_aides");
    hold.textContent = session.onHold ? t("release") : t("hold");
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
    mute.textContent = muted ? t("unmute") : t("mute");
    mute.setAttribute("aria-pressed", String(muted));
    camera.textContent = cameraOn ? t("camera_off") : t("camera_on");
    camera.setAttribute("aria-pressed", String(!cameraOn));
    end.textContent = t("end");
    sasTitle.textContent = t("verify_title");
    sasHelp.textContent = code.textContent ? t("verify_help") : t("verify_pending");
    keys.textContent = t("keys");
    listenText.textContent = t("listen");
    duckText.textContent = t("original_level");
    phase.textContent = t(`phase_${session.phase}`) + (session.phase === "open" && session.deadline
      ? ` · ${t("press_until", { time: new Date(session.deadline).toLocaleTimeString() })}` : "");
    phase.dataset.phase = session.phase;
    waiting.textContent = remoteVideo.srcObject ? "" : t("waiting_other", { name: otherName });
    showReconnecting(reconnecting, session, t, (d) => (d === otherDevice ? "" : nameOf(d)));
  };
  const toggleMute = () => { muted = !muted; session.setMuted(muted); render(); };
  const toggleCamera = () => { cameraOn = !cameraOn; session.setCamera(cameraOn); render(); };
  const confirmEnd = () => {
    const dialog = h("dialog", { class: "confirm", id: "end-dialog" },
      h("p", {}, t("end_confirm")),
      h("button", { class: "control danger", id: "end-yes",
                    onclick: () => { dialog.close(); session.endCall(); } }, t("end_yes")),
      h("button", { class: "control", autofocus: true, onclick: () => dialog.close() },
        t("end_no")));
    stage.append(dialog);
    dialog.showModal();
  };
  const callAides = async () => { lastPage = await session.page(); render(); };
  const toggleHold = () => { session.hold(!session.onHold); render(); };
  mute.onclick = toggleMute;
  camera.onclick = toggleCamera;
  end.onclick = confirmEnd;
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
  session.addEventListener("revoked", (ev) => {
    revokedNotice.hidden = false;
    revokedNotice.textContent = t("revoked_notice", { name: ev.detail.name, by: ev.detail.by });
    render();
  });
  const onKey = (ev) => {
    if (ev.target.tagName === "INPUT" || document.querySelector("dialog[open]")) return;
    const key = ev.key.toLowerCase();
    if (key === "m") toggleMute();
    else if (key === "v") toggleCamera();
    else if (key === "e") confirmEnd();
    else if (key === "a") callAides();
    else if (key === "h") toggleHold();
  };
  document.addEventListener("keydown", onKey);

  const members = (channel) => (session.signed && channel ? session.signed.plan.participants
    .filter((p) => p.role === "interpreter" && p.language === channel).map((p) => p.device) : []);
  channelSelect.onchange = () => listening.choose(channelSelect.value || null, session.booth,
                                                  members(channelSelect.value));
  duck.oninput = () => listening.setDuck(Number(duck.value) / 100);
  session.addEventListener("booth", () => listening.booth(session.booth));
  const levelsTimer = followLevels(session, listening);
  session.addEventListener("plan", async (ev) => {
    const plan = ev.detail.plan;
    const me = participant(plan, identity.fingerprint);
    const other = plan.participants.find(
      (p) => p.role === "principal" && p.delegation !== me.delegation);
    otherName = other ? other.name : "";
    otherDevice = other ? other.device : null;
    t = await strings(me.language);
    document.documentElement.lang = me.language;
    if (identity.language !== me.language) {  // the next screen speaks it from the start
      identity.language = me.language;
      await saveIdentity("device", identity);
    }
    const channels = [...new Set(plan.participants.filter((p) => p.role === "interpreter")
      .map((p) => p.language))].sort();
    channelSelect.replaceChildren(h("option", { value: "" }, t("original")),
      ...channels.map((c) => h("option", { value: c }, t("channel", {
        language: t(`lang_${c}`) === `lang_${c}` ? c : t(`lang_${c}`) }))));
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
  const countTimer = setInterval(() => { if (session.reconnecting().size) render(); },
                                 COUNT_EVERY_MS);
  session.addEventListener("stream", (ev) => holdStream(stage, ev.detail.stream));
  session.addEventListener("track", (ev) => {  // the stream that plays for a remote now
    holdStream(stage, ev.detail.stream);
    listening.attach(ev.detail.remote, ev.detail.stream, ev.detail.role);
    if (ev.detail.role === "principal" && remoteVideo.srcObject !== ev.detail.stream) {
      remoteVideo.srcObject = ev.detail.stream;
    }
    render();
  });
  session.addEventListener("sas", (ev) => { code.textContent = ev.detail.sas; render(); });
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
    clearInterval(levelsTimer);
    clearInterval(countTimer);
    listening.ctx.close();
    for (const track of stream.getTracks()) track.stop();
    mount(root, h("main", { class: "narrow stop", role: "alert", id: "stop" },
      h("h1", {}, title), h("p", {}, detail.help),
      detail.technical ? h("details", {}, h("summary", {}, t("technical_detail")),
                           h("p", { class: "mono", id: "stop-detail" }, detail.technical)) : "",
      h("button", { class: "big", id: "back",
                    onclick: () => go(`#/principal/${identity.fingerprint}`) }, t("back"))));
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

// The principal's view: the other principal large, oneself small, the phase at a
// glance, the verification code, and three large controls. Made for someone who is not
// technical and is under pressure: few things on screen, all reachable by keyboard.

import { get, setSigner, wsUrl } from "../api.js";
import { shortFingerprint } from "../crypto.js";
import { go, h, mount } from "../dom.js";
import { browserLanguage, ENDONYMS, LANGUAGES, languageName, strings } from "../i18n.js";
import { chooseIdentity, listIdentities, saveIdentity } from "../keystore.js";
import { participant, whoIs } from "../plan.js";
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
  // A device of the call that its delegation revoked (a verified revocation): cut off.
  const revokedNotice = h("div", { class: "info", id: "revoked-notice", role: "status",
                                   hidden: true });
  const panels = h("div", { class: "panels" }, listen, alarm, revokedNotice);
  const stage = h("div", { class: "stage" }, remoteVideo, cameraOffNote, waiting, reconnecting,
                  remoteHold, tileName, selfTile,
                  // one column: the panels follow the status bar however it wraps
                  h("div", { class: "top-left" }, status, panels), aideStatus, onHold, codes,
                  h("nav", { class: "controls" }, mute, camera, aides, hold, end));
  mount(root, stage);

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
    end.label.textContent = t("end");
    showCodes(codes, session, t, otherDevice);
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
  session.addEventListener("remote-media", render);
  session.addEventListener("revoked", (ev) => {
    revokedNotice.hidden = false;
    revokedNotice.textContent = t("revoked_notice", { name: ev.detail.name, by: ev.detail.by });
    render();
  });
  const actions = { mute: toggleMute, camera: toggleCamera, end: confirmEnd, aides: callAides,
                    hold: toggleHold };
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
  const qualityTimer = setInterval(async () => {
    if (session.stopped || !otherDevice) return;
    const hh = (await session.health("quality")).find((x) => x.peer === otherDevice);
    const grade = quality(hh);
    linkQuality = grade && { grade, numbers: {
      rtt: Math.round(hh.rtt_ms), loss: ((hh.loss || 0) * 100).toFixed(1),
      jitter: Math.round(hh.jitter_ms || 0) } };
    render();
  }, QUALITY_EVERY_MS);
  session.addEventListener("plan", async (ev) => {
    const plan = ev.detail.plan;
    const me = participant(plan, identity.fingerprint);
    const other = plan.participants.find(
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
  // every second: the call timer, and "Reconnecting… N s"
  const countTimer = setInterval(render, COUNT_EVERY_MS);
  session.addEventListener("stream", (ev) => holdStream(stage, ev.detail.stream));
  session.addEventListener("track", (ev) => {  // the stream that plays for a remote now
    holdStream(stage, ev.detail.stream);
    listening.attach(ev.detail.remote, ev.detail.stream, ev.detail.role);
    if (ev.detail.role === "principal" && remoteVideo.srcObject !== ev.detail.stream) {
      remoteVideo.srcObject = ev.detail.stream;
    }
    render();
  });
  session.addEventListener("sas", render);
  const stop = (title, detail) => {
    document.removeEventListener("keydown", onKey);
    clearInterval(levelsTimer);
    clearInterval(countTimer);
    clearInterval(qualityTimer);
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

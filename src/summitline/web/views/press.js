// The press page: the programme of the call while the press window is open, then a
// notice that the talks continue behind closed doors. The press hold no keys: a viewer
// token from a press office admits this page to the feed. It comes in the address's
// fragment (#/press/CALL/TOKEN), which browsers never send to a server, and goes to the
// server only in the Authorization header of the WHEP request.

import { get, serverUrl } from "../api.js";
import { h, mount } from "../dom.js";
import { browserLanguage, LANGUAGES, languageName, setPageLanguage, strings } from "../i18n.js";

const POLL_MS = 1000;
const GATHER_TIMEOUT_MS = 5000;

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

// Receive-only WebRTC in the manner of WHEP: POST the offer, get the answer (or, when the
// server's press go through Janus, Janus's offer, answered with a PATCH).
async function watch(call, token, video, channel) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const vt = pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const vp8 = RTCRtpReceiver.getCapabilities("video").codecs
    .filter((c) => /video\/(VP8|rtx)/i.test(c.mimeType));
  vt.setCodecPreferences(vp8); // the programme is VP8, encoded once for every viewer
  pc.ontrack = (ev) => {
    if (!video.srcObject) video.srcObject = new MediaStream();
    video.srcObject.addTrack(ev.track);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const query = channel ? `?channel=${encodeURIComponent(channel)}` : "";
  const res = await fetch(serverUrl(`/api/press/${encodeURIComponent(call)}/whep${query}`), {
    method: "POST", body: pc.localDescription.sdp,
    headers: { "content-type": "application/sdp", authorization: `Bearer ${token}` },
  });
  if (res.status !== 201) {
    pc.close();
    const body = await res.json().catch(() => ({}));
    throw new Error(body.detail || res.statusText);
  }
  if (res.headers.get("summitline-sdp-type") !== "offer") {
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    return pc;
  }
  // Through Janus: the server gives Janus's offer; a new connection answers it (PATCH).
  pc.close();
  const janus = new RTCPeerConnection({ iceServers: [] });
  janus.ontrack = pc.ontrack;
  await janus.setRemoteDescription({ type: "offer", sdp: await res.text() });
  await janus.setLocalDescription(await janus.createAnswer());
  await gathered(janus);
  const answered = await fetch(serverUrl(res.headers.get("location")), {
    method: "PATCH", body: janus.localDescription.sdp,
    headers: { "content-type": "application/sdp", authorization: `Bearer ${token}` },
  });
  if (answered.status !== 204) {
    janus.close();
    const body = await answered.json().catch(() => ({}));
    throw new Error(body.detail || answered.statusText);
  }
  return janus;
}

export async function pressView(root, call, token, language) {
  const t = await strings(LANGUAGES.includes(language) ? language : browserLanguage());
  setPageLanguage(t.lang);
  document.title = t("press_title");
  const title = h("h1", {}, t("press_title"));
  const status = h("p", { class: "press-state", id: "press-state", role: "status" });
  const video = h("video", { class: "programme", id: "programme", autoplay: true,
                             playsInline: true, controls: true, muted: true,
                             "aria-label": t("press_programme") });
  const doors = h("div", { class: "doors", id: "doors", hidden: true });
  // the floor, or an interpretation channel the plan gives the press
  const channel = h("select", { id: "press-channel", "aria-label": t("listen") });
  const listen = h("label", { class: "press-listen", hidden: true }, t("listen"), channel);
  mount(root, h("main", { class: "press" }, h("p", { class: "kicker" }, t("press_title")),
    title, status, listen, video, doors));
  // frames: the wall-clock time of every frame shown; states: every state the page took,
  // with the time it took it (what a test reads afterwards, however late it looks)
  const page = { pc: null, state: null, frames: [], states: [] };
  window.summitlinePress = page;
  const shown = () => {
    page.frames.push(Date.now());
    video.requestVideoFrameCallback(shown);
  };
  video.requestVideoFrameCallback(shown);
  let joining = false;

  channel.onchange = () => { // hear another channel: the next tick connects anew
    if (page.pc) page.pc.close();
    page.pc = null;
    video.srcObject = null;
  };
  const render = (info) => {
    if (listen.hidden && info.channels.length) {
      channel.replaceChildren(h("option", { value: "" }, t("original")),
        ...info.channels.map((c) => h("option", { value: c }, t("channel", {
          language: languageName(t, c) }))));
      listen.hidden = false;
    }
    document.title = `${t("press_title")} · ${info.title}`;
    title.textContent = info.title;
    status.dataset.state = info.state;
    // once the window is over, one sentence says so: behind closed doors while the
    // talks go on, ended once they have (never both)
    const over = info.state === "closed" || info.state === "ended";
    status.textContent = over ? ""
      : { waiting: t("press_waiting"), open: t("press_live") }[info.state] ?? "";
    video.hidden = over;
    doors.hidden = !over;
    doors.textContent = info.state === "closed" ? t("press_closed")
      : info.state === "ended" ? t("press_ended") : "";
  };
  const tick = async () => {
    let info;
    try {
      info = await get(`/api/press/${encodeURIComponent(call)}`);
    } catch (err) {
      status.textContent = t("press_refused", { reason: err.message });
      return;
    }
    if (info.state !== page.state) page.states.push([info.state, Date.now()]);
    page.state = info.state;
    render(info);
    if (info.state === "open" && !page.pc && !joining) {
      joining = true;
      try {
        page.pc = await watch(call, token, video, channel.value || null);
      } catch (err) {
        status.textContent = t("press_refused", { reason: err.message });
      } finally {
        joining = false;
      }
    } else if ((info.state === "closed" || info.state === "ended") && page.pc) {
      page.pc.close();
      page.pc = null;
      video.srcObject = null;
    }
    if (info.state !== "ended") setTimeout(tick, POLL_MS);
  };
  await tick();
}

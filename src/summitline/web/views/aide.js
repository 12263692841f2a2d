// The aide's console: waits for its own principal's call. A page sounds and shows a
// banner until the aide answers "I am coming"; the principal then sees who is coming.
// The aide receives no media, and nothing of the other delegation.

import { wsUrl } from "../api.js";
import { h, mount } from "../dom.js";
import { browserLanguage, formatTime, setPageLanguage, strings } from "../i18n.js";
import { participant } from "../plan.js";
import { CallSession } from "../session.js";

const BEEP_EVERY_MS = 1500;

// A chime from Web Audio: no sound file to fetch, nothing to decode.
function chime(ctx) {
  const now = ctx.currentTime;
  for (const [i, hz] of [880, 660].entries()) {
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0.0001, now + i * 0.25);
    gain.gain.exponentialRampToValueAtTime(0.3, now + i * 0.25 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.25 + 0.22);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + i * 0.25);
    osc.stop(now + i * 0.25 + 0.25);
  }
  window.summitlineChimes = (window.summitlineChimes || 0) + 1; // tests count the sound
}

export async function aideView(root, identity, call) {
  let t = await strings(identity.language || browserLanguage());
  setPageLanguage(t.lang);
  const session = new CallSession({
    url: wsUrl(), call, identity, localStream: null,
    pinned: { [identity.delegation.id]: identity.delegation.key },
  });
  window.summitlineSession = session;
  const audio = new AudioContext();
  let principalName = "", beeping = null, plan = null;
  // who answered a page: the names of the aides whose answers our session checked
  const comingFor = (page) => (session.acks.get(page.id) || []).map((device) => {
    const p = plan && participant(plan, device);
    return p ? p.name : t("aide_someone");
  });

  const title = h("h1", {});
  const state = h("p", { class: "aide-waiting", id: "aide-waiting" });
  const banner = h("div", { class: "page-banner", id: "page-banner", role: "alert",
                            hidden: true });
  const history = h("ul", { class: "pages", id: "pages" });
  const alarm = h("div", { class: "alarm", id: "alarm", role: "alert", hidden: true });
  mount(root, h("main", { class: "narrow aide" }, title, banner, state, alarm, history));

  const open = () => session.pages.filter((p) => !p.acked);
  const answer = async (page) => {
    await session.ack(page.id);
  };
  const render = () => {
    title.textContent = t("aide_title");
    const waiting = open();
    state.textContent = waiting.length ? "" : t("aide_waiting", { name: principalName });
    banner.hidden = waiting.length === 0;
    if (waiting.length) {
      const page = waiting[0];
      banner.replaceChildren(
        h("strong", {}, t("paged", { name: principalName })),
        h("span", { class: "muted" }, t("paged_at", {
          time: formatTime(t.lang, page.at) })),
        h("button", { class: "primary big", id: "ack", onclick: () => answer(page) },
          t("ack")));
    }
    history.replaceChildren(...session.pages.slice().reverse().map((p) =>
      h("li", {}, h("time", { dateTime: new Date(p.at).toISOString() },
        formatTime(t.lang, p.at)), " · ",
        p.acked ? `✓ ${t("acked_by", { name: comingFor(p).join(", ") || t("aide_someone") })}`
          : t("paged", { name: principalName }))));
    if (waiting.length && beeping === null) {
      chime(audio);
      beeping = setInterval(() => chime(audio), BEEP_EVERY_MS);
    } else if (!waiting.length && beeping !== null) {
      clearInterval(beeping);
      beeping = null;
    }
  };
  document.addEventListener("keydown", (ev) => {
    const waiting = open();
    if (waiting.length && (ev.key === "Enter" || ev.code === "KeyA")) {
      answer(waiting[0]);
    }
  });
  session.addEventListener("plan", async (ev) => {
    plan = ev.detail.plan;
    const me = participant(plan, identity.fingerprint);
    const principal = plan.participants.find(
      (p) => p.role === "principal" && p.delegation === me.delegation);
    principalName = principal ? principal.name : t("aide_principal");
    t = await strings(me.language);
    setPageLanguage(t.lang);
    render();
  });
  session.addEventListener("paged", render);
  session.addEventListener("acked", render);
  session.addEventListener("alarm", (ev) => {
    alarm.hidden = false;
    alarm.textContent = ev.detail.key ? t(ev.detail.key, ev.detail.args) : ev.detail.text;
  });
  session.addEventListener("ended", () => {
    clearInterval(beeping);
    state.textContent = t("phase_ended");
  });
  render();
  session.start();
}

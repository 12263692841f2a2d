// The press room of a call: the readouts every delegation published (two, or up to eight
// in a briefing), side by side with their times, each under its delegation's name; the
// official photos; and the call's public facts (its delegations with their principals,
// a briefing's host, start, end, duration).
// Public: no keys, no sign-in. It shows only what the server calls published, and
// redraws when that changes.

import { get, serverUrl } from "../api.js";
import { h, mount } from "../dom.js";
import { browserLanguage, ENDONYMS, formatDateTime, formatDuration, LANGUAGES, setPageLanguage,
  strings } from "../i18n.js";

const REFRESH_MS = 5000;
// Readouts per row, for the number of delegations: two or three side by side, four 2x2,
// five or six three to a row, seven or eight four to a row (the page widens for four).
// A narrower window takes fewer (style.css).
export function readoutColumns(n) {
  return n <= 3 ? Math.max(n, 1) : n === 4 ? 2 : n <= 6 ? 3 : 4;
}

export async function pressroomView(root, call, language) {
  const lang = LANGUAGES.includes(language) ? language : browserLanguage();
  const t = await strings(lang);
  setPageLanguage(lang);
  document.title = t("pr_title");
  const page = h("main", { class: "pressroom", id: "pressroom" });
  mount(root, page);
  let shown = null;
  const draw = async () => {
    let room;
    try {
      room = await get(`/api/pressroom/${encodeURIComponent(call)}`);
    } catch (err) {
      if (err.status !== 404) throw err;
      mount(page, h("p", { class: "muted", id: "pr-nothing", role: "status" },
                    t("pr_no_call"), " ", t("pr_updates_itself")));
      return;
    }
    const text = JSON.stringify(room);
    if (text === shown) return; // unchanged: keep the page (and its pictures) as it is
    shown = text;
    page.classList.toggle("wide", readoutColumns(room.delegations.length) > 3);
    mount(page, render(room, t, lang, call).filter((x) => x)); // mount keeps a null as text
    document.title = `${room.title} · ${t("pr_title")}`;
  };
  await draw();
  const timer = setInterval(() => {
    if (!document.body.contains(page)) clearInterval(timer);
    else draw().catch(() => {}); // a failed poll keeps the last view; the next one retries
  }, REFRESH_MS);
}

function render(room, t, lang, call) {
  const at = (ms) => h("time", { dateTime: new Date(ms).toISOString() },
    formatDateTime(lang, ms));
  const readouts = new Map(room.readouts.map((r) => [r.delegation, r]));
  const host = room.delegations.find((d) => d.id === room.host);
  return [
    h("header", { class: "pressroom-head" },
      h("div", {}, h("p", { class: "kicker" }, t("pr_title")), h("h1", {}, room.title)),
      h("nav", { class: "languages", "aria-label": t("pr_language") }, LANGUAGES.map((l) =>
        h("a", { href: `#/pressroom/${call}/${l}`, lang: l,
                 "aria-current": l === lang ? "true" : null }, ENDONYMS[l] ?? l)))),
    h("section", { class: "card facts", id: "facts" },
      h("h2", {}, t("pr_facts")),
      h("dl", {},
        host ? h("dt", {}, t("pr_host")) : null,
        host ? h("dd", { id: "fact-host" }, host.name) : null,
        h("dt", {}, t("pr_delegations")),
        h("dd", {}, h("ul", { class: "delegation-list", id: "fact-delegations" },
          room.delegations.map((d) => h("li", { "data-delegation": d.id },
            h("span", { class: "name" }, d.name),
            d.principals.length ? h("span", { class: "principals" },
              d.principals.join(", ")) : null)))),
        h("dt", {}, t("pr_started")),
        h("dd", { id: "fact-start" }, room.started_ms === null ? t("pr_not_started")
          : at(room.started_ms)),
        h("dt", {}, t("pr_ended")),
        h("dd", { id: "fact-end" }, room.ended_ms === null
          ? (room.started_ms === null ? "–" : t("pr_in_progress")) : at(room.ended_ms)),
        h("dt", {}, t("pr_duration")),
        h("dd", { id: "fact-duration" }, room.duration_ms === null ? "–"
          : formatDuration(t, room.duration_ms)))),
    room.photos.length === 0 ? null : h("section", { class: "photos-official", id: "photos" },
      room.photos.map((p) => h("figure", { "data-delegation": p.delegation },
        h("img", { src: serverUrl(p.url), alt: t("pr_photo_alt", { name: p.name }) }),
        h("figcaption", {}, t("pr_photo_by", { name: p.name }), " · ", at(p.published_ms))))),
    h("section", { class: "readouts", id: "readouts",
                   "data-cols": readoutColumns(room.delegations.length) },
      room.delegations.map((d) => {
        const r = readouts.get(d.id);
        return h("article", { class: `card readout${r ? "" : " pending"}`,
                              "data-delegation": d.id },
          h("div", { class: "readout-head" }, h("h2", {}, d.name),
            d.id === room.host ? h("span", { class: "badge host" }, t("pr_host")) : null),
          r ? h("p", { class: "published" }, t("pr_published"), " ", at(r.published_ms))
            : h("p", { class: "published muted" }, t("pr_not_published")),
          r ? h("div", { class: "readout-text" }, r.text) : null,
          r ? h("details", { class: "signature" }, h("summary", {}, t("pr_signature")),
            h("p", {}, t("pr_signature_help")),
            h("dl", {}, h("dt", {}, "SHA-256"), h("dd", { class: "mono" }, r.hash),
              h("dt", {}, t("pr_signature")), h("dd", { class: "mono" }, r.signature),
              h("dt", {}, t("pr_key")), h("dd", { class: "mono" }, d.id))) : null);
      })),
  ];
}

// The press pages' own entry, which the shared server serves by default (press.html):
// the press feed of a call and its press room, and nothing else. The views that make or
// hold keys (operator, principal, enrolment) are not served by the shared server, whose
// origin the delegations do not trust; they come from each delegation's console.
//   #/press/CALL/TOKEN[/LANG]    the press feed of a call (a viewer token from a press office)
//   #/pressroom/CALL[/LANG]      the press room of a call (what both sides published)

import { h, mount } from "./dom.js";
import { browserLanguage, LANGUAGES, setPageLanguage, strings } from "./i18n.js";
import { pressPages, showFailure } from "./routing.js";

const root = document.getElementById("app");

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (await pressPages(root, parts)) return;
    const last = parts[parts.length - 1];
    const lang = LANGUAGES.includes(last) ? last : browserLanguage();
    const t = await strings(lang);
    setPageLanguage(lang);
    mount(root, h("main", { class: "narrow" }, h("h1", {}, t("press_only_title")),
      h("p", {}, t("press_only_text"))));
  } catch (err) {
    await showFailure(root, err);
  }
}

window.addEventListener("hashchange", route);
route();

// The press pages' own entry, which the shared server serves by default (press.html):
// the press feed of a call and its press room, and nothing else. The views that make or
// hold keys (operator, principal, enrolment) are not served by the shared server, whose
// origin the delegations do not trust; they come from each delegation's console.
//   #/press/CALL/TOKEN[/LANG]    the press feed of a call (a viewer token from a press office)
//   #/pressroom/CALL[/LANG]      the press room of a call (what both sides published)

import { h, mount } from "./dom.js";
import { browserLanguage, LANGUAGES, setPageLanguage, strings } from "./i18n.js";
import { pressView } from "./views/press.js";
import { pressroomView } from "./views/pressroom.js";

const root = document.getElementById("app");

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const lang = LANGUAGES.includes(parts[parts.length - 1]) ? parts[parts.length - 1]
    : browserLanguage();
  try {
    if (parts[0] === "press" && parts.length >= 3) {
      await pressView(root, parts[1], parts[2], parts[3]);
    } else if (parts[0] === "pressroom" && parts[1]) {
      await pressroomView(root, parts[1], parts[2]);
    } else {
      const t = await strings(lang);
      setPageLanguage(lang);
      mount(root, h("main", { class: "narrow" }, h("h1", {}, t("press_only_title")),
        h("p", {}, t("press_only_text"))));
    }
  } catch (err) {
    const t = await strings(document.documentElement.lang || browserLanguage());
    mount(root, h("main", { class: "narrow" }, h("h1", {}, t("app_failed")),
      h("p", { class: "error", role: "alert" }, err.message)));
  }
}

window.addEventListener("hashchange", route);
route();

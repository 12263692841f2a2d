// What both entries (app.js for a console, pressapp.js for the shared server's press
// pages) route alike: the press pages, and the page shown when a view fails.
//   #/press/CALL/TOKEN[/LANG]    the press feed of a call (a viewer token from a press office)
//   #/pressroom/CALL[/LANG]      the press room of a call (what both sides published)

import { h, mount } from "./dom.js";
import { browserLanguage, strings } from "./i18n.js";
import { pressView } from "./views/press.js";
import { pressroomView } from "./views/pressroom.js";

// Show the press page `parts` (the hash, split at "/") names; false if it names none.
export async function pressPages(root, parts) {
  if (parts[0] === "press" && parts.length >= 3) {
    await pressView(root, parts[1], parts[2], parts[3]);
  } else if (parts[0] === "pressroom" && parts[1]) {
    await pressroomView(root, parts[1], parts[2]);
  } else return false;
  return true;
}

export async function showFailure(root, err) {
  const t = await strings(document.documentElement.lang || browserLanguage());
  mount(root, h("main", { class: "narrow" }, h("h1", {}, t("app_failed")),
    h("p", { class: "error", role: "alert" }, err.message)));
}

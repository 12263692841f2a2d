// The web client's entry: routes by the URL's hash to a view.
//   #/home[/LANG]         the start page (in LANG, else the browser's language)
//   #/operator[/FP]       the operator console (of delegation FP, if this browser has several)
//   #/operator/new        create another delegation in this browser
//   #/principal[/FP]      the principal view (of enrolled device FP, if several)
//   #/enrol/CODE/ID[/LANG]  enrol this device with a delegation (the page in LANG)
//   #/press/CALL/TOKEN[/LANG]  the press feed of a call (a viewer token from a press office)
//   #/pressroom/CALL[/LANG]  the press room of a call (public: what both sides published)

import { ON_CONSOLE, SERVER } from "./api.js";
import { h, mount } from "./dom.js";
import { browserLanguage, ENDONYMS, LANGUAGES, setPageLanguage, strings } from "./i18n.js";
import { enrolView } from "./views/enrol.js";
import { operatorView } from "./views/operator.js";
import { pressPages, showFailure } from "./routing.js";
import { principalView } from "./views/principal.js";

const root = document.getElementById("app");

async function home(language) {
  const lang = LANGUAGES.includes(language) ? language : browserLanguage();
  const t = await strings(lang);
  setPageLanguage(lang);
  document.title = "summitline";
  mount(root, h("main", { class: "narrow home" },
    h("nav", { class: "languages", "aria-label": t("pr_language") }, LANGUAGES.map((l) =>
      h("a", { href: `#/home/${l}`, lang: l, "aria-current": l === lang ? "true" : null },
        ENDONYMS[l]))),
    h("h1", {}, "summitline"),
    h("p", {}, t("home_tagline")),
    h("nav", { class: "choices" },
      h("a", { class: "button primary big", href: "#/principal" }, t("home_principal")),
      h("a", { class: "button big", href: "#/operator" }, t("home_operator"))),
    h("p", { class: "muted", id: "server" }, t("home_server", { server: SERVER })),
    h("p", { class: "muted", id: "client-origin" },
      t(ON_CONSOLE ? "home_console_note" : "home_dev_note"))));
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (parts[0] === "operator") await operatorView(root, parts[1]);
    else if (parts[0] === "principal") await principalView(root, parts[1]);
    else if (parts[0] === "enrol" && parts.length >= 3) {
      await enrolView(root, parts[1], parts[2], parts[3]);
    } else if (!(await pressPages(root, parts))) {
      await home(parts[0] === "home" ? parts[1] : undefined);
    }
  } catch (err) {
    await showFailure(root, err);
  }
}

window.addEventListener("hashchange", route);
route();

// The web client's entry: routes by the URL's hash to a view.
//   #/operator            the operator console
//   #/principal           the principal view (an enrolled device)
//   #/enrol/CODE/ID       enrol this device with a delegation

import { h, mount } from "./dom.js";
import { enrolView } from "./views/enrol.js";
import { operatorView } from "./views/operator.js";
import { principalView } from "./views/principal.js";

const root = document.getElementById("app");

function home() {
  mount(root, h("main", { class: "narrow" }, h("h1", {}, "summitline"),
    h("p", {}, "Confidential one-on-one video talks on a plan both delegations sign."),
    h("nav", { class: "choices" },
      h("a", { class: "button primary big", href: "#/principal" }, "Principal"),
      h("a", { class: "button big", href: "#/operator" }, "Operator console"))));
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (parts[0] === "operator") await operatorView(root);
    else if (parts[0] === "principal") await principalView(root);
    else if (parts[0] === "enrol" && parts.length === 3) await enrolView(root, parts[1], parts[2]);
    else home();
  } catch (err) {
    mount(root, h("main", { class: "narrow" }, h("p", { class: "error", role: "alert" },
      `Something went wrong: ${err.message}`)));
  }
}

window.addEventListener("hashchange", route);
route();

// The web client's entry: routes by the URL's hash to a view.
//   #/operator[/FP]       the operator console (of delegation FP, if this browser has several)
//   #/operator/new        create another delegation in this browser
//   #/principal[/FP]      the principal view (of enrolled device FP, if several)
//   #/enrol/CODE/ID       enrol this device with a delegation
//   #/press/CALL/TOKEN    the press feed of a call (a viewer token from a press office)
//   #/pressroom/CALL[/LANG]  the press room of a call (public: what both sides published)

import { h, mount } from "./dom.js";
import { enrolView } from "./views/enrol.js";
import { operatorView } from "./views/operator.js";
import { pressView } from "./views/press.js";
import { pressroomView } from "./views/pressroom.js";
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
    if (parts[0] === "operator") await operatorView(root, parts[1]);
    else if (parts[0] === "principal") await principalView(root, parts[1]);
    else if (parts[0] === "enrol" && parts.length === 3) await enrolView(root, parts[1], parts[2]);
    else if (parts[0] === "press" && parts.length === 3) await pressView(root, parts[1], parts[2]);
    else if (parts[0] === "pressroom" && parts[1]) await pressroomView(root, parts[1], parts[2]);
    else home();
  } catch (err) {
    mount(root, h("main", { class: "narrow" }, h("p", { class: "error", role: "alert" },
      `Something went wrong: ${err.message}`)));
  }
}

window.addEventListener("hashchange", route);
route();

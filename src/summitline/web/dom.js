// A small helper to build the views: h("button", {onclick}, "text", child, ...).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k in el && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c);
  }
  return el;
}

export function mount(root, ...children) {
  root.replaceChildren(...children.flat());
}

// Show the view for `hash`, even when it is the current one (a plain link would not).
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

// Our own words for an input whose value does not match its pattern (or is missing),
// in place of the browser's "Please match the requested format.": e.g.
// explainInvalid(input, t("id_invalid")). The message shows on submit, as the browser's
// would, and is cleared as soon as the value is valid.
export function explainInvalid(input, message) {
  const check = () => {
    input.setCustomValidity("");
    if (!input.validity.valid) input.setCustomValidity(message); // reading fires no event
  };
  input.addEventListener("input", check);
  check();
  return input;
}

// Enrolment: this device takes the seat an operator opened for it. The link carries the
// code and the delegation's fingerprint; the device trusts the delegation key only if
// it hashes to that fingerprint, and keeps its own new key in IndexedDB. The page speaks
// the link's language (#/enrol/CODE/ID/LANG) if it names one, else the browser's; a
// language named by the link is kept with the device, for the principal's first screen.

import { get, post } from "../api.js";
import { fingerprintOf, generateKeyPair, shortFingerprint, sign, statements, unb64u }
  from "../crypto.js";
import { h, mount } from "../dom.js";
import { browserLanguage, LANGUAGES, setPageLanguage, strings } from "../i18n.js";
import { saveIdentity } from "../keystore.js";

const DELEGATION_ID = /^[0-9a-f]{64}$/;

export async function enrolView(root, code, delegationId, language) {
  const named = LANGUAGES.includes(language) ? language : null;
  const t = await strings(named || browserLanguage());
  setPageLanguage(t.lang);
  document.title = t("enrol_title");
  const failed = (message, detail) => mount(root, h("main", { class: "narrow" },
    h("h1", {}, t("enrol_failed")),
    h("p", { class: "error", role: "alert" }, message),
    detail ? h("details", {}, h("summary", {}, t("technical_detail")),
      h("p", { class: "mono" }, detail)) : null));
  if (!DELEGATION_ID.test(delegationId || "") || !code) {
    failed(t("enrol_bad_link"));
    return;
  }
  mount(root, h("main", { class: "narrow", "aria-busy": "true" },
    h("h1", {}, t("enrol_working"))));
  let delegation;
  try {
    delegation = await get(`/api/delegations/${delegationId}`);
  } catch (err) {
    failed(err.status === 404 ? t("enrol_no_delegation") : t("enrol_unreachable"), err.message);
    return;
  }
  if ((await fingerprintOf(unb64u(delegation.key))) !== delegationId) {
    failed(t("enrol_key_mismatch"));
    return;
  }
  try {
    const pair = await generateKeyPair();
    const seat = await post("/api/enrolments", {
      code, key: pair.key, signature: await sign(pair.privateKey, statements.enrol(code, pair.key)),
    });
    await saveIdentity("device", { ...pair, name: seat.name, role: seat.role,
                                   ...(named ? { language: named } : {}),
                                   delegation: { id: delegationId, name: delegation.name,
                                                 key: delegation.key } });
    const role = t(`enrol_role_${seat.role}`) === `enrol_role_${seat.role}`
      ? seat.role : t(`enrol_role_${seat.role}`);
    mount(root, h("main", { class: "narrow" },
      h("h1", {}, t("enrol_done")),
      h("p", {}, t("enrol_seat", { name: seat.name, role, delegation: delegation.name })),
      h("p", {}, t("enrol_show_fingerprint")),
      h("p", { class: "fingerprint", id: "device-fingerprint" }, shortFingerprint(pair.fingerprint)),
      h("a", { class: "button primary", href: `#/principal/${pair.fingerprint}` },
        t("enrol_continue"))));
  } catch (err) {
    failed(err.status === 404 || err.status === 409 || err.status === 403
      ? t("enrol_seat_gone") : t("enrol_unreachable"), err.message);
  }
}

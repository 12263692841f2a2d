// Enrolment: this device takes the seat an operator opened for it. The link carries the
// code and the delegation's fingerprint; the device trusts the delegation key only if
// it hashes to that fingerprint, and keeps its own new key in IndexedDB.

import { get, post } from "../api.js";
import { fingerprintOf, generateKeyPair, shortFingerprint, sign, statements, unb64u }
  from "../crypto.js";
import { h, mount } from "../dom.js";
import { saveIdentity } from "../keystore.js";

export async function enrolView(root, code, delegationId) {
  mount(root, h("main", { class: "narrow" }, h("h1", {}, "Enrolling this device…")));
  try {
    const delegation = await get(`/api/delegations/${delegationId}`);
    if ((await fingerprintOf(unb64u(delegation.key))) !== delegationId) {
      throw new Error("the server returned a delegation key that does not match the link");
    }
    const pair = await generateKeyPair();
    const seat = await post("/api/enrolments", {
      code, key: pair.key, signature: await sign(pair.privateKey, statements.enrol(code, pair.key)),
    });
    await saveIdentity("device", { ...pair, name: seat.name, role: seat.role,
                                   delegation: { id: delegationId, name: delegation.name,
                                                 key: delegation.key } });
    mount(root, h("main", { class: "narrow" },
      h("h1", {}, "This device is enrolled"),
      h("p", {}, `${seat.name} (${seat.role}) of ${delegation.name}.`),
      h("p", {}, "Show this fingerprint to your communications officer; it must match the one on the console:"),
      h("p", { class: "fingerprint", id: "device-fingerprint" }, shortFingerprint(pair.fingerprint)),
      h("a", { class: "button primary", href: `#/principal/${pair.fingerprint}` }, "Continue")));
  } catch (err) {
    mount(root, h("main", { class: "narrow" },
      h("h1", {}, "Enrolment failed"),
      h("p", { class: "error", role: "alert" }, err.message)));
  }
}

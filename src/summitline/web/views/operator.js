// The operator console of a delegation's communications officer: the delegation, its
// links, its devices, call plans to draft and co-sign, and the call to start, watch
// and end. The delegation's private key never leaves this browser (IndexedDB,
// non-extractable); everything the console agrees to, it signs.

import { get, post, serverUrl, setSigner } from "../api.js";
import { b64u, digest, fingerprintOf, generateKeyPair, hex, sha256, shortFingerprint, sign,
         statements, unb64u, verify } from "../crypto.js";
import { h, mount } from "../dom.js";
import { browserLanguage, strings } from "../i18n.js";
import { chooseIdentity, listIdentities, saveIdentity } from "../keystore.js";
import { checkPlan, followRotations, PLAN_VERSION, reviewPlan } from "../plan.js";

const ROLES = ["principal", "interpreter", "aide", "operator"];

// The fingerprint an officer compares with a device's screen, computed here from the
// key the plan will carry (the server's own rendering of it proves nothing), and whether
// the device's delegation (whose key is `delegationKey`) certified it.
async function withLocalFingerprint(device, delegationKey) {
  if (!device.key) return { ...device, short: null, certified: false };
  const fp = await fingerprintOf(unb64u(device.key));
  const certified = fp === device.device && !!device.certificate && !!delegationKey &&
    !device.revoked &&
    await verify(delegationKey, statements.device(device.delegation, device.device,
                                                  device.key, device.role, device.name),
                 device.certificate);
  return { ...device, certified,
           short: fp === device.device ? shortFingerprint(fp) : "KEY MISMATCH" };
}

// Pin the name a delegation signed for itself (statements.register) with its key: a
// name the server made up, or one signed by someone else, is never pinned.
async function selfSignedName(d) {
  if (!d.name_signature ||
      !(await verify(d.key, statements.register(d.name, d.key), d.name_signature))) {
    throw new Error(`the name "${d.name}" the server shows is not one that delegation ` +
                    "signed for itself. Do not accept.");
  }
  return { name: d.name, signature: d.name_signature };
}
const REFRESH_MS = 1000; // the console redraws what the server reports, once a second
// A principal's press feed connects within moments of the start (or of its joining);
// only after this long is its absence shown as a fault.
const PRESS_GRACE_MS = 5000;

// What the call's record says of its media links and press feeds. The operator is not
// in the media: a pair whose last report is `link.lost` (section 8.2) is being
// repaired, since the first report of that stall; `press.feed` says a principal's feed
// reached the press gateway (the record has no entry for a feed that fails later).
export function mediaLinks(entries) {
  const names = new Map(), principals = new Map(); // device -> name; -> when it joined
  const lost = new Map(); // "a b" (sorted pair) -> when the stall was first reported
  const press = new Map(); // device -> when its feed connected, since it last joined
  let started = null, repairs = 0, longest = 0;
  const pair = (a, b) => [a, b].sort().join(" ");
  for (const e of entries) {
    const d = e.data;
    if (e.kind === "endpoint.joined") {
      names.set(d.device, d.name);
      if (d.role === "principal") principals.set(d.device, e.at);
      press.delete(d.device);
    } else if (e.kind === "call.started") {
      started = e.at;
    } else if (e.kind === "link.lost") {
      if (!lost.has(pair(d.device, d.peer))) lost.set(pair(d.device, d.peer), e.at);
    } else if (e.kind === "link.restored") {
      if (lost.delete(pair(d.device, d.peer))) repairs += 1;
      longest = Math.max(longest, d.duration_ms || 0);
    } else if (e.kind === "press.feed") {
      press.set(d.device, e.at);
    }
  }
  const name = (device) => names.get(device) || device.slice(0, 12);
  return {
    lost: [...lost].map(([p, since]) => ({ names: p.split(" ").map(name), since })),
    repairs, longest,
    press: [...principals].map(([device, joined]) => ({ device, name: name(device),
      since: Math.max(joined, started ?? joined), at: press.get(device) ?? null })),
  };
}

export async function operatorView(root, fingerprint) {
  if (fingerprint === "new") return createDelegation(root);
  const me = await chooseIdentity("operator", fingerprint);
  setSigner(me); // this console's reads are signed by the delegation key
  if (!me) {
    const all = await listIdentities("operator");
    if (all.length === 0) return createDelegation(root);
    mount(root, h("main", { class: "narrow" }, h("h1", {}, "Operator console"),
      h("p", {}, "This browser holds the keys of several delegations. Which one?"),
      h("nav", { class: "choices column" }, all.map((d) =>
        h("a", { class: "button big", href: `#/operator/${d.fingerprint}` }, d.name)),
        h("a", { class: "button", href: "#/operator/new" }, "Create another delegation"))));
    return null;
  }
  const language = browserLanguage();
  const view = new Console(root, me, await strings(language), language);
  await view.refresh();
  return view;
}

function createDelegation(root) {
  const name = h("input", { id: "delegation-name", required: true, maxLength: 120,
                            placeholder: "e.g. United States" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "card", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const pair = await generateKeyPair();
      await post("/api/delegations", { name: name.value, key: pair.key,
        signature: await sign(pair.privateKey, statements.register(name.value, pair.key)) });
      await saveIdentity("operator", { ...pair, name: name.value, pins: {}, proposed: {} });
      location.hash = `#/operator/${pair.fingerprint}`;
    } catch (err) {
      error.textContent = err.message;
    }
  } }, h("label", {}, "Name of your delegation", name),
     h("button", { class: "primary", id: "create-delegation" }, "Create delegation"), error);
  mount(root, h("main", {}, h("h1", {}, "Operator console"),
    h("p", {}, "Create your delegation. Its key is made in this browser and never leaves it."),
    form));
}

class Console {
  constructor(root, me, t, language = "en") {
    this.root = root;
    this.me = me;
    this.t = t; // the strings of the browser's language (the call view's link health)
    this.language = language; // the office's language: its own devices' channel by default
    // live regions, kept across redraws so that a screen reader hears what changes
    this.linkStatus = h("div", { id: "link-status", role: "status", "aria-live": "polite" });
    this.pressFeeds = h("div", { id: "press-feeds", role: "status", "aria-live": "polite" });
    this.selectedCall = null;
    this.timer = setInterval(() => this.refreshCall(), REFRESH_MS);
    this.callPanel = h("section", { class: "card", id: "call-panel" });
    this.status = h("p", { class: "error", role: "alert", id: "console-error" });
    // The other delegation rotated its key and the pin followed (or a rotation the pinned
    // key did not sign was refused): kept across redraws, until the officer has seen it.
    this.rotationNotice = h("p", { class: "notice", role: "status", id: "rotation-notice",
                                   hidden: true });
    this.rotationAlarm = h("p", { class: "error", role: "alert", id: "rotation-alarm",
                                  hidden: true });
    this.readout = new Readout(this);
    this.pressLinks = new Map(); // call -> the press link issued last (or its error)
  }

  // Run a console action; a failure is shown, never swallowed.
  act(fn) {
    return async (ev) => {
      ev?.preventDefault?.();
      this.status.textContent = "";
      try {
        await fn(ev);
      } catch (err) {
        this.status.textContent = err.message;
      }
    };
  }

  async save() {
    await saveIdentity("operator", this.me);
  }

  async control(call, action) {
    const at = Date.now();
    await post(`/api/calls/${call}/control`, { action, delegation: this.me.fingerprint, at,
      signature: await sign(this.me.privateKey,
                            statements.control(call, action, this.me.fingerprint, at)) });
    this.selectedCall = call;
    await this.refresh();
  }

  // A press viewer link: a short-lived token, shown once, for the press office to hand out.
  async pressToken(call) {
    const at = Date.now();
    try {
      this.pressLinks.set(call, await post(`/api/calls/${call}/press/tokens`, {
        delegation: this.me.fingerprint, at, ttl_s: 900,
        signature: await sign(this.me.privateKey,
                              statements.control(call, "press-token", this.me.fingerprint, at)) }));
    } catch (err) {
      this.pressLinks.set(call, { error: err.message });
    }
    await this.refreshCall();
  }

  pressLine(call, info) {
    if (!["planned", "open"].includes(info.phase)) return "";
    const issued = this.pressLinks.get(call);
    return h("div", { class: "press-links" },
      h("button", { id: "press-token", onclick: () => this.pressToken(call) },
        "Issue a press link (valid 15 min)"),
      issued?.error ? h("p", { class: "error" }, issued.error) : "",
      issued?.token ? h("p", { id: "press-link" }, "Press page: ",
        h("code", {}, serverUrl(issued.press_page)), h("br"), "HLS: ",
        h("code", {}, serverUrl(issued.hls)), " with the header ",
        h("code", {}, `Authorization: Bearer ${issued.token}`), h("br"),
        h("span", { class: "muted" }, `valid until ${new Date(issued.expires_ms)
          .toLocaleTimeString()}; hand it only to accredited press`)) : "");
  }

  async refresh() {
    const me = this.me;
    const [links, listed] = await Promise.all([
      get(`/api/delegations/${me.fingerprint}/links`),
      get(`/api/delegations/${me.fingerprint}/devices`)]);
    const devices = await Promise.all(listed.map((d) => withLocalFingerprint(d, me.key)));
    const plans = (await Promise.all(links.filter((l) => l.state === "established")
      .map((l) => get(`/api/links/${l.id}/plans`)))).flat();
    await this.pinEstablished(links);
    const planRows = await Promise.all(plans.map((p) => this.planRow(p)));
    mount(this.root, h("main", { class: "console" },
      h("header", {}, h("h1", {}, "Operator console"),
        h("div", { class: "who" }, h("strong", {}, me.name), " · delegation fingerprint ",
          h("span", { class: "fingerprint", id: "own-fingerprint" },
            shortFingerprint(me.fingerprint)),
          h("details", {}, h("summary", {}, "Full id (send it to the other office)"),
            h("code", { id: "own-id" }, me.fingerprint)))),
      this.status, this.rotationNotice, this.rotationAlarm,
      h("div", { class: "columns" },
        h("div", {}, this.linksCard(links), this.devicesCard(devices)),
        h("div", {}, this.plansCard(links, devices, planRows), this.callPanel,
          this.readout.el))));
    await this.refreshCall();
  }

  // The proposer pins the acceptor once the link is established: the key whose
  // fingerprint is the delegation id it proposed to.
  async pinEstablished(links) {
    this.me.names ??= {};
    for (const link of links) {
      const other = link.proposer === this.me.fingerprint ? link.acceptor : link.proposer;
      if (link.state === "established" && this.me.pins[other]) await this.followKey(other);
      if (link.state === "established" && this.me.pins[other] && !this.me.names[other]) {
        // pinned before names were: the name is self-signed, so the server cannot pick it
        const d = await get(`/api/delegations/${other}`);
        if (d.key !== this.me.pins[other]) continue;
        this.me.names[other] = await selfSignedName(d);
        await this.save();
      }
      if (link.state !== "established" || this.me.pins[other]) continue;
      if (link.proposer === this.me.fingerprint && this.me.proposed[link.id] === other) {
        const d = await get(`/api/delegations/${other}`);
        if ((await fingerprintOf(unb64u(d.key))) !== other) continue; // not its key: never pin
        this.me.names[other] = await selfSignedName(d);
        this.me.pins[other] = d.key;
        await this.save();
      }
    }
  }

  // The other delegation's key as the server shows it now: if it is not the pinned one,
  // follow its chain of rotations from the pinned key (docs/protocol.md 3.5), each step
  // signed by the key before; then pin the new key and name and tell the officer. A key
  // the pinned one did not lead to is refused with an alarm, and the pin stays.
  async followKey(other) {
    const d = await get(`/api/delegations/${other}`);
    const pinned = this.me.pins[other];
    if (d.key === pinned) return;
    try {
      if ((await followRotations(other, pinned, d.rotations)) !== d.key) {
        throw new Error("the chain does not end at the key the server shows");
      }
      const named = await selfSignedName(d);
      this.me.pins[other] = d.key;
      this.me.names[other] = named;
      this.me.chains = { ...this.me.chains, [other]: d.rotations };
      await this.save();
      this.rotationNotice.hidden = false;
      this.rotationNotice.textContent = this.t("op_rotated", {
        name: named.name, id: shortFingerprint(other),
        key: shortFingerprint(await fingerprintOf(unb64u(d.key))) });
    } catch (err) {
      this.rotationAlarm.hidden = false;
      this.rotationAlarm.textContent = this.t("op_rotation_refused", {
        name: d.name, id: shortFingerprint(other), why: err.key ? this.t(err.key) : err.message });
    }
  }

  linksCard(links) {
    const otherId = h("input", { id: "link-other", placeholder: "the other delegation's full id",
                                 pattern: "[0-9a-f]{64}", required: true });
    const error = h("p", { class: "error", role: "alert" });
    const propose = h("form", { onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const id = `link-${b64u(crypto.getRandomValues(new Uint8Array(6)))}`;
        const other = otherId.value.trim();
        await post("/api/links", { id, proposer: this.me.fingerprint, acceptor: other,
          signature: await sign(this.me.privateKey,
                                statements.link(id, [this.me.fingerprint, other])) });
        this.me.proposed[id] = other;
        await this.save();
        await this.refresh();
      } catch (err) { error.textContent = err.message; }
    } }, h("label", {}, "Propose a link to", otherId),
       h("button", { id: "propose-link" }, "Propose link"), error);
    return h("section", { class: "card", id: "links" }, h("h2", {}, "Links"),
      links.length === 0 ? h("p", { class: "muted" }, "No link yet.") : h("ul", {},
        links.map((l) => this.linkRow(l))), propose);
  }

  linkRow(link) {
    const mine = link.proposer === this.me.fingerprint;
    const other = mine ? link.acceptor : link.proposer;
    const row = h("li", { "data-link": link.id }, h("span", { class: "mono" }, link.id), " ",
      h("span", { class: `badge ${link.state}` }, link.state));
    if (link.state === "proposed" && !mine) {
      const spoken = h("input", { class: "spoken", placeholder: "XXXX-XXXX-XXXX-XXXX-XXXX" });
      const error = h("span", { class: "error", role: "alert" });
      row.append(h("form", { onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          // Computed here from the key that will be pinned, never the server's rendering.
          const d = await get(`/api/delegations/${other}`);
          const computed = await fingerprintOf(unb64u(d.key));
          if (computed !== other) throw new Error("the server returned a key that is not " +
                                                  "that delegation's. Do not accept.");
          if (shortFingerprint(computed) !== spoken.value.trim().toUpperCase()) {
            throw new Error(`the key the server holds is ${shortFingerprint(computed)}; that ` +
                            "is not what the other office read out. Do not accept.");
          }
          const named = await selfSignedName(d);
          await post(`/api/links/${link.id}/accept`, { signature: await sign(
            this.me.privateKey, statements.link(link.id, [link.proposer, link.acceptor])) });
          this.me.pins[other] = d.key;
          this.me.names = { ...this.me.names, [other]: named };
          await this.save();
          await this.refresh();
        } catch (err) { error.textContent = err.message; }
      } }, h("label", {}, "Fingerprint read out by the other office", spoken),
         h("button", { class: "accept-link" }, "Accept"), error));
    }
    return row;
  }

  devicesCard(devices) {
    const name = h("input", { id: "device-name", required: true, placeholder: "e.g. President" });
    const role = h("select", { id: "device-role" }, ROLES.map((r) => h("option", { value: r }, r)));
    const out = h("div", { id: "enrolment-link" });
    const form = h("form", { onsubmit: this.act(async () => {
      const code = b64u(crypto.getRandomValues(new Uint8Array(24)));
      const codeHash = hex(await sha256(code));
      await post(`/api/delegations/${this.me.fingerprint}/enrolments`, {
        code_hash: codeHash, name: name.value, role: role.value,
        signature: await sign(this.me.privateKey, statements.enrolment(
          this.me.fingerprint, codeHash, name.value, role.value)) });
      const url = `${location.origin}/#/enrol/${code}/${this.me.fingerprint}`;
      await this.refresh();
      document.getElementById("enrolment-link").replaceChildren(
        h("p", {}, `Open this link on the device for ${name.value}:`),
        h("a", { href: url, class: "mono", id: "enrol-url", target: "_blank" }, url));
    }) }, h("label", {}, "Device for", name), h("label", {}, "Role", role),
       h("button", { id: "enrol-device" }, "Create enrolment link"));
    return h("section", { class: "card", id: "devices" }, h("h2", {}, "Devices"),
      h("table", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Role"),
                       h("th", {}, "Fingerprint (compare with the device)"),
                       h("th", {}, this.t("op_certificate"))),
        devices.map((d) => h("tr", { "data-device": d.device || "" }, h("td", {}, d.name),
          h("td", {}, d.role), h("td", { class: "mono" },
            d.short || h("span", { class: "muted" }, "waiting for the device")),
          h("td", {}, this.certifyCell(d))))),
      form, out);
  }

  // The officer reads the fingerprint on the device's screen; if it is the one computed
  // here from the key the server holds, the delegation certifies the device (its key,
  // role and name). Only certified devices can be put in a plan.
  certifyCell(d) {
    if (d.revoked) return h("span", { class: "badge revoked" }, this.t("op_revoked"));
    if (d.certified) {
      // A lost or stolen device: no plan may name it from now on, and the server drops
      // it from a call in progress.
      const stated = this.me.languages?.[d.device];
      return h("span", {}, h("span", { class: "badge certified" }, this.t("op_certified")),
        stated?.length ? h("span", { class: "stated-language" }, " · ", stated.join(", ")) : "",
        " ", h("button", { class: "revoke danger", onclick: this.act(async () => {
          // remembered here first: the co-sign review flags any plan naming the device,
          // whatever the server does with the revocation
          this.me.revoked = [...new Set([...(this.me.revoked || []), d.device])];
          await this.save();
          const at = Date.now();
          await post(`/api/delegations/${this.me.fingerprint}/devices/${d.device}/revocation`,
            { at, signature: await sign(this.me.privateKey,
                                        statements.revocation(this.me.fingerprint, d.device, at)) });
          await this.refresh();
        }) }, this.t("op_revoke")));
    }
    if (!d.device || d.short === "KEY MISMATCH") return "";
    const read = h("input", { class: "read-fingerprint", placeholder: "XXXX-XXXX-XXXX-XXXX-XXXX",
                              "aria-label": this.t("op_certify_read") });
    // The officer states the device's language (its channel): kept here, and a plan that
    // puts the device in another channel is flagged at co-signing.
    const language = h("select", { class: "certify-language",
                                   "aria-label": this.t("op_certify_language") },
      h("option", { value: "" }, this.t("op_certify_language_none")),
      ["en", "ru"].map((l) => h("option", { value: l }, l)));
    const error = h("span", { class: "error", role: "alert" });
    return h("form", { class: "certify-form", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        if (read.value.trim().toUpperCase() !== d.short) {
          throw new Error(this.t("op_certify_mismatch", { short: d.short }));
        }
        await post(`/api/delegations/${this.me.fingerprint}/devices/${d.device}/certificate`, {
          signature: await sign(this.me.privateKey, statements.device(
            this.me.fingerprint, d.device, d.key, d.role, d.name)) });
        if (language.value) {
          this.me.languages = { ...this.me.languages, [d.device]: [language.value] };
          await this.save();
        }
        await this.refresh();
      } catch (err) { error.textContent = err.message; }
    } }, read, language, h("button", { class: "certify" }, this.t("op_certify")), error);
  }

  plansCard(links, ownDevices, plans) { // plans: their rows, reviewed (planRow)
    const established = links.filter((l) => l.state === "established");
    const card = h("section", { class: "card", id: "plans" }, h("h2", {}, "Call plans"));
    for (const row of plans) card.append(row);
    if (established.length === 0) {
      card.append(h("p", { class: "muted" }, "Plans are drafted on an established link."));
      return card;
    }
    card.append(this.draftForm(established[0], ownDevices));
    return card;
  }

  // What this console pinned with its links: keys and self-signed names, its own too.
  pinned() {
    const names = Object.fromEntries(Object.entries(this.me.names || {})
      .map(([id, n]) => [id, n.name]));
    return { pins: { ...this.me.pins, [this.me.fingerprint]: this.me.key },
             names: { ...names, [this.me.fingerprint]: this.me.name },
             // kept by this console, not the server: devices it revoked, languages stated
             revoked: this.me.revoked || [], languages: this.me.languages || {} };
  }

  // Every signed field of the plan, and a flag for whatever differs from what this
  // console pinned (or breaks the plan's rules, e.g. an uncertified participant).
  reviewPart(p, review) {
    const t = this.t, names = Object.fromEntries(p.plan.delegations.map((d) => [d.id, d.name]));
    return [
      h("ul", { class: "participants" }, p.plan.participants.map((x) => h("li", {},
        `${x.name} — ${x.role}, ${names[x.delegation]}, ${x.language} · `,
        h("span", { class: "mono" }, shortFingerprint(x.device))))),
      h("details", { class: "review", open: p.missing.includes(this.me.fingerprint) },
        h("summary", {}, t("review_heading")),
        h("dl", {}, review.lines.flatMap(([field, value]) => [
          h("dt", { "data-field": field }, t(`review_${field}`)),
          h("dd", { "data-field": field, class: "mono" },
            field === "interpreter_video" ? t(`review_${value}`) : value)]))),
      review.flags.length ? h("ul", { class: "review-flags", role: "alert" },
        review.flags.map(([code, params]) => h("li", { class: "error" },
          t(`review_flag_${code}`, params)))) : "",
      h("p", { class: "muted" }, `Press window: ${p.plan.press_window_s} s · plan `,
        h("span", { class: "mono" }, p.hash.slice(0, 16)))];
  }

  async planRow(p) {
    const mineMissing = p.missing.includes(this.me.fingerprint);
    const { pins, names, revoked, languages } = this.pinned();
    const review = await reviewPlan(p.plan, pins, names, revoked, languages);
    const row = h("div", { class: "plan", "data-call": p.plan.call },
      h("h3", {}, p.plan.title, " ", h("span", { class: `badge ${p.phase}` },
        p.complete ? p.phase : "awaiting signature")), ...this.reviewPart(p, review));
    if (mineMissing) {
      row.append(h("button", { class: "primary cosign", onclick: this.act(async () => {
        const again = await reviewPlan(p.plan, pins, names, revoked, languages);
        if (again.flags.length) throw new Error(this.t("review_refused"));
        const hash = await digest(p.plan);
        if (hash !== p.hash) throw new Error("the plan does not hash to what the server says");
        await post(`/api/plans/${hash}/signatures`, { delegation: this.me.fingerprint,
          signature: await sign(this.me.privateKey, statements.plan(hash)) });
        await this.refresh();
      }) }, "I have checked the participants: co-sign"));
    } else if (p.complete && p.phase === "planned") {
      row.append(h("button", { class: "primary start",
                               onclick: this.act(() => this.control(p.plan.call, "start")) },
        "Start the call"));
    } else if (p.complete && p.phase !== "ended") {
      row.append(h("button", { class: "danger end",
                               onclick: this.act(() => this.control(p.plan.call, "end")) },
        "End the call"));
    }
    if (p.complete) {
      row.append(h("button", { class: "watch", onclick: () => {
        this.selectedCall = p.plan.call;
        this.refreshCall();
      } }, "Watch"));
    }
    return row;
  }

  draftForm(link, ownDevices) {
    const other = link.proposer === this.me.fingerprint ? link.acceptor : link.proposer;
    const title = h("input", { id: "plan-title", value: "Secure video call", required: true });
    const press = h("input", { id: "plan-press", type: "number", min: 0, max: 3600, value: 0 });
    const pressChannels = h("input", { id: "plan-press-channels", placeholder: "e.g. ru" });
    const rows = h("tbody");
    const error = h("p", { class: "error", role: "alert" });
    // Only devices their own delegation certified (checked here under its pinned key).
    const addRows = (devices, delegation) => {
      for (const d of devices.filter((x) => x.device && x.certified)) {
        const lang = h("select", { class: "lang" }, ["en", "ru"].map((l) => h("option", { value: l }, l)));
        // our own device: the language its officer stated when certifying it, else the
        // office's own; the other delegation's: the other language (a bilateral en/ru call)
        const own = this.language === "ru" ? "ru" : "en";
        if (delegation !== this.me.fingerprint) lang.value = own === "ru" ? "en" : "ru";
        else lang.value = this.me.languages?.[d.device]?.[0] || own;
        rows.append(h("tr", {}, h("td", {}, h("input", { type: "checkbox", checked: true,
          class: "pick", "data-device": d.device, "data-key": d.key, "data-name": d.name,
          "data-role": d.role, "data-delegation": delegation,
          "data-certificate": d.certificate })),
          h("td", {}, d.name), h("td", {}, d.role), h("td", {}, lang),
          h("td", { class: "mono" }, d.short)));
      }
    };
    addRows(ownDevices, this.me.fingerprint);
    get(`/api/delegations/${other}/devices`)
      .then((devices) => Promise.all(devices.map((d) => withLocalFingerprint(d,
                                                                            this.me.pins[other]))))
      .then((devices) => addRows(devices.filter((d) => d.short !== "KEY MISMATCH"), other));
    return h("form", { id: "draft-plan", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const pinned = this.me.pins[other], theirs = this.me.names?.[other];
        if (!pinned || !theirs) throw new Error("the other delegation's key is not pinned yet");
        const participants = [...rows.querySelectorAll("tr")].filter(
          (tr) => tr.querySelector(".pick").checked).map((tr) => {
          const pick = tr.querySelector(".pick").dataset;
          return { device: pick.device, key: pick.key, delegation: pick.delegation,
                   role: pick.role, name: pick.name, language: tr.querySelector(".lang").value,
                   certificate: pick.certificate };
        });
        const plan = { version: PLAN_VERSION,
          call: `call-${b64u(crypto.getRandomValues(new Uint8Array(6)))}`,
          link: link.id, title: title.value,
          delegations: [{ id: this.me.fingerprint, name: this.me.name, key: this.me.key,
                          name_signature: await sign(this.me.privateKey,
                                                     statements.register(this.me.name, this.me.key)) },
                        { id: other, name: theirs.name, key: pinned,
                          name_signature: theirs.signature,
                          // its key chain, if it rotated (the plan must verify on its own)
                          ...(this.me.chains?.[other]?.length
                            ? { rotations: this.me.chains[other] } : {}) }],
          participants, press_window_s: Number(press.value), interpreter_video: false };
        const heard = [...new Set(pressChannels.value.split(/[\s,]+/).filter(Boolean))].sort();
        if (heard.length) plan.press_channels = heard;
        await checkPlan(plan);
        const hash = await digest(plan);
        await post("/api/plans", { plan, signatures: {
          [this.me.fingerprint]: await sign(this.me.privateKey, statements.plan(hash)) } });
        await this.refresh();
      } catch (err) { error.textContent = err.message; }
    } }, h("h3", {}, "Draft a plan"), h("label", {}, "Title", title),
       h("label", {}, "Press window (seconds; 0 for none)", press),
       h("label", {}, "Interpretation channels the press may hear (comma-separated; " +
         "their interpreters feed the press too)", pressChannels),
       h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Name"),
         h("th", {}, "Role"), h("th", {}, "Language"), h("th", {}, "Fingerprint"))), rows),
       h("button", { class: "primary", id: "submit-plan" }, "Sign and propose the plan"), error);
  }

  // "Reconnecting… N s" per pair of devices whose link is being repaired, the repairs
  // so far; and while the press window is open, each principal's press feed.
  linksPart(info, entries) {
    const t = this.t, now = Date.now();
    const m = mediaLinks(entries);
    const media = ["open", "closed"].includes(info.phase);
    const lines = media ? m.lost.map(({ names, since }) => h("li", { class: "reconnecting-line" },
      h("span", {}, t("reconnecting_to", { name: names.join(" ↔ ") })), " ",
      h("span", { class: "count", "aria-hidden": "true" },
        t("seconds", { n: Math.max(0, Math.floor((now - since) / 1000)) })))) : [];
    const press = info.phase !== "open" ? [] : m.press.map((p) => p.at !== null
      ? h("li", { class: "press-up" }, t("op_press_up", {
        name: p.name, time: new Date(p.at).toLocaleTimeString() }))
      : now - p.since < PRESS_GRACE_MS ? null
        : h("li", { class: "press-down" }, t("op_press_down", { name: p.name })));
    mount(this.linkStatus, lines.length ? h("ul", { class: "reconnecting" }, lines)
      : h("p", { class: "muted" }, media ? t("op_links_ok") : ""),
    m.repairs ? h("p", { class: "muted", id: "repairs" }, t("op_repairs", {
      n: m.repairs, s: (m.longest / 1000).toFixed(1) })) : "");
    mount(this.pressFeeds, info.phase !== "open" ? [] : [h("h3", {}, t("op_press")),
      h("ul", {}, press.filter((x) => x)), h("p", { class: "muted" }, t("op_press_note"))]);
    return h("div", { id: "media-links" }, h("h3", {}, t("op_links")), this.linkStatus,
             this.pressFeeds);
  }

  async refreshCall() {
    if (!document.body.contains(this.callPanel)) {
      clearInterval(this.timer);
      return;
    }
    if (!this.selectedCall) {
      mount(this.callPanel, h("h2", {}, "Call"), h("p", { class: "muted" },
        "Start or watch a call to see it here."));
      await this.readout.show(null);
      return;
    }
    const call = this.selectedCall;
    const [info, record] = await Promise.all([get(`/api/calls/${call}`),
                                              get(`/api/calls/${call}/record`)]);
    const health = Object.entries(info.health || {}).flatMap(([device, h0]) =>
      h0.peers.map((p) => ({ from: device, ...p })));
    const label = (d) => info.connected.find((c) => c.device === d)?.label || d.slice(0, 12);
    const num = (v, digits = 0) => (v === null || v === undefined ? "–" : v.toFixed(digits));
    mount(this.callPanel,
      h("h2", {}, `Call: ${info.title}`),
      h("p", {}, "Phase ", h("span", { class: `badge ${info.phase}`, id: "call-phase" }, info.phase),
        info.duration_ms !== null ? ` · lasted ${(info.duration_ms / 1000).toFixed(0)} s` : ""),
      this.pressLine(call, info),
      h("h3", {}, "Connected"),
      h("ul", { id: "connected" }, info.connected.map((c) => h("li", {}, c.label))),
      this.linksPart(info, record.entries),
      h("h3", {}, "Connection health"),
      h("table", { id: "health" }, h("tr", {}, ["Endpoint", "Peer", "State", "RTT ms", "Loss %",
        "kbit/s in", "Video", "Path"].map((x) => h("th", {}, x))),
        health.map((p) => h("tr", {}, h("td", {}, label(p.from)), h("td", {}, label(p.peer)),
          h("td", {}, p.state), h("td", {}, num(p.rtt_ms)), h("td", {}, num(p.loss * 100, 1)),
          h("td", {}, num(p.bitrate_kbps)), h("td", {}, p.width ? `${p.width}×${p.height}` : "–"),
          h("td", {}, p.path || "–")))),
      h("h3", {}, `Record (${record.entries.length} events)`),
      h("ol", { class: "record", id: "record", start: 0 }, record.entries.map((e) => h("li", {},
        h("span", { class: "mono" }, new Date(e.at).toISOString().slice(11, 23)), " ", e.kind))));
    await this.readout.show(call, info);
  }
}

// -- the delegation's readout and official photo of a call -----------------------------
// Drafts are private: the server shows them only to a request signed by this delegation.
// What is published (after the call; the photo from the press window) is final.

// The statements, exactly as summitline/crypto/statements.py builds them.
const readoutStatement = (call, delegation, action, at, text) => ({
  purpose: "summitline/readout", call, delegation, action, at,
  ...(text === undefined ? {} : { text }) });
const photoStatement = (call, delegation, action, at, photo) => ({
  purpose: "summitline/photo", call, delegation, action, at,
  ...(photo === undefined ? {} : { photo }) });
const textHash = async (text) => b64u(await sha256(text)); // of the UTF-8 bytes
const clockTime = (ms) => new Date(ms).toLocaleString("en-GB", { dateStyle: "medium",
                                                                   timeStyle: "medium" });

class Readout {
  constructor(owner) {
    this.owner = owner;
    this.call = null;
    this.phase = null;
    this.own = null; // what the server holds of ours: draft, published, photos
    this.confirming = null; // "readout", or the id of a photo, while asking to confirm
    this.selected = null; // the photo in the preview
    this.drawn = null;
    this.text = h("textarea", { id: "readout-text", rows: 12, maxLength: 20000,
      placeholder: "What your delegation says about the call.", oninput: () => this.draw() });
    this.state = h("p", { class: "readout-state", id: "readout-state" });
    this.buttons = h("div", { class: "actions" });
    this.error = h("p", { class: "error", role: "alert", id: "readout-error" });
    this.photoArea = h("div", { class: "photo-area", id: "photo-area" });
    this.el = h("section", { class: "card", id: "readout-panel", hidden: true },
      h("h2", {}, "Readout and official photo"),
      h("label", {}, "Readout of your delegation (only you can read it until it is published)",
        this.text),
      this.state, this.buttons, this.error,
      h("h3", {}, "Official photo"), this.photoArea);
  }

  async show(call, info) {
    if (!call) {
      this.el.hidden = true;
      this.call = null;
      return;
    }
    this.el.hidden = false;
    this.phase = info.phase;
    if (call !== this.call) {
      Object.assign(this, { call, own: null, confirming: null, selected: null });
      this.text.value = "";
      this.error.textContent = "";
      this.draw();
      try {
        const own = await this.request("readouts/read",
                                       (at, me) => readoutStatement(call, me, "read", at));
        if (this.call !== call) return; // another call was chosen meanwhile
        this.own = own;
        this.text.value = own.published?.text ?? own.draft?.text ?? "";
      } catch (err) {
        this.error.textContent = err.message;
      }
    }
    this.draw();
  }

  // A request signed by the delegation key, fresh (the server takes each once).
  async request(path, statementOf, fields = {}) {
    const me = this.owner.me, at = Date.now();
    return post(`/api/calls/${this.call}/${path}`, { delegation: me.fingerprint, at, ...fields,
      signature: await sign(me.privateKey, statementOf(at, me.fingerprint)) });
  }

  act(fn) {
    return async (ev) => {
      ev?.preventDefault?.();
      this.error.textContent = "";
      try {
        await fn();
      } catch (err) {
        this.error.textContent = err.message;
      }
      this.draw();
    };
  }

  async saveDraft() {
    const call = this.call, text = this.text.value, hash = await textHash(text);
    this.own = await this.request("readouts/draft",
      (at, me) => readoutStatement(call, me, "draft", at, hash), { text });
  }

  async publish() {
    // exactly the text on the screen, the one this signature binds
    const call = this.call, text = this.text.value, hash = await textHash(text);
    this.confirming = null;
    this.own = await this.request("readouts/publish",
      (at, me) => readoutStatement(call, me, "publish", at, hash), { text });
    this.text.value = this.own.published.text;
  }

  async capture() {
    const call = this.call;
    const own = await this.request("photos", (at, me) => photoStatement(call, me, "capture", at));
    this.own = own;
    this.selected = own.captured;
  }

  async publishPhoto(id) {
    const call = this.call;
    this.confirming = null;
    this.own = await this.request(`photos/${id}/publish`,
      (at, me) => photoStatement(call, me, "publish", at, id));
  }

  // Redraw the state, the buttons and the photos (never the text being written), when
  // something they show has changed.
  draw() {
    const own = this.own;
    const saved = own?.draft?.text ?? "";
    const dirty = this.text.value !== saved;
    const key = JSON.stringify([this.call, this.phase, own, this.confirming, this.selected,
                                dirty, this.text.value.trim() === ""]);
    if (key === this.drawn) return;
    this.drawn = key;
    this.text.readOnly = !own || Boolean(own.published);
    if (!own) {
      mount(this.state, "Loading…");
      mount(this.buttons);
      mount(this.photoArea);
      return;
    }
    this.drawReadout(own, dirty);
    this.drawPhotos(own);
  }

  drawReadout(own, dirty) {
    const empty = this.text.value.trim() === "";
    if (own.published) {
      mount(this.state, h("span", { class: "badge published" }, "published"), " ",
        `Published ${clockTime(own.published.at)}. A published readout is final. `,
        h("a", { href: `#/pressroom/${this.call}`, target: "_blank", id: "pressroom-link" },
          "Open the press room"));
      mount(this.buttons);
      return;
    }
    mount(this.state, own.draft
      ? `Draft saved ${clockTime(own.draft.at)}${dirty ? " · unsaved changes" : ""}.`
      : (dirty ? "Not saved yet." : "No draft yet."),
      this.phase === "ended" ? "" : " Readouts are published after the call has ended.");
    if (this.confirming === "readout") {
      mount(this.buttons, h("div", { class: "confirm-box", id: "publish-confirm" },
        h("p", {}, `Publish this text as the readout of ${this.owner.me.name}? Everyone can ` +
                   "read it in the press room, and it cannot be changed afterwards."),
        h("button", { class: "danger", id: "publish-yes", onclick: this.act(() => this.publish()) },
          "Publish now"),
        h("button", { id: "publish-no", onclick: () => { this.confirming = null; this.draw(); } },
          "Cancel")));
      return;
    }
    mount(this.buttons,
      h("button", { id: "save-draft", disabled: !dirty || empty,
                    onclick: this.act(() => this.saveDraft()) }, "Save draft"),
      h("button", { class: "primary", id: "publish-readout",
                    disabled: this.phase !== "ended" || empty,
                    onclick: () => { this.confirming = "readout"; this.draw(); } }, "Publish…"));
  }

  drawPhotos(own) {
    const official = own.photos.find((p) => p.official);
    if (official) {
      mount(this.photoArea, h("img", { class: "preview", id: "photo-preview", src: serverUrl(official.url),
                                       alt: "The official photo" }),
        h("p", { id: "photo-state" }, h("span", { class: "badge published" }, "published"), " ",
          `Published ${clockTime(official.published_ms)}. It is final.`));
      return;
    }
    const shown = own.photos.find((p) => p.id === this.selected) || own.photos[0];
    const open = this.phase === "open", over = this.phase === "closed" || this.phase === "ended";
    mount(this.photoArea, ...[ // (mount would show a null as text)
      h("p", { class: "muted", id: "photo-state" }, open
        ? "The press window is open: capture the press programme as it is now."
        : !over ? "Photos are captured from the press programme during the press window."
          : shown ? "The press window is over." : "The press window is over; no photo was captured."),
      over ? null : h("button", { id: "capture-photo", disabled: !open,
                                  onclick: this.act(() => this.capture()) }, "Capture photo"),
      shown ? h("img", { class: "preview", id: "photo-preview", src: serverUrl(shown.url),
                         alt: "Captured from the press programme" }) : null,
      own.photos.length > 1 ? h("div", { class: "thumbs" }, own.photos.map((p) =>
        h("button", { class: `thumb${p.id === shown.id ? " selected" : ""}`, "data-photo": p.id,
                      "aria-pressed": String(p.id === shown.id),
                      onclick: () => { this.selected = p.id; this.draw(); } },
          h("img", { src: serverUrl(p.url), alt: `Captured ${clockTime(p.captured_ms)}` })))) : null,
      !shown ? null : this.confirming === shown.id
        ? h("div", { class: "confirm-box", id: "publish-photo-confirm" },
          h("p", {}, "Publish this photo as your delegation's official photo of the call? " +
                     "It cannot be changed afterwards."),
          h("button", { class: "danger", id: "publish-photo-yes",
                        onclick: this.act(() => this.publishPhoto(shown.id)) }, "Publish now"),
          h("button", { onclick: () => { this.confirming = null; this.draw(); } }, "Cancel"))
        : h("button", { class: "primary", id: "publish-photo",
                        onclick: () => { this.confirming = shown.id; this.draw(); } },
          "Publish photo…")].filter((x) => x));
  }
}

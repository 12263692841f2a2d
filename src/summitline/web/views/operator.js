// The operator console of a delegation's communications officer: the delegation, its
// links, its devices, call plans to draft and co-sign, and the call to start, watch
// and end. The delegation's private key never leaves this browser (IndexedDB,
// non-extractable); everything the console agrees to, it signs.
//
// The page is built once; each section (links, devices, plans, call) has its own
// refresh that re-reads it from the server and updates its rows in place, so that a
// button, a selection or a half-typed field survives an update. `refresh(section)` is
// the one entry for whatever tells the console that something changed: the server's
// event stream (live.js), the call card's one-second timer, an action of the officer;
// `window.summitlineConsole.refresh("plans")`. Below the call card, the call's record
// (views/record.js): checked here, signed, exported.

import { get, post, serverUrl, setSigner } from "../api.js";
import { b64u, digest, fingerprintOf, generateKeyPair, hex, sha256, shortFingerprint, sign,
         statements, unb64u, verify } from "../crypto.js";
import { h, mount } from "../dom.js";
import { browserLanguage, strings } from "../i18n.js";
import { chooseIdentity, listIdentities, saveIdentity } from "../keystore.js";
import { follow } from "../live.js";
import { AUDIO_STUDIO, checkPlan, followRotations, isBriefing, keysOf, MAX_BRIEFING_DELEGATIONS,
         PLAN_VERSION, reviewPlan } from "../plan.js";
import { mountRecord } from "./record.js";

const ROLES = ["principal", "interpreter", "aide", "operator"];
// The languages a plan offers for a participant (its channel): the six official
// languages of the United Nations, then others common at summits.
export const PLAN_LANGUAGES = ["ar", "zh", "en", "fr", "ru", "es", "de", "it", "ja"];
export const SECTIONS = ["links", "devices", "plans", "call"];
const REFRESH_MS = 1000; // the call card follows the server once a second
// Links, devices and plans are not polled: the server's event stream says when one
// changed (docs/protocol.md §4.6), and that section alone is read again.
// A principal's press feed connects within moments of the start (or of its joining);
// only after this long is its absence shown as a fault.
const PRESS_GRACE_MS = 5000;
const PRESS_TOKEN_TTL_S = 900; // a press link is valid 15 minutes

// What an officer types for a fingerprint read out to them, as shortFingerprint writes
// it: case, spaces and dashes do not matter ("ab12 cd34…" is "AB12-CD34-…").
export function normaliseShort(text) {
  const bare = String(text).toUpperCase().replace(/[\s\-‐-―]/g, "");
  return (bare.match(/.{1,4}/g) || []).join("-");
}

// A delegation id as pasted: case and whitespace do not matter; null if it is not one.
export function normaliseId(text) {
  const id = String(text).toLowerCase().replace(/\s/g, "");
  return /^[0-9a-f]{64}$/.test(id) ? id : null;
}

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

// The error a page shows: its own key if it has one (a translated message), else its text.
class Refusal extends Error {
  constructor(key, params = {}) {
    super(key);
    this.key = key;
    this.params = params;
  }
}

// Pin the name a delegation signed for itself (statements.register) with its key: a
// name the server made up, or one signed by someone else, is never pinned.
async function selfSignedName(d) {
  if (!d.name_signature ||
      !(await verify(d.key, statements.register(d.name, d.key), d.name_signature))) {
    throw new Refusal("op_name_unsigned", { name: d.name });
  }
  return { name: d.name, signature: d.name_signature };
}

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

// Keep `container`'s children in step with `items`, in their order: an item whose
// signature (`sig`) is unchanged keeps its element, so focus, selection and listeners
// stay; a changed one is drawn anew in its place. Elements carry data-key.
function reconcile(container, items, keyOf, sigOf, draw) {
  const old = new Map([...container.children].filter((el) => el.dataset.key !== undefined)
    .map((el) => [el.dataset.key, el]));
  const kept = items.map((item) => {
    const key = String(keyOf(item)), sig = JSON.stringify(sigOf(item));
    const el = old.get(key);
    if (el && el.dataset.sig === sig) return el;
    const drawn = draw(item);
    drawn.dataset.key = key;
    drawn.dataset.sig = sig;
    return drawn;
  });
  const wanted = new Set(kept);
  for (const el of [...container.children]) if (!wanted.has(el)) el.remove();
  kept.forEach((el, i) => {
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
}

export async function operatorView(root, fingerprint) {
  const language = browserLanguage();
  const t = await strings(language);
  document.documentElement.lang = language;
  if (fingerprint === "new") return createDelegation(root, t);
  const me = await chooseIdentity("operator", fingerprint);
  setSigner(me); // this console's reads are signed by the delegation key
  if (!me) {
    const all = await listIdentities("operator");
    if (all.length === 0) return createDelegation(root, t);
    mount(root, h("main", { class: "narrow" }, h("h1", {}, t("op_title")),
      h("p", {}, t("op_choose")),
      h("nav", { class: "choices column" }, all.map((d) =>
        h("a", { class: "button big", href: `#/operator/${d.fingerprint}` }, d.name)),
        h("a", { class: "button", href: "#/operator/new" }, t("op_create_another")))));
    return null;
  }
  window.summitlineConsole?.stop();
  const view = new Console(root, me, t, language);
  window.summitlineConsole = view;
  await view.refresh();
  if (me.nextKey) await view.act(() => view.finishRotation())();  // a rotation cut short
  // The server pushes what changed (docs/protocol.md §4.6); each section re-reads itself.
  // A (re)connected stream says "everything": what changed while it was away.
  view.live = follow(me.fingerprint, (c) => {
    if (c.everything) {
      view.refresh();
      return;
    }
    // a call of ours started or ended while the officer watched none: show it (its
    // record then waits below for this delegation's signature)
    if (!view.selectedCall) {
      const moved = [...c.calls].find(([, phase]) => phase !== "planned");
      if (moved) view.watch(moved[0]);
    }
    const names = new Set();
    if (c.links.size) names.add("links").add("plans");
    if (c.devices.size || c.seats.size) names.add("devices");
    if (c.plans.size || c.calls.size) names.add("plans");
    if (c.calls.has(view.selectedCall)) names.add("call");
    if (names.size) view.refresh(...names);
    if (c.calls.has(view.selectedCall)) view.recordPanel?.refresh();
  }, () => document.body.contains(view.callPanel));
  return view;
}

function createDelegation(root, t) {
  const name = h("input", { id: "delegation-name", required: true, maxLength: 120,
                            placeholder: t("op_delegation_example") });
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
  } }, h("label", {}, t("op_delegation_name"), name),
     h("button", { class: "primary", id: "create-delegation" }, t("op_create_delegation")),
     error);
  mount(root, h("main", {}, h("h1", {}, t("op_title")), h("p", {}, t("op_create_intro")),
    form));
}

// A question before an action that cannot be undone: a native modal <dialog> (focus
// stays in it, Escape cancels), Cancel focused first.
class Confirmation {
  constructor(t) {
    this.title = h("h2", { id: "confirm-title" });
    this.text = h("div", { id: "confirm-text" });
    this.ok = h("button", { id: "confirm-ok", value: "ok", class: "danger" });
    this.cancel = h("button", { id: "confirm-cancel", value: "cancel" }, t("op_cancel"));
    this.el = h("dialog", { id: "confirm-dialog", class: "console-confirm",
                            "aria-labelledby": "confirm-title",
                            "aria-describedby": "confirm-text" },
      h("form", { method: "dialog" }, this.title, this.text,
        h("div", { class: "actions" }, this.cancel, this.ok)));
  }

  // Resolves true if the officer confirmed; `lines`: paragraphs (a warning is
  // { warn: text }).
  ask(title, lines, ok, danger = true) {
    this.title.textContent = title;
    mount(this.text, lines.filter((x) => x).map((x) => typeof x === "string"
      ? h("p", {}, x) : h("p", { class: "warning", role: "alert" }, x.warn)));
    this.ok.textContent = ok;
    this.ok.className = danger ? "danger" : "primary";
    this.el.returnValue = "";
    this.el.showModal();
    this.cancel.focus();
    return new Promise((resolve) => this.el.addEventListener("close",
      () => resolve(this.el.returnValue === "ok"), { once: true }));
  }
}

class Console {
  constructor(root, me, t, language = "en") {
    this.root = root;
    this.me = me;
    this.t = t; // the strings of the page's language
    this.language = language; // the office's language: its own devices' channel by default
    this.time = new Intl.DateTimeFormat(language, { timeStyle: "medium" });
    this.dateTime = new Intl.DateTimeFormat(language, { dateStyle: "medium",
                                                       timeStyle: "short" });
    this.selectedCall = null;
    this.links = null; // not read yet
    this.devices = [];
    this.draft = null; // the plan form, while there is an established link
    this.plans = new Map(); // call -> its row from the server (plan, phase, signatures)
    this.otherNames = new Map(); // delegation id -> the name it signed for itself
    this.pressLinks = new Map(); // call -> the press link issued last (or its error)
    this.draftOpen = null; // whether the officer opened the draft form (null: not asked)
    this.pending = new Map(); // section -> its refresh in flight
    this.updates = 0; // call card updates so far (tests wait on it)
    this.confirm = new Confirmation(t);
    this.status = h("p", { class: "error", role: "alert", id: "console-error" });
    this.sync = h("p", { class: "muted", role: "status", id: "sync-status" });
    // The other delegation rotated its key and the pin followed (or a rotation the pinned
    // key did not sign was refused): kept until the officer has seen it.
    this.rotationNotice = h("p", { class: "notice", role: "status", id: "rotation-notice",
                                   hidden: true });
    this.rotationAlarm = h("p", { class: "error", role: "alert", id: "rotation-alarm",
                                  hidden: true });
    this.ownNotice = h("p", { class: "notice", role: "status", id: "own-rotation-notice",
                              hidden: true });
    this.readout = new Readout(this);
    this.build();
    // the call card's connection health is no record event: it is read once a second
    this.timer = setInterval(() => this.refresh("call"), REFRESH_MS);
    this.live = null; // stops the server's event stream (operatorView starts it)
    this.recordPanel = null; // the selected call's record: check, sign, export
  }

  stop() {
    clearInterval(this.timer);
    this.live?.();
    this.live = null;
  }

  // Translate an error: ours carry a key; anything else shows its own message.
  message(err) {
    return err?.key ? this.t(err.key, err.params) : String(err?.message ?? err);
  }

  // Run a console action; a failure is shown, never swallowed.
  act(fn, out = this.status) {
    return async (ev) => {
      ev?.preventDefault?.();
      out.textContent = "";
      if (out !== this.status) this.status.textContent = "";
      try {
        await fn(ev);
      } catch (err) {
        out.textContent = this.message(err);
      }
    };
  }

  async save() {
    await saveIdentity("operator", this.me);
  }

  // Replace this delegation's key (docs/protocol.md 3.5): the new key signed by the old
  // and proved by itself. The new pair is saved before the server hears of it, so that
  // a crash in between loses nothing (`finishRotation` settles it at the next start).
  async rotate() {
    const t = this.t, me = this.me;
    const sure = await this.confirm.ask(t("op_rotate_title"),
      [t("op_rotate_text"), { warn: t("op_rotate_warning") }], t("op_rotate_ok"));
    if (!sure) return;
    const next = await generateKeyPair();
    me.nextKey = { key: next.key, privateKey: next.privateKey, publicKey: next.publicKey,
                   fingerprint: next.fingerprint };
    await this.save();
    const at = Date.now();
    const said = statements.rotation(me.fingerprint, me.key, next.key, at);
    await post(`/api/delegations/${me.fingerprint}/rotations`, {
      key: next.key, at, signature: await sign(me.privateKey, said),
      proof: await sign(next.privateKey, said),
      name_signature: await sign(next.privateKey, statements.register(me.name, next.key)) });
    await this.finishRotation();
  }

  // Take the new key once the server holds it (or drop it if the server never took it),
  // then certify again, with it, the devices the old key had certified.
  async finishRotation() {
    const me = this.me, next = me.nextKey;
    if (!next) return;
    const view = await get(`/api/delegations/${me.fingerprint}`);
    // only what this console certified and never revoked, whatever the server lists
    const revoked = new Set(me.revoked || []);
    const certified = me.key !== next.key ? (this.devices || []).filter((d) =>
      d.certified && !d.revoked && !revoked.has(d.device)) : [];
    if (view.key === next.key) {
      Object.assign(me, { key: next.key, privateKey: next.privateKey,
                          publicKey: next.publicKey, rotations: view.rotations });
    }
    delete me.nextKey;
    await this.save();
    setSigner(me);
    if (view.key !== me.key) return;
    for (const d of certified) {
      await post(`/api/delegations/${me.fingerprint}/devices/${d.device}/certificate`, {
        signature: await sign(me.privateKey, statements.device(
          me.fingerprint, d.device, d.key, d.role, d.name)) });
    }
    this.ownNotice.hidden = false;
    this.ownNotice.textContent = this.t("op_rotated_own", {
      short: shortFingerprint(next.fingerprint), n: certified.length });
    await this.refresh();
  }

  build() {
    const t = this.t, me = this.me;
    this.linkList = h("ul", { id: "link-list", class: "links" });
    this.noLinks = h("p", { class: "muted" }, t("op_no_link"));
    this.deviceRows = h("tbody");
    this.noDevices = h("p", { class: "muted", id: "no-devices" }, t("op_no_device"));
    this.planList = h("div", { id: "plan-list" });
    this.planNote = h("p", { class: "muted", id: "plans-note" });
    this.draftToggle = h("button", { id: "new-plan", "aria-expanded": "false",
      onclick: () => { this.draftOpen = !this.isDraftOpen(); this.showDraft(); } },
      t("op_draft_heading"));
    this.draftSlot = h("div", { id: "draft-slot" });
    this.recordBox = h("div", { id: "record-box" });
    this.callPanel = h("section", { class: "card", id: "call-panel", "aria-labelledby":
                                    "call-heading" });
    this.sections = {
      links: h("section", { class: "card", id: "links" }, h("h2", {}, t("op_links_heading")),
        this.noLinks, this.linkList, this.proposeForm()),
      devices: h("section", { class: "card", id: "devices" }, h("h2", {}, t("op_devices")),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("op_name")),
          h("th", {}, t("op_role")), h("th", {}, t("op_fingerprint_compare")),
          h("th", {}, t("op_certificate")))), this.deviceRows),
        this.noDevices, this.enrolForm()),
      plans: h("section", { class: "card", id: "plans" }, h("h2", {}, t("op_plans")),
        this.planList, this.planNote, this.draftToggle, this.draftSlot),
      call: this.callPanel,
    };
    this.drawNoCall();
    mount(this.root, h("main", { class: "console" },
      h("header", {}, h("h1", {}, t("op_title")),
        h("div", { class: "who" }, h("strong", {}, me.name), " · ", t("op_own_fingerprint"),
          " ", h("span", { class: "fingerprint", id: "own-fingerprint" },
            shortFingerprint(me.fingerprint)),
          h("details", {}, h("summary", {}, t("op_full_id")),
            h("code", { id: "own-id" }, me.fingerprint),
            h("p", {}, h("button", { id: "rotate-key", onclick: this.act(() => this.rotate()) },
              t("op_rotate")))))),
      this.status, this.sync, this.rotationNotice, this.rotationAlarm, this.ownNotice,
      h("div", { class: "columns" },
        h("div", {}, this.sections.links, this.sections.devices),
        h("div", {}, this.sections.plans, this.callPanel, this.recordBox, this.readout.el)),
      this.confirm.el));
  }

  // Re-read the named sections (all of them without a name) and update them in place.
  // A refresh of a section already in flight runs once more after it, not twice at once.
  async refresh(...names) {
    if (names.length) {
      await Promise.all(names.map((name) => this.refreshOne(name)));
      return;
    }
    // everything, in the order the sections need each other: plans are read per
    // established link, and drafted from the devices
    await this.refreshOne("links");
    await this.refreshOne("devices");
    await Promise.all([this.refreshOne("plans"), this.refreshOne("call")]);
  }

  refreshOne(name) {
    const run = { links: () => this.refreshLinks(), devices: () => this.refreshDevices(),
                  plans: () => this.refreshPlans(), call: () => this.refreshCall() }[name];
    if (!run) throw new Error(`no section ${name}`);
    const busy = this.pending.get(name);
    if (busy) {
      busy.again ??= busy.done.then(() => { busy.again = null; return this.refreshOne(name); });
      return busy.again;
    }
    const entry = { again: null, done: null };
    entry.done = (async () => {
      try {
        await run();
        this.sync.textContent = "";
      } catch (err) {
        this.sync.textContent = this.t("op_sync_failed", { why: this.message(err) });
      } finally {
        this.pending.delete(name);
      }
    })();
    this.pending.set(name, entry);
    return entry.done;
  }

  // -- links -------------------------------------------------------------------------
  async refreshLinks() {
    if (!document.body.contains(this.callPanel)) return this.stop();
    const links = await get(`/api/delegations/${this.me.fingerprint}/links`);
    await this.pinEstablished(links);
    const others = links.map((l) => this.otherOf(l));
    await Promise.all(others.filter((o) => !this.otherNames.has(o)).map(async (o) => {
      try {
        this.otherNames.set(o, (await selfSignedName(await get(`/api/delegations/${o}`))).name);
      } catch {
        this.otherNames.set(o, null); // not a name it signed: shown as its fingerprint only
      }
    }));
    const established = (l) => l.state === "established";
    const before = this.links?.filter(established).length ?? null;
    this.links = links;
    this.noLinks.hidden = links.length > 0;
    reconcile(this.linkList, links, (l) => l.id,
              (l) => [l.state, l.proposer, this.otherNames.get(this.otherOf(l))],
              (l) => this.linkRow(l));
    if (before !== null && links.filter(established).length !== before) {
      await this.refresh("plans");
    }
  }

  otherOf(link) {
    return link.proposer === this.me.fingerprint ? link.acceptor : link.proposer;
  }

  // The proposer pins the acceptor once the link is established: the key whose
  // fingerprint is the delegation id it proposed to.
  async pinEstablished(links) {
    this.me.names ??= {};
    for (const link of links) {
      const other = this.otherOf(link);
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
        name: d.name, id: shortFingerprint(other), why: this.message(err) });
    }
  }

  proposeForm() {
    const t = this.t;
    const error = h("p", { class: "error", role: "alert", id: "link-other-error" });
    const otherId = h("input", { id: "link-other", placeholder: t("op_link_other_placeholder"),
                                 autocomplete: "off", "aria-describedby": "link-other-error",
                                 oninput: () => { error.textContent = ""; } });
    // our own check (novalidate): the browser's "Please match the requested format"
    // says nothing an officer can act on
    return h("form", { id: "propose-form", novalidate: true, onsubmit: this.act(async () => {
      const other = normaliseId(otherId.value);
      if (!other) throw new Refusal("op_id_invalid");
      if (other === this.me.fingerprint) throw new Refusal("op_id_own");
      const id = `link-${b64u(crypto.getRandomValues(new Uint8Array(6)))}`;
      await post("/api/links", { id, proposer: this.me.fingerprint, acceptor: other,
        signature: await sign(this.me.privateKey,
                              statements.link(id, [this.me.fingerprint, other])) });
      this.me.proposed[id] = other;
      await this.save();
      otherId.value = "";
      await this.refresh("links");
    }, error) }, h("label", {}, t("op_propose_to"), otherId),
       h("button", { id: "propose-link" }, t("op_propose")), error);
  }

  // Who proposed the link (this office, or the other, by the name it signed for itself)
  // and, for a link the other office proposed, the spoken check before accepting.
  linkRow(link) {
    const t = this.t, mine = link.proposer === this.me.fingerprint;
    const other = this.otherOf(link);
    const named = this.otherNames.get(other);
    // before the spoken check, nothing on this screen may give away the fingerprint to be
    // read out: a pending link from the other office names it only by its signed name
    const secret = link.state === "proposed" && !mine;
    const them = named ? t("op_quoted", { name: named })
      : secret ? t("op_unnamed") : shortFingerprint(other);
    const row = h("li", { "data-link": link.id },
      h("span", { class: `badge ${link.state}`, "data-state": link.state },
        t(`op_link_${link.state}`)), " ",
      h("span", { class: "link-with" }, t("op_link_with", { name: them })), " ",
      h("span", { class: "mono muted" }, link.id),
      h("p", { class: "muted proposed-by" }, mine ? t("op_proposed_by_us", { name: them })
        : t(secret ? "op_proposed_by_them_check" : "op_proposed_by_them", { name: them })));
    if (link.state === "proposed" && !mine) {
      const spoken = h("input", { class: "spoken", placeholder: "XXXX-XXXX-XXXX-XXXX-XXXX",
                                  autocomplete: "off" });
      const error = h("span", { class: "error", role: "alert" });
      row.append(h("form", { class: "accept-form", onsubmit: this.act(async () => {
        // Computed here from the key that will be pinned, never the server's rendering;
        // a wrong reading is only told wrong: the right one is not shown (it would be
        // read off this screen instead of checked by voice).
        const d = await get(`/api/delegations/${other}`);
        const computed = await fingerprintOf(unb64u(d.key));
        if (computed !== other) throw new Refusal("op_link_wrong_key");
        if (shortFingerprint(computed) !== normaliseShort(spoken.value)) {
          throw new Refusal("op_link_mismatch");
        }
        const named = await selfSignedName(d);
        await post(`/api/links/${link.id}/accept`, { signature: await sign(
          this.me.privateKey, statements.link(link.id, [link.proposer, link.acceptor])) });
        this.me.pins[other] = d.key;
        this.me.names = { ...this.me.names, [other]: named };
        await this.save();
        await this.refresh("links");
      }, error) }, h("label", {}, t("op_spoken"), spoken),
         h("button", { class: "accept-link" }, t("op_accept")), error));
    }
    return row;
  }

  // -- devices -----------------------------------------------------------------------
  async refreshDevices() {
    const listed = await get(`/api/delegations/${this.me.fingerprint}/devices`);
    this.devices = await Promise.all(listed.map((d) => withLocalFingerprint(d, this.me.key)));
    reconcile(this.deviceRows, this.devices, (d) => d.device || `seat:${d.name}:${d.role}`,
              (d) => [d.name, d.role, d.short, d.certified, d.revoked,
                      this.me.languages?.[d.device] ?? null],
              (d) => this.deviceRow(d));
    this.noDevices.hidden = this.devices.length > 0;
    if (this.draft) await this.draft.update();
  }

  deviceRow(d) {
    const t = this.t;
    return h("tr", { "data-device": d.device || "" }, h("td", {}, d.name),
      h("td", { "data-role": d.role }, t(`op_role_${d.role}`)), h("td", { class: "mono" },
        d.short === "KEY MISMATCH" ? h("span", { class: "error" }, t("op_key_mismatch"))
          : d.short || h("span", { class: "muted" }, t("op_waiting_device"))),
      h("td", {}, this.certifyCell(d)));
  }

  enrolForm() {
    const t = this.t;
    const name = h("input", { id: "device-name", required: true,
                              placeholder: t("op_device_example") });
    const role = h("select", { id: "device-role" },
      ROLES.map((r) => h("option", { value: r }, t(`op_role_${r}`))));
    const out = h("div", { id: "enrolment-link", role: "status" });
    const error = h("p", { class: "error", role: "alert" });
    return h("form", { id: "enrol-form", onsubmit: this.act(async () => {
      const code = b64u(crypto.getRandomValues(new Uint8Array(24)));
      const codeHash = hex(await sha256(code));
      const who = name.value;
      await post(`/api/delegations/${this.me.fingerprint}/enrolments`, {
        code_hash: codeHash, name: who, role: role.value,
        signature: await sign(this.me.privateKey, statements.enrolment(
          this.me.fingerprint, codeHash, who, role.value)) });
      const url = `${location.origin}/#/enrol/${code}/${this.me.fingerprint}`;
      mount(out, h("p", {}, t("op_enrol_open", { name: who })),
        h("a", { href: url, class: "mono", id: "enrol-url", target: "_blank" }, url));
      name.value = "";
      await this.refresh("devices");
    }, error) }, h("label", {}, t("op_device_for"), name), h("label", {}, t("op_role"), role),
       h("button", { id: "enrol-device" }, t("op_enrol")), error, out);
  }

  languageName(code) {
    const key = `op_lang_${code}`, name = this.t(key);
    return name === key ? code : name;
  }

  languageSelect(attrs, withNone = false) {
    return h("select", attrs, withNone ? h("option", { value: "" },
      this.t("op_certify_language_none")) : null,
    PLAN_LANGUAGES.map((l) => h("option", { value: l }, this.languageName(l))));
  }

  // The officer reads the fingerprint on the device's screen; if it is the one computed
  // here from the key the server holds, the delegation certifies the device (its key,
  // role and name). Only certified devices can be put in a plan.
  certifyCell(d) {
    const t = this.t;
    if (d.revoked) return h("span", { class: "badge revoked" }, t("op_revoked"));
    if (d.certified) {
      // A lost or stolen device: no plan may name it from now on, and the server drops
      // it from a call in progress.
      const stated = this.me.languages?.[d.device];
      return h("span", {}, h("span", { class: "badge certified" }, t("op_certified")),
        stated?.length ? h("span", { class: "stated-language" }, " · ",
          stated.map((l) => this.languageName(l)).join(", ")) : "",
        " ", h("button", { class: "revoke danger", onclick: this.act(async () => {
          const sure = await this.confirm.ask(t("op_revoke_title", { name: d.name }),
            [t("op_revoke_text")], t("op_revoke"));
          if (!sure) return;
          // remembered here first: the co-sign review flags any plan naming the device,
          // whatever the server does with the revocation
          this.me.revoked = [...new Set([...(this.me.revoked || []), d.device])];
          await this.save();
          const at = Date.now();
          await post(`/api/delegations/${this.me.fingerprint}/devices/${d.device}/revocation`,
            { at, signature: await sign(this.me.privateKey,
                                        statements.revocation(this.me.fingerprint, d.device, at)) });
          await this.refresh("devices", "plans");
        }) }, t("op_revoke")));
    }
    if (!d.device || d.short === "KEY MISMATCH") return "";
    const read = h("input", { class: "read-fingerprint", placeholder: "XXXX-XXXX-XXXX-XXXX-XXXX",
                              autocomplete: "off",
                              "aria-label": t("op_certify_read") });
    // The officer states the device's language (its channel): kept here, and a plan that
    // puts the device in another channel is flagged at co-signing.
    const language = this.languageSelect({ class: "certify-language",
                                           "aria-label": t("op_certify_language") }, true);
    const error = h("span", { class: "error", role: "alert" });
    return h("form", { class: "certify-form", onsubmit: this.act(async () => {
      if (normaliseShort(read.value) !== d.short) {
        throw new Refusal("op_certify_mismatch", { short: d.short });
      }
      await post(`/api/delegations/${this.me.fingerprint}/devices/${d.device}/certificate`, {
        signature: await sign(this.me.privateKey, statements.device(
          this.me.fingerprint, d.device, d.key, d.role, d.name)) });
      if (language.value) {
        this.me.languages = { ...this.me.languages, [d.device]: [language.value] };
        await this.save();
      }
      await this.refresh("devices");
    }, error) }, read, language, h("button", { class: "certify" }, t("op_certify")), error);
  }

  // -- plans -------------------------------------------------------------------------
  async refreshPlans() {
    const established = (this.links || []).filter((l) => l.state === "established");
    // a briefing is filed under each of its links: shown once
    const seen = new Set();
    const rows = (await Promise.all(established.map((l) => get(`/api/links/${l.id}/plans`))))
      .flat().filter((p) => !seen.has(p.hash) && seen.add(p.hash));
    this.plans = new Map(rows.map((p) => [p.plan.call, p]));
    const { pins, names, revoked, languages } = this.pinned();
    const reviewed = await Promise.all(rows.map(async (p) =>
      ({ p, review: await reviewPlan(p.plan, pins, names, revoked, languages) })));
    reconcile(this.planList, reviewed, ({ p }) => p.hash,
              ({ p, review }) => [p.hash, p.complete, p.missing, p.phase, review,
                                  this.introduced(p.plan)],
              ({ p, review }) => this.planRow(p, review));
    this.planNote.textContent = established.length ? "" : this.t("op_plans_need_link");
    this.planNote.hidden = established.length > 0;
    if (!established.length) {
      this.draftToggle.hidden = true;
      this.draftSlot.hidden = true;
      return;
    }
    if (!this.draft) {
      this.draft = new DraftForm(this);
      mount(this.draftSlot, this.draft.el);
    }
    this.draft.setLinks(established);
    await this.draft.update();
    this.showDraft();
  }

  // The draft form is open for the link's first plan, or when the officer asks for
  // it: never a second form under a signed plan unasked.
  isDraftOpen() {
    if (this.draftOpen !== null) return this.draftOpen;
    return this.plans.size === 0;
  }

  showDraft() {
    const open = this.isDraftOpen();
    this.draftSlot.hidden = !open;
    this.draftToggle.hidden = open;
    this.draftToggle.setAttribute("aria-expanded", String(open));
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

  // The phase of a call in words that cannot be misread: "closed" is the closed-door
  // part of a running call (the press gone), never its end.
  phaseText(phase, plan, deadline = null) {
    const t = this.t;
    if (phase === "open") {
      return deadline ? t("op_phase_open_until", { time: this.time.format(deadline) })
        : t("op_phase_open");
    }
    if (phase === "closed") {
      return t(plan?.press_window_s ? "op_phase_closed_press_gone" : "op_phase_closed");
    }
    return t(`op_phase_${phase}`);
  }

  // Every signed field of the plan, and a flag for whatever differs from what this
  // console pinned (or breaks the plan's rules, e.g. an uncertified participant).
  reviewPart(p, review) {
    const t = this.t, names = Object.fromEntries(p.plan.delegations.map((d) => [d.id, d.name]));
    // reviewPlan's "France · introduced by United States", in the page's language
    const introduced = new Map(Object.entries(this.introduced(p.plan)).map(([id, host]) =>
      [`${names[id]} · introduced by ${host}`,
       t("op_brief_introduced", { name: names[id], host })]));
    return [
      h("ul", { class: "participants" }, p.plan.participants.map((x) => h("li", {},
        t("op_participant_line", { name: x.name, role: t(`op_role_${x.role}`),
                                   delegation: names[x.delegation],
                                   language: this.languageName(x.language) }), " · ",
        h("span", { class: "mono" }, shortFingerprint(x.device))))),
      h("details", { class: "review", open: p.missing.includes(this.me.fingerprint) },
        h("summary", {}, t("review_heading")),
        h("dl", {}, review.lines.flatMap(([field, value]) => [
          h("dt", { "data-field": field }, t(`review_${field}`)),
          field === "delegation" && introduced.has(value)
            ? h("dd", { "data-field": field, class: "introduced" }, introduced.get(value))
            : h("dd", { "data-field": field, class: "mono" },
              field === "interpreter_video" ? t(`review_${value}`)
                : field === "audio" ? t(`floor_review_${value}`)
                  : field === "sfu_above" ? t(`review_route_${value}`) : value)]))),
      review.flags.length ? h("ul", { class: "review-flags", role: "alert" },
        review.flags.map(([code, params]) => h("li", { class: "error" },
          t(`review_flag_${code}`, params)))) : "",
      "scheduled_ms" in p.plan ? h("p", { class: "scheduled" }, t("op_plan_scheduled", {
        time: this.dateTime.format(p.plan.scheduled_ms) })) : "",
      h("p", { class: "muted" }, p.plan.press_window_s
        ? t("op_plan_press", { s: p.plan.press_window_s }) : t("op_plan_no_press"), " · ",
      t("op_plan_hash"), " ", h("span", { class: "mono" }, p.hash.slice(0, 16)))];
  }

  // The delegations of a briefing this console knows only through its host (the host
  // pinned, they not): id -> the host's name, as plan.js reviewPlan says it.
  introduced(plan) {
    if (!isBriefing(plan)) return {};
    const { pins } = this.pinned();
    const host = plan.delegations.find((d) => d.id === plan.host);
    if (!host || pins[host.id] === undefined || !keysOf(host).includes(pins[host.id])) return {};
    return Object.fromEntries(plan.delegations.filter((d) => pins[d.id] === undefined)
      .map((d) => [d.id, host.name]));
  }

  // A briefing: its host, and each delegation (introduced by the host, or pinned here)
  // with whether it has signed, as the server says (the co-sign and the call check it).
  briefingPart(p) {
    const t = this.t, plan = p.plan, introduced = this.introduced(plan);
    const host = plan.delegations.find((d) => d.id === plan.host);
    const signed = plan.delegations.filter((d) => !p.missing.includes(d.id)).length;
    return h("div", { class: "briefing-of" },
      h("p", {}, h("span", { class: "kind briefing", "data-kind": "briefing" },
        t("op_brief_kind")), " ",
      h("span", { class: "hosted-by" }, t("op_brief_hosted_by", { name: host?.name ?? "?" })),
      " · ", h("span", { class: "signed-count" }, t("op_brief_signed_count", {
        n: signed, of: plan.delegations.length }))),
      h("ul", { class: "briefing-delegations" }, plan.delegations.map((d) => {
        const done = !p.missing.includes(d.id);
        return h("li", { "data-delegation": d.id, "data-signed": String(done) },
          h("span", { class: "named" }, introduced[d.id]
            ? t("op_brief_introduced", { name: d.name, host: introduced[d.id] }) : d.name),
          d.id === plan.host ? h("span", { class: "muted" }, ` (${t("op_brief_host")})`) : "",
          " · ", h("span", { class: done ? "signed" : "missing" },
            t(done ? "op_brief_signed" : "op_brief_missing")));
      })));
  }

  planRow(p, review) {
    const t = this.t, call = p.plan.call;
    const mineMissing = p.missing.includes(this.me.fingerprint);
    const phase = p.complete ? p.phase || "planned" : null;
    const row = h("div", { class: "plan", "data-call": call },
      h("h3", {}, t("op_quoted", { name: p.plan.title }), " ",
        h("span", { class: `badge ${phase || "unsigned"}`, "data-phase": phase || "unsigned" },
          phase ? this.phaseText(phase, p.plan) : t("op_awaiting_signature"))),
      isBriefing(p.plan) ? this.briefingPart(p) : "",
      ...this.reviewPart(p, review));
    if (mineMissing) {
      row.append(h("button", { class: "primary cosign", onclick: this.act(async () => {
        const { pins, names, revoked, languages } = this.pinned();
        const again = await reviewPlan(p.plan, pins, names, revoked, languages);
        if (again.flags.length) throw new Refusal("review_refused");
        const hash = await digest(p.plan);
        if (hash !== p.hash) throw new Refusal("op_plan_hash_differs");
        await post(`/api/plans/${hash}/signatures`, { delegation: this.me.fingerprint,
          signature: await sign(this.me.privateKey, statements.plan(hash)) });
        await this.refresh("plans");
      }) }, t("op_cosign")));
    } else if (phase === "planned") {
      row.append(h("button", { class: "primary start",
                               onclick: this.act(() => this.startCall(call)) }, t("op_start")));
    } else if (phase && phase !== "ended") {
      row.append(h("button", { class: "danger end",
                               onclick: this.act(() => this.endCall(call)) }, t("op_end")));
    }
    if (p.complete) {
      row.append(h("button", { class: "watch", "aria-pressed": String(this.selectedCall === call),
                               onclick: () => this.watch(call) }, t("op_watch")));
    }
    return row;
  }

  watch(call) {
    this.selectedCall = call;
    for (const b of this.planList.querySelectorAll("button.watch")) {
      b.setAttribute("aria-pressed", String(b.closest(".plan")?.dataset.call === call));
    }
    return this.refresh("call");
  }

  // -- start and end -----------------------------------------------------------------
  async control(call, action) {
    const at = Date.now();
    await post(`/api/calls/${call}/control`, { action, delegation: this.me.fingerprint, at,
      signature: await sign(this.me.privateKey,
                            statements.control(call, action, this.me.fingerprint, at)) });
    this.selectedCall = call;
    await this.refresh("plans", "call");
  }

  // Start asks first, and says what starting does: the press window (if any) runs from
  // now, whoever is there; it warns if a principal is not connected yet.
  async startCall(call) {
    const t = this.t, row = this.plans.get(call), plan = row?.plan;
    const info = await get(`/api/calls/${call}`);
    const here = new Set(info.connected.map((c) => c.device));
    const absent = (plan?.participants || []).filter((p) => p.role === "principal" &&
                                                            !here.has(p.device));
    const press = plan?.press_window_s || 0;
    const lines = [
      absent.length ? { warn: t(plan && isBriefing(plan) ? "op_brief_start_absent"
        : "op_start_absent", {
          names: absent.map((p) => t("op_quoted", { name: p.name })).join(", ") }) } : null,
      press ? t("op_start_press", { s: press,
                                    time: this.time.format(Date.now() + press * 1000) })
        : t("op_start_no_press"),
    ];
    const sure = await this.confirm.ask(t("op_start_title", { title: plan?.title ?? call }),
                                        lines, t("op_start_confirm"), false);
    if (sure) await this.control(call, "start");
  }

  // Shutting the doors ends the press window now, before its deadline: every sender
  // stops its press feed, and the call goes on in private.
  async closeDoors(call) {
    const t = this.t, plan = this.plans.get(call)?.plan;
    const sure = await this.confirm.ask(t("op_doors_title", { title: plan?.title ?? call }),
                                        [t("op_doors_text")], t("op_doors_confirm"), false);
    if (sure) await this.control(call, "close-doors");
  }

  async endCall(call) {
    const t = this.t, plan = this.plans.get(call)?.plan;
    const sure = await this.confirm.ask(t("op_end_title", { title: plan?.title ?? call }),
                                        [t("op_end_text")], t("op_end_confirm"));
    if (sure) await this.control(call, "end");
  }

  // -- the call card -------------------------------------------------------------------
  drawNoCall() {
    this.card = null;
    this.recordPanel = null;
    mount(this.recordBox);
    mount(this.callPanel, h("h2", { id: "call-heading" }, this.t("op_call")),
      h("p", { class: "muted" }, this.t("op_call_none")));
  }

  // The card of the selected call, built once per call; each second only its texts and
  // changed rows are updated (buttons stay the same elements).
  buildCard(call) {
    const t = this.t;
    const c = {
      call,
      title: h("h2", { id: "call-heading" }),
      phase: h("span", { class: "badge", id: "call-phase" }),
      timing: h("span", { id: "call-timing", class: "muted" }),
      start: h("button", { class: "primary", id: "call-start",
                           onclick: this.act(() => this.startCall(call)) }, t("op_start")),
      doors: h("button", { id: "call-close-doors",
                           onclick: this.act(() => this.closeDoors(call)) }, t("op_doors")),
      end: h("button", { class: "danger", id: "call-end",
                         onclick: this.act(() => this.endCall(call)) }, t("op_end")),
      pressButton: h("button", { id: "press-token", onclick: () => this.pressToken(call) },
        t("op_press_issue")),
      pressOut: h("div", { id: "press-link-out" }),
      connectedHead: h("h3", {}, t("op_connected")),
      connected: h("ul", { id: "connected" }),
      nobody: h("p", { class: "muted", id: "nobody" }, t("op_nobody")),
      linkStatus: h("div", { id: "link-status", role: "status", "aria-live": "polite" }),
      pressFeeds: h("div", { id: "press-feeds", role: "status", "aria-live": "polite" }),
      healthPart: null,
      healthRows: h("tbody"),
      recordHead: h("h3", { id: "record-heading" }),
      record: h("ol", { class: "record", id: "record", start: 0 }),
      seen: 0, // record entries shown
      phaseSeen: null,
    };
    c.press = h("div", { class: "press-links" }, c.pressButton, c.pressOut);
    c.healthPart = h("div", { id: "health-part" }, h("h3", {}, t("op_health")),
      h("table", { id: "health" }, h("thead", {}, h("tr", {}, ["op_h_endpoint", "op_h_peer",
        "op_h_state", "op_h_rtt", "op_h_loss", "op_h_kbps", "op_h_video", "op_h_path"]
        .map((k) => h("th", {}, t(k))))), c.healthRows));
    mount(this.callPanel, c.title,
      h("p", { class: "call-state" }, c.phase, " ", c.timing),
      h("div", { class: "actions" }, c.start, c.doors, c.end), c.press,
      c.connectedHead, c.connected, c.nobody,
      h("div", { id: "media-links" }, h("h3", {}, t("op_links")), c.linkStatus, c.pressFeeds),
      c.healthPart, c.recordHead, c.record);
    this.card = c;
    return c;
  }

  // The name of a device of the call: from the plan, else from the record's joins.
  nameIn(plan, entries) {
    const names = new Map((plan?.participants || []).map((p) => [p.device, p.name]));
    for (const e of entries) {
      if (e.kind === "endpoint.joined" && !names.has(e.data.device)) {
        names.set(e.data.device, e.data.name);
      }
    }
    return (device) => names.get(device) || shortFingerprint(device);
  }

  async refreshCall() {
    if (!document.body.contains(this.callPanel)) return this.stop();
    const call = this.selectedCall;
    if (!call) {
      if (this.card) this.drawNoCall();
      await this.readout.show(null);
      return;
    }
    const [info, record] = await Promise.all([get(`/api/calls/${call}`),
                                              get(`/api/calls/${call}/record`)]);
    if (call !== this.selectedCall) return; // another call was chosen meanwhile
    const c = this.card?.call === call ? this.card : this.buildCard(call);
    const t = this.t, plan = this.plans.get(call)?.plan;
    const name = this.nameIn(plan, record.entries);
    c.title.textContent = t("op_call_title", { title: info.title });
    c.phase.className = `badge ${info.phase}`;
    c.phase.dataset.phase = info.phase;
    c.phase.textContent = this.phaseText(info.phase, plan, info.press_deadline_ms);
    c.timing.textContent = this.timing(info);
    c.start.hidden = info.phase !== "planned";
    c.doors.hidden = info.phase !== "open";
    c.end.hidden = !["open", "closed"].includes(info.phase);
    this.drawPress(c, info);
    // after the end nobody is connected, and the last health reports are history
    const live = info.phase !== "ended";
    c.connectedHead.hidden = !live;
    c.connected.hidden = !live;
    c.nobody.hidden = !live || info.connected.length > 0;
    reconcile(c.connected, live ? info.connected : [], (x) => x.device, (x) => name(x.device),
              (x) => h("li", {}, name(x.device)));
    this.linksPart(c, info, record.entries, name);
    c.healthPart.hidden = !live;
    const health = !live ? [] : Object.entries(info.health || {}).flatMap(([device, h0]) =>
      h0.peers.map((p) => ({ from: device, ...p })));
    const num = (v, digits = 0) => (v === null || v === undefined ? "–" : v.toFixed(digits));
    reconcile(c.healthRows, health, (p) => `${p.from} ${p.peer}`, (p) => p, (p) =>
      h("tr", {}, h("td", {}, name(p.from)), h("td", {}, name(p.peer)),
        h("td", { "data-state": p.state }, this.stateName(p.state)), h("td", {}, num(p.rtt_ms)), h("td", {}, num(p.loss * 100, 1)),
        h("td", {}, num(p.bitrate_kbps)), h("td", {}, p.width ? `${p.width}×${p.height}` : "–"),
        h("td", {}, p.path ? t(`op_path_${p.path}`) : "–")));
    c.recordHead.textContent = t("op_record", { n: record.entries.length });
    for (const e of record.entries.slice(c.seen)) c.record.append(this.recordLine(e, name));
    c.seen = Math.max(c.seen, record.entries.length);
    // the plans' badges follow the call's phase at once, not at the next poll
    if (c.phaseSeen !== null && c.phaseSeen !== info.phase) this.refresh("plans");
    c.phaseSeen = info.phase;
    this.updates += 1;
    this.callPanel.dataset.updates = String(this.updates);
    if (this.recordPanel?.call !== call) {
      this.recordPanel = mountRecord(this.recordBox, { me: this.me, call, t: this.t });
    }
    await this.readout.show(call, info);
  }

  // A peer connection's state (RTCPeerConnectionState) in the page's language.
  stateName(state) {
    const key = `op_state_${state}`, name = this.t(key);
    return name === key ? state : name;
  }

  timing(info) {
    const t = this.t;
    const lasted = (ms) => {
      const s = Math.floor(ms / 1000);
      const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
      return hms.map((x, i) => (i ? String(x).padStart(2, "0") : String(x))).join(":");
    };
    if (info.phase === "ended" && info.duration_ms !== null) {
      return t("op_lasted", { start: this.time.format(info.started_ms),
                              end: this.time.format(info.ended_ms),
                              duration: lasted(info.duration_ms) });
    }
    if (info.started_ms) {
      return t("op_running", { start: this.time.format(info.started_ms),
                               duration: lasted(Date.now() - info.started_ms) });
    }
    return "";
  }

  recordLine(e, name) {
    const who = e.data?.device ? ` · ${name(e.data.device)}` : e.data?.by
      ? ` · ${this.otherNames.get(e.data.by) || (e.data.by === this.me.fingerprint
        ? this.me.name : shortFingerprint(e.data.by))}` : "";
    return h("li", {}, h("span", { class: "mono" }, this.time.format(e.at)), " ",
      h("span", { class: "mono" }, e.kind), who);
  }

  // A press viewer link: a short-lived token, shown once, for the press office to hand out.
  async pressToken(call) {
    const at = Date.now();
    try {
      this.pressLinks.set(call, await post(`/api/calls/${call}/press/tokens`, {
        delegation: this.me.fingerprint, at, ttl_s: PRESS_TOKEN_TTL_S,
        signature: await sign(this.me.privateKey,
                              statements.control(call, "press-token", this.me.fingerprint, at)) }));
    } catch (err) {
      this.pressLinks.set(call, { error: err.message });
    }
    if (this.card?.call === call) this.card.pressDrawn = null;
    await this.refresh("call");
  }

  // The press link part: drawn again only when the link issued changes (so that it can
  // be selected and copied while the card updates).
  drawPress(c, info) {
    const t = this.t;
    c.press.hidden = !["planned", "open"].includes(info.phase);
    const issued = this.pressLinks.get(c.call);
    if (c.pressDrawn === issued) return;
    c.pressDrawn = issued;
    mount(c.pressOut, issued?.error ? h("p", { class: "error" }, issued.error) : "",
      issued?.token ? h("p", { id: "press-link" }, t("op_press_page"), " ",
        h("code", {}, serverUrl(issued.press_page)), h("br"), "HLS: ",
        h("code", {}, serverUrl(issued.hls)), " ", t("op_press_header"), " ",
        h("code", {}, `Authorization: Bearer ${issued.token}`), h("br"),
        h("span", { class: "muted" }, t("op_press_valid", {
          time: this.time.format(issued.expires_ms) }))) : "");
  }

  // "Reconnecting… N s" per pair of devices whose link is being repaired, the repairs
  // so far; and while the press window is open, each principal's press feed.
  linksPart(c, info, entries, name) {
    const t = this.t, now = Date.now();
    const m = mediaLinks(entries);
    const media = ["open", "closed"].includes(info.phase);
    const lines = media ? m.lost.map(({ names, since }) => h("li", { class: "reconnecting-line" },
      h("span", {}, t("reconnecting_to", { name: names.join(" ↔ ") })), " ",
      h("span", { class: "count", "aria-hidden": "true" },
        t("seconds", { n: Math.max(0, Math.floor((now - since) / 1000)) })))) : [];
    const press = info.phase !== "open" ? [] : m.press.map((p) => p.at !== null
      ? h("li", { class: "press-up" }, t("op_press_up", {
        name: name(p.device), time: this.time.format(p.at) }))
      : now - p.since < PRESS_GRACE_MS ? null
        : h("li", { class: "press-down" }, t("op_press_down", { name: name(p.device) })));
    // "all links carry media" only once every device reports every link connected
    const reported = Object.entries(info.health || {}).flatMap(([device, h0]) =>
      h0.peers.map((p) => ({ from: device, ...p })));
    const down = reported.filter((p) => p.state !== "connected");
    const pairs = [...new Set(down.map((p) => [name(p.from), name(p.peer)].sort().join(" ↔ ")))];
    const allUp = reported.length > 0 && down.length === 0;
    const key = JSON.stringify([lines.map((l) => l.textContent), m.repairs, m.longest,
                                press.map((p) => p?.textContent ?? null), media, info.phase,
                                info.connected.length < 2, allUp, pairs]);
    if (c.linksDrawn === key) return; // a live region: only a change is announced
    c.linksDrawn = key;
    mount(c.linkStatus, lines.length ? h("ul", { class: "reconnecting" }, lines)
      : h("p", { class: "muted" }, t(!media ? (info.phase === "ended" ? "op_links_ended"
        : "op_links_none") : info.connected.length < 2 ? "op_links_waiting"
        : allUp ? "op_links_ok" : "op_links_forming", { pairs: pairs.join(", ") || "…" })),
    m.repairs ? h("p", { class: "muted", id: "repairs" }, t("op_repairs", {
      n: m.repairs, s: (m.longest / 1000).toFixed(1) })) : "");
    mount(c.pressFeeds, info.phase !== "open" ? [] : [h("h3", {}, t("op_press")),
      h("ul", {}, press.filter((x) => x)), h("p", { class: "muted" }, t("op_press_note"))]);
  }
}

// -- the plan form -------------------------------------------------------------------
// A bilateral call with one linked delegation, or a briefing this delegation hosts for
// 1 to 7 guests among the delegations it has established links with (each guest's link
// is filed in the plan's `links`; core/plan.py CallPlan.to_json). Participants: every
// device each delegation certified (checked here under its pinned key). Languages: each
// delegation's principal speaks the language chosen for that delegation (ours from what
// our officer stated when certifying principals, a guest's from the last plan with it);
// in a bilateral an interpreter speaks into the language of the side it does not serve,
// in a briefing into its own delegation's (each delegation's interpreters serve its
// channel), unless its officer stated its channel.
const MAX_GUESTS = MAX_BRIEFING_DELEGATIONS - 1;

class DraftForm {
  constructor(owner) {
    this.owner = owner;
    const t = owner.t, me = owner.me;
    this.links = []; // established links, one per other delegation (the first of each)
    this.theirDevices = new Map(); // other delegation -> its devices, checked here
    this.title = h("input", { id: "plan-title", value: t("op_plan_default_title"),
                              required: true, maxLength: 120 });
    this.when = h("input", { id: "plan-when", type: "datetime-local" });
    this.press = h("input", { id: "plan-press", type: "number", min: 0, max: 3600, value: 0 });
    this.pressChannels = h("input", { id: "plan-press-channels", placeholder: "ru",
                                      autocomplete: "off" });
    this.video = h("input", { type: "checkbox", id: "plan-interpreter-video" });
    this.studio = h("input", { type: "checkbox", id: "plan-studio-audio" });
    const chosen = (ev) => { ev.target.dataset.touched = "1"; this.defaults(); };
    this.ours = owner.languageSelect({ id: "plan-our-language", onchange: chosen });
    this.theirs = owner.languageSelect({ id: "plan-their-language", onchange: chosen });
    const kind = (value) => h("label", { class: "check" }, h("input", {
      type: "radio", name: "plan-kind", id: `plan-kind-${value}`, value,
      checked: value === "bilateral", onchange: () => this.kindChanged() }), " ",
    t(`op_plan_kind_${value}`));
    this.kindBox = h("fieldset", { id: "plan-kind", class: "plan-kind" },
      h("legend", {}, t("op_plan_kind")), kind("bilateral"), kind("briefing"));
    // bilateral: with whom (one of the linked delegations)
    this.with = h("select", { id: "plan-with", onchange: () => {
      this.sideDefaults();
      this.changed();
    } });
    this.withLabel = h("label", { id: "plan-with-label" }, t("op_plan_with"), this.with);
    this.theirName = h("span");
    this.theirLabel = h("label", {}, this.theirName, this.theirs);
    // briefing: the guests, each with its language
    this.guests = h("ul", { id: "plan-guests", class: "guests" });
    this.guestBox = h("fieldset", { id: "plan-guest-box", class: "guest-box", hidden: true },
      h("legend", {}, t("op_brief_guests", { n: MAX_GUESTS })),
      h("p", { class: "muted" }, t("op_brief_guests_note", { name: me.name })), this.guests);
    this.rows = h("tbody");
    this.empty = h("p", { class: "muted", id: "plan-no-devices" }, t("op_plan_no_devices"));
    this.error = h("p", { class: "error", role: "alert" });
    this.heading = h("h3", {}, t("op_draft_heading"));
    this.el = h("form", { id: "draft-plan", onsubmit: owner.act(() => this.submit(), this.error) },
      this.heading, this.kindBox,
      h("label", {}, t("op_plan_title"), this.title),
      h("label", {}, t("op_plan_when"), this.when),
      this.withLabel,
      h("div", { class: "form-row" },
        h("label", {}, t("op_our_language", { name: me.name }), this.ours), this.theirLabel),
      this.guestBox,
      h("label", {}, t("op_plan_press_window"), this.press),
      h("label", {}, t("op_plan_press_channels"), this.pressChannels),
      h("label", { class: "check" }, this.video, " ", t("op_plan_interpreter_video")),
      h("label", { class: "check" }, this.studio, " ", t("floor_plan_studio")),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, h("span", { class: "sr-only" },
        t("op_plan_take"))), h("th", {}, t("op_name")), h("th", {}, t("op_role")),
      h("th", {}, t("op_plan_delegation")), h("th", {}, t("op_language")),
      h("th", {}, t("op_fingerprint")))), this.rows),
      this.empty, h("button", { class: "primary", id: "submit-plan" }, t("op_submit_plan")),
      this.error);
  }

  get briefing() {
    return this.el.querySelector("#plan-kind-briefing").checked;
  }

  // The established links the console holds now: one per other delegation.
  setLinks(established) {
    const seen = new Set();
    this.links = established.filter((l) => {
      const other = this.owner.otherOf(l);
      return !seen.has(other) && seen.add(other);
    });
    const owner = this.owner, t = owner.t;
    const nameOf = (id) => owner.me.names?.[id]?.name ?? shortFingerprint(id);
    if (!this.ours.dataset.touched) this.ours.value = this.ourLanguage();
    const was = this.with.value;
    reconcile(this.with, this.links, (l) => l.id, (l) => nameOf(owner.otherOf(l)),
              (l) => h("option", { value: owner.otherOf(l) }, nameOf(owner.otherOf(l))));
    if (was && [...this.with.options].some((o) => o.value === was)) this.with.value = was;
    reconcile(this.guests, this.links, (l) => l.id, (l) => nameOf(owner.otherOf(l)), (l) => {
      const other = owner.otherOf(l), name = nameOf(other);
      const language = owner.languageSelect({ class: "guest-language",
        "aria-label": t("op_their_language", { name }),
        onchange: (ev) => { ev.target.dataset.touched = "1"; this.defaults(); } });
      language.value = this.guessLanguage(other);
      return h("li", { "data-delegation": other },
        h("label", { class: "check" }, h("input", { type: "checkbox", class: "guest",
          "data-delegation": other, "data-link": l.id, onchange: () => this.changed() }),
        " ", name, " ", h("span", { class: "mono muted" }, shortFingerprint(other))),
        language);
    });
    this.withLabel.hidden = this.briefing || this.links.length < 2;
    this.sideDefaults();
  }

  // A guest's language before the officer chose one: as in the last plan with it, else
  // English (else Russian, if this office speaks English: the bilateral it was built for).
  guessLanguage(other) {
    return this.owner.me.theirLanguages?.[other] || (this.ours.value === "en" ? "ru" : "en");
  }

  // The other delegations of the plan being drafted, each with the link it is filed
  // under: the one chosen for a bilateral; the guests ticked for a briefing.
  chosen() {
    if (this.briefing) {
      return [...this.guests.querySelectorAll("input.guest:checked")].map((box) =>
        ({ id: box.dataset.delegation, link: box.dataset.link }));
    }
    const l = this.links.find((x) => this.owner.otherOf(x) === this.with.value) ?? this.links[0];
    return l ? [{ id: this.owner.otherOf(l), link: l.id }] : [];
  }

  kindChanged() {
    const briefing = this.briefing, t = this.owner.t;
    this.guestBox.hidden = !briefing;
    this.theirLabel.hidden = briefing;
    this.withLabel.hidden = briefing || this.links.length < 2;
    this.heading.textContent = t(briefing ? "op_brief_draft_heading" : "op_draft_heading");
    if (briefing && this.title.value === t("op_plan_default_title")) {
      this.title.value = t("op_brief_default_title");
    } else if (!briefing && this.title.value === t("op_brief_default_title")) {
      this.title.value = t("op_plan_default_title");
    }
    this.changed();
  }

  // The delegations in the plan changed: at most 7 guests; rows follow.
  changed() {
    const boxes = [...this.guests.querySelectorAll("input.guest")];
    const full = boxes.filter((b) => b.checked).length >= MAX_GUESTS;
    for (const b of boxes) b.disabled = full && !b.checked;
    this.error.textContent = "";
    this.update().then(() => this.defaults());
  }

  // This office's language: the one its officer stated for its principals, else the
  // one chosen in its last plan, else the page's.
  ourLanguage() {
    const me = this.owner.me;
    const stated = this.owner.devices.filter((d) => d.certified && d.role === "principal")
      .map((d) => me.languages?.[d.device]?.[0]).filter((x) => x);
    if (stated.length) return stated[0];
    if (me.ownLanguage) return me.ownLanguage;
    return PLAN_LANGUAGES.includes(this.owner.language) ? this.owner.language : "en";
  }

  // Each side's language, unless the officer chose it here: ours as ourLanguage says,
  // the bilateral partner's as chosen in the last plan with it, else the other of
  // English and Russian (the bilateral call this was built for).
  sideDefaults() {
    const me = this.owner.me, before = [this.ours.value, this.theirs.value];
    const other = this.chosen()[0]?.id;
    if (!this.ours.dataset.touched) this.ours.value = this.ourLanguage();
    if (!this.theirs.dataset.touched || (other ?? "") !== this.theirs.dataset.other) {
      delete this.theirs.dataset.touched;
      this.theirs.dataset.other = other ?? "";
      this.theirs.value = me.theirLanguages?.[other] ||
        (this.ours.value === "en" ? "ru" : "en");
    }
    for (const select of this.guests.querySelectorAll(".guest-language")) {
      if (!select.dataset.touched) {
        select.value = this.guessLanguage(select.closest("li").dataset.delegation);
      }
    }
    const name = other ? me.names?.[other]?.name ?? shortFingerprint(other) : "…";
    this.theirName.textContent = this.owner.t("op_their_language", { name });
    if (before.join() !== [this.ours.value, this.theirs.value].join()) this.defaults();
  }

  // The language of a delegation's side: ours, the bilateral partner's, a guest's.
  languageOf(delegation) {
    if (delegation === this.owner.me.fingerprint) return this.ours.value;
    if (!this.briefing) return this.theirs.value;
    return this.guests.querySelector(`li[data-delegation="${delegation}"] .guest-language`)
      ?.value ?? this.ours.value;
  }

  defaultLanguage(d, ours) {
    const stated = ours ? this.owner.me.languages?.[d.device]?.[0] : null;
    if (stated) return stated;
    if (this.briefing) return this.languageOf(d.delegation);
    const side = d.role === "interpreter" ? !ours : ours;
    return side ? this.ours.value : this.theirs.value;
  }

  // Rows for certified devices of the delegations in the plan, in place: a row the
  // officer touched keeps its choices.
  async update() {
    const owner = this.owner, me = owner.me, chosen = this.chosen();
    await Promise.all(chosen.map(async ({ id }) => {
      try {
        const listed = await get(`/api/delegations/${id}/devices`);
        this.theirDevices.set(id, (await Promise.all(listed.map((d) =>
          withLocalFingerprint(d, me.pins[id])))).filter((d) => d.short !== "KEY MISMATCH"));
      } catch (err) {
        this.error.textContent = owner.message(err);
      }
    }));
    this.sideDefaults(); // a language stated since (a principal certified meanwhile)
    const take = (devices, delegation) => (devices || []).filter((d) => d.device && d.certified)
      .map((d) => ({ ...d, delegation }));
    const now = this.chosen().map((c) => c.id); // (the officer may have ticked meanwhile)
    const all = [...take(owner.devices, me.fingerprint),
                 ...now.flatMap((id) => take(this.theirDevices.get(id), id))];
    reconcile(this.rows, all, (d) => d.device, (d) => [d.name, d.role, d.delegation],
              (d) => this.row(d));
    this.empty.hidden = all.length > 0;
  }

  row(d) {
    const owner = this.owner, t = owner.t, ours = d.delegation === owner.me.fingerprint;
    const lang = owner.languageSelect({ class: "lang", "aria-label": t("op_language_of",
                                                                       { name: d.name }),
      onchange: () => { lang.dataset.touched = "1"; } });
    lang.value = this.defaultLanguage(d, ours);
    const delegation = ours ? owner.me.name
      : owner.me.names?.[d.delegation]?.name ?? shortFingerprint(d.delegation);
    return h("tr", { "data-side": ours ? "ours" : "theirs", "data-delegation": d.delegation },
      h("td", {}, h("input", {
        type: "checkbox", checked: true, class: "pick", "data-device": d.device,
        "data-key": d.key, "data-name": d.name, "data-role": d.role,
        "data-delegation": d.delegation, "data-certificate": d.certificate,
        "aria-label": t("op_plan_take_who", { name: d.name }) })),
      h("td", {}, d.name), h("td", {}, t(`op_role_${d.role}`)), h("td", {}, delegation),
      h("td", {}, lang), h("td", { class: "mono" }, d.short));
  }

  // The language choices at the top changed: rows not set by hand follow them.
  defaults() {
    for (const tr of this.rows?.children ?? []) {
      const lang = tr.querySelector(".lang"), pick = tr.querySelector(".pick").dataset;
      if (lang.dataset.touched) continue;
      lang.value = this.defaultLanguage({ device: pick.device, role: pick.role,
                                          delegation: pick.delegation },
                                        tr.dataset.side === "ours");
    }
  }

  // A delegation as the plan names it: as pinned with its link (key, self-signed name
  // and key chain), never as the server shows it now.
  async delegationEntry(id) {
    const me = this.owner.me;
    if (id === me.fingerprint) {
      return { id, name: me.name, key: me.key,
               name_signature: await sign(me.privateKey, statements.register(me.name, me.key)),
               ...(me.rotations?.length ? { rotations: me.rotations } : {}) }; // if it rotated
    }
    const pinned = me.pins[id], named = me.names?.[id];
    if (!pinned || !named) throw new Refusal("op_not_pinned");
    return { id, name: named.name, key: pinned, name_signature: named.signature,
             // its key chain, if it rotated (the plan must verify on its own)
             ...(me.chains?.[id]?.length ? { rotations: me.chains[id] } : {}) };
  }

  async submit() {
    const owner = this.owner, me = owner.me, briefing = this.briefing;
    const others = this.chosen();
    if (briefing && others.length === 0) throw new Refusal("op_brief_no_guest");
    if (briefing && others.length > MAX_GUESTS) {
      throw new Refusal("op_brief_too_many", { n: MAX_GUESTS });
    }
    if (!others.length) throw new Refusal("op_not_pinned");
    const ids = [me.fingerprint, ...others.map((o) => o.id)];
    const delegations = [];
    for (const id of ids) delegations.push(await this.delegationEntry(id));
    const participants = [...this.rows.querySelectorAll("tr")].filter((tr) =>
      tr.querySelector(".pick").checked && ids.includes(tr.dataset.delegation)).map((tr) => {
      const pick = tr.querySelector(".pick").dataset;
      return { device: pick.device, key: pick.key, delegation: pick.delegation,
               role: pick.role, name: pick.name, language: tr.querySelector(".lang").value,
               certificate: pick.certificate };
    });
    for (const d of delegations) {
      if (!participants.some((x) => x.delegation === d.id && x.role === "principal")) {
        throw new Refusal("op_plan_no_principal", { name: d.name });
      }
    }
    const call = `${briefing ? "briefing" : "call"}-` +
      b64u(crypto.getRandomValues(new Uint8Array(6)));
    // as core/plan.py CallPlan.to_json: a briefing names its host and one link per guest
    const plan = { version: PLAN_VERSION, call,
      ...(briefing ? { host: me.fingerprint, links: others.map((o) => o.link) }
        : { link: others[0].link }),
      title: this.title.value, delegations, participants,
      press_window_s: Number(this.press.value), interpreter_video: this.video.checked };
    const heard = [...new Set(this.pressChannels.value.split(/[\s,]+/).filter(Boolean))].sort();
    if (heard.length) plan.press_channels = heard;
    if (this.studio.checked) plan.audio = AUDIO_STUDIO; // absent: voice (core/plan.py)
    // the field's local date and time, signed as the instant it names
    if (this.when.value) plan.scheduled_ms = new Date(this.when.value).getTime();
    await checkPlan(plan);
    const hash = await digest(plan);
    await post("/api/plans", { plan, signatures: {
      [me.fingerprint]: await sign(me.privateKey, statements.plan(hash)) } });
    me.theirLanguages = { ...me.theirLanguages,
      ...Object.fromEntries(others.map((o) => [o.id, this.languageOf(o.id)])) };
    me.ownLanguage = this.ours.value;
    await owner.save();
    owner.draftOpen = null; // closed under the plan just signed
    owner.draft = null;
    await owner.refresh("plans");
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

class Readout {
  constructor(owner) {
    this.owner = owner;
    const t = owner.t;
    this.t = t;
    const clock = new Intl.DateTimeFormat(owner.language, { dateStyle: "medium",
                                                            timeStyle: "medium" });
    this.clockTime = (ms) => clock.format(ms);
    this.call = null;
    this.phase = null;
    this.own = null; // what the server holds of ours: draft, published, photos
    this.confirming = null; // "readout", or the id of a photo, while asking to confirm
    this.selected = null; // the photo in the preview
    this.drawn = null;
    this.text = h("textarea", { id: "readout-text", rows: 12, maxLength: 20000,
      placeholder: t("op_ro_placeholder"), oninput: () => this.draw() });
    this.state = h("p", { class: "readout-state", id: "readout-state" });
    this.buttons = h("div", { class: "actions" });
    this.error = h("p", { class: "error", role: "alert", id: "readout-error" });
    this.photoArea = h("div", { class: "photo-area", id: "photo-area" });
    this.el = h("section", { class: "card", id: "readout-panel", hidden: true },
      h("h2", {}, t("op_ro_heading")),
      h("label", {}, t("op_ro_label"), this.text),
      this.state, this.buttons, this.error,
      h("h3", {}, t("op_ro_photo")), this.photoArea);
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
        this.error.textContent = this.owner.message(err);
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
        this.error.textContent = this.owner.message(err);
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
    const own = this.own, t = this.t;
    const saved = own?.draft?.text ?? "";
    const dirty = this.text.value !== saved;
    const key = JSON.stringify([this.call, this.phase, own, this.confirming, this.selected,
                                dirty, this.text.value.trim() === ""]);
    if (key === this.drawn) return;
    this.drawn = key;
    this.text.readOnly = !own || Boolean(own.published);
    if (!own) {
      mount(this.state, t("op_ro_loading"));
      mount(this.buttons);
      mount(this.photoArea);
      return;
    }
    this.drawReadout(own, dirty);
    this.drawPhotos(own);
  }

  drawReadout(own, dirty) {
    const t = this.t, clockTime = this.clockTime;
    const empty = this.text.value.trim() === "";
    if (own.published) {
      mount(this.state, h("span", { class: "badge published" }, t("op_ro_published_badge")),
        " ", t("op_ro_published", { time: clockTime(own.published.at) }), " ",
        h("a", { href: serverUrl(`/press.html#/pressroom/${this.call}`), target: "_blank",
                 id: "pressroom-link", rel: "noopener" },
          t("op_ro_open_pressroom")));
      mount(this.buttons);
      return;
    }
    mount(this.state, own.draft
      ? t(dirty ? "op_ro_saved_dirty" : "op_ro_saved", { time: clockTime(own.draft.at) })
      : t(dirty ? "op_ro_not_saved" : "op_ro_no_draft"),
      this.phase === "ended" ? "" : ` ${t("op_ro_after_end")}`);
    if (this.confirming === "readout") {
      mount(this.buttons, h("div", { class: "confirm-box", id: "publish-confirm" },
        h("p", {}, t("op_ro_confirm", { name: this.owner.me.name })),
        h("button", { class: "danger", id: "publish-yes", onclick: this.act(() => this.publish()) },
          t("op_ro_publish_now")),
        h("button", { id: "publish-no", onclick: () => { this.confirming = null; this.draw(); } },
          t("op_cancel"))));
      return;
    }
    mount(this.buttons,
      h("button", { id: "save-draft", disabled: !dirty || empty,
                    onclick: this.act(() => this.saveDraft()) }, t("op_ro_save")),
      h("button", { class: "primary", id: "publish-readout",
                    disabled: this.phase !== "ended" || empty,
                    onclick: () => { this.confirming = "readout"; this.draw(); } },
        t("op_ro_publish")));
  }

  // The press window of the plan (s), if the console has read the plan (else assumed).
  pressWindow() {
    return this.owner.plans.get(this.call)?.plan.press_window_s ?? 1;
  }

  drawPhotos(own) {
    const t = this.t, clockTime = this.clockTime;
    const official = own.photos.find((p) => p.official);
    if (official) {
      mount(this.photoArea, h("img", { class: "preview", id: "photo-preview", src: serverUrl(official.url),
                                       alt: t("op_ro_photo_alt") }),
        h("p", { id: "photo-state" }, h("span", { class: "badge published" },
          t("op_ro_published_badge")), " ",
        t("op_ro_photo_published", { time: clockTime(official.published_ms) })));
      return;
    }
    const shown = own.photos.find((p) => p.id === this.selected) || own.photos[0];
    const open = this.phase === "open", over = this.phase === "closed" || this.phase === "ended";
    mount(this.photoArea, ...[ // (mount would show a null as text)
      h("p", { class: "muted", id: "photo-state" }, t(!this.pressWindow() ? "op_ro_photo_no_window"
        : open ? "op_ro_photo_open" : !over ? "op_ro_photo_before"
          : shown ? "op_ro_photo_over" : "op_ro_photo_none")),
      over ? null : h("button", { id: "capture-photo", disabled: !open,
                                  onclick: this.act(() => this.capture()) }, t("op_ro_capture")),
      shown ? h("img", { class: "preview", id: "photo-preview", src: serverUrl(shown.url),
                         alt: t("op_ro_captured_alt") }) : null,
      own.photos.length > 1 ? h("div", { class: "thumbs" }, own.photos.map((p) =>
        h("button", { class: `thumb${p.id === shown.id ? " selected" : ""}`, "data-photo": p.id,
                      "aria-pressed": String(p.id === shown.id),
                      onclick: () => { this.selected = p.id; this.draw(); } },
          h("img", { src: serverUrl(p.url),
                     alt: t("op_ro_captured_at", { time: clockTime(p.captured_ms) }) })))) : null,
      !shown ? null : this.confirming === shown.id
        ? h("div", { class: "confirm-box", id: "publish-photo-confirm" },
          h("p", {}, t("op_ro_photo_confirm")),
          h("button", { class: "danger", id: "publish-photo-yes",
                        onclick: this.act(() => this.publishPhoto(shown.id)) },
          t("op_ro_publish_now")),
          h("button", { onclick: () => { this.confirming = null; this.draw(); } },
            t("op_cancel")))
        : h("button", { class: "primary", id: "publish-photo",
                        onclick: () => { this.confirming = shown.id; this.draw(); } },
          t("op_ro_publish_photo"))].filter((x) => x));
  }
}

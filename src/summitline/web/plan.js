// The call plan as an endpoint checks it, and the permission table, mirroring
// summitline/core/plan.py and summitline/core/policy.py. No DOM.

import { digest, fingerprintOf, shortFingerprint, statements, unb64u, verify } from "./crypto.js";

export const ROLES = ["principal", "interpreter", "aide", "operator", "press"];
export const PHASES = ["planned", "open", "closed", "ended"];

// key: an i18n key a page may show instead of the (English) message
export class PlanError extends Error {
  constructor(message, key = null) {
    super(message);
    this.key = key;
  }
}

// 2: participants carry their delegation's certificate, delegations their self-signed
// name (summitline/core/plan.py PLAN_VERSION).
export const PLAN_VERSION = 2;

// The last millisecond of the year 9999 (core/plan.py MAX_SCHEDULED_MS).
const MAX_SCHEDULED_MS = 253402300799999;
const PLAN_FIELDS = ["version", "call", "link", "title", "delegations", "participants",
                     "press_window_s", "interpreter_video", "press_channels", "scheduled_ms",
                     "host", "links", "audio", "sfu_above"];
// How devices capture sound (core/plan.py AUDIO_MODES): "studio" turns the browser's
// echo cancellation, noise suppression and automatic gain off; absent is "voice".
export const AUDIO_STUDIO = "studio";
// A briefing's media goes through an SFU, every frame encrypted end to end, when its plan
// names more media endpoints (principals, interpreters) than `sfu_above` (absent: this
// many; core/plan.py SFU_ABOVE).
export const SFU_ABOVE = 5;
const MAX_PARTICIPANTS = 64;
// A briefing: the host and up to seven guests, at most 8 principals (a mesh).
export const MAX_BRIEFING_DELEGATIONS = 8;
export const MAX_BRIEFING_PRINCIPALS = 8;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$/;
// a lowercase BCP 47 tag (core/plan.py LANGUAGE): no two channels read alike
const LANGUAGE = /^[a-z]{2,3}(?:-[a-z0-9]{2,8}){0,2}$/;

// Whether `plan` is a briefing (it names a host), not a bilateral.
export function isBriefing(plan) {
  return "host" in plan || "links" in plan;
}
const DELEGATION_FIELDS = ["id", "name", "key", "name_signature", "rotations"];
const ROTATION_FIELDS = ["previous", "key", "at", "signature", "proof"];
const PARTICIPANT_FIELDS = ["device", "key", "delegation", "role", "name", "language",
                            "certificate"];

function onlyFields(obj, allowed, what) {
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (unknown.length) throw new PlanError(`${what} has unknown field(s) ${unknown.join(", ")}`);
}

async function keyMatches(id, key) {
  try {
    return (await fingerprintOf(unb64u(key))) === id;
  } catch {
    return false;
  }
}

// The key reached from `start` through `rotations` (a delegation's key chain, docs/
// protocol.md 3.5): each step signed by the key before it (`signature`) and by the key
// it brings (`proof`). Steps before the one that retires `start` are skipped; throws
// PlanError if a step does not verify, the chain breaks, or `start` is not in it.
export async function followRotations(delegation, start, rotations) {
  const chain = rotations || [];
  for (const r of chain) {
    if (typeof r !== "object" || r === null) throw new PlanError("a rotation is an object");
    onlyFields(r, ROTATION_FIELDS, "a rotation");
  }
  const at = chain.findIndex((r) => r.previous === start);
  if (at < 0) {
    if (chain.length === 0 || chain[chain.length - 1].key === start) return start;
    throw new PlanError(`the key chain of ${shortFingerprint(delegation)} does not pass ` +
                        "through the pinned key");
  }
  let key = start;
  for (const r of chain.slice(at)) {
    if (r.previous !== key) {
      throw new PlanError(`the key chain of ${shortFingerprint(delegation)} is broken`);
    }
    if (!Number.isSafeInteger(r.at) || r.at < 0) throw new PlanError("a rotation's 'at'");
    const said = statements.rotation(delegation, r.previous, r.key, r.at);
    if (!(await verify(r.previous, said, r.signature)) || !(await verify(r.key, said, r.proof))) {
      throw new PlanError(`a key rotation of ${shortFingerprint(delegation)} must be signed ` +
                          "by both the key it retires and the key it brings",
                          "rotation_unsigned");
    }
    key = r.key;
  }
  return key;
}

// Every key a plan delegation has held, first to current.
export function keysOf(d) {
  const chain = d.rotations || [];
  return chain.length ? [chain[0].previous, ...chain.map((r) => r.key)] : [d.key];
}

// Check the structure of a bilateral or briefing plan, as CallPlan.check does.
export async function checkPlan(plan) {
  if (typeof plan !== "object" || plan === null) throw new PlanError("a plan is an object");
  onlyFields(plan, PLAN_FIELDS, "the plan");
  if (plan.version === 1) {
    throw new PlanError("this is a version 1 plan, from before device certificates: it does " +
                        "not say who vouches for its participants. Draft the plan again " +
                        `(version ${PLAN_VERSION})`);
  }
  if (plan.version !== PLAN_VERSION) {
    throw new PlanError(`unsupported plan version ${plan.version}`);
  }
  const briefing = isBriefing(plan);
  if (briefing && "link" in plan) {
    throw new PlanError("a briefing plan names its 'links' (one per guest), not a 'link'");
  }
  const idError = (field) => new PlanError(`'${field}' must be 1..120 of the characters ` +
                                           "A-Z a-z 0-9 . _ -, the first a letter or digit");
  for (const field of briefing ? ["call"] : ["call", "link"]) {  // URLs and file names
    if (typeof plan[field] !== "string" || !ID.test(plan[field])) throw idError(field);
  }
  const ds = plan.delegations, ps = plan.participants;
  if (!Array.isArray(ds)) throw new PlanError("'delegations' must be a list of objects");
  if (!briefing && (ds.length !== 2 || ds[0].id === ds[1].id)) {
    throw new PlanError("a bilateral plan names exactly 2 different delegations");
  }
  if (briefing) {
    if (ds.length < 2 || ds.length > MAX_BRIEFING_DELEGATIONS) {
      throw new PlanError(`a briefing plan names 2 to ${MAX_BRIEFING_DELEGATIONS} delegations`);
    }
    if (new Set(ds.map((d) => d.id)).size !== ds.length) {
      throw new PlanError("a delegation appears more than once in the plan");
    }
    if (typeof plan.host !== "string" || !ds.some((d) => d.id === plan.host)) {
      throw new PlanError("the host of a briefing must be one of its delegations");
    }
    const links = plan.links;
    if (!Array.isArray(links) || !links.every((l) => typeof l === "string" && ID.test(l))) {
      throw idError("links");
    }
    if (links.length !== ds.length - 1 || new Set(links).size !== links.length) {
      throw new PlanError("a briefing plan names one link per guest (between the host and " +
                          "that guest), each once");
    }
    if (Array.isArray(plan.participants) &&
        plan.participants.filter((p) => p.role === "principal").length >
        MAX_BRIEFING_PRINCIPALS) {
      throw new PlanError(`a briefing holds at most ${MAX_BRIEFING_PRINCIPALS} principals ` +
                          "(a mesh)");
    }
    // each delegation's interpreters serve its own channel (CallPlan.check)
    const serving = new Map();
    for (const p of Array.isArray(plan.participants) ? plan.participants : []) {
      if (p.role !== "interpreter") continue;
      if (!serving.has(p.language)) serving.set(p.language, p.delegation);
      if (serving.get(p.language) !== p.delegation) {
        throw new PlanError(`channel '${p.language}' has interpreters of two delegations; ` +
                            "in a briefing each delegation's interpreters serve a channel of " +
                            "their own");
      }
    }
  }
  for (const d of ds) {
    onlyFields(d, DELEGATION_FIELDS, "a delegation");
    if ("rotations" in d && (!Array.isArray(d.rotations) || d.rotations.length === 0)) {
      throw new PlanError("'rotations' must be a non-empty list (or absent)");
    }
    const first = keysOf(d)[0];
    if (!(await keyMatches(d.id, first))) {
      throw new PlanError(`delegation ${d.name}: id is not the fingerprint of its (first) key`);
    }
    if ((await followRotations(d.id, first, d.rotations)) !== d.key) {
      throw new PlanError(`delegation ${d.name}: its key chain does not end at its key`);
    }
    if (typeof d.name_signature !== "string" ||
        !(await verify(d.key, statements.register(d.name, d.key), d.name_signature))) {
      throw new PlanError(`delegation ${d.name}: that is not the name the delegation signed ` +
                          "for itself: refusing the plan");
    }
  }
  if (!Array.isArray(ps) || ps.length === 0) throw new PlanError("a plan lists participants");
  const seen = new Set();
  for (const p of ps) {
    onlyFields(p, PARTICIPANT_FIELDS, "a participant");
    if (seen.has(p.device)) throw new PlanError("a device appears more than once in the plan");
    seen.add(p.device);
    if (!(await keyMatches(p.device, p.key))) {
      throw new PlanError(`participant ${p.name}: device is not the fingerprint of its key`);
    }
    const under = ds.find((d) => d.id === p.delegation);
    if (!under) {
      throw new PlanError(`participant ${p.name} belongs to no delegation of this plan`);
    }
    if (!ROLES.includes(p.role) || p.role === "press") {
      throw new PlanError(`participant ${p.name} has an invalid role ${p.role}`);
    }
    if (p.role === "interpreter" && p.language === "floor") {
      throw new PlanError("'floor' names the original, not a language");
    }
    if (typeof p.language !== "string" || !LANGUAGE.test(p.language)) {
      throw new PlanError(`participant ${p.name}: '${p.language}' is not a language tag ` +
                          "(lowercase, like en, fr or pt-br)");
    }
    const certified = statements.device(p.delegation, p.device, p.key, p.role, p.name);
    if (typeof p.certificate !== "string" ||
        !(await verify(under.key, certified, p.certificate))) {
      throw new PlanError(`participant ${p.name} (${p.role}) is not certified by ${under.name} ` +
                          `as its ${p.role} ${p.name}: a delegation vouches only for its own ` +
                          "people; refusing the plan");
    }
  }
  for (const d of ds) {
    if (!ps.some((p) => p.role === "principal" && p.delegation === d.id)) {
      throw new PlanError(`delegation ${d.name} has no principal in the plan`);
    }
  }
  if ("press_channels" in plan) {
    const pc = plan.press_channels;
    const channels = new Set(ps.filter((p) => p.role === "interpreter").map((p) => p.language));
    if (!Array.isArray(pc) || pc.length === 0 || !pc.every((c) => typeof c === "string")) {
      throw new PlanError("'press_channels' must be a non-empty list of channels (or absent)");
    }
    if (pc.join("\n") !== [...new Set(pc)].sort().join("\n")) {
      throw new PlanError("'press_channels' must be sorted, without repeats");
    }
    if (!pc.every((c) => channels.has(c))) {
      throw new PlanError("a press channel is no channel of the plan");
    }
    if (!plan.press_window_s) throw new PlanError("press channels need a press window");
  }
  if ("scheduled_ms" in plan && (!Number.isSafeInteger(plan.scheduled_ms) ||
                                 plan.scheduled_ms < 0 || plan.scheduled_ms > MAX_SCHEDULED_MS)) {
    throw new PlanError("'scheduled_ms' must be an integer (ms since 1970, UTC), or absent");
  }
  if ("audio" in plan && plan.audio !== AUDIO_STUDIO) {
    throw new PlanError("'audio' must be 'studio', or absent (voice processing on)");
  }
  if ("sfu_above" in plan) {
    const above = plan.sfu_above;
    if (!Number.isSafeInteger(above) || above < 0 || above > MAX_PARTICIPANTS) {
      throw new PlanError(`'sfu_above' must be an integer 0..${MAX_PARTICIPANTS}, or absent ` +
                          `(${SFU_ABOVE})`);
    }
    if (!isBriefing(plan)) {
      throw new PlanError("'sfu_above' is for briefings: a bilateral call is peer to peer");
    }
  }
}

// Whether the plan routes its media through an SFU (core/plan.py CallPlan.wants_sfu): a
// briefing with more principals and interpreters than its threshold.
export function wantsSfu(plan) {
  if (!isBriefing(plan)) return false;
  const endpoints = plan.participants.filter(
    (p) => p.role === "principal" || p.role === "interpreter").length;
  return endpoints > (plan.sfu_above ?? SFU_ABOVE);
}

// Whether the plan asks for studio sound: no voice processing on any microphone.
export function studioAudio(plan) {
  return plan.audio === AUDIO_STUDIO;
}

// The channels the press may hear besides the floor (plan.press_channels).
export function pressChannels(plan) {
  return plan.press_channels || [];
}

// Verify a signed plan: well formed, signed by every delegation, and at least one of
// them pinned by this device (its own delegation, from enrolment); `names` (optional)
// maps delegation ids to the names pinned with them. Returns the hash.
export async function verifySignedPlan(signed, pinned, names = {}) {
  onlyFields(signed, ["plan", "signatures"], "the signed plan");
  const plan = signed.plan;
  await checkPlan(plan);
  for (const d of plan.delegations) {
    if (names[d.id] !== undefined && names[d.id] !== d.name) {
      throw new PlanError(`the plan names ${d.name} a delegation that signed ` +
                          `${names[d.id]} when linked: refusing the plan`);
    }
  }
  const hash = await digest(plan);
  for (const d of plan.delegations) {
    // the pinned key, or one it rotated to (the chain was checked with the plan)
    if (pinned[d.id] !== undefined && !keysOf(d).includes(pinned[d.id])) {
      throw new PlanError(`delegation ${d.name} in the plan is not the pinned key`);
    }
  }
  if (!plan.delegations.some((d) => pinned[d.id] !== undefined)) {
    throw new PlanError("no delegation of the plan is one this device trusts");
  }
  for (const d of plan.delegations) {
    const sig = signed.signatures[d.id];
    if (!sig) throw new PlanError(`the plan is not signed by ${d.name}`);
    if (!(await verify(d.key, statements.plan(hash), sig))) {
      throw new PlanError(`the signature of ${d.name} on the plan is invalid`);
    }
  }
  const ids = plan.delegations.map((d) => d.id);
  if (Object.keys(signed.signatures).some((k) => !ids.includes(k))) {
    throw new PlanError("the plan carries signatures of delegations it does not name");
  }
  return hash;
}

// For the people of delegation `viewer`: each delegation of a briefing it knows only
// through the host (neither itself nor the host), mapped to the host's id, as
// CallPlan.introduced_by. The views say "France — introduced by United States".
export function introducedBy(plan, viewer) {
  if (!isBriefing(plan) || viewer === plan.host) return {};
  return Object.fromEntries(plan.delegations.filter((d) => d.id !== viewer && d.id !== plan.host)
    .map((d) => [d.id, plan.host]));
}

export function participant(plan, device) {
  return plan.participants.find((p) => p.device === device) || null;
}

// Who a device is, as the plan names it: {name, delegation (its name), role}; a device
// the plan does not name (or no plan yet) by the start of its fingerprint.
export function whoIs(plan, device) {
  const p = plan ? participant(plan, device) : null;
  if (!p) return { name: device.slice(0, 12), delegation: "" };
  const d = plan.delegations.find((x) => x.id === p.delegation);
  return { name: p.name, delegation: d ? d.name : "", role: p.role };
}

// -- the permission table (summitline/core/policy.py) --------------------------------
const MEDIA_PHASES = ["open", "closed"];
const SENDS = {
  "principal>principal": ["audio", "video"],
  "principal>interpreter": ["audio"],
  "interpreter>principal": ["audio"],
  "interpreter>interpreter": ["audio"],
};

// What `sender` may send `receiver` (device fingerprints) in `phase`.
export function media(plan, phase, sender, receiver) {
  if (!MEDIA_PHASES.includes(phase) || sender === receiver) return [];
  const s = participant(plan, sender), r = participant(plan, receiver);
  if (!s || !r) return [];
  if (s.role === "principal" && r.role === "interpreter" && plan.interpreter_video) {
    return ["audio", "video"];
  }
  return SENDS[`${s.role}>${r.role}`] || [];
}

export function mayConnect(plan, phase, a, b) {
  return media(plan, phase, a, b).length > 0 || media(plan, phase, b, a).length > 0;
}

// -- the co-sign review (summitline/core/plan.py review) ------------------------------
// Every signed field of `plan` as [field, value] lines, and flags for what differs from
// what this console pinned with the link: `pins` and `names` map delegation ids to the
// pinned key and self-signed name. A flag is [code, params] (strings review_flag_*).
// `revoked`: the devices this console's delegation revoked; `languages`: device id ->
// the language(s) its officer stated when certifying it. Both kept by the console itself
// (IndexedDB), not by the server: a plan naming a revoked device, or putting such a
// device in a channel not stated, is flagged.
export async function reviewPlan(plan, pins, names, revoked = [], languages = {}) {
  const short = shortFingerprint;
  const by = Object.fromEntries(plan.delegations.map((d) => [d.id, d.name]));
  const briefing = isBriefing(plan);
  const lines = [["version", String(plan.version)], ["call", plan.call]];
  if (briefing) {
    lines.push(["host", `${by[plan.host] ?? "?"} · ${short(String(plan.host))}`],
               ["links", (plan.links || []).join(", ")]);
  } else {
    lines.push(["link", plan.link]);
  }
  lines.push(["title", plan.title]);
  const flags = [];
  // In a briefing, a guest this console has no link with counts when the host is pinned
  // (and signs the same plan): the host introduces it.
  const host = briefing ? plan.delegations.find((d) => d.id === plan.host) : undefined;
  const hostPinned = host !== undefined && pins[host.id] !== undefined &&
    keysOf(host).includes(pins[host.id]);
  for (const d of plan.delegations) {
    lines.push(["delegation", `${d.name} · ${short(d.id)} · key ${d.key}`]);
    if (pins[d.id] === undefined && hostPinned) {
      lines.push(["delegation", `${d.name} · introduced by ${host.name}`]);
    } else if (pins[d.id] === undefined) {
      flags.push([briefing ? "not_introduced" : "not_pinned", { name: d.name, id: short(d.id) }]);
    }
    else if (!keysOf(d).includes(pins[d.id])) flags.push(["key", { name: d.name }]);
    else if (pins[d.id] !== d.key) lines.push(["delegation", `${d.name} · rotated · key ${d.key}`]);
    if (names[d.id] !== undefined && names[d.id] !== d.name) {
      flags.push(["name", { name: d.name, id: short(d.id), pinned: names[d.id] }]);
    }
  }
  // a delegation is no device: its key as a participant would let the other side
  // "revoke" it and so cut it off
  const delegationKeys = new Set([...plan.delegations.flatMap((d) => keysOf(d)),
                                  ...Object.values(pins)]);
  for (const p of plan.participants) {
    lines.push(["participant", `${p.name} · ${p.role} · ${by[p.delegation] ?? "?"} · ` +
                `${p.language} · ${short(p.device)}`]);
    if (delegationKeys.has(p.key) || p.device in by || p.device in pins) {
      flags.push(["delegation_key", { name: p.name, id: short(p.device) }]);
    }
    if (revoked.includes(p.device)) flags.push(["revoked", { name: p.name, id: short(p.device) }]);
    const stated = languages[p.device];
    if (stated?.length && !stated.includes(p.language)) {
      flags.push(["language", { name: p.name, id: short(p.device), language: p.language,
                                stated: [...stated].sort().join(", ") }]);
    }
  }
  lines.push(["press_window_s", `${plan.press_window_s} s`],
             ["interpreter_video", plan.interpreter_video ? "yes" : "no"],
             ["press_channels", (plan.press_channels || []).join(", ") || "—"],
             ["audio", studioAudio(plan) ? "studio" : "voice"]);
  if (briefing) lines.push(["sfu_above", wantsSfu(plan) ? "sfu" : "mesh"]);
  if ("scheduled_ms" in plan) {
    lines.push(["scheduled_ms", `${new Date(plan.scheduled_ms).toISOString().slice(0, 16)
      .replace("T", " ")} UTC`]);
  }
  try {
    await checkPlan(plan);
  } catch (err) {
    flags.push(["invalid", { message: err.message }]);
  }
  return { lines, flags };
}

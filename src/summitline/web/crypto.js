// Keys, signatures and canonical JSON in the browser, byte-compatible with
// summitline.crypto (Python). No DOM.
//
// - Canonical JSON is RFC 8785 (JCS) for the values summitline signs: objects, arrays,
//   strings, integers and booleans. Keys sort by UTF-16 code units; strings and
//   integers serialise as JSON.stringify does, which JCS adopts.
// - Keys are ECDSA P-256. Public keys travel as the raw uncompressed point, base64url.
//   Private keys are generated non-extractable and kept in IndexedDB as CryptoKeys.
// - Signatures are IEEE P1363 (r || s), which is what WebCrypto produces, in low-S form:
//   s <= n/2. WebCrypto may produce the high twin (r, n - s), which also verifies in
//   ECDSA; sign() normalises it and verify() refuses it, as summitline.crypto does.

const ALG = { name: "ECDSA", namedCurve: "P-256" };
const SIGN = { name: "ECDSA", hash: "SHA-256" };
const enc = new TextEncoder();

export function canonical(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error("only safe integers are signed");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(); // default sort compares UTF-16 code units
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  throw new Error(`cannot canonicalise a ${typeof value}`);
}

export function b64u(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = Uint8Array.from(s, (c) => c.charCodeAt(0));
  if (b64u(out) !== text) throw new Error("not canonical base64url");
  return out;
}

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256(data) {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function digest(value) {
  return hex(await sha256(canonical(value)));
}

export async function fingerprintOf(rawPublic) {
  return hex(await sha256(rawPublic));
}

export function shortFingerprint(fp) {
  const head = fp.slice(0, 20).toUpperCase();
  return head.match(/.{4}/g).join("-");
}

// A key pair whose private half can sign but never leave this browser.
export async function generateKeyPair() {
  const pair = await crypto.subtle.generateKey(ALG, false, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, raw,
           key: b64u(raw), fingerprint: await fingerprintOf(raw) };
}

// The order of P-256's base point, and half of it: the bound on a low-S signature.
const CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n;
const HALF_ORDER = CURVE_ORDER / 2n;

function bigOf(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function bytesOf(n, length) {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

// The low-S form of a P1363 signature: (r, s) if s <= n/2, else (r, n - s).
export function lowS(sig) {
  const s = bigOf(sig.slice(32));
  if (s <= HALF_ORDER) return sig;
  const out = new Uint8Array(64);
  out.set(sig.slice(0, 32));
  out.set(bytesOf(CURVE_ORDER - s, 32), 32);
  return out;
}

export async function sign(privateKey, statement) {
  const sig = await crypto.subtle.sign(SIGN, privateKey, enc.encode(canonical(statement)));
  return b64u(lowS(new Uint8Array(sig)));
}

export async function verify(publicKeyB64u, statement, signature) {
  let raw, sig;
  try {
    raw = unb64u(publicKeyB64u);
    sig = unb64u(signature);
  } catch {
    return false;
  }
  if (sig.length !== 64) return false;
  if (bigOf(sig.slice(32)) > HALF_ORDER) return false; // the high-S twin is refused
  try {
    const key = await crypto.subtle.importKey("raw", raw, ALG, false, ["verify"]);
    return await crypto.subtle.verify(SIGN, key, sig, enc.encode(canonical(statement)));
  } catch {
    return false;
  }
}

// The statements, exactly as summitline/crypto/statements.py builds them.
export const statements = {
  register: (name, key) => ({ purpose: "summitline/register", name, key }),
  link: (link, delegations) => ({ purpose: "summitline/link", link,
                                  delegations: [...delegations].sort() }),
  plan: (planHash) => ({ purpose: "summitline/plan", plan: planHash }),
  join: (call, device, nonce) => ({ purpose: "summitline/join", call, device, nonce }),
  // Over the SHA-256 of the whole SDP text: see summitline/crypto/sdp.py for why.
  sdp: ({ call, planHash, sender, receiver, generation, kind, sdpHash }) => ({
    purpose: "summitline/sdp", call, plan: planHash, from: sender, to: receiver,
    generation, kind, sdp: sdpHash }),
  recordHead: (call, planHash, seq, hash) => ({ purpose: "summitline/record-head", call,
                                                plan: planHash, seq, hash }),
  control: (call, action, delegation, at) => ({ purpose: "summitline/control", call,
                                                action, delegation, at }),
  enrol: (code, key) => ({ purpose: "summitline/enrol", code, key }),
  page: (call, principal, page, at) => ({ purpose: "summitline/page", call, from: principal,
                                          page, at }),
  ack: (call, aide, page, at) => ({ purpose: "summitline/ack", call, from: aide, page, at }),
  enrolment: (delegation, codeHash, name, role) => ({
    purpose: "summitline/enrolment", delegation, code: codeHash, name, role }),
  // A signed read (docs/protocol.md §4.3): server is the origin addressed (URL.origin),
  // path the request target, path and ?query.
  read: (server, method, path, signer, at) => ({ purpose: "summitline/read", server, method,
                                                 path, signer, at }),
  // `to` only for a handover (absent, never null, otherwise)
  booth: (call, planHash, channel, action, sender, seq, at, to = null) => ({
    purpose: "summitline/booth", call, plan: planHash, channel, action, from: sender, seq, at,
    ...(to === null ? {} : { to }) }),
  // A delegation vouches for one of its own devices (a plan carries it per participant).
  device: (delegation, device, key, role, name) => ({
    purpose: "summitline/device", delegation, device, key, role, name }),
  // A delegation revokes one of its devices.
  revocation: (delegation, device, at) => ({
    purpose: "summitline/revocation", delegation, device, at }),
  rotation: (delegation, previous, key, at) => ({
    purpose: "summitline/rotation", delegation, previous, key, at }),
  // A device's ECDH key for the call and its media keys, [{kind, key_id, wrapped}] (audio
  // first), wrapped to `for` (null: absent).
  frameKey: ({ call, planHash, sender, receiver, ecdh, forEcdh, keys }) => ({
    purpose: "summitline/frame-key", call, plan: planHash, from: sender, to: receiver, ecdh,
    for: forEcdh, keys }),
};

// DTLS fingerprints of an SDP, normalised as in summitline/crypto/sdp.py.
export function sdpFingerprints(sdp) {
  const found = new Set();
  for (const m of sdp.matchAll(/^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$/gm)) {
    found.add(`${m[1].toLowerCase()} ${m[2].toUpperCase()}`);
  }
  return [...found].sort();
}

// The six-digit short authentication string, as summitline/core/sas.py.
export async function sas(call, fingerprintsA, fingerprintsB) {
  const ends = [[...fingerprintsA].sort().join("|"), [...fingerprintsB].sort().join("|")].sort();
  const h = await sha256(["summitline/sas", call, ...ends].join("\n"));
  let n = 0n;
  for (const b of h.slice(0, 8)) n = (n << 8n) | BigInt(b);
  const text = (n % 1000000n).toString().padStart(6, "0");
  return `${text.slice(0, 3)} ${text.slice(3)}`;
}

// The group code of a briefing, as summitline/core/sas.py group_code: over the call, the
// plan hash and every delegation's id and key (`keys`: id -> base64url key), sorted by id.
export async function groupCode(call, planHash, keys) {
  const lines = Object.keys(keys).sort().map((id) => `${id} ${keys[id]}`);
  const h = await sha256(["summitline/group", call, planHash, ...lines].join("\n"));
  let n = 0n;
  for (const b of h.slice(0, 8)) n = (n << 8n) | BigInt(b);
  const text = (n % 1000000n).toString().padStart(6, "0");
  return `${text.slice(0, 3)} ${text.slice(3)}`;
}

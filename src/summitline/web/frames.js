// End-to-end encryption of encoded media frames, as summitline/crypto/frames.py and
// summitline/crypto/framekeys.py (docs/protocol.md 5.9, 5.10). No DOM: the call's page and
// its frame worker (e2ee-worker.js) both import it. Shared vectors:
// tests/vectors/frames.json (tests/browser/test_frames.py).
//
//   clear header (H) | ciphertext | tag (16) | key id (u32) | counter (u64) | H (u8) | 0x01
//
// nonce = salt XOR (0^4 | counter), AAD = clear header | trailer, AES-GCM.

export const VERSION = 1;
export const TAG_BYTES = 16;
export const TRAILER_BYTES = 14;
export const OVERHEAD = TAG_BYTES + TRAILER_BYTES;
export const SALT_BYTES = 12;
export const KEY_BYTES = 16; // AES-128-GCM, as the Python endpoint sends
export const KEPT_KEYS = 4; // old keys of a sender kept for frames in flight
// How far behind the highest counter opened under a key a frame may still come
// (crypto/frames.py REPLAY_WINDOW): frames come out of order.
export const REPLAY_WINDOW = 1024n;
const MAX_KEY_ID = 2 ** 32 - 1;

export class FrameError extends Error {}

// How many leading bytes of an encoded frame stay in the clear, for a forwarder.
export function clearBytes(codec, frame) {
  let wanted = 0;
  if (codec === "vp8") wanted = frame.length && (frame[0] & 1) ? 3 : 10;
  else if (codec === "opus") wanted = 1;
  return Math.min(wanted, frame.length);
}

// { keyId, key: Uint8Array(16|32), salt: Uint8Array(12) } -> with an AES-GCM CryptoKey
// A media key per kind a device sends (docs/protocol.md 5.9), audio first as in a message.
export const KINDS = ["audio", "video"];

export async function importFrameKey({ keyId, key, salt }) {
  if (![16, 32].includes(key.length) || salt.length !== SALT_BYTES ||
      !Number.isInteger(keyId) || keyId < 0 || keyId > MAX_KEY_ID) {
    throw new FrameError("not a frame key");
  }
  const cryptoKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false,
                                                  ["encrypt", "decrypt"]);
  return { keyId, cryptoKey, salt: new Uint8Array(salt) };
}

export function randomFrameKey(keyId) {
  return { keyId, key: crypto.getRandomValues(new Uint8Array(KEY_BYTES)),
           salt: crypto.getRandomValues(new Uint8Array(SALT_BYTES)) };
}

function nonceOf(salt, counter) {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setBigUint64(4, BigInt(counter));
  return n.map((b, i) => b ^ salt[i]);
}

function trailerOf(keyId, counter, h) {
  const t = new Uint8Array(TRAILER_BYTES);
  const v = new DataView(t.buffer);
  v.setUint32(0, keyId);
  v.setBigUint64(4, BigInt(counter));
  v.setUint8(12, h);
  v.setUint8(13, VERSION);
  return t;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// `frame` (Uint8Array) sealed under the imported key with `counter` (a BigInt or a safe
// integer, never used twice per key).
export async function seal(fk, counter, codec, frame) {
  const h = clearBytes(codec, frame);
  const header = frame.slice(0, h), trailer = trailerOf(fk.keyId, counter, h);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonceOf(fk.salt, counter), additionalData: concat(header, trailer),
      tagLength: 128 }, fk.cryptoKey, frame.slice(h)));
  return concat(header, sealed, trailer);
}

// { keyId, counter (BigInt), h } of an encrypted frame; FrameError if it is not one.
export function parseFrame(data) {
  if (data.length < OVERHEAD) throw new FrameError("too short to be an encrypted frame");
  const v = new DataView(data.buffer, data.byteOffset + data.length - TRAILER_BYTES,
                         TRAILER_BYTES);
  const keyId = v.getUint32(0), counter = v.getBigUint64(4), h = v.getUint8(12);
  if (v.getUint8(13) !== VERSION) throw new FrameError("unknown frame format version");
  if (h > data.length - OVERHEAD) throw new FrameError("clear header longer than the frame");
  return { keyId, counter, h };
}

// The counters opened under one key (crypto/frames.py ReplayWindow): each once, none
// more than REPLAY_WINDOW below the highest. Counters are BigInt.
export class ReplayWindow {
  constructor() {
    this.top = -1n;
    this.seen = new Set();
  }

  fresh(counter) {
    return counter > this.top - REPLAY_WINDOW && !this.seen.has(counter);
  }

  // Mark `counter` opened; false if it was, or is too old.
  accept(counter) {
    if (!this.fresh(counter)) return false;
    this.seen.add(counter);
    if (counter > this.top) {
      this.top = counter;
      if (this.seen.size > 2 * Number(REPLAY_WINDOW)) {
        for (const c of this.seen) if (c <= this.top - REPLAY_WINDOW) this.seen.delete(c);
      }
    }
    return true;
  }
}

export async function openFrame(fk, data) {
  const { keyId, counter, h } = parseFrame(data);
  if (keyId !== fk.keyId) throw new FrameError(`frame is under key ${keyId}, not ${fk.keyId}`);
  const header = data.slice(0, h), trailer = data.slice(data.length - TRAILER_BYTES);
  let body;
  try {
    body = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonceOf(fk.salt, counter),
        additionalData: concat(header, trailer), tagLength: 128 },
      fk.cryptoKey, data.slice(h, data.length - TRAILER_BYTES));
  } catch {
    throw new FrameError("frame does not authenticate under its key");
  }
  return concat(header, new Uint8Array(body));
}

// -- frame keys (docs/protocol.md 5.10) -------------------------------------------------
const ECDH = { name: "ECDH", namedCurve: "P-256" };
const enc = new TextEncoder();

export async function generateEcdh() {
  const pair = await crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicRaw };
}

async function wrappingKey(ecdhPrivate, peerRaw, { call, sender, receiver, kind }, keyId,
                           usage) {
  let peer;
  try {
    peer = await crypto.subtle.importKey("raw", peerRaw, ECDH, false, []);
  } catch {
    throw new FrameError("not a P-256 ECDH key");
  }
  const z = await crypto.subtle.deriveBits({ name: "ECDH", public: peer }, ecdhPrivate, 256);
  const ikm = await crypto.subtle.importKey("raw", z, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0),
      info: enc.encode(`summitline/frame-key|${call}|${sender}|${receiver}|${kind}|${keyId}`) },
    ikm, { name: "AES-GCM", length: 256 }, false, [usage]);
}

// The wrap's AAD: the kind (UTF-8), then the key id (4 bytes, big-endian).
function wrapAad(kind, keyId) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, keyId);
  return concat(enc.encode(kind), b);
}

// nonce (12) | AES-256-GCM(key | salt), the media key `fk` ({keyId, key, salt}) of kind
// `who.kind` for `peerRaw`; `who` is {call, sender, receiver, kind}
export async function wrapKey(ecdhPrivate, peerRaw, fk, who, nonce = null) {
  const k = await wrappingKey(ecdhPrivate, peerRaw, who, fk.keyId, "encrypt");
  const iv = nonce || crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: wrapAad(who.kind, fk.keyId) },
                                         k, concat(fk.key, fk.salt));
  return concat(iv, new Uint8Array(ct));
}

export async function unwrapKey(ecdhPrivate, peerRaw, keyId, wrapped, who) {
  const k = await wrappingKey(ecdhPrivate, peerRaw, who, keyId, "decrypt");
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: wrapped.slice(0, 12), additionalData: wrapAad(who.kind, keyId) },
      k, wrapped.slice(12)));
  } catch {
    throw new FrameError("the wrapped frame key does not open");
  }
  if (![16 + SALT_BYTES, 32 + SALT_BYTES].includes(plain.length)) {
    throw new FrameError("the wrapped frame key is malformed");
  }
  return { keyId, key: plain.slice(0, -SALT_BYTES), salt: plain.slice(-SALT_BYTES) };
}

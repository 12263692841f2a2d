// The frame worker of a call whose frames are encrypted end to end (docs/protocol.md 5.9).
// Each sender and receiver of the call's peer connections carries an RTCRtpScriptTransform
// on this worker: { operation: "encrypt", kind } seals what the encoder made, before RTP
// packetization; { operation: "decrypt", kind, remote } opens what the depacketizer made,
// before decoding. web/session.js posts the keys, one per kind (audio, video): { type:
// "own", kind, key } (this device's media key of that kind: sealed with from now on,
// counter from 0) and { type: "peer", remote, kind, key }. A receiver opens a frame with
// the remote's key of the receiver's kind (from the track), never another.
import { FrameError, importFrameKey, KEPT_KEYS, openFrame, parseFrame, ReplayWindow, seal }
  from "./frames.js";

const CODEC = { video: "vp8", audio: "opus" };
const own = { audio: null, video: null }; // kind -> { key, counter } (one per key, all links)
const peers = new Map(); // `${remote} ${kind}` -> Map(keyId -> { key: imported key, raw, window })
const counts = { transforms: 0, sealed: 0, opened: 0, refused: 0 };

self.onmessage = async ({ data }) => {
  if (data.type === "own") {
    if (!(data.kind in CODEC)) return;
    own[data.kind] = { key: await importFrameKey(data.key), counter: 0n };
  } else if (data.type === "peer") {
    if (!(data.kind in CODEC)) return;
    const at = `${data.remote} ${data.kind}`;
    const keys = peers.get(at) || new Map();
    const raw = b64(data.key.key) + b64(data.key.salt);
    const known = keys.get(data.key.keyId);
    const imported = await importFrameKey(data.key);
    // the same key handed again keeps its replay window; a new one (or the sender's next
    // session reusing an id) starts over
    keys.set(data.key.keyId, known?.raw === raw ? { ...known, key: imported }
      : { key: imported, raw, window: new ReplayWindow() });
    for (const old of [...keys.keys()].sort((a, b) => a - b).slice(0, -KEPT_KEYS)) keys.delete(old);
    peers.set(at, keys);
  } else if (data.type === "counts") {
    self.postMessage({ type: "counts", id: data.id, counts });
  }
};

function sealing(kind) {
  return async (frame, controller) => {
    const mine = own[kind];
    if (!mine) return; // no key yet: nothing leaves in the clear
    const key = mine.key, n = mine.counter;
    mine.counter += 1n;
    frame.data = (await seal(key, n, CODEC[kind], new Uint8Array(frame.data))).buffer;
    counts.sealed += 1;
    // the page makes a new key before handing a sealed-under one to a newcomer (5.10)
    if (n === 0n) self.postMessage({ type: "sealed", kind, keyId: key.keyId });
    controller.enqueue(frame);
  };
}

function opening(kind, remote, transformer) {
  let broken = kind === "video"; // a decoder starts at a key frame
  return async (frame, controller) => {
    let plain;
    try {
      const data = new Uint8Array(frame.data);
      const { keyId, counter } = parseFrame(data);
      const held = peers.get(`${remote} ${kind}`)?.get(keyId);
      if (!held) throw new FrameError("no key for this frame");
      if (!held.window.fresh(counter)) throw new FrameError("a replay, or too old");
      plain = await openFrame(held.key, data); // authenticated before the window moves
      if (!held.window.accept(counter)) throw new FrameError("a replay");
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      counts.refused += 1;
      broken = kind === "video";
      return; // dropped: never decoded
    }
    if (broken) {
      if (plain.length && (plain[0] & 1)) { // an inter frame: nothing to build on
        try { await transformer.sendKeyFrameRequest(); } catch { /* one is on its way */ }
        return;
      }
      broken = false;
    }
    frame.data = plain.buffer;
    counts.opened += 1;
    controller.enqueue(frame);
  };
}

// Key bytes as a string, to tell a key handed again from a new one under the same id.
function b64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

self.onrtctransform = ({ transformer }) => {
  const { operation, kind, remote } = transformer.options;
  counts.transforms += 1;
  const transform = operation === "encrypt" ? sealing(kind) : opening(kind, remote, transformer);
  transformer.readable.pipeThrough(new TransformStream({ transform }))
    .pipeTo(transformer.writable).catch(() => {});
};

// The page attaches transforms only after this: an rtctransform event that came while
// this module (and frames.js) still loaded would find no handler, and be lost.
self.postMessage({ type: "ready" });

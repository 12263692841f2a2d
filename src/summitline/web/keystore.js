// Identities kept in this browser's IndexedDB: CryptoKey pairs (private halves
// non-extractable) with what each knows about itself. No DOM.
//
// A browser may hold several: normally one device, but on a demo machine two tabs can
// be two principals, or one browser can hold two delegations' operator keys.
// Kinds: "operator" (a delegation key) and "device" (a device key).

const DB = "summitline";
const STORE = "identities";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => { db.close(); resolve(req.result); };
    t.onerror = () => { db.close(); reject(t.error); };
  });
}

const keyOf = (kind, fingerprint) => `${kind}:${fingerprint}`;

export const saveIdentity = (kind, identity) =>
  tx("readwrite", (s) => s.put(identity, keyOf(kind, identity.fingerprint)));

export const loadIdentity = (kind, fingerprint) =>
  tx("readonly", (s) => s.get(keyOf(kind, fingerprint)));

export async function listIdentities(kind) {
  const range = IDBKeyRange.bound(`${kind}:`, `${kind}:\uffff`);
  return tx("readonly", (s) => s.getAll(range));
}

// The identity of `kind` this view should use: the one named, or the only one.
export async function chooseIdentity(kind, fingerprint) {
  if (fingerprint) return loadIdentity(kind, fingerprint);
  const all = await listIdentities(kind);
  return all.length === 1 ? all[0] : null;
}

// Identities kept in this browser's IndexedDB: the CryptoKey pair (private half
// non-extractable) with what the device knows about itself. No DOM.

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

// name: "operator" (a delegation key) or "device" (this device's key).
export const saveIdentity = (name, identity) => tx("readwrite", (s) => s.put(identity, name));
export const loadIdentity = (name) => tx("readonly", (s) => s.get(name));
export const forgetIdentity = (name) => tx("readwrite", (s) => s.delete(name));

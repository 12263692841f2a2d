// The REST API of the server, for the views. No DOM.
//
// Reads are signed (docs/protocol.md §4.3): every GET carries the current identity's
// fingerprint, the time and its signature over the request target, so the server answers
// only a delegation or device the object concerns. A view sets the identity it acts as.

import { sign, statements } from "./crypto.js";

let signer = null; // { fingerprint, privateKey } of the operator or device of this page

export function setSigner(identity) {
  signer = identity ? { fingerprint: identity.fingerprint, privateKey: identity.privateKey }
    : null;
}

async function readHeaders(method, path) {
  if (method !== "GET" || !signer) return {};
  const url = new URL(path, location.href);
  const at = Date.now();
  const statement = statements.read(method, url.pathname + url.search, signer.fingerprint, at);
  return { "summitline-signer": signer.fingerprint, "summitline-at": String(at),
           "summitline-signature": await sign(signer.privateKey, statement) };
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }),
               ...(await readHeaders(method, path)) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const detail = typeof data?.detail === "string" ? data.detail
      : Array.isArray(data?.detail) ? data.detail.map((d) => d.msg).join("; ") : res.statusText;
    throw new ApiError(res.status, detail);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

export function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

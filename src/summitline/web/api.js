// The REST API of the server, for the views. No DOM.
//
// The shared server is named by whoever serves this page: the delegation's console
// (`summitline console --server URL`) says which in /config.json, and its CSP lets the
// page connect nowhere else. A page the server serves itself (`summitline serve
// --serve-client`, development only) has no /config.json and talks to its own origin.
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

// The signed-read headers of a GET of `path`, by `identity` (default: the view's signer).
// Exported for reads that are not JSON: the event stream (live.js), the record's bytes.
export async function readHeaders(method, path, identity = signer) {
  if (method !== "GET" || !identity) return {};
  const url = new URL(serverUrl(path), location.href);
  const at = Date.now();
  const statement = statements.read(url.origin, method, url.pathname + url.search,
                                    identity.fingerprint, at);
  return { "summitline-signer": identity.fingerprint, "summitline-at": String(at),
           "summitline-signature": await sign(identity.privateKey, statement) };
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function consoleConfig() {
  const res = await fetch("/config.json", { cache: "no-store" });
  return res.ok ? res.json() : null;
}

const config = await consoleConfig();
// Whether this page comes from a delegation's console (not from the shared server).
export const ON_CONSOLE = config !== null;
// The shared server's origin, e.g. "https://summit.example.org:8750".
export const SERVER = ON_CONSOLE ? new URL(config.server).origin : location.origin;

// The absolute URL of a server path ("/api/…"); other URLs are returned as they are.
export const serverUrl = (path) => (path.startsWith("/") ? SERVER + path : path);

export async function api(method, path, body) {
  const res = await fetch(serverUrl(path), {
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
  return `${SERVER.replace(/^http/, "ws")}/ws`;
}

// Live updates from the server (docs/protocol.md §4.6): a delegation's event stream, read
// with fetch() so that it can carry the signed-read headers (EventSource cannot set
// headers). No DOM.
//
//   const stop = watch(`/api/delegations/${id}/events`, (ev) => ...);
//
// onEvent gets { type: "open" } each time the stream (re)connects: events may have been
// missed meanwhile, so re-read everything shown; then { type, data } per event, with type
// "link" | "plan" | "device" | "call" and data the object it names ({id}, {seat},
// {id, phase}); and { type: "closed", status } when the stream ends or cannot open
// (status: the HTTP status, 0 for a network failure or a stream ended by the server).
// It reconnects by itself, waiting RETRY_MIN_MS, doubling up to RETRY_MAX_MS while it
// keeps failing; stop() ends it for good.

import { readHeaders, serverUrl } from "./api.js";

// The first wait before a reconnect (the server's "retry" field may change it), and the
// longest: a console that lost its server tries twice a minute at the least.
export const RETRY_MIN_MS = 1000;
export const RETRY_MAX_MS = 30_000;
// A line longer than this is no event of ours: the stream is dropped and reopened.
const MAX_LINE = 64 * 1024;

// Feed text in, get events out, as the EventSource parsing rules say (comments ignored,
// one leading space of a value dropped, "data" lines joined with "\n").
export function sseParser(onMessage, onRetry = () => {}) {
  let buffer = "", type = "", data = [];
  function line(text) {
    if (text === "") {
      if (data.length) onMessage(type || "message", data.join("\n"));
      type = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
  }
  return (chunk) => {
    buffer += chunk;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    if (buffer.length > MAX_LINE) throw new Error("an event line is too long");
    lines.forEach(line);
  };
}

export function watch(path, onEvent) {
  let stopped = false, controller = null, timer = null;
  let retryMs = RETRY_MIN_MS, delay = RETRY_MIN_MS;

  function deliver(type, text) {
    let data = null;
    try {
      data = JSON.parse(text);
    } catch {
      return; // not an event of ours
    }
    onEvent({ type, data });
  }

  async function connect() {
    timer = null;
    controller = new AbortController();
    let status = 0;
    try {
      const res = await fetch(serverUrl(path), {
        headers: { accept: "text/event-stream", ...(await readHeaders("GET", path)) },
        cache: "no-store", signal: controller.signal });
      status = res.status;
      if (res.ok && res.body) {
        delay = retryMs;
        status = 0;
        onEvent({ type: "open" });
        const feed = sseParser(deliver, (ms) => { retryMs = Math.min(ms, RETRY_MAX_MS); });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          feed(value);
        }
      } else {
        await res.body?.cancel();
      }
    } catch {
      // a network failure, an aborted stream (stop()), or a malformed one: reconnect
    }
    if (stopped) return;
    onEvent({ type: "closed", status });
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }

  connect();
  return function stop() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    controller?.abort();
  };
}

// Changes arriving within this time are handed over together: a call's signaling brings a
// burst of entries, and a console re-reads once for all of them.
export const COALESCE_MS = 250;

// A console's wiring: follow `delegation`'s stream and call onChange(changes) at most once
// per COALESCE_MS with what changed since the last call:
//   { everything: bool (reconnected: re-read all), links: Set of ids, plans: Set of
//     hashes, devices: Set of device ids, seats: Set of code hashes (seats opened, perhaps
//     by this very console), calls: Map id -> phase }.
// `alive()` (optional) is asked before each call: once it says false (the view was left),
// the stream is stopped. Returns stop().
export function follow(delegation, onChange, alive = () => true) {
  let changes = null, timer = null;
  const fresh = () => ({ everything: false, links: new Set(), plans: new Set(),
                         devices: new Set(), seats: new Set(), calls: new Map() });
  function flush() {
    timer = null;
    const now = changes;
    changes = null;
    if (!alive()) {
      stop();
      return;
    }
    onChange(now);
  }
  const stop = watch(`/api/delegations/${delegation}/events`, (ev) => {
    if (ev.type === "closed") return;
    changes ||= fresh();
    if (ev.type === "open") changes.everything = true;
    else if (ev.type === "link") changes.links.add(ev.data.id);
    else if (ev.type === "plan") changes.plans.add(ev.data.id);
    else if (ev.type === "device" && ev.data.id) changes.devices.add(ev.data.id);
    else if (ev.type === "device" && ev.data.seat) changes.seats.add(ev.data.seat);
    else if (ev.type === "call") changes.calls.set(ev.data.id, ev.data.phase);
    else return;
    if (timer === null) timer = setTimeout(flush, COALESCE_MS);
  });
  return () => {
    if (timer !== null) clearTimeout(timer);
    stop();
  };
}

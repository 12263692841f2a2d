// The call's record in the operator console: read from the server, verified here by the
// rules of `summitline verify` (core/record.py: canonical bytes, the plan and its
// signatures, the hash chain, the head signatures), signed as this delegation, exported
// as the JSON file and opened as the readable HTML page.
//
//   const panel = mountRecord(container, { me, call, t });
//   await panel.refresh();   // after the call changed (e.g. a live `call` event)
//
// me: the delegation's identity as the console holds it ({fingerprint, privateKey, key,
// name, pins: {id: key}, names: {id: {name, signature}}}); call: the call id; t: the strings (i18n.js), loaded if absent.
// The server is trusted for nothing here: the head this delegation signs is the one the
// browser verified, and an export is offered with what the check found.

import { ApiError, post, readHeaders, serverUrl } from "../api.js";
import { canonical, digest, sign, statements, verify } from "../crypto.js";
import { h, mount } from "../dom.js";
import { browserLanguage, strings } from "../i18n.js";
import { followRotations, verifySignedPlan } from "../plan.js";

export const EXPORT_FORMAT = "summitline-record/1";
const GENESIS = "0".repeat(64);
const DOC_FIELDS = ["entries", "format", "head_signatures", "signed_plan"];
// and, only if a delegation's head is signed by a key it rotated to since the plan,
// "rotations": its key chain (docs/protocol.md §8.3)
const ENTRY_FIELDS = ["at", "data", "hash", "kind", "prev", "seq"];

// A record that does not verify: `key` and `vars` name the fault in the user's language;
// `detail` is the technical text (a plan check's own message).
export class RecordError extends Error {
  constructor(key, vars = {}, detail = "") {
    super(detail || key);
    this.key = key;
    this.vars = vars;
    this.detail = detail;
  }
}

const sameFields = (obj, fields) => obj !== null && typeof obj === "object" &&
  !Array.isArray(obj) && Object.keys(obj).sort().join(",") === fields.join(",");

// Check the exported bytes, as core/record.py's verify_export does, except that a head
// signature may still be missing (the record is signed after the check). `pinned` and
// `names`: the delegation keys and names this console pinned (its own and the link's).
export async function verifyRecord(bytes, pinned, names = {}) {
  let text, doc;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    doc = JSON.parse(text);
  } catch (err) {
    throw new RecordError("rec_err_json", {}, err.message);
  }
  const fields = doc && typeof doc === "object" && "rotations" in doc
    ? Object.fromEntries(Object.entries(doc).filter(([k]) => k !== "rotations")) : doc;
  if (!sameFields(fields, DOC_FIELDS) || doc.format !== EXPORT_FORMAT) {
    throw new RecordError("rec_err_format", { format: EXPORT_FORMAT });
  }
  let again;
  try {
    again = canonical(doc) + "\n";
  } catch (err) {
    throw new RecordError("rec_err_canonical", {}, err.message);
  }
  if (again !== text) throw new RecordError("rec_err_canonical");
  let planHash;
  try {
    planHash = await verifySignedPlan(doc.signed_plan, pinned, names);
  } catch (err) {
    throw new RecordError("rec_err_plan", {}, err.message);
  }
  const entries = await checkChain(doc.entries);
  const plan = doc.signed_plan.plan;
  const sigs = doc.head_signatures;
  if (sigs === null || typeof sigs !== "object" || Array.isArray(sigs)) {
    throw new RecordError("rec_err_heads");
  }
  const ids = plan.delegations.map((d) => d.id);
  if (Object.keys(sigs).some((id) => !ids.includes(id))) throw new RecordError("rec_err_heads");
  const keys = await headKeys(plan, doc.rotations);
  const head = entries[entries.length - 1];
  const statement = statements.recordHead(plan.call, planHash, head.seq, head.hash);
  const signed = [], missing = [];
  for (const d of plan.delegations) {
    if (sigs[d.id] === undefined) {
      missing.push(d);
    } else if (typeof sigs[d.id] !== "string" ||
               !(await verify(keys[d.id], statement, sigs[d.id]))) {
      throw new RecordError("rec_err_head_signature", { name: d.name });
    } else {
      signed.push(d);
    }
  }
  return { plan, planHash, entries, head, signed, missing, statement,
           ended: entries.some((e) => e.kind === "call.ended") };
}

// The key each delegation's head signature must verify with: the plan's, or the key its
// chain (the export's `rotations`) leads to from there; never a key retired on the way.
async function headKeys(plan, rotations) {
  const keys = Object.fromEntries(plan.delegations.map((d) => [d.id, d.key]));
  if (rotations === undefined) return keys;
  const ids = plan.delegations.map((d) => d.id);
  if (rotations === null || typeof rotations !== "object" || Array.isArray(rotations) ||
      Object.keys(rotations).length === 0 || Object.keys(rotations).some((id) => !ids.includes(id))) {
    throw new RecordError("rec_err_format", { format: EXPORT_FORMAT });
  }
  for (const d of plan.delegations) {
    const chain = rotations[d.id];
    if (chain === undefined) continue;
    let now;
    try {
      if (!Array.isArray(chain) || chain.length === 0) throw new Error("an empty key chain");
      now = await followRotations(d.id, d.key, chain);
    } catch (err) {
      throw new RecordError("rec_err_rotations", { name: d.name }, err.message);
    }
    if (now === d.key) throw new RecordError("rec_err_rotations", { name: d.name });
    keys[d.id] = now;
  }
  return keys;
}

async function checkChain(entries) {
  if (!Array.isArray(entries) || entries.length === 0) throw new RecordError("rec_err_empty");
  let prev = GENESIS;
  for (const [i, e] of entries.entries()) {
    if (!sameFields(e, ENTRY_FIELDS)) throw new RecordError("rec_err_entry", { n: i });
    const where = { n: i, kind: String(e.kind) };
    if (e.seq !== i) throw new RecordError("rec_err_seq", where);
    if (e.prev !== prev) throw new RecordError("rec_err_prev", where);
    const body = { seq: e.seq, at: e.at, kind: e.kind, data: e.data, prev: e.prev };
    if ((await digest(body)) !== e.hash) throw new RecordError("rec_err_hash", where);
    prev = e.hash;
  }
  return entries;
}

// A signed read whose answer is kept as it came (the export's bytes are the evidence).
async function readRaw(path, me) {
  const res = await fetch(serverUrl(path), { cache: "no-store",
                                             headers: await readHeaders("GET", path, me) });
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new ApiError(res.status, typeof body?.detail === "string" ? body.detail
      : res.statusText);
  }
  return res;
}

function download(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/json" }));
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// The server's HTML page of the record, shown from a blob: URL of this origin. The page
// comes from the server, which may be hostile: a policy of its own goes first, so no
// script of it runs and it loads nothing but the record's stylesheet, from here.
export function recordPage(html) {
  const policy = `default-src 'none'; style-src ${location.origin}; img-src data:`;
  const page = html.replace(/<link rel=stylesheet href="[^"]*">/,
                            `<link rel=stylesheet href="${location.origin}/record.css">`);
  return `<meta http-equiv="Content-Security-Policy" content="${policy}">\n${page}`;
}

export function mountRecord(container, ctx) {
  const panel = new RecordPanel(container, ctx);
  panel.ready = panel.refresh(); // resolves once the record is read and checked
  return panel;
}

class RecordPanel {
  constructor(container, { me, call, t }) {
    Object.assign(this, { container, me, call, t });
    this.result = null; // what verifyRecord found
    this.bytes = null; // the export as the server sent it
    this.error = null; // a RecordError or another Error
    this.busy = false;
    this.confirming = false;
    this.pageUrl = null;
  }

  get pinned() {
    return { ...(this.me.pins || {}), [this.me.fingerprint]: this.me.key };
  }

  // The names pinned with the link (the console keeps {name, signature} per delegation),
  // and its own.
  get names() {
    const out = { [this.me.fingerprint]: this.me.name };
    for (const [id, v] of Object.entries(this.me.names || {})) {
      out[id] = typeof v === "string" ? v : v?.name;
    }
    return out;
  }

  async refresh() {
    this.t ||= await strings(browserLanguage());
    const run = (this.runs = (this.runs || 0) + 1); // only the latest read is shown
    this.busy = true;
    this.draw();
    let bytes = null, result = null, error = null;
    try {
      const res = await readRaw(`/api/calls/${encodeURIComponent(this.call)}/record/export`,
                                this.me);
      bytes = new Uint8Array(await res.arrayBuffer());
      result = await verifyRecord(bytes, this.pinned, this.names);
    } catch (err) {
      error = err;
    }
    if (run !== this.runs) return;
    Object.assign(this, { bytes, result, error, busy: false });
    this.draw();
  }

  async signHead() {
    const r = this.result;
    this.confirming = false;
    this.busy = true;
    this.error = null;
    this.draw();
    try {
      await post(`/api/calls/${encodeURIComponent(this.call)}/record/signatures`, {
        delegation: this.me.fingerprint, seq: r.head.seq,
        signature: await sign(this.me.privateKey, r.statement) });
    } catch (err) {
      this.error = err;
    }
    if (this.error) {
      this.busy = false;
      this.draw();
      return;
    }
    await this.refresh();
  }

  async exportJson() {
    await this.refresh(); // the latest signatures, checked again before they leave
    if (this.bytes) download(this.bytes, `${this.call}.record.json`);
  }

  async openPage() {
    try {
      const res = await readRaw(`/api/calls/${encodeURIComponent(this.call)}/record/export.html`,
                                this.me);
      const html = recordPage(await res.text());
      if (this.pageUrl) URL.revokeObjectURL(this.pageUrl);
      this.pageUrl = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      window.open(this.pageUrl, "_blank");
    } catch (err) {
      this.error = err;
      this.draw();
    }
  }

  statusText() {
    const t = this.t, r = this.result, names = (ds) => ds.map((d) => d.name).join(", ");
    if (this.busy && !r) return t("rec_checking");
    if (!r) return this.error ? t("rec_not_verified") : t("rec_checking");
    const lines = [t("rec_chain_ok", { n: r.entries.length })];
    if (r.signed.length) lines.push(t("rec_signed_by", { names: names(r.signed) }));
    if (r.missing.length) {
      lines.push(t(r.ended ? "rec_awaiting" : "rec_not_ended", { names: names(r.missing) }));
    } else {
      lines.push(t(r.plan.delegations.length > 2 ? "rec_complete_all" : "rec_complete"));
    }
    return lines.join(" ");
  }

  errorText() {
    const t = this.t, e = this.error;
    if (!e) return "";
    if (e instanceof RecordError) {
      return t(e.key, e.vars) + (e.detail ? ` (${e.detail})` : "");
    }
    return t("rec_err_server", { detail: e.message });
  }

  draw() {
    if (!this.t) {
      mount(this.container);
      return;
    }
    const t = this.t, r = this.result;
    const mine = r && r.signed.some((d) => d.id === this.me.fingerprint);
    const canSign = r && r.ended && !mine && !this.busy;
    const head = r ? h("dl", { class: "facts", id: "rec-facts" },
      h("dt", {}, t("rec_entries")), h("dd", {}, String(r.entries.length)),
      h("dt", {}, t("rec_head")), h("dd", { class: "mono", id: "rec-head" },
        `${r.head.seq} · ${r.head.hash.slice(0, 16)}…`),
      h("dt", {}, t("rec_plan")), h("dd", { class: "mono" }, `${r.planHash.slice(0, 16)}…`))
      : null;
    const confirm = this.confirming ? h("div", { class: "confirm-box", id: "rec-confirm",
                                                 role: "group" },
      h("p", {}, t("rec_sign_confirm", { seq: r.head.seq })),
      h("div", { class: "actions" },
        h("button", { class: "primary", id: "rec-sign-yes", onclick: () => this.signHead() },
          t("rec_sign_yes")),
        h("button", { id: "rec-sign-no", onclick: () => { this.confirming = false; this.draw(); } },
          t("rec_sign_no")))) : null;
    mount(this.container, h("section", { class: "card record-panel", id: "record-panel" },
      h("h2", {}, t("rec_title")),
      h("p", { id: "rec-status", role: "status", "aria-live": "polite",
               class: r && !r.missing.length ? "ok" : null }, this.statusText()),
      head,
      h("div", { class: "actions" },
        mine ? h("span", { class: "badge established", id: "rec-signed" }, t("rec_signed"))
          : h("button", { class: "primary", id: "rec-sign",
                          disabled: !canSign || this.confirming,
                          onclick: () => { this.confirming = true; this.draw(); } },
            t("rec_sign")),
        h("button", { id: "rec-export", disabled: this.busy || !this.bytes,
                      onclick: () => this.exportJson() }, t("rec_export")),
        h("button", { id: "rec-html", disabled: this.busy, onclick: () => this.openPage() },
          t("rec_open_html")),
        h("button", { id: "rec-refresh", disabled: this.busy, onclick: () => this.refresh() },
          t("rec_check_again"))),
      confirm,
      h("p", { class: "muted" }, t("rec_help")),
      h("p", { class: "error", role: "alert", id: "rec-error" }, this.errorText())));
  }
}

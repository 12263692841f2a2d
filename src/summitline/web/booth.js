// Signed booth actions: who may be live in a booth, as the interpreters signed it.
// A port of summitline/core/booth.py (see there and docs/protocol.md section 5.3): the
// server's word on who is live is believed only where a valid action, newer than any
// seen, put that interpreter on air. The server may take anyone off air, never put on.

import { canonical, statements, verify } from "./crypto.js";

const ACTIONS = new Set(["live", "handover", "quiet", "request", "accept", "decline"]);
// The actions that name the other partner (`to`): whom one hands over to or asks, or the
// asker one answers.
const NAMING = new Set(["handover", "request", "accept", "decline"]);
// Who is live after an action: the one going live, asking or accepting; the one handed
// over to, or whose request was declined (it stays live); nobody after a quiet.
const ON_AIR = { live: "from", request: "from", accept: "from", handover: "to",
                 decline: "to", quiet: null };

// The statement an action ({action, from, to, seq, at, signature}) claims to sign, or
// null if it is malformed.
export function statementOf(call, planHash, channel, action) {
  const { seq, at, to } = action;
  if (!ACTIONS.has(action.action) || !Number.isSafeInteger(seq) || !Number.isSafeInteger(at)) {
    return null;
  }
  if (NAMING.has(action.action) !== (typeof to === "string")) return null;
  return statements.booth(call, planHash, channel, action.action, String(action.from), seq, at,
                          NAMING.has(action.action) ? to : null);
}

// Who the action puts on air ({onAir}, null: quiet), or {error} if no interpreter of the
// booth signed it as it stands.
export async function verifyAction(call, plan, planHash, channel, action) {
  const statement = statementOf(call, planHash, channel, action);
  if (!statement) return { error: "malformed booth action" };
  const booth = new Map(plan.participants
    .filter((p) => p.role === "interpreter" && p.language === channel).map((p) => [p.device, p]));
  const signer = booth.get(statement.from);
  if (!signer) return { error: "the signer is not an interpreter of that booth" };
  if (NAMING.has(statement.action) &&
      (!booth.has(statement.to) || statement.to === statement.from)) {
    return { error: "a handover to someone outside the booth" };
  }
  if (!(await verify(signer.key, statement, action.signature))) {
    return { error: "it does not verify" };
  }
  const onAir = ON_AIR[statement.action] ? statement[ON_AIR[statement.action]] : null;
  return { onAir, text: canonical(statement) };
}

// Per channel, the latest valid action this endpoint has seen (across reconnections).
export class BoothLedger {
  constructor(call, plan, planHash) {
    Object.assign(this, { call, plan, planHash });
    this.seq = new Map(); // channel -> last accepted seq
    this.text = new Map(); // channel -> its statement's canonical text
    this.holder = new Map(); // channel -> who the actions put on air (null: nobody)
    this.since = new Map(); // channel -> the signed `at` of that action
    this.last = new Map(); // channel -> that action
  }

  // Take the actions the server shows (channel -> action); the alarms for the bad
  // ({text, key, args}: the English text for logs, the i18n key and its values).
  async take(actions) {
    const alarms = [];
    const channels = new Set(this.plan.participants
      .filter((p) => p.role === "interpreter").map((p) => p.language));
    for (const [channel, action] of Object.entries(actions || {})) {
      if (!channels.has(channel) || !action || typeof action !== "object") {
        alarms.push({ text: `a booth action for ${JSON.stringify(channel)} that is no channel; ` +
                      "ignored", key: "alarm_booth_no_channel", args: {} });
        continue;
      }
      const result = await verifyAction(this.call, this.plan, this.planHash, channel, action);
      if (result.error) {
        alarms.push({ text: `a booth action in the ${channel} booth that no interpreter of it ` +
                      `signed: ${result.error}; ignored`, key: "alarm_booth_unsigned",
                      args: { channel } });
        continue;
      }
      const last = this.seq.get(channel);
      if (last !== undefined && (action.seq < last ||
          (action.seq === last && result.text !== this.text.get(channel)))) {
        alarms.push({ text: `an old booth action replayed in the ${channel} booth (sequence ` +
                      `${action.seq}, seen ${last}); ignored`, key: "alarm_booth_replayed",
                      args: { channel } });
        continue;
      }
      this.seq.set(channel, action.seq);
      this.text.set(channel, result.text);
      this.holder.set(channel, result.onAir);
      this.since.set(channel, action.at);
      this.last.set(channel, action);
    }
    return alarms;
  }

  // Who is live, of what the server claims: only those a valid action put there.
  live(claimed) {
    const out = {}, alarms = [];
    for (const [channel, device] of Object.entries(claimed || {})) {
      if (device && device === this.holder.get(channel)) out[channel] = device;
      else if (device) {
        const p = this.plan.participants.find((x) => x.device === device);
        const name = p ? p.name : device.slice(0, 12);
        alarms.push({ text: `the server says ${name} is live in the ${channel} booth, but no ` +
                      "interpreter of the booth signed that; not believed",
                      key: "alarm_booth_live_unsigned", args: { name, channel } });
      }
    }
    return { live: out, alarms };
  }

  // Who asks `device` to take over in `channel`: the latest action is a request naming
  // it (whether it is still open, the server decides: a minute, core/call.py).
  asker(channel, device) {
    const last = this.last.get(channel);
    return last && last.action === "request" && last.to === device ? last.from : null;
  }

  nextSeq(channel) {
    return (this.seq.get(channel) || 0) + 1;
  }
}

"""The record of a call: a hash chain of events, and the export that verifies offline.

Each entry holds ``seq`` (0, 1, 2, ...), ``at`` (ms since the epoch), ``kind``,
``data`` and ``prev`` (the hash of the entry before; 64 zeros for the first). Its
``hash`` is the SHA-256 of its canonical JSON without the hash. Changing, removing or
reordering any entry breaks the chain at that entry, and ``verify_export`` names it.
At the end each delegation signs the head (call, plan hash, last seq, last hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from summitline.core import call as c
from summitline.core.plan import PlanError, Rotation, SignedPlan, follow_rotations
from summitline.crypto import statements
from summitline.crypto.encoding import canonical, digest
from summitline.crypto.keys import PublicKey

GENESIS = "0" * 64
EXPORT_FORMAT = "summitline-record/1"


class RecordError(ValueError):
    """The record does not verify. The message names the entry and what is wrong."""


@dataclass(frozen=True)
class Entry:
    seq: int
    at: int
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str

    @classmethod
    def make(cls, prev: Entry | None, at_ms: int, kind: str, data: dict[str, Any]) -> Entry:
        seq, prev_hash = (0, GENESIS) if prev is None else (prev.seq + 1, prev.hash)
        body = {"seq": seq, "at": at_ms, "kind": kind, "data": data, "prev": prev_hash}
        return cls(seq, at_ms, kind, data, prev_hash, digest(body))

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "data": self.data,
                "prev": self.prev}

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}


# Record kinds that change the call state, and how to turn them back into core events.
def to_event(entry: Entry) -> c.Event | None:
    d = entry.data
    match entry.kind:
        case "call.started":  # from the signed start time where the entry has one
            return c.Start(d["at"] if isinstance(d.get("at"), int) else entry.at)
        case "doors.closed":
            return c.CloseDoors(entry.at)
        case "call.ended":
            return c.End(entry.at)
        case "endpoint.joined":
            return c.Join(d["device"])
        case "endpoint.left":
            return c.Leave(d["device"])
        case "server.restarted":
            return c.Reset()
        case "signal.offer":
            return c.Offer(d["from"], d["to"], d["generation"])
        case "signal.answer":
            return c.Answer(d["from"], d["to"], d["generation"])
        case "booth.live":
            return c.GoLive(d["device"])
        case "booth.handover":
            return c.Handover(d["from"], d["to"])
        case "booth.request":
            return c.RequestHandover(d["from"], d["to"], entry.at)
        case "booth.accept" | "booth.decline":
            return c.HandoverAnswer(d["from"], d["to"], entry.kind == "booth.accept", entry.at)
        case "booth.quiet":
            return c.GoQuiet(d["device"])
        case "interpreter.source":
            return c.SetSource(d["device"], d["source"])
    return None


def describe(event: c.Event) -> tuple[str, dict[str, Any]]:
    """The record kind and the least data that ``to_event`` turns back into ``event``."""
    match event:
        case c.Start(at_ms):
            return "call.started", {"at": at_ms}
        case c.CloseDoors():
            return "doors.closed", {}
        case c.End():
            return "call.ended", {}
        case c.Join(device) | c.Leave(device) as e:
            return ("endpoint.joined" if isinstance(e, c.Join) else "endpoint.left",
                    {"device": device})
        case c.Reset():
            return "server.restarted", {}
        case c.Offer(sender, receiver, generation) | c.Answer(sender, receiver,
                                                               generation) as e:
            kind = "signal.offer" if isinstance(e, c.Offer) else "signal.answer"
            return kind, {"from": sender, "to": receiver, "generation": generation}
        case c.GoLive(device):
            return "booth.live", {"device": device}
        case c.Handover(sender, receiver):
            return "booth.handover", {"from": sender, "to": receiver}
        case c.RequestHandover(sender, receiver):
            return "booth.request", {"from": sender, "to": receiver}
        case c.HandoverAnswer(sender, receiver, accept):
            return "booth.accept" if accept else "booth.decline", {"from": sender,
                                                                   "to": receiver}
        case c.GoQuiet(device):
            return "booth.quiet", {"device": device}
        case c.SetSource(device, source):
            return "interpreter.source", {"device": device, "source": source}
    raise TypeError(f"not a call event: {event!r}")


def advance(state: c.Call, head: Entry | None, at_ms: int, kind: str, data: dict[str, Any],
            event: c.Event | None) -> tuple[c.Call, Entry]:
    """One step of a call: the next state (or IllegalEvent, changing nothing) and the
    entry that records it. The caller stores the entry before it keeps the state.

    The kind of an entry that changes the state is the event's, by ``describe``: one
    table, so that a replay (``to_event``) cannot differ from the live state."""
    if event is not None and describe(event)[0] != kind:
        raise ValueError(f"{kind!r} is not the record kind of {event!r}")
    return (state.apply(event) if event is not None else state,
            Entry.make(head, at_ms, kind, data))


def replay(signed: SignedPlan, entries: list[Entry]) -> c.Call:
    """The call state the entries lead to. Entries were legal when recorded."""
    state = c.Call(signed.plan)
    for entry in entries:
        event = to_event(entry)
        if event is not None:
            state = state.apply(event)
    return state


def summary(entries: list[Entry]) -> dict[str, Any]:
    """Start, end and duration as the record shows them (ms; None where not yet)."""
    start = next((e.at for e in entries if e.kind == "call.started"), None)
    end = next((e.at for e in entries if e.kind == "call.ended"), None)
    duration = end - start if start is not None and end is not None else None
    return {"started_ms": start, "ended_ms": end, "duration_ms": duration,
            "events": len(entries)}


# -- export and offline verification ---------------------------------------------------
def export(signed: SignedPlan, entries: list[Entry], signatures: dict[str, str],
           rotations: dict[str, list[dict[str, Any]]] | None = None) -> bytes:
    """The exported record: canonical JSON, so that any changed byte is detected.
    ``rotations``: for a delegation that rotated its key since the plan was signed, its
    key chain (a head signed by its current key verifies through it); only if any."""
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "signed_plan": signed.to_json(),
        "entries": [e.to_json() for e in entries],
        "head_signatures": signatures,
    }
    if rotations:
        doc["rotations"] = rotations
    return canonical(doc) + b"\n"


@dataclass(frozen=True)
class VerifiedRecord:
    signed: SignedPlan
    entries: list[Entry]
    signers: list[str]  # delegation names that signed the head
    head_keys: dict[str, PublicKey]  # delegation id -> the key its head signature verified with


def verify_export(raw: bytes) -> VerifiedRecord:
    """Check an exported record offline. Raise RecordError naming the first fault."""
    import json

    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"the file is not valid JSON ({exc}); it was damaged or "
                          "edited") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise RecordError(f"not a summitline record (expected format {EXPORT_FORMAT!r})")
    if not {"format", "signed_plan", "entries", "head_signatures"} <= set(doc) <= {
            "format", "signed_plan", "entries", "head_signatures", "rotations"}:
        raise RecordError("the record has missing or unknown top-level fields")
    try:
        canonical_bytes = canonical(doc)
    except ValueError as exc:
        raise RecordError(f"the record holds a value JSON cannot carry exactly ({exc})") from None
    if canonical_bytes + b"\n" != raw:
        raise RecordError("the file is not in the canonical form it was exported in: "
                          "its bytes were edited (even whitespace counts)")
    try:
        signed = SignedPlan.from_json(doc.get("signed_plan"))
        signed.verify()
    except PlanError as exc:
        raise RecordError(f"the call plan does not verify: {exc}") from exc
    entries = check_chain(doc.get("entries"))
    keys = _keys(signed, doc.get("rotations"))
    signers = _check_head(signed, entries, doc.get("head_signatures"), keys)
    return VerifiedRecord(signed, entries, signers, {d: k[0] for d, k in keys.items()})


def _keys(signed: SignedPlan, rotations: Any) -> dict[str, list[PublicKey]]:
    """The key each delegation's head signature must verify with: the plan's; or, for a
    delegation whose key chain (``rotations``, absent if none) the export carries, the
    key that chain leads to from the plan's (its key when the record was signed). One
    key, never the ones retired along the way: a retired key signs no record."""
    keys = {d.id: [d.key] for d in signed.plan.delegations}
    if rotations is None:
        return keys
    if not isinstance(rotations, dict) or not rotations or \
            set(rotations) - {d.id for d in signed.plan.delegations}:
        raise RecordError("'rotations' must map delegations of the plan to their key chains")
    for d in signed.plan.delegations:
        chain = rotations.get(d.id)
        if chain is None:
            continue
        try:
            steps = [Rotation.from_json(r) for r in chain] if isinstance(chain, list) else None
            if not steps:
                raise PlanError("an empty or malformed key chain")
            now = follow_rotations(d.id, d.key, steps)  # each step signed by the one before
        except PlanError as exc:
            raise RecordError(f"the key chain of {d.name!r} does not verify: {exc}") from None
        if now == d.key:
            raise RecordError(f"the key chain of {d.name!r} leads nowhere from the plan's key")
        keys[d.id] = [now]
    return keys


def check_chain(raw_entries: Any) -> list[Entry]:
    if not isinstance(raw_entries, list) or not raw_entries:
        raise RecordError("the record has no entries")
    entries: list[Entry] = []
    prev = GENESIS
    for i, obj in enumerate(raw_entries):
        where = f"entry {i}"
        if not isinstance(obj, dict) or set(obj) != {"seq", "at", "kind", "data", "prev", "hash"}:
            raise RecordError(f"{where}: malformed (fields seq, at, kind, data, prev, hash)")
        where = f"entry {i} ({obj['kind']!r})"
        e = Entry(obj["seq"], obj["at"], obj["kind"], obj["data"], obj["prev"], obj["hash"])
        if e.seq != i:
            raise RecordError(f"{where}: has seq {e.seq} where {i} belongs: an entry was "
                              "removed, inserted or moved before it")
        if e.prev != prev:
            raise RecordError(f"{where}: does not follow the entry before it: an entry was "
                              "removed, changed or reordered")
        if digest(e.body()) != e.hash:
            raise RecordError(f"{where}: its content does not match its hash: it was changed")
        entries.append(e)
        prev = e.hash
    return entries


def _check_head(signed: SignedPlan, entries: list[Entry], sigs: Any,
                keys: dict[str, list[PublicKey]]) -> list[str]:
    if not isinstance(sigs, dict):
        raise RecordError("'head_signatures' must map delegation ids to signatures")
    plan = signed.plan
    if set(sigs) - {d.id for d in plan.delegations}:
        raise RecordError("the head carries signatures of delegations the plan does not name")
    head = entries[-1]
    statement = statements.record_head(plan.call, plan.hash, head.seq, head.hash)
    signers = []
    for d in plan.delegations:
        sig = sigs.get(d.id)
        if sig is None:
            raise RecordError(f"the head of the record is not signed by {d.name!r}")
        if not any(k.verifies(statement, sig) for k in keys[d.id]):
            raise RecordError(f"the signature of {d.name!r} on the record's head does not "
                              f"verify: the record was changed after it was signed, or "
                              f"truncated")
        signers.append(d.name)
    return signers

"""The statements summitline signs, one builder per purpose.

A statement is a small JSON object whose ``purpose`` field binds the signature to
one use. Python and the browser must build byte-identical statements, so each is
written down here once (and in docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

Statement = dict[str, Any]


def plan(plan_hash: str) -> Statement:
    return {"purpose": "summitline/plan", "plan": plan_hash}


def link(link_id: str, delegations: list[str]) -> Statement:
    return {"purpose": "summitline/link", "link": link_id, "delegations": sorted(delegations)}


def join(call: str, device: str, nonce: str) -> Statement:
    return {"purpose": "summitline/join", "call": call, "device": device, "nonce": nonce}


def sdp(
    *, call: str, plan_hash: str, sender: str, receiver: str, generation: int, kind: str,
    sdp_hash: str,
) -> Statement:
    """Binds the whole SDP text (its SHA-256), not what one parser extracts from it: two
    parsers can disagree on which fingerprint lines count, and a server could hide its
    own where only the WebRTC stack looks."""
    return {
        "purpose": "summitline/sdp", "call": call, "plan": plan_hash, "from": sender,
        "to": receiver, "generation": generation, "kind": kind, "sdp": sdp_hash,
    }


def record_head(call: str, plan_hash: str, seq: int, head: str) -> Statement:
    return {"purpose": "summitline/record-head", "call": call, "plan": plan_hash, "seq": seq,
            "hash": head}


def control(call: str, action: str, delegation: str, at_ms: int) -> Statement:
    return {"purpose": "summitline/control", "call": call, "action": action,
            "delegation": delegation, "at": at_ms}


def register(name: str, key: str) -> Statement:
    """Proof that whoever registers a delegation holds its private key."""
    return {"purpose": "summitline/register", "name": name, "key": key}


def enrolment(delegation: str, code_hash: str, name: str, role: str) -> Statement:
    """A delegation opens a seat for one device: the device that shows the code."""
    return {"purpose": "summitline/enrolment", "delegation": delegation, "code": code_hash,
            "name": name, "role": role}


def enrol(code: str, key: str) -> Statement:
    """A device takes the seat the code opens, with its key."""
    return {"purpose": "summitline/enrol", "code": code, "key": key}

"""The short authentication string: six digits both principals read to each other.

It is derived from the call id and both DTLS fingerprints of the peer connection.
If anyone sits in the middle of DTLS, the two ends see different fingerprints and so
different digits. Digits (not words) because they read the same in every language.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from summitline.core.plan import CallPlan

SAS_DIGITS = 6


def sas(call: str, fingerprints_a: list[str], fingerprints_b: list[str]) -> str:
    ends = sorted(["|".join(sorted(fingerprints_a)), "|".join(sorted(fingerprints_b))])
    h = hashlib.sha256("\n".join(["summitline/sas", call, *ends]).encode()).digest()
    number = int.from_bytes(h[:8], "big") % 10**SAS_DIGITS
    text = f"{number:0{SAS_DIGITS}d}"
    return f"{text[:3]} {text[3:]}"


def group_code(call: str, plan_hash: str, keys: dict[str, str]) -> str:
    """The code of a briefing, equal on every participant's screen when all of them hold
    the same plan and the same delegation keys: over the call, the plan hash and every
    delegation's id and key (``keys``: id -> unpadded base64url key), sorted by id. The
    host reads it aloud. docs/protocol.md §9.1."""
    lines = [f"{d} {keys[d]}" for d in sorted(keys)]
    h = hashlib.sha256("\n".join(["summitline/group", call, plan_hash, *lines]).encode()).digest()
    number = int.from_bytes(h[:8], "big") % 10**SAS_DIGITS
    text = f"{number:0{SAS_DIGITS}d}"
    return f"{text[:3]} {text[3:]}"


def plan_group_code(plan: CallPlan) -> str:
    return group_code(plan.call, plan.hash, {d.id: d.key.b64u for d in plan.delegations})

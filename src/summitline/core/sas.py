"""The short authentication string: six digits both principals read to each other.

It is derived from the call id and both DTLS fingerprints of the peer connection.
If anyone sits in the middle of DTLS, the two ends see different fingerprints and so
different digits. Digits (not words) because they read the same in every language.
"""

from __future__ import annotations

import hashlib

SAS_DIGITS = 6


def sas(call: str, fingerprints_a: list[str], fingerprints_b: list[str]) -> str:
    ends = sorted(["|".join(sorted(fingerprints_a)), "|".join(sorted(fingerprints_b))])
    h = hashlib.sha256("\n".join(["summitline/sas", call, *ends]).encode()).digest()
    number = int.from_bytes(h[:8], "big") % 10**SAS_DIGITS
    text = f"{number:0{SAS_DIGITS}d}"
    return f"{text[:3]} {text[3:]}"

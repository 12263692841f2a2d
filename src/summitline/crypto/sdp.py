"""Signed SDP: binding an offer or answer, DTLS fingerprints and all, to its sender.

The server could swap the DTLS fingerprint in an offer and sit in the middle of the
DTLS handshake. So every offer and answer carries the sending device's signature over
(call, plan hash, from, to, generation, kind, SHA-256 of the exact SDP text); the
receiver hashes the SDP it got, rebuilds the statement, and verifies it with the device
key from the signed plan before ``setRemoteDescription``.

The whole text is signed, not the fingerprints this module extracts: a server once
hid its own fingerprint in a form only aiortc's parser reads (two spaces) and moved the
genuine ones to a rejected media section, and a signature over extracted fingerprints
still verified. ``fingerprints`` serves the short authentication string only, on an
SDP whose signature has verified.
"""

from __future__ import annotations

import hashlib
import re

from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+) ([0-9A-Fa-f:]+)\s*$", re.MULTILINE)


def fingerprints(sdp: str) -> list[str]:
    """Every DTLS fingerprint line of the SDP, normalised to 'algo HEX:..', sorted, unique."""
    found = {f"{algo.lower()} {value.upper()}" for algo, value in _FINGERPRINT.findall(sdp)}
    return sorted(found)


def _statement(call: str, plan_hash: str, sender: str, receiver: str, generation: int,
               kind: str, sdp: str) -> statements.Statement:
    if not fingerprints(sdp):
        raise SignatureError(f"the {kind} carries no DTLS fingerprint")
    return statements.sdp(call=call, plan_hash=plan_hash, sender=sender, receiver=receiver,
                          generation=generation, kind=kind,
                          sdp_hash=hashlib.sha256(sdp.encode()).hexdigest())


def sign(key: PrivateKey, *, call: str, plan_hash: str, receiver: str, generation: int,
         kind: str, sdp: str) -> str:
    return key.sign(_statement(call, plan_hash, key.fingerprint, receiver, generation, kind,
                               sdp))


def verify(key: PublicKey, signature: str, *, call: str, plan_hash: str, receiver: str,
           generation: int, kind: str, sdp: str) -> None:
    """Raise SignatureError unless ``key`` signed exactly these fingerprints for us."""
    key.verify(_statement(call, plan_hash, key.fingerprint, receiver, generation, kind, sdp),
               signature)

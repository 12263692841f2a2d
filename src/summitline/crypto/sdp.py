"""Signed fingerprints: binding the DTLS fingerprints of an SDP to its sender.

The server could swap the DTLS fingerprint in an offer and sit in the middle of the
DTLS handshake. So every offer and answer carries the sending device's signature over
(call, plan hash, from, to, generation, kind, fingerprints); the receiver extracts the
fingerprints from the SDP it got, rebuilds the statement, and verifies it with the
device key from the signed plan before ``setRemoteDescription``.
"""

from __future__ import annotations

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
    prints = fingerprints(sdp)
    if not prints:
        raise SignatureError(f"the {kind} carries no DTLS fingerprint")
    return statements.sdp(call=call, plan_hash=plan_hash, sender=sender, receiver=receiver,
                          generation=generation, kind=kind, fingerprints=prints)


def sign(key: PrivateKey, *, call: str, plan_hash: str, receiver: str, generation: int,
         kind: str, sdp: str) -> str:
    return key.sign(_statement(call, plan_hash, key.fingerprint, receiver, generation, kind,
                               sdp))


def verify(key: PublicKey, signature: str, *, call: str, plan_hash: str, receiver: str,
           generation: int, kind: str, sdp: str) -> None:
    """Raise SignatureError unless ``key`` signed exactly these fingerprints for us."""
    key.verify(_statement(call, plan_hash, key.fingerprint, receiver, generation, kind, sdp),
               signature)

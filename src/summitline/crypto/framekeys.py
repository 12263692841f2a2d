"""Handing a sender's media key to each receiving device (docs/protocol.md, "Frame keys").

Device keys are ECDSA keys, and in the browser a non-extractable ECDSA key cannot take
part in ECDH (WebCrypto binds a key to one algorithm). So every device makes an ECDH
P-256 key for the call, in memory only, and announces it in a ``frame-key`` message
signed by its device key. A sender has a media key per kind (audio, video); one that
knows a receiver's ECDH key wraps to it the key of each kind the plan lets it receive:
ECDH(sender's ECDH key, receiver's) → HKDF-SHA256 (empty salt; the info binds call,
sender, receiver, kind and key id) → an AES-256-GCM key that encrypts key || salt (AAD:
kind and key id), with a random 12-byte nonce before the ciphertext. The whole message is
signed by the sender's device key; a receiver takes only what a device of the plan
signed, for itself.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from summitline.crypto import statements
from summitline.crypto.encoding import b64u, unb64u
from summitline.crypto.frames import SALT_BYTES, FrameKey
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

_CURVE = ec.SECP256R1()
_NONCE = 12
KINDS = ("audio", "video")  # a media key per kind, in this order in a message


def _info(call: str, sender: str, receiver: str, kind: str, key_id: int) -> bytes:
    return f"summitline/frame-key|{call}|{sender}|{receiver}|{kind}|{key_id}".encode()


def _aad(kind: str, key_id: int) -> bytes:
    return kind.encode() + struct.pack(">I", key_id)


class EcdhKey:
    """A device's ECDH key for one call. Never stored, never sent but its public half."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = key or ec.generate_private_key(_CURVE)
        self.public = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    @classmethod
    def from_secret(cls, secret: bytes) -> EcdhKey:
        """A fixed key, for the shared test vectors only."""
        return cls(ec.derive_private_key(int.from_bytes(secret, "big"), _CURVE))

    def wrapping_key(self, peer: bytes, info: bytes) -> bytes:
        try:
            theirs = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, peer)
        except ValueError as exc:
            raise SignatureError(f"not a P-256 ECDH key: {exc}") from exc
        shared = self._key.exchange(ec.ECDH(), theirs)
        return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)

    def __repr__(self) -> str:
        return "EcdhKey()"


def wrap(ecdh: EcdhKey, peer: bytes, kind: str, key: FrameKey, *, call: str, sender: str,
         receiver: str, nonce: bytes | None = None) -> bytes:
    wrapping = ecdh.wrapping_key(peer, _info(call, sender, receiver, kind, key.key_id))
    nonce = nonce or os.urandom(_NONCE)
    return nonce + AESGCM(wrapping).encrypt(nonce, key.key + key.salt,
                                            _aad(kind, key.key_id))


def unwrap(ecdh: EcdhKey, peer: bytes, kind: str, key_id: int, wrapped: bytes, *, call: str,
           sender: str, receiver: str) -> FrameKey:
    wrapping = ecdh.wrapping_key(peer, _info(call, sender, receiver, kind, key_id))
    try:
        plain = AESGCM(wrapping).decrypt(wrapped[:_NONCE], wrapped[_NONCE:],
                                         _aad(kind, key_id))
    except (InvalidTag, ValueError):
        raise SignatureError("the wrapped frame key does not open") from None
    try:
        return FrameKey(key_id, plain[:-SALT_BYTES], plain[-SALT_BYTES:])
    except ValueError as exc:
        raise SignatureError(f"the wrapped frame key is malformed: {exc}") from None


def message(device: PrivateKey, ecdh: EcdhKey, *, call: str, plan_hash: str,
            receiver: str, peer_ecdh: bytes | None, keys: dict[str, FrameKey],
            nonces: dict[str, bytes] | None = None) -> dict[str, Any]:
    """The ``frame-key`` message to ``receiver``: our ECDH key, and our media key of each
    kind in ``keys`` (those the plan lets it receive) wrapped to ``peer_ecdh`` when we
    know it."""
    wrapped: list[dict[str, Any]] = []
    if peer_ecdh is not None:
        for kind in KINDS:
            if kind in keys:
                blob = wrap(ecdh, peer_ecdh, kind, keys[kind], call=call,
                            sender=device.fingerprint, receiver=receiver,
                            nonce=(nonces or {}).get(kind))
                wrapped.append({"kind": kind, "key_id": keys[kind].key_id,
                                "wrapped": b64u(blob)})
    own = b64u(ecdh.public)
    for_ecdh = b64u(peer_ecdh) if wrapped and peer_ecdh else None
    signature = device.sign(statements.frame_key(
        call=call, plan_hash=plan_hash, sender=device.fingerprint, receiver=receiver,
        ecdh=own, for_ecdh=for_ecdh, keys=wrapped))
    return {"type": "frame-key", "to": receiver, "ecdh": own, "for": for_ecdh,
            "keys": wrapped, "signature": signature}


@dataclass(frozen=True)
class Received:
    ecdh: bytes  # the sender's ECDH key for this call
    keys: dict[str, FrameKey]  # its media key per kind that the message carried for us


def receive(msg: dict[str, Any], sender: PublicKey, ecdh: EcdhKey, *, call: str,
            plan_hash: str, me: str) -> Received:
    """Check a relayed ``frame-key`` from ``sender`` (its device key from the plan) and
    take what it holds. SignatureError if it is not signed by that device for us."""
    sender.verify(statements.frame_key(
        call=call, plan_hash=plan_hash, sender=sender.fingerprint, receiver=me,
        ecdh=msg.get("ecdh"), for_ecdh=msg.get("for"), keys=msg.get("keys")),
        str(msg.get("signature", "")))  # as sent, any types
    try:
        peer = unb64u(msg["ecdh"])
    except (KeyError, ValueError) as exc:
        raise SignatureError("frame-key carries no ECDH key") from exc
    entries = msg.get("keys")
    if not isinstance(entries, list):
        raise SignatureError("frame-key: keys is not a list")
    if not entries or msg.get("for") != b64u(ecdh.public):
        return Received(peer, {})  # none, or wrapped to an ECDH key of ours from before
    keys: dict[str, FrameKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise SignatureError("frame-key: a key is not an object")
        kind, key_id, wrapped = entry.get("kind"), entry.get("key_id"), entry.get("wrapped")
        if kind not in KINDS or kind in keys or not isinstance(key_id, int) or \
                isinstance(key_id, bool) or not isinstance(wrapped, str):
            raise SignatureError("frame-key: each key is a kind (once), a key_id and wrapped")
        try:
            blob = unb64u(wrapped)
        except ValueError as exc:
            raise SignatureError("frame-key: wrapped is not base64url") from exc
        keys[kind] = unwrap(ecdh, peer, kind, key_id, blob, call=call,
                            sender=sender.fingerprint, receiver=me)
    return Received(peer, keys)

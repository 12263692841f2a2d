"""ECDSA P-256 keys: delegation keys and device keys.

Public keys travel as the raw uncompressed point (65 bytes, base64url), which is
what WebCrypto's ``exportKey("raw")`` yields. Signatures are IEEE P1363 (r || s,
64 bytes), which is what WebCrypto's ``sign`` yields. Every signature is over a
*statement*: a JSON object with a ``purpose`` naming what is signed, so that a
signature made for one purpose can never be replayed for another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from summitline.crypto.encoding import b64u, canonical, unb64u

_CURVE = ec.SECP256R1()
_COORD = 32  # bytes per coordinate and per signature half on P-256
# The order of P-256's base point. (r, s) and (r, n - s) both verify as ECDSA
# signatures of the same message; only the low one (s <= n/2) is accepted, so that
# every signed statement has exactly one valid signature per signing (no "twins").
CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HALF_ORDER = CURVE_ORDER // 2


class SignatureError(Exception):
    """A signature or key did not verify. The message says which and why."""


def fingerprint_of(raw_public: bytes) -> str:
    """A key's identity: hex SHA-256 of its raw public point."""
    return hashlib.sha256(raw_public).hexdigest()


def short_fingerprint(fingerprint: str) -> str:
    """The part of a fingerprint people read aloud to each other: 5 groups of 4."""
    head = fingerprint[:20].upper()
    return "-".join(head[i : i + 4] for i in range(0, 20, 4))


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @classmethod
    def from_b64u(cls, text: str) -> PublicKey:
        try:
            raw = unb64u(text)
            ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, raw)
        except ValueError as exc:
            raise SignatureError(f"not a P-256 public key: {exc}") from exc
        if len(raw) != 1 + 2 * _COORD or raw[0] != 4:
            raise SignatureError("public key must be an uncompressed P-256 point")
        return cls(raw)

    @property
    def b64u(self) -> str:
        return b64u(self.raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.raw)

    def verify(self, statement: dict[str, Any], signature: str) -> None:
        """Raise SignatureError unless ``signature`` signs ``statement`` with this key."""
        try:
            sig = unb64u(signature)
        except ValueError as exc:
            raise SignatureError("signature is not base64url") from exc
        if len(sig) != 2 * _COORD:
            raise SignatureError("signature must be 64 bytes (P1363 r||s)")
        r, s = int.from_bytes(sig[:_COORD], "big"), int.from_bytes(sig[_COORD:], "big")
        if s > HALF_ORDER:
            raise SignatureError("signature is not low-S (s must be at most n/2)")
        der = encode_dss_signature(r, s)
        key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, self.raw)
        try:
            key.verify(der, canonical(statement), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise SignatureError(
                f"signature of {statement.get('purpose', 'statement')} does not verify "
                f"with key {short_fingerprint(self.fingerprint)}"
            ) from exc

    def verifies(self, statement: dict[str, Any], signature: object) -> bool:
        """Whether ``signature`` signs ``statement`` with this key (False for anything
        that is not a signature at all, e.g. a JSON value of another type)."""
        if not isinstance(signature, str):
            return False
        try:
            self.verify(statement, signature)
        except SignatureError:
            return False
        return True


class PrivateKey:
    """A private P-256 key. Never serialised except by the keystore."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public = PublicKey(raw)

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(ec.generate_private_key(_CURVE))

    @classmethod
    def from_pem(cls, pem: bytes) -> PrivateKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != _CURVE.name:
            raise SignatureError("key file does not hold a P-256 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def sign(self, statement: dict[str, Any]) -> str:
        der = self._key.sign(canonical(statement), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if s > HALF_ORDER:
            s = CURVE_ORDER - s
        return b64u(r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big"))

    def __repr__(self) -> str:  # never show key material, even in a traceback
        return f"PrivateKey({short_fingerprint(self.fingerprint)})"

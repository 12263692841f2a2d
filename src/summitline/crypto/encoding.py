"""The byte encodings every signature in summitline is made over.

Signed objects are JSON canonicalised by RFC 8785 (JCS), so that the browser
(WebCrypto + a JCS serialiser) and Python produce the same bytes. Binary values
travel as unpadded base64url.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import rfc8785


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected a base64url string")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError("not valid base64url") from exc
    # One spelling per value: unused trailing bits set would give a second encoding of
    # the same key or signature, and a signed document that can change without notice.
    if b64u(data) != text:
        raise ValueError("not canonical base64url")
    return data


def canonical(value: Any) -> bytes:
    """The RFC 8785 canonical JSON bytes of ``value``."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"cannot canonicalise: {exc}") from exc


def digest(value: Any) -> str:
    """Hex SHA-256 of the canonical bytes of ``value``."""
    return hashlib.sha256(canonical(value)).hexdigest()

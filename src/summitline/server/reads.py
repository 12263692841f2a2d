"""Closed reads: a GET answers only a signed request by a delegation or device the
object concerns.

The request carries three headers (docs/protocol.md §4.3):

- ``Summitline-Signer``: the signer's fingerprint (a delegation id or a device id);
- ``Summitline-At``: when it was made, Unix milliseconds;
- ``Summitline-Signature``: its signature over ``statements.read(method, path, signer,
  at)``, where ``path`` is the request target exactly as sent (path and ``?query``).

No signature, a malformed or unknown one, one that does not verify or that is stale: 401.
A valid signature by a signer the object does not concern: 403. A read is not
single-use (a GET changes nothing); within its freshness window it can be sent again,
for the same target only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import HTTPException, Request

from summitline.crypto import statements
from summitline.crypto.keys import PublicKey, SignatureError
from summitline.server.hub import Hub

# How far a read's ``at`` may be from the server's clock: clock skew and transit. A read
# changes nothing, so the window only bounds how long a captured one stays usable.
READ_FRESHNESS_MS = 30_000

SIGNER = "summitline-signer"
AT = "summitline-at"
SIGNATURE = "summitline-signature"

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_AT = re.compile(r"^[0-9]{1,16}$")
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{80,100}$")


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, detail=message,
                         headers={"WWW-Authenticate": 'Summitline-Signature realm="reads"'})


def target(request: Request) -> str:
    """The request target as the client sent it: raw path, then ``?query`` if any."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def signer_key(h: Hub, signer: str, known: Mapping[str, PublicKey]) -> PublicKey | None:
    """The key of a signer: one the object names, a registered delegation, or an
    enrolled device."""
    if signer in known:
        return known[signer]
    row = await h.store.delegation(signer)
    if row is None:
        row = await h.store.enrolled_device(signer)
    if row is None or not row.get("key"):
        return None
    try:
        return PublicKey.from_b64u(row["key"])
    except SignatureError:
        return None


async def signed_read(request: Request, concerned: Mapping[str, PublicKey | None]) -> str:
    """The fingerprint of the verified signer of this read, if the object concerns it
    (``concerned``: fingerprint -> its key, or None to look the key up); else 401/403."""
    h: Hub = request.app.state.hub
    signer = request.headers.get(SIGNER, "")
    at_text = request.headers.get(AT, "")
    signature = request.headers.get(SIGNATURE, "")
    if not signer and not at_text and not signature:
        raise _unauthorised("this read needs a signed request (Summitline-Signer, "
                            "Summitline-At, Summitline-Signature)")
    if not (_FINGERPRINT.match(signer) and _AT.match(at_text) and _SIGNATURE.match(signature)):
        raise _unauthorised("the signed-request headers are malformed")
    at = int(at_text)
    if abs(h.clock() - at) > READ_FRESHNESS_MS:
        raise _unauthorised("the signed read is stale (or the clocks disagree)")
    known = {fp: key for fp, key in concerned.items() if key is not None}
    key = await signer_key(h, signer, known)
    # (a delegation's key is its current one: after a rotation its fingerprint is no
    # longer the id, which stays the fingerprint of the first key)
    if key is None:
        raise _unauthorised("the signer of this read is not known here")
    try:
        key.verify(statements.read(request.method, target(request), signer, at), signature)
    except SignatureError:
        raise _unauthorised("the signature on this read does not verify") from None
    if await h.store.revoked([signer]):
        raise HTTPException(403, detail="this device was revoked by its delegation")
    if signer not in concerned:
        raise HTTPException(403, detail="this object does not concern the signer")
    return signer

"""Closed reads: a GET answers only a signed request by a delegation or device the
object concerns.

The request carries three headers (docs/protocol.md §4.3):

- ``Summitline-Signer``: the signer's fingerprint (a delegation id or a device id);
- ``Summitline-At``: when it was made, Unix milliseconds;
- ``Summitline-Signature``: its signature over ``statements.read(server, method, path,
  signer, at)``, where ``path`` is the request target exactly as sent (path and
  ``?query``) and ``server`` the origin the client addressed: one of the server's public
  origins (``--public-origin``), or, if none is configured, ``http://`` or ``https://``
  and the request's ``Host``. A read one server received is no good at another.

No signature, a malformed or unknown one, one that does not verify or that is stale: 401.
A valid signature by a signer the object does not concern: 403. The signature is checked
before the object is looked up (``reader``), against the key of a registered delegation
or enrolled device; so a read that is unsigned, malformed, stale or badly signed is 401
whether the object exists or not; and a verified signer gets the same 403, word for word,
for a missing object as for one that does not concern it (``not_found``, ``NOT_YOURS``):
anyone may register a delegation, so a 404 would tell any stranger which ids exist. A
signer not known here (a device enrolled elsewhere, known only by the
plans naming it) gets 401 for a missing object, and is checked against the key the
object's plan gives it once the object is found. A read is not
single-use (a GET changes nothing); within its freshness window it can be sent again,
for the same target only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request

from summitline.crypto import statements
from summitline.crypto.keys import PublicKey, SignatureError
from summitline.server.hub import Hub

# How far a read's ``at`` may be from the server's clock: clock skew and transit. A read
# changes nothing, so the window only bounds how long a captured one stays usable.
READ_FRESHNESS_MS = 30_000
# A read dated ahead of the server's clock: clock skew only (the same bound as a signed
# control request). Without it a read dated 30 s ahead would stay usable for a minute.
READ_AHEAD_MS = 5_000

SIGNER = "summitline-signer"
AT = "summitline-at"
SIGNATURE = "summitline-signature"

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_AT = re.compile(r"^(0|[1-9][0-9]{0,15})$")  # decimal, no leading zero: one spelling
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{80,100}$")


# One answer for a signature that does not verify and for a signer not known here: a
# signer known only by the plans naming it (a device enrolled elsewhere) is checked once
# the object is found, and the two answers must not tell whether it was.
UNVERIFIED = "the signature on this read does not verify with a key known here"

# One answer for an object that does not exist and for one that does not concern the
# verified signer: which calls, plans and links exist is itself a secret.
NOT_YOURS = "no such object here, or it does not concern the signer"


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, detail=message,
                         headers={"WWW-Authenticate": 'Summitline-Signature realm="reads"'})


def origins(request: Request) -> tuple[str, ...]:
    """The origins a read sent to this server may name: the configured public ones, or
    else the host the request names, by either scheme (docs/protocol.md §4.3)."""
    configured: tuple[str, ...] = getattr(request.app.state, "public_origins", ())
    if configured:
        return configured
    host = request.headers.get("host", "").lower()
    return (f"http://{host}", f"https://{host}") if host else ()


def target(request: Request) -> str:
    """The request target as the client sent it: raw path, then ``?query`` if any."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def signer_key(h: Hub, signer: str) -> tuple[PublicKey | None, bool]:
    """The key of a signer known here: a registered delegation (its current key) or an
    enrolled device; and whether it is a delegation. (A device the object's plan names
    is found in ``signed_read``.)"""
    row = await h.store.delegation(signer)
    is_delegation = row is not None
    if row is None:
        row = await h.store.enrolled_device(signer)
    if row is None or not row.get("key"):
        return None, False
    try:
        return PublicKey.from_b64u(row["key"]), is_delegation
    except SignatureError:
        return None, False


@dataclass(frozen=True)
class Reader:
    """A read's signer, checked as far as it can be before the object is looked up:
    ``key`` is set if the signer is a registered delegation or an enrolled device (its
    signature then verified); None if the signer is not known here (it may still be a
    device the object's plan names)."""

    signer: str
    at: int
    signature: str
    key: PublicKey | None
    delegation: bool = False  # a registered delegation (which no revocation concerns)


async def reader(request: Request) -> Reader:
    """Authenticate a read before anything is looked up, so that an unsigned or badly
    signed read is 401 whether or not the object exists. Kept on the request."""
    done: Reader | None = getattr(request.state, "reader", None)
    if done is not None:
        return done
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
    if h.clock() - at > READ_FRESHNESS_MS or at - h.clock() > READ_AHEAD_MS:
        raise _unauthorised("the signed read is stale (or the clocks disagree)")
    # (a delegation's key is its current one: after a rotation its fingerprint is no
    # longer the id, which stays the fingerprint of the first key)
    key, is_delegation = await signer_key(h, signer)
    if key is not None:
        _verify(request, key, signer, at, signature)
    request.state.reader = done = Reader(signer, at, signature, key, is_delegation)
    return done


def _verify(request: Request, key: PublicKey, signer: str, at: int, signature: str) -> None:
    path = target(request)
    if not any(key.verifies(statements.read(server, request.method, path, signer, at),
                            signature) for server in origins(request)):
        raise _unauthorised(UNVERIFIED)


async def not_found(request: Request) -> HTTPException:
    """What a read of a missing object answers: 403 ``NOT_YOURS`` to a signer known here
    whose signature verified (as for a real object that does not concern it); 401 to any
    other (the same as for a real object)."""
    r = await reader(request)
    if r.key is None:
        return _unauthorised(UNVERIFIED)
    return HTTPException(403, detail=NOT_YOURS)


async def signed_read(request: Request, concerned: Mapping[str, PublicKey | None],
                      owners: Mapping[str, str] | None = None) -> str:
    """The fingerprint of the verified signer of this read, if the object concerns it
    (``concerned``: fingerprint -> its key, or None to look the key up); else 401/403.
    ``owners``: the delegation each device stands under in the object's plan."""
    h: Hub = request.app.state.hub
    r = await reader(request)
    if r.key is None:
        # not registered here: a device the object's plan names, with the plan's key
        key = concerned.get(r.signer)
        if key is None:
            raise _unauthorised(UNVERIFIED)
        _verify(request, key, r.signer, r.at, r.signature)
    # A device enrolled here is revoked by the delegation that enrolled it; one known
    # only by plans, by the delegation it stands under in the object's plan (or, with no
    # one plan, by every delegation the object concerns): a delegation that named
    # another's device in a plan of its own cannot cut it off from the other's calls.
    by = set() if r.delegation else {
        row["delegation"] for row in await h.store.revocations([r.signer])}
    seat = await h.store.enrolled_device(r.signer) if by else None
    stands = set(concerned) - {r.signer}
    if seat is not None:
        revoked = seat["delegation"] in by
    elif owners is not None and r.signer in owners:
        revoked = owners[r.signer] in by
    else:
        revoked = bool(by) and bool(stands) and stands <= by
    if revoked:
        raise HTTPException(403, detail="this device was revoked by its delegation")
    if r.signer not in concerned:
        raise HTTPException(403, detail=NOT_YOURS)
    return r.signer

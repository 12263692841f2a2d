"""The statements summitline signs, one builder per purpose.

A statement is a small JSON object whose ``purpose`` field binds the signature to
one use. Python and the browser must build byte-identical statements, so each is
written down here once (and in docs/protocol.md).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from summitline.crypto.encoding import b64u

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


def readout(call: str, delegation: str, action: str, at_ms: int,
            text_hash: str | None = None) -> Statement:
    """A delegation's readout of a call: ``draft`` or ``publish`` (binding the SHA-256 of
    the exact text, base64url) or ``read`` its own private draft (no text)."""
    statement: Statement = {"purpose": "summitline/readout", "call": call,
                            "delegation": delegation, "action": action, "at": at_ms}
    if text_hash is not None:
        statement["text"] = text_hash
    return statement


def text_hash(text: str) -> str:
    """What a readout statement binds of its text: SHA-256 of the UTF-8 bytes, base64url.
    (Raises UnicodeEncodeError on a lone surrogate, which no browser would send.)"""
    return b64u(hashlib.sha256(text.encode("utf-8")).digest())


def photo(call: str, delegation: str, action: str, at_ms: int,
          photo_id: str | None = None) -> Statement:
    """A delegation's photo of the press programme: ``capture`` one (no photo yet), or
    ``publish`` the one whose SHA-256 (hex) is ``photo_id``."""
    statement: Statement = {"purpose": "summitline/photo", "call": call,
                            "delegation": delegation, "action": action, "at": at_ms}
    if photo_id is not None:
        statement["photo"] = photo_id
    return statement


def page(call: str, principal: str, page_id: str, at_ms: int) -> Statement:
    """A principal calls its aides. Only its own delegation's aides receive it."""
    return {"purpose": "summitline/page", "call": call, "from": principal, "page": page_id,
            "at": at_ms}


def ack(call: str, aide: str, page_id: str, at_ms: int) -> Statement:
    """An aide answers a page: it is coming."""
    return {"purpose": "summitline/ack", "call": call, "from": aide, "page": page_id,
            "at": at_ms}


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


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin(url: str) -> str:
    """The origin of an absolute ``url`` as a browser serialises it (``URL.origin``):
    scheme and host in lowercase, ``:port`` only if not the scheme's default, an IPv6
    host in brackets; no path, query or user. What a signed read names as its server."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"a bad port in {url!r}") from None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme]
                                   else "")


def read(server: str, method: str, path: str, signer: str, at_ms: int) -> Statement:
    """A signed read: ``signer`` (a delegation or device fingerprint) asks ``server`` (the
    origin it addresses, ``scheme://host[:port]`` as a browser serialises it) for ``path``
    (the request target as sent: path and ``?query``, percent-encoded) at ``at_ms``."""
    return {"purpose": "summitline/read", "server": server, "method": method, "path": path,
            "signer": signer, "at": at_ms}


def booth(call: str, plan_hash: str, channel: str, action: str, sender: str, seq: int,
          at_ms: int, receiver: str | None = None) -> Statement:
    """An interpreter acts in its booth: ``live`` (signed by the one going live),
    ``handover`` to ``receiver`` (by the live one) or ``quiet`` (by the live one).
    ``seq`` rises strictly per call and channel, so that an old action replayed is stale."""
    statement: Statement = {"purpose": "summitline/booth", "call": call, "plan": plan_hash,
                            "channel": channel, "action": action, "from": sender,
                            "seq": seq, "at": at_ms}
    if receiver is not None:
        statement["to"] = receiver
    return statement


def device(delegation: str, device: str, key: str, role: str, name: str) -> Statement:
    """A delegation vouches for one of its own devices: this key (whose fingerprint is
    ``device``) is its ``name`` in ``role``. Signed after enrolment, once the officer has
    compared the device's short fingerprint; a plan carries it for each participant."""
    return {"purpose": "summitline/device", "delegation": delegation, "device": device,
            "key": key, "role": role, "name": name}


def revocation(delegation: str, device: str, at_ms: int) -> Statement:
    """A delegation withdraws its certificate of one of its devices (lost, stolen, or
    its holder replaced): no plan may name the device from then on."""
    return {"purpose": "summitline/revocation", "delegation": delegation, "device": device,
            "at": at_ms}


def rotation(delegation: str, previous: str, key: str, at_ms: int) -> Statement:
    """A delegation replaces its key ``previous`` with ``key`` (both base64url as sent):
    signed by ``previous`` (the key being retired) and, as proof of possession, by
    ``key``. The delegation's id stays the fingerprint of its first key."""
    return {"purpose": "summitline/rotation", "delegation": delegation, "previous": previous,
            "key": key, "at": at_ms}


def frame_key(*, call: str, plan_hash: str, sender: str, receiver: str, ecdh: Any,
              for_ecdh: Any, keys: Any) -> Statement:
    """A device announces its call-long ECDH key ``ecdh`` to ``receiver`` and, once it
    knows the receiver's (``for_ecdh``), hands it its media key of each kind the plan lets
    the receiver have, wrapped to it: ``keys``, a list of ``{kind, key_id, wrapped}``
    (docs/protocol.md, "Frame keys"). The values are taken as received (``Any``): a
    receiver rebuilds the statement from the message before it trusts any field."""
    return {"purpose": "summitline/frame-key", "call": call, "plan": plan_hash,
            "from": sender, "to": receiver, "ecdh": ecdh, "for": for_ecdh, "keys": keys}

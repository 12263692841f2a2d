"""Signed reads from Python: the headers that let a delegation or device read what
concerns it (docs/protocol.md §4.3; the server's side is ``server/reads.py``)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.crypto.statements import origin


def read_headers(key: PrivateKey, method: str, target: str, server: str,
                 now_ms: int | None = None, signer: str | None = None) -> dict[str, str]:
    """The three headers of a read of ``target`` (path and ``?query``, as sent) from
    ``server`` (its origin: ``statements.origin`` of its URL). ``signer``: the id ``key``
    signs for, if not its fingerprint (a delegation whose key rotated keeps the
    fingerprint of its first key as its id)."""
    at = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    who = signer or key.fingerprint
    return {"Summitline-Signer": who, "Summitline-At": str(at),
            "Summitline-Signature": key.sign(statements.read(server, method, target, who,
                                                             at))}


async def signed_get(http: httpx.AsyncClient, key: PrivateKey, path: str,
                     signer: str | None = None, **kwargs: Any) -> httpx.Response:
    """GET ``path`` (relative to the client's base URL) signed by ``key`` (for
    ``signer``, by default the key's fingerprint), for the server the client addresses."""
    request = http.build_request("GET", path, **kwargs)
    request.headers.update(read_headers(key, "GET", request.url.raw_path.decode("ascii"),
                                        origin(str(request.url)), signer=signer))
    return await http.send(request)

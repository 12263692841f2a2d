"""Signed reads from Python: the headers that let a delegation or device read what
concerns it (docs/protocol.md §4.3; the server's side is ``server/reads.py``)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey


def read_headers(key: PrivateKey, method: str, target: str,
                 now_ms: int | None = None) -> dict[str, str]:
    """The three headers of a read of ``target`` (path and ``?query``, as sent)."""
    at = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return {"Summitline-Signer": key.fingerprint, "Summitline-At": str(at),
            "Summitline-Signature": key.sign(statements.read(method, target, key.fingerprint,
                                                             at))}


async def signed_get(http: httpx.AsyncClient, key: PrivateKey, path: str,
                     **kwargs: Any) -> httpx.Response:
    """GET ``path`` (relative to the client's base URL) signed by ``key``."""
    request = http.build_request("GET", path, **kwargs)
    request.headers.update(read_headers(key, "GET", request.url.raw_path.decode("ascii")))
    return await http.send(request)

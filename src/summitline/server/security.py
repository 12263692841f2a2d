"""What the server does for its own safety, whatever the endpoints check.

- Security headers on every HTTP response (CSP, no-sniff, no-referrer, frame denial).
- A WebSocket origin check: a browser page from another origin cannot open signaling
  (non-browser clients send no Origin and are judged by their signatures instead). The
  delegations' consoles (``summitline console``) are the other origins let in, for
  signaling and, by CORS, for the REST API.
- Limits on concurrent signaling connections per remote address and per call.
- The server operator's token (``operator.token`` in the data directory, 0600), the one
  credential that reads the server's incidents.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The web client is same-origin ES modules and media from the camera; nothing else.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(self), geolocation=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")

# The origins of a console on its default address (``summitline console``), admitted
# unless the operator names others with --allow-origin.
DEFAULT_CONSOLE_ORIGINS = ("http://127.0.0.1:8760", "http://localhost:8760")
# What a console's page may send to the REST API across origins. No credentials: the API
# uses no cookies (requests are signed), so a listed origin gets nothing ambient.
CORS_METHODS = ("GET", "POST", "PUT", "DELETE")
CORS_MAX_AGE_S = 600  # how long a browser may reuse a preflight answer

# One office behind one address runs a handful of devices and consoles; 32 concurrent
# signaling connections is ample, and stops one address from exhausting the server.
MAX_CONNECTIONS_PER_ADDRESS = 32
# Connections naming one call, authenticated or not: a plan lists at most 64 devices,
# and each may hold a second connection while the server has not yet seen its first one
# drop (a silent drop is noticed within about 40 s), so that a full briefing can still
# reconnect (attacker review of issue 13, d8).
MAX_CONNECTIONS_PER_CALL = 128


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS,
                                      *([HSTS] if tls else [])]
            await send(message)

        await self.app(scope, receive, with_headers)


def cors(app: ASGIApp, origins: Iterable[str]) -> ASGIApp:
    """Lets pages of ``origins`` (the consoles) call the REST API: their requests, preflights
    included, get the CORS headers; others get none, so their pages cannot read a reply."""
    return CORSMiddleware(app, allow_origins=list(origins), allow_methods=CORS_METHODS,
                          allow_headers=["*"], allow_credentials=False,
                          max_age=CORS_MAX_AGE_S)


def origin_allowed(origin: str | None, host: str | None, extra: Iterable[str] = ()) -> bool:
    """Same origin as the Host the client reached, or one listed; no Origin: not a browser."""
    if origin is None:
        return True
    if origin in extra:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc == host and parts.scheme in ("http", "https")


@dataclass
class ConnectionLimits:
    per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    per_call: int = MAX_CONNECTIONS_PER_CALL
    addresses: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)

    def open(self, address: str) -> bool:
        if self.addresses[address] >= self.per_address:
            return False
        self.addresses[address] += 1
        return True

    def close(self, address: str) -> None:
        self.addresses[address] -= 1
        if self.addresses[address] <= 0:
            del self.addresses[address]

    def enter_call(self, call: str) -> bool:
        if self.calls[call] >= self.per_call:
            return False
        self.calls[call] += 1
        return True

    def leave_call(self, call: str) -> None:
        self.calls[call] -= 1
        if self.calls[call] <= 0:
            del self.calls[call]


OPERATOR_TOKEN_FILE = "operator.token"


def operator_token(data_dir: Path) -> str:
    """The server operator's bearer token: read from the data directory, or made there
    (mode 0600, readable by whoever runs the server and no one else) at first start."""
    path = data_dir / OPERATOR_TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        token = secrets.token_urlsafe(32)
        out.write(token + "\n")
    return token


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer TOKEN`` names ``token`` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())

"""The delegation's own console: the web client served from the installed package on the
delegation's machine (``summitline console --server URL``).

Keys are made and kept in IndexedDB under the console's origin (127.0.0.1 by default),
which the shared server cannot script: whatever the server serves on its own origin, a
page there reads no key of this one. The console's Content-Security-Policy lets its
pages run only its own scripts and connect only to itself and the one shared server it
was given; the pages learn that server from ``/config.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitline.server.security import HEADERS as SERVER_HEADERS

if TYPE_CHECKING:
    import uvicorn

WEB = Path(__file__).resolve().parent / "web"  # the web client, from the installed package
DEFAULT_PORT = 8760
CONFIG_PATH = "/config.json"


class BadServerUrl(ValueError):
    """A --server value that is not the origin of a shared server."""


_HOST = re.compile(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+")


def server_origin(url: str) -> str:
    """The origin (scheme://host[:port]) of the shared server at ``url``: http or https,
    a host, and nothing after it but an optional "/"."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # raises for a port that is not a number or out of range
    except ValueError as exc:
        raise BadServerUrl(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise BadServerUrl(f"{url!r}: give the server as http://HOST:PORT or "
                           "https://HOST:PORT")
    if not parts.hostname:
        raise BadServerUrl(f"{url!r} names no host")
    if parts.username or parts.password:
        raise BadServerUrl(f"{url!r}: no user name or password in the server URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadServerUrl(f"{url!r}: only the server's origin, without a path "
                           f"(e.g. {parts.scheme}://{parts.netloc})")
    # Only what a host name or an IP literal is made of: the origin goes into the CSP and
    # /config.json, where "a;connect-src *" would open the console to every origin.
    if not _HOST.fullmatch(parts.hostname):
        raise BadServerUrl(f"{url!r}: the host may hold only letters, digits, '.', '-' "
                           "(or an IPv6 address in [brackets])")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{'' if port is None else f':{port}'}"


def websocket_origin(origin: str) -> str:
    return "ws" + origin.removeprefix("http")  # http -> ws, https -> wss


def csp(server: str) -> str:
    """Own scripts and styles only; network to itself and ``server`` only (HTTP for the
    API and the press room's photos, WebSocket for signaling)."""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' data: blob: {server}; media-src 'self' blob: mediastream:; "
            f"connect-src 'self' {server} {websocket_origin(server)}; object-src 'none'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class ConsoleHeaders:
    """The server's security headers, with the console's CSP in place of the server's."""

    def __init__(self, app: ASGIApp, server: str) -> None:
        self.app = app
        self.headers = [(b"content-security-policy", csp(server).encode()),
                        *((k, v) for k, v in SERVER_HEADERS
                          if k != b"content-security-policy"),
                        (b"cache-control", b"no-store")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)


# The names a browser on this machine reaches the console by. A page of another name
# (a DNS-rebinding page whose name resolves here) gets 400, not the console's scripts
# and configuration under its own origin.
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def hosts_for(host: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The Host names the console answers: this machine's, the address it listens on
    unless a wildcard, and ``extra`` (``--allowed-host``)."""
    names = [*LOCAL_NAMES, *extra]
    if host not in ("0.0.0.0", "::", ""):
        names.append(f"[{host}]" if ":" in host else host)
    return sorted(set(names))


def create_console_app(server: str, hosts: list[str] | None = None) -> Starlette:
    """The console for the shared server at origin ``server`` (see ``server_origin``),
    answering only requests whose Host is one of ``hosts`` (default: this machine's)."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    config = json.dumps({"server": server}).encode()

    async def config_json(request: Request) -> Response:
        return Response(config, media_type="application/json")

    app = Starlette(routes=[Route(CONFIG_PATH, config_json),
                            Mount("/", StaticFiles(directory=WEB, html=True))])
    app.add_middleware(ConsoleHeaders, server=server)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts or list(LOCAL_NAMES))
    return app


def config(server: str, host: str, port: int, log_level: str = "info",
           allowed_hosts: tuple[str, ...] = ()) -> uvicorn.Config:
    import uvicorn  # here: "summitline --help" need not load the web server

    return uvicorn.Config(create_console_app(server, hosts_for(host, allowed_hosts)),
                          host=host, port=port, log_level=log_level, lifespan="off",
                          server_header=False)


@contextlib.asynccontextmanager
async def running(server: str, host: str = "127.0.0.1", port: int = 0,
                  log_level: str = "warning",
                  sockets: list[socket.socket] | None = None) -> AsyncIterator[str]:
    """A console for ``server`` in this event loop (on ``sockets`` if given, already
    bound); yields its base URL."""
    from summitline.server.run import serving

    async with serving(config(server_origin(server), host, port, log_level),
                       sockets) as url:
        yield url

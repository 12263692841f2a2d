"""Running the server: in the foreground (``summitline serve``) or as a task (demo, tests).

Stopping: the server stops accepting, says goodbye to every signaling WebSocket with
1001 (going away) and gives the clients ``GOODBYE_S`` to answer, lets HTTP requests
finish for ``SHUTDOWN_GRACE_S``, then closes the hub and the store (the lifespan).
uvicorn alone would close WebSockets with 1012 and handle signals itself; here signals
are the caller's (``summitline.shutdown``), so that a demo's SIGTERM ends the demo's
call instead of stopping its server underneath it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from summitline.server import limits
from summitline.server.app import Settings, create_app
from summitline.server.events import EventStreams

KEEP_ALIVE_S = 75
GOING_AWAY = 1001  # RFC 6455: "an endpoint is going away, such as a server going down"
# Clients answer a close frame at once; 1 s covers a loaded machine.
GOODBYE_S = 1.0
# HTTP requests in flight when the server stops (REST calls take milliseconds).
SHUTDOWN_GRACE_S = 3
START_TIMEOUT_S = 30.0  # import, store and press gateway on a busy 2-core machine
STOP_TIMEOUT_S = 15.0  # GOODBYE_S + SHUTDOWN_GRACE_S + closing the hub and the store


class OpenWebSockets:
    """ASGI middleware that holds every open WebSocket, so that a stopping server can
    close each with 1001. After that, what the application still sends is dropped.
    ``streams``: the consoles' event streams, ended first (they would otherwise hold the
    stop for the whole graceful shutdown)."""

    def __init__(self, app: ASGIApp, streams: EventStreams | None = None) -> None:
        self.app = app
        self.streams = streams
        self._open: set[_Socket] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        ws = _Socket(send)
        self._open.add(ws)
        self._none_open.clear()
        try:
            await self.app(scope, receive, ws.send)
        finally:
            self._open.discard(ws)
            if not self._open:
                self._none_open.set()

    async def going_away(self, timeout_s: float = GOODBYE_S) -> int:
        """Close every open WebSocket with 1001; wait up to ``timeout_s`` for the
        application to see them go. Returns how many were told."""
        if self.streams is not None:
            self.streams.close()
        sockets = list(self._open)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(ws.going_away() for ws in sockets))
                await self._none_open.wait()
        return sum(ws.told for ws in sockets)


class _Socket:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = asyncio.Lock()  # one message at a time: the app's or the goodbye
        self.accepted = False
        self.closed = False
        self.told = False  # closed by the server's goodbye

    async def send(self, message: Message) -> None:
        async with self._lock:
            if self.closed:
                return
            if message["type"] == "websocket.accept":
                self.accepted = True
            elif message["type"] == "websocket.close":
                self.closed = True
            await self._send(message)

    async def going_away(self) -> None:
        async with self._lock:
            if self.closed or not self.accepted:
                return
            self.closed = self.told = True
            # a client gone meanwhile (uvicorn's ClientDisconnected is an OSError) needs
            # no goodbye
            with contextlib.suppress(OSError):
                await self._send({"type": "websocket.close", "code": GOING_AWAY,
                                  "reason": "the server is shutting down"})


class Server(uvicorn.Server):
    """uvicorn's server, leaving signals to its caller and saying goodbye (1001) to the
    WebSockets of an ``OpenWebSockets`` app before uvicorn's own shutdown."""

    def __init__(self, config: uvicorn.Config,
                 on_started: Callable[[str], None] = lambda url: None) -> None:
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def url(self) -> str:
        """The base URL, with the port actually bound (for ``port=0``)."""
        port = self.servers[0].sockets[0].getsockname()[1]
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{'https' if self.config.is_ssl else 'http'}://{host}:{port}"

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.on_started(self.url)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting first (uvicorn does it again; harmless)
        app = self.config.app
        if isinstance(app, OpenWebSockets):
            await app.going_away()
        await super().shutdown(sockets)


def config(settings: Settings, host: str, port: int, log_level: str = "info",
           tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    """``tls``: (certificate, key) PEM files; None serves plain HTTP."""
    cert, key = tls or (None, None)
    app = create_app(settings)
    return uvicorn.Config(OpenWebSockets(app, app.state.events), host=host, port=port,
                          log_level=log_level,
                          ws_max_size=limits.TRANSPORT_MAX_BYTES,
                          ws_ping_interval=limits.PING_INTERVAL_S,
                          ws_ping_timeout=limits.PING_TIMEOUT_S, lifespan="on",
                          ssl_certfile=str(cert) if cert else None,
                          ssl_keyfile=str(key) if key else None,
                          server_header=False,
                          # X-Forwarded-For only from the proxies named (--trusted-proxy):
                          # the address a refusal counts against is the peer's own, or
                          # the client's as such a proxy says
                          proxy_headers=bool(settings.trusted_proxies),
                          forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
                          # longer than clients keep idle connections (httpx: 5 s), so a
                          # client never sends on a connection the server just closed
                          timeout_keep_alive=KEEP_ALIVE_S,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


@contextlib.asynccontextmanager
async def running(settings: Settings, host: str = "127.0.0.1", port: int = 0,
                  log_level: str = "warning",
                  tls: tuple[Path, Path] | None = None) -> AsyncIterator[str]:
    """Serve in this event loop; yields the base URL (http(s)://host:port)."""
    async with serving(config(settings, host, port, log_level, tls)) as url:
        yield url


@contextlib.asynccontextmanager
async def serving(config: uvicorn.Config,
                  sockets: list[socket.socket] | None = None) -> AsyncIterator[str]:
    """Run the app of ``config`` in this event loop (on ``sockets`` if given, already
    bound); yields the base URL and stops it on the way out."""
    started = asyncio.Event()
    server = Server(config, on_started=lambda url: started.set())
    task = asyncio.create_task(server.serve(sockets))
    waiter = asyncio.create_task(started.wait())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        task.cancel()
        raise
    finally:
        waiter.cancel()
    if not server.started:
        task.result()  # raises why it could not start
        raise RuntimeError("the server stopped during start-up")
    try:
        yield server.url
    finally:
        server.should_exit = True
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await task

"""Running the server: in the foreground (``summitline serve``) or as a task (demo, tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from summitline.server import limits
from summitline.server.app import Settings, create_app

KEEP_ALIVE_S = 75


def config(settings: Settings, host: str, port: int, log_level: str = "info",
           tls: tuple[Path, Path] | None = None) -> uvicorn.Config:
    """``tls``: (certificate, key) PEM files; None serves plain HTTP."""
    cert, key = tls or (None, None)
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                          ws_max_size=limits.TRANSPORT_MAX_BYTES,
                          ws_ping_interval=limits.PING_INTERVAL_S,
                          ws_ping_timeout=limits.PING_TIMEOUT_S, lifespan="on",
                          ssl_certfile=str(cert) if cert else None,
                          ssl_keyfile=str(key) if key else None,
                          server_header=False,
                          # longer than clients keep idle connections (httpx: 5 s), so a
                          # client never sends on a connection the server just closed
                          timeout_keep_alive=KEEP_ALIVE_S)


@contextlib.asynccontextmanager
async def running(settings: Settings, host: str = "127.0.0.1", port: int = 0,
                  log_level: str = "warning",
                  tls: tuple[Path, Path] | None = None) -> AsyncIterator[str]:
    """Serve in this event loop; yields the base URL (http(s)://host:port)."""
    server = uvicorn.Server(config(settings, host, port, log_level, tls))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://{host}:{bound}"
    finally:
        server.should_exit = True
        await task

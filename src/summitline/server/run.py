"""Running the server: in the foreground (``summitline serve``) or as a task (demo, tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from summitline.server import limits
from summitline.server.app import Settings, create_app


def config(settings: Settings, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                          ws_max_size=limits.TRANSPORT_MAX_BYTES,
                          ws_ping_interval=limits.PING_INTERVAL_S,
                          ws_ping_timeout=limits.PING_TIMEOUT_S, lifespan="on")


@contextlib.asynccontextmanager
async def running(settings: Settings, host: str = "127.0.0.1", port: int = 0,
                  log_level: str = "warning") -> AsyncIterator[str]:
    """Serve in this event loop; yields the base URL (http://host:port)."""
    server = uvicorn.Server(config(settings, host, port, log_level))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task

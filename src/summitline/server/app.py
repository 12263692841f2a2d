"""The server process: FastAPI (REST + OpenAPI), WebSocket signaling, the web client."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.staticfiles import StaticFiles

from summitline import __version__
from summitline.core import messages
from summitline.server import api, devices
from summitline.server.hub import Hub
from summitline.server.room import Clock
from summitline.server.signaling import Connection
from summitline.store import open_store
from summitline.store.sql import sqlite_url

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parent.parent / "web"  # the web client: static, no build step


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = None  # default: SQLite in data_dir

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


def create_app(settings: Settings, clock: Clock = wall_clock_ms) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(settings.url)
        app.state.hub = Hub(store, clock)
        log.info("summitline %s: data in %s", __version__, settings.data_dir)
        try:
            yield
        finally:
            app.state.hub.close()
            await store.close()

    app = FastAPI(title="summitline", version=__version__, lifespan=lifespan,
                  description="Co-signed call plans, signaling and records for "
                              "confidential one-on-one video talks.")
    app.include_router(api.router())
    app.include_router(devices.router())

    @app.get("/api/protocol")
    async def protocol() -> dict[str, object]:
        """The JSON Schema of the signaling messages, for other clients."""
        return {"version": messages.PROTOCOL_VERSION, **messages.json_schema()}

    @app.websocket("/ws")
    async def signaling(ws: WebSocket) -> None:
        await Connection(ws, app.state.hub).serve()

    app.mount("/", StaticFiles(directory=WEB, html=True), name="web")

    return app

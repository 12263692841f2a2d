"""The server process: FastAPI (REST + OpenAPI), WebSocket signaling, and (for
development and the demo only) the web client."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from summitline import __version__
from summitline.client.ice import IceSettings
from summitline.console import WEB
from summitline.core import messages
from summitline.crypto.statements import origin
from summitline.server import api, closecodes, devices, events, pressroom
from summitline.server.hub import Hub
from summitline.server.limits import (
    MAX_PRESS_VIEWERS,
    POST_BURST,
    POST_RATE_PER_S,
    PostLimit,
)
from summitline.server.metrics import CONTENT_TYPE
from summitline.server.press import routes as press_routes
from summitline.server.press.gateway import PressGateway
from summitline.server.press.janus import JanusPress
from summitline.server.press.static import StaticHls
from summitline.server.room import Clock
from summitline.server.security import (
    DEFAULT_CONSOLE_ORIGINS,
    MAX_CONNECTIONS_PER_ADDRESS,
    MAX_CONNECTIONS_PER_CALL,
    ConnectionLimits,
    SecurityHeaders,
    bearer_matches,
    cors,
    operator_token,
    origin_allowed,
)
from summitline.server.sfu import SfuBroker
from summitline.server.signaling import Connection
from summitline.server.turn import TurnSettings
from summitline.store import open_store
from summitline.store.sql import sqlite_url

log = logging.getLogger(__name__)



def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = None  # default: SQLite in data_dir
    # Redis for presence and relay between several nodes (server/cluster.py); None: this
    # process is the only node.
    redis_url: str | None = None
    # Addresses of reverse proxies whose X-Forwarded-For names the client (deploy/haproxy):
    # behind one, per-address limits count the client, not the proxy. Empty: none.
    trusted_proxies: tuple[str, ...] = ()
    # Origins besides the server's own whose pages may open signaling and call the REST
    # API: the delegations' consoles. Empty: same origin only.
    allowed_origins: tuple[str, ...] = DEFAULT_CONSOLE_ORIGINS
    # The origins clients address this server by (``https://summit.example.org``): a
    # signed read names one, so that it is good at this server only. Empty: the request's
    # Host, by http or https (binds a read to a host name; set it behind a proxy).
    public_origins: tuple[str, ...] = ()
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    max_connections_per_call: int = MAX_CONNECTIONS_PER_CALL
    turn: TurnSettings | None = None  # coturn with use-auth-secret, if any
    # Host candidates of the press gateway's peer connections (None: every non-loopback
    # interface; tests and the local demo use loopback), and its viewer limit per call.
    press_hosts: tuple[str, ...] | None = None
    max_press_viewers: int = MAX_PRESS_VIEWERS
    # Janus's HTTP API (``http://127.0.0.1:8088/janus``): the press watch through its
    # Streaming plugin, and this server carries none of their media. None: the gateway
    # serves them. The secrets: Janus's api_secret and the Streaming plugin's admin_key.
    janus_url: str | None = None
    janus_api_secret: str | None = None
    janus_admin_key: str | None = None
    # The VideoRoom plugin's admin_key, for briefings through the SFU (server/sfu.py);
    # None: the same as the Streaming plugin's. With ``janus_url``, a briefing whose plan
    # wants the SFU goes through Janus.
    janus_videoroom_key: str | None = None
    # HLS for a static web server (server/press/static.py): the directory it serves, its
    # URL, and the secret of its secure_link. None: HLS only through this server.
    hls_dir: Path | None = None
    hls_url: str | None = None
    hls_secret: str | None = None
    # REST POSTs per remote address: a token bucket (docs/protocol.md §7).
    post_rate_per_s: float = POST_RATE_PER_S
    post_burst: float = POST_BURST
    # Serve the web client at "/" too. Keys made there live under the server's origin,
    # which the server scripts: for development and the demo only (docs/security.md §4).
    serve_client: bool = False

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


# What the shared server serves of the web client by default: the press pages (the link a
# press office hands out points here), and the modules they import. No view that makes or
# holds a key (operator, principal, enrolment, keystore.js) is served from this origin. The
# strings of every language: the press read these pages in any of them.
PRESS_FILES = ("press.html", "pressapp.js", "routing.js", "api.js", "crypto.js", "dom.js",
               "i18n.js", "style.css", "views/press.js", "views/pressroom.js",
               *(f"i18n/{p.name}" for p in sorted((WEB / "i18n").glob("*.json"))))


def press_pages(app: FastAPI) -> None:
    from starlette.responses import FileResponse

    for name in PRESS_FILES:
        def serve(path: Path = WEB / name) -> FileResponse:
            return FileResponse(path)

        app.add_api_route(f"/{name}", serve, methods=["GET"], include_in_schema=False)


def create_app(settings: Settings, clock: Clock = wall_clock_ms) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        app.state.operator_token = operator_token(settings.data_dir)
        store = await open_store(settings.url)
        janus = (JanusPress(settings.janus_url, settings.janus_api_secret,
                            settings.janus_admin_key) if settings.janus_url else None)
        press = PressGateway(IceSettings(host_addresses=settings.press_hosts), clock,
                             settings.max_press_viewers, workdir=settings.data_dir,
                             janus=janus, hls_dir=settings.hls_dir,
                             static_hls=StaticHls(settings.hls_url, settings.hls_secret)
                             if settings.hls_url and settings.hls_secret else None)
        sfu = (SfuBroker(settings.janus_url, settings.janus_api_secret,
                         settings.janus_videoroom_key or settings.janus_admin_key)
               if settings.janus_url else None)
        app.state.hub = Hub(store, clock, settings.turn, press, app.state.events,
                            redis_url=settings.redis_url, sfu=sfu)
        await app.state.hub.start()
        app.state.limits = ConnectionLimits(settings.max_connections_per_address,
                                            settings.max_connections_per_call)
        log.info("summitline %s: data in %s", __version__, settings.data_dir)
        try:
            yield
        finally:
            app.state.events.close()
            await app.state.hub.close()
            await store.close()

    # No /docs or /redoc: they load scripts from a CDN, which a confidential deployment
    # must not. The OpenAPI document is at /openapi.json.
    app = FastAPI(title="summitline", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Co-signed call plans, signaling and records for "
                              "confidential one-on-one video talks.")
    app.state.public_origins = tuple(origin(o) for o in settings.public_origins)
    # the consoles' live updates; made here, not in the lifespan, so that a stopping
    # server ends them before it waits for requests in flight (server/run.py)
    app.state.events = events.EventStreams()
    # innermost of the three, so that a 429 carries the security and CORS headers too
    app.add_middleware(PostLimit, rate=settings.post_rate_per_s, burst=settings.post_burst)
    app.add_middleware(SecurityHeaders)
    if settings.allowed_origins:
        app.add_middleware(cors, origins=settings.allowed_origins)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """422 with where and what, without echoing the input back, in ASCII-escaped
        JSON: a lone surrogate in a request must not make the error handler fail."""
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        return Response(json.dumps({"detail": detail}, ensure_ascii=True, default=str),
                        status_code=422, media_type="application/json")
    app.include_router(api.router())
    app.include_router(devices.router())
    app.include_router(press_routes.router())
    app.include_router(pressroom.router())
    app.include_router(events.router())

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """The Prometheus metrics of this process (server/metrics.py): for the server's
        operator alone, as the incidents are."""
        if not bearer_matches(request.headers.get("authorization"),
                              app.state.operator_token):
            return Response("metrics are read with the server operator's token "
                            "(operator.token in the data directory)\n", status_code=401,
                            headers={"WWW-Authenticate": "Bearer"}, media_type="text/plain")
        hub: Hub = app.state.hub
        return Response(hub.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/api/protocol")
    async def protocol() -> dict[str, object]:
        """The JSON Schema of the signaling messages, for other clients."""
        return {"version": messages.PROTOCOL_VERSION, **messages.json_schema()}

    @app.websocket("/ws")
    async def signaling(ws: WebSocket) -> None:
        hub: Hub = app.state.hub
        address = ws.client.host if ws.client else "unknown"
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"),
                              settings.allowed_origins):
            await hub.store.add_incident(clock(), address, "bad-origin",
                                         str(ws.headers.get("origin"))[:200])
            await ws.close(code=closecodes.BAD_ORIGIN)  # before accept: HTTP 403
            return
        limits: ConnectionLimits = app.state.limits
        if not limits.open(address):
            await hub.store.add_incident(clock(), address, "too-many-connections", "")
            await ws.close(code=closecodes.POLICY)
            return
        try:
            await Connection(ws, hub, limits).serve()
        finally:
            limits.close(address)

    if settings.serve_client:
        app.mount("/", StaticFiles(directory=WEB, html=True), name="web")
    else:
        press_pages(app)

    return app

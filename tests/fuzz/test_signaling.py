"""Fuzzing a live server's signaling (hypothesis): a joined principal sends any
sequence of messages; each gets an answer or a clean close with a known code, and the
server, and the other principal, stay up.

The server runs in a thread of its own (hypothesis drives a synchronous client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from summitline.client.bilateral import Bilateral, provision
from summitline.server import closecodes as cc
from summitline.server.app import Settings
from summitline.server.run import running
from tests.fuzz.test_messages import json_values, plausible
from tests.wire import hello

TIMEOUT_S = 10.0
CLOSE_CODES = {cc.MESSAGE_TOO_BIG, cc.POLICY}  # fatal after the handshake: size, rate


class Server:
    def __init__(self, data: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.base = ""
        self.thread = threading.Thread(target=self._run, args=(data,), daemon=True)

    def _run(self, data: Path) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve(data))

    async def _serve(self, data: Path) -> None:
        self.stop = asyncio.Event()
        async with running(Settings(data_dir=data)) as base:
            self.base = base
            self.ready.set()
            await self.stop.wait()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Bilateral]]:
    server = Server(tmp_path_factory.mktemp("fuzz"))
    server.thread.start()
    assert server.ready.wait(TIMEOUT_S)

    async def setup() -> Bilateral:
        async with httpx.AsyncClient(base_url=server.base) as http:
            call = await provision(http)
            await call.a.operator.control(call.call, "start")
            return call

    call = server.call(setup())
    yield server, call
    assert server.stop is not None
    server.loop.call_soon_threadsafe(server.stop.set)
    server.thread.join(TIMEOUT_S)


@contextlib.contextmanager
def join(server: Server, call: Bilateral, side: str) -> Iterator[ClientConnection]:
    with connect(server.base.replace("http", "ws", 1) + "/ws", max_size=2**22) as ws:
        nonce = json.loads(ws.recv(TIMEOUT_S))["nonce"]
        key = (call.a if side == "a" else call.b).principal
        ws.send(json.dumps(hello(call.call, key, nonce)))
        assert json.loads(ws.recv(TIMEOUT_S))["type"] == "welcome"
        yield ws


def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    """Everything the server sends until our closing ping is answered."""
    ws.send(json.dumps({"type": "ping", "id": 424242}))
    got = []
    while (msg := json.loads(ws.recv(TIMEOUT_S))) != {"type": "pong", "id": 424242}:
        got.append(msg)
    return got


messages = st.one_of(
    st.sampled_from(["offer", "answer", "candidate", "bye", "stats", "end", "hello", "ping",
                     "launch"]).flatmap(plausible).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=12))
def test_any_sequence_of_messages(live: tuple[Server, Bilateral], sequence: list[str]) -> None:
    server, call = live
    if all("\"end\"" not in m for m in sequence):  # keep the call alive for the next ones
        with join(server, call, "a") as ws:
            try:
                for raw in sequence:
                    ws.send(raw)
                for msg in drain(ws):
                    assert msg["type"] in {"error", "pong", "peer-joined", "peer-left",
                                           "phase"}
                    if msg["type"] == "error":
                        assert msg["code"] and msg["message"]
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code in CLOSE_CODES, closed
    # the server is up, and the other principal can still join and talk
    with join(server, call, "b") as other:
        assert drain(other) is not None
    assert httpx.get(server.base + "/api/nonce", timeout=TIMEOUT_S).status_code == 200

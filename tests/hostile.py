"""A hostile server: a WebSocket proxy that sits between endpoints and the real server
and rewrites, drops or injects signaling messages. It has everything a compromised
server has (it sees and can change every message) and nothing more (no private key of
any delegation or device).

Each endpoint connection gets a ``Wire``; ``down`` rewrites server -> endpoint messages,
``up`` endpoint -> server ones. Return None to drop a message. Everything that passed
is kept in ``seen`` for the test to inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection

Message = dict[str, Any]
Rewrite = Callable[["Wire", Message], Message | None]


def keep(wire: Wire, msg: Message) -> Message | None:
    return msg


@dataclass
class Wire:
    """One endpoint's signaling connection through the proxy."""

    client: ServerConnection
    upstream: Any
    device: str = ""
    seen_down: list[Message] = field(default_factory=list)
    seen_up: list[Message] = field(default_factory=list)

    async def inject(self, msg: Message) -> None:
        """Send the endpoint a message the real server never sent."""
        await self.client.send(json.dumps(msg))


@dataclass
class HostileServer:
    upstream_url: str
    down: Rewrite = keep
    up: Rewrite = keep
    wires: list[Wire] = field(default_factory=list)
    url: str = ""

    def wire_of(self, device: str) -> Wire:
        return next(w for w in self.wires if w.device == device)

    async def _serve(self, client: ServerConnection) -> None:
        async with websockets.connect(self.upstream_url, max_size=2**20) as upstream:
            wire = Wire(client, upstream)
            self.wires.append(wire)

            async def pump_down() -> None:
                async for raw in upstream:
                    msg = json.loads(raw)
                    out = self.down(wire, msg)
                    if out is not None:
                        wire.seen_down.append(out)
                        await client.send(json.dumps(out))

            async def pump_up() -> None:
                async for raw in client:
                    msg = json.loads(raw)
                    if msg.get("type") == "hello":
                        wire.device = msg["device"]
                    out = self.up(wire, msg)
                    if out is not None:
                        wire.seen_up.append(out)
                        await upstream.send(json.dumps(out))

            tasks = [asyncio.create_task(pump_down()), asyncio.create_task(pump_up())]
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()


@contextlib.asynccontextmanager
async def hostile(upstream_ws_url: str, down: Rewrite = keep,
                  up: Rewrite = keep) -> AsyncIterator[HostileServer]:
    proxy = HostileServer(upstream_ws_url, down, up)
    async with websockets.serve(proxy._serve, "127.0.0.1", 0, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        proxy.url = f"ws://127.0.0.1:{port}/ws"
        yield proxy


# -- tampering helpers ---------------------------------------------------------------
FINGERPRINT = re.compile(r"(a=fingerprint:sha-256 )([0-9A-Fa-f:]+)")


def swap_fingerprint(sdp: str) -> str:
    """Replace every sha-256 DTLS fingerprint with the attacker's (as a man in the middle
    would, to terminate DTLS itself)."""
    attacker = ":".join(["AB"] * 32)
    return FINGERPRINT.sub(lambda m: m.group(1) + attacker, sdp)


def hide_fingerprints(attacker_sdp: str, genuine_fingerprints: list[str]) -> str:
    """The attacker's own SDP, its fingerprints written in a form only a lenient parser
    reads (two spaces), the genuine ones appended in a rejected media section that the
    WebRTC stack ignores but a naive fingerprint extractor finds. A signature over the
    extracted fingerprints would still verify; one over the SDP text does not."""
    body = re.sub(r"(a=fingerprint:\S+ )([0-9A-Fa-f:]+)", r"\1 \2", attacker_sdp)
    body = re.sub(r"a=group:BUNDLE ([^\r]*)", r"a=group:BUNDLE \1 x", body)
    ufrag = re.search(r"a=ice-ufrag:\S+\r\n", attacker_sdp)
    pwd = re.search(r"a=ice-pwd:\S+\r\n", attacker_sdp)
    assert ufrag and pwd
    trailer = "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:x\r\n"
    return (body + trailer + ufrag.group(0) + pwd.group(0) + "a=setup:actpass\r\n"
            + "".join(f"a=fingerprint:{p}\r\n" for p in genuine_fingerprints))

"""Speaking the signaling protocol by hand, to send what a good client never would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey

# Generous: a message on loopback arrives in milliseconds; this only bounds a hang.
TIMEOUT_S = 10.0
FAKE_SIG = "A" * 86  # well-formed, verifies nothing


async def recv(ws: Any) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S)))


async def send(ws: Any, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def connect(url: str) -> tuple[Any, str]:
    """Open a signaling connection; return it and the nonce of its challenge."""
    ws = await websockets.connect(url, max_size=2**22)
    challenge = await recv(ws)
    assert challenge["type"] == "challenge" and 1 in challenge["versions"]
    return ws, challenge["nonce"]


async def connect_from(url: str, address: str) -> tuple[Any, str]:
    """Like ``connect``, from another loopback address (a different remote host)."""
    ws = await websockets.connect(url, max_size=2**22, local_addr=(address, 0))
    challenge = await recv(ws)
    return ws, challenge["nonce"]


def hello(call: str, key: PrivateKey, nonce: str) -> dict[str, Any]:
    return {"type": "hello", "version": 1, "call": call, "device": key.fingerprint,
            "nonce": nonce, "signature": key.sign(statements.join(call, key.fingerprint, nonce))}


async def join(url: str, call: str, key: PrivateKey) -> tuple[Any, dict[str, Any]]:
    ws, nonce = await connect(url)
    await send(ws, hello(call, key, nonce))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def closed_with(ws: Any) -> int | None:
    """Wait for the server to close the connection; its close code."""
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT_S)
    code: int | None = ws.close_code
    return code


async def refused(ws: Any, code: str, close_code: int) -> dict[str, Any]:
    """Expect a fatal error ``code`` and a close with ``close_code``."""
    err = await recv(ws)
    assert err["type"] == "error" and err["code"] == code and err["fatal"], err
    assert await closed_with(ws) == close_code
    return err


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, skipping presence and phase notices."""
    while True:
        msg = await recv(ws)
        if msg["type"] == kind:
            return msg
        assert msg["type"] in {"peer-joined", "peer-left", "phase"}, msg


async def until_admitted(url: str, call: str, key: PrivateKey) -> Any:
    """Join, retrying while the server still counts an old connection (it learns of a
    close asynchronously); returns the joined connection."""
    while True:
        ws, nonce = await connect(url)
        await send(ws, hello(call, key, nonce))
        msg = await recv(ws)
        if msg["type"] == "welcome":
            return ws
        assert msg["code"] == "too-many-connections", msg
        await closed_with(ws)

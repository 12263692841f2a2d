"""The welcome is the first message a device gets after its hello, even while the rest of
its call joins at the same instant (found by bench/signaling_load.py: between the server
registering a device in its room and queueing its welcome, a peer's ``peer-joined`` could
go first), and what the room sent it meanwhile follows the welcome."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from summitline.client.bilateral import provision
from summitline.core import policy
from summitline.core.plan import MAX_PARTICIPANTS
from summitline.core.roles import Phase, Role
from summitline.crypto.keys import PrivateKey
from tests import wire

CALLS = 4  # joining at once, so that the store is busy as on a loaded node
PER_ADDRESS = 30  # below the server's 32 connections per address


async def test_welcome_comes_first_when_whole_calls_join_at_once(
        ws_url: str, http: httpx.AsyncClient) -> None:
    devices: list[tuple[str, PrivateKey, set[str]]] = []
    for _ in range(CALLS):
        keys = [PrivateKey.generate() for _ in range(MAX_PARTICIPANTS - 2)]
        call = await provision(http, extra=[(i % 2, k, Role.AIDE, f"Aide {i}")
                                            for i, k in enumerate(keys)])
        devices += [(call.call, k, set(policy.peers_of(call.plan, Phase.CLOSED,
                                                       k.fingerprint)))
                    for k in (call.a.principal, call.b.principal, *keys)]
    opened: list[tuple[Any, str]] = []
    try:
        for i in range(len(devices)):
            opened.append(await wire.connect_from(ws_url, f"127.0.7.{i // PER_ADDRESS + 1}"))
        # every hello at once: each join runs while others are being registered
        await asyncio.gather(*(wire.send(ws, wire.hello(call, key, nonce))
                               for (ws, nonce), (call, key, _) in zip(opened, devices,
                                                                       strict=True)))
        firsts = await asyncio.gather(*(wire.recv(ws) for ws, _ in opened))
        assert [f["type"] for f in firsts] == ["welcome"] * len(devices)
        # nothing held back is lost: each hears of every peer of its plan
        for (ws, _), first, (_, _, peers) in zip(opened, firsts, devices, strict=True):
            known = {p["device"] for p in first["peers"]}
            assert known <= peers
            while known != peers:
                msg = await wire.recv(ws)
                assert msg["type"] == "peer-joined", msg
                known.add(msg["device"])
    finally:
        for ws, _ in opened:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), wire.TIMEOUT_S)

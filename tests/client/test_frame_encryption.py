"""End-to-end frame encryption between Python endpoints (docs/protocol.md 5.9, 5.10),
peer-to-peer: what an SFU briefing will carry, with the transport it has today."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from summitline.client.bilateral import Bilateral
from summitline.client.briefing import provision_briefing
from summitline.client.framecrypt import FrameCrypt, hears
from summitline.client.ice import loopback
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind, Role
from summitline.crypto.frames import FrameError
from tests import wire
from tests.client.test_session import WAIT_S, leave_all, until
from tests.factories import World


def encrypted(ws_url: str, call: str, identities: list[Identity], on: list[bool]
              ) -> list[CallSession]:
    return [CallSession(ws_url, call, i, ice=loopback(), frame_encryption=e)
            for i, e in zip(identities, on, strict=True)]


async def test_two_python_principals_exchange_encrypted_frames_that_decode(
        ws_url: str, bilateral: Bilateral) -> None:
    a, b = encrypted(ws_url, bilateral.call, [bilateral.a.identity(), bilateral.b.identity()],
                     [True, True])
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    try:
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        await bilateral.a.operator.control(bilateral.call, "start")
        await until([a, b], lambda s: all(s.frames(k) > 20 for k in MediaKind))
        for me, other in ((a, b), (b, a)):
            assert me.crypt is not None and other.crypt is not None
            # every frame it decoded came through its opener, under the other's key 0
            assert set(me.crypt.openers[other.device].keys) == {0}
            assert other.crypt.sealer.counter >= me.frames(MediaKind.VIDEO)
            # and what was sent was sealed once for all links, in the shared encoder
            assert all(e.seal is not None for e in other.source.encoders.values())
        assert a.alarms == b.alarms == []
    finally:
        await leave_all([a, b], tasks)


async def test_an_endpoint_without_the_key_decodes_no_video(
        ws_url: str, bilateral: Bilateral) -> None:
    """A receiver that does not hold the sender's key (here: one that does not take part
    in frame encryption at all, as an SFU or a tap on it) gets the RTP but cannot decode
    a single picture; and the encrypting end drops every clear frame it is sent."""
    a, b = encrypted(ws_url, bilateral.call, [bilateral.a.identity(), bilateral.b.identity()],
                     [True, False])
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    try:
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        await bilateral.a.operator.control(bilateral.call, "start")
        assert a.crypt is not None

        def refused_plenty(s: CallSession) -> bool:
            return sum(link.refused for link in s.links.values()) > 60
        # a has sent (sealed) 150 frames; b has sent it plenty in the clear
        await until([a], lambda s: a.crypt is not None and a.crypt.sealer.counter > 150
                    and refused_plenty(s))
        assert b.frames(MediaKind.VIDEO) == 0
        assert a.frames(MediaKind.VIDEO) == a.frames(MediaKind.AUDIO) == 0
    finally:
        await leave_all([a, b], tasks)


async def test_keys_rotate_when_a_device_leaves(ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    sessions = encrypted(ws_url, b.call, [side.identity() for side in b.sides],
                         [True, True, True])
    first, second, leaver = sessions
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")

        def from_everyone(s: CallSession) -> bool:
            return all(s.frames_from(t.device, k) > 10 for t in sessions if t is not s
                       for k in MediaKind)
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: from_everyone(s))
                                                for s in sessions)), WAIT_S)
        assert all(s.crypt is not None and s.crypt.key_id == 0 for s in sessions)
        await leaver.leave()
        # the two that stay each make key 1 and hand it to the other
        await until([first, second], lambda s: s.crypt is not None and s.crypt.key_id == 1
                    and all(1 in t.crypt.openers[s.device].keys  # type: ignore[union-attr]
                            for t in (first, second) if t is not s))
        before = {s.device: s.frames(MediaKind.VIDEO) for s in (first, second)}
        await until([first, second],
                    lambda s: s.frames(MediaKind.VIDEO) > before[s.device] + 20)
        # the device that left holds key 0 only: a frame under key 1 does not open for it
        assert leaver.crypt is not None
        for s in (first, second):
            assert set(leaver.crypt.openers[s.device].keys) == {0}
            assert s.crypt is not None
            sealed = s.crypt.seal("video", b"\x31\x07\x00after the rotation")
            with pytest.raises(FrameError):
                leaver.crypt.open(s.device, sealed)
        assert first.alarms == second.alarms == []
    finally:
        await leave_all(sessions, tasks)


def test_only_a_device_that_hears_the_sender_is_handed_its_key() -> None:
    plan = World().plan()
    principals = [p.device for p in plan.participants if p.role is Role.PRINCIPAL]
    aides = [p.device for p in plan.participants if p.role is Role.AIDE]
    assert hears(plan, principals[0], principals[1])
    assert aides and not any(hears(plan, principals[0], aide) for aide in aides)


async def test_the_server_relays_a_frame_key_only_to_a_present_peer_of_the_plan(
        ws_url: str, bilateral: Bilateral) -> None:
    """The server checks what it can (presence, the plan's pairs); the signature is the
    receiver's to check, and an unsigned key is refused there (tests/core/test_frames.py)."""
    a_key, b_key = bilateral.a.principal, bilateral.b.principal
    a, _ = await wire.join(ws_url, bilateral.call, a_key)
    try:
        crypt = FrameCrypt(a_key, bilateral.call)
        msg = crypt.message(bilateral.plan, b_key.fingerprint)
        await wire.send(a, msg)  # b is not connected: refused
        err = await wire.next_of(a, "error")
        assert err["code"] == "not-permitted" and err["ref"] == "frame-key"
        b, _ = await wire.join(ws_url, bilateral.call, b_key)
        try:
            await wire.next_of(a, "peer-joined")
            await wire.send(a, msg)
            got = await wire.next_of(b, "frame-key")
            assert got["from"] == a_key.fingerprint and got["ecdh"] == msg["ecdh"]
            assert "to" not in got and got["signature"] == msg["signature"]
        finally:
            await b.close()
    finally:
        await a.close()

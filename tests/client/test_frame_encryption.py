"""End-to-end frame encryption between Python endpoints (docs/protocol.md 5.9, 5.10),
peer-to-peer: what an SFU briefing will carry, with the transport it has today."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from summitline.client.bilateral import Bilateral
from summitline.client.briefing import provision_briefing
from summitline.client.framecrypt import FrameCrypt, hears
from summitline.client.ice import loopback
from summitline.client.session import CallSession, Identity
from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Role
from summitline.crypto import framekeys
from summitline.crypto.frames import FrameError, FrameKey, FrameOpener, FrameSealer
from summitline.crypto.keys import PrivateKey, SignatureError
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
            # every frame it decoded came through its opener, under the other's key 0 of
            # the frame's kind
            for kind in MediaKind:
                assert set(me.crypt.openers[other.device, str(kind)].keys) == {0}
                assert other.crypt.sealers[str(kind)].counter >= me.frames(kind)
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
        await until([a], lambda s: a.crypt is not None
                    and sum(x.counter for x in a.crypt.sealers.values()) > 150
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
        assert all(s.crypt is not None and s.crypt.key_id(str(k)) == 0 for s in sessions
                   for k in MediaKind)
        await leaver.leave()
        # the two that stay each make key 1 of each kind and hand them to the other
        await until([first, second], lambda s: s.crypt is not None
                    and all(s.crypt.key_id(str(k)) == 1 for k in MediaKind)
                    and all(1 in t.crypt.openers[s.device, str(k)].keys  # type: ignore[union-attr]
                            for t in (first, second) if t is not s for k in MediaKind))
        before = {s.device: s.frames(MediaKind.VIDEO) for s in (first, second)}
        await until([first, second],
                    lambda s: s.frames(MediaKind.VIDEO) > before[s.device] + 20)
        # the device that left holds key 0 only: a frame under key 1 does not open for it
        assert leaver.crypt is not None
        for s in (first, second):
            assert s.crypt is not None
            for kind, frame in (("video", b"\x31\x07\x00after the rotation"),
                                ("audio", b"\xfcafter the rotation")):
                assert set(leaver.crypt.openers[s.device, kind].keys) == {0}
                sealed = s.crypt.seal(kind, frame)
                with pytest.raises(FrameError):
                    leaver.crypt.open(s.device, kind, sealed)
        assert first.alarms == second.alarms == []
    finally:
        await leave_all(sessions, tasks)


def test_only_a_device_that_hears_the_sender_is_handed_its_key() -> None:
    plan = World().plan()
    principals = [p.device for p in plan.participants if p.role is Role.PRINCIPAL]
    aides = [p.device for p in plan.participants if p.role is Role.AIDE]
    assert hears(plan, principals[0], principals[1])
    assert aides and not any(hears(plan, principals[0], aide) for aide in aides)


def handed(plan: CallPlan, sender: PrivateKey, receiver: PrivateKey) -> dict[str, FrameKey]:
    """What ``receiver`` takes from ``sender``'s ``frame-key`` under ``plan``."""
    ours, theirs = FrameCrypt(sender, plan.call), FrameCrypt(receiver, plan.call)
    ours.take(plan, theirs.message(plan, sender.fingerprint), receiver.public)
    theirs.take(plan, ours.message(plan, receiver.fingerprint), sender.public)
    return {kind: opener.keys[ours.key_id(kind)]
            for (device, kind), opener in theirs.openers.items() if device == sender.fingerprint}


def test_an_interpreter_without_interpreter_video_is_handed_no_video_key() -> None:
    """Finding F1: a principal's video key goes only to devices the plan lets see it. An
    interpreter hears the principals and is handed their audio key, never the video one,
    unless the plan has ``interpreter_video``; a forged message that hands it one anyway
    is refused."""
    world = World()
    plan = world.plan()
    assert not plan.interpreter_video
    us, ru = world.us_principal, world.ru_principal
    got = handed(plan, us, world.ru_interpreter)
    assert set(got) == {"audio"}
    # its audio key opens the principal's audio; nothing it holds opens the video
    sender = FrameCrypt(us, plan.call)
    sender.sealers = {kind: FrameSealer(got.get(kind) or FrameKey.generate(0))
                      for kind in ("audio", "video")}
    listener = FrameCrypt(world.ru_interpreter, plan.call)
    listener.openers[us.fingerprint, "audio"] = FrameOpener()
    listener.openers[us.fingerprint, "audio"].add(got["audio"])
    assert listener.open(us.fingerprint, "audio", sender.seal("audio", b"\xfcda")) == \
        b"\xfcda"
    video = sender.seal("video", b"\x50\x42\x00\x9d\x01\x2a\x40\x01\xf0\x00pixels")
    with pytest.raises(FrameError):
        listener.open(us.fingerprint, "video", video)
    with pytest.raises(FrameError):  # nor as audio: the audio key is another key
        listener.open(us.fingerprint, "audio", video)
    # principals see each other: both keys
    assert set(handed(plan, us, ru)) == {"audio", "video"}
    # with interpreter_video, the interpreter gets the video key too
    assert set(handed(replace(plan, interpreter_video=True), us,
                      world.ru_interpreter)) == {"audio", "video"}
    # a sender (or a server holding a device key) that hands the interpreter a video key
    # the plan does not give it: refused
    ours, theirs = FrameCrypt(us, plan.call), FrameCrypt(world.ru_interpreter, plan.call)
    ours.take(plan, theirs.message(plan, us.fingerprint), world.ru_interpreter.public)
    forged = framekeys.message(us, ours.ecdh, call=plan.call, plan_hash=plan.hash,
                               receiver=world.ru_interpreter.fingerprint,
                               peer_ecdh=theirs.ecdh.public,
                               keys={kind: ours.sealers[kind].key
                                     for kind in ("audio", "video")})
    with pytest.raises(SignatureError):
        theirs.take(plan, forged, us.public)
    assert not theirs.openers


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

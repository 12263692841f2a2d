"""A hostile server against the Python endpoint. For each attack the endpoint raises an
alarm and no media reaches anyone outside the plan (nor, where the attack breaks the
trust between the principals, anyone at all)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from summitline.client.bilateral import Bilateral, provision
from summitline.client.ice import loopback
from summitline.client.media import GatedAudioTrack, MediaSource
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, PlanRejected
from summitline.core.endpoint import offers
from summitline.core.roles import MediaKind, Phase, Role
from summitline.core.sas import sas
from summitline.crypto import sdp as signed_sdp
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.press.gateway import PressGateway
from summitline.server.room import CallRoom
from tests.client.test_session import WAIT_S
from tests.hostile import (
    HostileServer,
    Message,
    Wire,
    hide_fingerprints,
    hostile,
    swap_fingerprint,
)


def sessions_via(url: str, call: Bilateral) -> list[CallSession]:
    return [CallSession(url, call.call, side.identity(), ice=loopback(), reconnect=False)
            for side in (call.a, call.b)]


async def a_then_b(url: str, call: Bilateral) -> tuple[CallSession, CallSession,
                                                     list[asyncio.Task[None]]]:
    """Start the call; a joins, then b. b offers and a answers: b is the one whose
    device id sorts first (``core.endpoint.offers``)."""
    await call.a.operator.control(call.call, "start")
    a, b = sessions_via(url, call)
    if offers(a.device, b.device):
        a, b = b, a
    tasks = [asyncio.create_task(a.run())]
    await asyncio.wait_for(a.joined.wait(), WAIT_S)
    tasks.append(asyncio.create_task(b.run()))
    return a, b, tasks


async def first_alarm(sessions: list[CallSession]) -> CallSession:
    waits = {asyncio.ensure_future(s.wait_for(lambda s=s: bool(s.alarms))): s
             for s in sessions}
    done, pending = await asyncio.wait(waits, timeout=WAIT_S,
                                       return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    assert done, "no endpoint raised an alarm"
    return waits[done.pop()]


def no_media(sessions: list[CallSession]) -> None:
    for s in sessions:
        assert s.frames(MediaKind.AUDIO) == s.frames(MediaKind.VIDEO) == 0
        assert not any(link.connected for link in s.links.values())


async def stop(sessions: list[CallSession], tasks: list[asyncio.Task[None]]) -> None:
    for s in sessions:
        await s.leave()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("where", ["offer", "answer", "both"])
async def test_a_swapped_dtls_fingerprint_is_caught(where: str, ws_url: str,
                                                     bilateral: Bilateral,
                                                     http: httpx.AsyncClient) -> None:
    targets = {"offer", "answer"} if where == "both" else {where}

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] in targets:
            msg = {**msg, "sdp": swap_fingerprint(msg["sdp"])}
        return msg

    async with hostile(ws_url, down=down) as proxy:
        a, b, tasks = await a_then_b(proxy.url, bilateral)
        alarmed = await first_alarm([a, b])
        assert alarmed is (b if where == "answer" else a)
        assert "fails its signature" in alarmed.alarms[0]
        assert "fingerprint may have been swapped" in alarmed.alarms[0]
        no_media([a, b])
        # what each principal would read aloud differs: a MITM cannot hide behind the SAS
        sent = next(m for m in proxy.wire_of(b.device).seen_up if m["type"] == "offer")
        got = next(m for m in proxy.wire_of(a.device).seen_down if m["type"] == "offer")
        if "offer" in targets:
            x = ["sha-256 00"]
            assert sas(a.call, signed_sdp.fingerprints(sent["sdp"]), x) != sas(
                a.call, signed_sdp.fingerprints(got["sdp"]), x)
        await stop([a, b], tasks)
    entries = (await signed_get(http, bilateral.a.operator.key,
                                 f"/api/calls/{bilateral.call}/record")).json()["entries"]
    answered = [e for e in entries if e["kind"] == "signal.answer"]
    assert answered == [] if "offer" in targets else len(answered) == 1


def tamper_welcome(change: Any) -> Any:
    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            msg = copy.deepcopy(msg)
            change(msg["signed_plan"])
        return msg
    return down


async def assert_plan_refused(url: str, call: Bilateral, http: httpx.AsyncClient,
                              why: str) -> None:
    await call.a.operator.control(call.call, "start")
    sessions = sessions_via(url, call)
    results = await asyncio.wait_for(asyncio.gather(*(s.run() for s in sessions),
                                                    return_exceptions=True), WAIT_S)
    for s, result in zip(sessions, results, strict=True):
        assert isinstance(result, PlanRejected), result
        assert why in str(result) and s.alarms and s.alarms[0].startswith("plan refused")
        assert not s.links
    no_media(sessions)
    entries = (await signed_get(http, call.a.operator.key,
                                 f"/api/calls/{call.call}/record")).json()["entries"]
    assert not [e for e in entries if e["kind"] == "signal.offer"]
    for s in sessions:
        await s.leave()


async def test_a_substituted_device_key_in_the_plan(ws_url: str, bilateral: Bilateral,
                                                    http: httpx.AsyncClient) -> None:
    attacker = PrivateKey.generate()

    def change(signed: dict[str, Any]) -> None:
        other = signed["plan"]["participants"][1]
        other["key"], other["device"] = attacker.public.b64u, attacker.fingerprint

    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        await assert_plan_refused(proxy.url, bilateral, http, "not certified by")


async def test_a_plan_signed_by_one_delegation_only(ws_url: str, bilateral: Bilateral,
                                                    http: httpx.AsyncClient) -> None:
    def change(signed: dict[str, Any]) -> None:
        del signed["signatures"][bilateral.b.operator.id]

    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        await assert_plan_refused(proxy.url, bilateral, http, "not signed by")


async def test_an_old_plan_served_again(ws_url: str, http: httpx.AsyncClient) -> None:
    old = await provision(http)  # an earlier call: complete, validly signed, but not this one
    new = await provision(http)
    old_signed = (await signed_get(http, old.a.operator.key,
                                   f"/api/plans/{old.plan.hash}")).json()
    new.a.operator.pinned.update(old.a.operator.pinned)  # even if it knew those keys

    def change(signed: dict[str, Any]) -> None:
        signed["plan"], signed["signatures"] = old_signed["plan"], old_signed["signatures"]

    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        await assert_plan_refused(proxy.url, new, http, "")


async def test_an_interpreter_grant_widened_to_video(ws_url: str,
                                                     http: httpx.AsyncClient) -> None:
    interpreter = PrivateKey.generate()
    call = await provision(http, extra=[(1, interpreter, Role.INTERPRETER, "RU interpreter")])

    def change(signed: dict[str, Any]) -> None:
        signed["plan"]["interpreter_video"] = True

    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        await assert_plan_refused(proxy.url, call, http, "invalid")


async def test_an_interpreter_without_video_grant_receives_no_video(
        ws_url: str, http: httpx.AsyncClient) -> None:
    interpreter = PrivateKey.generate()
    call = await provision(http, extra=[(1, interpreter, Role.INTERPRETER, "RU interpreter")])
    await call.a.operator.control(call.call, "start")
    a, b = sessions_via(ws_url, call)
    i = CallSession(ws_url, call.call, call.b.identity(interpreter), ice=loopback())
    tasks = [asyncio.create_task(s.run()) for s in (a, b, i)]
    await asyncio.wait_for(i.wait_for(
        lambda: len(i.links) == 2 and all(link.frames[MediaKind.AUDIO] > 20
                                          for link in i.links.values())), WAIT_S)
    for link in i.links.values():
        assert link.tracks == ["audio"]  # every track it was sent: floor audio, no video
        assert link.frames[MediaKind.VIDEO] == 0
    await a.wait_for(lambda: a.frames(MediaKind.VIDEO) > 10)  # the principals see each other
    assert i.alarms == [] and a.alarms == []
    await stop([a, b, i], tasks)


async def test_a_listener_not_in_the_plan_is_refused(ws_url: str, bilateral: Bilateral,
                                                     http: httpx.AsyncClient) -> None:
    outsider = PrivateKey.generate()
    pc = RTCPeerConnection(loopback().configuration())
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    injected: list[str] = []

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            # tell the endpoint an outsider is present, and have the outsider ask for media
            msg = {**msg, "peers": [*msg["peers"], {"device": outsider.fingerprint,
                                                    "generation": 0}]}
            offer_sdp = pc.localDescription.sdp
            sig = signed_sdp.sign(outsider, call=bilateral.call,
                                  plan_hash=bilateral.plan.hash, receiver=wire.device,
                                  generation=1, kind="offer", sdp=offer_sdp)
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(wire.inject({
                "type": "offer", "from": outsider.fingerprint, "generation": 1,
                "sdp": offer_sdp, "signature": sig})))
            injected.append(wire.device)
        return msg

    async with hostile(ws_url, down=down) as proxy:
        await bilateral.a.operator.control(bilateral.call, "start")
        a, b = sessions_via(proxy.url, bilateral)
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(
            lambda s=s: bool(s.alarms) and s.frames(MediaKind.VIDEO) > 10) for s in (a, b))),
            WAIT_S)
        for s in (a, b):
            assert any("outside the plan" in text for text in s.alarms)
        # nothing was ever sent towards the outsider, and it received no media
        for wire in proxy.wires:
            assert not [m for m in wire.seen_up if m.get("to") == outsider.fingerprint]
        assert pc.remoteDescription is None and pc.connectionState == "new"
        await stop([a, b], tasks)
    await pc.close()
    assert len(injected) == 2


async def test_an_old_offer_replayed(ws_url: str, bilateral: Bilateral) -> None:
    replay: dict[str, Message] = {}

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "offer":
            replay["offer"] = msg
            replay["to"] = wire  # type: ignore[assignment]
        return msg

    async with hostile(ws_url, down=down) as proxy:
        a, b, tasks = await a_then_b(proxy.url, bilateral)
        await a.wait_for(lambda: a.frames(MediaKind.VIDEO) > 10)
        await replay["to"].inject(replay["offer"])  # type: ignore[attr-defined]
        await asyncio.wait_for(a.wait_for(lambda: bool(a.alarms)), WAIT_S)
        assert "old generation" in a.alarms[0]
        (link,) = a.links.values()
        assert link.generation == 1 and link.connected  # the call went on untouched
        await stop([a, b], tasks)
        assert proxy.wires


async def test_hidden_fingerprints_cannot_pass_for_the_signed_ones(
        ws_url: str, bilateral: Bilateral) -> None:
    # Found by review: a server hid its own fingerprints where only aiortc's parser looks
    # and moved the genuine ones where a naive extractor finds them. The signature now
    # covers the whole SDP text, so the rewritten offer fails it.
    attacker = RTCPeerConnection(loopback().configuration())
    for kind in ("audio", "video"):
        attacker.addTransceiver(kind, direction="recvonly")
    await attacker.setLocalDescription(await attacker.createOffer())
    forged: list[str] = []

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "offer":
            msg = {**msg, "sdp": hide_fingerprints(attacker.localDescription.sdp,
                                                   signed_sdp.fingerprints(msg["sdp"]))}
            forged.append(msg["sdp"])
        return msg

    async with hostile(ws_url, down=down) as proxy:
        a, b, tasks = await a_then_b(proxy.url, bilateral)
        await asyncio.wait_for(a.wait_for(lambda: bool(a.alarms)), WAIT_S)
        assert "fails its signature" in a.alarms[0]
        # the forgery carries the genuine fingerprints, as a naive extractor sees them
        sent = next(m for m in proxy.wire_of(b.device).seen_up if m["type"] == "offer")
        assert signed_sdp.fingerprints(forged[0]) == signed_sdp.fingerprints(sent["sdp"])
        no_media([a, b])
        assert attacker.remoteDescription is None  # a never answered the attacker
        await stop([a, b], tasks)
    await attacker.close()


@pytest.mark.parametrize("proof", ["none", "forged"])
async def test_a_start_no_delegation_signed_sends_no_media(proof: str, ws_url: str,
                                                           bilateral: Bilateral) -> None:
    # The call is never started by an operator; the server claims it was.
    forger = PrivateKey.generate()

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            at = 1_700_000_000_000
            start = None if proof == "none" else {
                "delegation": bilateral.a.operator.id, "at": at,
                "signature": forger.sign({"purpose": "summitline/control", "at": at})}
            msg = {**msg, "phase": "closed", "start": start}
        return msg

    async with hostile(ws_url, down=down) as proxy:
        a, b = sessions_via(proxy.url, bilateral)
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        for s in (a, b):
            await asyncio.wait_for(s.wait_for(lambda s=s: bool(s.alarms)), WAIT_S)
            assert "no delegation of the plan signed the start" in s.alarms[0]
            assert s.phase is Phase.PLANNED
        no_media([a, b])
        for w in proxy.wires:  # neither endpoint even offered
            assert not [m for m in w.seen_up if m["type"] == "offer"]
        await stop([a, b], tasks)


async def test_the_press_deadline_comes_from_the_signed_start(ws_url: str,
                                                              http: httpx.AsyncClient) -> None:
    call = await provision(http, press_window_s=60)
    a = CallSession(ws_url, call.call, call.a.identity(), ice=loopback())
    task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.joined.wait(), WAIT_S)
    await call.b.operator.control(call.call, "start")
    await asyncio.wait_for(a.wait_for(lambda: a.phase is Phase.OPEN), WAIT_S)
    entries = (await signed_get(http, call.a.operator.key,
                                 f"/api/calls/{call.call}/record")).json()["entries"]
    signed_at = next(e["data"]["at"] for e in entries if e["kind"] == "call.started")
    assert a.started_ms == signed_at and a.press_deadline_ms == signed_at + 60_000
    await a.leave()
    await asyncio.gather(task, return_exceptions=True)


# -- the booth: only signed actions put an interpreter on air (core/booth.py) -----------
@dataclass
class Booth:
    call: Bilateral
    proxy: HostileServer
    a: CallSession
    b: CallSession  # the Russian principal, listening to the Russian channel
    i1: CallSession
    i2: CallSession
    tasks: list[asyncio.Task[None]]

    @property
    def everyone(self) -> list[CallSession]:
        return [self.a, self.b, self.i1, self.i2]

    def heard(self, i: CallSession) -> int:
        link = self.b.link(i.device)
        assert link is not None
        return link.loud

    async def inject(self, to: list[CallSession], msg: Message) -> None:
        for s in to:
            await self.proxy.wire_of(s.device).inject(msg)

    async def a_second_later(self) -> None:
        """Until b has had another second of audio from both booth partners."""
        links = [self.b.link(i.device) for i in (self.i1, self.i2)]
        before = [link.frames[MediaKind.AUDIO] for link in links if link]
        await asyncio.wait_for(self.b.wait_for(lambda: all(
            link.frames[MediaKind.AUDIO] > n + 50 for link, n in zip(links, before,
                                                                     strict=True) if link)),
            WAIT_S)


@contextlib.asynccontextmanager
async def booth_call(ws_url: str, http: httpx.AsyncClient) -> AsyncIterator[Booth]:
    k1, k2 = PrivateKey.generate(), PrivateKey.generate()
    call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter 1"),
                                        (1, k2, Role.INTERPRETER, "RU interpreter 2")])
    await call.a.operator.control(call.call, "start")
    async with hostile(ws_url) as proxy:
        a, b = sessions_via(proxy.url, call)
        i1, i2 = (CallSession(proxy.url, call.call, call.b.identity(k), ice=loopback(),
                              reconnect=False, source=MediaSource.interpreter(parrot=True))
                  for k in (k1, k2))
        tasks = [asyncio.create_task(s.run()) for s in (a, b, i1, i2)]
        booth = Booth(call, proxy, a, b, i1, i2, tasks)
        try:
            for s in booth.everyone:
                await asyncio.wait_for(s.wait_for(lambda s=s: len(s.links) == 3 and all(
                    link.frames[MediaKind.AUDIO] > 25 for link in s.links.values())), WAIT_S)
            b.listen("ru")
            yield booth
        finally:
            await stop(booth.everyone, tasks)


def gate(s: CallSession) -> GatedAudioTrack:
    assert s.source.gate is not None
    return s.source.gate


@pytest.mark.parametrize("proof", ["none", "forged"])
async def test_the_server_tells_an_interpreter_it_is_live(proof: str, ws_url: str,
                                                          http: httpx.AsyncClient) -> None:
    async with booth_call(ws_url, http) as booth:
        i1 = booth.i1
        actions = {} if proof == "none" else {"ru": {
            "action": "live", "from": i1.device, "to": None, "seq": 1, "at": 1,
            "signature": PrivateKey.generate().sign({"purpose": "summitline/booth"})}}
        await booth.inject([booth.b, i1], {"type": "booth", "live": {"ru": i1.device},
                                           "sources": {}, "actions": actions})
        for s in (booth.b, i1):
            await asyncio.wait_for(s.wait_for(lambda s=s: bool(s.alarms)), WAIT_S)
            assert any("not believed" in text for text in s.alarms), s.alarms
        await booth.a_second_later()
        # the microphone stayed closed, and the listener heard nothing of the booth
        assert not i1.live and not gate(i1).open and gate(i1).voiced == 0
        assert booth.heard(i1) == 0 and booth.b.mixes["ru"].playing is None
        assert booth.b.booth["live"] == {}


async def test_a_forged_handover_and_a_replayed_go_live(ws_url: str,
                                                        http: httpx.AsyncClient) -> None:
    async with booth_call(ws_url, http) as booth:
        b, i1, i2 = booth.b, booth.i1, booth.i2
        await i1.go_live()
        await asyncio.wait_for(b.wait_for(lambda: booth.heard(i1) > 25), WAIT_S)
        live_state = next(m for m in booth.proxy.wire_of(b.device).seen_down
                          if m["type"] == "booth" and m["live"])
        # a handover i1 never signed: the server's own signature, under i1's name
        forged = {"action": "handover", "from": i1.device, "to": i2.device, "seq": 2,
                  "at": 1, "signature": PrivateKey.generate().sign({"purpose": "x"})}
        await booth.inject([b, i1, i2], {"type": "booth", "live": {"ru": i2.device},
                                         "sources": {}, "actions": {"ru": forged}})
        for s in (b, i1, i2):
            await asyncio.wait_for(s.wait_for(lambda s=s: bool(s.alarms)), WAIT_S)
        await booth.a_second_later()
        # the server may take i1 off air (it can always deny service), not put i2 on
        assert not i2.live and gate(i2).voiced == 0 and booth.heard(i2) == 0
        assert b.mixes["ru"].playing == i1.device and b.booth["live"] == {}
        # i1 goes quiet (signed, seq 2); the server replays its old go-live (seq 1)
        await i1.go_quiet()
        for s in (b, i1):
            await asyncio.wait_for(s.wait_for(
                lambda s=s: s.ledger is not None and s.ledger.seq.get("ru") == 2), WAIT_S)
        voiced, alarms = gate(i1).voiced, [len(s.alarms) for s in (b, i1)]
        await booth.inject([b, i1], live_state)
        for s, n in zip((b, i1), alarms, strict=True):
            await asyncio.wait_for(s.wait_for(lambda s=s, n=n: len(s.alarms) > n), WAIT_S)
            assert any("replayed" in text for text in s.alarms[n:]), s.alarms
        quiet_from = booth.heard(i1)
        await booth.a_second_later()
        assert not i1.live and not gate(i1).open and gate(i1).voiced == voiced
        assert booth.heard(i1) - quiet_from <= 3  # at most what was in flight


AHEAD_MS = 119_000  # the review's start: signed two minutes in the future
CUT_SLACK_MS = 1000  # a loaded machine's timer and frame pacing, far below 119 s


def start_ahead(call: Bilateral) -> dict[str, Any]:
    """A start as an operator whose clock runs 119 s fast signs it."""
    at = int(time.time() * 1000) + AHEAD_MS
    return {"delegation": call.a.operator.id, "at": at, "signature": call.a.operator.key.sign(
        statements.control(call.call, "start", call.a.operator.id, at))}


async def test_a_start_signed_119_s_ahead(monkeypatch: pytest.MonkeyPatch, ws_url: str,
                                         http: httpx.AsyncClient) -> None:
    # the hostile server also keeps the window open: the endpoints' own cut must hold
    monkeypatch.setattr(CallRoom, "arm_press_timer", lambda self: None)
    monkeypatch.setattr(PressGateway, "enforce_deadline", False)
    call = await provision(http, press_window_s=3)
    forged = start_ahead(call)
    r = await http.post(f"/api/calls/{call.call}/control", json={
        "action": "start", **{k: forged[k] for k in ("delegation", "at", "signature")}})
    assert r.status_code == 403 and "ahead" in r.json()["detail"]  # the server refuses it

    def down(wire: Wire, msg: Message) -> Message:  # ... a hostile one passes it on
        if msg["type"] in ("welcome", "phase") and msg.get("start"):
            msg = {**msg, "start": forged}
        return msg

    async with hostile(ws_url, down=down) as proxy:
        a, b = sessions_via(proxy.url, call)
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        await call.a.operator.control(call.call, "start")
        for s in (a, b):
            await asyncio.wait_for(s.wait_for(lambda s=s: s.press_cut_ms is not None),
                                   WAIT_S)
            assert s.started_ms == forged["at"] and s.start_seen_ms is not None
            # the window counts from when the endpoint saw the start, not from `at`
            assert s.press_deadline_ms == s.start_seen_ms + 3000
            assert 0 <= s.press_cut_ms - s.press_deadline_ms <= CUT_SLACK_MS
            assert any("ahead of this clock" in text for text in s.alarms), s.alarms
            assert s.phase is Phase.OPEN  # the server's word: the window would go on
        assert a.press_answered.is_set()  # it did send to the press, for the window
        await stop([a, b], tasks)


class Listener(asyncio.DatagramProtocol):
    """A UDP port that counts what reaches it: the address a server would inject."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)


def injected_candidate(port: int, sender: str, generation: int) -> Message:
    return {"type": "candidate", "from": sender, "generation": generation,
            "candidate": f"candidate:9 1 udp 2130706431 127.0.0.1 {port} typ host",
            "sdp_mid": "0", "sdp_mline_index": 0}


async def test_an_injected_candidate_is_never_checked(ws_url: str,
                                                      bilateral: Bilateral) -> None:
    transport, trap = await asyncio.get_running_loop().create_datagram_endpoint(
        Listener, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    injected: list[Message] = []

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] in ("offer", "answer"):  # with the SDP, as a trickled candidate
            injected.append(candidate := injected_candidate(port, msg["from"],
                                                            msg["generation"]))
            asyncio.get_running_loop().call_soon(
                lambda: asyncio.ensure_future(wire.inject(candidate)))
        return msg

    try:
        async with hostile(ws_url, down=down) as proxy:
            a, b, tasks = await a_then_b(proxy.url, bilateral)
            for s in (a, b):
                await asyncio.wait_for(s.wait_for(
                    lambda s=s: s.frames(MediaKind.VIDEO) > 10), WAIT_S)
            for s, other in ((a, b), (b, a)):  # and again once connected
                await proxy.wire_of(s.device).inject(injected_candidate(port, other.device, 1))
            seen = a.frames(MediaKind.AUDIO)
            await asyncio.wait_for(a.wait_for(lambda: a.frames(MediaKind.AUDIO) > seen + 100),
                                   WAIT_S)  # two more seconds of media
            assert len(injected) == 2 and a.ignored_candidates == b.ignored_candidates == 2
            assert trap.received == []  # not one connectivity check went to the address
            for s in (a, b):
                (link,) = s.links.values()
                ice = link.pc.getTransceivers()[0].sender.transport.transport
                remote = [c.port for c in ice.getRemoteCandidates()]
                assert remote and port not in remote
            await stop([a, b], tasks)
    finally:
        transport.close()


async def test_an_interpreter_s_own_go_live_from_before_its_session_opens_nothing(
        ws_url: str, http: httpx.AsyncClient) -> None:
    # attacker review: the interpreter went live and quiet, its client restarted, and the
    # server replayed its own old go-live in the welcome: the gate opened, no alarm
    async with booth_call(ws_url, http) as booth:
        b, i1 = booth.b, booth.i1
        await asyncio.wait_for(i1.wait_for(lambda: i1.ledger is not None), WAIT_S)
        assert i1.ledger is not None and i1.signed is not None
        at = int(time.time() * 1000) - 60_000  # signed a minute before this session
        seq = i1.ledger.next_seq("ru")
        old = {"action": "live", "from": i1.device, "to": None, "seq": seq, "at": at,
               "signature": i1.identity.key.sign(statements.booth(
                   i1.call, i1.signed.plan.hash, "ru", "live", i1.device, seq, at))}
        n = len(i1.alarms)
        await booth.inject([b, i1], {"type": "booth", "live": {"ru": i1.device},
                                     "sources": {}, "actions": {"ru": old}})
        await asyncio.wait_for(i1.wait_for(lambda: len(i1.alarms) > n), WAIT_S)
        assert any("before this session" in text for text in i1.alarms[n:]), i1.alarms
        await booth.a_second_later()
        assert not i1.live and not gate(i1).open and gate(i1).voiced == 0
        assert booth.heard(i1) == 0
        # going live now, by its own hand, works
        await i1.go_live()
        await asyncio.wait_for(b.wait_for(lambda: booth.heard(i1) > 25), WAIT_S)


async def test_a_second_start_never_moves_the_press_deadline_later(
        ws_url: str, http: httpx.AsyncClient) -> None:
    # attacker review: a hostile server holding the other delegation's later start moved
    # every endpoint's deadline later with it, without an alarm
    call = await provision(http, press_window_s=60)
    await call.a.operator.control(call.call, "start")
    later = int(time.time() * 1000) + 3000
    second = {"delegation": call.b.operator.id, "at": later,
              "signature": call.b.operator.key.sign(
                  statements.control(call.call, "start", call.b.operator.id, later))}
    async with hostile(ws_url) as proxy:
        a = CallSession(proxy.url, call.call, call.a.identity(), ice=loopback())
        task = asyncio.create_task(a.run())
        try:
            await asyncio.wait_for(a.wait_for(lambda: a.press_deadline_ms is not None), WAIT_S)
            deadline, n = a.press_deadline_ms, len(a.alarms)
            await proxy.wire_of(a.device).inject({"type": "phase", "phase": "open",
                                                  "press_deadline_ms": None,
                                                  "start": second})
            await asyncio.wait_for(a.wait_for(lambda: len(a.alarms) > n), WAIT_S)
            assert any("second, different signed start" in t for t in a.alarms[n:])
            assert a.press_deadline_ms == deadline
        finally:
            await a.leave()
            await asyncio.wait_for(task, WAIT_S)

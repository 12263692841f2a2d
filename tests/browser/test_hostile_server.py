"""A hostile server against the browser endpoint: Playwright's WebSocket routing puts
the attacker between the page and the real server. The other principal is an honest
Python endpoint. For each attack the browser raises an alarm (and stops where trust
between the principals is broken), and no media reaches anyone outside the plan.

Who offers is the rule of docs/protocol.md 5.5: the device whose id sorts first, whoever
joined first. A test picks the direction by picking the Python principal's key."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from playwright.async_api import Browser, WebSocketRoute, expect

from summitline.client.ice import loopback
from summitline.client.media import MediaSource, loudness
from summitline.client.operator import participant
from summitline.client.peer import SILENCE
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind, Role
from summitline.crypto import sdp as signed_sdp
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.press.gateway import PressGateway
from summitline.server.room import CallRoom
from tests.browser.people import (
    cosigned_plan,
    end_with_python,
    enrol_browser,
    health,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)
from tests.browser.test_principals import key_sorting
from tests.client.test_session import WAIT_S
from tests.hostile import Message, swap_fingerprint

Tamper = Callable[[Message], Message | None]


@dataclass
class Attack:
    python_first: bool  # who joins first
    python_offers: bool  # the Python principal's id sorts first: it offers, the browser answers
    down: Tamper  # server -> browser
    alarm: str  # what the browser's alarm says
    stops: bool  # the call stops (trust broken) or goes on (a stranger refused)
    interpreter: bool = False


def on_type(kind: str, change: Callable[[Message], None]) -> Tamper:
    def tamper(msg: Message) -> Message:
        if msg["type"] == kind:
            msg = copy.deepcopy(msg)
            change(msg)
        return msg
    return tamper


ATTACKER = PrivateKey.generate()


def substitute_key(msg: Message) -> None:
    other = msg["signed_plan"]["plan"]["participants"][1]
    other["key"], other["device"] = ATTACKER.public.b64u, ATTACKER.fingerprint


def one_signature(msg: Message) -> None:
    sigs = msg["signed_plan"]["signatures"]
    del sigs[sorted(sigs)[0]]


def plant_aide(msg: Message) -> None:
    """Issue 11, attack 1: a device the attacker holds, listed as the other delegation's
    aide under a certificate the attacker signed itself."""
    plan = msg["signed_plan"]["plan"]
    them = plan["delegations"][1]["id"]
    plan["participants"].append({
        "device": ATTACKER.fingerprint, "key": ATTACKER.public.b64u, "delegation": them,
        "role": "aide", "name": "Aide", "language": "ru",
        "certificate": ATTACKER.sign(statements.device(them, ATTACKER.fingerprint,
                                                       ATTACKER.public.b64u, "aide", "Aide"))})


def rename(msg: Message) -> None:
    """Issue 11, attack 3: a delegation named by someone else."""
    plan = msg["signed_plan"]["plan"]
    plan["delegations"][1]["name"] = "Republic of Elsewhere"


def widen_grant(msg: Message) -> None:
    msg["signed_plan"]["plan"]["interpreter_video"] = True


def swap(msg: Message) -> None:
    msg["sdp"] = swap_fingerprint(msg["sdp"])


ATTACKS = {
    # the browser receives the offer when the Python principal's id sorts first
    "fingerprint swapped in the offer": Attack(False, True, on_type("offer", swap),
                                               "fails its signature", True),
    "fingerprint swapped in the answer": Attack(True, False, on_type("answer", swap),
                                                "fails its signature", True),
    "device key substituted in the plan": Attack(True, False,
                                                 on_type("welcome", substitute_key),
                                                 "is not certified by", True),
    "device of the other delegation planted": Attack(True, False,
                                                     on_type("welcome", plant_aide),
                                                     "is not certified by", True),
    "delegation renamed": Attack(True, False, on_type("welcome", rename),
                                 "not the name the delegation signed", True),
    "plan signed by one delegation only": Attack(True, False,
                                                 on_type("welcome", one_signature),
                                                 "not signed by", True),
    "interpreter grant widened to video": Attack(True, False, on_type("welcome", widen_grant),
                                                 "on the plan is invalid", True, True),
}


@dataclass
class Route:
    """The attacker's hold on the page's signaling connection."""

    down: Tamper
    page_side: WebSocketRoute | None = None
    sent_up: list[Message] = field(default_factory=list)

    def __call__(self, ws: WebSocketRoute) -> None:
        self.page_side = ws
        server = ws.connect_to_server()

        def up(m: str | bytes) -> None:
            self.sent_up.append(json.loads(m))
            server.send(m)

        def down(m: str | bytes) -> None:
            out = self.down(json.loads(m))
            if out is not None:
                ws.send(json.dumps(out))

        ws.on_message(up)
        server.on_message(down)

    def inject(self, msg: Message) -> None:
        assert self.page_side is not None
        self.page_side.send(json.dumps(msg))


async def setup(browser: Browser, server: str, http: httpx.AsyncClient, python_offers: bool,
                interpreter: bool = False) -> tuple[Any, Any, PrivateKey, Any, Any]:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = key_sorting(web.device, first=python_offers)
    people = [principal(us, web.key, "President of the United States", "en"),
              principal(ru, py_key, "President of the Russian Federation", "ru")]
    if interpreter:
        people.append(participant(PrivateKey.generate(), ru.key, Role.INTERPRETER,
                                  "RU interpreter", "ru"))
    plan = await cosigned_plan(us, ru, link, people)
    await us.control(plan.call, "start")
    return us, ru, py_key, web, plan


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_the_browser_catches(name: str, browser: Browser, server: str, ws_url: str,
                                   http: httpx.AsyncClient) -> None:
    attack = ATTACKS[name]
    us, ru, py_key, web, plan = await setup(browser, server, http, attack.python_offers,
                                            attack.interpreter)
    route = Route(attack.down)
    await web.page.route_web_socket("**/ws", route)
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task: asyncio.Task[None] | None = None
    if attack.python_first:
        task = asyncio.create_task(py.run())
        await asyncio.wait_for(py.joined.wait(), WAIT_S)
    await join_in_browser(web, server, plan.call)
    if not attack.python_first:
        await web.page.wait_for_function(  # joined: the plan is verified
            "(c) => window.summitlineSession?.call === c && window.summitlineSession.signed",
            arg=plan.call)
        task = asyncio.create_task(py.run())
    await expect(web.page.locator("#stop h1")).to_have_text("This call cannot be verified")
    await web.page.locator("#stop summary").click()
    await expect(web.page.locator("#stop-detail")).to_contain_text(attack.alarm)
    alarms = await web.page.evaluate("() => window.summitlineSession.alarms")
    assert alarms and attack.alarm in alarms[0]
    # no media: the browser holds no peer connection and stopped its camera; the Python
    # principal received nothing
    assert await web.page.evaluate("() => window.summitlineSession.links.size") == 0
    assert await web.page.evaluate("() => window.summitlineSession.localStream"
                                   ".getTracks().every(t => t.readyState === 'ended')")
    assert py.frames(MediaKind.VIDEO) == py.frames(MediaKind.AUDIO) == 0
    assert not any(link.connected for link in py.links.values())
    await end_with_python(us, plan.call, task, py)


async def test_the_browser_refuses_a_listener_not_in_the_plan_and_a_replayed_offer(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        screenshots: Any) -> None:
    us, ru, py_key, web, plan = await setup(browser, server, http, python_offers=True)
    offers: list[Message] = []

    def keep_offers(msg: Message) -> Message:
        if msg["type"] == "offer":
            offers.append(msg)
        return msg

    route = Route(keep_offers)
    await web.page.route_web_socket("**/ws", route)
    await join_in_browser(web, server, plan.call)  # the Python id sorts first: it offers
    await web.page.wait_for_function(
        "(c) => window.summitlineSession?.call === c && window.summitlineSession.signed",
        arg=plan.call)
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await wait_for_media(web.page, frames=10, audio=10)

    # a stranger, with a key of its own, asks the browser for its media
    outsider = PrivateKey.generate()
    pc = RTCPeerConnection(loopback().configuration())
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    route.inject({"type": "offer", "from": outsider.fingerprint, "generation": 1, "sdp": sdp,
                  "signature": signed_sdp.sign(outsider, call=plan.call, plan_hash=plan.hash,
                                               receiver=web.device, generation=1,
                                               kind="offer", sdp=sdp)})
    await expect(web.page.locator("#alarm")).to_contain_text("outside the plan")
    # and the old offer of the real peer, replayed
    route.inject(offers[0])
    await expect(web.page.locator("#alarm")).to_contain_text("old generation")
    await web.page.screenshot(path=str(screenshots / "principal-alarm.png"))
    assert not [m for m in route.sent_up if m.get("to") == outsider.fingerprint]
    assert pc.remoteDescription is None
    # the call itself went on
    assert await web.page.evaluate("() => window.summitlineSession.links.size") == 1
    before = py.frames(MediaKind.VIDEO)
    await py.wait_for(lambda: py.frames(MediaKind.VIDEO) > before + 10)
    await pc.close()
    await end_with_python(us, plan.call, task, py)


async def test_the_browser_takes_no_unsigned_start(browser: Browser, server: str,
                                                   ws_url: str,
                                                   http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = key_sorting(web.device, first=False)  # the browser offers, once started
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        principal(ru, py_key, "President of the Russian Federation", "ru")])
    # nobody starts the call; the server tells the browser it has started
    route = Route(on_type("welcome", lambda m: m.update(phase="closed", start=None)))
    await web.page.route_web_socket("**/ws", route)
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await asyncio.wait_for(py.joined.wait(), WAIT_S)
    await join_in_browser(web, server, plan.call)  # it would offer, if started
    await expect(web.page.locator("#alarm")).to_contain_text(
        "no delegation of the plan signed the start")
    await expect(web.page.locator("#phase")).to_have_text("Waiting for the call to start")
    assert await web.page.evaluate("() => window.summitlineSession.links.size") == 0
    assert not [m for m in route.sent_up if m["type"] == "offer"]
    assert py.frames(MediaKind.AUDIO) == 0 and not py.links
    await end_with_python(us, plan.call, task, py)


# -- the booth: only signed actions put an interpreter on air (web/booth.js) ------------
def forged_action(action: str, sender: str, seq: int, to: str | None = None) -> Message:
    """An action under an interpreter's name, signed by the server's own key."""
    return {"action": action, "from": sender, "to": to, "seq": seq, "at": 1,
            "signature": PrivateKey.generate().sign({"purpose": "summitline/booth"})}


async def alarmed(page: Any, text: str, after: int) -> int:
    """Wait for an alarm saying ``text`` among those after the first ``after``; how many
    alarms there are then."""
    await page.wait_for_function(
        "([text, after]) => window.summitlineSession.alarms.slice(after)"
        ".some(a => a.includes(text))", arg=[text, after])
    n: int = await page.evaluate("() => window.summitlineSession.alarms.length")
    return n


async def mic_closed(page: Any) -> bool:
    closed: bool = await page.evaluate(
        "() => !window.summitlineSession.live && window.summitlineSession.localStream"
        ".getAudioTracks().every(t => !t.enabled)")
    return closed


async def test_the_server_cannot_put_a_browser_interpreter_on_air(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, ru, "RU interpreter", Role.INTERPRETER)
    us_key, ru_key, partner = (PrivateKey.generate() for _ in range(3))
    plan = await cosigned_plan(us, ru, link, [
        principal(us, us_key, "President of the United States", "en"),
        principal(ru, ru_key, "President of the Russian Federation", "ru"),
        participant(web.key, ru.key, Role.INTERPRETER, "RU interpreter", "ru"),
        participant(partner, ru.key, Role.INTERPRETER, "RU interpreter 2", "ru")])
    await us.control(plan.call, "start")
    states: list[Message] = []  # booth states the browser was sent

    def keep_booth(msg: Message) -> Message:
        if msg["type"] == "booth":
            states.append(msg)
        return msg

    route = Route(keep_booth)
    await web.page.route_web_socket("**/ws", route)
    # the Russian principal listens; the American one stays away (a lighter machine: the
    # attacker's relay of the browser's signaling runs in this process too)
    pins = dict(ru.pinned)
    b = CallSession(ws_url, plan.call, Identity(ru_key, pins), ice=loopback())
    bot = CallSession(ws_url, plan.call, Identity(partner, pins), ice=loopback(),
                      source=MediaSource.interpreter())
    tasks = [asyncio.create_task(s.run()) for s in (b, bot)]
    await join_in_browser(web, server, plan.call)
    heard = {"frames": 0, "loud": 0}  # what the Russian principal hears of the browser

    def hear(remote: str, frame: object, _now: float) -> None:
        if remote == web.device:
            heard["frames"] += 1
            heard["loud"] += loudness(frame) > SILENCE  # type: ignore[arg-type]

    b.audio_listeners.append(hear)
    mix = b.listen("ru")
    assert mix is not None
    await asyncio.wait_for(b.wait_for(lambda: heard["frames"] > 50), WAIT_S)
    seen = 0

    async def three_seconds_silent() -> None:
        frames = heard["frames"]  # three seconds, several beeps of the fake microphone
        await asyncio.wait_for(b.wait_for(lambda: heard["frames"] > frames + 150), WAIT_S)
        assert heard["loud"] == 0 and await mic_closed(web.page)
        await expect(web.page.locator("#indicator")).to_have_text("OFF AIR")

    # the server says the browser is live, with no action or one it signed itself
    route.inject({"type": "booth", "live": {"ru": web.device}, "sources": {}, "actions": {}})
    seen = await alarmed(web.page, "not believed", seen)
    await expect(web.page.locator("#alarm")).to_contain_text("not believed")  # shown
    route.inject({"type": "booth", "live": {"ru": web.device}, "sources": {},
                  "actions": {"ru": forged_action("live", web.device, 1)}})
    seen = await alarmed(web.page, "no interpreter of it signed", seen)
    await three_seconds_silent()
    assert mix.playing is None

    # the partner is live; the server forges its handover to the browser
    await bot.go_live()
    await asyncio.wait_for(b.wait_for(lambda: mix.playing == bot.device), WAIT_S)
    await web.page.wait_for_function("() => window.summitlineSession.ledger.seq.get('ru') === 1")
    route.inject({"type": "booth", "live": {"ru": web.device}, "sources": {},
                  "actions": {"ru": forged_action("handover", bot.device, 2, web.device)}})
    seen = await alarmed(web.page, "it does not verify", seen)
    await three_seconds_silent()

    # the control: a real handover puts the browser on air, and it is heard
    await bot.handover(web.device)
    await expect(web.page.locator("#indicator")).to_have_text("ON AIR")
    await asyncio.wait_for(b.wait_for(lambda: heard["loud"] > 0), WAIT_S)
    on_air = next(s for s in reversed(states) if s["live"].get("ru") == web.device)
    # the browser goes off air (seq 3); the server replays the handover (seq 2)
    await web.page.locator("#onair").click()
    await expect(web.page.locator("#indicator")).to_have_text("OFF AIR")
    await web.page.wait_for_function("() => window.summitlineSession.ledger.seq.get('ru') === 3")
    await asyncio.wait_for(b.wait_for(lambda: mix.live is None), WAIT_S)
    tail = heard["frames"]
    await asyncio.wait_for(b.wait_for(lambda: heard["frames"] > tail + 25), WAIT_S)
    heard["loud"] = 0  # what was in flight has arrived
    route.inject(on_air)
    seen = await alarmed(web.page, "replayed", seen)
    await three_seconds_silent()
    # attacker review: a genuine handover, but signed before this page began (what a
    # server replays after a reload): it does not put the browser on air
    at = int(time.time() * 1000) - 60_000
    old = {"action": "handover", "from": bot.device, "to": web.device, "seq": 4, "at": at,
           "signature": partner.sign(statements.booth(plan.call, plan.hash, "ru", "handover",
                                                      bot.device, 4, at, web.device))}
    route.inject({"type": "booth", "live": {"ru": web.device}, "sources": {},
                  "actions": {"ru": old}})
    await alarmed(web.page, "before this session", seen)
    await three_seconds_silent()
    assert not [s for s in route.sent_up if s["type"] == "booth" and s["action"] == "live"]
    await us.control(plan.call, "end")
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    for s in (b, bot):
        await s.leave()


# -- candidates: only those inside the signed SDP count ---------------------------------
class Trap(asyncio.DatagramProtocol):
    """The UDP port a hostile server would point the browser's connectivity checks at."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)


async def test_the_browser_ignores_an_injected_candidate(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    transport, trap = await asyncio.get_running_loop().create_datagram_endpoint(
        Trap, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    us, ru, py_key, web, plan = await setup(browser, server, http, python_offers=True)
    route: Route

    def candidate(sender: str) -> Message:
        return {"type": "candidate", "from": sender, "generation": 1,
                "candidate": f"candidate:9 1 udp 2130706431 127.0.0.1 {port} typ host",
                "sdp_mid": "0", "sdp_mline_index": 0}

    def with_candidate(msg: Message) -> Message:
        if msg["type"] == "offer":  # as if trickled right behind the signed offer
            asyncio.get_running_loop().call_soon(route.inject, candidate(msg["from"]))
        return msg

    route = Route(with_candidate)
    await web.page.route_web_socket("**/ws", route)
    try:
        await join_in_browser(web, server, plan.call)
        await web.page.wait_for_function(
            "(c) => window.summitlineSession?.call === c && window.summitlineSession.signed",
            arg=plan.call)
        py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
        task = asyncio.create_task(py.run())
        await wait_for_media(web.page, frames=10, audio=10)
        route.inject(candidate(py.device))  # and again once connected
        await web.page.wait_for_function(
            "() => window.summitlineSession.ignoredCandidates === 2")
        seen = await web.page.evaluate(
            "() => [...window.summitlineSession.links.values()][0].pc.getStats()"
            ".then(r => [...r.values()].filter(s => s.type === 'remote-candidate')"
            ".map(s => s.port))")
        frames = (await health(web.page))[0]["framesDecoded"]
        await wait_for_media(web.page, frames=frames + 60)  # two more seconds
        assert seen and port not in seen  # never a candidate of the peer connection
        assert trap.received == []  # and not one connectivity check went there
        await end_with_python(us, plan.call, task, py)
    finally:
        transport.close()


AHEAD_MS = 119_000  # the review's start: signed two minutes in the future
CUT_SLACK_MS = 1000  # a loaded machine's timer, far below 119 s


async def test_the_browser_counts_the_press_window_from_when_it_saw_the_start(
        monkeypatch: pytest.MonkeyPatch, browser: Browser, server: str, ws_url: str,
        http: httpx.AsyncClient) -> None:
    # the hostile server also keeps the window open: the browser's own timer must cut
    monkeypatch.setattr(CallRoom, "arm_press_timer", lambda self: None)
    monkeypatch.setattr(PressGateway, "enforce_deadline", False)
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        principal(ru, py_key, "President of the Russian Federation", "ru")], press_window_s=3)
    at = int(time.time() * 1000) + AHEAD_MS  # an operator's clock two minutes fast
    ahead = {"delegation": us.id, "at": at,
             "signature": us.key.sign(statements.control(plan.call, "start", us.id, at))}

    def substitute(msg: Message) -> Message:
        if msg["type"] in ("welcome", "phase") and msg.get("start"):
            msg = {**msg, "start": ahead}
        return msg

    await web.page.route_web_socket("**/ws", Route(substitute))
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await join_in_browser(web, server, plan.call)
    await web.page.wait_for_function(
        "(c) => window.summitlineSession?.call === c && window.summitlineSession.signed",
        arg=plan.call)
    await us.control(plan.call, "start")
    await expect(web.page.locator("#alarm")).to_contain_text("ahead of this device's clock")
    await web.page.wait_for_function("() => window.summitlineSession.pressCutAt !== null")
    started, seen, cut = await web.page.evaluate(
        "() => { const s = window.summitlineSession; return [s.startedAt, s.startSeen,"
        " s.pressCutAt]; }")
    # cut at the plan's window from when the browser saw the start, not at `at` + 3 s,
    # two minutes later
    assert started == at and 0 <= cut - (seen + 3000) <= CUT_SLACK_MS
    await end_with_python(us, plan.call, task, py)


async def test_a_second_start_never_moves_the_browser_s_deadline_later(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    # attacker review: the other delegation's later start, held back and then delivered
    # by the server, moved the browser's deadline later without an alarm. The phase
    # message is handed to the session's adapter as signaling would.
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        principal(ru, py_key, "President of the Russian Federation", "ru")], press_window_s=60)
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await join_in_browser(web, server, plan.call)
    await web.page.wait_for_function(
        "(c) => window.summitlineSession?.call === c && window.summitlineSession.signed",
        arg=plan.call)
    await us.control(plan.call, "start")
    await web.page.wait_for_function("() => window.summitlineSession.deadline !== null")
    later = int(time.time() * 1000) + 5000
    second = {"delegation": ru.id, "at": later,
              "signature": ru.key.sign(statements.control(plan.call, "start", ru.id, later))}
    before, after = await web.page.evaluate(
        """async (start) => { const s = window.summitlineSession; const before = s.deadline;
           await s.takePhase({ phase: "open", press_deadline_ms: null, start });
           return [before, s.deadline]; }""", second)
    await expect(web.page.locator("#alarm")).to_contain_text("second, different signed start")
    assert after == before
    await end_with_python(us, plan.call, task, py)

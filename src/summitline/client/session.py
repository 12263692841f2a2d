"""A call session of the Python endpoint: signaling, plan checks, peer connections.

The session trusts nothing the server says without a signature it can check:
the plan must be signed by every delegation it names, a pinned one among them (each
pinned one with its pinned key), and list this device; every
offer and answer must be signed by the sending device over the DTLS fingerprints in
its SDP, for this call, plan, pair and generation. What fails a check raises an
alarm (``alarms``) and is not used; no media is sent on the strength of it.

Which links to hold, who offers, when a link has stalled and how it is repaired are
the rules of ``core/endpoint.py``: this session feeds them what happens (server
messages, connection states, decoded frames, time) and carries out the actions they
return (offer, answer, close, report, show). After a server restart (both rejoin) a
pair whose peer connection still carries media negotiates nothing: the media never
noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription

from summitline.client.closing import close_peer, fixed_malloc_threshold
from summitline.client.framecrypt import FrameCrypt, hears
from summitline.client.ice import IceSettings
from summitline.client.listening import ChannelMix
from summitline.client.media import CutTrack, MediaSource
from summitline.client.peer import PeerLink
from summitline.client.sfu import SfuEndpoint
from summitline.core import endpoint as ep
from summitline.core import messages as m
from summitline.core import policy
from summitline.core.booth import BoothLedger
from summitline.core.plan import PlanError, Rotation, SignedPlan, follow_rotations
from summitline.core.roles import MediaKind, Phase, Role
from summitline.core.sas import plan_group_code, sas
from summitline.crypto import sdp as signed_sdp
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

log = logging.getLogger(__name__)

# After the signaling connection is lost, the endpoint dials again after this pause,
# and while no attempt has opened, starts another every DIAL_EVERY_S without giving up
# those still pending (each is given OPEN_TIMEOUT_S): a SYN sent into an outage is
# retried by the kernel only after 1, 3, 7 s, so a lone attempt could sit for seconds
# after the network came back. The first to open is used, the others closed. So an
# endpoint rejoins within about a second of the server's (or the network's) return.
RECONNECT_MIN_S = 0.2
DIAL_EVERY_S = 0.5
OPEN_TIMEOUT_S = 4.0
# The signaling connection is pinged this often and given up when no pong comes within
# the timeout: a cut network is noticed in seconds, not after TCP's own minutes.
KEEPALIVE_S = 1.0
KEEPALIVE_TIMEOUT_S = 3.0
# An interpreter that hands over speaks on this long, so that listeners hear no gap
# while the partner's voice travels to them (see client/listening.py): up to a second
# on a loaded 2-core machine (bench/interpretation.py). A person finishes a sentence.
HANDOVER_TAIL_S = 1.5
# After the press deadline the server should announce the doors shut within moments;
# if it still says "open" after this, it is keeping the window open: an alarm.
PRESS_GRACE_S = 2.0


class SessionRefused(Exception):
    """The server refused this endpoint for good (a fatal error). Not retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class PlanRejected(Exception):
    """The plan the server served does not verify. The session stops; no media flows."""


@dataclass(frozen=True)
class Identity:
    key: PrivateKey  # this device's key
    pinned: dict[str, PublicKey]  # the delegation keys pinned at link time

    @property
    def device(self) -> str:
        return self.key.fingerprint


class CallSession:
    def __init__(self, url: str, call: str, identity: Identity, *,
                 source: MediaSource | None = None, ice: IceSettings | None = None,
                 reconnect: bool = True, ssl: ssl_module.SSLContext | None = None,
                 frame_encryption: bool = False) -> None:
        fixed_malloc_threshold()  # a peer connection per repair must not grow the heap
        self.url = url
        self.call = call
        self.identity = identity
        self.source = source or MediaSource.synthetic()
        self.ice = ice or IceSettings()
        self._ice = self.ice  # plus what the server hands out in welcome
        self.reconnect = reconnect
        self.ssl = ssl  # for wss:// with a CA of the deployment's own
        self.signed: SignedPlan | None = None
        self.phase = Phase.PLANNED
        self.press_deadline_ms: int | None = None
        self.started_ms: int | None = None  # from the signed start, not the server's word
        self.start_seen_ms: int | None = None  # wall clock when this end first saw it
        self._other_starts: set[int] = set()  # later, different signed starts (alarmed)
        # An interpreter goes on air only by an action made since this session began: an
        # old go-live of its own, replayed after a restart, must not open its microphone.
        self._began_ms = int(time.time() * 1000)
        self._inherited: set[tuple[str, int]] = set()  # (channel, seq) refused, alarmed
        self.rules = ep.Endpoint(identity.device)  # core/endpoint.py: the link rules
        self._peers: dict[tuple[str, int], PeerLink] = {}  # (remote, generation) -> link
        self._offers: dict[tuple[str, int], dict[str, Any]] = {}  # verified, to answer
        self._reports: list[dict[str, Any]] = []  # link reports waiting for signaling
        # Reports sent into a connection not yet known to be alive: a dying connection
        # takes up to KEEPALIVE_TIMEOUT_S to be noticed, and what went into it is lost.
        # They count as arrived once a ping sent after them is answered; else they go
        # again after the next welcome (a report twice in the record is harmless).
        self._unconfirmed: list[tuple[float, dict[str, Any]]] = []
        self.status: dict[str, tuple[str, int]] = {}  # remote -> (state, since), as shown
        self.status_listeners: list[Callable[[str, str, int], None]] = []
        # Called with (remote device, kind, monotonic time) for every decoded frame.
        self.frame_listeners: list[Callable[[str, MediaKind, float], None]] = []
        self.stalls: list[dict[str, Any]] = []  # every link lost and restored, as reported
        self.muted: frozenset[str] = frozenset()  # kinds this end announces off
        self._relay_refused: set[str] = set()
        self._offered: set[tuple[str, int]] = set()  # every (remote, generation) we offered
        self._inputs: asyncio.Queue[ep.Input] = asyncio.Queue()
        self.alarms: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.rejoined = asyncio.Event()  # set on every welcome after the first
        self.joined = asyncio.Event()
        self.ended = asyncio.Event()
        self._ws: Any = None
        self._welcomed = False  # the current connection was welcomed: more than hello may go
        self._leaving = False
        self._fatal: dict[str, Any] | None = None
        self._retired = dict.fromkeys(MediaKind, 0)
        self._retired_from: dict[tuple[str, MediaKind], int] = {}  # (remote, kind) -> n
        # Who is live, as far as signed booth actions bear the server out (core/booth.py)
        self.booth: dict[str, Any] = {"live": {}, "sources": {}}
        self.ledger: BoothLedger | None = None  # the booth actions seen, across rejoins
        self.ignored_candidates = 0  # candidate messages: only the signed SDP's count
        self._tail: asyncio.TimerHandle | None = None
        self.coughing = False  # the cough key is held (``cough``)
        # Called with (remote device, audio frame, arrival time) for every frame heard:
        # where a listener's own mixing or a measurement plugs in.
        self.audio_listeners: list[Callable[[str, Any, float], None]] = []
        self.mixes: dict[str, ChannelMix] = {}  # the channel this principal listens to
        self._changed = asyncio.Event()  # set on every decoded frame and state change
        self._tasks: set[asyncio.Task[None]] = set()
        # The press feed: this principal's floor to the press gateway, during the window.
        self.press: RTCPeerConnection | None = None
        self._press_tracks: list[CutTrack] = []
        self._press_timer: asyncio.TimerHandle | None = None
        self.press_cut_ms: int | None = None  # when this end stopped sending to the press
        self.press_answered = asyncio.Event()
        # The aide button.
        self.pages: list[dict[str, Any]] = []  # pages of our principal (as an aide)
        self.acks: dict[str, list[str]] = {}  # our pages -> aides coming (as a principal)
        self.page_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.held: set[str] = set()  # principals on hold, as the server announces
        self.inbox: list[dict[str, Any]] = []  # every server message, for audits and tests
        # Devices of the plan that their delegation revoked (a verified revocation each):
        # no link with them from then on, across reconnections.
        self.revoked: dict[str, dict[str, Any]] = {}
        self.notices: list[str] = []  # what the person at this end is told (not alarms)
        # End-to-end frame encryption (docs/protocol.md 5.9): off by default, as a
        # peer-to-peer link is end to end under DTLS-SRTP already; an SFU needs it.
        self.crypt: FrameCrypt | None = None
        self.frame_encryption = frame_encryption  # the session's own option
        if frame_encryption:
            self.crypt = FrameCrypt(identity.key, call)
            self.source.seal = self.crypt.seal
        self._present: set[str] = set()  # plan devices the server says are connected
        # The SFU route of a briefing (docs/protocol.md 5.12): set on a welcome whose
        # ``sfu`` is true for a plan that wants the SFU; None: the mesh.
        self.sfu: SfuEndpoint | None = None

    # -- what tests and the demo read ----------------------------------------------------
    @property
    def device(self) -> str:
        return self.identity.device

    @property
    def links(self) -> dict[str, PeerLink]:
        """Per remote device, the link that plays (or, before any did, the one tried)."""
        out: dict[str, PeerLink] = {}
        for remote, rules in self.rules.links.items():
            for t in (rules.playing, rules.trying):
                link = self._peers.get((remote, t.generation)) if t else None
                if link is not None and remote not in out:
                    out[remote] = link
        return out

    def frames(self, kind: MediaKind) -> int:
        """Frames of ``kind`` decoded so far, over all peer connections, closed ones too."""
        return self._retired[kind] + sum(link.frames[kind] for link in self._peers.values()) \
            + (self.sfu.frames(kind) if self.sfu is not None else 0)

    def frames_from(self, remote: str, kind: MediaKind) -> int:
        """Frames of ``kind`` decoded from ``remote`` so far, over all its links."""
        return self._retired_from.get((remote, kind), 0) + sum(
            link.frames[kind] for (r, _), link in self._peers.items() if r == remote) + (
            self.sfu.frames_from(remote, kind) if self.sfu is not None else 0)

    def group_code(self) -> str | None:
        """The code of the whole call (docs/protocol.md §9.1), from the verified plan:
        equal on every participant's screen when all hold the same plan and keys."""
        return plan_group_code(self.signed.plan) if self.signed is not None else None

    async def _retire(self, link: PeerLink) -> None:
        self._peers.pop((link.remote, link.generation), None)
        for kind, n in link.frames.items():
            self._retired[kind] += n
            key = (link.remote, kind)
            self._retired_from[key] = self._retired_from.get(key, 0) + n
        await link.close()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; re-checked on every frame and state change.
        Bound it with ``asyncio.wait_for``."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def link(self, remote: str) -> PeerLink | None:
        return self.links.get(remote)

    def short_authentication_string(self, remote: str) -> str | None:
        # From the SDP as this end sent it and as it received it over signaling (a peer
        # connection's descriptions are re-serialised and may drop fingerprint lines): if
        # anyone swapped a fingerprint in between, the two ends' digits differ.
        link = self.links.get(remote)
        if link is None or not link.sent_sdp or not link.received_sdp:
            return None
        return sas(self.call, signed_sdp.fingerprints(link.sent_sdp),
                   signed_sdp.fingerprints(link.received_sdp))

    def notice(self, text: str) -> None:
        log.warning("NOTICE %s: %s", self.device[:12], text)
        self.notices.append(text)
        self._changed.set()

    def alarm(self, text: str) -> None:
        log.warning("ALARM %s: %s", self.device[:12], text)
        self.alarms.append(text)
        self._changed.set()

    # -- the connection loop -------------------------------------------------------------
    async def run(self) -> None:
        """Hold the signaling connection until the call ends or ``leave``; reconnect."""
        workers = [asyncio.create_task(self._apply_rules()), asyncio.create_task(self._tick())]
        try:
            await self._hold_signaling()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def _attempt(self) -> asyncio.Future[Any]:
        tls = self.ssl if self.url.startswith("wss:") else None
        return asyncio.ensure_future(websockets.connect(
            self.url, max_size=m.MAX_MESSAGE_BYTES, open_timeout=OPEN_TIMEOUT_S, ssl=tls,
            ping_interval=KEEPALIVE_S, ping_timeout=KEEPALIVE_TIMEOUT_S))

    async def _dial(self) -> Any:
        """An open WebSocket to the server. Without ``reconnect``: one attempt, its error
        raised. Else attempts overlapping every DIAL_EVERY_S until one opens."""
        if not self.reconnect:
            return await self._attempt()
        pending: set[asyncio.Future[Any]] = set()
        try:
            while True:
                pending.add(self._attempt())
                done, pending = await asyncio.wait(pending, timeout=DIAL_EVERY_S,
                                                   return_when=asyncio.FIRST_COMPLETED)
                opened = [f.result() for f in done if f.exception() is None]
                for extra in opened[1:]:
                    await extra.close()
                if opened:
                    return opened[0]
                for f in done:
                    log.debug("%s: dial failed: %s", self.device[:12], f.exception())
        finally:
            for f in pending:  # an attempt that opens all the same is closed at once
                f.cancel()
                f.add_done_callback(_close_if_open)

    async def _hold_signaling(self) -> None:
        while not (self.ended.is_set() or self._leaving):
            try:
                async with await self._dial() as ws:
                    self._ws, self._welcomed = ws, False
                    await self._serve(ws)
            except (OSError, TimeoutError, websockets.ConnectionClosed,
                    websockets.InvalidHandshake) as exc:
                if not self.reconnect:
                    raise
                log.info("%s: signaling lost (%s); reconnecting", self.device[:12], exc)
            finally:
                if self._ws is not None:
                    self.feed(ep.SignalingLost(_now_ms()))
                self._ws, self._welcomed = None, False
                self._reports = [r for _, r in self._unconfirmed] + self._reports
                self._unconfirmed = []
            if self._fatal is not None:
                raise SessionRefused(self._fatal["code"], self._fatal["message"])
            if self.ended.is_set() or self._leaving:
                break
            await asyncio.sleep(RECONNECT_MIN_S)

    async def leave(self) -> None:
        self._leaving = True
        if self._ws is not None:
            await self._ws.close()
        await self.close_links()
        self.source.stop()

    async def close_links(self) -> None:
        await self.cut_press("the call's media stopped")
        if self.sfu is not None:
            await self.sfu.close()
        self.rules = ep.Endpoint(self.device, generations=self.rules.generations)
        for link in list(self._peers.values()):
            await self._retire(link)

    async def _serve(self, ws: Any) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            self.inbox.append(msg)
            handler = self._HANDLERS.get(msg.get("type"))
            if handler is None:
                log.warning("ignoring unknown server message %r", msg.get("type"))
                continue
            try:
                await handler(self, msg)
            except (KeyError, TypeError, ValueError) as exc:
                # a server that sends what the protocol does not: trust nothing of it
                self.alarm(f"malformed {msg.get('type')!r} message from the server ({exc})")
                self._fatal = {"code": "malformed", "message": str(exc)}
                gate = self.source.gate
                if gate is not None:
                    gate.open = False
                await self.close_links()
                return
            self._changed.set()  # waiters re-check after every message
            if self.ended.is_set() or self._fatal is not None:
                return

    async def _send(self, message: dict[str, Any]) -> None:
        # Before the welcome only the hello may go: anything else first is a fatal
        # bad-handshake for the server (a link report made while the handshake runs).
        if not self._welcomed and message.get("type") != "hello":
            return
        if self._ws is not None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(json.dumps(message))

    # -- handshake and plan --------------------------------------------------------------
    async def _on_challenge(self, msg: dict[str, Any]) -> None:
        if m.PROTOCOL_VERSION not in msg["versions"]:
            self._fatal = {"code": "unsupported-version",
                           "message": f"server speaks {msg['versions']}"}
            return
        nonce = msg["nonce"]
        signature = self.identity.key.sign(statements.join(self.call, self.device, nonce))
        await self._send(m.Hello(type="hello", version=m.PROTOCOL_VERSION, call=self.call,
                                 device=self.device, nonce=nonce, signature=signature,
                                 ).model_dump())

    async def _on_welcome(self, msg: dict[str, Any]) -> None:
        try:
            signed = SignedPlan.from_json(msg["signed_plan"])
            signed.verify(self.identity.pinned)
        except PlanError as exc:
            self._reject_plan(str(exc))
        if signed.plan.call != self.call:
            self._reject_plan("the server served the plan of another call")
        if signed.plan.participant(self.device) is None:
            self._reject_plan("this device is not in the plan")
        if self.signed is not None and signed.plan.hash != self.signed.plan.hash:
            self._reject_plan("the server now serves a different plan for this call")
        self.signed = signed
        await self._route(msg.get("sfu") is True)
        for revocation in msg.get("revocations", []):
            self._take_revocation(revocation)
        self.held = set(msg.get("held", []))
        self._ice = self.ice.with_servers(msg.get("ice_servers", []))
        await self._on_booth(msg.get("booth") or {"live": {}, "sources": {}})
        self._set_phase(msg)
        (self.rejoined if self.joined.is_set() else self.joined).set()
        now = _now_ms()
        peers = [p for p in msg["peers"] if not self._stranger(str(p["device"]))]
        self._present = {str(p["device"]) for p in peers}
        self.feed(ep.Welcome(now, tuple(p["device"] for p in peers),
                             tuple((p["device"], p["generation"]) for p in peers)))
        self._grant(now)
        self._welcomed = True
        reports, self._reports = self._reports, []
        for report in reports:  # what happened while signaling was down, for the record
            self._unconfirmed.append((time.monotonic(), report))
            await self._send(report)
        if reports and self._ws is not None:
            self._tasks.add(task := asyncio.create_task(self._confirm(self._ws)))
            task.add_done_callback(self._tasks.discard)
        if self.muted:
            await self._send({"type": "media", "off": sorted(self.muted)})
        for device in sorted(self._present):
            await self._hand_frame_key(device)
        await self._press_window()
        await self._publish(again=True)

    async def _route(self, server_sfu: bool) -> None:
        """The SFU route iff the verified plan wants it and the server has an SFU for
        the call; its frames are then encrypted, whatever the session's option."""
        assert self.signed is not None
        if server_sfu and self.signed.plan.wants_sfu:
            if self.crypt is None:
                self.crypt = FrameCrypt(self.identity.key, self.call)
            self._seal(self.crypt.seal)
            if self.sfu is None or self.sfu.closed:
                self.sfu = SfuEndpoint(self)
            else:  # a new signaling connection: the server let the old feeds go
                await self.sfu.reset_feeds()
        elif self.sfu is not None:
            await self.sfu.close()
            self.sfu = None
            if not self.frame_encryption:  # back to the mesh as this session has it
                self.crypt = None
                self._seal(None)

    def _seal(self, seal: Callable[[str, bytes], bytes] | None) -> None:
        """Seal every frame encoded from now on with ``seal`` (None: none), in the
        encoders made already too: a server that announced the mesh first (encoders
        made without sealing) and the SFU after must not get clear frames to the SFU."""
        self.source.seal = seal
        for encoder in self.source.encoders.values():
            encoder.seal = seal

    async def _publish(self, again: bool) -> None:
        """On the SFU route in a media phase: publish (``again``: even if published,
        as after a new signaling connection, which ended the old publisher)."""
        sfu = self.sfu
        if sfu is None or sfu.closed or self.phase not in policy.MEDIA_PHASES or \
                self.device in self.revoked:
            return
        if again or sfu.publisher is None:
            await sfu.publish()

    def _reject_plan(self, why: str) -> None:
        self.alarm(f"plan refused: {why}")
        self._fatal = {"code": "plan-rejected", "message": why}
        raise PlanRejected(why)

    def _set_phase(self, msg: dict[str, Any]) -> None:
        """Take the phase the server announces, but a start only as a delegation of the
        plan signed it; the press deadline is computed here from the signed start."""
        assert self.signed is not None
        phase = Phase(msg["phase"])
        if phase in (Phase.OPEN, Phase.CLOSED):
            proof = msg.get("start")
            host = self.signed.plan.host
            if host is not None and isinstance(proof, dict) and \
                    proof.get("delegation") != host and self._signed_start(proof) is not None:
                # a guest's own start (a request the server should have refused: its
                # signature is no less valid for that): a briefing is started by its host
                self.alarm("the server says the briefing has started, but by a guest's "
                           "signed start, not the host's: no media sent")
                self.phase, self.press_deadline_ms = Phase.PLANNED, None
                return
            start = self._signed_start(proof)
            if start is None:
                self.alarm("the server says the call has started, but no delegation of the "
                           "plan signed the start: no media sent")
                self.phase, self.press_deadline_ms = Phase.PLANNED, None
                return
            window = self.signed.plan.press_window_s
            if self.start_seen_ms is None or self.started_ms is None:
                self.start_seen_ms = int(time.time() * 1000)
                self.started_ms = start
                if ep.start_ahead(start, self.start_seen_ms):
                    self.alarm(f"the signed start is dated {(start - self.start_seen_ms)/1000:.0f}"
                               " s ahead of this clock: the press window is counted from "
                               "when this end saw the start")
            elif start != self.started_ms and start not in self._other_starts:
                # A call starts once: a second valid start (the other delegation's, held
                # back by the server) must not move the press deadline later.
                self._other_starts.add(start)
                self.alarm("a second, different signed start: the press window stays "
                           "counted from the earliest start this end saw")
            self.started_ms = min(self.started_ms, start)
            start = self.started_ms
            self.press_deadline_ms = ep.press_deadline(
                start, self.start_seen_ms, window) if phase is Phase.OPEN else None
        else:
            self.press_deadline_ms = None
        self.phase = phase

    def _signed_start(self, proof: Any) -> int | None:
        """The start time, if ``proof`` is a valid start signed by a plan delegation."""
        assert self.signed is not None
        if not isinstance(proof, dict):
            return None
        d = self.signed.plan.delegation(str(proof.get("delegation")))
        at = proof.get("at")
        if d is None or not isinstance(at, int):
            return None
        try:
            d.key.verify(statements.control(self.call, "start", d.id, at),
                         str(proof.get("signature")))
        except (SignatureError, ValueError):  # ValueError: not canonicalisable
            return None
        return at

    async def _on_phase(self, msg: dict[str, Any]) -> None:
        if self.signed is None:
            return
        self._set_phase(msg)
        if self.phase is Phase.ENDED:
            await self.close_links()
            self.ended.set()
            return
        self._grant(_now_ms())
        await self._press_window()
        await self._publish(again=False)

    def _grant(self, now: int) -> None:
        """Tell the rules which links the plan allows in this phase, and what should
        arrive on each."""
        assert self.signed is not None
        plan = self.signed.plan
        if self.sfu is not None:  # the SFU route: no links between endpoints
            self.feed(ep.Grants(now, ()))
            return
        peers = [] if self.device in self.revoked else [
            remote for remote in policy.peers_of(plan, self.phase, self.device)
            if remote not in self.revoked]
        expect = tuple((remote, frozenset(str(k) for k in policy.media(
            plan, self.phase, remote, self.device))) for remote in peers)
        self.feed(ep.Grants(now, expect))

    def _take_revocation(self, msg: dict[str, Any]) -> bool:
        """Whether ``msg`` is a new, valid revocation of a device of the plan: signed by
        the plan's key of the delegation the device stands under. A forged one is an
        alarm and changes nothing."""
        assert self.signed is not None
        plan = self.signed.plan
        device, delegation, at = msg["device"], msg["delegation"], msg["at"]
        p = plan.participant(str(device))
        if p is None or device in self.revoked:
            return False  # not ours to act on, or known already
        d = plan.delegation(p.delegation)
        assert d is not None
        try:
            if delegation != p.delegation or not isinstance(at, int):
                raise SignatureError("not by the device's own delegation")
            # the plan's key of the delegation, or a key it rotated to since (each step
            # of the chain signed by the key before; docs/protocol.md 3.5)
            keys = [d.key]
            chain = [Rotation.from_json(r) for r in msg.get("rotations") or []]
            if chain:
                follow_rotations(d.id, d.key, chain)
                start = next((i for i, r in enumerate(chain) if r.previous == d.key), None)
                keys += [r.key for r in chain[start:]] if start is not None else []
            statement = statements.revocation(p.delegation, p.device, at)
            if not any(k.verifies(statement, str(msg["signature"])) for k in keys):
                raise SignatureError("the signature does not verify")
        except (SignatureError, PlanError, ValueError) as exc:
            self.alarm(f"a revocation of {plan.label(p.device)} that {d.name} did not sign "
                       f"({exc}); ignored: the device stays in the call")
            return False
        self.revoked[p.device] = {"delegation": delegation, "device": p.device, "at": at,
                                  "signature": msg["signature"]}
        self._offers = {k: v for k, v in self._offers.items() if k[0] != p.device}
        self.notice(f"{d.name} revoked {plan.label(p.device)}: its links are closed and "
                    "it is refused from now on")
        return True

    async def _on_revoked(self, msg: dict[str, Any]) -> None:
        if self.signed is not None and self._take_revocation(msg):
            self._grant(_now_ms())  # the rules close every link with the device

    def _stranger(self, device: str) -> bool:
        """Whether the server announces ``device`` present though the plan lets this end
        never connect to it (a device outside the plan, or one of no pair with us): the
        server tells an endpoint only of its possible peers. Alarms; the rules then never
        offer to it, as they offer only where the plan grants media."""
        assert self.signed is not None
        plan = self.signed.plan
        if plan.participant(device) is None:
            self.alarm(f"the server announces a device outside the plan "
                       f"({device[:12]}) as present; nothing is sent to it")
            return True
        if device == self.device or not policy.may_connect(plan, Phase.CLOSED, self.device,
                                                           device):
            self.alarm(f"the server announces {plan.label(device)} as a peer, but the plan "
                       "gives this end no link with it; nothing is sent to it")
            return True
        return False

    async def _on_peer_joined(self, msg: dict[str, Any]) -> None:
        if self.signed is not None and self._stranger(str(msg["device"])):
            return
        self.feed(ep.PeerJoined(_now_ms(), msg["device"]))
        self._present.add(str(msg["device"]))
        if self.muted:
            await self._send({"type": "media", "off": sorted(self.muted)})
        await self._hand_frame_key(str(msg["device"]))

    async def _on_peer_left(self, msg: dict[str, Any]) -> None:
        # Its signaling is gone; its media may not be. The peer connection stays until
        # it stalls or the peer says bye.
        self.feed(ep.PeerLeft(_now_ms(), msg["device"]))
        device = str(msg["device"])
        self._present.discard(device)
        if self.crypt is not None and self.signed is not None and \
                hears(self.signed.plan, self.device, device):
            # It held our key: the others get a new one, which it never sees.
            await self._new_frame_keys(self._present)

    # -- frame keys (docs/protocol.md 5.10) ----------------------------------------------
    async def _hand_frame_key(self, device: str) -> None:
        if self.crypt is None or self.signed is None or device == self.device or \
                self.signed.plan.participant(device) is None:
            return
        if self.crypt.hands_anew(self.signed.plan, device):
            # It did not hold our key (it joins, or comes back): a new one for all, so
            # that whoever kept our frames of before cannot have it open them.
            await self._new_frame_keys(self._present - {device})
        await self._send(self.crypt.message(self.signed.plan, device))

    async def _new_frame_keys(self, to: set[str]) -> None:
        """New media keys (docs/protocol.md 5.10), sealed with from now on and handed to
        the devices ``to``."""
        assert self.crypt is not None and self.signed is not None
        self.crypt.rotate()
        for other in sorted(to):
            await self._send(self.crypt.message(self.signed.plan, other))

    async def _on_frame_key(self, msg: dict[str, Any]) -> None:
        if self.crypt is None or self.signed is None:
            return  # this call does not encrypt frames: nothing to take
        sender = str(msg.get("from"))
        p = self.signed.plan.participant(sender)
        if p is None:
            self.alarm(f"a frame key from a device outside the plan ({sender[:12]}); "
                       "refused")
            return
        try:
            new, keyed = self.crypt.take(self.signed.plan, msg, p.key)
        except SignatureError as exc:
            self.alarm(f"a frame key said to be from {self.signed.plan.label(sender)} "
                       f"does not verify ({exc}); refused")
            return
        if new:  # it may not have ours yet (or not for this ECDH key of its)
            await self._hand_frame_key(sender)
        if keyed and self.sfu is not None:
            self.sfu.keyed(sender)
        if keyed:
            for link in self.links.values():
                if link.remote == sender:
                    link.resumed()  # a key frame to start from under the new key

    async def _on_error(self, msg: dict[str, Any]) -> None:
        self.errors.append(msg)
        if msg.get("ref") == "sfu-publish" and msg.get("code") == "sfu-failed" and \
                self.sfu is not None:
            self.sfu.failed(msg)
        log.warning("%s: server error %s: %s", self.device[:12], msg["code"], msg["message"])
        if msg.get("fatal") and msg.get("code") == "call-ended" and self.signed is not None:
            # the call ended while this end was reconnecting (its `phase` was lost with
            # the old connection): the end, not a refusal
            await self.close_links()
            self.phase = Phase.ENDED
            self.ended.set()
            return
        if msg.get("fatal"):
            self._fatal = msg

    async def _on_pong(self, msg: dict[str, Any]) -> None:
        return

    # -- the press window ----------------------------------------------------------------
    @property
    def role(self) -> Role | None:
        me = self.signed.plan.participant(self.device) if self.signed else None
        return me.role if me else None

    @property
    def sends_to_press(self) -> bool:
        """Principals send their floor; interpreters of a channel the plan gives the press
        send their voice (silent while not live, as to everyone)."""
        if self.signed is None:
            return False
        return self.role is Role.PRINCIPAL or (
            self.channel is not None and self.channel in self.signed.plan.press_channels)

    async def _press_window(self) -> None:
        """A principal sends its floor to the press gateway while the window of the signed
        start is open (an interpreter of a press channel, its voice), and stops at its
        deadline by itself, whatever the server says."""
        deadline = self.press_deadline_ms
        if self.phase is not Phase.OPEN or deadline is None:
            await self.cut_press("the doors are shut")
            return
        if not self.sends_to_press or self.press is not None or \
                self.press_cut_ms is not None:
            return
        left_s = (deadline - time.time() * 1000) / 1000
        if left_s <= 0:
            await self.cut_press("the press window of the signed start is over")
            return
        loop = asyncio.get_running_loop()
        self._press_timer = loop.call_later(left_s, self._press_deadline)
        pc = self.press = RTCPeerConnection(self._ice.configuration())
        pc.on("connectionstatechange", lambda: self._press_state(pc))
        for kind in (MediaKind.AUDIO, MediaKind.VIDEO):
            track = self.source.track(kind)
            if track is not None:
                cut = CutTrack(track, deadline)
                self._press_tracks.append(cut)
                pc.addTransceiver(cut, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        if self.press is pc:  # not cut meanwhile
            await self._send({"type": "press-offer", "sdp": pc.localDescription.sdp})

    def _press_state(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState == "failed" and self.press is pc:
            asyncio.get_running_loop().create_task(self._press_failed(pc))

    async def _press_failed(self, pc: RTCPeerConnection) -> None:
        """The press connection failed (a consent check lost on a loaded path): while the
        window is open, offer again; the deadline stays the deadline."""
        if self.press is not pc:
            return
        log.warning("%s: press feed lost; offering again", self.device[:12])
        for track in self._press_tracks:
            track.cut = True  # these copies end; the new connection gets new ones
            track.stop()
        self.press, self._press_tracks = None, []
        if self._press_timer is not None:
            self._press_timer.cancel()
            self._press_timer = None
        self.press_answered.clear()
        await close_peer(pc)
        await self._press_window()

    def _press_deadline(self) -> None:
        self._stop_press_tracks()
        log.info("%s: press window over by the signed plan; stopped sending to the press",
                 self.device[:12])
        loop = asyncio.get_running_loop()
        loop.create_task(self.cut_press("deadline"))
        loop.call_later(PRESS_GRACE_S, self._check_doors_shut)

    def _check_doors_shut(self) -> None:
        if self.phase is Phase.OPEN and not self.ended.is_set():
            self.alarm("the server keeps the press window open past the deadline of the "
                       "signed plan; this end stopped sending to the press at the deadline")

    def _stop_press_tracks(self) -> None:
        """The cut itself: synchronous, so that no frame read after it is sent."""
        for track in self._press_tracks:
            track.cut = True
        if self.press_cut_ms is None and (self.press is not None or self._press_tracks):
            self.press_cut_ms = time.time_ns() // 1_000_000
            self._changed.set()

    async def cut_press(self, why: str) -> None:
        if self._press_timer is not None:
            self._press_timer.cancel()
            self._press_timer = None
        self._stop_press_tracks()
        pc, self.press, tracks, self._press_tracks = self.press, None, self._press_tracks, []
        if pc is not None:
            log.info("%s: press feed closed (%s)", self.device[:12], why)
            await close_peer(pc)
        for track in tracks:
            track.stop()

    async def _on_press_answer(self, msg: dict[str, Any]) -> None:
        pc = self.press
        if pc is None or pc.signalingState != "have-local-offer":
            return  # cut meanwhile
        await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
        self.press_answered.set()

    # -- the aide button -------------------------------------------------------------------
    def _own(self, device: str, role: Role) -> bool:
        """Whether ``device`` is a ``role`` of this device's delegation in the plan."""
        if self.signed is None:
            return False
        me, them = (self.signed.plan.participant(d) for d in (self.device, device))
        return me is not None and them is not None and them.role is role and \
            them.delegation == me.delegation

    async def page(self) -> str:
        """A principal calls its aides. Returns the page id; ``acks[id]`` fills as they
        answer."""
        page_id = secrets.token_urlsafe(16)
        at = time.time_ns() // 1_000_000
        signature = self.identity.key.sign(statements.page(self.call, self.device,
                                                           page_id, at))
        self.acks[page_id] = []
        await self._send({"type": "page", "id": page_id, "at": at, "signature": signature})
        return page_id

    async def ack(self, page_id: str) -> None:
        at = time.time_ns() // 1_000_000
        signature = self.identity.key.sign(statements.ack(self.call, self.device, page_id, at))
        await self._send({"type": "ack", "page": page_id, "at": at, "signature": signature})

    async def hold(self, on: bool) -> None:
        """An aside: the floor audio falls silent to everyone (the press included)."""
        self.source.held = on
        await self._send({"type": "hold", "on": on})

    def _signed_by(self, device: str, statement: dict[str, Any], signature: str) -> bool:
        assert self.signed is not None
        p = self.signed.plan.participant(device)
        try:
            assert p is not None
            p.key.verify(statement, signature)
        except (AssertionError, SignatureError, ValueError):
            return False
        return True

    async def _on_paged(self, msg: dict[str, Any]) -> None:
        by, page_id, at = msg["by"], msg["id"], msg["at"]
        if not self._own(by, Role.PRINCIPAL) or not self._signed_by(
                by, statements.page(self.call, by, page_id, at), msg["signature"]):
            self.alarm("a page that our principal did not sign; ignored")
            return
        if any(p["id"] == page_id for p in self.pages):
            return  # delivered again after a reconnect
        page = {"id": page_id, "by": by, "at": at, "acked": False}
        self.pages.append(page)
        log.warning("\a%s: PAGED by %s", self.device[:12], self.signed.plan.label(by)
                    if self.signed else by)
        for listener in self.page_listeners:
            listener(page)

    async def _on_acked(self, msg: dict[str, Any]) -> None:
        by, page_id, at = msg["by"], msg["page"], msg["at"]
        if not self._own(by, Role.AIDE) or not self._signed_by(
                by, statements.ack(self.call, by, page_id, at), msg["signature"]):
            self.alarm("an acknowledgement that no aide of ours signed; ignored")
            return
        self.acks.setdefault(page_id, []).append(by)
        for page in self.pages:
            if page["id"] == page_id:
                page["acked"] = True

    async def _on_held(self, msg: dict[str, Any]) -> None:
        (self.held.add if msg["on"] else self.held.discard)(msg["device"])

    # -- interpretation ------------------------------------------------------------------
    @property
    def channel(self) -> str | None:
        """The channel this device interprets into, if it is an interpreter."""
        me = self.signed.plan.participant(self.device) if self.signed else None
        return me.language if me and me.role is Role.INTERPRETER else None

    @property
    def live(self) -> bool:
        return self.channel is not None and self.booth["live"].get(self.channel) == self.device

    async def _on_booth(self, msg: dict[str, Any]) -> None:
        was_live = self.live
        live, sources = msg.get("live"), msg.get("sources")
        actions = msg.get("actions") or {}
        if not isinstance(live, dict) or not isinstance(sources, dict) or \
                not isinstance(actions, dict) or self.signed is None:
            raise ValueError("malformed booth state")
        if self.ledger is None:
            self.ledger = BoothLedger(self.call, self.signed.plan)
        alarms = self.ledger.take(actions)
        believed, doubts = self.ledger.live(live)
        mine = self.channel
        if mine is not None and believed.get(mine) == self.device and \
                self.ledger.since.get(mine, 0) < self._began_ms - ep.START_SKEW_MS:
            del believed[mine]
            if (mine, self.ledger.seq.get(mine, 0)) not in self._inherited:
                self._inherited.add((mine, self.ledger.seq.get(mine, 0)))
                doubts.append("the server puts this interpreter on air by a booth action from "
                              "before this session; not on air: go live again to speak")
        for text in alarms + doubts:
            self.alarm(text)
        self.booth = {"live": believed, "sources": dict(sources)}
        now = time.monotonic()
        for mix in self.mixes.values():
            mix.booth(self.booth["live"], now)
        gate = self.source.gate
        if gate is None:
            return
        if self._tail is not None:
            self._tail.cancel()  # a later change decides
            self._tail = None
        partner_live = self.channel is not None and self.booth["live"].get(
            self.channel) not in (None, self.device)
        if self.live:
            gate.open = not self.coughing  # heard only while live, and not coughing
        elif was_live and partner_live:  # handed over: speak on until the partner is heard
            self._tail = asyncio.get_running_loop().call_later(HANDOVER_TAIL_S,
                                                               self._close_gate)
        else:
            gate.open = False  # off air means off air, at once

    def cough(self, on: bool) -> None:
        """The cough key, held (True) or released: while held, the interpreter's voice is
        silent, live or not (the console's push-to-mute)."""
        self.coughing = on
        gate = self.source.gate
        if gate is not None:
            gate.open = self.live and not on

    def _close_gate(self) -> None:
        gate = self.source.gate
        if gate is not None and not self.live:
            gate.open = False

    def listen(self, channel: str | None) -> ChannelMix | None:
        """A principal chooses a channel (None: the original floor only)."""
        self.mixes = {} if channel is None else {channel: ChannelMix(channel)}
        if self.signed is not None:
            for mix in self.mixes.values():
                mix.booth_members = frozenset(p.device for p in
                                              self.signed.plan.booth(mix.channel))
        for mix in self.mixes.values():
            mix.booth(self.booth["live"], time.monotonic())
        return self.mixes.get(channel) if channel else None

    async def go_live(self) -> None:
        await self._send(self._booth_action("live"))

    async def handover(self, partner: str) -> None:
        """Hand over at once (the console asks instead: ``request_handover``)."""
        await self._send(self._booth_action("handover", partner))

    async def request_handover(self, partner: str) -> None:
        """Ask the booth partner to take over; this interpreter stays live until it
        accepts (within core.call.HANDOVER_ANSWER_MS)."""
        await self._send(self._booth_action("request", partner))

    @property
    def handover_asker(self) -> str | None:
        """The booth partner asking this interpreter to take over, if it is the latest
        action of its booth."""
        if self.ledger is None or self.channel is None:
            return None
        return self.ledger.asker(self.channel, self.device)

    async def answer_handover(self, accept: bool) -> None:
        """Accept (live from then on) or decline the partner's open request."""
        asker = self.handover_asker
        if asker is None:
            raise RuntimeError("no booth partner asks this interpreter to take over")
        await self._send(self._booth_action("accept" if accept else "decline", asker))

    async def go_quiet(self) -> None:
        await self._send(self._booth_action("quiet"))

    def _booth_action(self, action: str, to: str | None = None) -> dict[str, Any]:
        """A booth action signed by this interpreter, next in its booth's sequence."""
        channel = self.channel
        if self.signed is None or self.ledger is None or channel is None:
            raise RuntimeError("only an interpreter of the plan, joined, acts in a booth")
        seq, at = self.ledger.next_seq(channel), int(time.time() * 1000)
        signature = self.identity.key.sign(statements.booth(
            self.call, self.signed.plan.hash, channel, action, self.device, seq, at, to))
        return {"type": "booth", "action": action, "to": to, "seq": seq, "at": at,
                "signature": signature}

    async def set_source(self, source: str) -> None:
        """The floor ("floor") or another channel (relay)."""
        await self._send({"type": "source", "source": source})

    def _hear(self, remote: str, frame: Any) -> None:
        """Audio from ``remote``: the parrot voice repeats it if it is this interpreter's
        source (the other side's principal on the floor, or the live interpreter of the
        channel it relays)."""
        now = time.monotonic()
        for listener in self.audio_listeners:
            listener(remote, frame, now)
        for mix in self.mixes.values():
            mix.hear(remote, frame, now)
        parrot, channel = self.source.parrot, self.channel
        if parrot is None or channel is None or self.signed is None:
            return
        source = self.booth["sources"].get(self.device, "floor")
        if source == "floor":
            p = self.signed.plan.participant(remote)
            if p is not None and p.role is Role.PRINCIPAL and p.language != channel:
                parrot.feed(frame)
        elif self.booth["live"].get(source) == remote:
            parrot.feed(frame)

    # -- negotiation ---------------------------------------------------------------------
    def _kinds(self, remote: str) -> tuple[frozenset[MediaKind], frozenset[MediaKind]]:
        assert self.signed is not None
        plan = self.signed.plan
        return (policy.media(plan, self.phase, self.device, remote),
                policy.media(plan, self.phase, remote, self.device))

    def _new_link(self, remote: str, generation: int) -> PeerLink:
        send, receive = self._kinds(remote)
        crypt = self.crypt
        link = PeerLink(remote, generation, self._ice, send=send, receive=receive,
                        source=self.source, alarm=self.alarm, on_frame=self._changed.set,
                        on_audio=self._hear, on_decoded=self._decoded,
                        opener=(lambda kind, frame: crypt.open(remote, kind, frame)) if crypt
                        else None)
        link.pc.on("connectionstatechange", lambda: self.feed(ep.State(
            _now_ms(), remote, generation, link.pc.connectionState)))
        return link

    def _decoded(self, remote: str, kind: MediaKind, at: float) -> None:
        for listener in self.frame_listeners:
            listener(remote, kind, at)

    # -- the link rules (core/endpoint.py) -----------------------------------------------
    def feed(self, event: ep.Input) -> None:
        """Hand an input to the rules; they are applied in order, one at a time."""
        self._inputs.put_nowait(event)

    async def _apply_rules(self) -> None:
        while True:
            event = await self._inputs.get()
            self.rules, actions = self.rules.apply(event)
            for action in actions:
                try:
                    await self._ACTIONS[type(action)](self, action)
                except Exception:  # one failed action must not stop the rules
                    log.exception("%s: %s failed", self.device[:12], action)
            self._changed.set()

    async def _tick(self) -> None:
        """Media health: which kinds brought frames since the last tick, then time."""
        seen: dict[tuple[str, int], dict[MediaKind, int]] = {}
        while True:
            await asyncio.sleep(ep.TICK_MS / 1000)
            now = _now_ms()
            for key, link in list(self._peers.items()):
                before = seen.get(key, {})
                kinds = frozenset(str(k) for k, n in link.frames.items()
                                  if n > before.get(k, 0))
                seen[key] = dict(link.frames)
                if kinds:
                    self.feed(ep.Media(now, link.remote, link.generation, kinds))
            for key in set(seen) - set(self._peers):
                del seen[key]
            self.feed(ep.Tick(now))
            if self.sfu is not None:
                self.sfu.tick(now)

    async def _do_offer(self, action: ep.Offer) -> None:
        assert self.signed is not None
        self._offered.add((action.remote, action.generation))
        link = self._new_link(action.remote, action.generation)
        try:
            link.add_media(offering=True)
            await link.pc.setLocalDescription(await link.pc.createOffer())
            if await self._install(link):
                await self._send(self._signed_sdp("offer", link))
        except Exception:
            await self._abandon(link)
            raise

    async def _abandon(self, link: PeerLink) -> None:
        """A link whose offer or answer could not be made (its peer connection closed
        under it, or nothing to send or receive in the phase it was made for): closed,
        and told to the rules as failed, so that the pair's next try replaces it (a try
        left "new" forever held a pair of a briefing apart)."""
        if self._peers.get((link.remote, link.generation)) is link:
            await self._retire(link)
        else:
            await link.close()
        self.feed(ep.State(_now_ms(), link.remote, link.generation, "failed"))

    def _superseded(self, remote: str, generation: int) -> bool:
        """A newer offer from the same remote waits already: this one was given up on by
        its offerer (the server holds only the newest), and answering it anyway is a
        protocol error that, repeated by a slow end under churn, gets it thrown out of the
        call (as web/session.js ``superseded``)."""
        return any(r == remote and g > generation for r, g in self._offers)

    async def _do_answer(self, action: ep.Answer) -> None:
        msg = self._offers.pop((action.remote, action.generation), None)
        if msg is None or self._superseded(action.remote, action.generation):
            return
        link = self._new_link(action.remote, action.generation)
        link.received_sdp = msg["sdp"]
        try:
            await link.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
            link.add_media(offering=False)
            await link.pc.setLocalDescription(await link.pc.createAnswer())
            if self._superseded(action.remote, action.generation):
                await link.close()  # the newer offer is answered next
                return
            if await self._install(link):
                await self._send(self._signed_sdp("answer", link))
        except Exception:
            await self._abandon(link)
            raise

    async def _do_close(self, action: ep.Close) -> None:
        link = self._peers.get((action.remote, action.generation))
        if link is not None:
            await self._retire(link)

    async def _do_report(self, action: ep.Report) -> None:
        report = {"type": "link", "to": action.remote, "generation": action.generation,
                  "state": action.state, "duration_ms": action.duration_ms}
        self.stalls.append({**report, "at": _now_ms()})
        label = self.signed.plan.label(action.remote) if self.signed else action.remote
        if action.state == "lost":
            log.warning("%s: link to %s (generation %d) lost; reconnecting",
                        self.device[:12], label, action.generation)
        else:
            log.warning("%s: link to %s back after %.1f s (generation %d)",
                        self.device[:12], label, action.duration_ms / 1000,
                        action.generation)
        if action.generation == 0:
            return  # no link had carried media: nothing for the record
        if self._ws is None or not self._welcomed:
            self._reports.append(report)
        else:
            ws = self._ws  # the connection this report goes into (it may drop meanwhile)
            self._unconfirmed.append((time.monotonic(), report))
            await self._send(report)
            self._tasks.add(task := asyncio.create_task(self._confirm(ws)))
            task.add_done_callback(self._tasks.discard)

    async def _confirm(self, ws: Any) -> None:
        """Once a ping sent now is answered, what was sent before it has arrived."""
        sent = time.monotonic()
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, KEEPALIVE_TIMEOUT_S)
            if self._ws is ws:
                self._unconfirmed = [(t, r) for t, r in self._unconfirmed if t > sent]

    async def _do_status(self, action: ep.Status) -> None:
        was = self.status.get(action.remote, ("", 0))[0]
        self.status[action.remote] = (action.state, action.since_ms)
        link = self.links.get(action.remote)
        if was == "reconnecting" and action.state == "ok" and link is not None:
            link.resumed()
        for listener in self.status_listeners:
            listener(action.remote, action.state, action.since_ms)

    async def _do_alarm(self, action: ep.Alarm) -> None:
        self.alarm(action.text)

    _ACTIONS: dict[type, Callable[[CallSession, Any], Awaitable[None]]] = {
        ep.Offer: _do_offer, ep.Answer: _do_answer, ep.Close: _do_close,
        ep.Report: _do_report, ep.Status: _do_status, ep.Alarm: _do_alarm,
    }

    def reconnecting(self) -> dict[str, float]:
        """Remote devices whose link is being repaired, and for how many seconds."""
        now = _now_ms()
        return {remote: (now - since) / 1000 for remote, (state, since) in self.status.items()
                if state == "reconnecting"}

    async def set_muted(self, kinds: frozenset[MediaKind]) -> None:
        """Announce the kinds this end does not send now (their silence is no stall)."""
        self.muted = frozenset(str(k) for k in kinds)
        await self._send({"type": "media", "off": sorted(self.muted)})

    async def _install(self, link: PeerLink) -> bool:
        """Make ``link`` one of this end's open links; False if it cannot work."""
        if self._ice.relay_only and "typ relay" not in link.pc.localDescription.sdp:
            if link.remote not in self._relay_refused:  # once, not at every retry
                self._relay_refused.add(link.remote)
                self.alarm("no TURN relay: the relay refused the credentials (expired?) "
                           "or cannot be reached; nothing sent")
            await link.close()
            self.feed(ep.State(_now_ms(), link.remote, link.generation, "failed"))
            return False
        self._peers[(link.remote, link.generation)] = link
        return True

    def _signed_sdp(self, kind: str, link: PeerLink) -> dict[str, Any]:
        assert self.signed is not None
        sdp = link.sent_sdp = link.pc.localDescription.sdp
        signature = signed_sdp.sign(self.identity.key, call=self.call,
                                    plan_hash=self.signed.plan.hash, receiver=link.remote,
                                    generation=link.generation, kind=kind, sdp=sdp)
        return {"type": kind, "to": link.remote, "generation": link.generation, "sdp": sdp,
                "signature": signature}

    def _check_signed(self, kind: str, msg: dict[str, Any]) -> bool:
        """Whether a received offer/answer is signed by its sender for us. Alarms if not."""
        assert self.signed is not None
        sender = self.signed.plan.participant(msg["from"])
        if sender is None:
            self.alarm(f"{kind} from a device outside the plan; ignored")
            return False
        try:
            signed_sdp.verify(sender.key, msg["signature"], call=self.call,
                              plan_hash=self.signed.plan.hash, receiver=self.device,
                              generation=msg["generation"], kind=kind, sdp=msg["sdp"])
        except SignatureError as exc:
            self.alarm(f"{kind} from {sender.name} fails its signature ({exc}): it was "
                       "changed on the way (the DTLS fingerprint may have been swapped); "
                       "no media sent")
            return False
        return True

    def _refused(self, kind: str, remote: str) -> bool:
        if remote in self.revoked:
            assert self.signed is not None
            self.alarm(f"{kind} from {self.signed.plan.label(remote)}, a revoked device; "
                       "ignored")
            return True
        return False

    async def _on_offer(self, msg: dict[str, Any]) -> None:
        remote, generation = msg["from"], msg["generation"]
        if self.sfu is not None:
            log.info("%s: an offer on the SFU route; ignored", self.device[:12])
            return
        if self._refused("offer", remote):
            return
        if not isinstance(generation, int) or not self._check_signed("offer", msg):
            return
        send, receive = self._kinds(remote)
        if not (send or receive):
            self.alarm("offer from a device the plan does not let us connect to; ignored")
            return
        self._offers[(remote, generation)] = msg
        self.feed(ep.OfferIn(_now_ms(), remote, generation))

    async def _on_answer(self, msg: dict[str, Any]) -> None:
        key = (msg["from"], msg["generation"])
        if self._refused("answer", msg["from"]):
            return
        link = self._peers.get(key)
        if link is None or link.pc.signalingState != "have-local-offer":
            if key in self._offered and link is None:
                # a try closed meanwhile (a newer one replaced it, or an old link came
                # back): its answer arrives late when signaling was stuck; nothing to do
                log.info("%s: answer to a closed try (generation %s)", self.device[:12],
                         msg["generation"])
                return
            self.alarm("answer to no offer of ours; ignored")
            return
        if not self._check_signed("answer", msg):
            await self._retire(link)
            self.feed(ep.State(_now_ms(), link.remote, link.generation, "failed"))
            return
        link.received_sdp = msg["sdp"]
        await link.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))

    async def _on_candidate(self, msg: dict[str, Any]) -> None:
        """Ignored: the only candidates taken are those inside the signed SDP (both
        clients gather before they sign), so the server cannot point connectivity
        checks at an address of its choosing."""
        self.ignored_candidates += 1
        if self.ignored_candidates == 1:
            log.warning("%s: a candidate message outside the signed SDP; ignored",
                        self.device[:12])

    async def _on_bye(self, msg: dict[str, Any]) -> None:
        self.feed(ep.Bye(_now_ms(), msg["from"], msg["generation"]))

    async def _on_link(self, msg: dict[str, Any]) -> None:
        state = msg["state"]
        if state not in ("lost", "restored"):
            raise ValueError(f"link state {state!r}")
        self.feed(ep.PeerReport(_now_ms(), msg["from"], int(msg["generation"]), state))

    async def _on_media(self, msg: dict[str, Any]) -> None:
        off = frozenset(str(k) for k in msg["off"]) & {"audio", "video"}
        self.feed(ep.Muted(_now_ms(), msg["from"], off))
        if self.sfu is not None:
            self.sfu.muted[str(msg["from"])] = off

    # -- the SFU route (client/sfu.py) ---------------------------------------------------
    async def _on_sfu_published(self, msg: dict[str, Any]) -> None:
        if self.sfu is not None:
            await self.sfu.on_published(msg)

    async def _on_sfu_feed(self, msg: dict[str, Any]) -> None:
        if self.sfu is None:
            self.alarm("an SFU feed offered on a call that does not go through an SFU; "
                       "ignored")
            return
        await self.sfu.on_feed(msg)

    async def _on_sfu_gone(self, msg: dict[str, Any]) -> None:
        if self.sfu is not None:
            await self.sfu.on_gone(msg)

    _HANDLERS: dict[str, Callable[[CallSession, dict[str, Any]], Awaitable[None]]] = {
        "challenge": _on_challenge, "welcome": _on_welcome, "phase": _on_phase,
        "peer-joined": _on_peer_joined, "peer-left": _on_peer_left, "error": _on_error,
        "pong": _on_pong, "offer": _on_offer, "answer": _on_answer,
        "candidate": _on_candidate, "bye": _on_bye, "booth": _on_booth,
        "press-answer": _on_press_answer, "paged": _on_paged, "acked": _on_acked,
        "held": _on_held, "link": _on_link, "media": _on_media, "revoked": _on_revoked,
        "frame-key": _on_frame_key, "sfu-published": _on_sfu_published,
        "sfu-feed": _on_sfu_feed, "sfu-gone": _on_sfu_gone,
    }


_closing: set[asyncio.Task[None]] = set()  # held until done, as the loop holds tasks weakly


def _close_if_open(attempt: asyncio.Future[Any]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        task = asyncio.get_running_loop().create_task(attempt.result().close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def _now_ms() -> int:
    """The rules' clock: monotonic, so that a changed wall clock cannot fake a stall."""
    return time.monotonic_ns() // 1_000_000

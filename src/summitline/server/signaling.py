"""WebSocket signaling: one connection per endpoint device and call.

Per connection: one reader (this coroutine), one writer task draining a bounded queue
(a reader too slow for it is dropped, not buffered for), a token bucket on incoming
messages. The first exchange is the versioned handshake: the server sends a fresh
nonce, the device signs it. After that, messages dispatch by type to small handlers.
Bad input gets an ``error`` message with a stable code; fatal errors close the
connection with a code from ``closecodes``. Every refusal is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from summitline.core import booth, policy
from summitline.core import call as c
from summitline.core import messages as m
from summitline.core.plan import Participant
from summitline.core.record import describe
from summitline.core.roles import Phase, Role
from summitline.crypto import statements
from summitline.crypto.keys import SignatureError
from summitline.server import closecodes as cc
from summitline.server import limits
from summitline.server.cluster import RemoteEndpoint
from summitline.server.hub import Hub
from summitline.server.janusapi import JanusError
from summitline.server.press.gateway import PressRefused
from summitline.server.room import CallRoom
from summitline.server.security import ConnectionLimits
from summitline.server.sfu import SfuBroker, SfuInvalid

log = logging.getLogger(__name__)


class Fatal(Exception):
    """Ends the connection. ``room`` and ``device``: whom to record it against.
    ``public``: the code and message the client is told, if not ``code`` and the message
    (the record or incident keeps the precise ones)."""

    def __init__(self, code: str, message: str, close_code: int,
                 room: CallRoom | None = None, device: str = "",
                 public: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code
        self.room = room
        self.device = device
        self.public = public or (code, message)


# What a hello that is not admitted is told, whatever the reason: no such call, a device
# outside the plan, a nonce not this connection's, a signature that does not verify. One
# answer, so that a stranger without a key of the plan cannot learn whether a call exists
# or whether a fingerprint is in its plan (docs/protocol.md §6.4). The server's incidents
# keep the precise reason for its operator.
NOT_ADMITTED = ("not-admitted", "this hello is not admitted: there is no such call, or the "
                "device is not in its plan, or the hello does not answer this connection's "
                "challenge or does not verify with the plan's key")


_JOIN_CLOSE = {"seat-taken": cc.SEAT_TAKEN, "already-joined": cc.SEAT_TAKEN,
               "call-ended": cc.CALL_ENDED}


# What may go to a device before its welcome: the challenge, a refusal, the welcome.
_BEFORE_WELCOME = frozenset({"challenge", "error", "welcome"})


class Connection:
    def __init__(self, ws: WebSocket, hub: Hub, quota: ConnectionLimits | None = None) -> None:
        self.ws = ws
        self.hub = hub
        self.quota = quota or ConnectionLimits()
        self._call_slot = ""  # the call this connection counts against, once it names one
        self.remote = f"{ws.client.host}:{ws.client.port}" if ws.client else "unknown"
        self.device = ""
        self.room: CallRoom | None = None
        # Bounded by ``send`` (not by the queue) so that the closing marker always fits.
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        # What the room sends this device between its registration and its welcome (a
        # peer joining meanwhile): held back, then sent after the welcome, which comes
        # first (docs/protocol.md §5.1). None once welcomed.
        self._early: list[dict[str, Any]] | None = []
        self._bucket = limits.TokenBucket()
        self._errors = 0
        self._closing: tuple[int, str] | None = None
        self.left = asyncio.Event()  # set once its leaving is recorded (or it never joined)

    # -- writing -------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        if self._closing is not None:
            return
        if self._early is not None and message.get("type") not in _BEFORE_WELCOME:
            self._early.append(message)
            if len(self._early) > limits.SEND_QUEUE:
                self.finish(cc.OVERLOADED, "too slow: send queue full")
            return
        if self._queue.qsize() >= limits.SEND_QUEUE:
            log.warning("dropping %s: its send queue is full", self.remote)
            self.finish(cc.OVERLOADED, "too slow: send queue full")
            return
        self._queue.put_nowait(message)
        if message.get("type") == "welcome" and self._early is not None:
            early, self._early = self._early, None
            for held in early:
                self.send(held)

    def finish(self, code: int, reason: str) -> None:
        """Close once what is already queued has been sent; send nothing more."""
        if self._closing is None:
            self._closing = (code, reason)
            self._queue.put_nowait(None)

    async def _writer(self) -> None:
        while (message := await self._queue.get()) is not None:
            await self.ws.send_text(json.dumps(message))
        code, reason = self._closing or (1000, "")
        await self.close(code, reason)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await self.ws.close(code, reason[:120])

    def error(self, code: str, message: str, fatal: bool = False,
              ref: str | None = None) -> None:
        self.send(m.ErrorMessage(code=code, message=message, fatal=fatal, ref=ref).model_dump())

    # -- the connection's life -----------------------------------------------------------
    async def serve(self) -> None:
        await self.ws.accept()
        writer = asyncio.create_task(self._writer())
        try:
            await self._handshake()
            await self._read_loop()
        except Fatal as exc:
            await self._record_fatal(exc)
            code, message = exc.public
            self.error(code, message, fatal=True)
            self.finish(exc.close_code, code)
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("signaling connection %s failed", self.remote)
            self.error("internal", "the server failed; try again", fatal=True)
            self.finish(cc.INTERNAL, "internal error")
        finally:
            try:
                await self._leave()
            finally:
                self.left.set()
            if self._call_slot:
                self.quota.leave_call(self._call_slot)
            self.finish(1000, "")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=5)
            writer.cancel()

    async def _record_fatal(self, exc: Fatal) -> None:
        room = self.room or exc.room
        if room is None:
            await self._incident(exc.code, str(exc))
            return
        kind = "protocol.error" if self.room is not None else "endpoint.refused"
        await room.note(kind, {"device": self.device or exc.device, "code": exc.code},
                        self.remote)

    async def _receive(self) -> m.AnyClientMessage:
        msg = await self.ws.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        raw: str | bytes = msg.get("text") or msg.get("bytes") or b""
        if m.size_of(raw) > limits.MAX_MESSAGE_BYTES:
            raise Fatal("too-big", f"message over {limits.MAX_MESSAGE_BYTES} bytes",
                        cc.MESSAGE_TOO_BIG)
        if not self._bucket.take():
            raise Fatal("rate-limit", "too many messages; slow down", cc.POLICY)
        return m.parse_client(raw)

    async def _handshake(self) -> None:
        nonce = secrets.token_urlsafe(24)
        self.send(m.Challenge(versions=list(m.SUPPORTED_VERSIONS), nonce=nonce).model_dump())
        try:
            hello = await asyncio.wait_for(self._receive(), limits.HANDSHAKE_TIMEOUT_S)
        except TimeoutError:
            raise Fatal("handshake-timeout", "no hello within "
                        f"{limits.HANDSHAKE_TIMEOUT_S:.0f} s", cc.BAD_HANDSHAKE) from None
        except m.RemoteProtocolError as exc:
            raise Fatal(exc.code, f"bad handshake: {exc}", cc.BAD_HANDSHAKE) from None
        if not isinstance(hello, m.Hello):
            raise Fatal("bad-handshake", "the first message must be a hello", cc.BAD_HANDSHAKE)
        if hello.version not in m.SUPPORTED_VERSIONS:
            raise Fatal("unsupported-version", f"protocol version {hello.version} is not "
                        f"supported; this server speaks {list(m.SUPPORTED_VERSIONS)}",
                        cc.UNSUPPORTED_VERSION)
        if not self.quota.enter_call(hello.call):
            raise Fatal("too-many-connections", "too many connections for this call",
                        cc.TOO_MANY)
        self._call_slot = hello.call
        # the nonce first: it needs no lookup, so a replayed hello learns nothing either
        if not secrets.compare_digest(hello.nonce, nonce):
            raise Fatal("stale-nonce", "the hello does not answer this connection's "
                        "challenge (replayed?)", cc.AUTH_FAILED, public=NOT_ADMITTED)
        room = await self.hub.room(hello.call)
        if room is None:
            raise Fatal("unknown-call", f"there is no call {hello.call[:40]!r} on this server",
                        cc.AUTH_FAILED, public=NOT_ADMITTED)
        await self._authenticate(room, hello, nonce)
        await self._join(room, hello.device)

    async def _authenticate(self, room: CallRoom, hello: m.Hello, nonce: str) -> None:
        """Prove the device holds a key of the plan. Until it has, a refusal goes to the
        server's incidents, not the call's record (strangers cannot write there)."""
        def refuse(code: str, message: str) -> Fatal:
            return Fatal(code, f"{message} (call {hello.call[:40]}, device "
                         f"{hello.device[:12]})", cc.AUTH_FAILED, public=NOT_ADMITTED)

        participant = room.signed.plan.participant(hello.device)
        if participant is None:
            raise refuse("not-in-plan", "this device is not in the call plan")
        try:
            participant.key.verify(statements.join(hello.call, hello.device, nonce),
                                   hello.signature)
        except SignatureError:
            raise refuse("bad-signature", "the hello signature does not verify with the "
                         "device key in the plan") from None
        if await self.hub.store.revoked_as([(hello.device, participant.delegation)]):
            # (told as it is: only the holder of the device's key gets this far)
            raise Fatal("device-revoked", "its delegation revoked this device (call "
                        f"{hello.call[:40]}, device {hello.device[:12]})", cc.AUTH_FAILED)
        if not room.signed.complete:
            missing = ", ".join(d.name for d in room.signed.missing()) or "a delegation"
            raise Fatal("plan-unsigned", f"the call plan is not signed by {missing}; every "
                        "delegation of the plan must sign it", cc.PLAN_UNSIGNED, room,
                        hello.device)

    async def _join(self, room: CallRoom, device: str) -> None:
        p = room.signed.plan.participant(device)
        assert p is not None
        old = room.endpoints.get(device)
        channels_held = [ch for ch, d in room.state.live.items() if d == device]
        cluster = self.hub.cluster
        if cluster is not None:
            # The device is here before its join is recorded (server/cluster.py).
            before = await cluster.joining(room.call_id, device)
            if old is None and device in room.state.admitted:
                # admitted through a node this one has not heard of: it takes over as well
                old = RemoteEndpoint(cluster, room.call_id, device, "")
        if isinstance(old, RemoteEndpoint):
            # The same device, on another node (or one that died): it takes over here.
            with contextlib.suppress(c.IllegalEvent):
                await room.record("endpoint.left", {"device": device, "reason": "replaced"},
                                  c.Leave(device))
            if room.endpoints.get(device) is old:
                del room.endpoints[device]
            old.replaced()
        elif old is not None:
            # The same device, freshly authenticated, on a new connection: it lost the old
            # one before the server noticed. The new connection takes over.
            with contextlib.suppress(c.IllegalEvent):
                await room.record("endpoint.left", {"device": device, "reason": "replaced"},
                                  c.Leave(device))
            if room.endpoints.get(device) is old:
                del room.endpoints[device]
            old.error("replaced", "a new connection of this device took over", fatal=True)
            old.finish(cc.REPLACED, "replaced by a new connection of this device")
        try:
            await room.record("endpoint.joined", {"device": device, "role": str(p.role),
                                                  "delegation": p.delegation, "name": p.name},
                              c.Join(device))
        except c.IllegalEvent as exc:
            if cluster is not None:
                await cluster.refused(room.call_id, device, before)
            raise Fatal(exc.code, str(exc), _JOIN_CLOSE.get(exc.code, cc.AUTH_FAILED),
                        room, device) from None
        self.room, self.device = room, device
        room.endpoints[device] = self
        if cluster is not None:
            # Again, now that the join is recorded: another node joining the same device
            # at the same moment may have written its own name over this one before its
            # join was refused, and its "gone" then removes only an entry naming it
            # (attacker round f1: the record admitted a device presence had lost, and
            # the next node to load the call recorded it as node-lost).
            await cluster.joining(room.call_id, device)
            cluster.joined(room.call_id, device)
        if old is not None and channels_held:
            # the same device, back on a new connection: it keeps the booth it held
            with contextlib.suppress(c.IllegalEvent):
                # the same signed action that put it there (endpoints have seen it)
                signed = room.booth_actions.get(channels_held[0], {})
                await room.record("booth.live", {**signed, "device": device,
                                                 "channel": channels_held[0]},
                                  c.GoLive(device))
                room.broadcast(room.booth_state())
        if self.hub.sfu is not None and old is not None:
            # its earlier connection's publisher and feeds end with it: it publishes
            # again after this welcome, and its feeds are offered to this connection
            await self.hub.sfu.left(room, device)
        peers = [m.PeerInfo(device=d, generation=room.state.generation(device, d))
                 for d in room.presence_of(device)]
        self.send(m.Welcome(you=device, signed_plan=room.signed.to_json(),
                            phase=str(room.state.phase), peers=peers,
                            press_deadline_ms=room.state.press_deadline_ms,
                            ice_servers=self.hub.ice_servers(device),
                            booth=room.booth_state(), start=room.start_proof,
                            held=sorted(room.held),
                            revocations=await self.hub.store.revocations(
                                [q.device for q in room.signed.plan.participants],
                                [(q.device, q.delegation)
                                 for q in room.signed.plan.participants]),
                            sfu=self.hub.sfu_route(room)).model_dump())
        room.tell_peers(device, m.PeerJoined(device=device).model_dump())
        if p.role is Role.AIDE:  # pages of its principal that no aide has answered yet
            for page in room.pages.values():
                if page["delegation"] == p.delegation:
                    self.send(page["message"])
        log.info("%s joined %s", room.signed.plan.label(device), room.call_id)
        if self.hub.sfu is not None and self.hub.sfu_route(room):
            await self.hub.sfu.settle(room)  # the feeds it may receive from publishers

    async def _leave(self) -> None:
        room, device = self.room, self.device
        if room is None or room.endpoints.get(device) is not self:
            return
        if self.hub.cluster is not None and not await self.hub.cluster.holds(room.call_id,
                                                                            device):
            # a new connection of the device on another node took over (and recorded it)
            if room.endpoints.get(device) is self:
                del room.endpoints[device]
            return
        # Record first: once the leave is in the state, offers to this device are refused.
        booth_before = dict(room.state.live)
        try:
            await room.record("endpoint.left", {"device": device}, c.Leave(device))
        except c.IllegalEvent:
            return
        finally:
            if room.endpoints.get(device) is self:
                del room.endpoints[device]
        if self.hub.cluster is not None:
            await self.hub.cluster.gone(room.call_id, device)
        if self.hub.sfu is not None:
            await self.hub.sfu.left(room, device)
        room.tell_peers(device, m.PeerLeft(device=device).model_dump())
        if room.state.live != booth_before:  # a live interpreter left: its booth is quiet
            room.broadcast(room.booth_state())

    async def _incident(self, code: str, detail: str) -> None:
        await self.hub.store.add_incident(self.hub.clock(), self.remote, code, detail)

    # -- after the handshake -------------------------------------------------------------
    async def _read_loop(self) -> None:
        while True:
            try:
                msg = await self._receive()
            except m.RemoteProtocolError as exc:
                await self._refused(exc.code, str(exc), None)
                continue
            await self._HANDLERS[msg.type](self, msg)

    async def _refused(self, code: str, message: str, ref: str | None,
                       data: dict[str, Any] | None = None) -> None:
        assert self.room is not None
        self._errors += 1
        await self.room.note("signal.refused", {"device": self.device, "code": code,
                                                **(data or {})}, self.remote)
        self.error(code, message, ref=ref)
        if self._errors > limits.MAX_ERRORS:
            raise Fatal("too-many-errors", "too many protocol errors", cc.POLICY)

    async def _signal(self, msg: m.Offer | m.Answer) -> None:
        assert self.room is not None
        arrived = time.perf_counter()
        event = (c.Offer if isinstance(msg, m.Offer) else c.Answer)(
            self.device, msg.to, msg.generation)
        data = {"from": self.device, "to": msg.to, "generation": msg.generation}
        try:
            await self.room.record(f"signal.{msg.type}", data, event)
        except c.IllegalEvent as exc:
            await self._refused(exc.code, str(exc), msg.type, {"to": msg.to,
                                                               "generation": msg.generation})
            return
        target = self.room.endpoints.get(msg.to)
        if target is not None:  # else it left just now; the record has the attempt
            target.send(m.relayed(msg, self.device))
            self._relayed(msg.type, arrived)

    def _relayed(self, kind: str, arrived: float) -> None:
        self.hub.metrics.relay.labels(kind).observe(time.perf_counter() - arrived)

    async def _candidate(self, msg: m.Candidate) -> None:
        assert self.room is not None
        arrived = time.perf_counter()
        state = self.room.state
        target = self.room.endpoints.get(msg.to)
        if target is None or msg.generation != state.generation(self.device, msg.to) or \
                not policy.may_connect(state.plan, state.phase, self.device, msg.to):
            await self._refused("not-permitted", "no peer connection of that generation with "
                                "that endpoint", "candidate", {"to": msg.to})
            return
        target.send(m.relayed(msg, self.device))
        self._relayed(msg.type, arrived)

    async def _bye(self, msg: m.Bye) -> None:
        assert self.room is not None
        target = self.room.endpoints.get(msg.to)
        if target is None or msg.to not in self.room.presence_of(self.device):
            await self._refused("not-permitted", "no such peer to say bye to", "bye",
                                {"to": msg.to})
            return
        target.send(m.relayed(msg, self.device))

    async def _frame_key(self, msg: m.FrameKey) -> None:
        """A device's frame key for another (docs/protocol.md 5.10): relayed only between
        two present devices that the plan lets connect in some media phase (keys go
        before the start). Its signature is for the receiver to check: a key the server
        swapped or made up is refused there."""
        assert self.room is not None
        target = self.room.endpoints.get(msg.to)
        if target is None or msg.to not in self.room.presence_of(self.device):
            await self._refused("not-permitted", "no such peer to hand a frame key to",
                                "frame-key", {"to": msg.to})
            return
        target.send(m.relayed(msg, self.device))

    async def _stats(self, msg: m.Stats) -> None:
        assert self.room is not None
        self.room.health[self.device] = {"at": self.hub.clock(),
                                         "peers": [p.model_dump() for p in msg.peers]}

    async def _end(self, msg: m.End) -> None:
        assert self.room is not None
        plan = self.room.signed.plan
        if not policy.may_end(plan, self.device):
            await self._refused("not-permitted", "only a principal may end the call from "
                                "the call", "end")
            return
        if plan.host is not None and self._me().delegation != plan.host:
            await self._refused("not-permitted", "in a briefing only the host's principal "
                                "ends the call from the call; a guest leaves it", "end")
            return
        try:
            await self.room.change_phase("call.ended", {"by": self.device}, c.End)
        except c.IllegalEvent as exc:
            await self._refused(exc.code, str(exc), "end")

    async def _booth(self, msg: m.BoothAction) -> None:
        """A signed booth action. The endpoints check it themselves (core/booth.py); the
        server refuses what they would ignore, so that it never announces it."""
        assert self.room is not None
        if msg.action in booth.NAMING and msg.to is None:
            await self._refused("invalid", f"a {msg.action} names the partner ('to')", "booth")
            return
        me, room = self._me(), self.room
        if me.role is not Role.INTERPRETER:
            await self._refused("not-interpreter", "only an interpreter of the plan has a "
                                "booth", "booth")
            return
        action = {"action": msg.action, "from": self.device,
                  "to": msg.to if msg.action in booth.NAMING else None, "seq": msg.seq,
                  "at": msg.at, "signature": msg.signature}
        try:
            booth.verify(room.call_id, room.signed.plan, me.language, action)
        except booth.BoothActionError as exc:
            await self._refused("bad-signature", f"booth action refused: {exc}", "booth")
            return
        last = room.booth_actions.get(me.language, {}).get("seq", 0)
        if msg.seq <= last:
            await self._refused("stale-seq", f"the booth's sequence is at {last}; sign the "
                                "next one", "booth", {"seq": msg.seq})
            return
        if msg.seq > last + limits.BOOTH_SEQ_STEP:
            await self._refused("seq-too-far", f"the booth's sequence is at {last}; an "
                                f"action may go at most {limits.BOOTH_SEQ_STEP} above it",
                                "booth", {"seq": msg.seq})
            return
        now, to = room.clock(), msg.to or ""
        event: c.Event
        if msg.action == "live":
            event = c.GoLive(self.device)
        elif msg.action == "quiet":
            event = c.GoQuiet(self.device)
        elif msg.action == "handover":
            event = c.Handover(self.device, to)
        elif msg.action == "request":
            event = c.RequestHandover(self.device, to, now)
        else:
            event = c.HandoverAnswer(self.device, to, msg.action == "accept", now)
        signed = {k: v for k, v in action.items() if k not in ("action", "from", "to")}
        await self._interpretation(event, "booth", signed, now)

    async def _source(self, msg: m.Source) -> None:
        await self._interpretation(c.SetSource(self.device, msg.source), "source")

    async def _interpretation(self, event: c.Event, ref: str,
                              signed: dict[str, Any] | None = None,
                              at_ms: int | None = None) -> bool:
        """Apply, record and announce a change of the booths; whether it was taken.
        ``signed``: the action's seq, at and signature, kept in the record with it."""
        assert self.room is not None
        kind, data = describe(event)
        p = self.room.signed.plan.participant(self.device)
        if signed is not None:
            data = {**data, "from": self.device, **signed, "action": kind.split(".")[1]}
            if isinstance(event, c.Handover | c.RequestHandover | c.HandoverAnswer):
                data["to"] = event.receiver
        try:
            await self.room.record(kind, {**data, "channel": p.language if p else ""}, event,
                                   at_ms)
        except c.IllegalEvent as exc:
            await self._refused(exc.code, str(exc), ref)
            return False
        # (the room keeps the signed action it recorded: CallRoom._note_booth)
        self.room.broadcast(self.room.booth_state())
        return True

    # -- the press window ----------------------------------------------------------------
    async def _press_offer(self, msg: m.PressOffer) -> None:
        """A principal's floor for the press gateway, while the window is open."""
        assert self.room is not None
        room = self.room
        p = room.signed.plan.participant(self.device)
        deadline = room.state.press_deadline_ms
        plan = room.signed.plan
        channel = p.language if p is not None and p.role is Role.INTERPRETER else None
        if p is None or not (p.role is Role.PRINCIPAL or channel in plan.press_channels):
            await self._refused("not-permitted", "only principals, and interpreters of the "
                                "channels the plan gives the press, send to the press",
                                "press-offer")
            return
        if room.state.phase is not Phase.OPEN or deadline is None:
            await self._refused("press-closed", "the press window is not open", "press-offer")
            return
        layout = [q.device for q in room.signed.plan.participants if q.role is Role.PRINCIPAL]
        try:
            answer = await self.hub.press.feed(room.call_id, self.device, layout, deadline,
                                               msg.sdp, channel, plan.press_channels)
        except PressRefused as exc:
            await self._refused("press-closed", str(exc), "press-offer")
            return
        except ValueError as exc:
            await self._refused("invalid", f"the press offer is not usable: {exc}",
                                "press-offer")
            return
        await room.note("press.feed", {"device": self.device})
        self.send(m.PressAnswer(sdp=answer).model_dump())

    # -- briefings through the SFU (docs/protocol.md 5.12; nothing of it is recorded) ----
    def _sfu_refused(self, code: str, message: str, ref: str) -> None:
        """A refusal of an SFU request: told, not recorded. A Janus failure is the
        server's, not the device's: only the others count toward MAX_ERRORS."""
        self.error(code, message, ref=ref)
        if code != "sfu-failed":
            self._errors += 1
            if self._errors > limits.MAX_ERRORS:
                raise Fatal("too-many-errors", "too many protocol errors", cc.POLICY)

    def _sfu(self, ref: str) -> SfuBroker | None:
        assert self.room is not None
        if self.hub.sfu is None or not self.hub.sfu_route(self.room):
            self._sfu_refused("no-sfu", "this call's media does not go through an SFU (the "
                              "plan does not want it, or this server has none)", ref)
            return None
        return self.hub.sfu

    async def _sfu_publish(self, msg: m.SfuPublish) -> None:
        assert self.room is not None
        room = self.room
        sfu = self._sfu("sfu-publish")
        if sfu is None:
            return
        if room.state.phase not in policy.MEDIA_PHASES:
            self._sfu_refused("phase", "media goes through the SFU only while the call is "
                              "open or its doors closed", "sfu-publish")
            return
        if not policy.sends_in_call(room.signed.plan, self.device):
            self._sfu_refused("not-permitted", "the plan lets this device send media to "
                              "nobody", "sfu-publish")
            return
        try:
            answer = await sfu.publish(room, self.device, msg.sdp)
        except JanusError as exc:
            self._sfu_refused("sfu-failed", f"the SFU did not take the offer: {exc}",
                              "sfu-publish")
            return
        self.send(m.SfuPublished(sdp=answer).model_dump())

    async def _sfu_watch(self, msg: m.SfuWatch) -> None:
        assert self.room is not None
        sfu = self._sfu("sfu-watch")
        if sfu is None:
            return
        try:
            await sfu.watch(self.room, self.device, msg.feed, msg.sdp)
        except SfuInvalid as exc:
            self._sfu_refused("invalid", str(exc), "sfu-watch")
        except JanusError as exc:
            self._sfu_refused("sfu-failed", f"the SFU did not take the answer: {exc}",
                              "sfu-watch")

    async def _sfu_refeed(self, msg: m.SfuRefeed) -> None:
        assert self.room is not None
        sfu = self._sfu("sfu-refeed")
        if sfu is None:
            return
        try:
            await sfu.refeed(self.room, self.device, msg.from_)
        except SfuInvalid as exc:
            self._sfu_refused("invalid", str(exc), "sfu-refeed")

    # -- the aide button (nothing of it reaches the other delegation) --------------------
    def _me(self) -> Participant:
        assert self.room is not None
        p = self.room.signed.plan.participant(self.device)
        assert p is not None
        return p

    async def _page(self, msg: m.Page) -> None:
        assert self.room is not None
        me = self._me()
        if me.role is not Role.PRINCIPAL:
            await self._refused("not-permitted", "only a principal pages its aides", "page")
            return
        try:
            me.key.verify(statements.page(self.room.call_id, self.device, msg.id, msg.at),
                          msg.signature)
        except SignatureError:
            await self._refused("bad-signature", "the page is not signed by this device",
                                "page")
            return
        if msg.id in self.room.pages:
            await self._refused("invalid", "that page is already open", "page")
            return
        paged = m.Paged(id=msg.id, by=self.device, at=msg.at,
                        signature=msg.signature).model_dump()
        await self.room.record_private(me.delegation, "aide.paged",
                                       {"by": self.device, "page": msg.id, "at": msg.at})
        self.room.pages[msg.id] = {"delegation": me.delegation, "by": self.device,
                                   "message": paged}
        if self.room.tell_delegation(me.delegation, paged) == 0:
            self.error("no-aide", "no aide of your delegation is connected; the page "
                       "waits for the first to connect", ref="page")

    async def _ack(self, msg: m.Ack) -> None:
        assert self.room is not None
        me = self._me()
        page = self.room.pages.get(msg.page)
        if me.role is not Role.AIDE or page is None or page["delegation"] != me.delegation:
            await self._refused("not-permitted", "no open page of your principal with that "
                                "id", "ack")
            return
        try:
            me.key.verify(statements.ack(self.room.call_id, self.device, msg.page, msg.at),
                          msg.signature)
        except SignatureError:
            await self._refused("bad-signature", "the acknowledgement is not signed by this "
                                "device", "ack")
            return
        await self.room.record_private(me.delegation, "aide.acked",
                                       {"by": self.device, "page": msg.page, "at": msg.at})
        del self.room.pages[msg.page]
        acked = m.Acked(page=msg.page, by=self.device, at=msg.at,
                        signature=msg.signature).model_dump()
        self.room.tell_delegation(me.delegation, acked,
                                  frozenset({Role.AIDE, Role.PRINCIPAL}))

    async def _hold(self, msg: m.Hold) -> None:
        assert self.room is not None
        me = self._me()
        if me.role is not Role.PRINCIPAL:
            await self._refused("not-permitted", "only a principal holds its floor", "hold")
            return
        if msg.on == (self.device in self.room.held):
            return  # already so
        await self.room.record_private(me.delegation, "aside.started" if msg.on
                                       else "aside.ended", {"by": self.device})
        (self.room.held.add if msg.on else self.room.held.discard)(self.device)
        self.room.broadcast(m.Held(device=self.device, on=msg.on).model_dump())

    # -- link health (see core/endpoint.py) ---------------------------------------------
    async def _link(self, msg: m.LinkReport) -> None:
        """An endpoint reports a stalled or restored link: into the record, and on to the
        peer (which may not see the stall: media may be cut one way only)."""
        assert self.room is not None
        state = self.room.state
        if not policy.may_connect(state.plan, state.phase, self.device, msg.to) or \
                msg.generation > state.generation(self.device, msg.to):
            await self._refused("not-permitted", "no peer connection of that generation with "
                                "that endpoint", "link", {"to": msg.to})
            return
        fate = self.room.link_report(self.device, msg.to, msg.generation, msg.state)
        if fate == "drop":
            return  # past the device's budget: neither recorded nor relayed
        data: dict[str, Any] = {"device": self.device, "peer": msg.to,
                                "generation": msg.generation}
        if msg.state == "restored":
            data["duration_ms"] = msg.duration_ms
        if fate == "record":
            await self.room.record(f"link.{msg.state}", data)
        target = self.room.endpoints.get(msg.to)
        if target is not None:
            target.send(m.relayed(msg, self.device))

    async def _media(self, msg: m.MediaOff) -> None:
        assert self.room is not None
        state = self.room.state
        out = {"type": "media", "from": self.device, "off": sorted(set(msg.off))}
        for device, target in list(self.room.endpoints.items()):
            if device != self.device and policy.may_connect(state.plan, state.phase,
                                                            self.device, device):
                target.send(out)

    async def _ping(self, msg: m.Ping) -> None:
        self.send(m.Pong(id=msg.id).model_dump())

    async def _hello(self, msg: m.Hello) -> None:
        await self._refused("already-joined", "this connection has already joined", "hello")

    _HANDLERS: dict[str, Callable[[Connection, Any], Awaitable[None]]] = {
        "hello": _hello, "offer": _signal, "answer": _signal, "candidate": _candidate,
        "bye": _bye, "stats": _stats, "end": _end, "booth": _booth, "source": _source,
        "ping": _ping, "press-offer": _press_offer, "page": _page, "ack": _ack,
        "hold": _hold, "link": _link, "media": _media, "frame-key": _frame_key,
        "sfu-publish": _sfu_publish, "sfu-watch": _sfu_watch, "sfu-refeed": _sfu_refeed,
    }

"""Briefings through an SFU: the server brokers each device's media with a Janus
VideoRoom, which forwards frames that every sender encrypted end to end
(docs/protocol.md 5.12).

Per call, a private room in Janus, made on the first ``sfu-publish`` with a secret and a
PIN that only this server knows, ``require_e2ee``, VP8 and Opus. Each publishing device
has a publisher handle (``display``: its fingerprint); for each publisher S and each
other connected device R that the plan lets receive some of S's media in the current
phase (``core/policy.py`` ``media``), a subscriber handle with exactly those streams:
Janus's offer goes to R as ``sfu-feed``, R's answer comes back as ``sfu-watch``. Only
SDP passes through Python; Janus never holds a key. The feeds are set again whenever
the set of publishers, connected devices or the phase changes (``SfuBroker.settle``).

Nothing of it is recorded: the record has who was connected, as for every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from summitline.core import policy
from summitline.core.roles import MediaKind
from summitline.server.janusapi import JanusApi, JanusError, JanusSession
from summitline.server.room import CallRoom

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
# A feed whose receiver gives no answer in this time is let go (its handle detached);
# the receiver asks again with ``sfu-refeed``.
ANSWER_WAIT_S = 30.0


class SfuInvalid(Exception):
    """A request that names no feed or publisher this device may use (``invalid``)."""


@dataclass
class Publisher:
    device: str
    handle: int
    id: int  # Janus's id of the publisher (its "feed")
    mids: dict[MediaKind, str]  # the publisher's streams, by kind
    # Janus's peer connection with it is up ("webrtcup"): Janus takes subscribers to it
    # only from then on ("No such feed" before)
    up: bool = False


@dataclass
class Feed:
    id: str  # sent to the receiver as ``feed``
    sender: str
    receiver: str
    kinds: frozenset[MediaKind]
    handle: int
    publisher: int  # Janus's id of the publisher it subscribes to
    answered: bool = False


@dataclass(kw_only=True)
class SfuRoom(JanusSession):
    call: str
    control: int
    room: int
    secret: str
    pin: str
    publishers: dict[str, Publisher] = field(default_factory=dict)
    feeds: dict[str, Feed] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    owner: CallRoom | None = None  # the call's room in this server
    settling: set[asyncio.Task[None]] = field(default_factory=set)


def mids(sdp: str) -> dict[MediaKind, str]:
    """The first audio and video media sections' mids of an SDP offer."""
    out: dict[MediaKind, str] = {}
    kind: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=mid:") and kind in ("audio", "video"):
            out.setdefault(MediaKind(kind), line[6:].strip())
    return out


class SfuBroker(JanusApi):
    def __init__(self, url: str, api_secret: str | None = None,
                 admin_key: str | None = None) -> None:
        super().__init__(url, api_secret)
        self.admin_key = admin_key
        self.rooms: dict[str, SfuRoom] = {}
        self._making: dict[str, asyncio.Lock] = {}

    def _admin(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "admin_key": self.admin_key} if self.admin_key else body

    # -- the room ------------------------------------------------------------------------
    async def _room(self, call: str, publishers: int) -> SfuRoom:
        """The call's room, made on first use."""
        lock = self._making.setdefault(call, asyncio.Lock())
        async with lock:
            existing = self.rooms.get(call)
            if existing is not None:
                return existing
            session = await self._create_session()
            room = SfuRoom(session=session, call=call, control=0,
                           room=secrets.randbelow(2**52) + 1,
                           secret=secrets.token_urlsafe(24), pin=secrets.token_urlsafe(24))
            room.on_event = lambda event: self._event(room, event)
            self._start_poll(room)
            try:
                room.control = await self._attach(session, VIDEOROOM)
                await self._message(room, room.control, self._admin({
                    "request": "create", "room": room.room, "is_private": True,
                    "permanent": False, "description": "summitline briefing",
                    "secret": room.secret, "pin": room.pin, "require_e2ee": True,
                    "videocodec": "vp8", "audiocodec": "opus",
                    "publishers": max(publishers, 1), "notify_joining": False}))
            except JanusError:
                await self._end_session(room)
                raise
            self.rooms[call] = room
            log.info("briefing %s: Janus VideoRoom %s", call, room.room)
            return room

    def _event(self, room: SfuRoom, event: dict[str, Any]) -> None:
        if event.get("janus") == "webrtcup":  # a publisher is up: its feeds can be made
            for pub in room.publishers.values():
                if pub.handle == event.get("sender") and not pub.up:
                    pub.up = True
                    if room.owner is not None and not room.closed:
                        task = asyncio.create_task(self.settle(room.owner))
                        room.settling.add(task)
                        task.add_done_callback(room.settling.discard)
        elif event.get("janus") == "hangup":
            log.info("briefing %s: Janus hung up handle %s (%s)", room.call,
                     event.get("sender"), event.get("reason"))

    async def end(self, call: str) -> None:
        """The call ended: destroy its room (Janus hangs up every peer connection)."""
        room = self.rooms.pop(call, None)
        self._making.pop(call, None)
        if room is None or room.closed:
            return
        with contextlib.suppress(JanusError):
            await self._message(room, room.control, self._admin({
                "request": "destroy", "room": room.room, "secret": room.secret,
                "permanent": False}))
        await self._end_session(room)
        for task in list(room.settling):
            task.cancel()
        log.info("briefing %s: Janus VideoRoom %s destroyed", call, room.room)

    async def shutdown(self) -> None:
        for call in list(self.rooms):
            await self.end(call)
        await self.aclose()

    # -- publishing ----------------------------------------------------------------------
    async def publish(self, call: CallRoom, device: str, offer: str) -> str:
        """Publish ``device``'s send-only offer (replacing its earlier publisher); Janus's
        answer. JanusError if Janus refuses or does not answer."""
        room = await self._room(call.call_id, len(call.signed.plan.participants))
        room.owner = call
        async with room.lock:
            await self._unpublish(call, room, device)
            handle = await self._attach(room.session, VIDEOROOM)
            try:
                reply = await self._message(room, handle, {
                    "request": "joinandconfigure", "ptype": "publisher", "room": room.room,
                    "pin": room.pin, "display": device, "audio": True, "video": True},
                    {"type": "offer", "sdp": offer, "e2ee": True})
                answer = reply.get("jsep", {})
                if answer.get("type") != "answer":
                    raise JanusError("Janus gave no answer to the publisher's offer")
                data = reply["plugindata"]["data"]
                room.publishers[device] = Publisher(device, handle, int(data["id"]),
                                                    mids(offer))
            except (JanusError, KeyError, ValueError) as exc:
                self._detach_later(room, handle)
                raise JanusError(str(exc)) from None
        await self.settle(call)
        return str(answer["sdp"])

    async def _unpublish(self, call: CallRoom, room: SfuRoom, device: str) -> None:
        old = room.publishers.pop(device, None)
        if old is None:
            return
        for feed in [f for f in room.feeds.values() if f.sender == device]:
            self._drop(call, room, feed)
        await self._detach(room, old.handle)

    def _drop(self, call: CallRoom, room: SfuRoom, feed: Feed) -> None:
        """End a feed: its handle detached, its receiver told (if connected)."""
        room.feeds.pop(feed.id, None)
        self._detach_later(room, feed.handle)
        target = call.endpoints.get(feed.receiver)
        if target is not None:
            target.send({"type": "sfu-gone", "feed": feed.id})

    # -- receiving -----------------------------------------------------------------------
    def _wanted(self, call: CallRoom, room: SfuRoom) -> dict[tuple[str, str],
                                                              frozenset[MediaKind]]:
        """(sender, receiver) -> the kinds the receiver gets of the sender now."""
        plan, phase = call.signed.plan, call.state.phase
        out: dict[tuple[str, str], frozenset[MediaKind]] = {}
        for sender, pub in room.publishers.items():
            if not pub.up:
                continue
            for receiver in call.endpoints:
                kinds = policy.media(plan, phase, sender, receiver) & frozenset(pub.mids)
                if kinds:
                    out[(sender, receiver)] = kinds
        return out

    async def settle(self, call: CallRoom) -> None:
        """Make the feeds what the publishers, the connected devices and the phase say:
        end those no longer permitted (or of another publisher), offer the missing."""
        room = self.rooms.get(call.call_id)
        if room is None or room.closed:
            return
        async with room.lock:
            wanted = self._wanted(call, room)
            for feed in list(room.feeds.values()):
                pub = room.publishers.get(feed.sender)
                if wanted.get((feed.sender, feed.receiver)) != feed.kinds or pub is None or \
                        pub.id != feed.publisher:
                    self._drop(call, room, feed)
            held = {(f.sender, f.receiver) for f in room.feeds.values()}
            for (sender, receiver), kinds in wanted.items():
                if (sender, receiver) not in held:
                    try:
                        await self._subscribe(call, room, sender, receiver, kinds)
                    except JanusError as exc:
                        log.warning("briefing %s: no feed of %s for %s: %s", room.call,
                                    sender[:12], receiver[:12], exc)

    async def _subscribe(self, call: CallRoom, room: SfuRoom, sender: str, receiver: str,
                         kinds: frozenset[MediaKind]) -> None:
        pub = room.publishers[sender]
        handle = await self._attach(room.session, VIDEOROOM)
        try:
            reply = await self._message(room, handle, {
                "request": "join", "ptype": "subscriber", "room": room.room, "pin": room.pin,
                "streams": [{"feed": pub.id, "mid": pub.mids[k]} for k in sorted(kinds)]})
            offer = reply.get("jsep", {})
            if offer.get("type") != "offer":
                raise JanusError("Janus gave no offer for the subscriber")
        except JanusError:
            self._detach_later(room, handle)
            raise
        feed = Feed(secrets.token_urlsafe(16), sender, receiver, kinds, handle, pub.id)
        target = call.endpoints.get(receiver)
        if target is None:  # it left meanwhile
            self._detach_later(room, handle)
            return
        room.feeds[feed.id] = feed
        target.send({"type": "sfu-feed", "feed": feed.id, "from": sender,
                     "kinds": sorted(str(k) for k in kinds), "sdp": str(offer["sdp"])})
        asyncio.get_running_loop().call_later(ANSWER_WAIT_S, self._unanswered, call, room,
                                              feed)

    def _unanswered(self, call: CallRoom, room: SfuRoom, feed: Feed) -> None:
        if not feed.answered and room.feeds.get(feed.id) is feed and not room.closed:
            self._drop(call, room, feed)

    async def watch(self, call: CallRoom, device: str, feed_id: str, answer: str) -> None:
        """``device``'s answer to the offer of its feed ``feed_id``."""
        room = self.rooms.get(call.call_id)
        feed = room.feeds.get(feed_id) if room is not None else None
        if room is None or feed is None or feed.receiver != device or feed.answered:
            raise SfuInvalid("no such feed of this device waiting for its answer")
        feed.answered = True
        await self._message(room, feed.handle, {"request": "start"},
                            {"type": "answer", "sdp": answer, "e2ee": True})

    async def refeed(self, call: CallRoom, device: str, sender: str) -> None:
        """``device``'s feed of ``sender`` failed: end it and offer a new one."""
        room = self.rooms.get(call.call_id)
        if room is None or (sender, device) not in self._wanted(call, room):
            raise SfuInvalid("that device publishes nothing this device may receive")
        async with room.lock:
            for feed in [f for f in room.feeds.values()
                         if f.sender == sender and f.receiver == device]:
                self._drop(call, room, feed)
        await self.settle(call)

    # -- devices leaving -----------------------------------------------------------------
    async def left(self, call: CallRoom, device: str) -> None:
        """``device`` left: its publisher and its feeds are detached."""
        room = self.rooms.get(call.call_id)
        if room is None or room.closed:
            return
        async with room.lock:
            for feed in [f for f in room.feeds.values() if f.receiver == device]:
                room.feeds.pop(feed.id, None)
                self._detach_later(room, feed.handle)
            await self._unpublish(call, room, device)

"""The Python endpoint on the SFU route of a briefing (docs/protocol.md 5.12).

One send-only peer connection to the SFU (Janus's VideoRoom, brokered by the server with
``sfu-publish``), whose frames the shared encoder seals before packetization
(client/encoding.py, ``FrameCrypt.seal``); and one receive-only peer connection per feed
the server offers (``sfu-feed``), whose frames are opened with the key of the device the
feed is ``from`` before decoding (client/framecrypt.py): a frame that does not open is
dropped. Decoded frames go to the session's listeners, as a mesh link's do. No offer or
answer passes between endpoints on this route.

Every wait is bounded: a publish not answered in PUBLISH_WAIT_S, or refused with
``sfu-failed``, is tried again after 2, 4, 8 .. 30 s; a feed not connected in
FEED_WAIT_S, or failed, is asked for again (``sfu-refeed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from summitline.client.closing import close_peer
from summitline.client.encoding import EncodedCopy
from summitline.client.healing import heal, request_keyframe
from summitline.client.peer import PeerLink
from summitline.core import endpoint as ep
from summitline.core import policy
from summitline.core.roles import MediaKind

if TYPE_CHECKING:
    from summitline.client.session import CallSession

log = logging.getLogger(__name__)

RETRY_FIRST_S, RETRY_MAX_S = 2.0, 30.0  # after sfu-failed: 2, 4, 8 .. 30 s
PUBLISH_WAIT_S = 15.0  # an sfu-publish unanswered this long is sent again
FEED_WAIT_S = 20.0  # a feed not connected this long is asked for again
MIME = {MediaKind.AUDIO: "audio/opus", MediaKind.VIDEO: "video/vp8"}


def retry_delay(failures: int) -> float:
    """The pause before the next publish after ``failures`` failures in a row (>= 1)."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1)))


class SfuEndpoint:
    def __init__(self, session: CallSession) -> None:
        self.s = session
        self.publisher: RTCPeerConnection | None = None
        self._tracks: list[EncodedCopy] = []
        self.published = asyncio.Event()  # Janus answered the current publisher
        self.feeds: dict[str, PeerLink] = {}  # feed id -> its receive-only connection
        self._retired: dict[tuple[str, MediaKind], int] = {}
        self.failures = 0  # publishes failed in a row
        self.publishes = 0  # sfu-publish sent, all told
        self._retry: asyncio.TimerHandle | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        # What the session shows of each peer on this route: whether its feed decodes
        # ("ok"), or stalled ("reconnecting": no frame for ep.STALL_MS of a kind it
        # does not announce off).
        self.muted: dict[str, frozenset[str]] = {}  # peer -> kinds it announces off
        self._seen: dict[tuple[str, MediaKind], tuple[int, int]] = {}  # -> (frames, at ms)

    # -- what tests and the session read -------------------------------------------------
    def frames_from(self, remote: str, kind: MediaKind) -> int:
        return self._retired.get((remote, kind), 0) + sum(
            link.frames[kind] for link in self.links_from(remote))

    def frames(self, kind: MediaKind) -> int:
        return sum(n for (_, k), n in self._retired.items() if k == kind) + sum(
            link.frames[kind] for link in self.feeds.values())

    @property
    def refused(self) -> int:
        """Frames of the feeds that did not open (no key, or not the sender's)."""
        return sum(link.refused for link in self.feeds.values())

    def tick(self, now_ms: int) -> None:
        """The session's media-health tick: each peer's status from its feeds' frames."""
        s = self.s
        for remote in {link.remote for link in self.feeds.values()}:
            kinds = frozenset().union(*(link.receive for link in self.links_from(remote)))
            stalled = False
            for kind in kinds:
                n = self.frames_from(remote, kind)
                frames, at = self._seen.get((remote, kind), (-1, now_ms))
                if n != frames:
                    self._seen[(remote, kind)] = (n, now_ms)
                elif now_ms - at > ep.STALL_MS and str(kind) not in self.muted.get(remote,
                                                                                  ()):
                    stalled = True
            decoding = all(self._seen.get((remote, k), (0, 0))[0] > 0 for k in kinds)
            state = "reconnecting" if stalled else "ok" if decoding else None
            if state is None or s.status.get(remote, ("", 0))[0] == state:
                continue
            s.status[remote] = (state, now_ms)
            for listener in s.status_listeners:
                listener(remote, state, now_ms)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- publishing ----------------------------------------------------------------------
    def sends(self) -> frozenset[MediaKind]:
        """The kinds this device sends anyone in a media phase (what it publishes)."""
        assert self.s.signed is not None
        return policy.sends_in_call(self.s.signed.plan, self.s.device)

    async def publish(self) -> None:
        """Publish to the SFU, replacing any publisher of ours."""
        if self.closed or self.s.signed is None:
            return
        kinds = self.sends()
        if not kinds:
            return
        await self._drop_publisher()
        pc = self.publisher = RTCPeerConnection(self.s._ice.configuration())
        heal(pc)
        pc.on("connectionstatechange", lambda: self._publisher_state(pc))
        for kind in (MediaKind.AUDIO, MediaKind.VIDEO):
            track = self.s.source.link_track(kind) if kind in kinds else None
            if track is None:
                continue
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences([
                c for c in RTCRtpSender.getCapabilities(str(kind)).codecs
                if c.mimeType.lower() == MIME[kind]])
            if isinstance(track, EncodedCopy):
                track.bind(pc, transceiver.sender)
                self._tracks.append(track)
        await pc.setLocalDescription(await pc.createOffer())
        if self.publisher is not pc:
            return  # replaced or closed meanwhile
        self.published.clear()
        self.publishes += 1
        await self.s._send({"type": "sfu-publish", "sdp": pc.localDescription.sdp})
        self._arm_retry(PUBLISH_WAIT_S, pc)

    def _arm_retry(self, delay: float, pc: RTCPeerConnection | None) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_now, pc)

    def _retry_now(self, pc: RTCPeerConnection | None) -> None:
        self._retry = None
        if self.closed or (pc is not None and (self.publisher is not pc
                                               or self.published.is_set())):
            return
        if pc is not None:  # no answer in time: a failure like any other
            self.failures += 1
        self._spawn(self.publish())

    def _publisher_state(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState == "failed" and self.publisher is pc and not self.closed:
            self.failures += 1
            log.warning("%s: the SFU connection failed; publishing again in %.0f s",
                        self.s.device[:12], retry_delay(self.failures))
            self._arm_retry(retry_delay(self.failures), None)
        elif pc.connectionState == "connected" and self.publisher is pc:
            self.failures = 0

    async def on_published(self, msg: dict[str, Any]) -> None:
        pc = self.publisher
        if pc is None or pc.signalingState != "have-local-offer":
            return
        await pc.setRemoteDescription(RTCSessionDescription(str(msg["sdp"]), "answer"))
        self.published.set()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def failed(self, msg: dict[str, Any]) -> None:
        """The server refused the publish with ``sfu-failed``: again, after a pause."""
        self.failures += 1
        delay = retry_delay(self.failures)
        log.warning("%s: the SFU refused the publish (%s); again in %.0f s",
                    self.s.device[:12], msg.get("message"), delay)
        self._arm_retry(delay, None)

    async def _drop_publisher(self) -> None:
        pc, self.publisher = self.publisher, None
        tracks, self._tracks = self._tracks, []
        for track in tracks:
            track.stop()
        if pc is not None:
            await close_peer(pc)

    # -- receiving -----------------------------------------------------------------------
    async def on_feed(self, msg: dict[str, Any]) -> None:
        s = self.s
        feed, sender, sdp = str(msg["feed"]), str(msg["from"]), str(msg["sdp"])
        kinds = frozenset(MediaKind(k) for k in msg["kinds"])
        if s.signed is None or self.closed:
            return
        plan = s.signed.plan
        allowed = policy.media(plan, s.phase, sender, s.device)
        if plan.participant(sender) is None or not kinds <= allowed:
            s.alarm(f"the server offers a feed of {sender[:12]} ({sorted(kinds)}) that the "
                    "plan does not let this device receive; ignored")
            return
        crypt = s.crypt
        assert crypt is not None  # the SFU route always encrypts frames
        old = self.feeds.pop(feed, None)
        if old is not None:
            await self._retire(old)
        link = PeerLink(sender, 0, s._ice, send=frozenset(), receive=kinds, source=s.source,
                        alarm=s.alarm, on_frame=s._changed.set, on_audio=s._hear,
                        on_decoded=s._decoded,
                        opener=lambda kind, frame: crypt.open(sender, kind, frame))
        link.received_sdp = sdp
        self.feeds[feed] = link
        link.pc.on("connectionstatechange", lambda: self._feed_state(feed, link))
        try:
            await link.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await link.pc.setLocalDescription(await link.pc.createAnswer())
        except Exception as exc:  # an offer aiortc cannot take: ask for another
            log.warning("%s: feed of %s not usable: %r", s.device[:12], sender[:12], exc)
            self.feeds.pop(feed, None)
            await self._retire(link)
            await s._send({"type": "sfu-refeed", "from": sender})
            return
        link.sent_sdp = link.pc.localDescription.sdp
        await s._send({"type": "sfu-watch", "feed": feed, "sdp": link.sent_sdp})
        self._timers[feed] = asyncio.get_running_loop().call_later(
            FEED_WAIT_S, self._unconnected, feed, link)

    def _unconnected(self, feed: str, link: PeerLink) -> None:
        self._timers.pop(feed, None)
        if self.feeds.get(feed) is link and not link.connected and not self.closed:
            log.warning("%s: feed of %s not connected in %.0f s; asking again",
                        self.s.device[:12], link.remote[:12], FEED_WAIT_S)
            self._spawn(self.s._send({"type": "sfu-refeed", "from": link.remote}))

    def _feed_state(self, feed: str, link: PeerLink) -> None:
        if link.pc.connectionState == "failed" and self.feeds.get(feed) is link and \
                not self.closed:
            self._spawn(self.s._send({"type": "sfu-refeed", "from": link.remote}))

    async def on_gone(self, msg: dict[str, Any]) -> None:
        link = self.feeds.pop(str(msg["feed"]), None)
        timer = self._timers.pop(str(msg["feed"]), None)
        if timer is not None:
            timer.cancel()
        if link is not None:
            await self._retire(link)

    async def _retire(self, link: PeerLink) -> None:
        for kind, n in link.frames.items():
            key = (link.remote, kind)
            self._retired[key] = self._retired.get(key, 0) + n
        await link.close()

    def keyed(self, sender: str) -> None:
        """A new key of ``sender`` arrived: a key frame to start from under it."""
        for link in self.links_from(sender):
            request_keyframe(link.pc)

    def links_from(self, sender: str) -> list[PeerLink]:
        return [link for link in self.feeds.values() if link.remote == sender]

    async def reset_feeds(self) -> None:
        """Close every feed: the server ended them with the old signaling connection."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        feeds, self.feeds = self.feeds, {}
        for link in feeds.values():
            await self._retire(link)

    # -- the end -------------------------------------------------------------------------
    async def close(self) -> None:
        """Close every connection to the SFU (the call ended, or this end leaves)."""
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for task in list(self._tasks):
            task.cancel()
        await self._drop_publisher()
        await self.reset_feeds()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


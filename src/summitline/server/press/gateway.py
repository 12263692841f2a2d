"""The press gateway: the principals' floor in, one programme out to the press.

During the press window each principal's client sends its floor (audio and video) to
the gateway over a send-only WebRTC connection (``feed``). The gateway composes one
programme of the call (``Programme``) and serves it:

* to press viewers over WebRTC (``watch``, behind the WHEP-style route of
  ``server/press/routes.py``): every viewer gets the same encoded packets;
* as HLS for broadcasters (``hls_file``).

At the press deadline the gateway stops by itself (and the room tells it when the
doors shut early); but it is the server's, and the server is not trusted with the
cut: each principal's client stops sending at the deadline of the signed plan,
whatever the gateway does (client/session.py, web/session.js).

``PressGateway`` serves the viewers itself by default. With a ``JanusPress`` (``summitline
serve --janus-url``) it serves none: at the opening of the window it creates Janus
Streaming mountpoints, a ``Forwarder`` per mountpoint subscribes to the programme like a
viewer and sends its RTP there, and viewers are brokered to Janus (``offer``,
``answer``): Janus makes the offer, the viewer answers, Janus sends the media. The
mountpoints go at the deadline, with the window (server/press/janus.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from summitline.client.closing import close_peer, guard_decoders
from summitline.client.ice import IceSettings
from summitline.server.janusapi import JanusError
from summitline.server.limits import MAX_PRESS_VIEWERS as MAX_VIEWERS
from summitline.server.press.janus import Forwarder, JanusPress, JanusWindow
from summitline.server.press.programme import Packet, Programme, Subscriber
from summitline.server.press.static import StaticHls

log = logging.getLogger(__name__)

HLS_NAME = re.compile(r"^(index\.m3u8|segment\d{5}\.ts)$")


class PressRefused(Exception):
    """The gateway cannot do what was asked; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PacketTrack(MediaStreamTrack):
    """A viewer's track: the programme's encoded packets, sent as they are."""

    def __init__(self, kind: str, queue: asyncio.Queue[Packet | None]) -> None:
        super().__init__()
        self.kind = kind
        self._queue = queue

    async def recv(self) -> Packet:
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet


@dataclass
class Feed:
    """The press side of one call while its window is open."""

    call: str
    programme: Programme
    deadline_ms: int
    workdir: Path
    hls: Path  # the HLS programme's directory
    senders: dict[str, RTCPeerConnection] = field(default_factory=dict)
    viewers: dict[RTCPeerConnection, Subscriber] = field(default_factory=dict)
    closed: bool = False
    timer: asyncio.Task[None] | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)  # frames per principal
    last_frame_ms: dict[str, int] = field(default_factory=dict)
    # through Janus: the window's mountpoints (being made, then made), their forwarders
    janus: asyncio.Task[JanusWindow] | None = None
    forwarders: list[Forwarder] = field(default_factory=list)


class PressGateway:
    def __init__(self, ice: IceSettings, clock: Callable[[], int],
                 max_viewers: int = MAX_VIEWERS, workdir: Path | None = None,
                 janus: JanusPress | None = None, hls_dir: Path | None = None,
                 static_hls: StaticHls | None = None) -> None:
        self.ice = ice
        self.static_hls = static_hls
        self.janus = janus
        self.hls_dir = hls_dir  # a static web server's: DIR/{call}/ (server/press/static.py)
        self.clock = clock
        self.max_viewers = max_viewers
        self._root = Path(tempfile.mkdtemp(prefix="summitline-press-", dir=workdir))
        self.feeds: dict[str, Feed] = {}
        self.on_cpu: Callable[[float], None] = lambda seconds: None  # server/metrics.py

    # A hostile server in a test turns this off: the principals' clients cut anyway.
    enforce_deadline = True

    # -- principals ----------------------------------------------------------------------
    async def feed(self, call: str, device: str, layout: list[str], deadline_ms: int,
                   offer_sdp: str, channel: str | None = None,
                   channels: tuple[str, ...] = ()) -> str:
        """Take a principal's (or, with ``channel``, an interpreter's) send-only offer;
        answer it. Opens the programme; ``channels``: those the press may hear."""
        if self.clock() >= deadline_ms:
            raise PressRefused(409, "the press window has closed")
        feed = self.feeds.get(call)
        if feed is None:
            workdir = self._root / f"call-{len(self.feeds)}"
            hls = workdir / "hls"
            if self.hls_dir is not None:  # call ids are path-safe (core/plan.py, ID)
                hls = self.hls_dir / call
                shutil.rmtree(hls, ignore_errors=True)  # nothing of an earlier process
            feed = Feed(call, Programme(layout, hls_dir=hls, channels=channels),
                        deadline_ms, workdir, hls)
            self.feeds[call] = feed
            feed.programme.on_cpu = self.on_cpu
            feed.programme.start()
            if self.janus is not None:
                feed.janus = asyncio.create_task(self._open_janus(feed, self.janus))
            if self.enforce_deadline:
                feed.timer = asyncio.create_task(self._close_at(feed))
        if feed.closed:
            raise PressRefused(409, "the press window has closed")
        if channel is not None:
            feed.programme.add_interpreter(device, channel)
        old = feed.senders.pop(device, None)
        if old is not None:
            await close_peer(old)
        pc = RTCPeerConnection(self.ice.configuration())
        feed.senders[device] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            guard_decoders(pc)  # a principal's BYE must not block the server's loop
            feed.readers.append(asyncio.create_task(self._read(feed, device, track)))

        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def _read(self, feed: Feed, device: str, track: MediaStreamTrack) -> None:
        programme = feed.programme
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                if self.clock() >= feed.deadline_ms and self.enforce_deadline:
                    continue  # the window is over: nothing more goes into the programme
                if isinstance(frame, av.VideoFrame):
                    feed.received[device] = feed.received.get(device, 0) + 1
                    feed.last_frame_ms[device] = self.clock()
                    programme.feed_video(device, frame)
                elif isinstance(frame, av.AudioFrame):
                    programme.feed_audio(device, frame)

    async def _open_janus(self, feed: Feed, janus: JanusPress) -> JanusWindow:
        window = await janus.open(feed.call, feed.programme.channels)
        if feed.closed:  # the window shut while Janus was making it
            await janus.close(window)
            return window
        for channel, mountpoint in window.mountpoints.items():
            sub = feed.programme.subscribe(channel)
            feed.forwarders.append(Forwarder(sub, janus.rtp_host, mountpoint))
        log.info("press window of %s: forwarding to Janus mountpoints %s", feed.call,
                 [m.id for m in window.mountpoints.values()])
        return window

    async def _janus_window(self, call: str) -> tuple[JanusPress, JanusWindow]:
        feed = self.feeds.get(call)
        if feed is None or feed.closed or feed.janus is None or self.janus is None:
            raise PressRefused(409, "the press window is not open: the talks continue "
                               "behind closed doors" if feed else
                               "the press window has not opened yet")
        try:
            window = await asyncio.wait_for(asyncio.shield(feed.janus), 15.0)
        except (JanusError, TimeoutError) as exc:
            log.error("press window of %s: no Janus mountpoint: %s", call, exc)
            raise PressRefused(503, "the press relay is not available") from None
        if feed.closed or window.closed:
            raise PressRefused(409, "the press window is not open: the talks continue "
                               "behind closed doors")
        return self.janus, window

    async def offer(self, call: str, channel: str | None = None) -> tuple[str, str]:
        """A press viewer through Janus: its resource id and Janus's offer."""
        janus, window = await self._janus_window(call)
        if len(window.viewers) >= self.max_viewers:
            raise PressRefused(503, f"the viewer limit ({self.max_viewers}) is reached")
        if channel not in window.mountpoints:
            raise PressRefused(400, f"the press may not hear channel {channel!r}")
        try:
            return await janus.watch(window, channel)
        except JanusError as exc:
            log.error("press viewer of %s: %s", call, exc)
            raise PressRefused(503, "the press relay is not available") from None

    async def answer(self, call: str, viewer: str, answer_sdp: str) -> None:
        """The viewer's answer to Janus's offer."""
        janus, window = await self._janus_window(call)
        if viewer not in window.viewers:
            raise PressRefused(404, "no such press viewer waiting for its answer")
        try:
            await janus.answer(window, viewer, answer_sdp)
        except JanusError as exc:
            raise PressRefused(400, f"the answer is not usable: {exc}") from None

    async def leave(self, call: str, viewer: str) -> None:
        """A viewer through Janus hangs up (WHEP's DELETE)."""
        janus, window = await self._janus_window(call)
        if viewer not in window.viewers:
            raise PressRefused(404, "no such press viewer")
        await janus.leave(window, viewer)

    # -- viewers -------------------------------------------------------------------------
    async def watch(self, call: str, offer_sdp: str,
                    channel: str | None = None) -> tuple[RTCPeerConnection, str]:
        """A press viewer: the picture, and the floor or ``channel`` to hear."""
        if self.janus is not None:
            raise PressRefused(409, "this server's press watch through Janus: answer "
                               "the offer it gives")
        feed = self.feeds.get(call)
        if feed is None or feed.closed:
            raise PressRefused(409, "the press window is not open: the talks continue "
                               "behind closed doors" if feed else
                               "the press window has not opened yet")
        if len(feed.viewers) >= self.max_viewers:
            raise PressRefused(503, f"the viewer limit ({self.max_viewers}) is reached")
        if channel is not None and channel not in feed.programme.channels:
            raise PressRefused(400, f"the press may not hear channel {channel!r}")
        pc = RTCPeerConnection(self.ice.configuration())
        sub = feed.programme.subscribe(channel)
        feed.viewers[pc] = sub
        try:
            await pc.setRemoteDescription(RTCSessionDescription(vp8_first(offer_sdp), "offer"))
            kinds = {t.kind for t in pc.getTransceivers()}
            if "video" not in kinds:
                raise PressRefused(400, "the offer must receive video (VP8)")
            pc.addTrack(PacketTrack("video", sub.video))
            if "audio" in kinds:
                pc.addTrack(PacketTrack("audio", sub.audio))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, PressRefused) as exc:
            await self._drop_viewer(feed, pc)
            if isinstance(exc, PressRefused):
                raise
            raise PressRefused(400, f"the offer is not usable: {exc}") from None
        answer = str(pc.localDescription.sdp)
        if not _codec_of(answer, "video").lower() == "vp8":
            await self._drop_viewer(feed, pc)
            raise PressRefused(400, "the offer must accept VP8 video")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._drop_viewer(feed, pc)

        return pc, answer

    async def _drop_viewer(self, feed: Feed, pc: RTCPeerConnection) -> None:
        sub = feed.viewers.pop(pc, None)
        if sub is not None:
            feed.programme.unsubscribe(sub)
        await close_peer(pc)

    # -- state ---------------------------------------------------------------------------
    def state(self, call: str) -> str:
        feed = self.feeds.get(call)
        return "none" if feed is None else "closed" if feed.closed else "open"

    def viewers(self, call: str) -> int:
        feed = self.feeds.get(call)
        if feed is None:
            return 0
        janus = feed.janus
        if janus is not None and janus.done() and not janus.cancelled() \
                and janus.exception() is None:
            return len(janus.result().viewers)
        return len(feed.viewers)

    def snapshot(self, call: str) -> bytes | None:
        feed = self.feeds.get(call)
        if feed is None or feed.closed:
            return None
        return feed.programme.snapshot()

    def hls_file(self, call: str, name: str) -> Path | None:
        feed = self.feeds.get(call)
        if feed is None or not HLS_NAME.match(name):
            return None
        path = feed.hls / name
        return path if path.is_file() else None

    # -- closing -------------------------------------------------------------------------
    async def _close_at(self, feed: Feed) -> None:
        await asyncio.sleep(max(0.0, (feed.deadline_ms - self.clock()) / 1000))
        await self.close(feed.call)

    async def close(self, call: str) -> None:
        """The doors shut: stop the programme, end the playlist, let everyone go."""
        feed = self.feeds.get(call)
        if feed is None or feed.closed:
            return
        feed.closed = True
        await feed.programme.stop()  # ends every viewer's tracks and the HLS playlist
        await self._close_janus(feed)
        senders, feed.senders = list(feed.senders.values()), {}
        viewers = list(feed.viewers)
        for pc in senders + viewers:
            await close_peer(pc)
        feed.viewers.clear()
        for task in feed.readers:
            task.cancel()
        log.info("press window of %s closed", call)

    async def _close_janus(self, feed: Feed) -> None:
        """Stop forwarding; destroy the mountpoints (Janus hangs up their viewers)."""
        for forwarder in feed.forwarders:
            await forwarder.stop()
        feed.forwarders.clear()
        if feed.janus is None or self.janus is None:
            return
        try:
            window = await asyncio.wait_for(asyncio.shield(feed.janus), 15.0)
        except (JanusError, TimeoutError):
            feed.janus.cancel()
            return
        await self.janus.close(window)

    async def forget(self, call: str) -> None:
        """The call has ended: close and delete what the window left (HLS segments)."""
        await self.close(call)
        feed = self.feeds.pop(call, None)
        if feed is not None:
            if feed.timer is not None:
                feed.timer.cancel()
            shutil.rmtree(feed.workdir, ignore_errors=True)
            shutil.rmtree(feed.hls, ignore_errors=True)

    async def shutdown(self) -> None:
        for call in list(self.feeds):
            await self.forget(call)
        if self.janus is not None:
            await self.janus.aclose()
        shutil.rmtree(self._root, ignore_errors=True)


def _codec_of(sdp: str, kind: str) -> str:
    """The first codec of the first ``kind`` media section."""
    section = sdp.split(f"m={kind} ", 1)
    if len(section) < 2:
        return ""
    first = section[1].split("\r\n", 1)[0].split()[2:3]
    if not first:
        return ""
    match = re.search(rf"a=rtpmap:{first[0]} ([^/\r\n]+)/", section[1])
    return match.group(1) if match else ""


def vp8_first(sdp: str) -> str:
    """The offer with VP8 first among its video formats, so that the answer picks the
    codec of the programme (aiortc answers in the order of the offer)."""
    lines = sdp.split("\r\n")
    vp8 = {m.group(1) for line in lines if (m := re.match(r"a=rtpmap:(\d+) VP8/", line))}
    out = []
    for line in lines:
        if line.startswith("m=video "):
            head, formats = line.split()[:3], line.split()[3:]
            line = " ".join(head + [f for f in formats if f in vp8] +
                            [f for f in formats if f not in vp8])
        out.append(line)
    return "\r\n".join(out)

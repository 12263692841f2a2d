"""The press through Janus: the programme goes to a Janus Streaming mountpoint, and Janus
sends it to the viewers.

For a press pool of hundreds the Python server does not carry the viewers' media. The
gateway still composes and encodes the programme once (``Programme``); a ``Forwarder``
subscribes to it like a viewer and sends its packets as plain RTP (VP8 and Opus) to the
UDP ports of a mountpoint on loopback. ``JanusPress`` speaks Janus's HTTP API (with
httpx): at the opening of each press window it creates one session and one RTP
mountpoint per audio the press may hear (the floor, and each interpretation channel of
the plan); at the deadline (or the end) it destroys them, and the session with them,
which hangs up every viewer.

A viewer is brokered, not relayed: the WHEP-style route checks the token and the limit,
asks Janus to "watch" the mountpoint (Janus's Streaming plugin makes the offer), hands
the offer to the viewer, and passes the viewer's answer back ("start"). Only SDP goes
through Python (docs/protocol.md, "The press through Janus").

Janus's API is summitline's alone: loopback, an ``api_secret``, and the Streaming
plugin's ``admin_key`` for creating and destroying mountpoints (deploy/janus/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from summitline.server.janusapi import JanusApi, JanusError, JanusSession
from summitline.server.press.programme import Subscriber

log = logging.getLogger(__name__)

VIDEO_PT, AUDIO_PT = 96, 111  # the mountpoint's payload types (Janus offers these)
ANSWER_WAIT_S = 30.0  # a viewer that got an offer and does not answer is let go
STREAMING = "janus.plugin.streaming"


@dataclass(frozen=True)
class Mountpoint:
    id: int
    channel: str | None  # None: the floor
    video_port: int
    audio_port: int
    secret: str  # Janus asks for it to destroy the mountpoint


@dataclass
class Viewer:
    handle: int
    answered: bool = False


@dataclass(kw_only=True)
class JanusWindow(JanusSession):
    """A press window in Janus: a session (kept alive by its long poll), a control
    handle, the mountpoints, and the viewers brokered so far."""

    call: str
    control: int
    mountpoints: dict[str | None, Mountpoint] = field(default_factory=dict)
    viewers: dict[str, Viewer] = field(default_factory=dict)  # by the viewer's resource id


class JanusPress(JanusApi):
    def __init__(self, url: str, api_secret: str | None = None,
                 admin_key: str | None = None) -> None:
        super().__init__(url, api_secret)
        self.admin_key = admin_key
        self.rtp_host = urlsplit(self.url).hostname or "127.0.0.1"  # Janus's RTP input

    async def _session(self) -> tuple[int, int]:
        session = await self._create_session()
        return session, await self._attach(session, STREAMING)

    def _window(self, call: str, session: int, control: int) -> JanusWindow:
        window = JanusWindow(call=call, session=session, control=control)
        window.on_event = lambda event: self._viewer_event(window, event)
        return window

    def _viewer_event(self, window: JanusWindow, event: dict[str, Any]) -> None:
        if event.get("janus") in ("hangup", "detached"):  # a viewer left: let it go
            sender = event.get("sender")
            for key, viewer in list(window.viewers.items()):
                if viewer.handle == sender:
                    window.viewers.pop(key, None)
                    if event["janus"] == "hangup" and not window.closed:
                        self._detach_later(window, viewer.handle)

    async def open(self, call: str, channels: tuple[str, ...]) -> JanusWindow:
        session, control = await self._session()
        window = self._window(call, session, control)
        self._start_poll(window)
        try:
            for channel in (None, *channels):
                window.mountpoints[channel] = await self._create(window, call, channel)
        except JanusError:
            await self.close(window)
            raise
        return window

    async def _create(self, window: JanusWindow, call: str,
                      channel: str | None) -> Mountpoint:
        body: dict[str, Any] = {
            "request": "create", "type": "rtp", "is_private": False, "permanent": False,
            "description": f"summitline {call} {channel or 'floor'}",
            "secret": (secret := secrets.token_hex(16)),
            "media": [
                {"type": "video", "mid": "v", "codec": "vp8", "pt": VIDEO_PT, "port": 0,
                 "iface": self.rtp_host},
                {"type": "audio", "mid": "a", "codec": "opus", "pt": AUDIO_PT, "port": 0,
                 "iface": self.rtp_host}]}
        if self.admin_key:
            body["admin_key"] = self.admin_key
        data = (await self._message(window, window.control, body))["plugindata"]["data"]
        stream = data["stream"]
        ports = {p["mid"]: int(p["port"]) for p in stream["ports"]}
        return Mountpoint(int(stream["id"]), channel, ports["v"], ports["a"], secret)

    async def close(self, window: JanusWindow) -> None:
        """Destroy the window's mountpoints and session: every viewer is hung up."""
        if window.closed:
            return
        for mountpoint in list(window.mountpoints.values()):
            body: dict[str, Any] = {"request": "destroy", "id": mountpoint.id,
                                    "secret": mountpoint.secret, "permanent": False}
            if self.admin_key:
                body["admin_key"] = self.admin_key
            try:
                await self._message(window, window.control, body)
            except JanusError as exc:
                log.warning("could not destroy mountpoint %s: %s", mountpoint.id, exc)
        await self._end_session(window)
        window.viewers.clear()

    # -- viewers -------------------------------------------------------------------------
    async def watch(self, window: JanusWindow, channel: str | None) -> tuple[str, str]:
        """A new viewer of the floor or ``channel``: its resource id and Janus's offer."""
        handle = await self._attach(window.session, STREAMING)
        key = secrets.token_urlsafe(16)
        window.viewers[key] = Viewer(handle)
        try:
            reply = await self._message(window, handle, {
                "request": "watch", "id": window.mountpoints[channel].id})
            offer = reply.get("jsep", {})
            if offer.get("type") != "offer":
                raise JanusError("Janus gave no offer")
        except JanusError:
            await self.leave(window, key)
            raise
        asyncio.get_running_loop().call_later(
            ANSWER_WAIT_S, lambda: self._unanswered(window, key))
        return key, str(offer["sdp"])

    def _unanswered(self, window: JanusWindow, key: str) -> None:
        viewer = window.viewers.get(key)
        if viewer is not None and not viewer.answered and not window.closed:
            task = asyncio.create_task(self.leave(window, key))
            task.add_done_callback(lambda t: t.exception())

    async def answer(self, window: JanusWindow, key: str, sdp: str) -> None:
        viewer = window.viewers.get(key)
        if viewer is None or viewer.answered:
            raise JanusError("no such viewer waiting for its answer")
        viewer.answered = True
        await self._message(window, viewer.handle, {"request": "start"},
                            {"type": "answer", "sdp": sdp})

    async def leave(self, window: JanusWindow, key: str) -> None:
        viewer = window.viewers.pop(key, None)
        if viewer is not None and not window.closed:
            await self._detach(window, viewer.handle)

    # -- what Janus holds ----------------------------------------------------------------
    async def mountpoints(self) -> list[int]:
        """The ids of the mountpoints Janus holds now (its Streaming plugin's "list")."""
        session, handle = await self._session()
        window = self._window("list", session, handle)
        try:
            body: dict[str, Any] = {"request": "list"}
            if self.admin_key:
                body["admin_key"] = self.admin_key
            reply = await self._message(window, handle, body)
            return [int(m["id"]) for m in reply["plugindata"]["data"]["list"]]
        finally:
            with contextlib.suppress(JanusError):
                await self._post(f"/{session}", {"janus": "destroy"})


class Forwarder:
    """Sends the packets of a programme subscriber as RTP to a mountpoint's UDP ports:
    packetized as aiortc packetizes them for a viewer, never re-encoded."""

    def __init__(self, sub: Subscriber, host: str, mountpoint: Mountpoint) -> None:
        self.sub = sub
        self.host = host
        self.mountpoint = mountpoint
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = 0  # RTP packets
        self._tasks = [asyncio.create_task(self._video()), asyncio.create_task(self._audio())]

    def _send(self, port: int, packet: RtpPacket) -> None:
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            self.sock.sendto(packet.serialize(), (self.host, port))
            self.sent += 1

    async def _video(self) -> None:
        vp8 = Vp8Encoder()
        ssrc, seq = secrets.randbits(32), secrets.randbits(16)
        while (packet := await self.sub.video.get()) is not None:
            payloads, timestamp = vp8.pack(packet)
            for i, payload in enumerate(payloads):
                self._send(self.mountpoint.video_port, _rtp(
                    VIDEO_PT, seq, timestamp, ssrc, payload, i == len(payloads) - 1))
                seq = (seq + 1) & 0xFFFF

    async def _audio(self) -> None:
        opus = OpusEncoder()
        ssrc, seq = secrets.randbits(32), secrets.randbits(16)
        while (packet := await self.sub.audio.get()) is not None:
            payloads, timestamp = opus.pack(packet)
            for payload in payloads:
                self._send(self.mountpoint.audio_port,
                           _rtp(AUDIO_PT, seq, timestamp, ssrc, payload, False))
                seq = (seq + 1) & 0xFFFF

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sock.close()


def _rtp(pt: int, seq: int, timestamp: int, ssrc: int, payload: bytes,
         marker: bool) -> RtpPacket:
    return RtpPacket(payload_type=pt, marker=int(marker), sequence_number=seq,
                     timestamp=timestamp & 0xFFFFFFFF, ssrc=ssrc, payload=payload)


"""A press viewer in Python: watches the press programme of a call with a viewer token.

What a broadcaster's ingest or a test uses in place of the press page: it POSTs a
receive-only SDP offer to the call's WHEP-style route (or, when the server's press go
through Janus, answers the offer Janus makes) and counts what it decodes,
with the wall-clock time of every frame (the benchmarks measure the cut with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import av
import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from summitline.client.closing import close_peer, guard_decoders
from summitline.client.ice import IceSettings
from summitline.core.roles import MediaKind


class PressRefused(Exception):
    """The server refused the viewer (a bad or expired token, the window closed, full)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class PressViewer:
    def __init__(self, http: httpx.AsyncClient, call: str, token: str, ice: IceSettings,
                 on_video: Callable[[av.VideoFrame, int], None] | None = None,
                 channel: str | None = None,
                 on_audio: Callable[[av.AudioFrame], None] | None = None) -> None:
        self.http = http
        self.call = call
        self.token = token
        self.ice = ice
        self.pc: RTCPeerConnection | None = None
        self.frames: dict[MediaKind, int] = {MediaKind.AUDIO: 0, MediaKind.VIDEO: 0}
        self.last_ms: dict[MediaKind, int] = {}  # wall-clock ms of the last frame, per kind
        self.on_video = on_video  # (frame, arrival ms), e.g. to read a stamp from it
        self.on_audio = on_audio
        self.channel = channel  # an interpretation channel to hear (None: the floor)
        self.changed = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self.resource: str | None = None  # through Janus: where the answer went

    async def watch(self) -> None:
        pc = self.pc = RTCPeerConnection(self.ice.configuration())
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", self._on_track)
        await pc.setLocalDescription(await pc.createOffer())
        response = await self.http.post(
            f"/api/press/{self.call}/whep", content=pc.localDescription.sdp,
            params={"channel": self.channel} if self.channel else None,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/sdp"})
        if response.status_code != 201:
            await close_peer(pc)
            raise PressRefused(response.status_code, response.json().get("detail", ""))
        if response.headers.get("Summitline-SDP-Type") != "offer":
            await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
            return
        # through Janus: the server gives Janus's offer; a new connection answers it
        await close_peer(pc)
        pc = self.pc = RTCPeerConnection(self.ice.configuration())
        pc.on("track", self._on_track)
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.resource = response.headers["Location"]
        answered = await self.http.patch(
            self.resource, content=pc.localDescription.sdp,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/sdp"})
        if answered.status_code != 204:
            await close_peer(pc)
            raise PressRefused(answered.status_code, answered.json().get("detail", ""))

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.pc is not None:
            guard_decoders(self.pc)
        self._readers.append(asyncio.create_task(self._consume(MediaKind(track.kind), track)))

    async def _consume(self, kind: MediaKind, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.time_ns() // 1_000_000
                self.frames[kind] += 1
                self.last_ms[kind] = now
                if kind is MediaKind.VIDEO and self.on_video is not None:
                    assert isinstance(frame, av.VideoFrame)
                    self.on_video(frame, now)
                elif kind is MediaKind.AUDIO and self.on_audio is not None:
                    assert isinstance(frame, av.AudioFrame)
                    self.on_audio(frame)
                self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        if self.pc is not None:
            await close_peer(self.pc)

"""One peer connection of the Python endpoint to one remote device, at one generation.

It sends what the plan grants the remote device and consumes what the plan lets the
remote device send; a track the plan does not allow raises an alarm and is not read.
It counts decoded frames per kind, and loud audio frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from summitline.client.closing import close_peer, guard_decoders
from summitline.client.encoding import EncodedCopy
from summitline.client.framecrypt import open_frames
from summitline.client.healing import heal, request_keyframe
from summitline.client.ice import IceSettings
from summitline.client.media import MediaSource, loudness
from summitline.core.roles import MediaKind

log = logging.getLogger(__name__)

_LIVE = {"new", "connecting", "connected"}
SILENCE = 0.01  # RMS below this (of full scale) counts as silence


class PeerLink:
    def __init__(self, remote: str, generation: int, ice: IceSettings, *,
                 send: frozenset[MediaKind], receive: frozenset[MediaKind],
                 source: MediaSource, alarm: Callable[[str], None],
                 on_frame: Callable[[], None] = lambda: None,
                 on_audio: Callable[[str, av.AudioFrame], None] = lambda remote, f: None,
                 on_decoded: Callable[[str, MediaKind, float], None] | None = None,
                 opener: Callable[[str, bytes], bytes] | None = None,
                 ) -> None:
        self.remote = remote
        self.generation = generation
        self.send = send
        self.receive = receive
        self.pc = RTCPeerConnection(ice.configuration())
        heal(self.pc)  # keyframes after loss and on resume, audio that waits for stragglers
        self._on_decoded = on_decoded
        self._source = source
        self._alarm = alarm
        self._on_frame = on_frame
        self._on_audio = on_audio
        self.frames: dict[MediaKind, int] = {MediaKind.AUDIO: 0, MediaKind.VIDEO: 0}
        self.tracks: list[str] = []  # the kind of every track the peer sent us
        self.loud = 0  # audio frames received above the silence threshold
        # End to end encrypted frames: each opened before decoding (client/framecrypt.py)
        self._opener = opener
        self.refused = 0  # frames that did not open (no key, a wrong key, tampered)
        self.settled = asyncio.Event()  # connected, failed or closed
        self.sent_sdp = ""  # our offer or answer as signed and sent
        self.received_sdp = ""  # theirs, as received and verified
        self._readers: list[asyncio.Task[None]] = []
        self._sent: list[MediaStreamTrack] = []  # our copies of the source, one per kind
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._on_state_change = on_frame

    def _on_state(self) -> None:
        if self.pc.connectionState in ("connected", "failed", "closed"):
            self.settled.set()
        self._on_state_change()

    @property
    def live(self) -> bool:
        return self.pc.connectionState in _LIVE

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    def add_media(self, offering: bool) -> None:
        """Attach what we send; as offerer, also ask for what we may receive."""
        for kind in (MediaKind.AUDIO, MediaKind.VIDEO):
            track = self._source.link_track(kind) if kind in self.send else None
            if track is not None:
                sender = self.pc.addTrack(track)
                if isinstance(track, EncodedCopy):
                    track.bind(self.pc, sender)
                self._sent.append(track)
            elif offering and kind in self.receive:
                self.pc.addTransceiver(str(kind), direction="recvonly")

    def _on_track(self, track: MediaStreamTrack) -> None:
        guard_decoders(self.pc)  # a BYE or a lost DTLS must not block the loop either
        if self._opener is not None:
            for receiver in self.pc.getReceivers():
                if receiver.track is track:
                    open_frames(self.pc, receiver, self._opener, self._refused)
        self.tracks.append(track.kind)
        kind = MediaKind(track.kind)
        if kind not in self.receive:
            self._alarm(f"{self.remote[:12]} sent {kind} that the plan does not allow; "
                        "ignored")
            return
        self._readers.append(asyncio.create_task(self._consume(kind, track)))

    async def _consume(self, kind: MediaKind, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                self.frames[kind] += 1
                if self._on_decoded is not None:
                    self._on_decoded(self.remote, kind, time.monotonic())
                if isinstance(frame, av.AudioFrame):
                    if loudness(frame) > SILENCE:
                        self.loud += 1
                    self._on_audio(self.remote, frame)
                self._on_frame()

    def _refused(self) -> None:
        self.refused += 1

    def resumed(self) -> None:
        """Media came back on this link after a stall: ask for a keyframe at once."""
        request_keyframe(self.pc)

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await close_peer(self.pc)  # bounded, whatever aiortc's decoder threads do
        for track in self._sent:  # else the relay goes on queueing frames for them
            track.stop()

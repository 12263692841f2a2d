"""Media sources of the Python endpoint: synthetic test signals, or a file.

The synthetic video is a moving bar over a gradient, with the frame number written
into the first pixels of the luma plane, so a receiver can tell frames apart; the
synthetic audio is a steady tone. One source feeds every peer connection through
aiortc's ``MediaRelay`` (a track can be read by one consumer only), and each kind is
encoded once for all of them (client/encoding.py).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import (
    AUDIO_PTIME,
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    MediaStreamError,
)

from summitline.client.encoding import EncodedCopy, SharedEncoder
from summitline.client.healing import KEYFRAME_INTERVAL_S
from summitline.core.roles import MediaKind

# Small frames keep two encoders and two decoders within two cores during tests.
DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_FPS = 320, 240, 15
AUDIO_RATE = 48_000
TONE_HZ = 440.0


class PatternVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                 fps: int = DEFAULT_FPS) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None
        self._base = np.tile(np.linspace(16, 235, width, dtype=np.uint8), (height, 1))

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError  # stopped: whoever reads it (a relay) stops too
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        luma = self._base.copy()
        x = (self._count * 4) % self.width
        luma[:, x : x + 16] = 235
        luma[0, :4] = np.frombuffer(self._count.to_bytes(4, "big"), dtype=np.uint8)
        chroma = np.full((self.height // 2, self.width), 128, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        frame.pts = int(self._count * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self._count += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hz: float = TONE_HZ) -> None:
        super().__init__()
        self.hz = hz
        self._samples = 0
        self._start: float | None = None
        self._per_frame = int(AUDIO_RATE * AUDIO_PTIME)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._samples / AUDIO_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        t = (np.arange(self._per_frame) + self._samples) / AUDIO_RATE
        pcm = (0.2 * 32767 * np.sin(2 * math.pi * self.hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += self._per_frame
        return frame


def silence(samples: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), dtype=np.int16), format="s16",
                                       layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, AUDIO_RATE)
    return frame


def loudness(frame: av.AudioFrame) -> float:
    """RMS of a frame, 0..1 of full scale."""
    pcm = frame.to_ndarray().astype(np.float32)
    return float(np.sqrt(np.mean(pcm * pcm)) / 32768) if pcm.size else 0.0


class GatedAudioTrack(MediaStreamTrack):
    """An interpreter's voice: what ``inner`` says while ``open``, silence otherwise.
    It keeps the timing of ``inner``, so the listeners' decoders never starve."""

    kind = "audio"

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self.inner = inner
        self.open = False
        self.voiced = 0  # frames let through open: what an audit of the microphone reads

    async def recv(self) -> av.AudioFrame:
        frame = await self.inner.recv()
        assert isinstance(frame, av.AudioFrame)
        if not self.open:
            return silence(frame.samples, frame.pts or 0)
        self.voiced += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


class ParrotAudioTrack(MediaStreamTrack):
    """Says what it is fed (frames heard from its source) as soon as it hears them, and
    silence when nothing comes for a frame's time. The interpreter bot of tests and
    benchmarks: a perfect interpreter with no delay of its own, so that what it adds to
    the interpretation is the path's, not a clock's or a queue's."""

    kind = "audio"
    BACKLOG = 10  # frames; older ones are dropped so the parrot never drifts behind
    # No frame for two frames' time: say a frame of silence (a frame that is only late
    # is not replaced by silence).
    WAIT_S = 2 * AUDIO_PTIME

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.AudioFrame] = asyncio.Queue(self.BACKLOG)
        self._samples = 0
        self._per_frame = int(AUDIO_RATE * AUDIO_PTIME)

    def feed(self, frame: av.AudioFrame) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = self._samples
        self._samples += self._per_frame
        while self._queue.qsize() > 1:
            self._queue.get_nowait()  # catch up: speak the newest, drop what is stale
        try:
            heard = await asyncio.wait_for(self._queue.get(), self.WAIT_S)
        except TimeoutError:
            return silence(self._per_frame, pts)
        pcm = heard.to_ndarray()
        mono = pcm.reshape(-1, len(heard.layout.channels))[:, 0] if pcm.ndim == 2 else pcm
        frame = av.AudioFrame.from_ndarray(mono[: self._per_frame].astype(np.int16)
                                           .reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class HeldAudioTrack(MediaStreamTrack):
    """One consumer's copy of the voice: silence while the source is on hold (a
    principal's aside with an aide), so nobody hears it, the press included."""

    kind = "audio"

    def __init__(self, inner: MediaStreamTrack, source: MediaSource) -> None:
        super().__init__()
        self.inner, self.source = inner, source

    async def recv(self) -> av.AudioFrame:
        frame = await self.inner.recv()
        assert isinstance(frame, av.AudioFrame)
        return silence(frame.samples, frame.pts or 0) if self.source.held else frame

    def stop(self) -> None:
        super().stop()
        self.inner.stop()  # a relay's copy: unsubscribes it, so no frames queue up for it


class CutTrack(MediaStreamTrack):
    """A copy of a track that ends for good once ``cut`` or at ``deadline_ms`` (wall
    clock): a frame captured after either is never handed to the sender. The deadline is
    checked frame by frame, so a timer that fires late lets nothing through."""

    def __init__(self, inner: MediaStreamTrack, deadline_ms: int | None = None) -> None:
        super().__init__()
        self.kind = inner.kind
        self.inner = inner
        self.deadline_ms = deadline_ms
        self.cut = False

    async def recv(self) -> av.frame.Frame:
        frame = await self.inner.recv()
        if self.deadline_ms is not None and time.time_ns() // 1_000_000 >= self.deadline_ms:
            self.cut = True
        if self.cut:
            self.inner.stop()
            self.stop()
            raise MediaStreamError
        assert isinstance(frame, av.frame.Frame)
        return frame

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


class MediaSource:
    """What this endpoint sends: one audio and one video track, shared by all peers."""

    def __init__(self, audio: MediaStreamTrack | None, video: MediaStreamTrack | None,
                 player: MediaPlayer | None = None, *, share_encoding: bool = True) -> None:
        self._tracks = {MediaKind.AUDIO: audio, MediaKind.VIDEO: video}
        self._relay = MediaRelay()
        self._player = player
        self.held = False  # the floor audio is on hold (an aside)
        # Encode each kind once for every peer connection (False: once per connection,
        # as aiortc does by itself; bench/briefing.py measures both).
        self.share_encoding = share_encoding
        self.encoders: dict[MediaKind, SharedEncoder] = {}
        # End-to-end frame encryption (client/framecrypt.py), set by the session before
        # any link: every frame sent is sealed, so the encoding is always shared.
        self.seal: Callable[[str, bytes], bytes] | None = None

    @classmethod
    def synthetic(cls, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT,
                  fps: int = DEFAULT_FPS, hz: float = TONE_HZ) -> MediaSource:
        return cls(ToneAudioTrack(hz), PatternVideoTrack(width, height, fps))

    @classmethod
    def from_file(cls, path: Path) -> MediaSource:
        if not path.is_file():
            raise FileNotFoundError(f"no media file {path}")
        player = MediaPlayer(str(path), loop=True)
        return cls(player.audio, player.video, player)

    @classmethod
    def interpreter(cls, parrot: bool = False, hz: float = TONE_HZ) -> MediaSource:
        """An interpreter's voice (a tone, or a parrot of its source), gated: silent
        unless it is live in its booth. No video: interpreters are never seen."""
        voice: MediaStreamTrack = ParrotAudioTrack() if parrot else ToneAudioTrack(hz)
        return cls(GatedAudioTrack(voice), None)

    @property
    def video_track(self) -> MediaStreamTrack | None:
        return self._tracks[MediaKind.VIDEO]

    @property
    def gate(self) -> GatedAudioTrack | None:
        audio = self._tracks[MediaKind.AUDIO]
        return audio if isinstance(audio, GatedAudioTrack) else None

    @property
    def parrot(self) -> ParrotAudioTrack | None:
        gate = self.gate
        return gate.inner if gate and isinstance(gate.inner, ParrotAudioTrack) else None

    def track(self, kind: MediaKind) -> MediaStreamTrack | None:
        source = self._tracks[kind]
        if source is None:
            return None
        copy = self._relay.subscribe(source)
        return HeldAudioTrack(copy, self) if kind is MediaKind.AUDIO else copy

    def link_track(self, kind: MediaKind) -> MediaStreamTrack | None:
        """What one peer connection sends of ``kind``: a copy of the one encoding shared
        by every connection (``EncodedCopy``; bind it to its sender), or with
        ``share_encoding`` off, frames it encodes itself."""
        if self._tracks[kind] is None:
            return None
        if not self.share_encoding and self.seal is None:
            return self.track(kind)
        encoder = self.encoders.get(kind)
        if encoder is None:
            encoder = self.encoders[kind] = SharedEncoder(
                str(kind), lambda: self._frames(kind), KEYFRAME_INTERVAL_S, self.seal)
        return EncodedCopy(encoder, lambda: self.track(kind))

    def _frames(self, kind: MediaKind) -> MediaStreamTrack:
        track = self.track(kind)
        assert track is not None
        return track

    def stop(self) -> None:
        for track in self._tracks.values():
            if track is not None:
                track.stop()

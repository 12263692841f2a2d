"""Media sources of the Python endpoint: synthetic test signals, or a file.

The synthetic video is a moving bar over a gradient, with the frame number written
into the first pixels of the luma plane, so a receiver can tell frames apart; the
synthetic audio is a steady tone. One source feeds every peer connection through
aiortc's ``MediaRelay`` (a track can be read by one consumer only).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

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


class MediaSource:
    """What this endpoint sends: one audio and one video track, shared by all peers."""

    def __init__(self, audio: MediaStreamTrack | None, video: MediaStreamTrack | None,
                 player: MediaPlayer | None = None) -> None:
        self._tracks = {MediaKind.AUDIO: audio, MediaKind.VIDEO: video}
        self._relay = MediaRelay()
        self._player = player

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

    def track(self, kind: MediaKind) -> MediaStreamTrack | None:
        source = self._tracks[kind]
        return self._relay.subscribe(source) if source is not None else None

    def stop(self) -> None:
        for track in self._tracks.values():
            if track is not None:
                track.stop()

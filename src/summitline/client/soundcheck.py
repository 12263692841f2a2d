"""A sound check of the floor path: a set of steady tones across the band an interpreter
needs (125 Hz to 15 kHz, ISO 20109), and how level the receiving end hears them.

The tones sound together, one in each band of Opus's general-audio coder (CELT codes
the energy of each band apart), so one spectrum of a second or two of what arrives
gives the level of each against the level at 1 kHz: no alignment in time, and a frame
lost on the way lowers every tone alike. What reads it: tests/client/test_floor_audio.py
and tests/browser/test_floor_audio.py (Python and Chromium senders), bench/interpretation.py
(``freq_response_db``).
"""

from __future__ import annotations

import asyncio
import fractions
import io
import math
import time
import wave

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME, MediaStreamError

RATE = 48_000
REFERENCE_HZ = 1_000
# One tone per CELT band (no two in one), none closer than 5 Hz to another's harmonics.
TONES_HZ = (125, 250, 500, 1_000, 2_000, 4_000, 6_000, 9_000, 11_000, 15_000)
AMPLITUDE = 0.06  # of full scale, each: ten together peak below 0.6 with these phases
TONE_DBFS = 20 * math.log10(AMPLITUDE)  # -24.4: each tone's level as sent
# Fixed phases (not all zero), so that the tones never all peak at once.
_PHASES = np.random.default_rng(20109).uniform(0, 2 * math.pi, len(TONES_HZ))
# A tone's level is the highest spectrum bin this close to it (Hann window's main lobe).
SEARCH_HZ = 3
# The reference tone must stand this far above nothing for a reading to mean anything.
MIN_REFERENCE_DBFS = -60.0


def signal(samples: int, start: int = 0) -> np.ndarray:
    """The sound check's samples ``start`` to ``start + samples``, float in -1..1."""
    t = (np.arange(samples) + start) / RATE
    out = np.zeros(samples)
    for hz, phase in zip(TONES_HZ, _PHASES, strict=True):
        out += AMPLITUDE * np.sin(2 * math.pi * hz * t + phase)
    return out


def wav(seconds: float) -> bytes:
    """The sound check as a 48 kHz mono 16-bit WAV file (a whole number of seconds loops
    without a click: every tone is a whole number of hertz)."""
    pcm = (signal(round(seconds * RATE)) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def levels_db(pcm: np.ndarray) -> dict[int, float]:
    """Each tone's level in ``pcm`` (mono, float -1..1, at RATE), in dB against the
    tone at REFERENCE_HZ; the reference itself as dBFS under key 0."""
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm * window)) * 2 / window.sum()
    hz_per_bin = RATE / len(pcm)

    def level(hz: int) -> float:
        lo, hi = int((hz - SEARCH_HZ) / hz_per_bin), int((hz + SEARCH_HZ) / hz_per_bin) + 1
        return 20 * math.log10(max(float(spectrum[lo:hi + 1].max()), 1e-12))

    ref = level(REFERENCE_HZ)
    out = {hz: round(level(hz) - ref, 2) for hz in TONES_HZ}
    out[0] = round(ref, 2)
    return out


def worst_deviation_db(levels: dict[int, float]) -> float:
    """The largest departure of any tone from the reference, in dB (0 is flat). Infinite
    when the reference was not heard."""
    if levels[0] < MIN_REFERENCE_DBFS:
        return math.inf
    return max(abs(v) for hz, v in levels.items() if hz)


def mono(frame: av.AudioFrame) -> np.ndarray:
    """A decoded frame's first channel, float -1..1."""
    pcm = frame.to_ndarray()
    channels = len(frame.layout.channels)
    flat = pcm.reshape(-1, channels)[:, 0] if pcm.ndim == 2 else pcm
    return flat.astype(np.float64) / 32768


class SoundCheckTrack(MediaStreamTrack):
    """The sound check as a microphone would give it: each 20 ms frame once its last
    sample is due."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._samples = 0
        self._start: float | None = None
        self._per_frame = int(RATE * AUDIO_PTIME)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + (self._samples + self._per_frame) / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self.frame_at(self._samples // self._per_frame)
        self._samples += self._per_frame
        return frame

    def frame_at(self, n: int) -> av.AudioFrame:
        """Frame ``n`` of the sound check (20 ms each)."""
        start = n * self._per_frame
        pcm = (signal(self._per_frame, start) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = RATE, start
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class Recorder:
    """Keeps the last ``seconds`` of what one remote sends (fed decoded frames)."""

    def __init__(self, seconds: float) -> None:
        self.limit = round(seconds * RATE)
        self._chunks: list[np.ndarray] = []
        self.samples = 0  # heard in all

    def feed(self, frame: av.AudioFrame) -> None:
        chunk = mono(frame)
        self._chunks.append(chunk)
        self.samples += len(chunk)
        while sum(len(c) for c in self._chunks[1:]) >= self.limit:
            self._chunks.pop(0)

    @property
    def full(self) -> bool:
        return sum(len(c) for c in self._chunks) >= self.limit

    def pcm(self) -> np.ndarray:
        return np.concatenate(self._chunks)[-self.limit:] if self._chunks else np.zeros(0)

"""The press programme of one call: the principals in a grid, the floor audio mixed.

The grid holds every principal of the plan, each in a 320x240 cell, in the plan's order,
left to right and top to bottom (``grid``): two side by side in a 640x480 picture (as
in a bilateral), three or four 2x2 (640x480), five or six 3x2 (960x480), seven or eight
3x3 (960x720); a last row not full is centred.

Composed and encoded once, whatever the number of viewers: every ``PROGRAMME_FPS`` a
picture is composed from the latest frame of each principal and encoded to VP8; every
20 ms the floor audio of all of them is mixed and encoded to Opus. The encoded packets go to
every subscriber (the WebRTC viewers, or a forwarder to a Janus Streaming mountpoint),
which send them as they are (aiortc packs an ``Packet`` without re-encoding). A
second encoder (H.264 + AAC) writes the HLS programme for broadcasters.

A principal whose frames stop (the doors shut at its end) leaves a dark cell: the
programme never repeats a stale picture as if it were live.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import av
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext

log = logging.getLogger(__name__)
Packet: TypeAlias = "av.Packet[Any]"  # an encoded packet of the programme

WIDTH, HEIGHT = 640, 480  # the programme of two principals (a bilateral), and the least
CELL_W, CELL_H = 320, 240  # one principal's picture in it
PROGRAMME_FPS = 15
VIDEO_BITRATE = 600_000  # at WIDTH x HEIGHT; a larger grid gets as much per pixel
AUDIO_RATE = 48_000
PTIME_S = 0.020
SAMPLES = int(AUDIO_RATE * PTIME_S)  # per 20 ms
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
STALE_S = 0.5  # a principal's picture older than this is not shown
MAX_AUDIO_BACKLOG = SAMPLES * 10  # 200 ms per principal; older audio is dropped
HLS_SEGMENT_S = 1
OPUS_FRAME_MS = 60
DUCK = 0.3  # the floor under an interpretation channel, as a principal's listening does
SUBSCRIBER_QUEUE = 64  # packets; a subscriber that falls further behind skips ahead


def grid(n: int) -> tuple[int, int]:
    """Columns and rows of the programme's grid for ``n`` principals."""
    cols = 1 if n <= 1 else 2 if n <= 4 else 3
    return cols, max(1, -(-n // cols))


def frame_size(n: int) -> tuple[int, int]:
    """The programme's width and height for ``n`` principals: the grid of cells, and at
    least WIDTH x HEIGHT (two principals sit side by side, centred in it)."""
    cols, rows = grid(n)
    return max(WIDTH, cols * CELL_W), max(HEIGHT, rows * CELL_H)


def cells(n: int) -> list[tuple[int, int]]:
    """The top left corner of each principal's cell, in order: rows top to bottom, a last
    row that is not full centred, the whole grid centred in the picture."""
    cols, rows = grid(n)
    width, height = frame_size(n)
    top0 = (height - rows * CELL_H) // 2
    out = []
    for i in range(n):
        row, col = divmod(i, cols)
        in_row = min(cols, n - row * cols)
        left0 = (width - in_row * CELL_W) // 2
        out.append((left0 + col * CELL_W, top0 + row * CELL_H))
    return [(left // 2 * 2, top // 2 * 2) for left, top in out]  # even: chroma halves


def bitrate(width: int, height: int) -> int:
    """The programme's VP8 bitrate: VIDEO_BITRATE per WIDTH x HEIGHT, so that each cell
    gets what a principal gets in the bilateral's programme."""
    return VIDEO_BITRATE * width * height // (WIDTH * HEIGHT)


@dataclass
class Input:
    """What one principal (channel None) or interpreter sends the programme."""

    channel: str | None = None
    picture: np.ndarray | None = None  # yuv420p planes stacked, at half the width
    picture_at: float = 0.0
    audio: deque[np.ndarray] = field(default_factory=deque)
    buffered: int = 0
    frames: int = 0
    last_at: float = 0.0  # when anything of this principal last arrived


class Subscriber:
    """Encoded packets of the programme for one consumer, starting at a keyframe; the
    audio of the floor (``channel`` None) or of an interpretation channel."""

    def __init__(self, channel: str | None = None) -> None:
        self.channel = channel
        self.video: asyncio.Queue[Packet | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.audio: asyncio.Queue[Packet | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._keyframe_seen = False

    def put(self, kind: str, packet: Packet) -> None:
        if kind == "video":
            if not self._keyframe_seen and not packet.is_keyframe:
                return
            self._keyframe_seen = True
            queue = self.video
        else:
            queue = self.audio
        if queue.full():  # too slow: skip ahead rather than buffer
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(packet)

    def end(self) -> None:
        for queue in (self.video, self.audio):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(None)


class Programme:
    """``layout``: the principals' devices, in the order of their cells (``cells``).
    ``channels``: interpretation channels the press may hear; each gets its own audio
    (the floor ducked under the channel's interpreters), encoded once for all its
    viewers; the picture is shared."""

    def __init__(self, layout: list[str], hls_dir: Path | None = None,
                 fps: int = PROGRAMME_FPS, channels: tuple[str, ...] = ()) -> None:
        self.layout = layout
        self.width, self.height = frame_size(len(layout))
        self.cells = dict(zip(layout, cells(len(layout)), strict=True))
        self.fps = fps
        self.channels = channels
        self.inputs = {device: Input() for device in layout}
        self.subscribers: set[Subscriber] = set()
        self.hls_dir = hls_dir
        self.encoded = 0  # video frames encoded (once, for all viewers)
        self.on_cpu: Callable[[float], None] = lambda seconds: None  # encoding's CPU time
        self.running = False
        self.ended = asyncio.Event()
        self._want_keyframe = True
        self._picture: av.VideoFrame | None = None  # the latest composed picture
        self._vp8 = _vp8(fps, self.width, self.height)
        self._opus = _opus()
        self._opus_channels = {channel: _opus() for channel in channels}
        self._hls: _Hls | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Callable[[], None]] = []

    # -- input ---------------------------------------------------------------------------
    def add_interpreter(self, device: str, channel: str) -> None:
        if channel in self.channels and device not in self.inputs:
            self.inputs[device] = Input(channel=channel)

    def feed_video(self, device: str, frame: av.VideoFrame) -> None:
        inp = self.inputs.get(device)
        if inp is None or not self.running:
            return
        small = frame.reformat(width=CELL_W, height=CELL_H, format="yuv420p")
        inp.picture = small.to_ndarray()
        inp.picture_at = inp.last_at = time.monotonic()
        inp.frames += 1

    def feed_audio(self, device: str, frame: av.AudioFrame) -> None:
        inp = self.inputs.get(device)
        if inp is None or not self.running:
            return
        if frame.format.name != "s16" or frame.sample_rate != AUDIO_RATE:
            return  # aiortc decodes Opus to s16 at 48 kHz
        # packed samples, interleaved by channel: average the channels
        mono = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
        inp.audio.append(mono.astype(np.float32))
        inp.buffered += len(mono)
        inp.last_at = time.monotonic()
        while inp.buffered > MAX_AUDIO_BACKLOG:
            inp.buffered -= len(inp.audio.popleft())

    # -- output --------------------------------------------------------------------------
    def subscribe(self, channel: str | None = None) -> Subscriber:
        sub = Subscriber(channel)
        if self.ended.is_set():
            sub.end()
            return sub
        self.subscribers.add(sub)
        self._want_keyframe = True
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def snapshot(self) -> bytes | None:
        """The current picture as JPEG (the official photo is taken from it)."""
        picture = self._picture
        if picture is None or not self.running:
            return None
        codec = av.CodecContext.create("mjpeg", "w")
        codec.width, codec.height, codec.pix_fmt = self.width, self.height, "yuvj420p"
        codec.time_base = fractions.Fraction(1, self.fps)
        codec.options = {"qmin": "1", "qmax": "3"}
        frame = picture.reformat(format="yuvj420p")
        frame.pts = 0
        return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        if self.running or self.ended.is_set():
            return
        self.running = True
        if self.hls_dir is not None:
            self._hls = _Hls(self.hls_dir, self.fps, self.width, self.height)
        self._tasks = [asyncio.create_task(self._video_loop()),
                       asyncio.create_task(self._audio_loop())]

    async def stop(self) -> None:
        """Stop composing, end every subscriber, end the HLS playlist."""
        if self.ended.is_set():
            return
        self.running = False
        self.ended.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self.subscribers):
            sub.end()
        self.subscribers.clear()
        if self._hls is not None:
            await asyncio.to_thread(self._hls.close)

    async def _video_loop(self) -> None:
        n, start = 0, time.monotonic()
        while True:
            due = start + n / self.fps
            late = time.monotonic() - due
            if late > 1 / self.fps:  # behind (a loaded machine): skip, never burst
                n += int(late * self.fps)
                due = start + n / self.fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            keyframe, self._want_keyframe = self._want_keyframe, False
            picture = self._compose()
            picture.pts = int(n * VIDEO_CLOCK_RATE / self.fps)
            picture.time_base = VIDEO_TIME_BASE
            packets = await asyncio.to_thread(self._encode_video, picture, keyframe, n)
            self._picture = picture
            for packet in packets:
                for sub in list(self.subscribers):
                    sub.put("video", packet)
            n += 1
            self.encoded += 1

    def _compose(self) -> av.VideoFrame:
        now = time.monotonic()
        width, height = self.width, self.height
        y = np.full((height, width), 16, dtype=np.uint8)
        u = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        v = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        for device, (left, top) in self.cells.items():
            inp = self.inputs[device]
            if inp.picture is None or now - inp.picture_at > STALE_S:
                continue
            h = inp.picture.shape[0] * 2 // 3
            w = inp.picture.shape[1]
            flat = inp.picture.reshape(-1)
            y[top:top + h, left:left + w] = flat[: h * w].reshape(h, w)
            cu = flat[h * w: h * w + (h // 2) * (w // 2)].reshape(h // 2, w // 2)
            cv = flat[h * w + (h // 2) * (w // 2):].reshape(h // 2, w // 2)
            u[top // 2: top // 2 + h // 2, left // 2: left // 2 + w // 2] = cu
            v[top // 2: top // 2 + h // 2, left // 2: left // 2 + w // 2] = cv
        planes = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
        return av.VideoFrame.from_ndarray(planes.reshape(height * 3 // 2, width),
                                          format="yuv420p")

    def _encode_video(self, picture: av.VideoFrame, keyframe: bool, n: int) -> list[Packet]:
        started = time.thread_time()
        if keyframe:
            picture.pict_type = av.video.frame.PictureType.I
        packets = list(self._vp8.encode(picture))
        if self._hls is not None:
            self._hls.video(picture, n)
        self.on_cpu(time.thread_time() - started)
        return packets

    async def _audio_loop(self) -> None:
        n, start = 0, time.monotonic()
        while True:
            due = start + n * PTIME_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            floor = np.zeros(SAMPLES, dtype=np.float32)
            voices = {channel: np.zeros(SAMPLES, dtype=np.float32) for channel in self.channels}
            for inp in self.inputs.values():
                if inp.channel is None:
                    floor += _take(inp, SAMPLES)
                else:
                    voices[inp.channel] += _take(inp, SAMPLES)
            frame = _audio_frame(floor, n)
            self._send_audio(None, self._opus, frame)
            for channel, voice in voices.items():
                mixed = _audio_frame(DUCK * floor + voice, n)
                self._send_audio(channel, self._opus_channels[channel], mixed)
            if self._hls is not None:
                self._hls.audio(frame)
            n += 1

    def _send_audio(self, channel: str | None, codec: AudioCodecContext,
                    frame: av.AudioFrame) -> None:
        for packet in codec.encode(frame):
            for sub in list(self.subscribers):
                if sub.channel == channel:
                    sub.put("audio", packet)


def _audio_frame(mix: np.ndarray, n: int) -> av.AudioFrame:
    pcm = np.clip(mix, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE
    frame.pts = n * SAMPLES
    frame.time_base = AUDIO_TIME_BASE
    return frame


def _take(inp: Input, count: int) -> np.ndarray:
    out = np.zeros(count, dtype=np.float32)
    filled = 0
    while filled < count and inp.audio:
        chunk = inp.audio[0]
        k = min(count - filled, len(chunk))
        out[filled:filled + k] = chunk[:k]
        filled += k
        if k == len(chunk):
            inp.audio.popleft()
        else:
            inp.audio[0] = chunk[k:]
        inp.buffered -= k
    return out


def _vp8(fps: int, width: int, height: int) -> VideoCodecContext:
    codec = av.VideoCodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate(width, height)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.time_base = VIDEO_TIME_BASE
    codec.gop_size = fps  # a keyframe every second: late viewers start soon
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                     "error-resilient": "1"}
    return codec


def _opus() -> AudioCodecContext:
    codec = av.AudioCodecContext.create("libopus", "w")
    codec.bit_rate = 64_000
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = AUDIO_RATE
    codec.time_base = AUDIO_TIME_BASE
    # 60 ms packets: a third of the audio packets of 20 ms ones, for every viewer; the
    # press hear the programme, not a conversation, so the 40 ms more are of no account
    codec.options = {"application": "audio", "frame_duration": str(OPUS_FRAME_MS)}
    return codec


class _Hls:
    """H.264 + AAC in MPEG-TS segments with an EVENT playlist, ended on close."""

    def __init__(self, directory: Path, fps: int, width: int, height: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.out = av.open(str(directory / "index.m3u8"), "w", format="hls", options={
            "hls_time": str(HLS_SEGMENT_S), "hls_list_size": "0",
            "hls_playlist_type": "event", "hls_flags": "temp_file+independent_segments",
            "hls_segment_filename": str(directory / "segment%05d.ts")})
        self.v = self.out.add_stream("libx264", rate=fps)
        self.v.width, self.v.height, self.v.pix_fmt = width, height, "yuv420p"
        self.v.codec_context.gop_size = fps * HLS_SEGMENT_S
        self.v.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self.a = self.out.add_stream("aac", rate=AUDIO_RATE)
        self.a.layout = "mono"
        self.fifo = av.AudioFifo()
        self.resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        self.fps = fps
        self._closed = False
        self._lock = threading.Lock()  # video muxes from a worker thread, audio from the loop

    def video(self, picture: av.VideoFrame, n: int) -> None:
        frame = av.VideoFrame.from_ndarray(picture.to_ndarray(), format="yuv420p")
        frame.pts = n
        frame.time_base = fractions.Fraction(1, self.fps)
        with self._lock:
            if not self._closed:
                self.out.mux(self.v.encode(frame))

    def audio(self, frame: av.AudioFrame) -> None:
        with self._lock:
            if self._closed:
                return
            for resampled in self.resampler.resample(frame):
                self.fifo.write(resampled)
            while self.fifo.samples >= 1024:
                self.out.mux(self.a.encode(self.fifo.read(1024)))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(av.FFmpegError):
                self.out.mux(self.v.encode(None))
                self.out.mux(self.a.encode(None))
            self.out.close()

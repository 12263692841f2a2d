"""Video and audio that heal: the buffers fed real RTP from aiortc's own encoders, a healed
call between two real peer connections, and the long-haul profile between namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCSessionDescription
from aiortc.codecs import depayload, get_decoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from summitline.client import healing
from summitline.client.closing import close_peer
from summitline.client.healing import (
    AUDIO_MAX_WAIT_S,
    AUDIO_MIN_WAIT_S,
    AUDIO_WAIT_STEP_S,
    DEFAULT_RTT_S,
    RETRANSMISSION_MARGIN_S,
    AudioReorderBuffer,
    VideoFrameBuffer,
    vp8_keyframe_start,
)
from summitline.client.ice import IceSettings, loopback
from summitline.client.media import MediaSource, PatternVideoTrack, ToneAudioTrack
from summitline.core.roles import MediaKind
from summitline.labcall import stalled_within
from summitline.netlab import Lab

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48_000, channels=2,
                             payloadType=111)
FPS = 15
GIVE_UP_S = DEFAULT_RTT_S + RETRANSMISSION_MARGIN_S


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rtp(codec: RTCRtpCodecParameters, seq: int, timestamp: int, payload: bytes,
        marker: bool) -> RtpPacket:
    """A packet as aiortc's receiver hands it to its jitter buffer (payload parsed)."""
    packet = RtpPacket(payload_type=codec.payloadType, sequence_number=seq & 0xFFFF,
                       timestamp=timestamp & 0xFFFFFFFF, marker=int(marker))
    packet.payload = payload
    packet._data = depayload(codec, payload)  # type: ignore[attr-defined]
    return packet


class Camera:
    """VP8 frames of noise (several packets each) from aiortc's own encoder, as RTP."""

    def __init__(self, seed: int = 1, width: int = 160, height: int = 120) -> None:
        self.encoder = Vp8Encoder()
        self.rng = np.random.default_rng(seed)
        self.shape = (height * 3 // 2, width)
        self.seq = 1000
        self.count = 0

    def frame(self, keyframe: bool = False) -> list[RtpPacket]:
        image = self.rng.integers(0, 255, self.shape, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts, frame.time_base = self.count * 6000, fractions.Fraction(1, 90_000)
        payloads, timestamp = self.encoder.encode(frame, keyframe)
        self.count += 1
        packets = [rtp(VP8, self.seq + i, timestamp, p, i == len(payloads) - 1)
                   for i, p in enumerate(payloads)]
        self.seq += len(payloads)
        return packets


class Feed:
    """Packets into a buffer (ours, or aiortc's with ``stock``), one frame time apart,
    noting the frames it hands on and the PLIs it asks for."""

    def __init__(self, clock: FakeClock, stock: bool = False) -> None:
        self.clock = clock
        self.buffer: VideoFrameBuffer | JitterBuffer = (
            JitterBuffer(512, is_video=True) if stock else
            VideoFrameBuffer(self.deliver, lambda pt, payload: vp8_keyframe_start(payload),
                             clock=clock))
        self.frames: list[JitterFrame] = []
        self.plis: list[float] = []

    def deliver(self, frame: JitterFrame, payload_type: int) -> None:
        assert payload_type == VP8.payloadType
        self.frames.append(frame)

    def packets(self, packets: list[RtpPacket]) -> None:
        for packet in packets:
            pli, frame = self.buffer.add(packet)
            if pli:
                self.plis.append(self.clock.now)
            if frame is not None:
                self.frames.append(frame)

    def frame_time(self, packets: list[RtpPacket]) -> None:
        self.packets(packets)
        self.clock.now += 1 / FPS

    def statistics(self) -> healing.HealingStatistics:
        assert isinstance(self.buffer, VideoFrameBuffer)
        return self.buffer.statistics()


def decodes(frames: list[JitterFrame]) -> int:
    """How many of these frames aiortc's VP8 decoder turns into pictures, in order."""
    decoder = get_decoder(VP8)
    return sum(len(decoder.decode(frame)) for frame in frames)


def test_frames_in_order_go_to_the_decoder_as_they_complete() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    sizes = []
    for _ in range(10):
        packets = camera.frame()
        sizes.append(len(packets))
        feed.packets(packets[:-1])
        assert len(feed.frames) == len(sizes) - 1  # not before its last packet
        feed.frame_time(packets[-1:])
        assert len(feed.frames) == len(sizes)  # at once with it
    assert min(sizes) > 1 and decodes(feed.frames) == 10 and feed.plis == []


def test_a_hole_nack_cannot_fill_asks_for_a_keyframe_and_video_resumes_there() -> None:
    clock, camera = FakeClock(), Camera()
    healed, stock = Feed(clock), Feed(clock, stock=True)
    for _ in range(5):
        packets = camera.frame()
        healed.packets(packets)
        stock.frame_time(packets)
    lost = camera.frame()
    for feed in (healed, stock):
        feed.packets(lost[1:])  # its first packet never comes, retransmitted or not
    hole_seen = clock.now
    clock.now += 1 / FPS
    while clock.now - hole_seen < GIVE_UP_S + 0.3:
        packets = camera.frame()
        healed.packets(packets)
        stock.frame_time(packets)
    # One PLI (said twice), one round trip and its margin after the hole, and nothing
    # decoded after it
    assert len(healed.plis) == 2
    assert GIVE_UP_S <= healed.plis[0] - hole_seen < GIVE_UP_S + 1 / FPS
    assert healing.PLI_ECHO_S <= healed.plis[1] - healed.plis[0] < healing.PLI_ECHO_S + 1 / FPS
    assert len(healed.frames) == 5
    keyframe_at = clock.now
    for keyframe in (True, False, False):
        packets = camera.frame(keyframe)
        healed.packets(packets)
        stock.frame_time(packets)
    assert len(healed.frames) == 8 and decodes(healed.frames) == 8
    assert healed.statistics().video_skipped > 0
    # aiortc's own buffer, fed the same packets, asked for nothing and is still frozen (it
    # would wait for 512 packets); it holds each frame until the next one begins, so the
    # fifth is stuck too
    assert stock.plis == [] and len(stock.frames) == 4
    assert clock.now - keyframe_at < 0.25


def test_a_retransmission_in_time_fills_the_hole_and_nothing_is_asked() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    feed.frame_time(camera.frame())
    late = camera.frame()
    feed.frame_time(late[:1] + late[2:])
    for _ in range(3):
        feed.frame_time(camera.frame())
    assert len(feed.frames) == 1
    clock.now += DEFAULT_RTT_S - 4 / FPS
    feed.packets(late[1:2])  # the retransmission, one round trip after the NACK
    for _ in range(4):
        feed.frame_time(camera.frame())
    assert feed.plis == [] and decodes(feed.frames) == len(feed.frames) >= 6
    assert feed.statistics().video_skipped == 0


def test_a_hole_beyond_nack_reach_asks_at_once() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    feed.frame_time(camera.frame())
    camera.seq += healing.NACK_REACH + 10  # those packets are lost and out of NACK's reach
    feed.packets(camera.frame())
    assert len(feed.plis) == 1


def test_a_link_that_comes_back_after_a_silence_asks_at_once() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    feed.frame_time(camera.frame())
    for _ in range(15):  # a second of video lost in an outage
        camera.frame()
    clock.now += 1.0
    feed.packets(camera.frame())
    assert feed.plis == [clock.now]


def test_while_stuck_plis_go_out_once_a_round_trip_not_with_every_packet() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    feed.frame_time(camera.frame())
    camera.frame()  # lost
    start = clock.now
    while clock.now - start < 2.0:  # and the keyframes asked for are lost too
        feed.frame_time(camera.frame())
    assert 8 <= len(feed.plis) <= 2 * (2.0 / GIVE_UP_S + 1)  # each said twice
    assert all(b - a >= GIVE_UP_S for a, b in zip(feed.plis, feed.plis[2:], strict=False))


def test_the_first_keyframe_is_taken_even_when_its_packets_come_out_of_order() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    first = camera.frame()
    feed.frame_time(first[1:] + first[:1])
    feed.frame_time(camera.frame())
    assert decodes(feed.frames) == 2 and feed.plis == []


def test_a_stream_that_starts_again_far_behind_is_taken_from_its_keyframe() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(clock)
    for _ in range(3):
        feed.frame_time(camera.frame())
    camera.seq -= 2 * healing.STREAM_RESTART  # a new sender on the same receiver
    camera.encoder = Vp8Encoder()  # which starts with a keyframe
    for _ in range(3):
        feed.frame_time(camera.frame())
    assert len(feed.frames) == 6 and decodes(feed.frames[3:]) == 3
    assert feed.statistics().video_late == 0


def test_frames_that_waited_behind_a_filled_hole_go_to_the_decoder_together() -> None:
    """One packet a frame: aiortc's receiver would decode one frame per packet that comes,
    so the frames behind the hole would stay late for good."""
    clock, camera = FakeClock(), Camera(width=16, height=16)  # one packet a frame
    feed, stock = Feed(clock), Feed(clock, stock=True)
    for _ in range(3):
        packets = camera.frame()
        feed.packets(packets)
        stock.frame_time(packets)
    late = camera.frame()
    assert len(late) == 1
    for _ in range(4):
        packets = camera.frame()
        feed.packets(packets)
        stock.frame_time(packets)
    assert len(feed.frames) == 3
    feed.packets(late)  # the retransmission
    stock.packets(late)
    assert len(feed.frames) == 8 and decodes(feed.frames) == 8 and feed.plis == []
    for _ in range(20):
        packets = camera.frame()
        feed.packets(packets)
        stock.frame_time(packets)
    assert camera.count - len(feed.frames) == 0
    assert camera.count - len(stock.frames) >= 5  # still four frames late, and one more


# --- audio ---------------------------------------------------------------------------------


def voice(count: int) -> Iterator[RtpPacket]:
    """``count`` 20 ms Opus packets from aiortc's own encoder."""
    encoder = OpusEncoder()
    t = np.arange(960) / 48_000
    for n in range(count):
        pcm = (8000 * np.sin(2 * np.pi * 440 * (t + n * 0.02))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48_000, n * 960
        frame.time_base = fractions.Fraction(1, 48_000)
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            yield rtp(OPUS, 5000 + n, timestamp, payload, False)


class Ears:
    """An audio buffer (ours, or aiortc's with ``stock``) and what it hands on, when."""

    def __init__(self, clock: FakeClock, stock: bool = False) -> None:
        self.clock = clock
        self.buffer: AudioReorderBuffer | JitterBuffer = (
            JitterBuffer(16, prefetch=4) if stock else AudioReorderBuffer(self.deliver, clock))
        self.out: list[tuple[float, int]] = []  # (when, RTP timestamp)

    def deliver(self, frame: JitterFrame, payload_type: int) -> None:
        assert payload_type == OPUS.payloadType
        self.out.append((self.clock.now, frame.timestamp))

    def add(self, packet: RtpPacket) -> None:
        frame = self.buffer.add(packet)[1]
        if frame is not None:
            self.out.append((self.clock.now, frame.timestamp))

    @property
    def timestamps(self) -> list[int]:
        return [t for _, t in self.out]

    def statistics(self) -> healing.HealingStatistics:
        assert isinstance(self.buffer, AudioReorderBuffer)
        return self.buffer.statistics()


def test_audio_in_order_goes_on_at_once_where_aiortc_holds_four_packets() -> None:
    clock = FakeClock()
    healed, stock = Ears(clock), Ears(clock, stock=True)
    for n, packet in enumerate(voice(50)):
        healed.add(packet)
        stock.add(packet)
        assert healed.timestamps[-1] == packet.timestamp  # this very packet, now
        assert len(stock.out) == max(0, n - 3)  # 80 ms later, on a clean path
        clock.now += 0.02


def test_audio_waits_for_overtaken_packets_and_gives_up_on_lost_ones() -> None:
    clock = FakeClock()
    ears = Ears(clock)
    packets = list(voice(20))
    order = packets[:3] + [packets[4], packets[5], packets[3]] + packets[6:9] + packets[10:]
    for packet in order:  # 20 ms apart
        ears.add(packet)
        clock.now += 0.02
    assert ears.timestamps == [p.timestamp for i, p in enumerate(packets) if i != 9]
    stats = ears.statistics()
    assert (stats.audio_lost, stats.audio_late, stats.audio_frames) == (1, 0, 19)
    assert stats.audio_wait_ms == AUDIO_MIN_WAIT_S * 1000
    # 4 and 5 waited for 3 (40 and 20 ms); 9 was given up when 12 came, 40 ms after 10
    # (the first packet after AUDIO_MIN_WAIT_S), and 10 and 11 went on with it
    held = {t: at for at, t in ears.out}
    came = {p.timestamp: n * 0.02 + 100.0 for n, p in enumerate(order)}
    assert [round((held[t] - came[t]) * 1000) for t in sorted(held)][:13] == \
        [0, 0, 0, 0, 40, 20, 0, 0, 0, 40, 20, 0, 0]


def test_audio_that_bunched_up_on_the_way_is_kept_whatever_its_order() -> None:
    """A relay starved for 300 ms sends 15 packets at once, shuffled by the jitter."""
    packets = list(voice(60))
    bunch = packets[20:35]
    random.Random(5).shuffle(bunch)
    arrivals = ([(n * 0.02, p) for n, p in enumerate(packets[:20])]
                + [(0.7 + n * 0.002, p) for n, p in enumerate(bunch)]
                + [(0.72 + n * 0.02, p) for n, p in enumerate(packets[35:])])
    clock = FakeClock()
    healed, stock = Ears(clock), Ears(clock, stock=True)
    for at, packet in arrivals:
        clock.now = at
        healed.add(packet)
        stock.add(packet)
    assert healed.timestamps == [p.timestamp for p in packets]
    assert len(stock.out) < 50  # aiortc's gives up what was overtaken


def test_audio_read_all_at_once_after_the_endpoint_stalled_is_not_given_up() -> None:
    packets = list(voice(10))
    clock = FakeClock()
    ears = Ears(clock)
    for n in (0, 1, 2, 4):
        ears.add(packets[n])
        clock.now += 0.02
    clock.now += 0.5  # the endpoint's loop stalled; what came meanwhile is read at once
    for n in (5, 6, 3, 7, 8, 9):
        ears.add(packets[n])
        clock.now += 0.0005
    assert ears.timestamps == [p.timestamp for p in packets]
    assert ears.statistics().audio_wait_ms == AUDIO_MIN_WAIT_S * 1000


def test_audio_read_in_bursts_for_ever_still_goes_on() -> None:
    """An endpoint always behind: every 200 ms it reads what came, all at once."""
    packets = [p for n, p in enumerate(voice(200)) if n % 20 != 7]  # 5 % lost
    clock = FakeClock()
    ears = Ears(clock)
    for n, packet in enumerate(packets):
        clock.now = 100 + (n // 10) * 0.2 + (n % 10) * 0.0005
        ears.add(packet)
    assert len(ears.out) >= len(packets) - healing.AUDIO_MAX_HELD
    assert ears.statistics().audio_lost == 9


def test_audio_of_a_stream_that_starts_again_far_behind_goes_on() -> None:
    packets = list(voice(20))
    for n, packet in enumerate(packets[10:]):
        packet.sequence_number = (5000 - 2 * healing.STREAM_RESTART + n) & 0xFFFF  # anew
    clock = FakeClock()
    ears = Ears(clock)
    for packet in packets:
        ears.add(packet)
        clock.now += 0.02
    assert ears.timestamps == [p.timestamp for p in packets]


def test_audio_wait_grows_for_late_packets_then_comes_back_down() -> None:
    clock = FakeClock()
    ears = Ears(clock)
    packets = list(voice(1200))
    for n, packet in enumerate(packets):
        if n in (50, 150):
            continue  # comes 200 ms later
        if n in (60, 160):
            ears.add(packets[n - 10])
        ears.add(packet)
        clock.now += 0.02
        if n == 200:
            stats = ears.statistics()
            assert 180 <= stats.audio_wait_ms <= 180 + 2 * AUDIO_WAIT_STEP_S * 1000  # it learnt
            assert stats.audio_late == 1  # and the second came in time
    stats = ears.statistics()
    assert stats.audio_late == stats.audio_lost == 1  # given up, then it came
    assert len(ears.out) == 1199
    # 20 s without a late packet: back down
    assert stats.audio_wait_ms == AUDIO_MIN_WAIT_S * 1000


def long_haul(packets: list[RtpPacket], seed: int, reorder: bool = True,
              loss: float = 0.02) -> list[tuple[float, RtpPacket]]:
    """Arrivals of 20 ms packets over 150 ms +- 20 ms with ``loss``, as the netlab relay
    makes them (per packet uniform jitter; ``reorder=False`` keeps the order)."""
    rng = random.Random(seed)
    arrivals, last = [], 0.0
    for n, packet in enumerate(packets):
        if rng.random() < loss:
            continue
        due = n * 0.02 + 0.15 + rng.uniform(-0.02, 0.02)
        if not reorder:
            due = last = max(due, last)
        arrivals.append((due, packet))
    return sorted(arrivals, key=lambda a: a[0])


@pytest.mark.parametrize("reorder", [True, False])
def test_audio_over_the_long_haul_profile_loses_only_what_the_network_lost(
        reorder: bool) -> None:
    packets = list(voice(3000))  # a minute
    arrivals = long_haul(packets, seed=3, reorder=reorder)
    arrived_at = {p.timestamp: at for at, p in arrivals}
    results = {}
    for name in ("healed", "stock"):
        clock = FakeClock()
        ears = Ears(clock, stock=name == "stock")
        for at, packet in arrivals:
            clock.now = at
            ears.add(packet)
        delays = [at - arrived_at[t] for at, t in ears.out]
        results[name] = (len(ears.out) / len(packets), float(np.median(delays)), max(delays))
    arrived = len(arrivals) / len(packets)
    print(f"\naudio, long haul (reorder={reorder}): {arrived:.1%} arrived; "
          + "; ".join(f"{k}: {v[0]:.1%} decoded, added latency median {v[1] * 1000:.0f} ms, "
                      f"max {v[2] * 1000:.0f} ms" for k, v in results.items()))
    assert results["healed"][0] >= arrived - 0.003
    assert results["healed"][1] == 0.0  # most packets come in order: they go on at once
    assert results["healed"][2] <= AUDIO_MIN_WAIT_S + 0.06
    assert results["stock"][0] < results["healed"][0]
    assert AUDIO_MIN_WAIT_S <= AUDIO_MAX_WAIT_S


# --- a healed call between two real peer connections ---------------------------------------

CALL_WAIT_S = 20.0  # bounds a hang; media on loopback starts within a second


class StampedTone(ToneAudioTrack):
    """The synthetic voice, noting when each frame was captured."""

    def __init__(self) -> None:
        super().__init__()
        self.captured: dict[int, float] = {}  # pts -> time.monotonic()

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        self.captured[frame.pts] = time.monotonic()
        return frame


class StampedPattern(PatternVideoTrack):
    """The synthetic picture, noting when each frame was captured."""

    def __init__(self) -> None:
        super().__init__()
        self.captured: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        self.captured[frame.pts] = time.monotonic()
        return frame


class Call:
    """Two peer connections on loopback, ``sender`` sending the synthetic source; both
    healed, unless not ``healed``."""

    def __init__(self, keyframe_interval_s: float = healing.KEYFRAME_INTERVAL_S,
                 healed: bool = True) -> None:
        config = loopback().configuration()
        self.sender, self.receiver = RTCPeerConnection(config), RTCPeerConnection(config)
        if healed:
            healing.heal(self.sender, keyframe_interval_s=keyframe_interval_s)
            healing.heal(self.receiver)
        self.tracks = {"audio": StampedTone(), "video": StampedPattern()}
        self.decoded: dict[str, list[tuple[float, int]]] = {"audio": [], "video": []}
        self.progress = asyncio.Event()
        self.readers: list[asyncio.Task[None]] = []
        self.receiver.on("track", lambda track: self.readers.append(
            asyncio.create_task(self._read(track))))

    def count(self, kind: str) -> int:
        return len(self.decoded[kind])

    def latencies(self, kind: str) -> list[float]:
        """Capture to decode, per frame."""
        captured = self.tracks[kind].captured
        return [at - captured[pts] for at, pts in self.decoded[kind] if pts in captured]

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.decoded[track.kind].append((time.monotonic(), frame.pts))
                self.progress.set()
        except MediaStreamError:
            pass

    async def start(self) -> None:
        for track in self.tracks.values():
            self.sender.addTrack(track)
        await self.sender.setLocalDescription(await self.sender.createOffer())
        await self.receiver.setRemoteDescription(self.sender.localDescription)
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        await self.sender.setRemoteDescription(self.receiver.localDescription)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(CALL_WAIT_S):
            while not condition():
                self.progress.clear()
                await self.progress.wait()

    async def close(self) -> None:
        await close_peer(self.sender)
        await close_peer(self.receiver)
        async with asyncio.timeout(CALL_WAIT_S):
            await asyncio.gather(*self.readers)
        for track in self.tracks.values():
            track.stop()


async def test_a_healed_call_decodes_both_kinds_and_a_pli_brings_a_keyframe() -> None:
    call = Call(keyframe_interval_s=3600)  # keyframes only when asked
    try:
        await call.start()
        await call.until(lambda: call.count("video") >= 10 and call.count("audio") >= 50)
        stats = healing.statistics(call.receiver)
        assert stats.video_frames >= 10 and stats.audio_frames >= 50
        assert stats.video_keyframes == 1 and stats.plis == 0  # the first frame only
        healing.request_keyframe(call.receiver)
        await call.until(lambda: healing.statistics(call.receiver).video_keyframes == 2)
        stats = healing.statistics(call.receiver)
        assert stats.plis == 1 and stats.video_skipped == 0 and stats.audio_lost == 0
    finally:
        await call.close()
    assert healing.statistics(call.sender).video_frames == 0  # it receives nothing


async def a_call_held_and_closed() -> list[weakref.ref[RTCPeerConnection]]:
    call = Call()
    try:
        await call.start()
        await call.until(lambda: call.count("video") >= 5)
    finally:
        await call.close()
    return [weakref.ref(call.sender), weakref.ref(call.receiver)]


async def test_a_closed_healed_call_is_freed() -> None:
    # Found by the soak: the healed buffers led back to their peer connection (through
    # the receiver's DTLS transport) and a cancelled keep-fresh task's traceback held its
    # senders, so every closed connection stayed alive: about 4 MB per link repair.
    refs = await a_call_held_and_closed()
    for _ in range(3):  # what a cancelled task leaves goes on the loop's next turns
        await asyncio.sleep(0)
        gc.collect()
    assert [r() for r in refs] == [None, None]


async def test_a_healed_sender_sends_a_keyframe_every_interval() -> None:
    call = Call(keyframe_interval_s=1.0)
    try:
        await call.start()
        await call.until(lambda: call.count("video") >= 1)
        first = call.count("video")
        await call.until(lambda: healing.statistics(call.receiver).video_keyframes >= 3)
        frames = call.count("video") - first
        assert healing.statistics(call.receiver).plis == 0
        assert FPS // 2 <= frames <= 3 * FPS  # two intervals of 1 s, give or take a tick
    finally:
        await call.close()


async def test_on_a_clean_path_healing_adds_no_latency_and_takes_away_aiortcs() -> None:
    """Capture to decode on loopback, a healed call beside a stock one: in order, a packet
    goes on as it comes, where aiortc holds four audio packets and each video frame until
    the next one begins."""
    calls = {"healed": Call(), "stock": Call(healed=False)}
    try:
        await asyncio.gather(*(call.start() for call in calls.values()))
        for call in calls.values():
            await call.until(lambda c=call: c.count("audio") >= 150 and c.count("video") >= 40)
    finally:
        for call in calls.values():
            await call.close()
    median = {(name, kind): float(np.median(call.latencies(kind)))
              for name, call in calls.items() for kind in ("audio", "video")}
    print("\ncapture to decode on loopback, median: " + ", ".join(
        f"{name} {kind} {value * 1000:.0f} ms" for (name, kind), value in median.items()))
    assert median["healed", "audio"] <= median["stock", "audio"] - 0.06  # 4 x 20 ms held
    assert median["healed", "video"] <= median["stock", "video"] - 0.04  # 1 / 15 s held


# --- a minute on the long-haul profile, between namespaces -------------------------------

LONG_HAUL_S = 60.0  # of media measured, per run
SETUP_S = 30.0  # spawn, import and connect, on a loaded machine
MAX_FREEZE_S = 1.0
MIN_AUDIO = 0.97
OPUS_FRAME = 960  # samples at 48 kHz: aiortc's 20 ms
# An endpoint's event loop late by more than this has stalled: the machine, not the path.
STALL_S = 0.1
TICK_S = 0.01

Interval = tuple[float, float]  # (start, end), time.monotonic(), the same in every namespace


class Reception:
    """When each video frame was decoded, which audio frames were, and when this
    endpoint's event loop stalled."""

    def __init__(self) -> None:
        self.video: list[float] = []
        self.audio: list[tuple[float, int]] = []  # (when, pts)
        self.stalls: list[Interval] = []
        self.first_video = asyncio.Event()

    async def read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    self.video.append(now)
                    self.first_video.set()
                else:
                    self.audio.append((now, frame.pts))

    async def watch_loop(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            if time.monotonic() - before - TICK_S > STALL_S:
                self.stalls.append((before, time.monotonic()))

    def figures(self, start: float, end: float) -> dict[str, Any]:
        video = [start] + [t for t in self.video if start < t <= end] + [end]
        pts = [p for t, p in self.audio if start <= t <= end]
        expected = (max(pts) - min(pts)) // OPUS_FRAME + 1 if pts else 1
        gaps = list(zip(video, video[1:], strict=False))
        return {"freezes": [(a, b) for a, b in gaps if b - a > MAX_FREEZE_S],
                "max_freeze_s": max(b - a for a, b in gaps),
                "over_half_s": sum(b - a > 0.5 for a, b in gaps),
                "fps": (len(video) - 2) / (end - start), "audio": len(set(pts)) / expected,
                "stalls": self.stalls}


def long_haul_peer(conn: Connection, address: str, offering: bool, healed: bool,
                   seconds: float) -> None:
    """One end of a call, in a lab host: the synthetic source both ways for ``seconds``
    of media, then its figures to the driver."""
    # Ahead of the other engineers' work on this shared machine, as the lab's relay is: a
    # real endpoint has its cores, and this test is about the network (starvation has
    # tests of its own).
    os.nice(-5)
    asyncio.run(_long_haul_peer(conn, address, offering, healed, seconds))


async def _long_haul_peer(conn: Connection, address: str, offering: bool, healed: bool,
                          seconds: float) -> None:
    pc = RTCPeerConnection(IceSettings(host_addresses=(address,)).configuration())
    if healed:
        healing.heal(pc)
    source, reception = MediaSource.synthetic(), Reception()
    tasks = [asyncio.create_task(reception.watch_loop())]
    pc.on("track", lambda track: tasks.append(asyncio.create_task(reception.read(track))))
    for kind in MediaKind:
        track = source.track(kind)
        assert track is not None
        pc.addTrack(track)
    try:
        if offering:
            await pc.setLocalDescription(await pc.createOffer())
            conn.send(pc.localDescription.sdp)
            answer = await asyncio.to_thread(_receive, conn, SETUP_S)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        else:
            offer = await asyncio.to_thread(_receive, conn, SETUP_S)
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            conn.send(pc.localDescription.sdp)
        await asyncio.wait_for(reception.first_video.wait(), SETUP_S)
        start = time.monotonic()
        await asyncio.sleep(seconds)  # the measurement window: media flows meanwhile
        figures = reception.figures(start, time.monotonic())
        conn.send({**figures, **asdict(healing.statistics(pc))})
    finally:
        await close_peer(pc)
        for task in tasks:
            task.cancel()
        source.stop()


def _receive(conn: Connection, timeout_s: float) -> Any:
    if not conn.poll(timeout_s):
        raise TimeoutError(f"nothing from the other end within {timeout_s} s")
    return conn.recv()


def test_a_minute_on_the_long_haul_profile_without_a_freeze_and_with_the_audio() -> None:
    """Two calls at once, one healed and one not, each between a host on a plain link and
    one behind the long-haul relay (150 ms +- 20 ms, 2 % loss, reordering, each way).

    A freeze over 1 s is the healing's fault unless the endpoints' event loops were
    stalled (by the machine, not the path) for the time it went over; those are
    reported, and not counted."""
    with Lab() as lab:
        pairs: dict[str, tuple[Connection, Connection]] = {}
        for name in ("healed", "stock"):
            near, far = lab.host(f"{name}near"), lab.host(f"{name}far", relayed=True)
            lab.impair(far)
            healed = name == "healed"
            _, offerer = lab.piped(near, long_haul_peer, near.address, True, healed,
                                   LONG_HAUL_S)
            _, answerer = lab.piped(far, long_haul_peer, far.address, False, healed,
                                    LONG_HAUL_S)
            pairs[name] = (offerer, answerer)
        for offerer, answerer in pairs.values():
            answerer.send(_receive(offerer, SETUP_S))
            offerer.send(_receive(answerer, SETUP_S))
        runs = {name: [_receive(end, LONG_HAUL_S + 2 * SETUP_S) for end in ends]
                for name, ends in pairs.items()}
    unexplained: dict[str, list[float]] = {}
    for name, ends in runs.items():
        stalls = ends[0]["stalls"] + ends[1]["stalls"]
        unexplained[name] = [b - a for r in ends for a, b in r["freezes"]
                             if b - a - stalled_within((a, b), stalls) > MAX_FREEZE_S]
        print(f"\n{name}: " + " | ".join(
            f"{side}: longest freeze {r['max_freeze_s']:.2f} s ({r['over_half_s']} over "
            f"0.5 s), {r['fps']:.1f} fps, audio {r['audio']:.1%}, PLIs {r['plis']}, "
            f"video frames skipped {r['video_skipped']}, audio lost {r['audio_lost']} "
            f"(late {r['audio_late']}), audio wait {r['audio_wait_ms']} ms"
            for side, r in zip(("near receives", "far receives"), ends, strict=True))
            + f" | freezes over {MAX_FREEZE_S} s not from stalls: "
            f"{[round(f, 2) for f in unexplained[name]]}, stalls of the endpoints "
            f"{len(stalls)}, longest {max((b - a for a, b in stalls), default=0):.2f} s")
    assert unexplained["healed"] == []
    assert all(r["audio"] >= MIN_AUDIO for r in runs["healed"])

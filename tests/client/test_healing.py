"""Video and audio that heal: the buffers fed real RTP from aiortc's own encoders, a healed
call between two real peer connections, and the long-haul profile between namespaces."""

from __future__ import annotations

import asyncio
import fractions
import random
from collections.abc import Callable, Iterator

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecParameters
from aiortc.codecs import depayload, get_decoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from summitline.client import healing
from summitline.client.healing import (
    AUDIO_MAX_DEPTH,
    AUDIO_MIN_DEPTH,
    DEFAULT_RTT_S,
    RETRANSMISSION_MARGIN_S,
    AudioReorderBuffer,
    VideoFrameBuffer,
    vp8_keyframe_start,
)
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.core.roles import MediaKind

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


def video_buffer(clock: FakeClock) -> VideoFrameBuffer:
    return VideoFrameBuffer(lambda pt, payload: vp8_keyframe_start(payload), clock=clock)


class Feed:
    """Packets into a buffer, one frame time apart, noting the frames and PLIs out."""

    def __init__(self, buffer: VideoFrameBuffer | JitterBuffer, clock: FakeClock) -> None:
        self.buffer, self.clock = buffer, clock
        self.frames: list[JitterFrame] = []
        self.plis: list[float] = []

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


def decodes(frames: list[JitterFrame]) -> int:
    """How many of these frames aiortc's VP8 decoder turns into pictures, in order."""
    decoder = get_decoder(VP8)
    return sum(len(decoder.decode(frame)) for frame in frames)


def test_frames_in_order_go_to_the_decoder_as_they_complete() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
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
    healed, stock = Feed(video_buffer(clock), clock), Feed(JitterBuffer(512, is_video=True),
                                                           clock)
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
    # One PLI, one round trip and its margin after the hole, and nothing decoded after it
    assert len(healed.plis) == 1
    assert GIVE_UP_S <= healed.plis[0] - hole_seen < GIVE_UP_S + 1 / FPS
    assert len(healed.frames) == 5
    keyframe_at = clock.now
    for keyframe in (True, False, False):
        packets = camera.frame(keyframe)
        healed.packets(packets)
        stock.frame_time(packets)
    assert len(healed.frames) == 8 and decodes(healed.frames) == 8
    assert healed.buffer.statistics().video_skipped > 0
    # aiortc's own buffer, fed the same packets, asked for nothing and is still frozen (it
    # would wait for 512 packets); it holds each frame until the next one begins, so the
    # fifth is stuck too
    assert stock.plis == [] and len(stock.frames) == 4
    assert clock.now - keyframe_at < 0.25


def test_a_retransmission_in_time_fills_the_hole_and_nothing_is_asked() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
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
    assert feed.buffer.statistics().video_skipped == 0


def test_a_hole_beyond_nack_reach_asks_at_once() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
    feed.frame_time(camera.frame())
    camera.seq += healing.NACK_REACH + 10  # those packets are lost and out of NACK's reach
    feed.packets(camera.frame())
    assert len(feed.plis) == 1


def test_a_link_that_comes_back_after_a_silence_asks_at_once() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
    feed.frame_time(camera.frame())
    for _ in range(15):  # a second of video lost in an outage
        camera.frame()
    clock.now += 1.0
    feed.packets(camera.frame())
    assert feed.plis == [clock.now]


def test_while_stuck_plis_go_out_once_a_round_trip_not_with_every_packet() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
    feed.frame_time(camera.frame())
    camera.frame()  # lost
    start = clock.now
    while clock.now - start < 2.0:  # and the keyframes asked for are lost too
        feed.frame_time(camera.frame())
    assert 4 <= len(feed.plis) <= 2.0 / GIVE_UP_S + 1
    assert all(b - a >= GIVE_UP_S for a, b in zip(feed.plis, feed.plis[1:], strict=False))


def test_the_first_keyframe_is_taken_even_when_its_packets_come_out_of_order() -> None:
    clock, camera = FakeClock(), Camera()
    feed = Feed(video_buffer(clock), clock)
    first = camera.frame()
    feed.frame_time(first[1:] + first[:1])
    feed.frame_time(camera.frame())
    assert decodes(feed.frames) == 2 and feed.plis == []


def test_frames_left_late_behind_a_filled_hole_are_cut_at_a_keyframe() -> None:
    """One packet a frame: the receiver decodes a frame per packet, so frames that waited
    behind a hole stay late until a keyframe lets the buffer jump."""
    clock, camera = FakeClock(), Camera(width=16, height=16)  # one packet a frame
    feed = Feed(video_buffer(clock), clock)
    for _ in range(3):
        feed.frame_time(camera.frame())
    late = camera.frame()
    for _ in range(4):
        feed.frame_time(camera.frame())
    feed.packets(late)  # the retransmission
    for _ in range(int(healing.VIDEO_BACKLOG_PERSIST_S * FPS) + 2):
        feed.frame_time(camera.frame())
    assert len(feed.plis) == 1
    lag = camera.count - len(feed.frames)
    assert lag >= 4
    feed.frame_time(camera.frame(keyframe=True))
    assert camera.count - len(feed.frames) - feed.buffer.statistics().video_skipped <= 1
    assert decodes(feed.frames) == len(feed.frames)


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


def test_audio_in_order_is_released_at_once_where_aiortc_holds_four_packets() -> None:
    clock = FakeClock()
    healed, stock = AudioReorderBuffer(clock), JitterBuffer(16, prefetch=4)
    waited = {"healed": 0, "stock": 0}
    for packet in voice(50):
        _, frame = healed.add(packet)
        assert frame is not None and frame.timestamp == packet.timestamp
        _, frame = stock.add(packet)
        waited["stock"] += frame is None
    assert waited["stock"] == 4  # 80 ms of latency added on a clean path


def test_audio_waits_for_overtaken_packets_and_gives_up_on_lost_ones() -> None:
    clock = FakeClock()
    buffer = AudioReorderBuffer(clock)
    packets = list(voice(20))
    order = packets[:3] + [packets[4], packets[5], packets[3]] + packets[6:9] + packets[10:]
    out = [f.timestamp for p in order if (f := buffer.add(p)[1]) is not None]
    expected = [p.timestamp for i, p in enumerate(packets) if i != 9]
    # all but the last two, which wait behind where the missing one was given up
    # (AUDIO_MIN_DEPTH - 1: the latency a loss leaves)
    assert out == expected[: 1 - AUDIO_MIN_DEPTH]
    stats = buffer.statistics()
    assert (stats.audio_lost, stats.audio_late, stats.audio_frames) == (1, 0, 17)


def test_audio_depth_grows_for_late_packets_then_comes_back_down() -> None:
    clock = FakeClock()
    buffer = AudioReorderBuffer(clock)
    packets = list(voice(1000))
    late_by = 10  # overtaken by 9 packets: 200 ms late
    out = 0
    for n, packet in enumerate(packets):
        if n in (50, 150):
            continue  # comes later
        if n in (50 + late_by, 150 + late_by):
            out += buffer.add(packets[n - late_by])[1] is not None
        out += buffer.add(packet)[1] is not None
        clock.now += 0.02
        if n == 200:
            assert buffer.depth == late_by  # the first came too late and taught it
            assert buffer.statistics().audio_late == 1  # the second was in time
    stats = buffer.statistics()
    assert stats.audio_late == stats.audio_lost == 1  # given up, then it came
    # 17 s without a late packet: back down, and the frames it held dropped to catch up
    assert buffer.depth == AUDIO_MIN_DEPTH
    assert 1 <= stats.audio_shrunk <= late_by - AUDIO_MIN_DEPTH
    assert out == 1000 - 1 - stats.audio_shrunk - (AUDIO_MIN_DEPTH - 1)


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
        buffer = AudioReorderBuffer(clock) if name == "healed" else JitterBuffer(16, 4)
        delays, out = [], 0
        for at, packet in arrivals:
            clock.now = at
            frame = buffer.add(packet)[1]
            if frame is not None:
                out += 1
                delays.append(at - arrived_at[frame.timestamp])
        results[name] = (out / len(packets), float(np.median(delays)), max(delays))
    arrived = len(arrivals) / len(packets)
    print(f"\naudio, long haul (reorder={reorder}): {arrived:.1%} arrived; "
          + "; ".join(f"{k}: {v[0]:.1%} decoded, added latency median {v[1] * 1000:.0f} ms, "
                      f"max {v[2] * 1000:.0f} ms" for k, v in results.items()))
    assert results["healed"][0] >= arrived - 0.003
    assert results["healed"][1] <= 0.06  # the depth it needed, in 20 ms packets
    assert results["stock"][0] < results["healed"][0]
    assert AUDIO_MIN_DEPTH <= AUDIO_MAX_DEPTH


# --- a healed call between two real peer connections ---------------------------------------

CALL_WAIT_S = 20.0  # bounds a hang; media on loopback starts within a second


class Call:
    """Two peer connections on loopback: ``sender`` sends the synthetic source, both healed."""

    def __init__(self, keyframe_interval_s: float) -> None:
        config = loopback().configuration()
        self.sender, self.receiver = RTCPeerConnection(config), RTCPeerConnection(config)
        healing.heal(self.sender, keyframe_interval_s=keyframe_interval_s)
        healing.heal(self.receiver)
        self.source = MediaSource.synthetic()
        self.decoded = {"audio": 0, "video": 0}
        self.progress = asyncio.Event()
        self.readers: list[asyncio.Task[None]] = []
        self.receiver.on("track", lambda track: self.readers.append(
            asyncio.create_task(self._read(track))))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.decoded[track.kind] += 1
                self.progress.set()
        except MediaStreamError:
            pass

    async def start(self) -> None:
        for kind in ("audio", "video"):
            track = self.source.track(MediaKind(kind))
            assert track is not None
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
        async with asyncio.timeout(CALL_WAIT_S):
            await self.sender.close()
            await self.receiver.close()
            await asyncio.gather(*self.readers)
        self.source.stop()


async def test_a_healed_call_decodes_both_kinds_and_a_pli_brings_a_keyframe() -> None:
    call = Call(keyframe_interval_s=3600)  # keyframes only when asked
    try:
        await call.start()
        await call.until(lambda: call.decoded["video"] >= 10 and call.decoded["audio"] >= 50)
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


async def test_a_healed_sender_sends_a_keyframe_every_interval() -> None:
    call = Call(keyframe_interval_s=1.0)
    try:
        await call.start()
        await call.until(lambda: call.decoded["video"] >= 1)
        first = call.decoded["video"]
        await call.until(lambda: healing.statistics(call.receiver).video_keyframes >= 3)
        frames = call.decoded["video"] - first
        assert healing.statistics(call.receiver).plis == 0
        assert FPS // 2 <= frames <= 3 * FPS  # two intervals of 1 s, give or take a tick
    finally:
        await call.close()

"""Closing a peer connection is bounded, whatever its decoder thread does.

A real aiortc pair on loopback. The video receiver of the answering side gets a frame
queue whose consumer, aiortc's decoder thread, stays inside the frame it took while a
gate is shut: from the outside exactly a decode that does not return, with the encoded
frames piling up behind it as they do on a starved machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from summitline.client.closing import abandoned_decoders, close_peer, guard_decoders
from summitline.client.ice import loopback
from summitline.client.media import PatternVideoTrack, ToneAudioTrack

WAIT_S = 20.0  # bounds a hang; media on loopback flows within a second
BOUND_S = 1.0  # the close bound under test (the default is longer only for loaded machines)
SLACK_S = 0.5  # scheduling on a shared 2-core machine
BACKLOG = 10  # frames queued behind the stuck decode before the test closes
GATE_LIMIT_S = 60.0  # a stuck decode gives up by itself: a failed test leaves no thread
# The longest the loop may go without running a task while a close is under way: a
# blocked loop waits the whole bound (1 s); measured gaps are under 0.1 s.
RESPONSIVE_S = 0.5


class StuckDecode(queue.Queue[Any]):
    """A receiver's queue of encoded frames. While ``open`` is clear, the decoder thread
    stays in the frame it just took (``stuck`` says it got there)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.open.set()
        self.stuck = threading.Event()
        self.backlog = asyncio.Event()  # set on the loop once BACKLOG frames wait behind it
        self.thread: threading.Thread | None = None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        if item is not None and not self.open.is_set():
            self.thread = threading.current_thread()
            self.stuck.set()
            self.open.wait(GATE_LIMIT_S)
        return item

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)  # aiortc puts on the event loop's thread
        if self.stuck.is_set() and self.qsize() >= BACKLOG:
            self.backlog.set()


@dataclass
class Pair:
    sender: RTCPeerConnection
    receiver: RTCPeerConnection
    decode: StuckDecode
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    ended: dict[str, asyncio.Event] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[track.kind] += 1
                self.changed.set()
        self.ended[track.kind].set()

    async def until(self, video: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.frames["video"] < video or self.frames["audio"] < video:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """Audio and video from ``sender`` to ``receiver``, flowing; video decodes through a
    StuckDecode. Teardown opens the gate and closes both ends, bounded."""
    ice = loopback()
    a, b = RTCPeerConnection(ice.configuration()), RTCPeerConnection(ice.configuration())
    sources: list[MediaStreamTrack] = [ToneAudioTrack(), PatternVideoTrack()]
    for track in sources:
        a.addTrack(track)
    p = Pair(a, b, StuckDecode())
    p.ended = {"audio": asyncio.Event(), "video": asyncio.Event()}
    b.on("track", lambda track: p.readers.append(asyncio.create_task(p.read(track))))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    # Per object, before aiortc starts the thread (it does once ICE and DTLS are up).
    video = next(r for r in b.getReceivers() if r.track.kind == "video")
    video._RTCRtpReceiver__decoder_queue = p.decode
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    try:
        await p.until(video=5)
        yield p
    finally:
        p.decode.open.set()
        for pc in (b, a):
            await close_peer(pc)
        for track in sources:
            track.stop()
        for task in p.readers:
            task.cancel()
        await asyncio.gather(*p.readers, return_exceptions=True)
        if p.decode.thread is not None:
            await asyncio.to_thread(p.decode.thread.join, WAIT_S)
            assert not p.decode.thread.is_alive()


class Ticker:
    """Measures the longest the event loop went without running this task."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)  # the interval measured, not a wait for an event
            now = time.monotonic()
            self.longest, last = max(self.longest, now - last), now
            self.ticks += 1

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def stuck(p: Pair) -> None:
    p.decode.open.clear()
    async with asyncio.timeout(WAIT_S):
        await p.decode.backlog.wait()
    assert p.decode.stuck.is_set() and p.decode.qsize() >= BACKLOG


async def test_a_stuck_decoder_does_not_block_the_close_nor_the_loop(pair: Pair) -> None:
    await stuck(pair)
    ticker = Ticker()
    started = time.monotonic()
    clean = await close_peer(pair.receiver, timeout_s=BOUND_S)
    took = time.monotonic() - started
    await ticker.stop()
    assert not clean  # the thread is still in its decode: not a clean close, and said so
    assert took < BOUND_S + SLACK_S
    assert ticker.longest < RESPONSIVE_S and ticker.ticks > 20  # the loop kept running throughout
    assert pair.receiver.connectionState == "closed"
    async with asyncio.timeout(SLACK_S):  # whoever reads the tracks is let go at once
        await asyncio.gather(*(e.wait() for e in pair.ended.values()))
    assert pair.decode.thread in abandoned_decoders()
    pair.decode.open.set()  # the decode returns: the thread reaches its end
    await asyncio.to_thread(pair.decode.thread.join, WAIT_S)  # type: ignore[union-attr]
    assert pair.decode.thread not in abandoned_decoders()


async def test_the_remote_hanging_up_does_not_block_a_guarded_receiver(pair: Pair) -> None:
    """The other path to the same join: the sender's close sends an RTCP BYE and shuts
    DTLS down, and the receiving end stops its decoder on either."""
    guard_decoders(pair.receiver)
    await stuck(pair)
    ticker = Ticker()
    assert await close_peer(pair.sender, timeout_s=BOUND_S)
    async with asyncio.timeout(WAIT_S):  # the BYE or the lost transport got there
        await pair.ended["video"].wait()
    await ticker.stop()
    assert ticker.longest < RESPONSIVE_S


async def test_a_healthy_pair_closes_cleanly_and_fast(pair: Pair) -> None:
    started = time.monotonic()
    assert await close_peer(pair.receiver, timeout_s=BOUND_S)
    assert await close_peer(pair.sender, timeout_s=BOUND_S)
    assert time.monotonic() - started < BOUND_S
    assert pair.decode.thread is None and not abandoned_decoders()


async def test_without_the_guard_the_loop_is_blocked_as_long_as_the_decode(
        pair: Pair) -> None:
    """What the issue saw, reproduced: aiortc's own close joins the stuck thread on the
    event loop. The gate opens after HOLD_S from another thread; the loop waits it out."""
    hold_s = 1.0
    await stuck(pair)
    ticker = Ticker()
    opener = threading.Timer(hold_s, pair.decode.open.set)
    opener.start()
    try:
        await pair.receiver.close()
    finally:
        opener.cancel()
    await ticker.stop()
    assert ticker.longest >= hold_s * 0.9

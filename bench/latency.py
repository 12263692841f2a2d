"""Capture-to-decode latency of video and audio: through summitline, against a bare pair.

Each run is a call between two endpoints, each in a process of its own, both sending
and both receiving the same synthetic media (320x240 VP8 at 15 fps, Opus), on one of
three paths:

- summitline: two principals' ``CallSession``s and a summitline server (in this
  process), as in bench/interpretation.py: signed plan and SDP, the link rules and media
  health, the healing jitter buffers, the relay copies of the source;
- bare: two aiortc ``RTCPeerConnection``s with the same tracks, their SDP handed across
  by this process; nothing of summitline;
- healed: the bare pair with summitline's jitter buffers (client/healing.py) and
  nothing else, to tell what the buffers change from what the rest adds.

The paths take turns going first, run by run, so that the machine's noise falls on all.

- video: every frame carries the CLOCK_MONOTONIC millisecond it was captured (modulo
  2^22), in a row of black and white blocks at its top (bench/press_cut.py's layout,
  which survives VP8); the receiver reads it back from each decoded frame.
- audio: bursts of noise at irregular times (bench/interpretation.py's BurstTrack),
  the sender noting when each left its track; the receiver notes each burst's onset,
  counting a decoded frame from when it comes out (as a picture).

Both are noted where a decoded frame comes out of the receiving track, the same point
on every path. CLOCK_MONOTONIC is the same in every process of the machine. The first
WARMUP_S of each call are not measured.

value:    summitline's median video latency (ms); baseline: the bare pair's; ratio.
added_ms: value - baseline; the aim is under 10 ms. Audio likewise, p95s, and the
          healed pair's figures (healed_*).

Runs inside a fresh network namespace with only loopback.
Usage: python bench/latency.py [--runs N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bench.*

from bench.interpretation import SPAWN, BurstTrack, Endpoint, Onsets, latencies  # noqa: E402
from bench.press_cut import BITS, BLOCK_H, BLOCK_W  # noqa: E402
from summitline import netns  # noqa: E402
from summitline.client.bilateral import Side, provision  # noqa: E402
from summitline.client.closing import close_peer  # noqa: E402
from summitline.client.healing import heal  # noqa: E402
from summitline.client.ice import loopback  # noqa: E402
from summitline.client.media import MediaSource, PatternVideoTrack  # noqa: E402
from summitline.client.session import CallSession, Identity  # noqa: E402
from summitline.core.roles import MediaKind  # noqa: E402
from summitline.crypto.keys import PrivateKey, PublicKey  # noqa: E402
from summitline.server.app import Settings  # noqa: E402
from summitline.server.run import running  # noqa: E402

WARMUP_S = 3.0  # the encoders settle their bitrate; the first keyframes are big
READY_FRAMES = 10  # of each kind, received, before a call counts as up
STAMP_MOD = 1 << BITS
TIMEOUT_S = 60.0


# -- what is measured: stamped pictures, noise bursts ---------------------------------------
class StampedVideoTrack(PatternVideoTrack):
    """The synthetic picture with its capture time in blocks: a marker at each end and
    BITS bits of CLOCK_MONOTONIC milliseconds (modulo 2^BITS), as bench/press_cut.py
    stamps wall time for one process's use."""

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        planes = frame.to_ndarray()
        stamp = int(time.monotonic() * 1000) % STAMP_MOD
        bits = [1] + [(stamp >> (BITS - 1 - i)) & 1 for i in range(BITS)] + [1]
        for i, bit in enumerate(bits):
            planes[:BLOCK_H, i * BLOCK_W:(i + 1) * BLOCK_W] = 235 if bit else 16
        out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


def read_stamp(frame: av.VideoFrame) -> int | None:
    """The capture millisecond stamped into a decoded picture, or None if unreadable."""
    luma = frame.to_ndarray(format="gray")
    row = luma[BLOCK_H // 2, BLOCK_W // 2:(BITS + 2) * BLOCK_W:BLOCK_W]
    bits = [int(v > 128) for v in row]
    if len(bits) != BITS + 2 or not (bits[0] and bits[-1]):
        return None
    return int("".join(map(str, bits[1:-1])), 2)


class Notes:
    """What one endpoint receives: frames counted, and while measuring, the age of every
    decoded picture and the onset of every burst heard."""

    def __init__(self) -> None:
        self.frames = dict.fromkeys(MediaKind, 0)
        self.measuring = False
        self.video_ms: list[float] = []
        self.unread = 0  # pictures whose stamp did not survive
        self.onsets = Onsets()

    def take(self, kind: MediaKind, frame: Any, now: float) -> None:
        self.frames[kind] += 1
        if not self.measuring:
            return
        if kind is MediaKind.AUDIO:
            # Onsets takes an arrival as the moment a frame's last sample is there (what a
            # listener can hear). Here a decoded frame counts from when it comes out, as a
            # picture does: sample i of it at now + i / rate. So the figure is the time
            # from a frame leaving the sender's track to its coming out of the receiver's.
            self.onsets.feed(frame, now + frame.samples / frame.sample_rate)
            return
        stamp = read_stamp(frame)
        if stamp is None:
            self.unread += 1
        else:
            self.video_ms.append((int(now * 1000) - stamp) % STAMP_MOD)


def note_decoded(track: MediaStreamTrack, notes: Notes) -> None:
    """Note every frame as it comes out of this one track (whoever reads it)."""
    inner = track.recv
    kind = MediaKind(track.kind)

    async def recv() -> Any:
        frame = await inner()
        notes.take(kind, frame, time.monotonic())
        return frame

    track.recv = recv  # type: ignore[method-assign]


# -- an endpoint in a process of its own ----------------------------------------------------
def run(conn: Connection, spec: dict[str, Any]) -> None:
    """Process entry: a summitline principal or one half of a bare pair."""
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve(conn, spec))


async def _serve(conn: Connection, spec: dict[str, Any]) -> None:
    notes = Notes()
    burst = BurstTrack(spec["seed"])
    source = MediaSource(burst, StampedVideoTrack())
    peer: SummitlinePeer | BarePeer = (SummitlinePeer(spec, source, notes)
                                       if spec["path"] == "summitline" else
                                       BarePeer(source, notes, healed=spec["path"] == "healed"))
    loop = asyncio.get_running_loop()
    started = 0.0
    while True:
        op, *args = await loop.run_in_executor(None, conn.recv)
        if op == "stop":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 20)
            source.stop()
            conn.send(True)
            return
        if op == "ready":
            await asyncio.wait_for(peer.ready(), TIMEOUT_S)
            conn.send(True)
        elif op == "start":
            notes.measuring, started = True, time.monotonic()
            conn.send(started)
        elif op == "report":
            notes.measuring = False
            ended = time.monotonic()
            # bursts that left while measuring, with a second to be heard in
            conn.send({"sent": [t for t in burst.sent if started <= t < ended - 1.0],
                       "onsets": notes.onsets.times, "video_ms": notes.video_ms,
                       "unread": notes.unread, "stalls": peer.stalls()})
        else:
            conn.send(await peer.signal(op, *args))


class SummitlinePeer:
    """A principal of a started call, through the summitline server."""

    def __init__(self, spec: dict[str, Any], source: MediaSource, notes: Notes) -> None:
        key = PrivateKey.from_pem(spec["key"].encode())
        pins = {k: PublicKey.from_b64u(v) for k, v in spec["pins"].items()}
        self.notes = notes
        self.session = CallSession(spec["ws"], spec["call"], Identity(key, pins),
                                   ice=loopback(), source=source)
        self.task = asyncio.create_task(self.session.run())

    async def ready(self) -> None:
        def up() -> bool:
            links = list(self.session.links.values())
            return len(links) == 1 and all(links[0].frames[k] >= READY_FRAMES
                                           for k in MediaKind)
        await self.session.wait_for(up)
        (link,) = self.session.links.values()
        for receiver in link.pc.getReceivers():
            if receiver.track is not None:
                note_decoded(receiver.track, self.notes)

    async def signal(self, op: str, *args: Any) -> Any:
        raise ValueError(f"a summitline endpoint signals through its server, not {op}")

    def stalls(self) -> int:
        """Links lost so far (a repair replaces the link whose frames are noted)."""
        return len(self.session.stalls)

    async def close(self) -> None:
        await self.session.leave()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


class BarePeer:
    """One half of two bare aiortc peer connections; the SDP goes through the pipe.
    ``healed``: with summitline's jitter buffers (client/healing.py), nothing else."""

    def __init__(self, source: MediaSource, notes: Notes, healed: bool) -> None:
        self.notes = notes
        self.pc = RTCPeerConnection(loopback().configuration())
        if healed:
            heal(self.pc)
        self.readers: list[asyncio.Task[None]] = []
        for kind in MediaKind:
            track = source.track(kind)
            assert track is not None
            self.pc.addTrack(track)
        self.pc.on("track", self._on_track)
        self.changed = asyncio.Event()

    def _on_track(self, track: MediaStreamTrack) -> None:
        note_decoded(track, self.notes)
        self.readers.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.changed.set()

    async def ready(self) -> None:
        while not all(n >= READY_FRAMES for n in self.notes.frames.values()):
            self.changed.clear()
            await self.changed.wait()

    def stalls(self) -> int:
        return 0  # nothing watches a bare pair

    async def signal(self, op: str, *args: Any) -> str:
        if op == "offer":
            await self.pc.setLocalDescription(await self.pc.createOffer())
        elif op == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(args[0], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        elif op == "accept":
            await self.pc.setRemoteDescription(RTCSessionDescription(args[0], "answer"))
            return ""
        else:
            raise ValueError(f"no such step: {op}")
        return self.pc.localDescription.sdp

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await close_peer(self.pc)  # bounded, whatever aiortc's decoder threads do


class Child(Endpoint):
    """An endpoint of this benchmark, driven over a pipe as bench/interpretation.py's."""

    def __init__(self, spec: dict[str, Any]) -> None:  # another process entry than its
        self.conn, child = multiprocessing.Pipe()       # parent's: not super().__init__
        self.proc = SPAWN.Process(target=run, args=(child, spec), daemon=True)
        self.proc.start()

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(super().stop(), 40)
        finally:
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)


# -- the runs ----------------------------------------------------------------------------------
async def measure_call(children: list[Child], seconds: float) -> list[dict[str, Any]]:
    """Both ends up, warmed up, then ``seconds`` measured; what each received."""
    await asyncio.gather(*(c.ask("ready") for c in children))
    await asyncio.sleep(WARMUP_S)  # a span of media, not a wait for an event
    await asyncio.gather(*(c.ask("start") for c in children))
    await asyncio.sleep(seconds)
    reports: list[dict[str, Any]] = await asyncio.gather(*(c.ask("report") for c in children))
    return reports


async def stop_all(children: list[Child]) -> None:
    await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)


async def through_summitline(http: httpx.AsyncClient, ws: str, seconds: float
                             ) -> list[dict[str, Any]]:
    call = await provision(http)
    await call.a.operator.control(call.call, "start")

    def spec(side: Side, seed: int) -> dict[str, Any]:
        return {"path": "summitline", "seed": seed, "key": side.principal.to_pem().decode(),
                "pins": {d: k.b64u for d, k in side.operator.pinned.items()},
                "ws": ws, "call": call.call}

    children = [Child(spec(call.a, 1)), Child(spec(call.b, 2))]
    try:
        return await measure_call(children, seconds)
    finally:
        with contextlib.suppress(Exception):
            await call.a.operator.control(call.call, "end")
        await stop_all(children)


async def bare_pair(seconds: float, path: str = "bare") -> list[dict[str, Any]]:
    children = [Child({"path": path, "seed": 1}), Child({"path": path, "seed": 2})]
    try:
        offer = await children[0].ask("offer")
        answer = await children[1].ask("answer", offer)
        await children[0].ask("accept", answer)
        return await measure_call(children, seconds)
    finally:
        await stop_all(children)


class Figures:
    """Latencies of one path over its runs, both directions pooled."""

    def __init__(self) -> None:
        self.video: list[float] = []
        self.audio: list[float] = []
        self.bursts_sent = 0
        self.unread = 0
        self.stalls = 0

    def add(self, reports: list[dict[str, Any]]) -> None:
        a, b = reports
        self.video += a["video_ms"] + b["video_ms"]
        self.unread += a["unread"] + b["unread"]
        self.stalls += a["stalls"] + b["stalls"]
        for sender, receiver in ((a, b), (b, a)):
            self.audio += latencies(sender["sent"], receiver["onsets"])
            self.bursts_sent += len(sender["sent"])

    def merge(self, other: Figures) -> None:
        self.video += other.video
        self.audio += other.audio
        self.bursts_sent += other.bursts_sent
        self.unread += other.unread
        self.stalls += other.stalls

    def summary(self) -> str:
        def median(xs: list[float]) -> float:
            return statistics.median(xs) if xs else float("nan")
        return (f"video {median(self.video):.1f} ms ({len(self.video)} frames), "
                f"audio {median(self.audio):.1f} ms ({len(self.audio)} bursts)"
                + (f", {self.stalls} links lost" if self.stalls else ""))


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=20)[-1], 1)


PATHS = ("summitline", "bare", "healed")


async def measure(runs: int, seconds: float) -> dict[str, Any]:
    figures = {path: Figures() for path in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp))) as base, \
                httpx.AsyncClient(base_url=base) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            for i in range(runs):
                for path in PATHS[i % 3:] + PATHS[:i % 3]:  # each path first in turn
                    began = time.monotonic()
                    call = Figures()
                    call.add(await through_summitline(http, ws, seconds)
                             if path == "summitline" else await bare_pair(seconds, path))
                    figures[path].merge(call)
                    print(f"run {i + 1}, {path}: {call.summary()} "
                          f"[{time.monotonic() - began:.0f} s]", file=sys.stderr)
                print(f"after run {i + 1}: " + "; ".join(
                    f"{path} {f.summary()}" for path, f in figures.items()), file=sys.stderr)
    for path, f in figures.items():
        if len(f.video) < 10 * runs or len(f.audio) < runs:
            raise RuntimeError(f"{path}: too few frames or bursts were received to measure")
    ours, bare, healed = (figures[p] for p in PATHS)
    value, baseline = statistics.median(ours.video), statistics.median(bare.video)
    audio, audio_base = statistics.median(ours.audio), statistics.median(bare.audio)
    return {"bench": "latency", "unit": "ms", "value": round(value, 1),
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 2),
            "added_ms": round(value - baseline, 1), "aim": "added_ms < 10",
            "value_p95": p95(ours.video), "baseline_p95": p95(bare.video),
            "audio_ms": round(audio, 1), "audio_baseline_ms": round(audio_base, 1),
            "audio_added_ms": round(audio - audio_base, 1),
            "audio_p95": p95(ours.audio), "audio_baseline_p95": p95(bare.audio),
            # the bare pair with summitline's jitter buffers: what the rest adds
            "healed_ms": round(statistics.median(healed.video), 1),
            "healed_p95": p95(healed.video),
            "healed_audio_ms": round(statistics.median(healed.audio), 1),
            "healed_audio_p95": p95(healed.audio),
            "runs": runs, "seconds_per_run": seconds,
            "frames": len(ours.video), "baseline_frames": len(bare.video),
            "healed_frames": len(healed.video),
            "bursts": len(ours.audio), "baseline_bursts": len(bare.audio),
            "healed_bursts": len(healed.audio),
            "bursts_sent": ours.bursts_sent, "baseline_bursts_sent": bare.bursts_sent,
            "unreadable_stamps": sum(f.unread for f in figures.values()),
            "summitline_stalls": ours.stalls,
            "machine": f"{os.cpu_count()} cores", "processes": "one per endpoint"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="calls of each path (default 3)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="seconds measured per call, after a warm-up (default 10)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.runs, args.seconds))))


if __name__ == "__main__":
    main()

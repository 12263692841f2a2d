"""The press cut: how soon after the deadline of the signed plan the press stop receiving.

Per window: two Python principals join a call whose plan has a press window of
WINDOW_S seconds; the call starts; both send their floor to the press gateway; VIEWERS
Python press viewers watch the programme. Each principal's picture carries the wall
time it was captured, stamped into its pixels (24 blocks: a bright marker at each end
and 22 bits of milliseconds since the benchmark began), which survives the programme's
composition and VP8 coding.

value (max_ms):  over every window, the largest delay from the deadline to the last RTP
                 packet of the programme that any viewer received (aim: under 250 ms).
frames_after:    decoded programme frames showing a principal's picture captured after
                 the deadline (must be 0).
baseline:        the median capture-to-viewer latency of the programme during the windows
                 (what a frame takes from a principal's camera to a viewer's screen), so
                 ratio says how the cut compares with the programme's own delay.

Runs inside a fresh network namespace with only loopback.
Usage: python bench/press_cut.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from summitline import netns
from summitline.client.bilateral import provision
from summitline.client.ice import LOOPBACK, loopback
from summitline.client.media import MediaSource, PatternVideoTrack, ToneAudioTrack
from summitline.client.operator import Operator
from summitline.client.press import PressRefused, PressViewer
from summitline.client.session import CallSession
from summitline.server.app import Settings
from summitline.server.press.programme import HEIGHT, WIDTH
from summitline.server.run import running

WINDOW_S = 3
VIEWERS = 3
TIMEOUT_S = 30.0
BLOCK_W, BLOCK_H, BITS = 12, 16, 22  # 24 blocks of 12x16 px: marker, 22 bits, marker
EPOCH_MS = time.time_ns() // 1_000_000

# When each viewer's receivers last got an RTP packet (wall ms), by receiver.
last_packet: dict[int, int] = {}
_handle = RTCRtpReceiver._handle_rtp_packet


async def _noting(self: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
    last_packet[id(self)] = time.time_ns() // 1_000_000
    await _handle(self, packet, arrival_time_ms)


class StampedTrack(PatternVideoTrack):
    """The synthetic picture with its capture time (ms since EPOCH_MS) in blocks."""

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        planes = frame.to_ndarray()
        stamp = time.time_ns() // 1_000_000 - EPOCH_MS
        bits = [1] + [(stamp >> (BITS - 1 - i)) & 1 for i in range(BITS)] + [1]
        for i, bit in enumerate(bits):
            planes[:BLOCK_H, i * BLOCK_W:(i + 1) * BLOCK_W] = 235 if bit else 16
        out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


def read_stamps(frame: av.VideoFrame) -> list[int]:
    """The capture times (ms since EPOCH_MS) of the principals in a programme frame."""
    luma = frame.to_ndarray(format="gray")
    top = (HEIGHT - HEIGHT // 2) // 2  # each principal's 320x240 sits at this height
    stamps = []
    for left in (0, WIDTH // 2):
        row = luma[top + BLOCK_H // 2, left + BLOCK_W // 2:left + 24 * BLOCK_W:BLOCK_W]
        bits = [int(v > 128) for v in row[:24]]
        if len(bits) == 24 and bits[0] and bits[-1]:
            stamps.append(int("".join(map(str, bits[1:-1])), 2))
    return stamps


async def _finish(operator: Operator, call: str, viewers: list[PressViewer],
                  sessions: list[CallSession], tasks: list[asyncio.Task[None]]) -> None:
    await operator.control(call, "end")
    for v in viewers:
        await v.close()
    for s in sessions:
        await s.leave()
    for task in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, TIMEOUT_S)


async def one_window(http: httpx.AsyncClient, ws: str) -> dict[str, Any] | None:
    call = await provision(http, press_window_s=WINDOW_S)
    sessions = [CallSession(ws, call.call, side.identity(), ice=loopback(),
                            source=MediaSource(ToneAudioTrack(), StampedTrack()))
                for side in (call.a, call.b)]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), TIMEOUT_S)
    token = (await call.a.operator.press_token(call.call))["token"]
    await call.a.operator.control(call.call, "start")
    await asyncio.wait_for(asyncio.gather(*(s.press_answered.wait() for s in sessions)),
                           TIMEOUT_S)
    deadline_ms = sessions[0].press_deadline_ms
    assert deadline_ms is not None
    deadline = deadline_ms - EPOCH_MS
    seen: list[tuple[int, list[int]]] = []  # (arrival, stamps) per decoded frame
    viewers = [PressViewer(http, call.call, token, loopback(),
                           on_video=lambda f, at: seen.append((at - EPOCH_MS, read_stamps(f))))
               for _ in range(VIEWERS)]
    try:
        for v in viewers:
            await v.watch()
    except PressRefused:  # the machine was too slow to join within the window
        await _finish(call.a.operator, call.call, viewers, sessions, tasks)
        return None
    receivers = {id(t.receiver) for v in viewers if v.pc for t in v.pc.getTransceivers()}
    # the window closes: every viewer's tracks end when the gateway stops
    await asyncio.wait_for(asyncio.gather(*(r for v in viewers for r in v._readers)),
                           WINDOW_S + TIMEOUT_S)
    last = max(last_packet.get(r, 0) for r in receivers) - EPOCH_MS
    cuts = [s.press_cut_ms - deadline_ms for s in sessions if s.press_cut_ms is not None]
    latencies = [at - max(stamps) for at, stamps in seen if stamps and max(stamps) <= deadline]
    after = sum(1 for _, stamps in seen if stamps and max(stamps) > deadline)
    await _finish(call.a.operator, call.call, viewers, sessions, tasks)
    stamped = sum(1 for _, stamps in seen if stamps)
    return {"delay_ms": last - deadline, "frames_after": after, "frames": len(seen),
            "stamped": stamped, "latencies": latencies, "cuts": cuts}


async def measure(runs: int) -> dict[str, Any]:
    RTCRtpReceiver._handle_rtp_packet = _noting  # type: ignore[method-assign]
    windows: list[dict[str, Any]] = []
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp), press_hosts=LOOPBACK)) as base, \
                httpx.AsyncClient(base_url=base) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            attempts = 0
            while len(windows) < runs and attempts < 2 * runs + 1:
                attempts += 1
                w = await one_window(http, ws)
                if w is None:
                    missed += 1
                    print("a window closed before the viewers could join; not counted",
                          file=sys.stderr)
                    continue
                if attempts == 1:
                    print(f"warm-up: delay {w['delay_ms']} ms", file=sys.stderr)
                    continue
                windows.append(w)
                i = len(windows)
                print(f"window {i}: last packet {w['delay_ms']} ms after the deadline, "
                      f"{w['frames_after']} frames after, {w['stamped']}/{w['frames']} "
                      f"frames read, senders cut at +{w['cuts']} ms", file=sys.stderr)
    if len(windows) < runs:
        raise SystemExit(f"measured only {len(windows)} of {runs} windows")
    delays = [w["delay_ms"] for w in windows]
    latencies = [x for w in windows for x in w["latencies"]]
    if not latencies or not all(w["stamped"] for w in windows):
        raise SystemExit("could not read the capture stamps from the programme")
    value, baseline = max(delays), statistics.median(latencies)
    cuts = [c for w in windows for c in w["cuts"]]
    return {"bench": "press_cut", "unit": "ms", "value": value, "max_ms": value,
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 2),
            "aim": "max_ms < 250, frames_after == 0", "runs": runs,
            "frames_after": sum(w["frames_after"] for w in windows),
            "median_ms": statistics.median(delays),
            "sender_cut_max_ms": max(cuts) if cuts else None,
            "viewers": VIEWERS, "window_s": WINDOW_S, "windows_missed": missed,
            "frames_decoded": sum(w["frames"] for w in windows),
            "machine": f"{os.cpu_count()} cores"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="measured windows (default 20)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.runs))))


if __name__ == "__main__":
    main()



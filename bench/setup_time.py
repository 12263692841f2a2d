"""Call setup time: both principals joining -> first decoded remote video frame, both ways.

value:    through summitline (signaling over the server's WebSocket, plan and signature
          checks, signed SDP), the call already started when the principals join.
baseline: two bare aiortc peer connections in the same process exchanging SDP directly.
Both use the same synthetic 320x240 VP8 + Opus sources and loopback host candidates,
and alternate run by run so that machine noise falls on both alike. Medians.

Runs inside a fresh network namespace with only loopback.
Usage: python bench/setup_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiortc import MediaStreamTrack, RTCPeerConnection

from summitline import netns
from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind
from summitline.server.app import Settings
from summitline.server.run import running

WARMUP = 2
TIMEOUT_S = 30.0


async def through_summitline(http: httpx.AsyncClient, ws: str) -> float:
    call = await provision(http)
    await call.a.operator.control(call.call, "start")
    sessions = [CallSession(ws, call.call, side.identity(), ice=loopback())
                for side in (call.a, call.b)]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(s.run()) for s in sessions]

    async def first_video(s: CallSession) -> None:
        await s.wait_for(lambda: s.frames(MediaKind.VIDEO) > 0)

    await asyncio.wait_for(asyncio.gather(*(first_video(s) for s in sessions)), TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    await call.a.operator.control(call.call, "end")
    await asyncio.gather(*tasks)
    for s in sessions:
        await s.leave()
    return elapsed * 1000


async def bare_pair() -> float:
    config = loopback().configuration()
    sources = [MediaSource.synthetic(), MediaSource.synthetic()]
    t0 = time.perf_counter()
    pcs = [RTCPeerConnection(config), RTCPeerConnection(config)]
    got = [asyncio.Event(), asyncio.Event()]

    def on_track(i: int) -> object:
        def handler(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                async def first() -> None:
                    await track.recv()
                    got[i].set()
                asyncio.ensure_future(first())
        return handler

    for i, (pc, src) in enumerate(zip(pcs, sources, strict=True)):
        pc.on("track", on_track(i))
        for kind in MediaKind:
            pc.addTrack(src.track(kind))
    await pcs[0].setLocalDescription(await pcs[0].createOffer())
    await pcs[1].setRemoteDescription(pcs[0].localDescription)
    await pcs[1].setLocalDescription(await pcs[1].createAnswer())
    await pcs[0].setRemoteDescription(pcs[1].localDescription)
    await asyncio.wait_for(asyncio.gather(got[0].wait(), got[1].wait()), TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    for pc in pcs:
        await pc.close()
    for src in sources:
        src.stop()
    return elapsed * 1000


async def measure(runs: int) -> dict[str, object]:
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp))) as base, \
                httpx.AsyncClient(base_url=base) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            for i in range(WARMUP + runs):
                a = await through_summitline(http, ws)
                b = await bare_pair()
                if i >= WARMUP:
                    ours.append(a)
                    bare.append(b)
                print(f"run {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}: summitline "
                      f"{a:.0f} ms, bare pair {b:.0f} ms", file=sys.stderr)
    value, baseline = statistics.median(ours), statistics.median(bare)
    return {"bench": "setup_time", "unit": "ms", "value": round(value, 1),
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 2),
            "aim": "ratio < 1.5", "runs": runs, "machine": f"{os.cpu_count()} cores",
            "value_p90": round(statistics.quantiles(ours, n=10)[-1], 1),
            "baseline_p90": round(statistics.quantiles(bare, n=10)[-1], 1),
            "value_min": round(min(ours), 1), "baseline_min": round(min(bare), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="measured runs of each (default 20)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.runs))))


if __name__ == "__main__":
    main()

"""Briefing setup time and CPU: a mesh of 3, 5 and 8 Python principals against the bilateral.

value:    median time at 5 endpoints from the last of them joining to every one of them
          decoding video from every other (every pair, both ways).
baseline: the same figure for the bilateral (two principals on a bilateral plan).
Also the same figure at 3 and 8, and the CPU of one endpoint in a briefing of 5 (cores:
CPU seconds per wall second, read from /proc, median of the five endpoints), with the
video each one decoded meanwhile.

Each endpoint runs in a process of its own (bench/_endpoint.py, driven over a pipe);
the server runs in this one. The call is started before anyone joins; the endpoints are
loaded first and told to join together, so that every link of the mesh is set up at the
same time, the hardest case. The sizes alternate round by round after a warm-up round,
so that machine noise falls on all alike. Synthetic 320x240 VP8 at 15 fps and Opus,
loopback host candidates.

Runs inside a fresh network namespace with only loopback.
Usage: python bench/briefing.py [--runs N] [--cpu-seconds S]
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
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bench.interpretation

from bench.interpretation import Endpoint  # noqa: E402
from summitline import netns
from summitline.client.bilateral import Side, provision
from summitline.client.briefing import provision_briefing
from summitline.client.operator import Operator
from summitline.server.app import Settings
from summitline.server.run import running

SIZES = (3, 5, 8)
BILATERAL = 2
WARMUP = 1
MESH_TIMEOUT_S = 120.0  # eight endpoints on two cores: far above what it takes
SETTLE_S = 3.0  # after the mesh is up, before the CPU window
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid``, all its threads (encoders and decoders too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def provisioned(http: httpx.AsyncClient, size: int) -> tuple[Operator, str, list[Side]]:
    """The host's operator, the call and its sides: a bilateral plan for 2."""
    if size == BILATERAL:
        call = await provision(http)
        return call.a.operator, call.call, [call.a, call.b]
    b = await provision_briefing(http, size)
    return b.host.operator, b.call, b.sides


async def one_mesh(http: httpx.AsyncClient, ws: str, size: int, *,
                   cpu_window_s: float = 0.0, encoding: str = "shared") -> dict[str, Any]:
    """Set up one call of ``size`` principals; its setup time in ms, and with
    ``cpu_window_s`` the CPU of each endpoint over that window once the mesh is up."""
    host, call, sides = await provisioned(http, size)
    await host.control(call, "start")
    endpoints = [Endpoint({"key": side.principal.to_pem().decode(),
                           "pins": {d: k.b64u for d, k in side.operator.pinned.items()},
                           "ws": ws, "call": call, "voice": "tone", "hold": True,
                           "encoding": encoding})
                 for side in sides]
    out: dict[str, Any] = {}
    try:
        for e in endpoints:
            await e.ask("hello")  # loaded: imports, keys, the session object
        for e in endpoints:
            await e.ask("go", size - 1)
        times = [await e.ask("mesh", MESH_TIMEOUT_S) for e in endpoints]
        last_join = max(joined for joined, _ in times)
        out["setup_ms"] = 1000 * (max(mesh for _, mesh in times) - last_join)
        out["joins_spread_ms"] = 1000 * (last_join - min(joined for joined, _ in times))
        if cpu_window_s:
            await asyncio.sleep(SETTLE_S)  # the window itself: time passing is measured
            before = [(cpu_seconds(e.proc.pid or 0), await e.ask("frames")) for e in endpoints]
            t0 = time.monotonic()
            await asyncio.sleep(cpu_window_s)
            after = [(cpu_seconds(e.proc.pid or 0), await e.ask("frames")) for e in endpoints]
            wall = time.monotonic() - t0
            out["cores"] = [(a[0] - b[0]) / wall for a, b in zip(after, before, strict=True)]
            # decoded video frames a second, per remote (each remote sends 15)
            out["video_fps"] = [(a[1]["video"] - b[1]["video"]) / wall / (size - 1)
                                for a, b in zip(after, before, strict=True)]
    finally:
        await host.control(call, "end")
        for e in endpoints:
            await e.stop()
    return out


async def measure(runs: int, cpu_window_s: float) -> dict[str, Any]:
    setup: dict[int, list[float]] = {n: [] for n in (BILATERAL, *SIZES)}
    spread: dict[int, list[float]] = {n: [] for n in (BILATERAL, *SIZES)}
    cpu: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp))) as base, \
                httpx.AsyncClient(base_url=base, timeout=30) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            for i in range(WARMUP + runs):
                line = []
                for n in (BILATERAL, *SIZES):
                    log(f"  {n} endpoints ...")
                    got = await one_mesh(http, ws, n)
                    line.append(f"{n}: {got['setup_ms']:.0f} ms")
                    if i >= WARMUP:
                        setup[n].append(got["setup_ms"])
                        spread[n].append(got["joins_spread_ms"])
                log(f"run {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}: setup "
                    + ", ".join(line))
            for encoding in ("shared", "per_link"):
                got = await one_mesh(http, ws, 5, cpu_window_s=cpu_window_s,
                                     encoding=encoding)
                cpu[encoding] = got
                log(f"cpu at 5, {encoding} encoding: "
                    + ", ".join(f"{c:.2f}" for c in got["cores"]) + " cores; video "
                    + ", ".join(f"{f:.1f}" for f in got["video_fps"]) + " fps per remote")

    def med(n: int) -> float:
        return round(statistics.median(setup[n]), 1)

    value, baseline = med(5), med(BILATERAL)
    return {"bench": "briefing", "unit": "ms", "value": value, "baseline": baseline,
            "ratio": round(value / baseline, 2), "aim": "ratio < 2", "runs": runs,
            "machine": f"{os.cpu_count()} cores, a process per endpoint",
            "setup_ms": {str(n): med(n) for n in setup},
            "setup_max_ms": {str(n): round(max(v), 1) for n, v in setup.items()},
            "joins_spread_ms": {str(n): round(statistics.median(v), 1)
                                for n, v in spread.items()},
            "cpu_per_endpoint_at_5": round(statistics.median(cpu["shared"]["cores"]), 3),
            "cpu_per_endpoint_at_5_per_link_encoding": round(
                statistics.median(cpu["per_link"]["cores"]), 3),
            "cpu_window_s": cpu_window_s,
            "video_fps_min_at_5": round(min(cpu["shared"]["video_fps"]), 1),
            "video_fps_min_at_5_per_link_encoding": round(
                min(cpu["per_link"]["video_fps"]), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--cpu-seconds", type=float, default=10.0,
                   help="the CPU window at 5 endpoints (default 10)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.runs, args.cpu_seconds))))


if __name__ == "__main__":
    main()

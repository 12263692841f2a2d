"""Briefing setup time and CPU: a mesh of 3, 5 and 8 Python principals against the bilateral.

value:    median time at 5 endpoints from the last of them joining to every one of them
          decoding video from every other (every pair, both ways).
baseline: the same figure for the bilateral (two principals on a bilateral plan).
Also the same figure at 3 and 8, and the CPU of one endpoint in a briefing of 5 (cores:
CPU seconds per wall second, read from /proc, median of the five endpoints), with the
video each one decoded meanwhile.

All endpoints of a call run in one process of their own (one event loop, as the demo
holds them), or with --process-per-endpoint each in its own, driven over a pipe; the
server runs in this one. The CPU of a process over the window (all its threads, from
/proc), divided by its endpoints, is the CPU per endpoint (the median of the processes).
The call is started before anyone joins; the endpoints are made first and told to join
together, so that every link of the mesh is set up at the same time, the hardest case. The sizes
alternate round by round after a warm-up round, so that machine noise falls on all
alike. Synthetic 320x240 VP8 at 15 fps and Opus, loopback host candidates.

With --sfu, one JSON line for the 8-endpoint briefing through Janus VideoRoom (issue
14, docs/protocol.md 5.12; a real Janus beside the server, tests/janus.py) against the
mesh of 8 measured in the same run: the setup time (as above: last join to video from
every other), and the uplink per endpoint (bytes its peer connections sent, over
--cpu-seconds once set up: seven copies in the mesh, one to the SFU).

Runs inside a fresh network namespace with only loopback.
Usage: python bench/briefing.py [--runs N] [--cpu-seconds S] [--process-per-endpoint] [--sfu]
"""

from __future__ import annotations

import argparse
import asyncio
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

import httpx

from summitline import netns
from summitline.client.bilateral import Side, provision
from summitline.client.briefing import provision_briefing
from summitline.client.ice import IceSettings, loopback
from summitline.client.media import MediaSource
from summitline.client.operator import Operator
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey, PublicKey
from summitline.server.app import Settings
from summitline.server.run import running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/janus.py: Janus
from tests.janus import MEDIA_ADDRESS  # noqa: E402
from tests.janus import janus as janus_process  # noqa: E402

SIZES = (3, 5, 8)
BILATERAL = 2
WARMUP = 1
MESH_TIMEOUT_S = 90.0  # eight endpoints on two cores: far above what it takes
SETTLE_S = 3.0  # after the mesh is up, before the CPU window
ASK_TIMEOUT_S = 180.0  # loading processes (each imports aiortc) on a busy machine; stopping
CLK_TCK = os.sysconf("SC_CLK_TCK")
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no event loop inherited


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid``, all its threads (encoders and decoders too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def provisioned(http: httpx.AsyncClient, size: int, sfu_above: int | None = None
                      ) -> tuple[Operator, str, list[Side]]:
    """The host's operator, the call and its sides: a bilateral plan for 2."""
    if size == BILATERAL:
        call = await provision(http)
        return call.a.operator, call.call, [call.a, call.b]
    b = await provision_briefing(http, size, sfu_above=sfu_above)
    return b.host.operator, b.call, b.sides


def endpoints_process(conn: Connection, specs: list[dict[str, Any]]) -> None:
    """Process entry: every endpoint of one call, ``specs`` saying who (keys, call,
    server) and how each encodes."""
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_endpoints(conn, specs))


async def _endpoints(conn: Connection, specs: list[dict[str, Any]]) -> None:
    sessions = []
    for spec in specs:
        source = MediaSource.synthetic()
        source.share_encoding = spec["encoding"] == "shared"
        key = PrivateKey.from_pem(spec["key"].encode())
        pins = {k: PublicKey.from_b64u(v) for k, v in spec["pins"].items()}
        ice = IceSettings(host_addresses=tuple(spec["hosts"])) if spec.get("hosts") \
            else loopback()
        sessions.append(CallSession(spec["ws"], spec["call"], Identity(key, pins),
                                    ice=ice, source=source))
    devices = specs[0]["devices"]  # every endpoint of the call, in this process or not
    joined: dict[int, float] = {}
    mesh: dict[int, float] = {}

    async def note(i: int, s: CallSession) -> None:
        await s.joined.wait()
        joined[i] = time.monotonic()
        await s.wait_for(lambda: all(s.frames_from(d, MediaKind.VIDEO) > 0
                                     for d in devices if d != s.device))
        mesh[i] = time.monotonic()

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    while True:
        op, arg = await loop.run_in_executor(None, conn.recv)
        if op == "hello":  # loaded, the sessions made
            conn.send(True)
        elif op == "go":  # everyone joins now; when each joined and had video from all
            tasks = [asyncio.create_task(s.run()) for s in sessions]
            try:
                await asyncio.wait_for(asyncio.gather(
                    *(note(i, s) for i, s in enumerate(sessions))), arg)
                conn.send({"joined": list(joined.values()), "mesh": list(mesh.values())})
            except TimeoutError:  # what there was instead
                conn.send({"failed": [{"device": s.device[:8], "joined": s.joined.is_set(),
                                       "alarms": s.alarms, "errors": s.errors,
                                       "received": sorted({str(m.get("type"))
                                                           for m in s.inbox}),
                                       "links": {r[:8]: [link.pc.connectionState,
                                                         link.generation,
                                                         s.frames_from(r, MediaKind.VIDEO)]
                                                 for r, link in s.links.items()}}
                                      for s in sessions]})
        elif op == "frames":  # video frames decoded so far, per endpoint
            conn.send([s.frames(MediaKind.VIDEO) for s in sessions])
        elif op == "sent":  # bytes sent so far, per endpoint, over all its connections
            conn.send([await bytes_sent(s) for s in sessions])
        elif op == "stop":
            for s in sessions:
                await s.leave()
            for task in tasks:
                task.cancel()
            conn.send(True)
            return


async def bytes_sent(s: CallSession) -> int:
    """What ``s``'s open peer connections sent (RTP payload and headers, outbound-rtp
    ``bytesSent``): its mesh links, or its publisher to the SFU."""
    pcs = [link.pc for link in s._peers.values()]
    if s.sfu is not None and s.sfu.publisher is not None:
        pcs.append(s.sfu.publisher)
    total = 0
    for pc in pcs:
        for stats in (await pc.getStats()).values():
            if getattr(stats, "type", "") == "outbound-rtp":
                total += int(getattr(stats, "bytesSent", 0))
    return total


class Endpoints:
    """Every endpoint of one call in a process of their own, driven over a pipe."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.specs = specs
        self.conn, child = multiprocessing.Pipe()
        self.proc = SPAWN.Process(target=endpoints_process, args=(child, specs), daemon=True)
        self.proc.start()

    async def ask(self, op: str, arg: Any = None, timeout_s: float = ASK_TIMEOUT_S) -> Any:
        self.conn.send((op, arg))
        return await self.reply(timeout_s)

    async def reply(self, timeout_s: float = ASK_TIMEOUT_S) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(None, self.conn.recv), timeout_s)

    async def stop(self) -> None:
        try:
            await self.ask("stop")
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.proc.join, 10)
            if self.proc.is_alive():
                self.proc.kill()


async def one_mesh(http: httpx.AsyncClient, ws: str, size: int, *,
                   cpu_window_s: float = 0.0, encoding: str = "shared",
                   per_process: bool = False, sfu: bool | None = None) -> dict[str, Any]:
    """Set up one call of ``size`` principals; its setup time in ms, and with
    ``cpu_window_s`` the CPU per endpoint over that window once the mesh is up. All
    endpoints in one process, or with ``per_process`` each in its own. ``sfu``: the
    plan asks for the SFU (True) or never wants it (False: a mesh even with a Janus);
    None: the plan's default threshold."""
    host, call, sides = await provisioned(http, size, {None: None, True: 0, False: 64}[sfu])
    await host.control(call, "start")
    specs = [{"key": side.principal.to_pem().decode(),
              "pins": {d: k.b64u for d, k in side.operator.pinned.items()},
              "ws": ws, "call": call, "encoding": encoding,
              # through Janus: candidates on its veth address (tests/janus.py)
              "hosts": [MEDIA_ADDRESS] if sfu else None,
              "devices": [s.principal.fingerprint for s in sides]} for side in sides]
    groups = [Endpoints([spec]) for spec in specs] if per_process else [Endpoints(specs)]
    out: dict[str, Any] = {}
    try:
        for g in groups:
            await g.ask("hello")
        for g in groups:
            g.conn.send(("go", MESH_TIMEOUT_S))
        got = [await g.reply(ASK_TIMEOUT_S + MESH_TIMEOUT_S) for g in groups]
        failed = [f for t in got for f in t.get("failed", [])]
        if failed:
            log(f"  {size} endpoints: no full mesh within {MESH_TIMEOUT_S:.0f} s: "
                + json.dumps(failed))
            return {"failed": True}
        joined = [j for t in got for j in t["joined"]]
        last_join = max(joined)
        out["setup_ms"] = 1000 * (max(m for t in got for m in t["mesh"]) - last_join)
        out["joins_spread_ms"] = 1000 * (last_join - min(joined))
        if cpu_window_s:
            await asyncio.sleep(SETTLE_S)  # the window itself: time passing is measured
            pids = [g.proc.pid or 0 for g in groups]
            cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
            frames0 = [n for g in groups for n in await g.ask("frames")]
            sent0 = [n for g in groups for n in await g.ask("sent")]
            await asyncio.sleep(cpu_window_s)
            cpu1 = [cpu_seconds(p) for p in pids]
            frames1 = [n for g in groups for n in await g.ask("frames")]
            sent1 = [n for g in groups for n in await g.ask("sent")]
            wall = time.monotonic() - t0
            per_endpoint = [(b - a) / wall / len(g.specs)
                            for a, b, g in zip(cpu0, cpu1, groups, strict=True)]
            out["cores"] = statistics.median(per_endpoint)
            # decoded video frames a second, per remote (each remote sends 15)
            out["video_fps"] = [(b - a) / wall / (size - 1)
                                for a, b in zip(frames0, frames1, strict=True)]
            out["uplink_kbps"] = [8 * (b - a) / wall / 1000
                                  for a, b in zip(sent0, sent1, strict=True)]
    finally:
        await host.control(call, "end")
        for g in groups:
            await g.stop()
    return out


async def measure(runs: int, cpu_window_s: float, per_process: bool) -> dict[str, Any]:
    setup: dict[int, list[float]] = {n: [] for n in (BILATERAL, *SIZES)}
    spread: dict[int, list[float]] = {n: [] for n in (BILATERAL, *SIZES)}
    failed = dict.fromkeys((BILATERAL, *SIZES), 0)  # rounds where the mesh never formed
    cpu: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp))) as base, \
                httpx.AsyncClient(base_url=base, timeout=30) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            for i in range(WARMUP + runs):
                line = []
                for n in (BILATERAL, *SIZES):
                    log(f"  {n} endpoints ...")
                    got = await one_mesh(http, ws, n, per_process=per_process)
                    if got.get("failed"):
                        line.append(f"{n}: not set up")
                        failed[n] += i >= WARMUP
                        continue
                    line.append(f"{n}: {got['setup_ms']:.0f} ms")
                    if i >= WARMUP:
                        setup[n].append(got["setup_ms"])
                        spread[n].append(got["joins_spread_ms"])
                log(f"run {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}: setup "
                    + ", ".join(line))
            for encoding in ("shared", "per_link"):
                for _ in range(3):
                    got = await one_mesh(http, ws, 5, cpu_window_s=cpu_window_s,
                                         encoding=encoding, per_process=per_process)
                    if not got.get("failed"):
                        break
                else:
                    raise RuntimeError("a mesh of 5 never formed: nothing to measure")
                cpu[encoding] = got
                log(f"cpu at 5, {encoding} encoding: {got['cores']:.3f} cores per endpoint; video "
                    + ", ".join(f"{f:.1f}" for f in got["video_fps"]) + " fps per remote")

    def med(n: int) -> float | None:
        return round(statistics.median(setup[n]), 1) if setup[n] else None

    value, baseline = med(5), med(BILATERAL)
    if value is None or baseline is None:
        raise RuntimeError("no mesh of 5 or no bilateral was set up: nothing to measure")
    return {"bench": "briefing", "unit": "ms", "value": value, "baseline": baseline,
            "ratio": round(value / baseline, 2), "aim": "ratio < 2", "runs": runs,
            "machine": f"{os.cpu_count()} cores; "
                       + ("a process per endpoint" if per_process else
                          "the endpoints in one process") + ", the server in another",
            "setup_ms": {str(n): med(n) for n in setup},
            "setup_max_ms": {str(n): round(max(v), 1) for n, v in setup.items() if v},
            "not_set_up": {str(n): k for n, k in failed.items()},
            "joins_spread_ms": {str(n): round(statistics.median(v), 1)
                                for n, v in spread.items()},
            "cpu_per_endpoint_at_5": round(cpu["shared"]["cores"], 3),
            "cpu_per_endpoint_at_5_per_link_encoding": round(cpu["per_link"]["cores"], 3),
            "cpu_window_s": cpu_window_s,
            "video_fps_min_at_5": round(min(cpu["shared"]["video_fps"]), 1),
            "video_fps_min_at_5_per_link_encoding": round(
                min(cpu["per_link"]["video_fps"]), 1)}


async def measure_sfu(runs: int, window_s: float, per_process: bool) -> dict[str, Any]:
    """The briefing of 8 through Janus against the mesh of 8, alternating, ``runs``
    rounds after a warm-up; uplink and CPU from the last round of each."""
    size = SIZES[-1]
    setup: dict[str, list[float]] = {"mesh": [], "sfu": []}
    last: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with janus_process(Path(tmp) / "janus") as j, \
                running(Settings(data_dir=Path(tmp) / "server", janus_url=j.url,
                                 janus_api_secret=j.api_secret,
                                 janus_admin_key=j.admin_key)) as base, \
                httpx.AsyncClient(base_url=base, timeout=30) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            for i in range(WARMUP + runs):
                for route in ("mesh", "sfu"):
                    got = await one_mesh(http, ws, size, per_process=per_process,
                                         sfu=route == "sfu",
                                         cpu_window_s=window_s if i == WARMUP + runs - 1
                                         else 0.0)
                    if got.get("failed"):
                        log(f"run {i}: {route} of {size}: not set up")
                        continue
                    log(f"run {i}: {route} of {size}: {got['setup_ms']:.0f} ms")
                    if i >= WARMUP:
                        setup[route].append(got["setup_ms"])
                    if "uplink_kbps" in got:
                        last[route] = got
    if not setup["sfu"] or not setup["mesh"] or set(last) != {"mesh", "sfu"}:
        raise RuntimeError("the briefing of 8 was not set up both ways: nothing to compare")
    sfu_up = statistics.median(last["sfu"]["uplink_kbps"])
    mesh_up = statistics.median(last["mesh"]["uplink_kbps"])
    return {"bench": "briefing-sfu", "unit": "kbit/s", "endpoints": size,
            "value": round(sfu_up, 1), "baseline": round(mesh_up, 1),
            "ratio": round(sfu_up / mesh_up, 3), "aim": "uplink per endpoint 1/7 of the mesh's",
            "runs": runs, "window_s": window_s,
            "setup_ms": {r: round(statistics.median(v), 1) for r, v in setup.items()},
            "setup_max_ms": {r: round(max(v), 1) for r, v in setup.items()},
            "cpu_per_endpoint": {r: round(g["cores"], 3) for r, g in last.items()},
            "video_fps_min": {r: round(min(g["video_fps"]), 1) for r, g in last.items()},
            "machine": f"{os.cpu_count()} cores; "
                       + ("a process per endpoint" if per_process else
                          "the endpoints in one process") + ", the server in another, "
                       "Janus in a third"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--process-per-endpoint", action="store_true",
                   help="each endpoint in a process of its own (default: all in one)")
    p.add_argument("--cpu-seconds", type=float, default=10.0,
                   help="the CPU window at 5 endpoints (default 10)")
    p.add_argument("--sfu", action="store_true",
                   help="the briefing of 8 through Janus VideoRoom against the mesh of 8 "
                   "(setup time, uplink per endpoint)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    if args.sfu:
        print(json.dumps(asyncio.run(measure_sfu(args.runs, args.cpu_seconds,
                                                 args.process_per_endpoint))))
        return
    print(json.dumps(asyncio.run(measure(args.runs, args.cpu_seconds,
                                          args.process_per_endpoint))))


if __name__ == "__main__":
    main()

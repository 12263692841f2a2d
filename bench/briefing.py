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

Through the SFU (issue 14): the same 8 principals on a second server beside a real Janus
(Debian's ``janus``, deploy/janus's configuration, tests/janus.py), whose plan wants the
SFU (8 > sfu_above's default 5): their setup time, and over the CPU window the uplink of
each endpoint (its media's RTP bytes sent, from aiortc's getStats over every peer
connection it holds) against the same 8 on the mesh, with the CPU per endpoint and
Janus's. The endpoints of the SFU call gather on Janus's veth address (tests/janus.py).

Runs inside a fresh network namespace with only loopback (and Janus's veth pair).
Usage: python bench/briefing.py [--runs N] [--cpu-seconds S] [--process-per-endpoint]
                                [--no-sfu]
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
from aiortc import RTCPeerConnection
from aiortc.stats import RTCOutboundRtpStreamStats

from summitline import netns
from summitline.client.bilateral import Side, provision
from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import Operator
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey, PublicKey
from summitline.server.app import Settings
from summitline.server.run import running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/janus.py: Janus
from tests.janus import janus as janus_process  # noqa: E402
from tests.janus import viewer_ice  # noqa: E402

SIZES = (3, 5, 8)
SFU_SIZE = 8  # the briefing measured through the SFU, and on the mesh for its uplink
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


async def provisioned(http: httpx.AsyncClient, size: int) -> tuple[Operator, str, list[Side]]:
    """The host's operator, the call and its sides: a bilateral plan for 2."""
    if size == BILATERAL:
        call = await provision(http)
        return call.a.operator, call.call, [call.a, call.b]
    b = await provision_briefing(http, size)
    return b.host.operator, b.call, b.sides


async def bytes_sent(s: CallSession) -> int:
    """The RTP bytes ``s`` has sent so far on every peer connection it holds: the mesh's
    links, or its publisher to the SFU."""
    pcs: list[RTCPeerConnection] = [link.pc for link in s.links.values()]
    if s.sfu is not None and s.sfu.publisher is not None:
        pcs.append(s.sfu.publisher)
    total = 0
    for pc in pcs:
        report = await pc.getStats()
        total += sum(st.bytesSent for st in report.values()
                     if isinstance(st, RTCOutboundRtpStreamStats))
    return total


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
        ice = viewer_ice() if spec["ice"] == "janus" else loopback()
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
                                       "sfu": None if s.sfu is None else {
                                           "published": s.sfu.published.is_set(),
                                           "feeds": len(s.sfu.feeds)},
                                       "links": {r[:8]: [link.pc.connectionState,
                                                         link.generation,
                                                         s.frames_from(r, MediaKind.VIDEO)]
                                                 for r, link in s.links.items()}}
                                      for s in sessions]})
        elif op == "frames":  # video frames decoded so far, per endpoint
            conn.send([s.frames(MediaKind.VIDEO) for s in sessions])
        elif op == "sent":  # RTP bytes sent so far, per endpoint; and on the SFU route?
            conn.send({"bytes": [await bytes_sent(s) for s in sessions],
                       "sfu": [s.sfu is not None for s in sessions]})
        elif op == "stop":
            for s in sessions:
                await s.leave()
            for task in tasks:
                task.cancel()
            conn.send(True)
            return


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
                   per_process: bool = False, janus_pid: int | None = None) -> dict[str, Any]:
    """Set up one call of ``size`` principals; its setup time in ms, and with
    ``cpu_window_s`` the CPU per endpoint and its uplink over that window once every
    endpoint decodes every other. All endpoints in one process, or with ``per_process``
    each in its own. ``janus_pid``: the server at ``ws`` has this Janus for an SFU (the
    endpoints gather on its veth, and its CPU is read too)."""
    host, call, sides = await provisioned(http, size)
    await host.control(call, "start")
    specs = [{"key": side.principal.to_pem().decode(),
              "pins": {d: k.b64u for d, k in side.operator.pinned.items()},
              "ws": ws, "call": call, "encoding": encoding,
              "ice": "janus" if janus_pid else "loopback",
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
            j0 = cpu_seconds(janus_pid) if janus_pid else 0.0
            frames0 = [n for g in groups for n in await g.ask("frames")]
            sent0 = [await g.ask("sent") for g in groups]
            await asyncio.sleep(cpu_window_s)
            cpu1 = [cpu_seconds(p) for p in pids]
            j1 = cpu_seconds(janus_pid) if janus_pid else 0.0
            frames1 = [n for g in groups for n in await g.ask("frames")]
            sent1 = [await g.ask("sent") for g in groups]
            wall = time.monotonic() - t0
            out["route"] = sorted({"sfu" if on else "mesh"
                                   for t in sent1 for on in t["sfu"]})
            out["uplink_kbps"] = [8 * (b - a) / wall / 1000 for t0_, t1_ in
                                  zip(sent0, sent1, strict=True)
                                  for a, b in zip(t0_["bytes"], t1_["bytes"], strict=True)]
            out["janus_cores"] = (j1 - j0) / wall
            per_endpoint = [(b - a) / wall / len(g.specs)
                            for a, b, g in zip(cpu0, cpu1, groups, strict=True)]
            out["cores"] = statistics.median(per_endpoint)
            # decoded video frames a second, per remote (each remote sends 15)
            out["video_fps"] = [(b - a) / wall / (size - 1)
                                for a, b in zip(frames0, frames1, strict=True)]
    finally:
        await host.control(call, "end")
        for g in groups:
            await g.stop()
    return out


async def through_sfu(runs: int, cpu_window_s: float, per_process: bool,
                      tmp: Path) -> dict[str, Any]:
    """SFU_SIZE principals through a real Janus: setup times (``runs`` after a warm-up)
    and one CPU and uplink window."""
    setup: list[float] = []
    failed = 0
    async with janus_process(tmp / "janus") as j, \
            running(Settings(data_dir=tmp / "sfu", janus_url=j.url,
                             janus_api_secret=j.api_secret,
                             janus_admin_key=j.admin_key)) as base, \
            httpx.AsyncClient(base_url=base, timeout=30) as http:
        ws = base.replace("http", "ws", 1) + "/ws"
        for i in range(WARMUP + runs):
            log(f"  {SFU_SIZE} endpoints through the SFU ...")
            got = await one_mesh(http, ws, SFU_SIZE, per_process=per_process,
                                 janus_pid=j.pid)
            if got.get("failed"):
                failed += i >= WARMUP
                log(f"sfu run {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}: not set up")
            else:
                if i >= WARMUP:
                    setup.append(got["setup_ms"])
                log(f"sfu run {i + 1 - WARMUP if i >= WARMUP else 'warm-up'}: setup "
                    f"{got['setup_ms']:.0f} ms")
        for _ in range(3):
            window = await one_mesh(http, ws, SFU_SIZE, cpu_window_s=cpu_window_s,
                                    per_process=per_process, janus_pid=j.pid)
            if not window.get("failed"):
                break
        else:
            raise RuntimeError("no briefing of 8 was set up through the SFU: nothing to measure")
    if window["route"] != ["sfu"]:
        raise RuntimeError(f"the SFU server's call went {window['route']}, not through the SFU")
    return {"setup": setup, "failed": failed, "window": window}


async def measure(runs: int, cpu_window_s: float, per_process: bool,
                  sfu: bool) -> dict[str, Any]:
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
            if sfu:  # the mesh of SFU_SIZE, for its uplink against the SFU's
                for _ in range(3):
                    mesh8 = await one_mesh(http, ws, SFU_SIZE, cpu_window_s=cpu_window_s,
                                           per_process=per_process)
                    if not mesh8.get("failed"):
                        break
                else:
                    raise RuntimeError("a mesh of 8 never formed: no uplink to compare")
                if mesh8["route"] != ["mesh"]:
                    raise RuntimeError(f"the mesh server's call went {mesh8['route']}")
        if sfu:
            through = await through_sfu(runs, cpu_window_s, per_process, Path(tmp))

    def med(n: int) -> float | None:
        return round(statistics.median(setup[n]), 1) if setup[n] else None

    value, baseline = med(5), med(BILATERAL)
    if value is None or baseline is None:
        raise RuntimeError("no mesh of 5 or no bilateral was set up: nothing to measure")
    extra: dict[str, Any] = {}
    if sfu:
        w = through["window"]
        up_sfu = statistics.median(w["uplink_kbps"])
        up_mesh = statistics.median(mesh8["uplink_kbps"])
        log(f"at {SFU_SIZE}: uplink per endpoint {up_mesh:.0f} kbit/s on the mesh, "
            f"{up_sfu:.0f} through the SFU; cores per endpoint {mesh8['cores']:.3f} and "
            f"{w['cores']:.3f}, Janus {w['janus_cores']:.3f}")
        extra = {
            "sfu_setup_ms_at_8": round(statistics.median(through["setup"]), 1)
            if through["setup"] else None,
            "sfu_setup_max_ms_at_8": round(max(through["setup"]), 1)
            if through["setup"] else None,
            "sfu_not_set_up_at_8": through["failed"],
            "uplink_kbps_per_endpoint_at_8": {"mesh": round(up_mesh, 1),
                                              "sfu": round(up_sfu, 1)},
            "uplink_mesh_over_sfu_at_8": round(up_mesh / up_sfu, 2) if up_sfu else None,
            "cpu_per_endpoint_at_8": {"mesh": round(mesh8["cores"], 3),
                                      "sfu": round(w["cores"], 3)},
            "janus_cores_at_8": round(w["janus_cores"], 3),
            "video_fps_min_at_8": {"mesh": round(min(mesh8["video_fps"]), 1),
                                   "sfu": round(min(w["video_fps"]), 1)}}
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
                min(cpu["per_link"]["video_fps"]), 1), **extra}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--process-per-endpoint", action="store_true",
                   help="each endpoint in a process of its own (default: all in one)")
    p.add_argument("--cpu-seconds", type=float, default=10.0,
                   help="the CPU window at 5 endpoints, and the CPU and uplink window "
                        "at 8 (default 10)")
    p.add_argument("--no-sfu", action="store_true",
                   help="skip the briefing of 8 through the SFU (no Janus needed)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.runs, args.cpu_seconds,
                                          args.process_per_endpoint, not args.no_sfu))))


if __name__ == "__main__":
    main()

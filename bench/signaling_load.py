"""Signaling load: authenticated WebSocket connections held by one server node.

One server node (``python -m summitline serve``, SQLite store, a process of its own) and
one client process (asyncio, the ``websockets`` library), both in a fresh network
namespace with only loopback, their open-file limit raised to the hard limit.

* Provisioning, through the REST API as the consoles do it (client/bilateral.py
  ``provision``): ceil(N / per-call) bilateral calls, each with two principals and
  aides up to ``--per-call`` devices, registered, linked, submitted and co-signed. The
  first ``--pairs`` calls are started, so that their principals may signal each other.
* Every device then opens a WebSocket and does the real handshake of docs/protocol.md
  (challenge, hello with the nonce signed by the device key, welcome with the signed
  plan; the server verifies the signature against the plan and records the join with
  an fsync). The client does not verify the plan's signatures (client work, not the
  server's), keeps no keepalive of its own (the server pings every 20 s and the
  library answers), and reads and drops every message a loaded device gets.
* The server allows 32 connections per remote address (server/security.py). The limit
  stays as it is: the client binds each socket to one of many loopback source
  addresses (127.1.x.y, at most 30 connections each; all of 127/8 is loopback).
* Relay latency: each pair's first principal sends offers (a dummy SDP of typical size,
  signed as an endpoint signs one; the server checks the shape, the pair, the plan and
  the generation, records the offer, and relays it) to the other principal, 10 a second
  per pair; latency is from the send to the receiving client's read of it.
  ``baseline``: with only the pairs connected (2 x pairs connections); ``value``: with
  all N connected. p50 and p99 of each.
* Server RSS (/proc/PID/status) with the pairs only, and with all N: per connection is
  the difference over the added connections. Server CPU during the handshakes from
  /proc/PID/stat. The machine's load average goes in the line (it is shared).

Usage: python bench/signaling_load.py [--connections 10000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from summitline import netns
from summitline.client.bilateral import provision
from summitline.core import messages as m
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey

PORT = 8750  # the namespace is fresh: nothing else listens there
START_S = 60.0  # bound on the server starting
OPEN_S = 60.0  # bound on one connection's handshake
PER_ADDRESS = 30  # connections per client source address (the server allows 32)
OFFER_EVERY_S = 0.1  # per pair: 10 offers a second (the server lets a device send 30)
LOST_S = 10.0  # an offer not received within this is counted lost
CLK_TCK = os.sysconf("SC_CLK_TCK")
# A dummy SDP of about the size of a browser's audio + video offer.
SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + "".join(
    f"a=x-filler-{i}:{'0123456789abcdef' * 3}\r\n" for i in range(48))


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def address(i: int, net: int) -> str:
    return f"127.{net}.{i // 250}.{i % 250 + 1}"


# -- the server process, seen from /proc ------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def wait_listening(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server did not listen within {START_S:.0f} s")


# -- provisioning -----------------------------------------------------------------------
@dataclass
class Device:
    call: str
    key: PrivateKey
    plan_hash: str
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.fingerprint = self.key.fingerprint


async def provision_calls(base: str, calls: int, per_call: int, started: int,
                          parallel: int) -> list[list[Device]]:
    out: list[list[Device]] = [[] for _ in range(calls)]
    gate = asyncio.Semaphore(parallel)
    done = [0]

    async def one(i: int) -> None:
        async with gate:
            # one source address per call: the REST limit per address stays as it is
            transport = httpx.AsyncHTTPTransport(local_address=address(i, 2))
            async with httpx.AsyncClient(base_url=base, transport=transport,
                                         timeout=60) as http:
                keys = [PrivateKey.generate() for _ in range(per_call - 2)]
                extra = [(j % 2, k, Role.AIDE, f"Aide {j}") for j, k in enumerate(keys)]
                call = await provision(http, names=(f"Delegation A{i}", f"Delegation B{i}"),
                                       extra=extra)
                if i < started:
                    await call.a.operator.control(call.call, "start")
            h = call.plan.hash
            out[i] = [Device(call.call, k, h) for k in (call.a.principal, call.b.principal,
                                                        *keys)]
            done[0] += 1
            if done[0] % 50 == 0:
                progress(f"provisioned {done[0]}/{calls} calls")

    await asyncio.gather(*(one(i) for i in range(calls)))
    return out


# -- the client's connections -----------------------------------------------------------
@dataclass
class Load:
    url: str
    held: int = 0
    failed: list[str] = field(default_factory=list)
    sockets: list[ClientConnection] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, d: Device, source: str,
                   on_message: Callable[[str], None] | None = None) -> bool:
        try:
            ws = await asyncio.wait_for(self._handshake(d, source), OPEN_S)
        except Exception as exc:  # counted and reported, not raised: a load test measures
            self.failed.append(f"{type(exc).__name__}: {exc}"[:160])
            return False
        self.sockets.append(ws)
        self.held += 1
        self.readers.append(asyncio.create_task(self._read(ws, on_message)))
        return True

    async def _handshake(self, d: Device, source: str) -> ClientConnection:
        ws = await connect(self.url, max_size=m.MAX_MESSAGE_BYTES, ping_interval=None,
                           open_timeout=OPEN_S, local_addr=(source, 0))
        try:
            challenge = json.loads(await ws.recv())
            hello = {"type": "hello", "version": m.PROTOCOL_VERSION, "call": d.call,
                     "device": d.fingerprint, "nonce": challenge["nonce"],
                     "signature": d.key.sign(statements.join(d.call, d.fingerprint,
                                                             challenge["nonce"]))}
            await ws.send(json.dumps(hello))
            welcome = json.loads(await ws.recv())
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"not welcomed: {str(welcome)[:100]}")
        except BaseException:
            await ws.close()
            raise
        return ws

    async def _read(self, ws: ClientConnection, on_message: Callable[[str], None] | None
                    ) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                if on_message is not None:
                    on_message(str(raw))
        self.held -= 1

    async def open_many(self, devices: list[tuple[Device, str]], parallel: int
                        ) -> float:
        """Opens them all, ``parallel`` handshakes at a time; returns the seconds taken."""
        gate = asyncio.Semaphore(parallel)
        t0 = time.monotonic()
        last = [t0]

        async def one(d: Device, source: str) -> None:
            async with gate:
                await self.open(d, source)
            now = time.monotonic()
            if now - last[0] > 2:
                last[0] = now
                progress(f"connections held {self.held}, failed {len(self.failed)}, "
                         f"{now - t0:.0f} s")

        await asyncio.gather(*(one(d, s) for d, s in devices))
        return time.monotonic() - t0

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.wait_for(ws.close(), 10) for ws in self.sockets),
                             return_exceptions=True)
        for t in self.readers:
            t.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


# -- relay latency between pairs ----------------------------------------------------------
@dataclass
class Pair:
    sender: Device
    receiver: Device
    ws: ClientConnection | None = None
    generation: int = 0
    sent: dict[int, float] = field(default_factory=dict)
    got: dict[int, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    expected: int = 0
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def on_receiver(self, raw: str) -> None:
        now = time.perf_counter()
        msg = json.loads(raw)
        if msg.get("type") == "offer" and msg.get("from") == self.sender.fingerprint:
            self.got[msg["generation"]] = now
            if len(self.got) >= self.expected:
                self.complete.set()

    def on_sender(self, raw: str) -> None:
        msg = json.loads(raw)
        if msg.get("type") == "error":
            self.refused.append(str(msg.get("code")))

    async def offer(self) -> None:
        assert self.ws is not None
        self.generation += 1
        g, s, r = self.generation, self.sender, self.receiver
        sig = s.key.sign(statements.sdp(
            call=s.call, plan_hash=s.plan_hash, sender=s.fingerprint,
            receiver=r.fingerprint, generation=g, kind="offer",
            sdp_hash=hashlib.sha256(SDP.encode()).hexdigest()))
        text = json.dumps({"type": "offer", "to": r.fingerprint, "generation": g,
                           "sdp": SDP, "signature": sig})
        self.sent[g] = time.perf_counter()
        await self.ws.send(text)


async def relay_latency(pairs: list[Pair], offers: int) -> dict[str, Any]:
    for p in pairs:
        p.sent.clear()
        p.got.clear()
        p.expected = offers
        p.complete.clear()

    async def run(p: Pair) -> None:
        for _ in range(offers):
            await p.offer()
            await asyncio.sleep(OFFER_EVERY_S)

    await asyncio.gather(*(run(p) for p in pairs))
    with contextlib.suppress(TimeoutError):  # what has not come by then is lost
        await asyncio.wait_for(asyncio.gather(*(p.complete.wait() for p in pairs)), LOST_S)
    ms = sorted((p.got[g] - t) * 1000 for p in pairs for g, t in p.sent.items() if g in p.got)
    sent = sum(len(p.sent) for p in pairs)
    if len(ms) < 2:
        raise RuntimeError(f"only {len(ms)} of {sent} offers relayed; refused: "
                           f"{[c for p in pairs for c in p.refused][:5]}")
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": round(statistics.median(ms), 2), "p99": round(q[98], 2),
            "max": round(ms[-1], 2), "offers": sent, "lost": sent - len(ms)}


# -- the run -------------------------------------------------------------------------------
async def measure(args: argparse.Namespace, pid: int, proc: subprocess.Popen[bytes]
                  ) -> dict[str, Any]:
    base = f"http://127.0.0.1:{PORT}"
    await wait_listening(proc)
    calls = math.ceil(args.connections / args.per_call)
    if calls < args.pairs:
        raise SystemExit("--connections too small for --pairs calls")
    progress(f"provisioning {calls} calls of {args.per_call} devices")
    t0 = time.monotonic()
    plans = await provision_calls(base, calls, args.per_call, args.pairs, args.parallel)
    provision_s = time.monotonic() - t0
    devices = [d for plan in plans for d in plan][:args.connections]
    load = Load(f"ws://127.0.0.1:{PORT}/ws")

    # the pairs alone: the baseline
    pairs = [Pair(plans[i][0], plans[i][1]) for i in range(args.pairs)]
    for i, p in enumerate(pairs):
        # its own source addresses (127.3/16), so that the load's stay at 30 each
        if not await load.open(p.receiver, address(2 * i, 3), p.on_receiver):
            raise RuntimeError(f"a pair could not connect: {load.failed[-1]}")
        if not await load.open(p.sender, address(2 * i + 1, 3), p.on_sender):
            raise RuntimeError(f"a pair could not connect: {load.failed[-1]}")
        p.ws = load.sockets[-1]
    rss0, held0 = rss_mb(pid), load.held
    progress(f"baseline: {held0} connections, {args.offers} offers per pair")
    await relay_latency(pairs, max(3, args.offers // 10))  # warm-up
    baseline = await relay_latency(pairs, args.offers)
    progress(f"baseline relay p50 {baseline['p50']} ms, p99 {baseline['p99']} ms")

    # everyone else
    busy = {d.fingerprint for p in pairs for d in (p.sender, p.receiver)}
    rest = [d for d in devices if d.fingerprint not in busy]
    cpu0 = cpu_s(pid)
    elapsed = await load.open_many(
        [(d, address(i // PER_ADDRESS, 1)) for i, d in enumerate(rest)], args.parallel)
    handshake_cpu = cpu_s(pid) - cpu0
    opened = load.held - held0
    progress(f"load: {load.held} connections held, {len(load.failed)} failed, "
             f"{elapsed:.1f} s")
    rss1 = rss_mb(pid)
    value = await relay_latency(pairs, args.offers)
    progress(f"under load relay p50 {value['p50']} ms, p99 {value['p99']} ms")
    held = load.held
    rss2 = rss_mb(pid)
    load_avg = [round(v, 2) for v in os.getloadavg()]
    client_rss = rss_mb(os.getpid())
    progress("closing")
    await load.close()
    failures = sorted(set(load.failed))
    return {
        "bench": "signaling_load", "unit": "ms (p99 offer relay)",
        "value": value["p99"], "baseline": baseline["p99"],
        "ratio": round(value["p99"] / baseline["p99"], 2) if baseline["p99"] else None,
        "aim": "10000 connections on one node, p99 relay < 50 ms",
        "aim_met": held >= 10_000 and value["p99"] < 50,
        "runs": args.offers * args.pairs, "machine": f"{os.cpu_count()} cores",
        "load_average": load_avg,
        "connections_wanted": args.connections, "connections_held": held,
        "connections_failed": len(load.failed), "failures": failures[:5],
        "handshakes_per_s": round(opened / elapsed, 1) if elapsed else None,
        "handshake_s": round(elapsed, 1), "parallel_handshakes": args.parallel,
        "server_cpu_ms_per_handshake": round(handshake_cpu / max(opened, 1) * 1000, 2),
        "relay_under_load": value, "relay_baseline": baseline,
        "relay_baseline_connections": held0,
        "server_rss_mb": {"pairs_only": round(rss0, 1), "loaded": round(rss1, 1),
                          "after_relay": round(rss2, 1)},
        "server_rss_kb_per_connection": round((rss1 - rss0) * 1024 / max(opened, 1), 1),
        "client_rss_mb": round(client_rss, 1),
        "calls": calls, "devices_per_call": args.per_call, "pairs": args.pairs,
        "provision_s": round(provision_s, 1), "nofile_limit": resource.getrlimit(
            resource.RLIMIT_NOFILE)[0],
        "server": "python -m summitline serve, SQLite, one process",
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Runs in a fresh network namespace with only loopback (needs root).")
    p.add_argument("--connections", type=int, default=10_000,
                   help="authenticated connections to open in all (default 10000)")
    p.add_argument("--per-call", type=int, default=16,
                   help="devices per call plan: 2 principals and aides (default 16, "
                        "at most 64)")
    p.add_argument("--pairs", type=int, default=5,
                   help="principal pairs sending offers; they are the baseline's "
                        "connections (default 5)")
    p.add_argument("--offers", type=int, default=100,
                   help="offers per pair in each measurement, 10 a second (default 100)")
    p.add_argument("--parallel", type=int, default=64,
                   help="handshakes (and call provisionings) in flight at once (default 64)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 200 connections, 2 pairs, 20 offers each")
    args = p.parse_args()
    if args.quick:
        args.connections, args.pairs, args.offers = 200, 2, 20
    if not 2 <= args.per_call <= 64:
        p.error("--per-call must be 2..64")
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    limit = raise_nofile()  # the server inherits it
    if limit < args.connections + 1000:
        progress(f"warning: open-file limit {limit} is below {args.connections} + 1000")
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [sys.executable, "-m", "summitline", "serve", "--data", str(Path(tmp) / "data"),
             "--host", "127.0.0.1", "--port", str(PORT)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            result = asyncio.run(measure(args, proc.pid, proc))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
            if proc.returncode not in (0, -15):
                tail = (Path(tmp) / "server.log").read_bytes()[-2000:].decode(errors="replace")
                progress(f"server exited {proc.returncode}:\n{tail}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

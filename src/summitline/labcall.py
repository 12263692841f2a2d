"""A bilateral call across a ``netlab.Lab``: the server, and each principal, in a network
namespace of its own, each in a process of its own, driven over pipes.

For the outage tests (tests/client/test_outages.py) and the benchmarks that break or
degrade a path (bench/recovery.py, bench/soak.py). The test or benchmark process stays
in its own namespace; everything that opens a socket runs in the lab.

* The *control* process runs in the server's host. It starts ``summitline serve`` as a
  child (so that it can be SIGKILLed and started again), provisions two delegations, a
  link and a co-signed plan over REST, and carries out the operators' orders: start,
  end, sign and export the record.
* Each *principal* process runs a ``CallSession`` with synthetic audio and video, host
  candidates on its lab address only, and keeps the monotonic time of every decoded
  video frame (CLOCK_MONOTONIC is one clock for every process of the machine) and a
  count of audio frames.

All waits are bounded; ``LabCall.close`` ends the processes (the lab kills what is
left).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from summitline.netlab import Host, Lab

PORT = 8750
REPLY_S = 60.0  # the longest a process may take to answer an order (a server start)
READY_S = 30.0
# Decoded video frame times kept per principal: two minutes at 15 fps, enough for any
# recovery to be read back, with a memory that does not grow over a two-hour soak.
KEPT_FRAMES = 2000
# "Video flowing again": frames at least this dense after a return (a keyframe and a few
# deltas, not one stray frame drained from a buffer).
FLOWING_FRAMES = 5
FLOWING_WITHIN_S = 1.0
# A freeze is a gap between decoded video frames over this long.
FREEZE_S = 1.0
# An endpoint's event loop late by more than LOOP_LATE_S on a LOOP_TICK_S sleep has
# stalled: the machine starved it, not the path. Freezes are also counted less the time
# either endpoint spent stalled, to tell the network's part from the machine's.
LOOP_TICK_S = 0.01
LOOP_LATE_S = 0.1
KEPT_INTERVALS = 5000

Interval = tuple[float, float]  # (start, end) on CLOCK_MONOTONIC, one clock machine-wide


def stalled_within(span: Interval, stalls: list[Interval]) -> float:
    """How much of ``span`` falls within ``stalls`` (overlaps counted once)."""
    start, end = span
    covered, reach = 0.0, start
    for a, b in sorted(stalls):
        a, b = max(a, reach), min(b, end)
        if b > a:
            covered += b - a
            reach = b
    return covered


class LabCallError(Exception):
    """A process of the lab call failed or did not answer in time."""


def _ask(conn: Connection, order: tuple[Any, ...], timeout_s: float = REPLY_S) -> Any:
    conn.send(order)
    if not conn.poll(timeout_s):
        raise LabCallError(f"no answer to {order[0]!r} within {timeout_s:.0f} s")
    reply = conn.recv()
    if isinstance(reply, dict) and "error" in reply:
        raise LabCallError(f"{order[0]!r} failed: {reply['error']}")
    return reply


@dataclass
class Principal:
    name: str
    host: Host
    conn: Connection
    process: Any

    def ask(self, *order: Any, timeout_s: float = REPLY_S) -> Any:
        return _ask(self.conn, order, timeout_s)

    def frames(self) -> dict[str, int]:
        frames: dict[str, int] = self.ask("frames")
        return frames

    def video_times(self, since: float) -> list[float]:
        times: list[float] = self.ask("video-since", since)
        return times

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = self.ask("report")
        return report

    def flowing_since(self, since: float) -> float | None:
        """The first decoded video frame at or after ``since`` that starts steady video
        (FLOWING_FRAMES within FLOWING_WITHIN_S), or None."""
        return flowing(self.video_times(since))


def flowing(times: list[float]) -> float | None:
    for i, t in enumerate(times):
        window = times[i:i + FLOWING_FRAMES]
        if len(window) == FLOWING_FRAMES and window[-1] - t <= FLOWING_WITHIN_S:
            return t
    return None


@dataclass
class LabCall:
    """Two principals and a server in ``lab``; ``relayed`` hosts can be impaired."""

    lab: Lab
    data: Path
    relayed: bool = False
    principals: list[Principal] = field(default_factory=list)

    def open(self) -> LabCall:
        self.server = self.lab.host("server")
        self.control_process, self.control = self.lab.piped(
            self.server, control, str(self.data), self.server.address)
        call = _ask(self.control, ("provision",))
        for name, spec in zip(("a", "b"), call["principals"], strict=True):
            host = self.lab.host(name, relayed=self.relayed)
            process, conn = self.lab.piped(host, principal, {
                **spec, "call": call["call"], "address": host.address,
                "log": str(self.data / f"principal-{name}.log"),
                "ws": f"ws://{self.server.address}:{PORT}/ws"})
            self.principals.append(Principal(name, host, conn, process))
        self.call = call["call"]
        for p in self.principals:
            p.ask("joined")
        return self

    def start(self) -> float:
        """Start the call, wait until video flows both ways; the seconds from the start
        order to steady video on the later side (a fresh call's setup time)."""
        t0 = time.monotonic()
        self.order("start")
        self.wait(lambda: all(p.frames()["video"] > 15 for p in self.principals),
                  "video both ways after the start")
        firsts = [p.flowing_since(t0) for p in self.principals]
        return max(f for f in firsts if f is not None) - t0 if None not in firsts else 0.0

    def order(self, *order: Any) -> Any:
        return _ask(self.control, order)

    def wait(self, predicate: Any, what: str, timeout_s: float = READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise LabCallError(f"not within {timeout_s:.0f} s: {what}")
            time.sleep(0.1)

    def recovered(self, since: float, timeout_s: float) -> list[float | None]:
        """Per principal, the seconds from ``since`` to steady video again; None where
        it did not come back within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        out: list[float | None] = [None] * len(self.principals)
        while time.monotonic() < deadline and None in out:
            for i, p in enumerate(self.principals):
                if out[i] is None:
                    at = p.flowing_since(since)
                    if at is not None:
                        out[i] = at - since
            time.sleep(0.1)
        return out

    def settled(self, timeout_s: float = READY_S) -> None:
        """Wait until every link of both principals shows "ok" and signaling is up, and
        still is after the signaling keepalive's timeout: a connection that died in an
        outage is noticed by then, and the reports it held have reached the record."""
        from summitline.client.session import KEEPALIVE_TIMEOUT_S

        def ok() -> bool:
            reports = [p.report() for p in self.principals]
            return all(r["signaling"] and r["status"] and all(
                state == "ok" for state, _ in r["status"].values()) for r in reports)

        deadline = time.monotonic() + timeout_s
        while True:
            self.wait(ok, "every link ok again", max(0.1, deadline - time.monotonic()))
            time.sleep(KEEPALIVE_TIMEOUT_S + 0.5)
            if ok():
                return
            if time.monotonic() > deadline:
                raise LabCallError(f"links not steady within {timeout_s:.0f} s")

    def freezes(self) -> tuple[list[float], list[float]]:
        """Every freeze of both principals so far (seconds), and each less the time
        either endpoint's event loop was stalled within it."""
        reports = [p.report() for p in self.principals]
        stalls = [tuple(i) for r in reports for i in r["loop_stalls"]]
        spans = [tuple(f) for r in reports for f in r["freezes"]]
        raw = [b - a for a, b in spans]
        net = [b - a - stalled_within((a, b), stalls) for a, b in spans]
        return raw, net

    def end(self) -> dict[str, Any]:
        """End the call, have both delegations sign the record, export and verify it."""
        self.order("end")
        for p in self.principals:
            try:
                p.ask("ended")
            except LabCallError as exc:
                raise LabCallError(f"{exc}; {p.name} reports {p.report()}") from None
        result: dict[str, Any] = self.order("record")
        return result

    def close(self) -> None:
        for p in self.principals:
            try:
                p.ask("leave", timeout_s=10)
            except (LabCallError, OSError, EOFError):
                pass
        try:
            _ask(self.control, ("stop",), 15)
        except (LabCallError, OSError, EOFError):
            pass


# -- the processes in the lab -------------------------------------------------------------
def control(conn: Connection, data: str, address: str) -> None:
    """The server's host: the server process and the two operators."""
    logging.basicConfig(level=logging.WARNING)
    Path(data).mkdir(parents=True, exist_ok=True)
    asyncio.run(_control(conn, Path(data), address))


def _serve(data: Path, address: str) -> subprocess.Popen[bytes]:
    log = (data / "server.log").open("ab")
    # --serve-client: the browser of tests/browser/test_reconnect.py loads the client here
    return subprocess.Popen([sys.executable, "-m", "summitline", "serve", "--host", address,
                             "--port", str(PORT), "--data", str(data), "--serve-client"],
                            stdout=log, stderr=log)


async def _ready(base: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base) as http, asyncio.timeout(READY_S):
        while True:
            try:
                if (await http.get("/api/nonce")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.05)


async def _control(conn: Connection, data: Path, address: str) -> None:
    import httpx

    from summitline.client.bilateral import provision
    from summitline.core.record import verify_export

    base = f"http://{address}:{PORT}"
    server = _serve(data, address)
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _ready(base)
        call = None
        while True:
            order = await loop.run_in_executor(None, conn.recv)
            op = order[0]
            try:
                if op == "provision":
                    call = await provision(http)
                    conn.send({"call": call.call, "principals": [
                        {"key": s.principal.to_pem().decode(),
                         "pins": {k: v.b64u for k, v in s.operator.pinned.items()}}
                        for s in (call.a, call.b)]})
                elif op in ("start", "end"):
                    assert call is not None
                    await call.a.operator.control(call.call, op)
                    conn.send(True)
                elif op == "kill":  # SIGKILL: no shutdown, no flushing
                    server.kill()
                    server.wait(10)
                    conn.send(True)
                elif op == "restart":
                    server = _serve(data, address)
                    await _ready(base)
                    conn.send(time.monotonic())
                elif op == "record":
                    assert call is not None
                    for side in (call.a, call.b):
                        await side.operator.sign_record(call.call, call.plan.hash)
                    exported = await call.a.operator.export_record(call.call)
                    record = verify_export(exported)  # raises on a broken record
                    conn.send({"kinds": [e.kind for e in record.entries],
                               "entries": [{"kind": e.kind, "data": e.data}
                                           for e in record.entries]})
                elif op == "rss":
                    conn.send(_rss_kb(server.pid))
                elif op == "stop":
                    server.send_signal(signal.SIGTERM)
                    try:
                        server.wait(10)
                    except subprocess.TimeoutExpired:
                        server.kill()
                    conn.send(True)
                    return
                else:
                    conn.send({"error": f"unknown order {op!r}"})
            except Exception as exc:  # the driver must hear of it, not wait forever
                conn.send({"error": f"{type(exc).__name__}: {exc}"})


def principal(conn: Connection, spec: dict[str, Any]) -> None:
    """A principal's host: one CallSession, reporting what it decodes. It logs to
    ``spec["log"]`` (summitline at INFO), for a failure to be read afterwards."""
    logging.basicConfig(level=logging.WARNING, filename=spec.get("log"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("summitline").setLevel(logging.INFO)
    asyncio.run(_principal(conn, spec))


async def _principal(conn: Connection, spec: dict[str, Any]) -> None:
    from summitline.client.ice import IceSettings
    from summitline.client.session import CallSession, Identity
    from summitline.core.roles import MediaKind
    from summitline.crypto.keys import PrivateKey, PublicKey

    key = PrivateKey.from_pem(spec["key"].encode())
    pins = {k: PublicKey.from_b64u(v) for k, v in spec["pins"].items()}
    session = CallSession(spec["ws"], spec["call"], Identity(key, pins),
                          ice=IceSettings(host_addresses=(spec["address"],)))
    video: deque[float] = deque(maxlen=KEPT_FRAMES)
    gaps = {"max_video_gap_s": 0.0, "freezes_over_1s": 0}
    freezes: deque[Interval] = deque(maxlen=KEPT_INTERVALS)
    loop_stalls: deque[Interval] = deque(maxlen=KEPT_INTERVALS)
    last = [0.0]

    def decoded(remote: str, kind: MediaKind, at: float) -> None:
        if kind is MediaKind.VIDEO:
            if last[0]:
                gap = at - last[0]
                gaps["max_video_gap_s"] = max(gaps["max_video_gap_s"], gap)
                if gap > FREEZE_S:
                    gaps["freezes_over_1s"] += 1
                    freezes.append((last[0], at))
            last[0] = at
            video.append(at)

    async def watch_loop() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LOOP_TICK_S)
            if time.monotonic() - before - LOOP_TICK_S > LOOP_LATE_S:
                loop_stalls.append((before, time.monotonic()))

    watcher = asyncio.create_task(watch_loop())

    session.frame_listeners.append(decoded)
    task = asyncio.create_task(session.run())
    loop = asyncio.get_running_loop()
    while True:
        order = await loop.run_in_executor(None, conn.recv)
        op = order[0]
        try:
            if op == "joined":
                await asyncio.wait_for(session.joined.wait(), READY_S)
                conn.send(True)
            elif op == "frames":
                conn.send({str(k): session.frames(k) for k in MediaKind})
            elif op == "video-since":
                conn.send([t for t in video if t >= order[1]])
            elif op == "reset-gaps":
                gaps.update(max_video_gap_s=0.0, freezes_over_1s=0)
                freezes.clear()
                last[0] = 0.0
                conn.send(True)
            elif op == "report":
                conn.send({"stalls": list(session.stalls), "alarms": list(session.alarms),
                           "status": dict(session.status), "rss_kb": _rss_kb(os.getpid()),
                           "generations": {r: link.generation
                                           for r, link in session.links.items()},
                           "signaling": session._ws is not None,
                           "last_messages": [m.get("type") for m in session.inbox[-8:]],
                           "errors": session.errors[-3:],
                           "freezes": list(freezes), "loop_stalls": list(loop_stalls),
                           **gaps})
            elif op == "ended":
                await asyncio.wait_for(session.ended.wait(), READY_S)
                conn.send(True)
            elif op == "leave":
                await asyncio.wait_for(session.leave(), 10)
                task.cancel()
                watcher.cancel()
                conn.send(True)
                return
            else:
                conn.send({"error": f"unknown order {op!r}"})
        except Exception as exc:
            conn.send({"error": f"{type(exc).__name__}: {exc}"})


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

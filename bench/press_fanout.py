"""Press fan-out: CPU of the server's press gateway per WebRTC viewer, as viewers grow.

The programme of a call (both principals side by side, 640x480 VP8 + Opus) is composed
and encoded once; every viewer gets the same packets, which the gateway packs into RTP,
encrypts (SRTP) and sends on a peer connection of its own, with its own RTCP. This
measures that per-viewer cost apart from the one-time cost (decoding the principals'
feeds, composing, encoding VP8 and Opus, and H.264 + AAC for HLS) and apart from the
viewers' own work:

* the server (with the gateway) runs in a process of its own; its CPU time is read from
  /proc: the whole process, and its main thread, the event loop, where all of the
  fan-out runs (aiortc packs, encrypts and sends a pre-encoded packet in the loop);
* the two principals (CallSessions, synthetic sources) run in another process;
* the viewers (``PressViewer``: a recvonly offer to the WHEP-style route with a press
  token) run in four more processes, at the lowest priority (nice 19) so that they
  take only the CPU the server and the principals leave. They do not decode: their
  receivers keep the statistics of aiortc's RTCP receiver reports and count packets
  and VP8 keyframes, then drop the packet (no jitter buffer, NACK, REMB nor decoder:
  100 decoding viewers would not fit on the machine beside the server).

"Cores" are CPU seconds per wall second, the median of windows of a few seconds after
a settling time. A window counts only if the programme and both principals' feeds kept
their frame rate in it (a starved server does less work and looks cheaper); a number
of viewers the machine cannot serve at full rate is reported, not counted.

* cpu(0): no viewer, the one-time cost;
* baseline: the first viewer, from alternating windows 0, 1, 0, 1, ..., 0 (a viewer
  joins and leaves each time), each window with it against the mean of the two around
  it, median of the pairs;
* then 10, 25, 50, 100 viewers: per viewer = (cpu(N) - cpu(0)) / N; value: at the
  largest N served at full rate. value and baseline are the event loop's; the whole
  process's (``process_*``) also carry the encoders' ups and downs;
* cores_at_100: measured if 100 viewers were served at full rate, else cpu(0) + 100 x
  value; within_one_core: cores_at_100 <= 1;
* every viewer's video and audio are counted over the same windows (the minima across
  viewers show that each one got the programme), with the event loop's lateness and
  the state of the principals' feeds;
* at the end every viewer leaves: the gateway must drop them all.

The principals' pictures carry fine detail that changes every frame (``--detail``:
noise over the moving pattern), so that the programme's encoder reaches its configured
bitrate as with a camera, with as many packets to fan out; the plain pattern
(``--detail 0``) compresses to about a quarter of it.

``--via janus``: the whole press path through a real Janus (Debian's ``janus``, started
by the server's process with deploy/janus's configuration, tests/janus.py): the server
forwards the programme's RTP to a Streaming mountpoint and brokers each viewer to Janus.
The press path's CPU is the server's process and Janus's (/proc/<pid>/stat of both), at
0 viewers and then 50, 100, 200 (``--steps``); per viewer = (cpu(N) - cpu(0)) / N. The
baseline is the same figure for the gateway's own viewers, measured first in the same
run (``--baseline-steps``, 25 and 50: the machine is full beyond). Where the machine
runs out (the viewers' own processes do not fit beside the rest), the figure at the
largest count is extrapolated from the largest served, and the JSON says so. Janus
gathers its ICE candidates on a veth address inside the namespace (tests/janus.py).

Runs inside a fresh network namespace with only loopback (as root), within about four
minutes on two cores (plus up to a minute waiting for other work on the machine).
Usage: python bench/press_fanout.py [--steps 10,25,50,100] [--windows 3] [--window-s 5]
       python bench/press_fanout.py --via janus [--steps 50,100,200] [--baseline-steps 25,50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import uvicorn
from aiortc.codecs import is_rtx
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics

from summitline import netns
from summitline.client.bilateral import provision
from summitline.client.ice import LOOPBACK, IceSettings, loopback
from summitline.client.media import DEFAULT_FPS as SOURCE_FPS
from summitline.client.media import MediaSource, PatternVideoTrack, ToneAudioTrack
from summitline.client.press import PressViewer
from summitline.client.session import CallSession
from summitline.server import run
from summitline.server.app import Settings
from summitline.server.press.gateway import PressGateway
from summitline.server.press.programme import HEIGHT, VIDEO_BITRATE, WIDTH

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/janus.py: Janus
from tests.janus import janus as janus_process  # noqa: E402
from tests.janus import viewer_ice  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no event loop inherited
START_S = 60.0  # bound on every start-up step
REPLY_S = 120.0  # bound on every answer of a child process (adding 50 viewers included)
RATE_SLACK = 0.07  # a window counts if the programme ran at its frame rate within 7 %
RETRIES = 2  # windows tried beyond the wanted number when the programme lost its rate
VIEWER_NICE = 19  # the viewers yield the CPU to the server and the principals
LAG_PROBE_S = 0.1  # how often the server's event loop is probed for lateness
QUIET_WAIT_S = 60.0  # at most this long for other work on the machine to end
QUIET_CORES = 0.25
DROP_S = 45.0  # bound on the gateway noticing that viewers left
VIEWER_PROCESSES = 4
CONCURRENT_JOINS = 4  # per viewer process
PRESS_WINDOW_S = 1800  # longer than the benchmark; the doors stay open
DETAIL = 8  # amplitude of the per-frame detail on the principals' pictures
CLK_TCK = os.sysconf("SC_CLK_TCK")
JANUS_MAX_VIEWERS = 1000  # --max-press-viewers of a server whose press watch through Janus


# -- the principals' pictures ---------------------------------------------------------------
class DetailedVideoTrack(PatternVideoTrack):
    """The moving pattern with fine detail that changes every frame, as from a camera."""

    def __init__(self, width: int, height: int, detail: int) -> None:
        super().__init__(width, height)
        self.detail = detail
        self._rng = np.random.default_rng()

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        planes = frame.to_ndarray()
        noise = self._rng.integers(0, self.detail, size=(self.height, self.width),
                                   dtype=np.uint8)
        planes[: self.height] = planes[: self.height] // 2 + 56 + noise
        out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


# -- commands over a pipe, read without a thread or polling ------------------------------
def commands(conn: Connection) -> asyncio.Queue[Any]:
    """The messages arriving on ``conn``, as an asyncio queue (EOF: ("stop",))."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        try:
            q.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            q.put_nowait(("stop",))

    loop.add_reader(conn.fileno(), readable)
    return q


# -- the server process ---------------------------------------------------------------------
def server_process(conn: Connection, data_dir: str, loop: str, via: str = "gateway") -> None:
    logging.basicConfig(level=logging.ERROR)
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve_via(conn, Path(data_dir), via))


async def _serve_via(conn: Connection, data_dir: Path, via: str) -> None:
    """The server, and with ``via`` "janus" a real Janus beside it (tests/janus.py: the
    deploy/janus configuration), whose pid goes to the orchestra with the base URL."""
    if via != "janus":
        await _serve(conn, Settings(data_dir=data_dir, press_hosts=LOOPBACK))
        return
    async with janus_process(data_dir / "janus") as j:
        await _serve(conn, Settings(data_dir=data_dir, press_hosts=LOOPBACK,
                                    janus_url=j.url, janus_api_secret=j.api_secret,
                                    janus_admin_key=j.admin_key,
                                    max_press_viewers=JANUS_MAX_VIEWERS), j.pid)


async def _serve(conn: Connection, settings: Settings, janus_pid: int | None = None) -> None:
    cfg = run.config(settings, "127.0.0.1", 0, log_level="error")
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    started = time.monotonic()
    while not server.started:
        if task.done() or time.monotonic() - started > START_S:
            conn.send(None)
            return
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    app: Any = cfg.app.app if isinstance(cfg.app, run.OpenWebSockets) else cfg.app
    gateway: PressGateway = app.state.hub.press
    lag = [0.0]  # the event loop's largest lateness since the last "state", in seconds

    async def probe() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(LAG_PROBE_S)
            lag[0] = max(lag[0], time.monotonic() - t - LAG_PROBE_S)

    probing = asyncio.create_task(probe())
    conn.send({"base": f"http://127.0.0.1:{port}", "janus_pid": janus_pid})
    inbox = commands(conn)
    while True:
        op = (await inbox.get())[0]
        late, lag[0] = lag[0], 0.0
        if op == "state":
            feeds = list(gateway.feeds.values())
            feed = feeds[0] if feeds else None
            conn.send({} if feed is None else {
                "viewers": gateway.viewers(feed.call),
                "subscribers": len(feed.programme.subscribers),
                "forwarded": sum(f.sent for f in feed.forwarders),
                "encoded": feed.programme.encoded, "fps": feed.programme.fps,
                "received": dict(feed.received),
                "feeds": {d[:8]: pc.connectionState for d, pc in feed.senders.items()},
                "readers_done": sum(t.done() for t in feed.readers),
                "closed": feed.closed, "threads": threading.active_count(),
                "lag_ms": late * 1000})
        else:
            break
    probing.cancel()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 20)
    conn.send(True)


# -- the principals' process ----------------------------------------------------------------
def principals_process(conn: Connection, base: str, size: tuple[int, int], detail: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_principals(conn, base, size, detail))


async def _principals(conn: Connection, base: str, size: tuple[int, int], detail: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        call = await provision(http, press_window_s=PRESS_WINDOW_S)
        ws = base.replace("http", "ws", 1) + "/ws"

        def source(hz: float) -> MediaSource:
            video = DetailedVideoTrack(*size, detail) if detail else PatternVideoTrack(*size)
            return MediaSource(ToneAudioTrack(hz), video)

        sessions = [CallSession(ws, call.call, side.identity(), ice=loopback(), source=source(hz))
                    for side, hz in ((call.a, 440.0), (call.b, 660.0))]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), START_S)
        await call.a.operator.control(call.call, "start")
        await asyncio.wait_for(asyncio.gather(*(s.press_answered.wait() for s in sessions)),
                               START_S)
        token = (await call.b.operator.press_token(call.call))["token"]
        conn.send({"call": call.call, "token": token})
        inbox = commands(conn)
        while (await inbox.get())[0] == "state":
            conn.send([{"device": s.device[:8], "phase": str(s.phase),
                        "press": s.press.connectionState if s.press else None,
                        "press_cut_ms": s.press_cut_ms, "alarms": list(s.alarms)}
                       for s in sessions])
        for s in sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.leave(), 10)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    conn.send(True)


# -- the viewers' processes -----------------------------------------------------------------
@dataclass
class Tally:
    """What one receiver of a viewer got."""

    packets: int = 0
    bytes: int = 0  # RTP payload
    frames: int = 0  # video: packets with the marker bit (a frame's last); audio: packets
    keyframes: int = 0
    first_is_key: bool | None = None
    keyed: asyncio.Event = field(default_factory=asyncio.Event)  # a VP8 keyframe came

    def counts(self) -> dict[str, Any]:
        return {"packets": self.packets, "bytes": self.bytes, "frames": self.frames,
                "keyframes": self.keyframes, "first_is_key": self.first_is_key}


TALLIES: dict[int, Tally] = {}  # by id() of the RTCRtpReceiver


def tally_of(receiver: object) -> Tally:
    return TALLIES.setdefault(id(receiver), Tally())


async def counting_receiver(self: Any, packet: Any, arrival_time_ms: int) -> None:
    """Stands in for aiortc's ``RTCRtpReceiver._handle_rtp_packet`` in the viewers: keeps
    the statistics its RTCP receiver reports are made of, counts packets and VP8
    keyframes, and drops the packet (no NACK, jitter buffer, depayloading nor decoding,
    which would cost the viewers more than the gateway is charged per viewer)."""
    codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)
    if codec is None or is_rtx(codec):
        return
    streams = self._RTCRtpReceiver__remote_streams
    if packet.ssrc not in streams:
        streams[packet.ssrc] = StreamStatistics(codec.clockRate)
    streams[packet.ssrc].add(packet)
    tally = tally_of(self)
    payload: bytes = packet.payload
    tally.packets += 1
    tally.bytes += len(payload)
    if codec.name != "VP8":
        tally.frames += 1
        return
    tally.frames += packet.marker
    if payload and payload[0] & 0x10 and not payload[0] & 0x07:  # a frame's first packet
        _, frame = VpxPayloadDescriptor.parse(payload)
        key = bool(frame) and not frame[0] & 1  # the P bit of the VP8 frame tag
        if tally.first_is_key is None:
            tally.first_is_key = key
        if key:
            tally.keyframes += 1
            tally.keyed.set()


def viewers_process(conn: Connection, base: str, call: str, token: str,
                    via: str = "gateway") -> None:
    logging.basicConfig(level=logging.ERROR)
    os.nice(VIEWER_NICE)
    setattr(RTCRtpReceiver, "_handle_rtp_packet", counting_receiver)  # noqa: B010
    asyncio.run(_viewers(conn, base, call, token, viewer_ice() if via == "janus" else loopback()))


async def _viewers(conn: Connection, base: str, call: str, token: str,
                   ice: IceSettings) -> None:
    viewers: list[tuple[PressViewer, dict[str, Tally]]] = []
    gate = asyncio.Semaphore(CONCURRENT_JOINS)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def join() -> None:
            async with gate:
                viewer = PressViewer(http, call, token, ice)
                await viewer.watch()
            assert viewer.pc is not None
            tallies = {r.track.kind: tally_of(r) for r in viewer.pc.getReceivers()}
            viewers.append((viewer, tallies))
            await tallies["video"].keyed.wait()  # the programme has reached it

        inbox = commands(conn)
        while True:
            op, *args = await inbox.get()
            if op == "add":
                results = await asyncio.gather(
                    *(asyncio.wait_for(join(), REPLY_S / 2) for _ in range(args[0])),
                    return_exceptions=True)
                conn.send([repr(r) for r in results if isinstance(r, BaseException)])
            elif op == "snap":
                lost = await asyncio.gather(*(_lost(v) for v, _ in viewers))
                conn.send({"t": time.monotonic(), "viewers": [
                    {"video": t["video"].counts(), "audio": t["audio"].counts(), "lost": n,
                     "state": v.pc.connectionState if v.pc else "none"}
                    for (v, t), n in zip(viewers, lost, strict=True)]})
            elif op == "close":
                leaving, viewers[:] = viewers[:], []
                await asyncio.gather(*(asyncio.wait_for(v.close(), 10) for v, _ in leaving),
                                     return_exceptions=True)
                conn.send(True)
            else:
                break
        for v, _ in viewers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(v.close(), 5)
    conn.send(True)


async def _lost(viewer: PressViewer) -> int:
    """RTP packets lost (aiortc's inbound-rtp stats, from the sequence numbers)."""
    if viewer.pc is None:
        return 0
    return sum(max(0, s.packetsLost) for s in (await viewer.pc.getStats()).values()
               if s.type == "inbound-rtp")


# -- the orchestra (this process does no media work) --------------------------------------
class Child:
    def __init__(self, target: Callable[..., None], *args: object) -> None:
        self.conn, child = SPAWN.Pipe()
        self.proc: BaseProcess = SPAWN.Process(target=target, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        assert self.proc.pid is not None
        self.pid: int = self.proc.pid

    def ask(self, *message: object, timeout: float = REPLY_S) -> Any:
        self.conn.send(message)
        return self.reply(timeout)

    def reply(self, timeout: float = REPLY_S) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"no answer from {self.proc.name} within {timeout:.0f} s")
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("stop", timeout=20)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def ticks(path: str) -> tuple[int, int]:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """CPU seconds of process ``pid`` (all threads), of its main thread (the loop), and
    of the process in the kernel."""
    user, system = ticks(f"/proc/{pid}/stat")
    return ((user + system) / CLK_TCK, sum(ticks(f"/proc/{pid}/task/{pid}/stat")) / CLK_TCK,
            system / CLK_TCK)


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Window:
    cores: float  # the server process
    loop_cores: float  # its event loop's thread
    kernel_cores: float  # the server process in the kernel
    viewers_cores: float  # the viewers' processes
    principals_cores: float
    machine_cores: float  # the whole machine
    others_cores: float  # the machine but this benchmark's processes
    fps: float  # programme frames encoded per second
    feeds_fps: float  # frames of the principals decoded by the gateway, per second, min
    lag_ms: float  # the server's event loop: largest lateness of a timer
    feeds: dict[str, str]  # the gateway's feed connections, by principal, at the end
    clean: bool  # the programme and the principals' feeds kept their frame rates
    janus_cores: float = 0.0  # the Janus process (--via janus)


@dataclass
class Group:
    """Windows at one number of viewers, and what the viewers got meanwhile."""

    viewers: int
    windows: list[Window]
    clean: bool
    tried: int
    video_kbps: tuple[float, float]  # min, max across viewers (VP8 payload)
    video_fps: float  # min across viewers
    audio_fps: float  # min across viewers
    video_pps: float  # RTP packets per second, min across viewers
    pps: float  # RTP packets per second (video + audio), median across viewers
    lost: int  # packets lost, all viewers
    rss_mb: float
    keyless: int  # viewers whose first video frame was not a keyframe
    failed: int  # viewers whose connection was not "connected" at the end

    def median(self, what: Callable[[Window], float]) -> float:
        return statistics.median(what(w) for w in self.windows)

    @property
    def cores(self) -> float:
        return self.median(lambda w: w.cores)

    @property
    def loop_cores(self) -> float:
        return self.median(lambda w: w.loop_cores)


class Bench:
    def __init__(self, server: Child, others: list[Child], viewer_procs: list[Child],
                 window_s: float, settle_s: float, janus_pid: int | None = None) -> None:
        self.server, self.viewer_procs = server, viewer_procs
        self.janus_pid = janus_pid
        self.ours = [server, *others]
        self.window_s, self.settle_s = window_s, settle_s
        self.watching = 0

    def window(self, seconds: float) -> Window:
        s0 = self.server.ask("state")
        c0 = [cpu_seconds(c.pid) for c in self.ours]
        j0 = cpu_seconds(self.janus_pid)[0] if self.janus_pid else 0.0
        m0, p0, w0 = machine_busy(), time.process_time(), time.monotonic()
        time.sleep(seconds)
        c1 = [cpu_seconds(c.pid) for c in self.ours]
        j1 = cpu_seconds(self.janus_pid)[0] if self.janus_pid else 0.0
        m1, p1, wall = machine_busy(), time.process_time(), time.monotonic() - w0
        s1 = self.server.ask("state")
        fps = (s1["encoded"] - s0["encoded"]) / wall
        feeds = min((n - s0["received"].get(k, 0)) / wall for k, n in s1["received"].items())
        d = [[(b - a) / wall for a, b in zip(x, y, strict=True)]
             for x, y in zip(c0, c1, strict=True)]
        janus = (j1 - j0) / wall
        ours = sum(x[0] for x in d) + (p1 - p0) / wall + janus
        return Window(d[0][0], d[0][1], d[0][2], sum(x[0] for x in d[2:]), d[1][0],
                      (m1 - m0) / wall, (m1 - m0) / wall - ours, fps, feeds, s1["lag_ms"],
                      s1["feeds"],
                      abs(fps - s1["fps"]) <= RATE_SLACK * s1["fps"]
                      and feeds >= (1 - RATE_SLACK) * SOURCE_FPS, janus)

    def hold(self, n: int) -> None:
        """Bring the viewers to ``n`` (more, or none), settled, every one watching."""
        if n > self.watching:
            t, k = time.monotonic(), n - self.watching
            procs = self.viewer_procs
            share = [k // len(procs) + (i < k % len(procs)) for i in range(len(procs))]
            for p, m in zip(procs, share, strict=True):
                p.conn.send(("add", m))
            errors = [e for p in procs for e in p.reply()]
            if errors:
                raise RuntimeError(f"{len(errors)} of {k} viewers did not join: {errors[0]}")
            log(f"  {k} joined in {time.monotonic() - t:.1f} s")
        elif n < self.watching:
            assert n == 0
            for p in self.viewer_procs:
                p.conn.send(("close",))
            for p in self.viewer_procs:
                p.reply()
            wait_until("the gateway drops the viewers that left",
                       lambda: self.server.ask("state")["viewers"] == 0, DROP_S)
        self.watching = n
        time.sleep(self.settle_s)
        viewers = self.server.ask("state")["viewers"]
        if viewers != n:
            raise RuntimeError(f"the gateway has {viewers} viewers, not {n}")

    def measure(self, n: int, want: int, seconds: float | None = None) -> Group:
        self.hold(n)
        first = [p.ask("snap") for p in self.viewer_procs]
        windows: list[Window] = []
        while sum(w.clean for w in windows) < want and \
                sum(not w.clean for w in windows) <= RETRIES:
            windows.append(self.window(seconds or self.window_s))
        last = [p.ask("snap") for p in self.viewer_procs]
        clean = [w for w in windows if w.clean]
        per: list[dict[str, float]] = []
        lost = keyless = failed = 0
        for a, b in zip(first, last, strict=True):
            dt = b["t"] - a["t"]
            for va, vb in zip(a["viewers"], b["viewers"], strict=True):
                def rate(kind: str, what: str, va: Any = va, vb: Any = vb,
                         dt: float = dt) -> float:
                    return float(vb[kind][what] - va[kind][what]) / dt
                per.append({"kbps": rate("video", "bytes") * 8 / 1000,
                            "fps": rate("video", "frames"), "afps": rate("audio", "frames"),
                            "vpps": rate("video", "packets"),
                            "pps": rate("video", "packets") + rate("audio", "packets")})
                lost += vb["lost"] - va["lost"]
                failed += vb["state"] != "connected"
                keyless += vb["video"]["first_is_key"] is False
        if len(per) != n:
            raise RuntimeError(f"{len(per)} viewers report, {n} expected")

        def low(key: str) -> float:
            return min((p[key] for p in per), default=0.0)

        group = Group(n, clean if len(clean) >= want else windows, len(clean) >= want,
                      len(windows), (low("kbps"), max((p["kbps"] for p in per), default=0.0)),
                      low("fps"), low("afps"), low("vpps"),
                      statistics.median(p["pps"] for p in per) if per else 0.0, lost,
                      rss_mb(self.server.pid), keyless, failed)
        others = statistics.median(w.others_cores for w in windows)
        log(f"  {n:3d} viewers: server {group.cores:.3f} cores (loop {group.loop_cores:.3f},"
            f" kernel {group.median(lambda w: w.kernel_cores):.3f}), programme "
            f"{group.median(lambda w: w.fps):.1f} fps (feeds "
            f"{group.median(lambda w: w.feeds_fps):.1f}), {sum(w.clean for w in windows)}/"
            f"{len(windows)} windows at rate, loop late <= "
            f"{max(w.lag_ms for w in windows):.0f} ms, feeds "
            f"{'/'.join(windows[-1].feeds.values())}; principals "
            f"{group.median(lambda w: w.principals_cores):.2f}, janus "
            f"{group.median(lambda w: w.janus_cores):.3f}, viewers "
            f"{group.median(lambda w: w.viewers_cores):.2f}, others {others:.2f} cores;"
            f" each viewer >= "
            f"{group.video_kbps[0]:.0f} kbps, {group.video_pps:.0f} video pkt/s, "
            f"{group.video_fps:.1f} fps, {group.audio_fps:.1f} audio/s; {lost} lost; "
            f"{failed} not connected; "
            f"rss {group.rss_mb:.0f} MB")
        return group


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def quiet() -> None:
    """Wait (a bounded time) for the machine to be free of other work: it is shared."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while True:
        m0, p0 = machine_busy(), time.process_time()
        time.sleep(2)
        others = (machine_busy() - m0 - (time.process_time() - p0)) / 2
        if others < QUIET_CORES or time.monotonic() > deadline:
            break
        log(f"the machine is busy with other work ({others:.2f} cores); waiting")
    log(f"other work on the machine: {others:.2f} cores")


def on_air(args: argparse.Namespace, via: str, workdir: str,
           children: list[Child]) -> tuple[Child, Child, Bench]:
    """The server (``via`` "gateway", or "janus": a real Janus beside it) with the two
    principals' programme on air, and ``args.viewer_processes`` viewer processes ready;
    each process started is appended to ``children``, for the caller to stop."""
    w, h = (int(v) for v in args.source.split("x"))
    server = Child(server_process, workdir, args.loop, via)
    children.append(server)
    started = server.reply(START_S)
    if started is None:
        raise RuntimeError(f"the server ({via}) did not start")
    base = started["base"]
    principals = Child(principals_process, base, (w, h), args.detail)
    children.append(principals)
    joined = principals.reply(START_S)
    wait_until("both principals' feeds reach the programme", lambda: (
        (s := server.ask("state")) and len(s["received"]) == 2
        and min(s["received"].values()) > 30 and s["encoded"] > 30), START_S)
    log(f"{via}: server pid {server.pid} ({args.loop}), janus pid {started['janus_pid']}: "
        f"the programme of {joined['call']} is on air ({args.source} feeds, detail "
        f"{args.detail})")
    viewer_procs = [Child(viewers_process, base, joined["call"], joined["token"], via)
                    for _ in range(args.viewer_processes)]
    children.extend(viewer_procs)
    return server, principals, Bench(server, [principals, *viewer_procs], viewer_procs,
                                     args.window_s, args.settle_s, started["janus_pid"])


def grow(bench: Bench, steps: list[int], windows: int) -> tuple[list[Group], str | None]:
    """Measured at each number of viewers of ``steps``, as far as the machine allows;
    what stopped the growth, if anything."""
    growth: list[Group] = []
    for n in steps:
        try:
            growth.append(bench.measure(n, windows))
        except (RuntimeError, TimeoutError) as exc:
            stopped = f"at {n} viewers: {exc}"
            log(f"  stopped {stopped}")
            return growth, stopped
    return growth, None


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    quiet()
    children: list[Child] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server, principals, bench = on_air(args, "gateway", tmp, children)
            log("warm-up (not counted):")
            bench.measure(0, 1)
            log("the first viewer, joining and leaving:")
            first = [bench.measure(n, 1, args.pair_window_s)
                     for _ in range(args.pairs) for n in (0, 1)]
            first.append(bench.measure(0, 1, args.pair_window_s))
            log("viewers growing:")
            growth, stopped = grow(bench, args.steps, args.windows)
            log("every viewer leaves:")
            t = time.monotonic()
            bench.settle_s = 0
            left = None
            try:
                bench.hold(0)
            except (RuntimeError, TimeoutError) as exc:  # a defect to report, not a crash
                left = str(exc)
                log(f"  {left}")
                bench.watching = 0
            dropped_s = time.monotonic() - t
            bench.settle_s = args.settle_s
            time.sleep(args.settle_s)
            after = bench.measure(0, args.windows) if left is None else None
            end = server.ask("state")
            ending = {"gateway_viewers": end["viewers"], "subscribers": end["subscribers"],
                      "not_dropped": left,
                      "server_threads": end["threads"], "gateway_feeds": end["feeds"],
                      "gateway_readers_ended": end["readers_done"],
                      "principals": principals.ask("state")}
            log(f"  at the end: {ending}")
        finally:
            for child in reversed(children):
                child.stop()
    return report(args, first, growth, after, dropped_s, ending, stopped)


def press_path(args: argparse.Namespace, via: str, steps: list[int],
               tmp: Path) -> tuple[Group, list[Group], str | None]:
    """One press path (the gateway's own viewers, or Janus's) on a programme of its own:
    no viewer, then ``steps`` viewers; what stopped the growth, if anything."""
    children: list[Child] = []
    try:
        _, _, bench = on_air(args, via, str(tmp / via), children)
        log("warm-up (not counted):")
        bench.measure(0, 1)
        zero = bench.measure(0, args.windows)
        growth, stopped = grow(bench, steps, args.windows)
        return zero, growth, stopped
    finally:
        for child in reversed(children):
            child.stop()


def run_janus(args: argparse.Namespace) -> dict[str, Any]:
    """--via janus: CPU per viewer of the whole press path (the server and Janus), and
    the same for the gateway's own viewers as the baseline, measured in this run."""
    quiet()
    with tempfile.TemporaryDirectory() as tmp:
        base0, base_growth, base_stopped = press_path(args, "gateway", args.baseline_steps,
                                                      Path(tmp))
        zero, growth, stopped = press_path(args, "janus", args.steps, Path(tmp))

    def press(g: Group) -> float:  # the server's process and Janus's
        return g.median(lambda w: w.cores + w.janus_cores)

    def janus(g: Group) -> float:
        return g.median(lambda w: w.janus_cores)

    def row(g: Group, g0: Group) -> dict[str, Any]:
        return {"viewers": g.viewers, "served": g.clean,
                "press_cores": round(press(g), 3),
                "server_cores": round(g.cores, 3),
                "janus_cores": round(g.median(lambda w: w.janus_cores), 3),
                "per_viewer": round((press(g) - press(g0)) / g.viewers, 5),
                # apart: the server's share moves with the programme's own rate on a
                # busy machine; Janus's is all fan-out
                "server_per_viewer": round((g.cores - g0.cores) / g.viewers, 5),
                "janus_per_viewer": round((janus(g) - janus(g0)) / g.viewers, 5),
                "programme_fps": round(g.median(lambda w: w.fps), 1),
                "min_video_fps": round(g.video_fps, 1), "min_audio_fps": round(g.audio_fps, 1),
                "min_video_kbps": round(g.video_kbps[0], 1), "lost": g.lost,
                "not_connected": g.failed, "keyless": g.keyless,
                "viewers_cores": round(g.median(lambda w: w.viewers_cores), 2),
                "others_cores": round(g.median(lambda w: w.others_cores), 2)}

    def pick(groups: list[Group]) -> Group | None:
        """The largest number of viewers served at the programme's full rate, every one
        connected; else (a machine busy with other work) the largest with every one
        connected, flagged in the report as not at full rate."""
        connected = [g for g in groups if not g.failed]
        clean = [g for g in connected if g.clean]
        return (clean or connected or [None])[-1]

    top, base_top = pick(growth), pick(base_growth)
    if top is None or base_top is None:
        raise RuntimeError(f"could not measure: janus {stopped}, gateway {base_stopped}")
    value = (press(top) - press(zero)) / top.viewers
    baseline = (press(base_top) - press(base0)) / base_top.viewers
    wanted = max(args.steps)
    measured = top.viewers == wanted
    return {
        "bench": "press_fanout", "via": "janus", "unit": "cores per viewer",
        "value": round(value, 5), "baseline": round(baseline, 5),
        "ratio": round(value / baseline, 3) if baseline > 0 else None,
        "aim": "200 viewers per core through Janus (0.005 cores per viewer)",
        "viewers_per_core": round(1 / value) if value > 0 else None,
        "baseline_viewers_per_core": round(1 / baseline) if baseline > 0 else None,
        "runs": args.windows, "window_s": args.window_s, "machine": f"{os.cpu_count()} cores",
        "janus_value": round((janus(top) - janus(zero)) / top.viewers, 5),
        "server_value": round((top.cores - zero.cores) / top.viewers, 5),
        "value_at": top.viewers, "baseline_at": base_top.viewers,
        "value_at_full_rate": top.clean, "baseline_at_full_rate": base_top.clean,
        "press_cores_at_0": round(press(zero), 3),
        "gateway_cores_at_0": round(press(base0), 3),
        f"press_cores_at_{wanted}": round(press(top) if measured
                                          else press(zero) + wanted * value, 3),
        f"press_cores_at_{wanted}_measured": measured,
        "extrapolated": None if measured else (
            f"{wanted} viewers did not fit on this machine beside their own receivers "
            f"({stopped or 'not served at full rate'}); the figure at {wanted} is "
            f"cpu(0) + {wanted} x the per-viewer cost measured at {top.viewers}"),
        "series": [row(g, zero) for g in growth],
        "baseline_series": [row(g, base0) for g in base_growth],
        "stopped": stopped, "baseline_stopped": base_stopped,
        "event_loop": args.loop, "sources": f"{args.source}, detail {args.detail}",
    }


def report(args: argparse.Namespace, first: list[Group], growth: list[Group],
           after: Group | None,
           dropped_s: float, end: dict[str, Any], stopped: str | None) -> dict[str, Any]:
    zeros = [g for g in first if g.viewers == 0]
    ones = [g for g in first if g.viewers == 1]
    cpu0 = statistics.median(g.cores for g in zeros)
    loop0 = statistics.median(g.loop_cores for g in zeros)
    # the first viewer: each window with it against the mean of the windows around it
    pairs = [one.cores - (a.cores + b.cores) / 2
             for one, a, b in zip(ones, zeros, zeros[1:], strict=False)]
    loop_pairs = [one.loop_cores - (a.loop_cores + b.loop_cores) / 2
                  for one, a, b in zip(ones, zeros, zeros[1:], strict=False)]
    served = [g for g in growth if g.clean]  # at the programme's full rate
    if not served:
        raise RuntimeError("could not measure: the programme lost its rate at "
                           f"{growth[0].viewers if growth else 'a few'} viewers ({stopped})")
    top = served[-1]
    saturated = next((g.viewers for g in growth if not g.clean), None)
    # per viewer: the event loop's thread, where all of the fan-out runs (packing, SRTP,
    # sendto, RTCP); the whole process's figure also carries the encoders' variations
    value = (top.loop_cores - loop0) / top.viewers
    baseline = statistics.median(loop_pairs)
    process_value = (top.cores - cpu0) / top.viewers
    measured = top.viewers == 100
    at_100 = top.cores if measured else cpu0 + 100 * value
    everyone = ones + served

    def series(g: Group) -> dict[str, Any]:
        return {"viewers": g.viewers, "served": g.clean,
                "loop_cores": round(g.loop_cores, 4), "cores": round(g.cores, 4),
                "per_viewer": round((g.loop_cores - loop0) / g.viewers, 5),
                "process_per_viewer": round((g.cores - cpu0) / g.viewers, 5),
                "programme_fps": round(g.median(lambda w: w.fps), 1),
                "feeds_fps": round(g.median(lambda w: w.feeds_fps), 1),
                "loop_late_ms": round(max(w.lag_ms for w in g.windows)),
                "feeds": "/".join(g.windows[-1].feeds.values()),
                "min_video_kbps": round(g.video_kbps[0], 1),
                "max_video_kbps": round(g.video_kbps[1], 1),
                "min_video_pps": round(g.video_pps, 1), "median_pps": round(g.pps, 1),
                "min_video_fps": round(g.video_fps, 1), "min_audio_fps": round(g.audio_fps, 1),
                "lost": g.lost, "not_connected": g.failed, "rss_mb": round(g.rss_mb, 1),
                "viewers_cores": round(g.median(lambda w: w.viewers_cores), 2),
                "principals_cores": round(g.median(lambda w: w.principals_cores), 2),
                "machine_cores": round(g.median(lambda w: w.machine_cores), 2),
                "others_cores": round(g.median(lambda w: w.others_cores), 2),
                "windows": len(g.windows)}

    return {
        "bench": "press_fanout", "unit": "cores per viewer",
        "value": round(value, 5), "baseline": round(baseline, 5),
        "ratio": round(value / baseline, 2) if baseline > 0 else None,
        "aim": "100 viewers of 640x480 VP8 within one core",
        "runs": args.windows, "baseline_pairs": args.pairs, "window_s": args.window_s,
        "machine": f"{os.cpu_count()} cores",
        "viewers": top.viewers, "saturated_at": saturated,
        "cores_at_0": round(cpu0, 3), "loop_cores_at_0": round(loop0, 3),
        "cores_at_100": round(at_100, 3), "cores_at_100_measured": measured,
        "loop_cores_at_100": round(top.loop_cores if measured else loop0 + 100 * value, 3),
        "within_one_core": at_100 <= 1.0,
        "process_value": round(process_value, 5),
        "process_baseline": round(statistics.median(pairs), 5),
        "us_per_packet": round(value / top.pps * 1e6, 1) if top.pps else None,
        "first_viewer": [round(p, 4) for p in loop_pairs],
        "process_first_viewer": [round(p, 4) for p in pairs],
        "programme_kbps": round(statistics.median(g.video_kbps[1] for g in everyone), 1),
        "programme_target_kbps": VIDEO_BITRATE // 1000,
        "programme_size": f"{WIDTH}x{HEIGHT}", "sources": f"{args.source}, detail {args.detail}",
        "event_loop": args.loop,
        "min_video_kbps": round(min(g.video_kbps[0] for g in everyone), 1),
        "min_video_fps": round(min(g.video_fps for g in everyone), 1),
        "min_audio_fps": round(min(g.audio_fps for g in everyone), 1),
        "lost_packets": sum(g.lost for g in everyone),
        "viewers_starting_without_keyframe": max(g.keyless for g in everyone),
        "series": [series(g) for g in growth],
        "after_all_left": {"dropped_within_s": round(dropped_s, 1), **({
            "loop_cores": round(after.loop_cores, 4), "cores": round(after.cores, 4),
            "rss_mb": round(after.rss_mb, 1),
            "feeds_fps": round(after.median(lambda w: w.feeds_fps), 1)} if after else {}),
            **end},
        "stopped": stopped,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=lambda s: [int(v) for v in s.split(",")],
                   default=[10, 25, 50, 100],
                   help="viewer counts after the first (10,25,50,100)")
    p.add_argument("--windows", type=int, default=3, help="measured windows per step (3)")
    p.add_argument("--pairs", type=int, default=4,
                   help="alternations of 0 and 1 viewer for the baseline (4)")
    p.add_argument("--window-s", type=float, default=5.0, help="length of a window (5 s)")
    p.add_argument("--pair-window-s", type=float, default=8.0,
                   help="length of a window of the baseline's alternation (8 s)")
    p.add_argument("--settle-s", type=float, default=3.0, help="wait before measuring (3 s)")
    p.add_argument("--viewer-processes", type=int, default=VIEWER_PROCESSES)
    p.add_argument("--source", default="320x240", help="the principals' pictures (320x240)")
    p.add_argument("--detail", type=int, default=DETAIL,
                   help=f"per-frame detail on them, 0 for the plain pattern ({DETAIL})")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="the server's event loop; auto: uvloop if installed, as uvicorn "
                        "(summitline serve) chooses")
    p.add_argument("--via", choices=["gateway", "janus"], default="gateway",
                   help="janus: the whole press path through a real Janus (its process "
                   "included), against the gateway's own viewers (the baseline)")
    p.add_argument("--baseline-steps", type=lambda s: [int(v) for v in s.split(",")],
                   default=[25, 50], help="--via janus: the gateway's viewers (25,50)")
    args = p.parse_args()
    if args.via == "janus" and "--steps" not in sys.argv:
        args.steps = [50, 100, 200]
    if args.loop == "auto":
        args.loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(run_janus(args) if args.via == "janus" else run_bench(args)))


if __name__ == "__main__":
    main()

"""Interpretation: the latency the interpreter's hop adds, the silence at a handover, and
the floor's frequency response as an interpreter hears it.

Four Python endpoints, each in a process of its own, on loopback: the US principal
(English), the Russian principal (the listener), and two Russian booth partners whose
voices are parrots (they repeat the floor at once, so what is measured is the path, not
a person). CLOCK_MONOTONIC is shared: the US principal's track notes when each burst of
noise leaves it (a frame is handed out once its last sample is due, as a microphone
gives it).

- value: median latency from a burst leaving the US principal to its onset in the
  Russian principal's channel audio (principal -> interpreter -> principal).
- baseline: the same for the direct floor audio (principal -> principal), same run.
- added_ms: value - baseline (aim < 60 ms on loopback).
- handover_silence_ms: the longest silence in what the Russian principal hears of the
  channel (client/listening.py picks one voice at a time) around a handover, while the
  US principal speaks without pause (the sound check); the largest over the handovers
  (aim < 20 ms). The listener never plays both voices at once. steady_silence_ms is
  the same figure over as long a stretch of steady interpretation just before each
  handover: the dropped frames the path has anyway, for comparison.
- freq_response_db: meanwhile the US principal's floor is the sound check
  (client/soundcheck.py: ten tones from 125 Hz to 15 kHz); each interpreter reads the
  level of every tone in the last second it heard, against the tone at 1 kHz. The
  largest departure of either (aim <= 3 dB).

Runs inside a fresh network namespace with only loopback.
Usage: python bench/interpretation.py [--bursts N] [--handovers N]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import logging
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AUDIO_PTIME

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for bench._endpoint

from bench import _endpoint  # noqa: E402
from summitline import netns
from summitline.client import soundcheck
from summitline.client.bilateral import Bilateral, provision
from summitline.client.media import AUDIO_RATE
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings
from summitline.server.run import running

FRAME = int(AUDIO_RATE * AUDIO_PTIME)  # 960 samples, 20 ms
BURST_MS = 10
ONSET = 0.05  # |sample| above 5 % of full scale after quiet: a burst begins
QUIET_MS = 150  # this much below ONSET before an onset counts
TIMEOUT_S = 30.0
SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no event loop inherited


class BurstTrack(MediaStreamTrack):
    """Silence with short bursts of noise at irregular times; notes when each leaves."""

    kind = "audio"

    def __init__(self, seed: int = 7) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.sent: list[float] = []  # monotonic time of each burst's first sample
        self._samples = 0
        self._start: float | None = None
        self._next = int(0.5 * AUDIO_RATE)

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        # As a microphone gives it: a frame once its last sample is captured. (Handed out
        # at its first sample's time, a frame's sounds left 20 ms before they were made,
        # and the direct path measured less than nothing.)
        first = self._start + self._samples / AUDIO_RATE
        await asyncio.sleep(max(0.0, first + FRAME / AUDIO_RATE - time.monotonic()))
        pcm = np.zeros(FRAME, dtype=np.int16)
        offset = self._next - self._samples
        if 0 <= offset < FRAME:
            n = min(FRAME - offset, AUDIO_RATE * BURST_MS // 1000)
            pcm[offset: offset + n] = (np.random.default_rng(len(self.sent))
                                       .uniform(-0.6, 0.6, n) * 32767).astype(np.int16)
            self.sent.append(first + offset / AUDIO_RATE)
            self._next += int(self.rng.uniform(0.35, 0.6) * AUDIO_RATE)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, self._samples
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._samples += FRAME
        return frame


class Onsets:
    """Burst onsets in one received stream, timed to the sample from frame arrivals
    (a frame arrives when its last sample is available)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._quiet = QUIET_MS / 1000

    def feed(self, frame: av.AudioFrame, arrived: float) -> None:
        pcm = frame.to_ndarray().reshape(-1)
        if frame.layout.name == "stereo":
            pcm = pcm[::2]
        pcm = np.abs(pcm.astype(np.float32)) / 32768
        n = len(pcm)
        for i in np.flatnonzero(pcm > ONSET):
            t = arrived - (n - i) / AUDIO_RATE
            if not self.times or t - self._last > self._quiet:
                self.times.append(t)
            self._last = t
        if not len(np.flatnonzero(pcm > ONSET)):
            return

    _last = -1e9


def latencies(sent: list[float], heard: list[float]) -> list[float]:
    """For each burst sent, ms until its onset was heard (first onset within 1 s)."""
    out = []
    for s in sent:
        later = [h - s for h in heard if 0 <= h - s < 1.0]
        if later:
            out.append(1000 * min(later))
    return out


class Endpoint:
    """An endpoint in a process of its own (bench/_endpoint.py), driven over a pipe."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.proc = SPAWN.Process(target=_endpoint.run, args=(child, spec), daemon=True)
        self.proc.start()

    async def ask(self, *command: Any) -> Any:
        self.conn.send(command)
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(None, self.conn.recv), 150)

    async def stop(self) -> None:
        await self.ask("stop")
        self.proc.join(10)


async def four_endpoints(http: httpx.AsyncClient, ws: str, floor_voice: str
                         ) -> tuple[Bilateral, dict[str, Endpoint], dict[str, str]]:
    """The US principal (``floor_voice``), the Russian principal (listening to the Russian
    channel), and two Russian booth partners with parrot voices, each its own process."""
    k1, k2 = PrivateKey.generate(), PrivateKey.generate()
    call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter 1"),
                                        (1, k2, Role.INTERPRETER, "RU interpreter 2")])
    await call.a.operator.control(call.call, "start")
    pins = {d: k.b64u for d, k in call.b.operator.pinned.items()}

    def spec(key: PrivateKey, voice: str, listen: str | None = None) -> dict[str, Any]:
        return {"key": key.to_pem().decode(), "pins": pins, "ws": ws, "call": call.call,
                "voice": voice, "listen": listen, "floor": call.a.principal.fingerprint}

    endpoints = {"us": Endpoint(spec(call.a.principal, floor_voice)),
                 "ru": Endpoint(spec(call.b.principal, "none", listen="ru")),
                 "i1": Endpoint(spec(k1, "parrot")), "i2": Endpoint(spec(k2, "parrot"))}
    for e in endpoints.values():
        await e.ask("ready", 3)
    ids = {"us": call.a.principal.fingerprint, "i1": k1.fingerprint, "i2": k2.fingerprint}
    return call, endpoints, ids


async def finish(call: Bilateral, endpoints: dict[str, Endpoint]) -> None:
    await call.a.operator.control(call.call, "end")
    for e in endpoints.values():
        await e.stop()


async def measure_latency(http: httpx.AsyncClient, ws: str, bursts: int) -> dict[str, Any]:
    call, ep, ids = await four_endpoints(http, ws, "bursts")
    await ep["i1"].ask("live")
    start = await ep["us"].ask("bursts", 0)
    await ep["us"].ask("bursts", start + bursts + 2)
    us, ru = await ep["us"].ask("report"), await ep["ru"].ask("report")
    await finish(call, ep)
    sent = us["sent"][start: start + bursts]
    d = latencies(sent, ru["onsets"].get(ids["us"], []))
    i = latencies(sent, ru["onsets"].get(ids["i1"], []))
    print(f"latency: {len(d)}/{len(sent)} bursts heard directly, {len(i)} through the "
          f"interpreter", file=sys.stderr)
    if len(d) < bursts // 2 or len(i) < bursts // 2:
        raise RuntimeError("too few bursts were heard to measure")
    return {"direct": d, "interpreted": i}


def longest_silence_ms(played: list[tuple[float, str, bool]]) -> float:
    run = longest = 0
    for _, _, loud in played:
        run = 0 if loud else run + 1
        longest = max(longest, run)
    return longest * 1000 * AUDIO_PTIME


async def measure_handover(http: httpx.AsyncClient, ws: str, handovers: int
                           ) -> tuple[list[float], list[float], list[dict[int, float]]]:
    # The floor is the sound check (client/soundcheck.py): continuous, so any gap is
    # silence, and the interpreters read its frequency response as they hear it.
    call, ep, ids = await four_endpoints(http, ws, "soundcheck")
    await ep["i1"].ask("live")
    await ep["ru"].ask("await_playing", ids["i1"])
    live, partner = "i1", "i2"
    marks: list[tuple[int, int]] = []
    for n in range(handovers):
        mark = await ep["ru"].ask("settle", 1.0)  # a second of steady interpretation
        await ep[live].ask("handover", ids[partner])
        await ep["ru"].ask("await_playing", ids[partner])
        end = await ep["ru"].ask("settle", 0.3)
        marks.append((mark, end))
        print(f"handover {n + 1} done", file=sys.stderr)
        live, partner = partner, live
    played = (await ep["ru"].ask("report"))["played"]
    heard = [(await ep[i].ask("report"))["floor_levels"] for i in ("i1", "i2")]
    await finish(call, ep)
    if None in heard:
        raise RuntimeError("an interpreter heard too little of the floor to measure")
    gaps, steady = [], []
    for mark, end in marks:
        # silence is what was played without speech: the longest run of silent frames
        # (20 ms each) from the handover on; and, as its reference, the same over as
        # many frames of steady interpretation just before
        gaps.append(longest_silence_ms(played[mark:end]))
        steady.append(longest_silence_ms(played[max(0, 2 * mark - end):mark]))
    print(f"silence at handovers {gaps} ms; steady before them {steady} ms", file=sys.stderr)
    print(f"floor as the interpreters hear it (dB against 1 kHz; 0: 1 kHz in dBFS): {heard}",
          file=sys.stderr)
    return gaps, steady, heard


async def measure(bursts: int, handovers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with running(Settings(data_dir=Path(tmp))) as base, \
                httpx.AsyncClient(base_url=base) as http:
            ws = base.replace("http", "ws", 1) + "/ws"
            lat = await measure_latency(http, ws, bursts)
            gaps, steady, heard = await measure_handover(http, ws, handovers)
    value, baseline = statistics.median(lat["interpreted"]), statistics.median(lat["direct"])
    added = [i - d for i, d in zip(sorted(lat["interpreted"]), sorted(lat["direct"]),
                                   strict=False)]
    return {"bench": "interpretation", "unit": "ms", "value": round(value, 1),
            "baseline": round(baseline, 1), "ratio": round(value / baseline, 2),
            "added_ms": round(value - baseline, 1),
            "added_p90_ms": round(statistics.quantiles(added, n=10)[-1], 1),
            "handover_silence_ms": round(max(gaps), 1),
            "handover_silence_median_ms": round(statistics.median(gaps), 1),
            "steady_silence_ms": round(max(steady), 1),
            "freq_response_db": round(max(soundcheck.worst_deviation_db(h) for h in heard), 2),
            "freq_band_hz": [min(soundcheck.TONES_HZ), max(soundcheck.TONES_HZ)],
            "aim": "added_ms < 60, handover_silence_ms < 20, freq_response_db <= 3",
            "runs": len(lat["direct"]),
            "handovers": len(gaps), "machine": f"{os.cpu_count()} cores",
            "processes": "one per endpoint"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bursts", type=int, default=30, help="bursts measured (default 30)")
    p.add_argument("--handovers", type=int, default=10, help="handovers (default 10)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    netns.isolate()
    print(json.dumps(asyncio.run(measure(args.bursts, args.handovers))))


if __name__ == "__main__":
    main()

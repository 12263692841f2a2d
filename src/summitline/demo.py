"""``summitline demo``: a whole bilateral call (or a briefing) on this machine, headless.

Starts the server on loopback, provisions two delegations, a link and a co-signed plan,
joins two principals with synthetic audio and video (ICE host candidates on 127.0.0.1
only, no STUN or TURN: nothing leaves loopback), holds the call, ends it, has both
delegations sign the record, exports it and verifies it.

``--briefing N`` does the same for a briefing of N delegations (client/briefing.py): the
United States hosting France, Germany, Italy, the United Kingdom and then further allies,
one principal each, every pair of principals linked peer-to-peer (a mesh).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from summitline.client.bilateral import Bilateral, provision
from summitline.client.briefing import Briefing, provision_briefing
from summitline.client.closing import guard_decoders
from summitline.client.ice import loopback
from summitline.client.operator import Operator
from summitline.client.session import CallSession
from summitline.core.record import Entry, summary, verify_export
from summitline.core.roles import MediaKind
from summitline.core.sas import plan_group_code
from summitline.report import and_list
from summitline.server.app import Settings
from summitline.server.run import running

# Time for two aiortc endpoints to connect and decode a first frame on a busy 2-core
# machine; far above the ~0.3 s it takes, so that a timeout means a fault.
FIRST_FRAME_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 10.0  # two WebSocket handshakes and hellos on loopback
# Each step of the end (the sessions seeing it, each leaving): a session leaves by closing
# its peer connections, which client/closing.py bounds at 2 s each.
END_TIMEOUT_S = 10.0
# A briefing of up to eight endpoints in this one process: each sets up a link with every
# other (28 links at eight), all encoding and decoding on the same two cores. About 2 s
# at five (bench/briefing.py); far above, so that a timeout means a fault.
BRIEFING_FIRST_FRAMES_TIMEOUT_S = 90.0
BRIEFING_JOIN_TIMEOUT_S = 20.0
# How each delegation of client/briefing.py is named on the progress line.
SHORT_NAMES = {"United States": "US", "France": "FR", "Germany": "DE", "Italy": "IT",
               "United Kingdom": "UK", "Canada": "CA", "Poland": "PL", "Japan": "JP"}


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d} UTC"


def _progress(out: TextIO, elapsed: float, total: float, sessions: list[CallSession]) -> None:
    a, b = sessions
    line = (f"  in call {elapsed:5.1f}/{total:.0f} s | US receives {a.frames(MediaKind.VIDEO)} "
            f"video / {a.frames(MediaKind.AUDIO)} audio frames | RU receives "
            f"{b.frames(MediaKind.VIDEO)} video / {b.frames(MediaKind.AUDIO)} audio frames")
    for who, s in zip(("US", "RU"), sessions, strict=True):
        for seconds in s.reconnecting().values():
            line += f" | {who}: media lost, reconnecting {seconds:.1f} s"
    # One line rewritten in place on a terminal; a line every step in a log.
    out.write(f"\r{line} " if out.isatty() else f"{line}\n")
    out.flush()


async def _or_stop(waited: Awaitable[object], stop: asyncio.Future[int],
                   timeout_s: float) -> bool:
    """Wait for ``waited`` within ``timeout_s``; False, with it cancelled, if ``stop``
    came first."""
    task: asyncio.Future[Any] = asyncio.ensure_future(waited)
    either: set[asyncio.Future[Any]] = {task, stop}
    done, _ = await asyncio.wait(either, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        return True
    task.cancel()
    await asyncio.wait({task}, timeout=timeout_s)  # a cancelled wait ends at once
    if stop.done():
        return False
    raise TimeoutError(f"not within {timeout_s:.0f} s")


async def _hold(call: Bilateral, sessions: list[CallSession], seconds: float, out: TextIO,
                stop: asyncio.Future[int]) -> float | None:
    """Join, start, hold the call ``seconds`` once media flows. Returns how long it was
    held when a signal cut it short (None: not cut short)."""
    if not await _or_stop(asyncio.gather(*(s.joined.wait() for s in sessions)), stop,
                          JOIN_TIMEOUT_S):
        return 0.0
    print("  both principals joined; the US operator starts the call", file=out)
    await call.a.operator.control(call.call, "start")

    def video_arrived(s: CallSession) -> Callable[[], bool]:
        return lambda: s.frames(MediaKind.VIDEO) > 0

    if not await _or_stop(asyncio.gather(*(s.wait_for(video_arrived(s)) for s in sessions)),
                          stop, FIRST_FRAME_TIMEOUT_S):
        return 0.0
    for s, peer in ((sessions[0], call.b.principal.fingerprint),
                    (sessions[1], call.a.principal.fingerprint)):
        print(f"  media flowing; short authentication string on {s.device[:8]}: "
              f"{s.short_authentication_string(peer)}", file=out)
    start = time.monotonic()
    step = 0.5 if out.isatty() else 2.0
    while (elapsed := time.monotonic() - start) < seconds:
        _progress(out, elapsed, seconds, sessions)
        await asyncio.wait({stop}, timeout=min(step, seconds - elapsed))
        if stop.done():
            held = time.monotonic() - start
            _progress(out, held, seconds, sessions)
            return held
    _progress(out, seconds, seconds, sessions)
    return None


async def _end(operator: Operator, call: str, sessions: list[CallSession],
               tasks: list[asyncio.Task[None]], out: TextIO) -> None:
    """End the call and leave, bounded (a planned call that never started ends too)."""
    for s in sessions:
        # Both ends at once: closing one end makes the other stop its decoders (RTCP
        # BYE), which must not wait on a busy decoder thread either (client/closing.py).
        for link in s.links.values():
            guard_decoders(link.pc)
    await operator.control(call, "end")
    done, pending = await asyncio.wait(tasks, timeout=END_TIMEOUT_S) if tasks else (set(), set())
    for task in pending:
        print("  a principal did not see the end in time; leaving anyway", file=out)
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            print(f"  a principal's session failed: {task.exception()!r}", file=out)
    for s in sessions:
        async with asyncio.timeout(END_TIMEOUT_S):
            await s.leave()


async def _wind_up(held: float | None, stop: asyncio.Future[int], out: TextIO,
                   operator: Operator, call: str, sessions: list[CallSession],
                   tasks: list[asyncio.Task[None]]) -> None:
    """After the call was held (or cut short by a signal: said so), end it and leave;
    the same for the bilateral and the briefing."""
    if out.isatty():
        out.write("\n")
    if stop.done():
        when = f"after {held:.1f} s of media" if held else "before media flowed"
        print(f"  {signal.Signals(stop.result()).name}: ending the call {when} "
              "(a second signal aborts at once)", file=out, flush=True)
    await _end(operator, call, sessions, tasks, out)


async def run_demo(seconds: float, data_dir: Path | None, export: Path | None,
                   out: TextIO = sys.stdout, stop: asyncio.Future[int] | None = None) -> int:
    """``stop`` resolves to a signal number to end the call early (the record is still
    signed, exported and verified)."""
    if stop is None:
        stop = asyncio.get_running_loop().create_future()
    held: float | None = None
    with tempfile.TemporaryDirectory(prefix="summitline-demo-") as tmp:
        settings = Settings(data_dir=data_dir or Path(tmp))
        async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
            print(f"summitline demo: server on {base} (loopback only), data in "
                  f"{settings.data_dir}", file=out)
            call = await provision(http)
            print(f"  delegations linked ({call.link_id}); plan {call.plan.hash[:16]} "
                  "signed by both", file=out)
            ws = base.replace("http", "ws", 1) + "/ws"
            sessions = [] if stop.done() else [
                CallSession(ws, call.call, side.identity(), ice=loopback())
                for side in (call.a, call.b)]
            tasks = [asyncio.create_task(s.run()) for s in sessions]
            try:
                held = await _hold(call, sessions, seconds, out, stop) if sessions else 0.0
            finally:
                await _wind_up(held, stop, out, call.a.operator, call.call, sessions, tasks)
            for side in (call.a, call.b):
                await side.operator.sign_record(call.call, call.plan.hash)
            raw = await call.a.operator.export_record(call.call)
        path = export or Path(f"{call.call}.record.json")
        path.write_bytes(raw)
    record = verify_export(raw)
    _print_record(record.entries, record.signers, path, out)
    flowed = bool(sessions) and all(s.frames(k) > 0 for s in sessions for k in MediaKind)
    if stop.done():
        print(f"stopped early by {signal.Signals(stop.result()).name}: the call was ended, "
              "its record signed by both delegations, exported and verified", file=out)
    if not flowed:
        print("FAILED: media did not flow both ways", file=out)
        return 1
    return _outcome(sessions, out)


def _outcome(sessions: list[CallSession], out: TextIO) -> int:
    """The end of a demo's verdict, the same for a bilateral and a briefing: outages that
    healed are told; a link still lost, or any alarm, fails it."""
    outages = [r for s in sessions for r in s.stalls if r["state"] == "restored"]
    if outages:
        print(f"  media was lost {len(outages)} time(s) and came back each time (longest "
              f"{max(r['duration_ms'] for r in outages) / 1000:.1f} s)", file=out)
    if any(s.reconnecting() for s in sessions):
        print("FAILED: media was lost and had not come back when the call ended", file=out)
        return 1
    if any(s.alarms for s in sessions):
        print(f"FAILED: alarms: {[a for s in sessions for a in s.alarms]}", file=out)
        return 1
    return 0


def _short(value: object) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text[:48]


def _print_record(entries: list[Entry], signers: list[str], path: Path, out: TextIO) -> None:
    s = summary(entries)
    print("record:", file=out)
    print(f"  start    {_fmt_ms(s['started_ms'])}", file=out)
    print(f"  end      {_fmt_ms(s['ended_ms'])}", file=out)
    ms = s["duration_ms"]
    print(f"  duration {'-' if ms is None else f'{ms / 1000:.3f} s'}", file=out)
    print(f"  events   {s['events']}:", file=out)
    for e in entries:
        detail = ", ".join(f"{k}={_short(v)}" for k, v in e.data.items())
        print(f"    {e.seq:3d} {_fmt_ms(e.at)[11:23]} {e.kind:18s} {detail}", file=out)
    print(f"  exported to {path}; verified: chain intact, head signed by "
          f"{and_list(signers)}", file=out)


# --- the briefing ----------------------------------------------------------------------


def _heard_from(s: CallSession, devices: list[str]) -> int:
    """How many of the other principals this one has received audio and video from."""
    return sum(all(s.frames_from(d, k) > 0 for k in MediaKind)
               for d in devices if d != s.device)


def _briefing_progress(out: TextIO, elapsed: float, total: float,
                       sessions: list[CallSession], devices: list[str],
                       names: dict[str, str]) -> None:
    others = len(sessions) - 1
    line = (f"  in call {elapsed:5.1f}/{total:.0f} s | audio+video from the others: "
            + ", ".join(f"{names[s.device]} {_heard_from(s, devices)}/{others}"
                        for s in sessions)
            + f" | {sum(s.frames(MediaKind.VIDEO) for s in sessions)} video frames decoded")
    for s in sessions:
        for remote, seconds in s.reconnecting().items():
            line += (f" | {names[s.device]}: media from {names.get(remote, remote[:8])} lost, "
                     f"reconnecting {seconds:.1f} s")
    out.write(f"\r{line} " if out.isatty() else f"{line}\n")
    out.flush()


async def _hold_briefing(b: Briefing, sessions: list[CallSession], seconds: float,
                         out: TextIO, stop: asyncio.Future[int],
                         names: dict[str, str]) -> float | None:
    """Join, start, hold the briefing ``seconds`` once every principal receives every
    other. Returns how long it was held when a signal cut it short (None: not)."""
    devices = [s.device for s in sessions]
    if not await _or_stop(asyncio.gather(*(s.joined.wait() for s in sessions)), stop,
                          BRIEFING_JOIN_TIMEOUT_S):
        return 0.0
    print(f"  all {len(sessions)} principals joined; the US operator starts the call",
          file=out)
    await b.host.operator.control(b.call, "start")
    started = time.monotonic()

    def from_everyone(s: CallSession) -> Callable[[], bool]:
        return lambda: _heard_from(s, devices) == len(devices) - 1

    if not await _or_stop(asyncio.gather(*(s.wait_for(from_everyone(s)) for s in sessions)),
                          stop, BRIEFING_FIRST_FRAMES_TIMEOUT_S):
        return 0.0
    pairs = len(devices) * (len(devices) - 1) // 2
    print(f"  media flowing in every direction ({pairs} peer-to-peer links) "
          f"{time.monotonic() - started:.1f} s after the start", file=out)
    host = sessions[0]
    for s, side in zip(sessions[1:], b.sides[1:], strict=True):
        print(f"  on the US principal's screen: verify with {side.operator.name}: "
              f"{host.short_authentication_string(s.device)}", file=out)
    for s in sessions:
        print(f"  group code on {names[s.device]}'s screen: {s.group_code()}", file=out)
    start = time.monotonic()
    step = 0.5 if out.isatty() else 2.0
    while (elapsed := time.monotonic() - start) < seconds:
        _briefing_progress(out, elapsed, seconds, sessions, devices, names)
        await asyncio.wait({stop}, timeout=min(step, seconds - elapsed))
        if stop.done():
            held = time.monotonic() - start
            _briefing_progress(out, held, seconds, sessions, devices, names)
            return held
    _briefing_progress(out, seconds, seconds, sessions, devices, names)
    return None


async def run_briefing_demo(size: int, seconds: float, data_dir: Path | None,
                            export: Path | None, out: TextIO = sys.stdout,
                            stop: asyncio.Future[int] | None = None) -> int:
    """The briefing of ``size`` delegations (2..8), as ``run_demo`` holds the bilateral."""
    if stop is None:
        stop = asyncio.get_running_loop().create_future()
    held: float | None = None
    with tempfile.TemporaryDirectory(prefix="summitline-demo-") as tmp:
        settings = Settings(data_dir=data_dir or Path(tmp))
        async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
            print(f"summitline demo: server on {base} (loopback only), data in "
                  f"{settings.data_dir}", file=out)
            b = await provision_briefing(http, size)
            guests = [side.operator.name for side in b.sides[1:]]
            print(f"  briefing of {size}: {b.host.operator.name} hosting "
                  f"{', '.join(guests)}; linked with each ({', '.join(b.links)}); plan "
                  f"{b.plan.hash[:16]} signed by all {size} delegations", file=out)
            ws = base.replace("http", "ws", 1) + "/ws"
            sessions = [] if stop.done() else [
                CallSession(ws, b.call, side.identity(), ice=loopback()) for side in b.sides]
            names = {side.principal.fingerprint: SHORT_NAMES.get(side.operator.name,
                                                                 side.operator.name)
                     for side in b.sides}
            tasks = [asyncio.create_task(s.run()) for s in sessions]
            try:
                held = (await _hold_briefing(b, sessions, seconds, out, stop, names)
                        if sessions else 0.0)
            finally:
                await _wind_up(held, stop, out, b.host.operator, b.call, sessions, tasks)
            for side in b.sides:
                await side.operator.sign_record(b.call, b.plan.hash)
            raw = await b.host.operator.export_record(b.call)
        path = export or Path(f"{b.call}.record.json")
        path.write_bytes(raw)
    record = verify_export(raw)
    _print_record(record.entries, record.signers, path, out)
    if stop.done():
        print(f"stopped early by {signal.Signals(stop.result()).name}: the call was ended, "
              f"its record signed by all {size} delegations, exported and verified", file=out)
    if sorted(record.signers) != sorted(side.operator.name for side in b.sides):
        print(f"FAILED: the record is signed by {record.signers} only", file=out)
        return 1
    devices = [s.device for s in sessions]
    missing = [f"{names[s.device]} from {names[d]}: {k}" for s in sessions for d in devices
               if d != s.device for k in MediaKind if s.frames_from(d, k) == 0]
    if not sessions or missing:
        why = "; ".join(missing) or "no session"
        print(f"FAILED: media did not flow between every pair ({why})", file=out)
        return 1
    codes = {s.group_code() for s in sessions}
    if codes != {plan_group_code(b.plan)}:
        print(f"FAILED: the group codes differ: {sorted(str(c) for c in codes)}", file=out)
        return 1
    print(f"  every principal received audio and video from every other; group code "
          f"{codes.pop()} on all {size} screens", file=out)
    return _outcome(sessions, out)

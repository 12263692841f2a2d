"""``summitline demo``: a whole bilateral call on this machine, headless.

Starts the server on loopback, provisions two delegations, a link and a co-signed plan,
joins two principals with synthetic audio and video (ICE host candidates on 127.0.0.1
only, no STUN or TURN: nothing leaves loopback), holds the call, ends it, has both
delegations sign the record, exports it and verifies it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import httpx

from summitline.client.bilateral import Bilateral, provision
from summitline.client.ice import loopback
from summitline.client.session import CallSession
from summitline.core.record import Entry, summary, verify_export
from summitline.core.roles import MediaKind
from summitline.server.app import Settings
from summitline.server.run import running

# Time for two aiortc endpoints to connect and decode a first frame on a busy 2-core
# machine; far above the ~0.3 s it takes, so that a timeout means a fault.
FIRST_FRAME_TIMEOUT_S = 30.0


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d} UTC"


def _progress(out: TextIO, elapsed: float, total: float, sessions: list[CallSession]) -> None:
    a, b = sessions
    line = (f"  in call {elapsed:5.1f}/{total:.0f} s | US receives {a.frames(MediaKind.VIDEO)} "
            f"video / {a.frames(MediaKind.AUDIO)} audio frames | RU receives "
            f"{b.frames(MediaKind.VIDEO)} video / {b.frames(MediaKind.AUDIO)} audio frames")
    # One line rewritten in place on a terminal; a line every step in a log.
    out.write(f"\r{line} " if out.isatty() else f"{line}\n")
    out.flush()


async def _hold(call: Bilateral, base: str, seconds: float, out: TextIO) -> list[CallSession]:
    ws = base.replace("http", "ws", 1) + "/ws"
    sessions = [CallSession(ws, call.call, side.identity(), ice=loopback())
                for side in (call.a, call.b)]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), 10)
    print("  both principals joined; the US operator starts the call", file=out)
    await call.a.operator.control(call.call, "start")

    def video_arrived(s: CallSession) -> Callable[[], bool]:
        return lambda: s.frames(MediaKind.VIDEO) > 0

    await asyncio.wait_for(asyncio.gather(*(s.wait_for(video_arrived(s)) for s in sessions)),
                           FIRST_FRAME_TIMEOUT_S)
    for s, peer in ((sessions[0], call.b.principal.fingerprint),
                    (sessions[1], call.a.principal.fingerprint)):
        print(f"  media flowing; short authentication string on {s.device[:8]}: "
              f"{s.short_authentication_string(peer)}", file=out)
    start = time.monotonic()
    step = 0.5 if out.isatty() else 2.0
    while (elapsed := time.monotonic() - start) < seconds:
        _progress(out, elapsed, seconds, sessions)
        await asyncio.sleep(min(step, seconds - elapsed))
    _progress(out, seconds, seconds, sessions)
    if out.isatty():
        out.write("\n")
    await call.a.operator.control(call.call, "end")
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    for s in sessions:
        await s.leave()
    return sessions


async def run_demo(seconds: float, data_dir: Path | None, export: Path | None,
                   out: TextIO = sys.stdout) -> int:
    with tempfile.TemporaryDirectory(prefix="summitline-demo-") as tmp:
        settings = Settings(data_dir=data_dir or Path(tmp))
        async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
            print(f"summitline demo: server on {base} (loopback only), data in "
                  f"{settings.data_dir}", file=out)
            call = await provision(http)
            print(f"  delegations linked ({call.link_id}); plan {call.plan.hash[:16]} "
                  "signed by both", file=out)
            sessions = await _hold(call, base, seconds, out)
            for side in (call.a, call.b):
                await side.operator.sign_record(call.call, call.plan.hash)
            raw = await call.a.operator.export_record(call.call)
        path = export or Path(f"{call.call}.record.json")
        path.write_bytes(raw)
    record = verify_export(raw)
    _print_record(record.entries, record.signers, path, out)
    flowed = all(s.frames(k) > 0 for s in sessions for k in MediaKind)
    if not flowed:
        print("FAILED: media did not flow both ways", file=out)
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
    print(f"  duration {s['duration_ms'] / 1000:.3f} s", file=out)
    print(f"  events   {s['events']}:", file=out)
    for e in entries:
        detail = ", ".join(f"{k}={_short(v)}" for k, v in e.data.items())
        print(f"    {e.seq:3d} {_fmt_ms(e.at)[11:23]} {e.kind:18s} {detail}", file=out)
    print(f"  exported to {path}; verified: chain intact, head signed by "
          f"{' and '.join(signers)}", file=out)

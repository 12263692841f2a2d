"""``summitline serve`` and ``summitline demo`` stop cleanly on SIGTERM and SIGINT.

Real processes (``python -m summitline``) in this test's network namespace (loopback
only, as every test here). Each test waits for what the process prints before it
signals, and bounds every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import provision
from summitline.core.record import summary, verify_export

START_S = 60.0  # imports, store, first frames of a demo on a busy 2-core machine
# A signalled server is gone within a few seconds: 0.4-0.7 s usually, 2.6 s at worst
# with the machine at load 13 on 2 cores.
STOP_S = 8.0
# A demo also ends the call, signs, exports and verifies its record: 0.6-1.1 s, 5 s at
# worst at that load.
DEMO_STOP_S = 15.0
ABORT_S = 2.0  # a second signal kills at once; this is the test's own reaction time
VERIFY_S = 30.0


class Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line_with(self, text: str, stream: str = "stdout",
                        timeout_s: float = START_S) -> str:
        """The first line (from now on) that contains ``text``."""
        reader = self.proc.stdout if stream == "stdout" else self.proc.stderr
        assert reader is not None
        async with asyncio.timeout(timeout_s):
            while raw := await reader.readline():
                self.lines.append(line := raw.decode())
                if text in line:
                    return line
        raise AssertionError(f"the process ended without printing {text!r}:\n"
                             + "".join(self.lines))

    def signal(self, signum: int) -> float:
        self.proc.send_signal(signum)
        return time.monotonic()

    async def exit(self, timeout_s: float) -> tuple[int, str]:
        """The exit status and what is left of stdout, within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            out, _ = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, "".join(self.lines) + out.decode()


@contextlib.asynccontextmanager
async def summitline(*args: str, stderr: int | None = None) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", *args,
        stdout=asyncio.subprocess.PIPE, stderr=stderr)
    try:
        yield Process(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            async with asyncio.timeout(STOP_S):
                await proc.communicate()


async def verify(path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "verify", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(VERIFY_S):
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def serve(data: Path) -> AsyncIterator[tuple[Process, str]]:
    async with summitline("serve", "--port", "0", "--data", str(data),
                          stderr=asyncio.subprocess.PIPE) as p:
        line = await p.line_with("serving on", "stderr")
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        yield p, match.group(1)


async def test_serve_says_going_away_closes_the_store_and_exits_0_on_sigterm(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with serve(data) as (server, base), \
            httpx.AsyncClient(base_url=base) as http:
        call = await provision(http)
        await call.a.operator.control(call.call, "start")
        ws = await websockets.connect(base.replace("http", "ws", 1) + "/ws")
        await asyncio.wait_for(ws.recv(), STOP_S)  # the server's challenge: it is ours
        sent = server.signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), STOP_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        code, _ = await server.exit(STOP_S)
        took = time.monotonic() - sent
    assert code == 0 and took < STOP_S
    # The store was closed, not abandoned: SQLite folded its write-ahead log back in.
    wal = data / "summitline.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    # Nothing lost: a new server on the same data ends the call, and the record, signed
    # by both delegations, verifies offline.
    async with serve(data) as (server, base), \
            httpx.AsyncClient(base_url=base) as http:
        for side in (call.a, call.b):
            side.operator.http = http
        await call.a.operator.control(call.call, "end")
        for side in (call.a, call.b):
            await side.operator.sign_record(call.call, call.plan.hash)
        raw = await call.a.operator.export_record(call.call)
        server.signal(signal.SIGINT)
        assert (await server.exit(STOP_S))[0] == 0
    path = tmp_path / "call.record.json"
    path.write_bytes(raw)
    assert (await verify(path)).startswith("OK")
    kinds = [e.kind for e in verify_export(raw).entries]
    assert kinds.index("call.started") < kinds.index("call.ended")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
async def test_a_signalled_demo_ends_signs_exports_and_verifies_its_record(
        tmp_path: Path, signum: signal.Signals) -> None:
    record = tmp_path / "demo.record.json"
    async with summitline("demo", "--seconds", "300", "--export", str(record)) as demo:
        await demo.line_with("in call")
        await demo.line_with("in call")  # 2 s on: audio too has arrived both ways
        sent = demo.signal(signum)
        code, out = await demo.exit(DEMO_STOP_S)
        took = time.monotonic() - sent
    assert code == 0, out  # media flowed both ways before the signal
    assert f"{signum.name}: ending the call after" in out
    assert f"stopped early by {signum.name}" in out
    assert took < DEMO_STOP_S
    assert (await verify(record)).startswith("OK")
    duration = summary(verify_export(record.read_bytes()).entries)["duration_ms"]
    assert duration is not None and duration < 300_000


async def test_a_demo_signalled_before_media_flowed_still_records_but_fails(
        tmp_path: Path) -> None:
    record = tmp_path / "demo.record.json"
    async with summitline("demo", "--seconds", "300", "--export", str(record)) as demo:
        await demo.line_with("server on")
        demo.signal(signal.SIGTERM)
        code, out = await demo.exit(DEMO_STOP_S)
    assert code == 1, out
    assert "SIGTERM: ending the call before media flowed" in out
    assert "FAILED: media did not flow both ways" in out
    assert (await verify(record)).startswith("OK")


async def test_a_second_signal_aborts_the_demo_at_once(tmp_path: Path) -> None:
    async with summitline("demo", "--seconds", "300", "--export",
                          str(tmp_path / "demo.record.json")) as demo:
        await demo.line_with("in call")
        demo.signal(signal.SIGTERM)
        await demo.line_with("ending the call", timeout_s=DEMO_STOP_S)
        sent = demo.signal(signal.SIGTERM)
        code, out = await demo.exit(ABORT_S)
        took = time.monotonic() - sent
    assert code == -signal.SIGTERM, out  # killed by the signal, not a clean exit
    assert took < ABORT_S

"""``summitline serve`` takes the hard limit of open files: each signaling connection holds
one, and a soft limit of 1024 would refuse connections past about a thousand
(bench/signaling_load.py holds 10,000)."""

from __future__ import annotations

import asyncio
import resource
import sys
from pathlib import Path

from tests.test_cli_signals import START_S, STOP_S, Process

LOW = 256


def soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


async def test_serve_raises_its_soft_limit_of_open_files_to_the_hard_one(
        tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard > LOW

    def low() -> None:  # in the child, before it runs: a low soft limit, as on many hosts
        resource.setrlimit(resource.RLIMIT_NOFILE, (LOW, hard))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "serve", "--port", "0", "--data",
        str(tmp_path / "data"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, preexec_fn=low)
    try:
        await Process(proc).line_with("serving on", "stderr", START_S)
        limit = soft_open_files(proc.pid)
        assert limit > LOW
        if hard != resource.RLIM_INFINITY:
            assert limit == hard
    finally:
        proc.terminate()
        async with asyncio.timeout(STOP_S):
            await proc.communicate()

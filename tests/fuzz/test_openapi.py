"""Schemathesis over the OpenAPI document: no request, however malformed, makes the
server fail (no 5xx). Bounded: a fixed seed and a few examples per operation."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from summitline.server.app import Settings
from summitline.server.run import running

MAX_EXAMPLES = 25
TIMEOUT_S = 600


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    """A server whose POST quota never bites: the fuzzer's hundreds of POSTs from one
    address must reach the routes (the quota has tests of its own)."""
    async with running(Settings(data_dir=tmp_path / "server", post_burst=1e9)) as base:
        yield base


async def test_no_input_makes_the_api_fail(server: str) -> None:
    exe = shutil.which("schemathesis") or shutil.which("st")
    if exe is None:
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    proc = await asyncio.create_subprocess_exec(
        exe, "run", f"{server}/openapi.json", "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "20261121", "--workers", "1",
        "--request-timeout", "10", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    text = out.decode(errors="replace")
    sys.stdout.write(text[-3000:])
    assert proc.returncode == 0, text[-3000:]
    assert "passed" in text.lower()

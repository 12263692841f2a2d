"""Schemathesis over the OpenAPI document: no request, however malformed, makes the
server fail (no 5xx). Bounded: a fixed seed and a few examples per operation."""

from __future__ import annotations

import asyncio
import shutil
import sys

import pytest

MAX_EXAMPLES = 25
TIMEOUT_S = 600


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

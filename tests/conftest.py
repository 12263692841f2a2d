"""Every test runs in a fresh network namespace with only loopback.

The whole pytest process moves there before any test starts, so server tests,
aiortc endpoints and Chromium can only ever reach 127.0.0.1.
"""

from __future__ import annotations

import pytest

from summitline import netns


def pytest_configure(config: pytest.Config) -> None:
    netns.isolate()


from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

from summitline.client.bilateral import Bilateral, provision  # noqa: E402
from summitline.client.ice import LOOPBACK  # noqa: E402
from summitline.server.app import Settings  # noqa: E402
from summitline.server.run import running  # noqa: E402


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    """A summitline server in this event loop, on 127.0.0.1; its base URL. It serves the
    web client too (``--serve-client``), so that browser tests may load it from there;
    tests/browser/test_console.py loads it from a console instead."""
    async with running(Settings(data_dir=tmp_path / "server", press_hosts=LOOPBACK,
                                serve_client=True)) as base:
        yield base


@pytest.fixture
def ws_url(server: str) -> str:
    return server.replace("http", "ws", 1) + "/ws"


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server) as client:
        yield client


@pytest.fixture
async def bilateral(http: httpx.AsyncClient) -> Bilateral:
    """Two linked delegations and a co-signed plan for a call between their principals."""
    return await provision(http)

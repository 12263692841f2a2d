"""Every test runs in a fresh network namespace with only loopback.

The whole pytest process moves there before any test starts, so server tests,
aiortc endpoints and Chromium can only ever reach 127.0.0.1.
"""

from __future__ import annotations

import pytest

from summitline import netns


def pytest_configure(config: pytest.Config) -> None:
    netns.isolate()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``both_stores`` (tests/postgres.py): the test on SQLite and on PostgreSQL."""
    if metafunc.definition.get_closest_marker("both_stores") and \
            "database" in metafunc.fixturenames:
        metafunc.parametrize("database", STORES, indirect=True)


from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

from summitline.client.bilateral import Bilateral, provision  # noqa: E402
from summitline.client.ice import LOOPBACK  # noqa: E402
from summitline.server.app import Settings  # noqa: E402
from summitline.server.run import running  # noqa: E402
from summitline.store.sql import sqlite_url  # noqa: E402
from tests.postgres import STORES, Cluster  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One PostgreSQL cluster for the session, started the first time a test asks."""
    cluster = Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store for this test: SQLite in its own directory, unless the
    test is parametrised with ``both_stores`` (or ``indirect`` "postgresql"), which runs
    it on a fresh PostgreSQL database as well."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        (tmp_path / "server").mkdir(mode=0o700, exist_ok=True)  # as the server makes it
        yield sqlite_url(tmp_path / "server")
        return
    cluster: Cluster = request.getfixturevalue("postgres")
    name, url = cluster.fresh()
    try:
        yield url
    finally:
        cluster.drop(name)


@pytest.fixture
async def server(tmp_path: Path, database: str) -> AsyncIterator[str]:
    """A summitline server in this event loop, on 127.0.0.1; its base URL. It serves the
    web client too (``--serve-client``), so that browser tests may load it from there;
    tests/browser/test_console.py loads it from a console instead."""
    async with running(Settings(data_dir=tmp_path / "server", database_url=database,
                                press_hosts=LOOPBACK, serve_client=True)) as base:
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


@pytest.fixture
def operator_headers(server: str, tmp_path: Path) -> dict[str, str]:
    """The server operator's credential (for GET /api/incidents), read from its file in
    the data directory of ``server``."""
    token = (tmp_path / "server" / "operator.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}

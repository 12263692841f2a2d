"""A throwaway PostgreSQL cluster for the tests, from Debian's ``postgresql`` package.

One cluster per test session (``Cluster.start``), listening on a Unix socket in a
temporary directory only (no TCP port at all), with trust authentication for its one
role, and without fsync: it holds nothing worth a crash. Each test that asks for it gets
a database of its own, copied from a template that already holds the schema
(``CREATE DATABASE ... TEMPLATE``, milliseconds), so that no test sees another's rows.

PostgreSQL refuses to run as root: as root the cluster's programs run as the ``postgres``
user that the package creates.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

INITDB_TIMEOUT_S = 60.0  # initdb writes a few MB; a loaded 2-core machine takes seconds
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
SQL_TIMEOUT_S = 30.0  # one statement of psql (CREATE or DROP DATABASE)
ROLE = "summitline"
TEMPLATE = "summitline_template"


# Run a test on both stores: ``@both_stores`` on a test, or ``pytestmark = both_stores``
# in a module. Only tests whose fixtures include ``database`` (tests/conftest.py; the
# ``server`` fixture does) are run twice; the others of the module run once.
STORES = ("sqlite", "postgresql")
both_stores = pytest.mark.both_stores


def _bin(name: str) -> Path:
    """The newest installed PostgreSQL's ``name`` (Debian keeps them per major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    return found[-1]


class Cluster:
    def __init__(self, root: Path, user: str | None) -> None:
        self.root = root
        self.data = root / "data"
        self.user = user  # who the server runs as (None: this process's user)
        self._names = itertools.count(1)

    @classmethod
    def start(cls) -> Cluster:
        user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="summitline-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(root, user)
        try:
            cluster._run([str(_bin("initdb")), "-D", str(cluster.data), "-U", ROLE,
                          "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                         INITDB_TIMEOUT_S)
            options = (f"-k {root} -c listen_addresses='' -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            cluster._run([str(_bin("pg_ctl")), "-D", str(cluster.data), "-l",
                          str(root / "log"), "-o", options, "-w", "-t",
                          str(int(START_TIMEOUT_S)), "start"], START_TIMEOUT_S + 5)
            cluster.sql(f"CREATE DATABASE {TEMPLATE}")
            asyncio.run(_make_schema(cluster.url(TEMPLATE)))
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, argv: list[str], timeout: float) -> None:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[-1]} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")

    def sql(self, statement: str) -> None:
        """Run one statement in the maintenance database ``postgres``."""
        done = subprocess.run(
            [str(_bin("psql")), "-h", str(self.root), "-U", ROLE, "-d", "postgres", "-X",
             "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True, text=True, timeout=SQL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"{statement!r} failed: {done.stderr.strip()}")

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{ROLE}@/{database}?host={self.root}"

    def fresh(self) -> tuple[str, str]:
        """A new database with the schema in it: (its name, its URL)."""
        name = f"test_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name, self.url(name)

    def drop(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop at once (nothing in it is kept) and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run([str(_bin("pg_ctl")), "-D", str(self.data), "-m", "immediate",
                           "-w", "-t", str(int(STOP_TIMEOUT_S)), "stop"], STOP_TIMEOUT_S + 5)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


async def _make_schema(url: str) -> None:
    from summitline.store import (
        open_store,
        pressroom,  # noqa: F401  (its tables join the schema)
    )

    store = await open_store(url)
    await store.close()

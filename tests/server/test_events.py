"""The consoles' live updates (server/events.py): a delegation's signed event stream says
which link, plan, device or call changed, to that delegation alone, and stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from summitline.client.bilateral import Bilateral, provision
from summitline.client.operator import Operator
from summitline.client.reads import read_headers
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.crypto.statements import origin
from summitline.server.app import Settings
from summitline.server.events import MAX_PENDING, MAX_STREAMS_PER_DELEGATION, EventStreams
from summitline.server.run import SHUTDOWN_GRACE_S, running
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL

WAIT_S = 15.0  # an event arrives in milliseconds; a loaded 2-core machine is slower


def path_of(delegation: str) -> str:
    return f"/api/delegations/{delegation}/events"


def signed(http: httpx.AsyncClient, key: PrivateKey, path: str,
           signer: str | None = None) -> dict[str, str]:
    """The signed-read headers of a GET of ``path`` on the server ``http`` talks to
    (``signer``: the delegation's id, if its key rotated)."""
    return read_headers(key, "GET", path, origin(str(http.base_url)), signer=signer)


class EventReader:
    """The events of one open stream, parsed as text/event-stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> tuple[str, dict[str, Any]]:
        kind, data = "", ""
        async with asyncio.timeout(WAIT_S):
            async for line in self._lines:
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    data = line[len("data: "):]
                elif line == "" and kind:
                    return kind, json.loads(data)
        raise AssertionError("the stream ended")

    async def until(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Skip other events until one of ``kind`` with ``fields``."""
        while True:
            k, data = await self.next()
            if k == kind and all(data.get(f) == v for f, v in fields.items()):
                return data


@contextlib.asynccontextmanager
async def watching(http: httpx.AsyncClient, op: Operator) -> AsyncIterator[EventReader]:
    path = path_of(op.id)
    async with http.stream("GET", path, headers=signed(http, op.key, path, op.id),
                           timeout=httpx.Timeout(WAIT_S, read=None)) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield EventReader(r)


async def test_only_the_delegation_itself_reads_its_stream(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    path = path_of(a.id)
    assert (await http.get(path)).status_code == 401
    other = await http.get(path, headers=signed(http, b.key, path))
    assert other.status_code == 403  # linked with it, but a's changes are a's
    # a device of a's own plan is not its delegation either
    device = await http.get(path, headers=signed(http, bilateral.a.principal, path))
    assert device.status_code in (401, 403)
    bad = signed(http, a.key, path_of(b.id))  # signed for another target
    assert (await http.get(path, headers=bad)).status_code == 401


async def test_a_link_proposed_and_accepted_is_told_to_both(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a = bilateral.a.operator
    newcomer = Operator(http, "Kingdom of Norway", PrivateKey.generate())
    await newcomer.register()
    link = f"link-{secrets.token_hex(4)}"
    async with watching(http, a) as events, watching(http, newcomer) as theirs:
        await newcomer.propose_link(link, a.id)
        assert await events.until("link") == {"id": link}
        assert await theirs.until("link") == {"id": link}
        spoken = (await http.get(f"/api/delegations/{newcomer.id}")).json()
        await a.accept_link(link, spoken["short_fingerprint"])
        assert await theirs.until("link") == {"id": link}


async def test_a_plan_submitted_and_cosigned_is_told(http: httpx.AsyncClient) -> None:
    call = await provision(http, cosign=False)
    a, b = call.a.operator, call.b.operator
    async with watching(http, a) as events:
        await b.cosign_plan(call.plan)
        assert await events.until("plan") == {"id": call.plan.hash}


async def test_seats_and_devices_are_told_to_the_delegation_and_its_partners(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    async with watching(http, a) as own, watching(http, b) as partner:
        code = await a.open_enrolment("Aide", Role.AIDE)
        seat = hashlib.sha256(code.encode()).hexdigest()
        assert await own.until("device") == {"seat": seat}
        aide = PrivateKey.generate()
        r = await http.post("/api/enrolments", json={
            "code": code, "key": aide.public.b64u,
            "signature": aide.sign(statements.enrol(code, aide.public.b64u))})
        assert r.status_code == 200
        assert await own.until("device", id=aide.fingerprint)
        # b drafts plans with a's devices: it hears of them too
        assert await partner.until("device", id=aide.fingerprint)
        await a.revoke(aide.fingerprint)
        assert await own.until("device", id=aide.fingerprint)


async def test_a_key_rotation_is_told_through_the_link(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    async with watching(http, b) as events:
        await a.rotate()  # the link view shows a's key chain: b's console re-reads it
        assert await events.until("link") == {"id": bilateral.link_id}


async def test_call_state_is_told_with_its_phase(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    async with watching(http, b) as events:
        await a.control(bilateral.call, "start")
        assert await events.until("call", id=bilateral.call, phase="closed")
        await a.control(bilateral.call, "end")
        assert await events.until("call", id=bilateral.call, phase="ended")


async def test_a_delegation_at_its_cap_loses_its_oldest_stream(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    # attacker review of issue 11, round 4: whoever held a delegation's streams (an old
    # tab, or a thief of an old key) locked its console out with 429; now the newest
    # signed request takes the oldest stream's place
    a = bilateral.a.operator
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(watching(http, a))
        for _ in range(MAX_STREAMS_PER_DELEGATION):
            await stack.enter_async_context(watching(http, a))
        with pytest.raises(AssertionError, match="the stream ended"):
            await first.next()  # pushed out by the fifth
        async with watching(http, bilateral.b.operator):
            pass  # another delegation is not held back by a's streams


async def test_a_rotation_ends_the_streams_its_old_key_opened(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    thief = Operator(http, a.name, a.key)
    async with watching(http, thief) as stolen:
        await a.rotate()
        with pytest.raises(AssertionError, match="the stream ended"):
            while True:
                await stolen.next()  # (the rotation's own link event may come first)
    path = path_of(a.id)
    r = await http.get(path, headers=signed(http, thief.key, path, a.id))
    assert r.status_code == 401  # the old key opens no new one
    async with watching(http, a) as own:  # the new key does
        await b.propose_link(f"link-{secrets.token_hex(4)}", a.id)
        assert (await own.next())[0] == "link"


def test_one_address_holds_a_bounded_share_of_the_streams() -> None:
    streams = EventStreams(per_delegation=4, total=100, per_address=3)
    opened = [streams.open(f"{i:064x}", "192.0.2.7") for i in range(4)]
    assert all(opened[:3]) and opened[3] is None  # a stranger with many delegations
    assert streams.open("f" * 64, "198.51.100.1") is not None  # others are not held back
    assert opened[0] is not None
    streams.release(opened[0])
    assert streams.open("e" * 64, "192.0.2.7") is not None


async def test_a_stopping_server_ends_its_streams_at_once(tmp_path: Path) -> None:
    ended, opened = asyncio.Event(), asyncio.Event()
    server = running(Settings(data_dir=tmp_path / "server"))
    base = await server.__aenter__()
    stopped = False
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            op = Operator(http, "United States", PrivateKey.generate())
            await op.register()

            async def read() -> None:
                with contextlib.suppress(httpx.HTTPError, AssertionError):
                    async with watching(http, op) as events:
                        opened.set()
                        await events.next()  # none comes: the stream ends
                ended.set()

            reader = asyncio.create_task(read())
            async with asyncio.timeout(WAIT_S):
                await opened.wait()
            started = time.monotonic()
            await server.__aexit__(None, None, None)
            stopped = True
            stopped_in = time.monotonic() - started
            async with asyncio.timeout(WAIT_S):
                await ended.wait()
            await reader
    finally:
        if not stopped:
            await server.__aexit__(None, None, None)
    # uvicorn alone would hold an open response for the whole grace period, then cut it
    assert stopped_in < SHUTDOWN_GRACE_S, stopped_in


async def test_a_stream_sends_a_change_once_and_drops_a_reader_too_far_behind() -> None:
    streams = EventStreams(per_delegation=2, total=3)
    d = "a" * 64
    stream = streams.open(d)
    assert stream is not None
    for _ in range(3):
        streams.publish([d, "b" * 64], "call", id="call-1", phase="open")
    assert await stream.next(0.01) == ("call", '{"id":"call-1","phase":"open"}')
    assert await stream.next(0.01) is None  # the same change, pending, was kept once
    for i in range(MAX_PENDING + 1):
        streams.publish([d], "link", id=f"link-{i}")
    assert stream.ended  # the client reconnects and re-reads
    second = streams.open(d)  # (the ended one counts until it is released)
    assert second is not None and streams.open(d) is not None  # 2 per delegation: the
    assert not second.ended and stream.ended  # oldest (the first) gave up its place
    assert streams.open("b" * 64) is not None
    assert streams.open("c" * 64) is None  # 3 in all
    streams.release(second)
    assert streams.open("c" * 64) is not None
    assert streams.close() == 3 and streams.open("e" * 64) is None

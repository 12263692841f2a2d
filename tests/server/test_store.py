"""The store on SQLite and on PostgreSQL: the record's order is the database's.

"Two nodes" here are two stores on the same database, each with its own engine and
connection pool, as two server processes would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert

from summitline.core import call as c
from summitline.core.record import GENESIS, Entry, check_chain
from summitline.server.room import CallRoom
from summitline.store import RecordMoved, Store, open_store
from summitline.store import schema as t
from tests.factories import World
from tests.postgres import both_stores

pytestmark = both_stores

APPENDERS = 24  # concurrent appends, half through each node
MAX_TRIES = 200  # an appender that comes second this often is stuck: the test fails
WAIT_S = 60.0  # all appends of the concurrent test, on a loaded 2-core machine


@pytest.fixture
async def nodes(database: str) -> AsyncIterator[tuple[Store, Store]]:
    one, two = await open_store(database), await open_store(database)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_the_record_takes_only_the_entry_that_follows_its_head(
        nodes: tuple[Store, Store]) -> None:
    store, _ = nodes
    with pytest.raises(RecordMoved):  # a first entry must be seq 0 after the genesis
        await store.append("call-1", Entry.make(Entry(0, 0, "x", {}, GENESIS, "f" * 64),
                                                1, "x", {}))
    e0 = Entry.make(None, 1, "call.started", {})
    e1 = Entry.make(e0, 2, "endpoint.joined", {"device": "a"})
    await store.append("call-1", e0)
    await store.append("call-1", e1)
    duplicate = Entry.make(e0, 3, "endpoint.joined", {"device": "b"})  # seq 1 again
    gap = Entry.make(Entry.make(e1, 3, "x", {}), 4, "x", {})  # seq 3, skipping 2
    fork = Entry(2, 4, "x", {}, "0" * 63 + "1", "2" * 64)  # seq 2, not after e1
    for bad in (duplicate, gap, fork):
        with pytest.raises(RecordMoved):
            await store.append("call-1", bad)
    e2 = Entry.make(e1, 5, "call.ended", {})
    await store.append("call-1", e2)
    assert await store.entries("call-1") == [e0, e1, e2]
    assert await store.entries("call-1", after=0) == [e1, e2]
    assert await store.head("call-1") == e2 and await store.head("call-2") is None
    # another call's chain starts at its own genesis
    await store.append("call-2", Entry.make(None, 6, "call.started", {}))


async def test_a_record_kept_before_heads_were_stored_goes_on_from_its_last_entry(
        nodes: tuple[Store, Store]) -> None:
    store, _ = nodes
    e0 = Entry.make(None, 1, "call.started", {})
    e1 = Entry.make(e0, 2, "endpoint.joined", {"device": "a"})
    async with store.engine.begin() as conn:  # as an older summitline stored them
        for e in (e0, e1):
            await conn.execute(insert(t.entries).values(
                call="call-1", seq=e.seq, at=e.at, kind=e.kind, data="{}" if not e.data
                else '{"device": "a"}', prev=e.prev, hash=e.hash))
    with pytest.raises(RecordMoved):
        await store.append("call-1", Entry.make(e0, 3, "x", {}))
    e2 = Entry.make(e1, 3, "call.ended", {})
    await store.append("call-1", e2)
    assert [e.seq for e in await store.entries("call-1")] == [0, 1, 2]


async def test_concurrent_appends_through_two_nodes_make_one_unbroken_chain(
        nodes: tuple[Store, Store]) -> None:
    """Each appender reads the head, makes the next entry and appends it; one that comes
    second reads again. However they interleave across the two nodes, the record ends with
    every append exactly once, at seq 0..N-1, and its hash chain verifies."""
    moved = 0

    async def appender(store: Store, n: int) -> None:
        nonlocal moved
        for _ in range(MAX_TRIES):
            entry = Entry.make(await store.head("call-1"), n, "note", {"n": n})
            try:
                await store.append("call-1", entry)
                return
            except RecordMoved:
                moved += 1
        raise AssertionError(f"appender {n} came second {MAX_TRIES} times")

    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*(appender(nodes[n % 2], n) for n in range(APPENDERS)))
    entries = await nodes[0].entries("call-1")
    assert [e.seq for e in entries] == list(range(APPENDERS))  # no gap, no duplicate
    assert sorted(e.data["n"] for e in entries) == list(range(APPENDERS))
    check_chain([e.to_json() for e in entries])  # raises at the first broken link
    assert await nodes[1].entries("call-1") == entries
    assert moved > 0  # they did contend: the database turned some away


async def test_two_rooms_of_one_call_on_two_nodes_share_one_record(
        nodes: tuple[Store, Store]) -> None:
    """A room that comes second takes the other node's entries into its state before it
    decides: an event that the other's entries made illegal is refused, not recorded."""
    w = World()
    signed = w.signed()
    one, two = (CallRoom(store, lambda: 1000, signed, []) for store in nodes)
    notes = [room.record("note", {"i": i}) for i in range(10) for room in (one, two)]
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*notes)
    await one.record("call.started", {}, c.Start(1000))
    with pytest.raises(c.IllegalEvent):  # room two learns the call has started
        await two.record("call.started", {}, c.Start(1000))
    assert two.head == one.head and two.state.phase is one.state.phase
    entries = await nodes[0].entries(signed.plan.call)
    assert [e.seq for e in entries] == list(range(21))
    check_chain([e.to_json() for e in entries])
    # the private chains of a delegation follow the same rule
    pages = [room.record_private(w.us.fingerprint, "page", {"i": i})
             for i in range(5) for room in (one, two)]
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*pages)
    private = await nodes[1].private_entries(signed.plan.call, w.us.fingerprint)
    assert [e.seq for e in private] == list(range(10))
    check_chain([e.to_json() for e in private])

"""Two nodes' rooms of one call append to one store (server/cluster.py): the store's key
refuses a second entry of a sequence number, the room that lost reads what the other
wrote and appends on top, or refuses an event no longer legal. No gap, no duplicate."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from summitline.core import call as c
from summitline.core.record import check_chain, describe
from summitline.core.roles import Phase, Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.room import CallRoom
from summitline.store import open_store
from summitline.store.sql import Store, sqlite_url
from tests.factories import World


async def rooms(tmp_path: Path) -> tuple[list[Store], list[CallRoom], World]:
    w = World()
    url = sqlite_url(tmp_path)
    stores = [await open_store(url), await open_store(url)]  # two engines: two processes
    made = [CallRoom(s, lambda: 1000, w.signed(), await s.entries("call-1")) for s in stores]
    return stores, made, w


async def test_a_stale_room_appends_after_what_the_other_wrote(tmp_path: Path) -> None:
    stores, (one, two), w = await rooms(tmp_path)
    try:
        await one.record("endpoint.joined", {"device": w.us_principal.fingerprint},
                         c.Join(w.us_principal.fingerprint))
        # ``two`` has not seen that entry: its append of 0 is refused, it reads it, and
        # appends 1 on top
        entry = await two.record("endpoint.joined", {"device": w.ru_principal.fingerprint},
                                 c.Join(w.ru_principal.fingerprint))
        assert entry.seq == 1
        assert two.state.admitted == {w.us_principal.fingerprint, w.ru_principal.fingerprint}
        await one.record("call.started", {"at": 1000}, c.Start(1000))
        # a start the other node already recorded is no longer legal: nothing appended
        with pytest.raises(c.IllegalEvent):
            await two.record("call.started", {"at": 1000}, c.Start(1000))
        assert two.state.phase is Phase.CLOSED and two.head == one.head
        await one.catch_up()
        assert one.state == two.state
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_appends_from_two_rooms_leave_one_chain(tmp_path: Path) -> None:
    stores, (one, two), _ = await rooms(tmp_path)
    try:
        await asyncio.wait_for(asyncio.gather(
            *(room.record("note", {"n": i}) for i in range(20) for room in (one, two))), 60)
        entries = await stores[0].entries("call-1")
        assert [e.seq for e in entries] == list(range(40))
        check_chain([e.to_json() for e in entries])  # each links to the one before
        assert sorted(e.data["n"] for e in entries) == sorted(list(range(20)) * 2)
    finally:
        for s in stores:
            await s.close()


async def test_two_nodes_never_record_one_booth_sequence_number_twice(
        tmp_path: Path) -> None:
    """Attacker round e1: the live interpreter asks again on one node while its partner,
    on another, accepts the first request; both signed the booth's next number (3). The
    node whose append came second catches up, and then the booth's number has moved:
    its accept is refused as stale, not recorded beside the request (every endpoint
    would refuse it as a replay while the server announced the partner live)."""
    w = World()
    partner = PrivateKey.generate()
    base = w.plan()
    plan = replace(base, participants=base.participants + (
        w.participant(partner, w.ru, Role.INTERPRETER, "RU interpreter 2", "ru"),))
    signed = w.signed(plan)
    live = w.ru_interpreter
    url = sqlite_url(tmp_path)
    stores = [await open_store(url), await open_store(url)]
    one, two = (CallRoom(s, lambda: 1000, signed, []) for s in stores)

    async def act(room: CallRoom, key: PrivateKey, action: str, seq: int,
                  event: c.Event) -> None:
        to = getattr(event, "receiver", None)
        kind, data = describe(event)
        data = {**data, "from": key.fingerprint, "to": to, "seq": seq, "at": 1000,
                "action": action, "channel": "ru", "signature": key.sign(statements.booth(
                    "call-1", plan.hash, "ru", action, key.fingerprint, seq, 1000, to))}
        await room.record(kind, data, event, 1000)

    try:
        await one.record("call.started", {"at": 1000}, c.Start(1000))
        for d in (live, partner):
            await one.record("endpoint.joined", {"device": d.fingerprint}, c.Join(d.fingerprint))
        await act(one, live, "live", 1, c.GoLive(live.fingerprint))
        await act(one, live, "request", 2,
                  c.RequestHandover(live.fingerprint, partner.fingerprint, 1000))
        await two.catch_up()  # both nodes at booth number 2
        await act(one, live, "request", 3,
                  c.RequestHandover(live.fingerprint, partner.fingerprint, 1000))
        with pytest.raises(c.IllegalEvent) as refused:
            await act(two, partner, "accept", 3,
                      c.HandoverAnswer(partner.fingerprint, live.fingerprint, True, 1000))
        assert refused.value.code == "stale-seq"
        numbers = [e.data["seq"] for e in await stores[0].entries("call-1")
                   if e.kind.startswith("booth.")]
        assert numbers == [1, 2, 3]
        assert two.booth_actions["ru"]["seq"] == 3 and two.head == one.head
    finally:
        for s in stores:
            await s.close()

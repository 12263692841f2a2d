"""What stays per delegation in a briefing of three (the United States hosting France and
Germany): the aide button reaches only the paging principal's own aides, the private
record holds only that delegation's parts, each delegation drafts and publishes its own
readout; and the control of the call is the host's (docs/protocol.md section 4,
``/control``; section 5.2, ``end``), at the server and, against a hostile server, at
every endpoint."""

from __future__ import annotations

import asyncio
import copy
import time

import httpx
import pytest

from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import ApiError
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind, Phase, Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.client.test_session import WAIT_S, leave_all
from tests.hostile import Message, Wire, hostile

AIDE_ONLY = {"paged", "acked"}


async def test_a_page_reaches_only_the_paging_delegation_s_aides(
        ws_url: str, http: httpx.AsyncClient) -> None:
    aides = [PrivateKey.generate() for _ in range(3)]
    b = await provision_briefing(http, 3, extra=[
        (i, key, Role.AIDE, f"Aide {i}", "en") for i, key in enumerate(aides)])
    principals = [CallSession(ws_url, b.call, side.identity(), ice=loopback())
                  for side in b.sides]
    aide_sessions = [CallSession(ws_url, b.call, side.identity(key), ice=loopback(),
                                 source=MediaSource(None, None))
                     for side, key in zip(b.sides, aides, strict=True)]
    everyone = principals + aide_sessions
    tasks = [asyncio.create_task(s.run()) for s in everyone]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in everyone)), WAIT_S)
        france, french_aide = principals[1], aide_sessions[1]
        page = await france.page()
        await asyncio.wait_for(french_aide.wait_for(lambda: bool(french_aide.pages)), WAIT_S)
        # an aide of another delegation (the host's, a guest's) may not answer it
        for other in (aide_sessions[0], aide_sessions[2]):
            await other.ack(page)
            await asyncio.wait_for(other.wait_for(lambda o=other: bool(o.errors)), WAIT_S)
            assert other.errors[0]["code"] == "not-permitted"
        await french_aide.ack(page)
        await asyncio.wait_for(france.wait_for(lambda: bool(france.acks[page])), WAIT_S)
        assert france.acks[page] == [french_aide.device]
        # a ping answered after the ack: whatever the server sent anyone is in by now
        for s in everyone:
            n = len(s.inbox)
            await s._send({"type": "ping", "id": 7})
            await asyncio.wait_for(s.wait_for(lambda s=s, n=n: any(
                m["type"] == "pong" for m in s.inbox[n:])), WAIT_S)
        for s in everyone:
            if s not in (france, french_aide):
                assert not [m for m in s.inbox if m["type"] in AIDE_ONLY], s.inbox
                assert s.pages == [] and s.alarms == []
        # the private record: France's holds the page and its answer; the others' nothing
        kinds = [[e["kind"] for e in await side.operator.private_record(b.call)]
                 for side in b.sides]
        assert kinds == [[], ["aide.paged", "aide.acked"], []]
    finally:
        await leave_all(everyone, tasks)


async def test_the_host_controls_a_briefing_and_each_delegation_publishes_its_readout(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    us, france, germany = (side.operator for side in b.sides)
    for guest in (france, germany):
        with pytest.raises(ApiError) as refused:
            await guest.control(b.call, "start")
        assert refused.value.status == 403 and "only the host" in refused.value.detail
    sessions = [CallSession(ws_url, b.call, side.identity(), ice=loopback())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await us.control(b.call, "start")
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(
            lambda s=s: s.frames(MediaKind.VIDEO) > 20) for s in sessions)), WAIT_S)
        # a guest neither ends the call for the others (control) nor from the call (end)
        with pytest.raises(ApiError) as refused:
            await germany.control(b.call, "end")
        assert refused.value.status == 403
        guest = sessions[2]
        await guest._send({"type": "end"})
        await asyncio.wait_for(guest.wait_for(lambda: bool(guest.errors)), WAIT_S)
        assert guest.errors[0]["code"] == "not-permitted" and "host" in \
            guest.errors[0]["message"]
        assert all(s.phase is Phase.CLOSED and not s.ended.is_set() for s in sessions)
        # the host's principal ends it for everyone
        await sessions[0]._send({"type": "end"})
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert all(s.phase is Phase.ENDED and s.alarms == [] for s in sessions)
    finally:
        await leave_all(sessions, tasks)
    # each delegation drafts privately and publishes its own readout; the press room
    # shows them side by side
    for op in (us, france, germany):
        await op.draft_readout(b.call, f"draft of {op.name}")
    assert (await france.read_draft(b.call))["draft"]["text"] == "draft of France"
    for op in (germany, us, france):
        await op.publish_readout(b.call, f"{op.name} welcomes the briefing.")
    room = (await http.get(f"/api/pressroom/{b.call}")).json()
    assert sorted((r["name"], r["text"]) for r in room["readouts"]) == sorted(
        (op.name, f"{op.name} welcomes the briefing.") for op in (us, france, germany))


async def test_a_guest_s_start_served_by_a_hostile_server_moves_no_endpoint(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    germany = b.sides[2].operator
    at = int(time.time() * 1000)
    guest_start = {"delegation": germany.id, "at": at, "signature": germany.key.sign(
        statements.control(b.call, "start", germany.id, at))}

    def down(wire: Wire, msg: Message) -> Message:
        # the server "starts" the call on the strength of a guest's start request (one
        # it refused over the API, but holds: the signature is valid)
        if msg["type"] == "welcome":
            msg = {**copy.deepcopy(msg), "phase": "closed", "start": guest_start}
        return msg

    async with hostile(ws_url, down=down) as proxy:
        sessions = [CallSession(proxy.url, b.call, side.identity(), ice=loopback(),
                                reconnect=False) for side in b.sides]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            for s in sessions:
                await asyncio.wait_for(s.wait_for(lambda s=s: bool(s.alarms)), WAIT_S)
                assert "by a guest's signed start, not the host's" in s.alarms[0]
                assert s.phase is Phase.PLANNED
            for w in proxy.wires:  # nobody offered
                assert not [m for m in w.seen_up if m["type"] == "offer"]
            assert all(s.frames(MediaKind.AUDIO) == 0 and not s.links for s in sessions)
        finally:
            await leave_all(sessions, tasks)

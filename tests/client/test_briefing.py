"""The briefing with Python endpoints: a host and its guests, every principal receiving
every other's audio and video peer-to-peer (a mesh), one pair code per pair, one group
code for all, and a record signed by every delegation."""

from __future__ import annotations

import asyncio

import httpx

from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.session import CallSession
from summitline.core.record import verify_export
from summitline.core.roles import MediaKind
from summitline.core.sas import plan_group_code
from tests.client.test_session import WAIT_S, leave_all


async def test_three_principals_hold_a_briefing_in_a_mesh(ws_url: str,
                                                          http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    sessions = [CallSession(ws_url, b.call, side.identity(), ice=loopback())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]

        def from_everyone(s: CallSession) -> bool:
            return all(s.frames_from(d, k) > 10 for d in devices if d != s.device
                       for k in MediaKind)
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: from_everyone(s))
                                                for s in sessions)), WAIT_S)
        # one code per pair, equal at both ends; the group code equal everywhere
        for i, s in enumerate(sessions):
            for j, t in enumerate(sessions):
                if i < j:
                    code = s.short_authentication_string(devices[j])
                    assert code is not None and code == t.short_authentication_string(devices[i])
        assert {s.group_code() for s in sessions} == {plan_group_code(b.plan)}
        await b.host.operator.control(b.call, "end")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        for side in b.sides:
            await side.operator.sign_record(b.call, b.plan.hash)
        record = verify_export(await b.host.operator.export_record(b.call))
        assert sorted(record.signers) == sorted(side.operator.name for side in b.sides)
        assert all(s.alarms == [] for s in sessions)
    finally:
        await leave_all(sessions, tasks)

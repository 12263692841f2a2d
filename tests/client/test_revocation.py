"""Revocation end to end (issue 11, key lifecycle): a delegation revokes one of its devices
during a call; the server tells every endpoint of the call with the delegation's signed
revocation, and they close their peer-to-peer links with the device, whose media
otherwise never passes through the server. A revocation the delegation did not sign
changes nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx

from summitline.client.bilateral import Bilateral
from summitline.client.ice import loopback
from summitline.client.session import CallSession, SessionRefused
from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.client.test_certificates import enrol_and_certify
from tests.client.test_session import WAIT_S, leave_all, until
from tests.hostile import hostile

# A revoked device's media must stop reaching the others within this long of the
# revocation (on loopback it is a message and a peer connection close: milliseconds).
REVOKED_WITHIN_S = 5.0


class Stubborn(CallSession):
    """A device that will not let go: dropped by the server, it keeps its peer
    connections open and sending (as a stolen device in hostile hands would)."""

    async def close_links(self) -> None:
        if self._leaving:
            await super().close_links()


async def enrolled_plan(call: Bilateral, http: httpx.AsyncClient, name: str
                        ) -> tuple[CallPlan, PrivateKey]:
    """The call's plan, B's principal replaced by a device B enrolled and certified on the
    server (a device its delegation can revoke), submitted and co-signed."""
    a, b = call.a.operator, call.b.operator
    key = await enrol_and_certify(b, http, "President of the Russian Federation",
                                  Role.PRINCIPAL)
    rows = {d["device"]: d for d in await b.devices(b.id)}
    plan = replace(call.plan, call=name, participants=(
        *(p for p in call.plan.participants if p.delegation != b.id),
        b.participant(rows[key.fingerprint], "ru")))
    await a.submit_plan(plan)
    await b.cosign_plan(plan)
    return plan, key


async def in_call(ws_url: str, call: Bilateral, plan: CallPlan, key: PrivateKey
                  ) -> tuple[CallSession, Stubborn, list[asyncio.Task[None]]]:
    """A's principal and B's device ``key`` (which will not close its own links) in the
    started call of ``plan``, media flowing both ways."""
    a = CallSession(ws_url, plan.call, call.a.identity(), ice=loopback())
    b = Stubborn(ws_url, plan.call, call.b.identity(key), ice=loopback(), reconnect=False)
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
    await call.a.operator.control(plan.call, "start")
    await until([a, b], lambda s: all(s.frames(k) > 10 for k in MediaKind))
    return a, b, tasks


async def test_a_revoked_device_is_cut_off_by_the_other_endpoints(
        ws_url: str, http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    plan, key = await enrolled_plan(bilateral, http, "call-revoke")
    a, b, tasks = await in_call(ws_url, bilateral, plan, key)
    link = a.link(key.fingerprint)
    assert link is not None

    revoked_at = time.monotonic()
    answer = await bilateral.b.operator.revoke(key.fingerprint)
    assert answer["dropped"] == 1 and answer["told"] == 1
    await asyncio.wait_for(a.wait_for(lambda: key.fingerprint not in a.links
                                      and link.pc.connectionState == "closed"),
                           REVOKED_WITHIN_S)
    assert time.monotonic() - revoked_at < REVOKED_WITHIN_S
    assert key.fingerprint in a.revoked and a.alarms == []
    assert any("revoked" in n for n in a.notices)
    # the revoked device never closed its end (Stubborn); a closed it, nothing arrives
    heard = a.frames(MediaKind.AUDIO)
    try:
        await asyncio.wait_for(tasks[1], WAIT_S)
    except SessionRefused as exc:
        assert exc.code == "device-revoked"

    # an endpoint that joins afterwards learns of it in welcome, and refuses the device
    await a.leave()
    await asyncio.wait_for(tasks[0], WAIT_S)
    later = CallSession(ws_url, plan.call, bilateral.a.identity(), ice=loopback())
    tasks.append(asyncio.create_task(later.run()))
    await asyncio.wait_for(later.joined.wait(), WAIT_S)
    welcome = next(m for m in later.inbox if m["type"] == "welcome")
    assert [r["device"] for r in welcome["revocations"]] == [key.fingerprint]
    assert key.fingerprint in later.revoked and not later.links
    assert a.frames(MediaKind.AUDIO) == heard  # nothing more arrived meanwhile
    await leave_all([later, b], tasks)


async def test_a_forged_revocation_changes_nothing(
        ws_url: str, http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    """A hostile server injects a revocation of B's principal signed by A's key, by a key
    of its own, and a replay of nothing B ever signed: each is an alarm, the call goes on."""
    plan, key = await enrolled_plan(bilateral, http, "call-forged-revoke")
    b_id = bilateral.b.operator.id
    async with hostile(ws_url) as proxy:
        a = CallSession(proxy.url, plan.call, bilateral.a.identity(), ice=loopback())
        b = CallSession(proxy.url, plan.call, bilateral.b.identity(key), ice=loopback())
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        await bilateral.a.operator.control(plan.call, "start")
        await until([a, b], lambda s: all(s.frames(k) > 10 for k in MediaKind))
        at = int(time.time() * 1000)
        thief, b_key = PrivateKey.generate(), bilateral.b.operator.key.public.b64u
        step = statements.rotation(b_id, b_key, thief.public.b64u, at)
        forgeries = [
            {"delegation": b_id, "device": key.fingerprint, "at": at,
             "signature": bilateral.a.operator.key.sign(
                 statements.revocation(b_id, key.fingerprint, at))},
            {"delegation": b_id, "device": key.fingerprint, "at": at,
             "signature": PrivateKey.generate().sign(
                 statements.revocation(b_id, key.fingerprint, at))},
            {"delegation": bilateral.a.operator.id, "device": key.fingerprint, "at": at,
             "signature": bilateral.a.operator.key.sign(statements.revocation(
                 bilateral.a.operator.id, key.fingerprint, at))},
            # a key chain of the server's own making, from B's key to its key
            {"delegation": b_id, "device": key.fingerprint, "at": at,
             "signature": thief.sign(statements.revocation(b_id, key.fingerprint, at)),
             "rotations": [{"previous": b_key, "key": thief.public.b64u, "at": at,
                            "signature": thief.sign(step), "proof": thief.sign(step)}]},
        ]
        wire = proxy.wire_of(bilateral.a.principal.fingerprint)
        for forged in forgeries:
            await wire.inject({"type": "revoked", **forged})
        await asyncio.wait_for(a.wait_for(lambda: len(a.alarms) >= len(forgeries)), WAIT_S)
        assert all("did not sign" in text for text in a.alarms)
        assert not a.revoked and not a.notices
        link = a.link(key.fingerprint)
        assert link is not None and link.connected
        heard = a.frames(MediaKind.AUDIO)
        await until([a], lambda s: s.frames(MediaKind.AUDIO) > heard + 20)
        assert a.link(key.fingerprint) is link
        await leave_all([a, b], tasks)


async def test_a_revocation_signed_after_a_key_rotation(
        ws_url: str, http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    """B rotates its key during a call whose plan carries B's old key, then revokes its
    principal with the new key: the revocation comes with B's key chain, which leads from
    the plan's key to the signer, and the other end cuts the device off all the same."""
    plan, key = await enrolled_plan(bilateral, http, "call-rotate-revoke")
    a, b, tasks = await in_call(ws_url, bilateral, plan, key)
    await bilateral.b.operator.rotate()
    assert (await bilateral.b.operator.revoke(key.fingerprint))["told"] == 1
    await asyncio.wait_for(a.wait_for(lambda: key.fingerprint not in a.links),
                           REVOKED_WITHIN_S)
    assert key.fingerprint in a.revoked and a.alarms == []
    revoked = next(m for m in a.inbox if m["type"] == "revoked")
    assert len(revoked["rotations"]) == 1
    await leave_all([a, b], tasks)

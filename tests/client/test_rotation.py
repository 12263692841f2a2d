"""Delegation key rotation (issue 11, key lifecycle): a delegation replaces its key, the
new key signed by the old; its id stays the fingerprint of its first key. The other
side's pin follows the chain from the key it pinned; plans carry the current key and the
chain, so that an endpoint that pinned the old key still verifies them. A rotation the
pinned key did not sign is refused with an alarm."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from summitline.client.bilateral import Bilateral
from summitline.client.ice import loopback
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.session import CallSession, Identity
from summitline.core.plan import CallPlan, PlanError, Rotation, SignedPlan
from summitline.core.record import verify_export
from summitline.core.roles import MediaKind, Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.crypto.keystore import Keystore
from tests.client.test_session import WAIT_S, leave_all, until


async def test_a_rotated_key_is_followed_and_a_call_runs(
        ws_url: str, http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    first = b.key
    view = await b.rotate()
    assert view["id"] == first.fingerprint == b.id  # the id stays
    assert view["key"] == b.key.public.b64u != first.public.b64u
    assert [r["previous"] for r in view["rotations"]] == [first.public.b64u]
    # the old key signs nothing for the delegation any more
    r = await http.post(f"/api/delegations/{b.id}/rotations", json={
        "key": PrivateKey.generate().public.b64u, "at": 1, "signature": "A" * 86,
        "proof": "A" * 86, "name_signature": "A" * 86})
    assert r.status_code == 403

    assert await a.follow(bilateral.link_id) != []  # the notice for its operator
    assert a.pinned[b.id] == b.key.public and a.alarms == []
    assert await a.follow(bilateral.link_id) == []  # nothing new

    # a new plan: B's principal certified by B's new key, B's delegation with its chain
    people = (next(p for p in bilateral.plan.participants if p.delegation == a.id),
              participant(bilateral.b.principal, b.key, Role.PRINCIPAL,
                          bilateral.b.principal_name, "ru", delegation_id=b.id))
    plan = replace(bilateral.plan, call="call-rotated",
                   delegations=(a.delegation(), a.delegation(b.id)), participants=people)
    assert plan.to_json()["delegations"][1]["rotations"][0]["key"] == b.key.public.b64u
    await a.submit_plan(plan)
    await b.cosign_plan(plan)  # signed with the new key
    # a device of B that pinned B's first key (at enrolment) still verifies the plan
    old_pins = {b.id: first.public}
    sessions = [CallSession(ws_url, plan.call, bilateral.a.identity(), ice=loopback()),
                CallSession(ws_url, plan.call, Identity(bilateral.b.principal, old_pins),
                            ice=loopback())]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
    await a.control(plan.call, "start")
    await until(sessions, lambda s: all(s.frames(k) > 10 for k in MediaKind))
    await b.control(plan.call, "end")  # a control request signed with the new key
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    assert all(s.alarms == [] for s in sessions)
    for op in (a, b):
        await op.sign_record(plan.call, plan.hash)
    record = verify_export(await a.export_record(plan.call))  # self-contained, chain and all
    assert record.entries[-1].kind == "call.ended"
    await leave_all(sessions, [])

    # an old plan (B's first key) is no longer what A pinned: it refuses to co-sign one
    with pytest.raises(PlanError, match="not the one pinned"):
        a._refuse_flagged(replace(bilateral.plan, call="call-stale"))


class ForgedLink(httpx.AsyncBaseTransport):
    """A hostile server on the REST side: the link view shows B under a key of the
    attacker's, with a chain the attacker signed itself (it holds no key of B)."""

    def __init__(self, upstream: httpx.AsyncBaseTransport, victim: str,
                 attacker: PrivateKey, name: str) -> None:
        self.upstream, self.victim, self.attacker, self.name = upstream, victim, attacker, name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.upstream.handle_async_request(request)
        if request.method != "GET" or not request.url.path.startswith("/api/links/"):
            return response
        view = json.loads(await response.aread())
        for d in view["delegations"]:
            if d["id"] == self.victim:
                new, at = self.attacker.public.b64u, int(time.time() * 1000)
                statement = statements.rotation(d["id"], d["key"], new, at)
                d["rotations"] = [*d["rotations"], {
                    "previous": d["key"], "key": new, "at": at,
                    "signature": self.attacker.sign(statement),
                    "proof": self.attacker.sign(statement)}]
                d["key"] = new
                d["name_signature"] = self.attacker.sign(statements.register(self.name, new))
        return httpx.Response(200, json=view)

    async def aclose(self) -> None:
        await self.upstream.aclose()


async def test_a_forged_rotation_is_refused(server: str, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    attacker = PrivateKey.generate()
    transport = ForgedLink(httpx.AsyncHTTPTransport(), b.id, attacker, b.name)
    async with httpx.AsyncClient(base_url=server, transport=transport) as hostile_http:
        victim = Operator(hostile_http, a.name, a.key)
        victim.pinned, victim.names = dict(a.pinned), dict(a.names)
        before = victim.pinned[b.id]
        with pytest.raises(ApiError, match="did not sign"):
            await victim.follow(bilateral.link_id)
        assert victim.alarms and victim.pinned[b.id] == before == b.key.public
    # nor does a plan carrying such a chain verify anywhere
    d = a.delegation(b.id)
    statement = statements.rotation(b.id, b.key.public.b64u, attacker.public.b64u, 1)
    forged = replace(d, key=attacker.public, rotations=(Rotation(
        b.key.public, attacker.public, 1, attacker.sign(statement), attacker.sign(statement)),),
        name_signature=attacker.sign(statements.register(b.name, attacker.public.b64u)))
    with pytest.raises(PlanError, match="not signed by the key it retires"):
        forged.check()
    plan = replace(bilateral.plan, delegations=(a.delegation(), forged))
    with pytest.raises(PlanError):
        CallPlan.from_json(plan.to_json())
    with pytest.raises(PlanError):
        SignedPlan(plan, {}).verify({b.id: b.key.public})


async def test_pins_kept_in_a_keystore_follow_a_rotation_across_restarts(
        http: httpx.AsyncClient, bilateral: Bilateral, tmp_path: Path) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    store = Keystore(tmp_path / "us").create()
    kept = Operator(http, a.name, a.key, keystore=store)
    for did in (b.id,):  # what A pinned at link time, now in A's keystore
        view = {"key": a.pinned[did].b64u, "name": a.names[did][0],
                "name_signature": a.names[did][1]}
        kept.pin(did, view["key"], view["name"], view["name_signature"])
    first = b.key.public
    await b.rotate()
    assert await kept.follow(bilateral.link_id) != []
    # restarted from its keystore: the new key and the chain from the first, checked again
    again = Operator(http, a.name, a.key, keystore=Keystore(tmp_path / "us"))
    assert again.pinned[b.id] == b.key.public != first
    assert [r.previous for r in again.rotations[b.id]] == [first]
    assert await again.follow(bilateral.link_id) == []  # nothing new to follow
    # a keystore edited by hand to another key without a chain is refused at start
    edited = store.pin_views()[b.id]
    raw = json.loads((tmp_path / "us" / "pins.json").read_text())
    raw[b.id] = {**raw[b.id], "key": PrivateKey.generate().public.b64u, "rotations": []}
    (tmp_path / "us" / "pins.json").write_text(json.dumps(raw))
    with pytest.raises(ApiError):
        Operator(http, a.name, a.key, keystore=Keystore(tmp_path / "us"))
    assert edited["key"] == b.key.public.b64u

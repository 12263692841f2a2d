"""Issue 11, attacks 1 and 3, against the real server and Python endpoints: a delegation
vouches only for its own people, and names only itself.

Attack 1: delegation A drafts a plan that lists devices A holds as B's aide and as a
spare B principal. B's officer refuses to co-sign, the server refuses the plan, and
endpoints refuse it even when both delegations signed it; B's real principal joins its
real call (no ``seat-taken``) and A's planted aide never receives B's page.
Attack 3: a plan naming a delegation by a name it did not sign for itself is refused
by the co-signer, the server and the endpoints.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest

from summitline.client.bilateral import Bilateral, provision
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import Operator
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, Identity, SessionRefused
from summitline.core.plan import CallPlan, Participant, PlanError
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PrivateKey, short_fingerprint
from tests.client.test_hostile_server import assert_plan_refused, tamper_welcome
from tests.client.test_session import WAIT_S, leave_all
from tests.hostile import hostile

RU_AIDE = "Aide to the President"


async def enrol_and_certify(op: Operator, http: httpx.AsyncClient, name: str,
                            role: Role) -> PrivateKey:
    """A device of ``op``'s own delegation, enrolled and certified the way an office does
    it: the code to the device, the device's key to the server, the fingerprint compared."""
    key = PrivateKey.generate()
    code = await op.open_enrolment(name, role)
    r = await http.post("/api/enrolments", json={
        "code": code, "key": key.public.b64u,
        "signature": key.sign(statements.enrol(code, key.public.b64u))})
    assert r.status_code == 200, r.text
    await op.certify(key.fingerprint, short_fingerprint(key.fingerprint))
    return key


def planted(call: Bilateral, spare: PrivateKey, aide: PrivateKey) -> CallPlan:
    """A's plan for the same call: its own two devices listed as B's spare principal and
    B's aide, under the best certificates A can make (its own signature; B's certificate
    of another device)."""
    plan = call.plan
    a, b = call.a.operator, call.b.operator
    real_b = next(p for p in plan.participants if p.delegation == b.id)

    def as_b(key: PrivateKey, role: Role, name: str, certificate: str) -> Participant:
        return Participant(key.fingerprint, key.public, b.id, role, name, "ru", certificate)

    forged_by_a = a.key.sign(statements.device(b.id, aide.fingerprint, aide.public.b64u,
                                               "aide", RU_AIDE))
    return CallPlan(**{**plan.__dict__, "participants": (
        *plan.participants,
        as_b(spare, Role.PRINCIPAL, "President (spare terminal)", real_b.certificate),
        as_b(aide, Role.AIDE, RU_AIDE, forged_by_a))})


def signed_by_both(call: Bilateral, raw: dict[str, Any]) -> dict[str, Any]:
    """As if B's officer had signed without looking: the endpoints still refuse."""
    h = digest(raw)
    return {"plan": raw, "signatures": {op.id: op.key.sign(statements.plan(h))
                                        for op in (call.a.operator, call.b.operator)}}


async def test_a_planted_device_in_the_other_delegation_is_refused_everywhere(
        http: httpx.AsyncClient, ws_url: str) -> None:
    ru_aide = PrivateKey.generate()
    call = await provision(http, extra=[(1, ru_aide, Role.AIDE, RU_AIDE)])
    a, b = call.a.operator, call.b.operator
    # devices A holds: enrolled and certified by A, as A's own
    spare = await enrol_and_certify(a, http, "Spare terminal", Role.PRINCIPAL)
    fake_aide = await enrol_and_certify(a, http, "Fake aide", Role.AIDE)
    forged = planted(call, spare, fake_aide)
    raw = {**forged.to_json(), "call": "call-planted"}

    # B's officer: the review flags both, and it will not sign
    flags = b.review(forged).flags
    assert any("not certified by 'Russian Federation'" in f for f in flags), flags
    with pytest.raises(PlanError, match="not certified by 'Russian Federation'"):
        await b.cosign_plan(forged)
    # the server: neither with A's signature alone nor with both
    h = digest(raw)
    for signatures in ({a.id: a.key.sign(statements.plan(h))},
                       signed_by_both(call, raw)["signatures"]):
        r = await http.post("/api/plans", json={"plan": raw, "signatures": signatures})
        assert r.status_code == 422 and "not certified by" in r.json()["detail"], r.text
    assert (await signed_get(http, a.key, f"/api/plans/{h}")).status_code == 403  # none

    # the endpoints: served the planted plan (signed by both), they refuse it
    def serve_planted(signed: dict[str, Any]) -> None:
        signed.update(signed_by_both(call, {**forged.to_json()}))

    async with hostile(ws_url, down=tamper_welcome(serve_planted)) as proxy:
        await assert_plan_refused(proxy.url, call, http, "not certified by")

    # the real call: A's spare is no B principal, so B's real one takes its seat; B's
    # principal pages, and only B's real aide hears it
    attackers = [CallSession(ws_url, call.call, Identity(k, dict(a.pinned)), ice=loopback(),
                             reconnect=False, source=MediaSource(None, None))
                 for k in (spare, fake_aide)]
    for s in attackers:
        with pytest.raises(SessionRefused, match="not-admitted"):
            await asyncio.wait_for(s.run(), WAIT_S)
    ru = CallSession(ws_url, call.call, call.b.identity(), ice=loopback())
    aide = CallSession(ws_url, call.call, call.b.identity(ru_aide), ice=loopback(),
                       source=MediaSource(None, None))
    tasks = [asyncio.create_task(s.run()) for s in (ru, aide)]
    await asyncio.wait_for(asyncio.gather(ru.joined.wait(), aide.joined.wait()), WAIT_S)
    page = await ru.page()
    await asyncio.wait_for(aide.wait_for(lambda: bool(aide.pages)), WAIT_S)
    assert aide.pages[0]["id"] == page and ru.alarms == []
    for s in attackers:
        assert s.pages == [] and not s.joined.is_set()
    await leave_all([ru, aide], tasks)


async def test_a_delegation_name_it_did_not_sign_is_refused_everywhere(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    raw = bilateral.plan.to_json()
    renamed = copy.deepcopy(raw)
    renamed["call"] = "call-renamed"
    # A names B as it likes, and signs that name itself: only B can name B
    them = renamed["delegations"][1]
    them["name"] = "Republic of Elsewhere"
    them["name_signature"] = a.key.sign(statements.register(them["name"], them["key"]))
    with pytest.raises(PlanError, match="not the name the delegation signed"):
        CallPlan.from_json(renamed)
    h = digest(renamed)
    r = await http.post("/api/plans", json={"plan": renamed, "signatures": {
        a.id: a.key.sign(statements.plan(h))}})
    assert r.status_code == 422 and "not the name the delegation signed" in r.json()["detail"]

    # A names itself anew (a name it did sign): B's co-signer sees it differs from the
    # name A signed when the link was made, and refuses
    us = renamed["delegations"][0] = copy.deepcopy(raw["delegations"][0])
    renamed["delegations"][1] = copy.deepcopy(raw["delegations"][1])
    us["name"] = "The Free World"
    us["name_signature"] = a.key.sign(statements.register(us["name"], us["key"]))
    plan = CallPlan.from_json(renamed)  # well formed: A did sign this name
    flags = b.review(plan).flags
    assert any("it signed 'United States' for itself when linked" in f for f in flags), flags
    with pytest.raises(PlanError, match="when linked"):
        await b.cosign_plan(plan)

    # the endpoints refuse a renamed plan the server serves
    def rename(signed: dict[str, Any]) -> None:
        d = signed["plan"]["delegations"][1]
        d["name"] = "Republic of Elsewhere"
        d["name_signature"] = a.key.sign(statements.register(d["name"], d["key"]))

    async with hostile(ws_url, down=tamper_welcome(rename)) as proxy:
        await assert_plan_refused(proxy.url, bilateral, http, "not the name the delegation")

"""Attacker review of issue 11, items (e) and (f): what the co-signer keeps itself.

(f) B revokes a stolen device. A hostile server that "forgets" the revocation (or any
server at all) offers B a plan naming it: B's own review flags it and B refuses to
co-sign, with or without the server's help, and still after a restart from its keystore.
(e) A drafts a plan that moves B's Russian interpreter to the English channel: B's officer
stated "ru" when certifying it, so the review flags the plan and B refuses to co-sign.

The plans are served to B directly, as a hostile server would serve them; the real
server is used for enrolment, certification and revocation.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from summitline.client.bilateral import provision
from summitline.client.operator import Operator, participant
from summitline.core.plan import CallPlan, PlanError
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, short_fingerprint
from summitline.crypto.keystore import Keystore
from tests.client.test_certificates import enrol_and_certify


def with_extra(plan: CallPlan, call: str, *extra: object) -> CallPlan:
    return CallPlan(**{**plan.__dict__, "call": call,
                       "participants": (*plan.participants, *extra)})


async def test_a_plan_naming_a_device_this_delegation_revoked_is_flagged_and_not_cosigned(
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    call = await provision(http, cosign=False)
    a, first_b = call.a.operator, call.b.operator
    # B's operator with a keystore: what it revoked outlives the process
    store = Keystore(tmp_path / "ru").create()
    b = Operator(http, first_b.name, first_b.key, keystore=store)
    b.pinned, b.names, b.rotations = first_b.pinned, first_b.names, first_b.rotations
    tablet = await enrol_and_certify(b, http, "Aide tablet", Role.AIDE)
    row = next(r for r in await a.devices(b.id) if r["device"] == tablet.fingerprint)
    assert row["certified"]
    # a plan naming the tablet, drafted while it was still trusted, is clean
    before = with_extra(call.plan, "call-before", participant(
        tablet, b.id, Role.AIDE, "Aide tablet", "ru", certificate=row["certificate"]))
    assert b.review(before).flags == []

    assert (await b.revoke(tablet.fingerprint))["revoked"]
    # the hostile server keeps the device row and its certificate, and serves A's plan
    stolen = with_extra(call.plan, "call-stolen", participant(
        tablet, b.id, Role.AIDE, "Aide tablet", "ru", certificate=row["certificate"]))
    stolen.check()  # a well-formed plan: only B's own memory tells it apart
    flags = b.review(stolen).flags
    assert any("is a device this delegation revoked" in f for f in flags), flags
    with pytest.raises(PlanError, match="revoked"):
        await b.cosign_plan(stolen)
    # B's operator restarted from its keystore still remembers
    again = Operator(http, b.name, b.key, keystore=Keystore(tmp_path / "ru"))
    again.pinned, again.names = b.pinned, b.names
    assert again.revoked == {tablet.fingerprint}
    assert any("revoked" in f for f in again.review(stolen).flags)
    # the plan without the tablet is still fine
    assert again.review(call.plan).flags == []


async def test_a_plan_moving_our_interpreter_to_another_channel_is_flagged_and_not_cosigned(
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    call = await provision(http, cosign=False)
    a = call.a.operator
    store = Keystore(tmp_path / "ru").create()
    b = Operator(http, call.b.operator.name, call.b.operator.key, keystore=store)
    b.pinned, b.names = call.b.operator.pinned, call.b.operator.names
    # B's officer certifies its interpreter, stating its channel: Russian
    interp = PrivateKey.generate()
    code = await b.open_enrolment("Interpreter", Role.INTERPRETER)
    r = await http.post("/api/enrolments", json={
        "code": code, "key": interp.public.b64u,
        "signature": interp.sign(statements.enrol(code, interp.public.b64u))})
    assert r.status_code == 200, r.text
    await b.certify(interp.fingerprint, short_fingerprint(interp.fingerprint),
                    languages=["ru"])
    assert b.languages == {interp.fingerprint: ("ru",)}
    row = next(r for r in await a.devices(b.id) if r["device"] == interp.fingerprint)

    def plan_with(language: str) -> CallPlan:
        return with_extra(call.plan, f"call-{language}", a.participant(row, language))

    assert b.review(plan_with("ru")).flags == []
    # A (the drafter) makes B's Russian interpreter interpret into English
    moved = plan_with("en")
    flags = b.review(moved).flags
    assert any("is put in channel 'en'; this delegation stated ru" in f for f in flags), flags
    with pytest.raises(PlanError, match="channel 'en'"):
        await b.cosign_plan(moved)
    # the statement is kept in B's keystore, not on the server
    assert Operator(http, b.name, b.key, keystore=Keystore(tmp_path / "ru")).languages == \
        {interp.fingerprint: ("ru",)}

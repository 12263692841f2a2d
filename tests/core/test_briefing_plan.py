"""Briefing plans (issue 13): their rules, and the co-sign review of a delegation that
knows some of the others only through the host."""

from __future__ import annotations

from dataclasses import replace

import pytest

from summitline.core.plan import CallPlan, PlanError, SignedPlan, review
from summitline.core.roles import Role
from summitline.core.sas import plan_group_code
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey
from tests.factories import World

NAMES = ("United States", "France", "Germany", "Italy")


def briefing(world: World, size: int = 3) -> tuple[CallPlan, list[PrivateKey]]:
    keys = [world.us, *(PrivateKey.generate() for _ in range(size - 1))]
    plan = CallPlan(call="briefing-1", link=None, title="Briefing", host=world.us.fingerprint,
                    links=tuple(f"link-{i}" for i in range(1, size)),
                    delegations=tuple(world.delegation(k, NAMES[i]) for i, k in enumerate(keys)),
                    participants=tuple(world.participant(PrivateKey.generate(), k,
                                                         Role.PRINCIPAL, f"Head {i}", "en")
                                       for i, k in enumerate(keys)))
    return plan, keys


def pins(*keys: PrivateKey) -> dict[str, PublicKey]:
    return {k.fingerprint: k.public for k in keys}


def test_a_briefing_round_trips_and_is_not_a_bilateral() -> None:
    plan, _ = briefing(World())
    back = CallPlan.from_json(plan.to_json())
    assert back == plan and back.hash == plan.hash and back.briefing
    assert "link" not in plan.to_json() and plan.filed_under == ("link-1", "link-2")


def test_every_delegation_must_sign_a_briefing() -> None:
    plan, keys = briefing(World())
    sigs = {k.fingerprint: k.sign(statements.plan(plan.hash)) for k in keys}
    SignedPlan(plan, sigs).verify(pins(keys[1]))  # a guest's device: its own delegation
    del sigs[keys[2].fingerprint]
    with pytest.raises(PlanError, match="every delegation of the plan must sign it"):
        SignedPlan(plan, sigs).verify(pins(keys[1]))
    assert not SignedPlan(plan, sigs).complete


def test_a_guest_reviewing_sees_the_other_guests_introduced_by_the_host() -> None:
    world = World()
    plan, keys = briefing(world, 4)
    guest = keys[1]
    seen = review(plan, pins(guest, world.us), {})
    assert seen.flags == []
    introduced = [v for k, v in seen.lines if "introduced by" in v]
    assert introduced == ["Germany — introduced by United States",
                          "Italy — introduced by United States"]
    assert dict(seen.lines)["host"].startswith("United States · ")
    assert dict(seen.lines)["links"] == "link-1, link-2, link-3"
    assert plan.introduced_by(guest.fingerprint) == {
        keys[2].fingerprint: world.us.fingerprint, keys[3].fingerprint: world.us.fingerprint}
    assert plan.introduced_by(world.us.fingerprint) == {}


def test_a_briefing_whose_host_the_reviewer_did_not_pin_is_flagged() -> None:
    world = World()
    plan, keys = briefing(world)
    seen = review(plan, pins(keys[1]), {})  # a guest not linked with the host
    assert any("and the host is not either" in f for f in seen.flags)
    # a host pinned with another key introduces nobody
    seen = review(plan, {**pins(keys[1]), world.us.fingerprint: PrivateKey.generate().public},
                  {})
    assert any("not the one pinned with the link" in f for f in seen.flags)
    assert any("and the host is not either" in f for f in seen.flags)


def test_a_link_between_guests_is_a_pin_too() -> None:
    world = World()
    plan, keys = briefing(world)
    other = PrivateKey.generate()  # what this guest pinned for Germany through its own link
    seen = review(plan, {**pins(keys[1], world.us), keys[2].fingerprint: other.public}, {})
    assert seen.flags == ["the key of 'Germany' is not the one pinned with the link"]
    assert review(plan, pins(keys[1], world.us, keys[2]), {}).flags == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: replace(p, host=PrivateKey.generate().fingerprint), "host of a briefing"),
    (lambda p: replace(p, links=p.links[:1]), "one link per guest"),
    (lambda p: replace(p, links=(p.links[0], p.links[0])), "one link per guest"),
])
def test_malformed_briefings_are_refused(change, message) -> None:  # type: ignore[no-untyped-def]
    plan, _ = briefing(World())
    with pytest.raises(PlanError, match=message):
        change(plan).check()


def test_the_group_code_changes_with_any_key_or_the_plan() -> None:
    world = World()
    plan, _ = briefing(world)
    code = plan_group_code(plan)
    assert len(code) == 7 and code[3] == " "
    assert plan_group_code(replace(plan, title="Another")) != code
    swapped = replace(plan, delegations=(plan.delegations[0], plan.delegations[1],
                                         world.delegation(PrivateKey.generate(), "Germany")))
    assert plan_group_code(swapped) != code


def test_the_sfu_threshold_is_the_plans_own_and_signed() -> None:
    world = World()
    plan, _ = briefing(world, 4)
    assert plan.media_endpoints == 4 and not plan.wants_sfu  # 4 is not above 5
    assert "sfu_above" not in plan.to_json()  # absent: older plans keep their hash
    asks = replace(plan, sfu_above=0)
    assert asks.wants_sfu and asks.hash != plan.hash
    assert CallPlan.from_json(asks.to_json()) == asks
    assert dict(review(asks, {}, {}).lines)["sfu_above"].startswith("media through the SFU")
    assert not replace(plan, sfu_above=4).wants_sfu and replace(plan, sfu_above=3).wants_sfu
    for bad in (True, -1, 65, 2.0, "0"):
        with pytest.raises(PlanError, match="'sfu_above' must be an integer 0..64"):
            CallPlan.from_json({**plan.to_json(), "sfu_above": bad})


def test_a_bilateral_plan_has_no_sfu() -> None:
    world = World()
    plan, _ = briefing(world, 2)
    bilateral = replace(plan, host=None, links=(), link="link-1", sfu_above=0)
    with pytest.raises(PlanError, match="'sfu_above' is for briefings"):
        bilateral.check()
    assert not replace(bilateral, sfu_above=None).wants_sfu

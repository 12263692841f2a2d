from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from summitline.core.plan import CallPlan, PlanError, SignedPlan
from summitline.crypto import statements
from tests.factories import World


def test_plan_round_trips_through_json_with_the_same_hash() -> None:
    plan = World().plan()
    again = CallPlan.from_json(copy.deepcopy(plan.to_json()))
    assert again == plan
    assert again.hash == plan.hash


def test_any_change_to_the_plan_changes_its_hash() -> None:
    plan = World().plan()
    changed = plan.to_json()
    changed["press_window_s"] = 1
    assert CallPlan.from_json(changed).hash != plan.hash


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(version=3), "unsupported plan version"),
    (lambda p: p.update(version=1), "version 1 plan, from before device certificates"),
    (lambda p: p["participants"][0].pop("certificate"), "'certificate' must be"),
    (lambda p: p["delegations"][0].pop("name_signature"), "'name_signature' must be"),
    (lambda p: p["delegations"].pop(), "exactly 2 delegations"),
    (lambda p: p["participants"][0].update(role="king"), "unknown role"),
    (lambda p: p["participants"][0].update(role="press"), "press are not plan participants"),
    (lambda p: p["participants"].append(copy.deepcopy(p["participants"][0])), "more than once"),
    (lambda p: p["participants"][0].update(device="0" * 64), "not the fingerprint of its key"),
    (lambda p: p.update(press_window_s=-1), "press_window_s"),
    (lambda p: p.update(press_window_s=True), "press_window_s"),
    (lambda p: p.update(title=""), "title"),
    (lambda p: p["delegations"][0].update(key="AAAA"), "not a P-256 public key"),
])
def test_malformed_plans_are_refused_with_a_reason(mutate, message) -> None:  # type: ignore[no-untyped-def]
    raw = World().plan().to_json()
    mutate(raw)
    with pytest.raises(PlanError, match=message):
        CallPlan.from_json(raw)


def test_a_delegation_without_principal_is_refused() -> None:
    w = World()
    raw = w.plan().to_json()
    raw["participants"] = [p for p in raw["participants"] if p["delegation"] != w.ru.fingerprint]
    with pytest.raises(PlanError, match="Russian Federation.*no principal"):
        CallPlan.from_json(raw)


def test_a_plan_signed_by_both_verifies_against_the_pinned_keys() -> None:
    w = World()
    signed = w.signed()
    signed.verify({w.us.fingerprint: w.us.public, w.ru.fingerprint: w.ru.public})
    assert signed.complete


def test_a_plan_signed_by_one_delegation_is_refused() -> None:
    w = World()
    signed = w.signed()
    del signed.signatures[w.ru.fingerprint]
    with pytest.raises(PlanError, match="not signed by 'Russian Federation'"):
        signed.verify()
    assert [d.name for d in signed.missing()] == ["Russian Federation"]


def test_a_signature_over_another_plan_is_refused() -> None:
    w = World()
    signed = w.signed()
    other = w.plan(press_window_s=60)
    signed.signatures[w.ru.fingerprint] = w.ru.sign(statements.plan(other.hash))
    with pytest.raises(PlanError, match="signature of 'Russian Federation' on the plan is invalid"):
        signed.verify()


def test_a_plan_whose_delegation_key_is_not_the_pinned_one_is_refused() -> None:
    w, impostor = World(), World()
    # the impostor's plan is perfectly signed, by the wrong keys
    with pytest.raises(PlanError, match="no delegation of the plan is one this device trusts"):
        impostor.signed().verify({w.us.fingerprint: w.us.public, w.ru.fingerprint: w.ru.public})


def test_a_device_that_pins_only_its_own_delegation_trusts_what_it_signed() -> None:
    w = World()
    w.signed().verify({w.us.fingerprint: w.us.public})
    with pytest.raises(PlanError, match="not the pinned key"):
        w.signed().verify({w.us.fingerprint: w.ru.public})


def test_signed_plan_json_round_trip() -> None:
    signed = World().signed()
    again = SignedPlan.from_json(signed.to_json())
    again.verify()
    assert again.plan.hash == signed.plan.hash


def test_unknown_fields_are_refused_so_what_is_read_is_what_was_signed() -> None:
    raw = World().plan().to_json()
    raw["interpreter_videp"] = raw.pop("interpreter_video")
    with pytest.raises(PlanError, match="unknown field"):
        CallPlan.from_json(raw)
    raw = World().plan().to_json()
    raw["participants"][0]["rank"] = "general"
    with pytest.raises(PlanError, match="unknown field"):
        CallPlan.from_json(raw)


@pytest.mark.parametrize(("channels", "window", "message"), [
    (["fr"], 60, "no channel of the plan"),
    (["ru", "ru"], 60, "sorted, without repeats"),
    ([], 60, "non-empty list"),
    ("ru", 60, "non-empty list"),
    (["ru"], 0, "need a press window"),
])
def test_press_channels_must_be_channels_of_the_plan(channels: object, window: int,
                                                    message: str) -> None:
    obj = World().plan(press_window_s=window).to_json()
    obj["press_channels"] = channels
    with pytest.raises(PlanError, match=message):
        CallPlan.from_json(obj)


def test_press_channels_round_trip_and_plans_without_them_keep_their_hash() -> None:
    world = World()
    plain = world.plan(press_window_s=60)
    assert "press_channels" not in plain.to_json()
    with_press = replace(plain, press_channels=("ru",))
    again = CallPlan.from_json(with_press.to_json())
    assert again.press_channels == ("ru",) and again.hash == with_press.hash != plain.hash

"""The shared vectors (tests/vectors/shared.json), from the Python side. The browser
checks the same file in tests/browser/test_keys.py."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from summitline.core import policy
from summitline.core.plan import PlanError, SignedPlan
from summitline.core.roles import Phase, Role
from summitline.core.sas import plan_group_code, sas
from summitline.crypto import sdp
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import PublicKey
from tests.factories import World

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "shared.json").read_text())
PLANS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "plans.json").read_text())


def test_canonical_json() -> None:
    for v in VECTORS["canonical"]:
        assert canonical(v["value"]).decode() == v["canonical"]


def test_signatures_verify() -> None:
    key = PublicKey.from_b64u(VECTORS["key"])
    for v in VECTORS["signatures"]:
        key.verify(v["statement"], v["signature"])


def test_sdp_fingerprints_and_sas() -> None:
    assert sdp.fingerprints(VECTORS["sdp"]["sdp"]) == VECTORS["sdp"]["fingerprints"]
    for v in VECTORS["sas"]:
        assert sas(v["call"], v["a"], v["b"]) == v["sas"]


def test_signed_plan() -> None:
    signed = SignedPlan.from_json(PLANS["signed_plan"])
    assert signed.plan.hash == PLANS["plan_hash"]
    signed.verify({k: PublicKey.from_b64u(v) for k, v in PLANS["pinned"].items()})


@pytest.mark.parametrize("case", PLANS["refused"], ids=lambda c: c["case"])
def test_refused_plans(case: dict[str, Any]) -> None:
    """Each is signed by both delegations, and still refused: by the browser too
    (tests/browser/test_keys.py), for the same reason."""
    with pytest.raises(PlanError, match=case["error"]):
        SignedPlan.from_json(case["signed_plan"]).verify(
            {k: PublicKey.from_b64u(v) for k, v in PLANS["pinned"].items()})


def test_a_briefing_signed_by_all_reads_alike_with_its_group_code() -> None:
    b = PLANS["briefing"]
    signed = SignedPlan.from_json(b["signed_plan"])
    assert signed.plan.briefing and signed.plan.hash == b["plan_hash"]
    signed.verify({k: PublicKey.from_b64u(v) for k, v in b["pinned"].items()})
    assert plan_group_code(signed.plan) == b["group_code"]
    host = signed.plan.host
    guests = [d.id for d in signed.plan.delegations if d.id != host]
    # a guest's people know the other guest through the host; the host's people know all
    assert signed.plan.introduced_by(guests[0]) == {guests[1]: host}
    assert signed.plan.introduced_by(host) == {}


@pytest.mark.parametrize("case", PLANS["briefing"]["refused"], ids=lambda c: c["case"])
def test_refused_briefings(case: dict[str, Any]) -> None:
    """Each signed by every delegation it names (but one, where that is the point), and
    refused: by the browser too, for the same reason."""
    with pytest.raises(PlanError, match=re.escape(case["error"])):
        SignedPlan.from_json(case["signed_plan"]).verify(
            {k: PublicKey.from_b64u(v) for k, v in PLANS["briefing"]["pinned"].items()})


def test_policy_table_is_what_the_code_says() -> None:
    plan = World().plan()
    assert len(VECTORS["policy"]) > 50
    for row in VECTORS["policy"]:
        p = replace(plan, interpreter_video=row["interpreter_video"])
        a = next(x for x in p.participants if x.role is Role(row["sender"]))
        b = next(x for x in p.participants if x.role is Role(row["receiver"])
                 and x.device != a.device)
        got = sorted(str(k) for k in policy.media(p, Phase(row["phase"]), a.device, b.device))
        assert got == row["media"], row

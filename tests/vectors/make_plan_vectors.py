"""Write tests/vectors/plans.json: signed plans both Python and the browser must read the
same way (the accepted one hashes alike; each refused one is refused by both, for the
reason named).

Run it again only to change the vectors on purpose
(``python -m tests.vectors.make_plan_vectors``); both test suites then check the new file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from summitline.core.plan import SignedPlan
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PrivateKey
from tests.factories import World

OUT = Path(__file__).with_name("plans.json")


def resigned(world: World, plan: dict[str, Any]) -> dict[str, Any]:
    """``plan`` signed by both delegations, as if both officers had signed it blindly:
    the endpoint must still refuse what is wrong inside."""
    h = digest(plan)
    return {"plan": plan, "signatures": {k.fingerprint: k.sign(statements.plan(h))
                                         for k in (world.us, world.ru)}}


def refused(world: World, good: SignedPlan) -> list[dict[str, Any]]:
    cases = []
    us, ru = world.us, world.ru

    def case(name: str, error: str, change: Any) -> None:
        plan = copy.deepcopy(good.plan.to_json())
        change(plan)
        cases.append({"case": name, "error": error, "signed_plan": resigned(world, plan)})

    planted = PrivateKey.generate()  # a device the US delegation holds

    def plant(role: str, name: str) -> Any:
        def change(plan: dict[str, Any]) -> None:
            # The US certifies its own device, but lists it under the Russian delegation.
            plan["participants"].append({
                "device": planted.fingerprint, "key": planted.public.b64u,
                "delegation": ru.fingerprint, "role": role, "name": name, "language": "ru",
                "certificate": us.sign(statements.device(ru.fingerprint, planted.fingerprint,
                                                         planted.public.b64u, role, name))})
        return change

    case("planted aide", "is not certified by", plant("aide", "RU aide"))
    case("planted spare principal", "is not certified by", plant("principal", "RU spare"))

    def promote(plan: dict[str, Any]) -> None:
        aide = next(p for p in plan["participants"] if p["role"] == "aide")
        aide["role"] = "principal"  # certified as an aide, listed as a principal
    case("role not the certified one", "is not certified by", promote)

    def rename(plan: dict[str, Any]) -> None:
        plan["delegations"][1]["name"] = "Republic of Elsewhere"
    case("delegation name not self-signed", "not the name the delegation signed", rename)

    def borrow(plan: dict[str, Any]) -> None:
        # The US signs a name for the Russian key: only a delegation names itself.
        d = plan["delegations"][1]
        d["name"] = "Elsewhere"
        d["name_signature"] = us.sign(statements.register("Elsewhere", d["key"]))
    case("delegation named by the other", "not the name the delegation signed", borrow)

    def fraction(plan: dict[str, Any]) -> None:
        plan["scheduled_ms"] = plan["scheduled_ms"] + 0.5  # a start both read alike or none
    case("planned start not an integer", "'scheduled_ms' must be an integer", fraction)

    def line_break(plan: dict[str, Any]) -> None:
        plan["call"] = "call-1\r\nX-Injected: 1"  # it goes into URLs and headers
    case("call id with a line break", "'call' must be 1..120 of the characters", line_break)

    def dots(plan: dict[str, Any]) -> None:
        plan["call"] = ".."  # a URL client folds it away: the call could never be read
    case("call id of dots", "the first a letter or digit", dots)
    return cases


def main() -> None:
    world = World()
    # with press channels and a planned start, so that the browser's plan check reads them
    good = world.signed(replace(world.plan(press_window_s=90), press_channels=("ru",),
                                scheduled_ms=1_638_892_800_000))  # 2021-12-07 16:00 UTC
    doc = {
        "signed_plan": good.to_json(), "plan_hash": good.plan.hash,
        "pinned": {world.us.fingerprint: world.us.public.b64u},
        "refused": refused(world, good),
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(doc['refused'])} refused plans)")


if __name__ == "__main__":
    main()

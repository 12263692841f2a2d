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

from summitline.core.plan import CallPlan, SignedPlan
from summitline.core.roles import Role
from summitline.core.sas import plan_group_code
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

    def loud(plan: dict[str, Any]) -> None:
        plan["audio"] = "loud"  # neither processing on nor off: both refuse it
    case("audio of no known kind", "'audio' must be", loud)

    def voice(plan: dict[str, Any]) -> None:
        plan["audio"] = "voice"  # the default is said by absence: one plan, one hash
    case("audio voice said out", "'audio' must be", voice)
    return cases


def briefing(world: World) -> dict[str, Any]:
    """A briefing hosted by the US with France and Germany, signed by all three, its
    group code, and briefings each signed by all their delegations and still refused."""
    fr, de = PrivateKey.generate(), PrivateKey.generate()
    heads = {world.us: "United States", fr: "France", de: "Germany"}
    people = {k: PrivateKey.generate() for k in heads}
    plan = CallPlan(
        call="briefing-1", link=None, title="Briefing of allies", host=world.us.fingerprint,
        links=("link-us-fr", "link-us-de"),
        delegations=tuple(world.delegation(k, n) for k, n in heads.items()),
        participants=tuple(world.participant(people[k], k, Role.PRINCIPAL, f"Head of {n}",
                                             n[:2].lower()) for k, n in heads.items()))

    def signed_by(keys: list[PrivateKey], plan_json: dict[str, Any]) -> dict[str, Any]:
        h = digest(plan_json)
        return {"plan": plan_json,
                "signatures": {k.fingerprint: k.sign(statements.plan(h)) for k in keys}}

    good = SignedPlan.from_json(signed_by(list(heads), plan.to_json()))
    cases = []

    def case(name: str, error: str, change: Any, signers: list[PrivateKey] | None = None
             ) -> None:
        body = copy.deepcopy(good.plan.to_json())
        change(body)
        keys = [k for k in [*heads, *extra] if any(
            d["id"] == k.fingerprint for d in body["delegations"])]
        cases.append({"case": name, "error": error,
                      "signed_plan": signed_by(signers or keys, body)})

    extra = [PrivateKey.generate() for _ in range(5)]

    def nine(body: dict[str, Any]) -> None:
        body["delegations"] += [world.delegation(k, f"Guest {i}").to_json()
                                for i, k in enumerate(extra)]
        body["links"] += [f"link-{i}" for i in range(6)]
    extra.append(world.ru)
    case("briefing of nine delegations", "names 2 to 8 delegations", nine)

    def elsewhere(body: dict[str, Any]) -> None:
        body["host"] = world.ru.fingerprint
    case("host not one of its delegations", "host of a briefing must be one of", elsewhere)

    def short(body: dict[str, Any]) -> None:
        body["links"] = body["links"][:1]
    case("one link short", "one link per guest", short)

    def both(body: dict[str, Any]) -> None:
        body["link"] = "link-us-fr"
    case("a link and links", "names its 'links'", both)

    def crowd(body: dict[str, Any]) -> None:
        body["participants"] += [world.participant(
            PrivateKey.generate(), world.us, Role.PRINCIPAL, f"US principal {i}", "en"
        ).to_json() for i in range(6)]
    case("nine principals", "at most 8 principals", crowd)

    def planted(body: dict[str, Any]) -> None:
        # the host certifies a device of its own and lists it under France
        key = PrivateKey.generate()
        body["participants"].append({
            "device": key.fingerprint, "key": key.public.b64u, "delegation": fr.fingerprint,
            "role": "aide", "name": "French aide", "language": "fr",
            "certificate": world.us.sign(statements.device(
                fr.fingerprint, key.fingerprint, key.public.b64u, "aide", "French aide"))})
    case("a device planted in a guest delegation", "is not certified by", planted)
    def shared_booth(body: dict[str, Any]) -> None:
        # a US interpreter and a French one into French: one booth for two delegations
        for key, by, name in ((PrivateKey.generate(), world.us, "US interpreter"),
                              (PrivateKey.generate(), fr, "French interpreter")):
            body["participants"].append(world.participant(key, by, Role.INTERPRETER, name,
                                                          "fr").to_json())
    case("one channel, interpreters of two delegations", "interpreters of two delegations",
         shared_booth)
    def look_alike(body: dict[str, Any]) -> None:
        # a channel that reads like "fr" beside it
        body["participants"].append(world.participant(
            PrivateKey.generate(), fr, Role.INTERPRETER, "French interpreter", "fr\u200b"
        ).to_json())
    case("a channel that reads like another", "is not a language tag", look_alike)
    case("a guest's signature missing", "is not signed by", lambda body: None,
         signers=[world.us, de])
    return {"signed_plan": good.to_json(), "plan_hash": good.plan.hash,
            "pinned": {world.us.fingerprint: world.us.public.b64u},
            "group_code": plan_group_code(good.plan), "refused": cases}


def main() -> None:
    world = World()
    # with press channels, a planned start and studio audio, so that the browser's plan
    # check reads them
    good = world.signed(replace(world.plan(press_window_s=90), press_channels=("ru",),
                                scheduled_ms=1_638_892_800_000,  # 2021-12-07 16:00 UTC
                                audio="studio"))
    doc = {
        "signed_plan": good.to_json(), "plan_hash": good.plan.hash,
        "pinned": {world.us.fingerprint: world.us.public.b64u},
        "refused": refused(world, good),
        "briefing": briefing(world),
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(doc['refused'])} refused plans)")


if __name__ == "__main__":
    main()

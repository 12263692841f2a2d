"""The browser endpoint's own rules for a briefing (issue 13), as the Python endpoint's
(tests/client/test_hostile_briefing.py): it takes a start only from the host, and alarms
when the server announces a device the plan gives it no link with. The page's session is
fed what a hostile server would send, without a network."""

from __future__ import annotations

import time
from typing import Any

from playwright.async_api import Browser

from summitline.core.plan import CallPlan, SignedPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.browser.people import new_page
from tests.factories import World

FEED = """async (v) => {
  const { CallSession } = await import("/session.js");
  const s = new CallSession({ url: "ws://127.0.0.1:9/ws", call: v.call,
                              identity: { fingerprint: v.me }, pinned: {}, localStream: null });
  s.signed = v.signed;
  const out = {};
  await s.takePhase({ phase: "open", start: v.guestStart });
  out.afterGuest = s.phase;
  await s.takePhase({ phase: "open", start: v.hostStart });
  out.afterHost = s.phase;
  out.outsider = s.stranger(v.outsider);
  out.aide = s.stranger(v.aide);
  out.peer = s.stranger(v.peer);
  out.alarms = s.alarms;
  return out;
}"""


async def test_a_browser_takes_a_briefing_s_start_only_from_its_host(
        browser: Browser, server: str) -> None:
    world = World()
    keys = [world.us, PrivateKey.generate(), PrivateKey.generate()]
    people = [PrivateKey.generate() for _ in keys]
    aide = PrivateKey.generate()
    plan = CallPlan(call="briefing-web", link=None, title="Briefing", host=world.us.fingerprint,
                    links=("link-1", "link-2"),
                    delegations=tuple(world.delegation(k, n) for k, n in zip(
                        keys, ("United States", "France", "Germany"), strict=True)),
                    participants=(*(world.participant(p, k, Role.PRINCIPAL, f"Head {i}", "en")
                                    for i, (p, k) in enumerate(zip(people, keys, strict=True))),
                                  world.participant(aide, keys[2], Role.AIDE, "Aide", "de")))
    signed = SignedPlan(plan, {k.fingerprint: k.sign(statements.plan(plan.hash)) for k in keys})

    def start(by: PrivateKey) -> dict[str, Any]:
        at = int(time.time() * 1000)
        return {"delegation": by.fingerprint, "at": at,
                "signature": by.sign(statements.control(plan.call, "start", by.fingerprint, at))}

    page = await new_page(browser)
    await page.goto(server + "/")
    out = await page.evaluate(FEED, {
        "call": plan.call, "me": people[1].fingerprint, "signed": signed.to_json(),
        "guestStart": start(keys[2]), "hostStart": start(world.us),
        "outsider": PrivateKey.generate().fingerprint, "aide": aide.fingerprint,
        "peer": people[2].fingerprint})
    assert out["afterGuest"] == "planned" and out["afterHost"] == "open"
    assert out["outsider"] is True and out["aide"] is True and out["peer"] is False
    alarms = out["alarms"]
    assert len(alarms) == 3, alarms
    assert "signed start, not the host's" in alarms[0]
    assert "device outside the plan" in alarms[1] and "no link with it" in alarms[2]

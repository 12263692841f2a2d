"""The browser's link rules (web/endpoint.js) give, in real Chromium, exactly the actions
that the Python rules (summitline.core.endpoint) recorded in tests/vectors/endpoint.json,
step by step, for every case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from tests.browser.people import new_page

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "endpoint.json").read_text())

# Replays every case from a fresh state; keeps each state it passed through and then
# applies each step's input again to the state it had met: the same actions again
# prove that no later step changed an earlier state in place (the state is immutable).
REPLAY = """async (cases) => {
  const ep = await import("/endpoint.js");
  const out = {};
  for (const c of cases) {
    const steps = [], states = [];
    let state = ep.endpoint(c.me);
    try {
      for (const step of c.steps) {
        states.push(state);
        let actions;
        [state, actions] = ep.apply(state, step.input);
        steps.push(actions);
      }
      const again = c.steps.map((step, i) => ep.apply(states[i], step.input)[1]);
      out[c.name] = { steps, again };
    } catch (err) {
      out[c.name] = { steps, error: `${err.name}: ${err.message}` };
    }
  }
  return out;
}"""


async def test_every_case_gives_the_recorded_actions(browser: Browser, server: str) -> None:
    page = await new_page(browser)
    await page.goto(server + "/")
    cases: list[dict[str, Any]] = VECTORS["cases"]
    got: dict[str, dict[str, Any]] = await page.evaluate(REPLAY, cases)
    assert len(cases) >= 15 and sorted(got) == sorted(c["name"] for c in cases)
    mismatches = []
    for case in cases:
        name, result = case["name"], got[case["name"]]
        for i, step in enumerate(case["steps"]):
            if i >= len(result["steps"]):
                mismatches.append(f"{name!r}, step {i} ({step['input']['type']}): "
                                  f"raised {result['error']}")
                break
            if result["steps"][i] != step["actions"]:
                mismatches.append(f"{name!r}, step {i}: input {step['input']}\n"
                                  f"  expected {step['actions']}\n  got      {result['steps'][i]}")
                break  # later steps follow from a state that already differs
        else:
            if result["again"] != [s["actions"] for s in case["steps"]]:
                mismatches.append(f"{name!r}: applying a step again to the state it had met "
                                  "gives other actions (a state was changed in place)")
    assert not mismatches, "\n".join(mismatches)
    # the vectors exercise what they are for: repairs, reports and alarms all occur
    kinds = {a["type"] for steps in got.values() for actions in steps["steps"]
             for a in actions}
    assert kinds == {"offer", "answer", "close", "report", "status", "alarm"}

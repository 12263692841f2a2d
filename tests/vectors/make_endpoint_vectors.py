"""Write tests/vectors/endpoint.json: the link rules' scenarios (``endpoint_cases.py``)
with the actions the Python rules give for each input. ``web/endpoint.js`` must give the
same (tests/browser/test_endpoint_vectors.py); tests/core/test_endpoint.py checks that
this file is what the Python rules give today.

Run it again only to change the rules on purpose:
``python3 -m tests.vectors.make_endpoint_vectors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from summitline.core import endpoint as ep
from tests.vectors.endpoint_cases import CASES

OUT = Path(__file__).with_name("endpoint.json")


def replay(me: str, inputs: list[ep.Input]) -> list[dict[str, Any]]:
    state, steps = ep.Endpoint(me), []
    for item in inputs:
        state, actions = state.apply(item)
        steps.append({"input": ep.to_json(item), "actions": [ep.to_json(a) for a in actions]})
    return steps


def vectors() -> dict[str, Any]:
    return {"cases": [{"name": name, "me": me, "steps": replay(me, inputs)}
                      for name, (me, inputs) in CASES.items()]}


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")

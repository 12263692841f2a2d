"""Write tests/vectors/shared.json: the vectors both Python and the browser must agree on.

Run it again only to change the vectors on purpose (``python tests/vectors/make_vectors.py``);
both test suites then check the new file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from pathlib import Path

from summitline.core import policy
from summitline.core.roles import Phase, Role
from summitline.core.sas import sas
from summitline.crypto import sdp, statements
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import PrivateKey
from tests.factories import World

OUT = Path(__file__).with_name("shared.json")

TRICKY = [
    {"b": 1, "a": [True, False, None], "A": "upper first", "é": "after ASCII"},
    {"text": "quote \" backslash \\ newline \n tab \t nul \u0000 bell \u0007 end"},
    {"emoji": "\U0001f600", "cyrillic": "Президент",
     "keys": {"\u00e9": 1, "z": 2, "\U0001f600": 3}},
    {"numbers": [0, -1, 9007199254740991, -9007199254740991]},
    {"nested": {"deep": {"deeper": [[], {}, [{"x": ""}]]}}},
]


def main() -> None:
    key = PrivateKey.generate()
    sdp_text = ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
                "a=fingerprint:sha-256 ab:cd:EF:01:23\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
                "a=fingerprint:sha-256 AB:CD:EF:01:23\r\n")
    signed_statements = [
        statements.register("Президент", key.public.b64u),
        statements.link("link-1", ["f" * 64, "0" * 64]),
        statements.join("call-1", "a" * 64, "nonce-nonce-nonce"),
        statements.sdp(call="call-1", plan_hash="b" * 64, sender="a" * 64, receiver="c" * 64,
                       generation=3, kind="offer",
                       sdp_hash=hashlib.sha256(sdp_text.encode()).hexdigest()),
        statements.control("call-1", "start", "d" * 64, 1_700_000_000_000),
        statements.enrolment("d" * 64, "e" * 64, "President", "principal"),
        statements.enrol("code-code-code-code", key.public.b64u),
    ]
    world = World()  # the signed plan is in plans.json (make_plan_vectors.py)
    table = []
    for s_role, r_role, phase, video in itertools.product(
            list(Role), list(Role), list(Phase), [False, True]):
        if Role.PRESS in (s_role, r_role):
            continue  # press are never plan participants
        plan = world.plan()
        a = next((p for p in plan.participants if p.role is s_role), None)
        b = next((p for p in plan.participants if a and p.role is r_role
                  and p.device != a.device), None)
        if a is None or b is None:
            continue  # the test world has no device of that role
        plan = replace(plan, interpreter_video=video)
        table.append({"sender": str(s_role), "receiver": str(r_role), "phase": str(phase),
                      "interpreter_video": video,
                      "media": sorted(str(k) for k in policy.media(plan, phase, a.device,
                                                                   b.device))})
    doc = {
        "canonical": [{"value": v, "canonical": canonical(v).decode()} for v in TRICKY],
        "key": key.public.b64u,
        "signatures": [{"statement": s, "signature": key.sign(s)} for s in signed_statements],
        "sdp": {"sdp": sdp_text, "fingerprints": sdp.fingerprints(sdp_text)},
        "sas": [{"call": "call-1", "a": ["sha-256 AA:BB"], "b": ["sha-256 CC:DD"],
                 "sas": sas("call-1", ["sha-256 AA:BB"], ["sha-256 CC:DD"])}],
        "policy": table,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(table)} policy rows)")


if __name__ == "__main__":
    main()

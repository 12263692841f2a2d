"""Write the worked examples of docs/protocol.md (section 2.5) from the code.

Every statement builder of ``crypto/statements.py`` gets one example: its arguments
(``EXAMPLES``), the exact bytes that are signed, and a signature by a published example
key. tests/test_protocol_doc.py reads the section back out of the document and checks
each example against the code, so the document cannot drift from what runs.

Run it again after adding or changing a statement:
``python3 -m tests.vectors.make_protocol_examples``.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from summitline.crypto import statements
from summitline.crypto.encoding import b64u, canonical, unb64u
from summitline.crypto.keys import PrivateKey

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BEGIN, END = "<!-- examples:begin -->", "<!-- examples:end -->"

# The example key: its private scalar is published here on purpose. Never use it.
EXAMPLE_SCALAR = int.from_bytes(hashlib.sha256(b"summitline example key").digest(), "big")
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order

EXAMPLE_KEY = PrivateKey(ec.derive_private_key(EXAMPLE_SCALAR, ec.SECP256R1()))
# The key an example rotation brings (scalar + 1; its private half plays no part here).
NEXT_KEY = PrivateKey(ec.derive_private_key(EXAMPLE_SCALAR + 1, ec.SECP256R1()))
FP = EXAMPLE_KEY.fingerprint  # stands for every device and delegation id below
OTHER = hashlib.sha256(b"another device").hexdigest()
CALL, PLAN = "summit-2021-12-07", hashlib.sha256(b"example plan").hexdigest()
AT = 1638892800000  # 2021-12-07T16:00:00Z
EXAMPLE_SDP = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
               "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
               "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n")
EXAMPLE_CODE = "Zm9yIGV4YW1wbGUgb25seSEh"
EXAMPLE_TEXT = "Both sides set out their positions. Sanctions were discussed."

# builder name -> keyword arguments of its example
EXAMPLES: dict[str, dict[str, Any]] = {
    "plan": {"plan_hash": PLAN},
    "link": {"link_id": "us-ru", "delegations": [OTHER, FP]},
    "join": {"call": CALL, "device": FP, "nonce": "q3X9aZ0bYc1dWe2fVg3hUi4j"},
    "sdp": {"call": CALL, "plan_hash": PLAN, "sender": FP, "receiver": OTHER,
            "generation": 1, "kind": "offer",
            "sdp_hash": hashlib.sha256(EXAMPLE_SDP.encode()).hexdigest()},
    "record_head": {"call": CALL, "plan_hash": PLAN, "seq": 41,
                    "head": hashlib.sha256(b"last entry").hexdigest()},
    "control": {"call": CALL, "action": "start", "delegation": FP, "at_ms": AT},
    "readout": {"call": CALL, "delegation": FP, "action": "publish", "at_ms": AT,
                "text_hash": statements.text_hash(EXAMPLE_TEXT)},
    "photo": {"call": CALL, "delegation": FP, "action": "publish", "at_ms": AT,
              "photo_id": hashlib.sha256(b"a jpeg").hexdigest()},
    "page": {"call": CALL, "principal": FP, "page_id": "p4Ge1dAbCdEfGhIjKlMnOp", "at_ms": AT},
    "ack": {"call": CALL, "aide": FP, "page_id": "p4Ge1dAbCdEfGhIjKlMnOp", "at_ms": AT},
    "register": {"name": "Delegation of Example", "key": EXAMPLE_KEY.public.b64u},
    "enrolment": {"delegation": FP, "code_hash": hashlib.sha256(
        EXAMPLE_CODE.encode("ascii")).hexdigest(), "name": "Interpreter 1",
        "role": "interpreter"},
    "enrol": {"code": EXAMPLE_CODE, "key": EXAMPLE_KEY.public.b64u},
    "booth": {"call": CALL, "plan_hash": PLAN, "channel": "ru", "action": "handover",
              "sender": FP, "seq": 7, "at_ms": AT, "receiver": OTHER},
    "read": {"server": "https://summit.example.org", "method": "GET",
             "path": f"/api/calls/{CALL}/record?after=3", "signer": FP, "at_ms": AT},
    "device": {"delegation": FP, "device": FP, "key": EXAMPLE_KEY.public.b64u,
               "role": "interpreter", "name": "Interpreter 1"},
    "revocation": {"delegation": FP, "device": OTHER, "at_ms": AT},
    # the example key (as the delegation's first) retires itself for the next one
    "rotation": {"delegation": FP, "previous": EXAMPLE_KEY.public.b64u,
                 "key": NEXT_KEY.public.b64u, "at_ms": AT},
    "frame_key": {"call": CALL, "plan_hash": PLAN, "sender": FP, "receiver": OTHER,
                  "ecdh": NEXT_KEY.public.b64u, "for_ecdh": EXAMPLE_KEY.public.b64u,
                  "keys": [{"kind": "audio", "key_id": 1, "wrapped": "A" * 75},
                           {"kind": "video", "key_id": 1, "wrapped": "B" * 75}]},
}
# Helpers of statements.py that build no statement.
NOT_STATEMENTS = {"text_hash", "origin"}


def builders() -> dict[str, Callable[..., dict[str, Any]]]:
    return {name: fn for name, fn in inspect.getmembers(statements, inspect.isfunction)
            if fn.__module__ == statements.__name__ and not name.startswith("_")
            and name not in NOT_STATEMENTS}


def low_s(signature: str) -> str:
    """The signature with s in the lower half of the group order (one form per signature)."""
    raw = unb64u(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    return b64u(r + min(s, _N - s).to_bytes(32, "big"))


def published(text: str) -> dict[str, tuple[str, str]]:
    """The examples a document holds: builder name -> (signed bytes, signature)."""
    found = re.findall(r"```json statement:(\w+)\n(.*?)\n```\n\nsignature: `([^`]*)`",
                       text, re.DOTALL)
    return {name: (signed, signature) for name, signed, signature in found}


def section(before: dict[str, tuple[str, str]] | None = None) -> str:
    """The section; a signature already published for the same bytes is kept (ECDSA
    signatures are randomised: a new one for unchanged bytes would be a needless diff)."""
    before = before or {}
    lines = [
        BEGIN,
        "### 2.5 Worked examples",
        "",
        "Generated from the code by `python3 -m tests.vectors.make_protocol_examples`;",
        "`tests/test_protocol_doc.py` reads this section back and checks every line of it",
        "against the code. The example key's private scalar is published here on purpose:",
        "",
        f"- private scalar (hex): `{EXAMPLE_SCALAR:064x}`",
        f"- public key: `{EXAMPLE_KEY.public.b64u}`",
        f"- fingerprint (every device and delegation id in the examples): `{FP}`",
        f"- short fingerprint: `{'-'.join(FP[:20].upper()[i:i + 4] for i in range(0, 20, 4))}`",
        "",
        "The SDP of the `sdp` example, as a JSON string (its hash is the hex SHA-256 of its",
        "UTF-8 bytes, CRLF line ends included):",
        "",
        "```text sdp",
        canonical(EXAMPLE_SDP).decode(),
        "```",
        "",
        f"The enrolment code of the `enrolment` and `enrol` examples is `{EXAMPLE_CODE}`;",
        "`code` in `enrolment` is the hex SHA-256 of its ASCII bytes. The readout text of",
        f"the `readout` example is `{EXAMPLE_TEXT}` (its hash: unpadded base64url of the",
        "SHA-256 of its UTF-8 bytes).",
        "",
        "Each example gives the exact bytes signed (RFC 8785 canonical JSON, UTF-8) and",
        "one valid signature of them by the example key (IEEE P1363 `r ‖ s`, low S,",
        "unpadded base64url). ECDSA signatures are randomised: another signature of the",
        "same bytes is just as valid, and a verifier checks, it does not compare.",
        "",
    ]
    for name, fn in sorted(builders().items()):
        statement = fn(**EXAMPLES[name])
        signed = canonical(statement).decode()
        old_bytes, signature = before.get(name, ("", ""))
        if old_bytes != signed:
            signature = low_s(EXAMPLE_KEY.sign(statement))
        lines += [
            f"#### `{statement['purpose']}` (`statements.{name}`)",
            "",
            f"```json statement:{name}",
            signed,
            "```",
            "",
            f"signature: `{signature}`",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def write(doc: Path = DOC) -> None:
    text = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{doc}: no {BEGIN} … {END} markers to write between")
    doc.write_text(pattern.sub(lambda _m: section(published(text)), text))


if __name__ == "__main__":
    missing = set(builders()) - set(EXAMPLES)
    if missing:
        raise SystemExit(f"no example arguments for: {', '.join(sorted(missing))}")
    write()
    print(f"wrote the examples of {DOC}")

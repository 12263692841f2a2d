"""docs/protocol.md is a contract: its worked examples (section 2.5) must be what the code
signs, byte for byte, and every statement the code builds must have one."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from summitline.crypto import sdp as signed_sdp
from summitline.crypto import statements
from summitline.crypto.encoding import canonical, unb64u
from summitline.crypto.keys import PublicKey, short_fingerprint
from tests.vectors import make_protocol_examples as ex

DOC = ex.DOC.read_text()
SECTION = DOC[DOC.index(ex.BEGIN):DOC.index(ex.END)]
PUBLISHED = ex.published(SECTION)


def doc_value(label: str) -> str:
    match = re.search(rf"^- {re.escape(label)}[^`]*`([^`]+)`", SECTION, re.MULTILINE)
    assert match, f"the examples give no {label!r}"
    return match.group(1)


def test_the_examples_section_is_the_one_the_code_writes() -> None:
    assert SECTION + ex.END == ex.section(PUBLISHED), \
        "docs/protocol.md's examples are stale: python3 -m tests.vectors.make_protocol_examples"


def test_every_statement_of_the_code_has_an_example_and_no_other() -> None:
    assert set(PUBLISHED) == set(ex.builders())


def test_the_example_key_is_what_the_document_says() -> None:
    scalar = int(doc_value("private scalar"), 16)
    assert scalar == ex.EXAMPLE_SCALAR
    key = PublicKey.from_b64u(doc_value("public key"))
    assert key == ex.EXAMPLE_KEY.public
    assert doc_value("fingerprint") == hashlib.sha256(unb64u(key.b64u)).hexdigest()
    assert doc_value("short fingerprint") == short_fingerprint(key.fingerprint)


@pytest.mark.parametrize("name", sorted(ex.EXAMPLES))
def test_each_example_is_the_code_s_statement_and_its_signature_verifies(name: str) -> None:
    signed, signature = PUBLISHED[name]
    built = ex.builders()[name](**ex.EXAMPLES[name])
    assert signed.encode() == canonical(built)
    assert json.loads(signed)["purpose"] == built["purpose"]
    ex.EXAMPLE_KEY.public.verify(json.loads(signed), signature)
    s = int.from_bytes(unb64u(signature)[32:], "big")
    assert s <= ex._N // 2, "the example signature is not in low-S form"


def test_the_sdp_example_hashes_and_parses_as_documented() -> None:
    text = json.loads(re.search(r"```text sdp\n(.*?)\n```", SECTION, re.DOTALL).group(1))
    assert text == ex.EXAMPLE_SDP
    statement = json.loads(PUBLISHED["sdp"][0])
    assert statement["sdp"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert signed_sdp.fingerprints(text) == ["sha-256 " + ":".join(["AB", "CD", "EF", "01",
                                             "23", "45", "67", "89"] * 4)]


def test_the_fingerprint_rule_of_section_2_4_is_the_code_s() -> None:
    rule = re.search(r"regular expression\n`([^`]+)`", DOC).group(1)
    assert rule == signed_sdp._FINGERPRINT.pattern
    # what the text says of spellings: one space, trailing whitespace ignored, case folded
    assert signed_sdp.fingerprints("a=fingerprint:SHA-256 ab:cd \r\n") == ["sha-256 AB:CD"]
    assert signed_sdp.fingerprints("a=fingerprint:sha-256  AB:CD\r\n") == []


def test_the_enrolment_code_is_hashed_as_text() -> None:
    code = re.search(r"enrolment code of the .*? is `([^`]+)`", SECTION).group(1)
    statement = json.loads(PUBLISHED["enrolment"][0])
    assert statement["code"] == hashlib.sha256(code.encode("ascii")).hexdigest()
    readout = json.loads(PUBLISHED["readout"][0])
    text = re.search(r"readout text of\nthe `readout` example is `([^`]+)`", SECTION).group(1)
    assert readout["text"] == statements.text_hash(text)

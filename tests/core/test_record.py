"""The record: a hash chain whose export verifies offline and names what was tampered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from summitline.core.record import Entry, RecordError, export, summary, verify_export
from summitline.crypto import statements
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import short_fingerprint
from tests.factories import World

W = World()
SIGNED = W.signed()


def make_entries() -> list[Entry]:
    kinds = [("plan.submitted", {}), ("endpoint.joined", {"device": "a"}),
             ("endpoint.joined", {"device": "b"}), ("call.started", {"by": "us"}),
             ("signal.offer", {"from": "b", "to": "a", "generation": 1}),
             ("signal.answer", {"from": "a", "to": "b", "generation": 1}),
             ("call.ended", {"by": "us"})]
    entries: list[Entry] = []
    for i, (kind, data) in enumerate(kinds):
        entries.append(Entry.make(entries[-1] if entries else None, 1000 + 500 * i, kind, data))
    return entries


def head_signatures(entries: list[Entry]) -> dict[str, str]:
    head = entries[-1]
    st = statements.record_head(SIGNED.plan.call, SIGNED.plan.hash, head.seq, head.hash)
    return {k.fingerprint: k.sign(st) for k in (W.us, W.ru)}


def exported(entries: list[Entry] | None = None) -> bytes:
    entries = entries or make_entries()
    return export(SIGNED, entries, head_signatures(entries))


def reexport(doc: dict[str, object]) -> bytes:
    return canonical(doc) + b"\n"


def test_an_intact_record_verifies_and_shows_start_end_duration() -> None:
    record = verify_export(exported())
    assert record.signers == ["United States", "Russian Federation"]
    s = summary(record.entries)
    assert (s["started_ms"], s["ended_ms"], s["duration_ms"]) == (2500, 4000, 1500)


def test_a_record_naming_a_delegation_by_a_name_it_did_not_sign_is_refused() -> None:
    """Issue 11, attack 3: ``summitline verify`` prints only names a delegation signed for
    itself (the plan's ``name_signature``)."""
    doc = json.loads(exported())
    doc["signed_plan"]["plan"]["delegations"][1]["name"] = "Republic of Elsewhere"
    with pytest.raises(RecordError, match="not the name the delegation signed for itself"):
        verify_export(reexport(doc))


def test_a_changed_entry_is_named() -> None:
    doc = json.loads(exported())
    doc["entries"][4]["data"]["to"] = "c"
    with pytest.raises(RecordError, match=r"entry 4 \('signal.offer'\).*was changed"):
        verify_export(reexport(doc))


def test_a_removed_entry_is_named() -> None:
    doc = json.loads(exported())
    del doc["entries"][2]
    with pytest.raises(RecordError, match=r"entry 2 \('call.started'\).*removed"):
        verify_export(reexport(doc))


def test_reordered_entries_are_named() -> None:
    doc = json.loads(exported())
    doc["entries"][4], doc["entries"][5] = doc["entries"][5], doc["entries"][4]
    with pytest.raises(RecordError, match=r"entry 4 \('signal.answer'\)"):
        verify_export(reexport(doc))


def test_a_rehashed_forgery_still_fails_the_head_signatures() -> None:
    # a forger who recomputes every hash after a change cannot sign the new head
    entries = make_entries()
    forged = entries[:3] + [Entry.make(entries[2], 9999, "call.started", {"by": "ru"})]
    for e in entries[4:]:
        forged.append(Entry.make(forged[-1], e.at, e.kind, e.data))
    raw = export(SIGNED, forged, head_signatures(entries))
    with pytest.raises(RecordError, match="signature of 'United States' on the record's head"):
        verify_export(raw)


def test_a_truncated_record_fails_the_head_signatures() -> None:
    entries = make_entries()
    raw = export(SIGNED, entries[:-1], head_signatures(entries))
    with pytest.raises(RecordError, match="head does not verify"):
        verify_export(raw)


def test_a_record_signed_by_one_delegation_only_is_refused() -> None:
    doc = json.loads(exported())
    del doc["head_signatures"][W.ru.fingerprint]
    with pytest.raises(RecordError, match="not signed by 'Russian Federation'"):
        verify_export(reexport(doc))


def test_every_single_byte_change_is_rejected() -> None:
    raw = exported()
    for i in range(len(raw)):  # every byte of the file
        changed = bytearray(raw)
        changed[i] = (changed[i] + 1) % 256
        with pytest.raises(RecordError):
            verify_export(bytes(changed))


def test_the_verify_command_accepts_and_rejects(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.record.json", tmp_path / "bad.record.json"
    raw = exported()
    good.write_bytes(raw)
    bad.write_bytes(raw.replace(b'"generation":1', b'"generation":2', 1))
    ok = subprocess.run([sys.executable, "-m", "summitline", "verify", str(good)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "United States and Russian Federation" in ok.stdout
    us = short_fingerprint(W.us.fingerprint)
    assert f"United States: id {us}; head signed by key {us} (its key in the plan)" \
        in ok.stdout
    # the key a delegation signs with, as the reader knows it: given, it must be the one
    for expected, code in ((f"United States={us}", 0), (f"United States={us.lower()}", 0),
                           ("United States=" + short_fingerprint("ab" * 32), 1),
                           (f"Elsewhere={us}", 2)):
        run = subprocess.run([sys.executable, "-m", "summitline", "verify", str(good),
                              "--expect", expected], capture_output=True, text=True)
        assert run.returncode == code, (expected, run.stderr)
    no = subprocess.run([sys.executable, "-m", "summitline", "verify", str(bad)],
                        capture_output=True, text=True)
    assert no.returncode == 1
    assert "entry 4 ('signal.offer')" in no.stderr
    missing = subprocess.run([sys.executable, "-m", "summitline", "verify",
                              str(tmp_path / "nope.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_numbers_json_cannot_carry_exactly_are_rejected_not_crashed_on() -> None:
    doc = json.loads(exported())
    doc["entries"][1]["at"] = 2**60
    raw = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    with pytest.raises(RecordError, match="cannot carry exactly"):
        verify_export(raw)


def test_extra_head_signatures_are_refused() -> None:
    doc = json.loads(exported())
    doc["head_signatures"]["f" * 64] = doc["head_signatures"][W.us.fingerprint]
    with pytest.raises(RecordError, match="does not name"):
        verify_export(reexport(doc))


def test_the_readable_page_of_a_verified_record(tmp_path: Path) -> None:
    good, page = tmp_path / "good.record.json", tmp_path / "record.html"
    good.write_bytes(exported())
    ok = subprocess.run([sys.executable, "-m", "summitline", "verify", str(good), "--html",
                         str(page)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    html = page.read_text()
    assert "Verified offline" in html and "United States and Russian Federation" in html
    for kind in ("plan.submitted", "call.started", "signal.offer", "call.ended"):
        assert kind in html
    assert "Duration</th><td>1.500 s" in html


def test_an_event_is_recorded_under_its_own_kind_only() -> None:
    from summitline.core import call as c
    from summitline.core.record import advance

    plan = World().signed().plan
    state = c.Call(plan)
    a = plan.participants[0].device
    state, entry = advance(state, None, 1, "endpoint.joined", {"device": a}, c.Join(a))
    assert entry.kind == "endpoint.joined" and a in state.admitted
    with pytest.raises(ValueError, match="not the record kind"):
        advance(state, entry, 2, "endpoint.joined", {"device": a}, c.Leave(a))


def twin(signature: str) -> str:
    """The other ECDSA signature of the same message with the same nonce: (r, n - s)."""
    from summitline.crypto.encoding import b64u, unb64u
    from summitline.crypto.keys import CURVE_ORDER

    raw = unb64u(signature)
    s = int.from_bytes(raw[32:], "big")
    return b64u(raw[:32] + (CURVE_ORDER - s).to_bytes(32, "big"))


def test_a_head_signature_swapped_for_its_twin_fails_verify(tmp_path: Path) -> None:
    # attack 7 of issue 11: (r, n - s) verifies in plain ECDSA; only low-S is accepted
    doc = json.loads(exported())
    sigs = doc["head_signatures"]
    sigs[W.us.fingerprint] = twin(sigs[W.us.fingerprint])
    swapped = tmp_path / "twin.record.json"
    swapped.write_bytes(reexport(doc))
    no = subprocess.run([sys.executable, "-m", "summitline", "verify", str(swapped)],
                        capture_output=True, text=True)
    assert no.returncode == 1, no.stdout
    assert "United States" in no.stderr
    with pytest.raises(RecordError):
        verify_export(swapped.read_bytes())


def test_a_plan_signature_swapped_for_its_twin_fails_verify() -> None:
    doc = json.loads(exported())
    sigs = doc["signed_plan"]["signatures"]
    fp = W.ru.fingerprint
    sigs[fp] = twin(sigs[fp])
    with pytest.raises(RecordError):
        verify_export(reexport(doc))

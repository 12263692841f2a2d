"""``summitline demo --briefing`` and ``summitline verify`` on a briefing's record.

The demo runs as a real process (``python -m summitline``) in this test's network
namespace (loopback only, as every test here); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import httpx
import pytest

from summitline.cli import main
from summitline.client.briefing import provision_briefing
from summitline.core.record import verify_export
from summitline.crypto.encoding import canonical

# Imports, the server, three endpoints setting up three links and 2 s of call, the end
# and the record: about 10 s on an idle 2-core machine; this much on a loaded one.
DEMO_S = 120.0


async def test_the_briefing_demo_holds_three_delegations_in_a_mesh(tmp_path: Path) -> None:
    record = tmp_path / "briefing.record.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "demo", "--briefing", "3", "--seconds", "2",
        "--export", str(record), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(DEMO_S):
            raw, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = raw.decode()
    assert proc.returncode == 0, out
    assert "FAILED" not in out
    assert "United States hosting France, Germany" in out
    assert "audio+video from the others: US 2/2, FR 2/2, DE 2/2" in out
    # the pair codes on the host's screen, and one group code on every screen
    assert len(re.findall(r"verify with (France|Germany): \d{3} \d{3}\n", out)) == 2
    codes = re.findall(r"group code on (US|FR|DE)'s screen: (\d{3} \d{3})\n", out)
    assert sorted(who for who, _ in codes) == ["DE", "FR", "US"]
    assert len({code for _, code in codes}) == 1
    assert f"group code {codes[0][1]} on all 3 screens" in out
    assert "head signed by United States, France and Germany" in out
    verified = verify_export(record.read_bytes())
    assert verified.signers == ["United States", "France", "Germany"]
    assert [e.kind for e in verified.entries][-1] == "call.ended"


@pytest.mark.parametrize("size", ["1", "9", "0"])
def test_the_demo_refuses_a_briefing_of_fewer_than_two_or_more_than_eight(
        size: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--briefing", size, "--seconds", "1"]) == 2
    assert f"--briefing takes 2 to 8 delegations, not {size}" in capsys.readouterr().err


async def test_verify_checks_every_delegations_signature_on_a_briefing_record(
        http: httpx.AsyncClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = await provision_briefing(http, 4)
    await b.host.operator.control(b.call, "start")
    await b.host.operator.control(b.call, "end")
    for side in b.sides:
        await side.operator.sign_record(b.call, b.plan.hash)
    good = json.loads(await b.host.operator.export_record(b.call))
    ids = {side.operator.name: side.operator.id for side in b.sides}

    def verify(doc: dict[str, object], name: str) -> tuple[int, str]:
        path = tmp_path / name
        path.write_bytes(canonical(doc) + b"\n")  # as exported: only the change differs
        code = main(["verify", str(path)])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, out = verify(good, "good.json")
    assert code == 0, out
    assert "head signed by United States, France, Germany and Italy" in out

    missing = json.loads(json.dumps(good))
    del missing["head_signatures"][ids["Germany"]]
    code, out = verify(missing, "missing.json")
    assert code == 1
    assert "REJECTED" in out and "not signed by 'Germany'" in out

    # Germany's place holds a real signature over the same head, but France's
    swapped = json.loads(json.dumps(good))
    sigs = swapped["head_signatures"]
    sigs[ids["Germany"]] = sigs[ids["France"]]
    code, out = verify(swapped, "swapped.json")
    assert code == 1
    assert "REJECTED" in out and "signature of 'Germany' on the record's head does not" in out

    flipped = json.loads(json.dumps(good))
    sig = flipped["head_signatures"][ids["Italy"]]
    flipped["head_signatures"][ids["Italy"]] = ("B" if sig[0] == "A" else "A") + sig[1:]
    code, out = verify(flipped, "flipped.json")
    assert code == 1
    assert "REJECTED" in out and "signature of 'Italy' on the record's head does not" in out

"""Keys and signatures in the browser are byte-compatible with Python: the shared
vectors checked from JavaScript, and a browser signature verified in Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from summitline.crypto.keys import PublicKey
from tests.browser.people import new_page

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "shared.json").read_text())
# the signed plans (tests/vectors/make_plan_vectors.py): one accepted, several refused
PLANS = json.loads((Path(__file__).parents[1] / "vectors" / "plans.json").read_text())

CHECK = """async (v) => {
  const c = await import("/crypto.js");
  const p = await import("/plan.js");
  const out = {};
  out.canonical = v.canonical.map((x) => c.canonical(x.value) === x.canonical);
  out.signatures = await Promise.all(v.signatures.map((x) =>
    c.verify(v.key, x.statement, x.signature)));
  out.tampered = await c.verify(v.key, {...v.signatures[0].statement, name: "x"},
                                v.signatures[0].signature);
  out.fingerprints = c.sdpFingerprints(v.sdp.sdp);
  out.sas = await Promise.all(v.sas.map((x) => c.sas(x.call, x.a, x.b)));
  out.planHash = await p.verifySignedPlan(v.signed_plan, v.pinned);
  const plan = v.signed_plan.plan;
  out.policy = v.policy.map((row) => {
    const q = {...plan, interpreter_video: row.interpreter_video};
    const a = q.participants.find((x) => x.role === row.sender);
    const b = q.participants.find((x) => x.role === row.receiver && x.device !== a.device);
    return JSON.stringify([...p.media(q, row.phase, a.device, b.device)].sort()) ===
           JSON.stringify(row.media);
  });
  const forged = structuredClone(v.signed_plan);
  const ids = Object.keys(forged.signatures);
  forged.signatures[ids[0]] = forged.signatures[ids[1]];
  out.forged = await p.verifySignedPlan(forged, v.pinned).then(() => "accepted",
                                                              (e) => e.message);
  out.refused = await Promise.all(v.refused.map((x) => p.verifySignedPlan(x.signed_plan,
    v.pinned).then(() => "accepted", (e) => e.message)));
  return out;
}"""

SIGN = """async () => {
  const c = await import("/crypto.js");
  const ks = await import("/keystore.js");
  const pair = await c.generateKeyPair();
  await ks.saveIdentity("device", pair);
  const back = await ks.loadIdentity("device", pair.fingerprint);
  const statement = c.statements.join("call-ü", back.fingerprint, "nonce-\\u00e9-\\n");
  const extractable = await crypto.subtle.exportKey("pkcs8", back.privateKey)
    .then(() => true, () => false);
  return { key: back.key, fingerprint: back.fingerprint, statement,
           signature: await c.sign(back.privateKey, statement), extractable };
}"""


async def test_the_shared_vectors_hold_in_the_browser(browser: Browser, server: str) -> None:
    page = await new_page(browser)
    await page.goto(server + "/")
    out: dict[str, Any] = await page.evaluate(CHECK, {**VECTORS, **PLANS})
    assert all(out["canonical"]) and len(out["canonical"]) == len(VECTORS["canonical"])
    assert all(out["signatures"]) and not out["tampered"]
    assert out["fingerprints"] == VECTORS["sdp"]["fingerprints"]
    assert out["sas"] == [v["sas"] for v in VECTORS["sas"]]
    assert out["planHash"] == PLANS["plan_hash"]
    assert all(out["policy"]) and len(out["policy"]) == len(VECTORS["policy"])
    assert "signature of" in out["forged"] and "invalid" in out["forged"]
    # planted devices, a role not the certified one, names not self-signed: refused by the
    # browser for the reason Python gives (tests/core/test_vectors.py)
    assert len(out["refused"]) == len(PLANS["refused"]) >= 5
    for case, message in zip(PLANS["refused"], out["refused"], strict=True):
        assert case["error"] in message, (case["case"], message)


async def test_a_browser_key_signs_what_python_verifies_and_cannot_leave(
        browser: Browser, server: str) -> None:
    page = await new_page(browser)
    await page.goto(server + "/")
    out: dict[str, Any] = await page.evaluate(SIGN)
    key = PublicKey.from_b64u(out["key"])
    assert key.fingerprint == out["fingerprint"]
    key.verify(out["statement"], out["signature"])  # raises if not
    assert out["extractable"] is False  # the private key never leaves the browser

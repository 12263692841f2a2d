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
  const b = v.briefing, bp = b.signed_plan.plan;
  out.briefingHash = await p.verifySignedPlan(b.signed_plan, b.pinned);
  out.groupCode = await c.groupCode(bp.call, out.briefingHash,
    Object.fromEntries(bp.delegations.map((d) => [d.id, d.key])));
  const guests = bp.delegations.filter((d) => d.id !== bp.host).map((d) => d.id);
  out.introduced = [p.introducedBy(bp, guests[0]), p.introducedBy(bp, bp.host)];
  out.briefingRefused = await Promise.all(b.refused.map((x) => p.verifySignedPlan(
    x.signed_plan, b.pinned).then(() => "accepted", (e) => e.message)));
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
    # a briefing: the same hash and group code as Python, the same introductions, and
    # each refused briefing refused for the reason Python gives
    b = PLANS["briefing"]
    assert out["briefingHash"] == b["plan_hash"] and out["groupCode"] == b["group_code"]
    host = b["signed_plan"]["plan"]["host"]
    guests = [d["id"] for d in b["signed_plan"]["plan"]["delegations"] if d["id"] != host]
    assert out["introduced"] == [{guests[1]: host}, {}]
    assert len(out["briefingRefused"]) == len(b["refused"]) >= 7
    for case, message in zip(b["refused"], out["briefingRefused"], strict=True):
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


LOW_S = """async (v) => {
  const c = await import("/crypto.js");
  const n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n;
  const big = (b) => b.reduce((a, x) => (a << 8n) | BigInt(x), 0n);
  const pair = await c.generateKeyPair();
  const out = { allLow: true, twinsRefused: true, ownVerify: true };
  for (let i = 0; i < 40; i++) {  // about half of WebCrypto's raw signatures are high-S
    const st = { purpose: "summitline/test", i };
    const sig = c.unb64u(await c.sign(pair.privateKey, st));
    const s = big(sig.slice(32));
    if (s > n / 2n) out.allLow = false;
    const high = new Uint8Array(sig);
    let t = n - s;
    for (let j = 63; j >= 32; j--) { high[j] = Number(t & 0xffn); t >>= 8n; }
    if (await c.verify(pair.key, st, c.b64u(high))) out.twinsRefused = false;
    if (!(await c.verify(pair.key, st, c.b64u(sig)))) out.ownVerify = false;
  }
  out.pythonTwin = await c.verify(v.key, v.statement, v.twin);
  out.pythonLow = await c.verify(v.key, v.statement, v.signature);
  return out;
}"""


async def test_browser_signatures_are_low_s_and_high_twins_are_refused(
        browser: Browser, server: str) -> None:
    # attack 7 of issue 11 in the browser: WebCrypto may sign high-S; sign() normalises,
    # verify() refuses the (r, n - s) twin, also of a Python signature
    from summitline.crypto.encoding import b64u, unb64u
    from summitline.crypto.keys import CURVE_ORDER, PrivateKey

    key = PrivateKey.generate()
    statement = {"purpose": "summitline/test", "n": 1}
    signature = key.sign(statement)
    raw = unb64u(signature)
    twin = b64u(raw[:32] + (CURVE_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big"))
    page = await new_page(browser)
    await page.goto(server + "/")
    out: dict[str, Any] = await page.evaluate(LOW_S, {
        "key": key.public.b64u, "statement": statement, "signature": signature, "twin": twin})
    assert out == {"allLow": True, "twinsRefused": True, "ownVerify": True,
                   "pythonTwin": False, "pythonLow": True}


READS = """async (other) => {
  const c = await import("/crypto.js");
  const api = await import("/api.js");
  const pair = await c.generateKeyPair();
  await api.post("/api/delegations", { name: "Browser delegation", key: pair.key,
    signature: await c.sign(pair.privateKey, c.statements.register("Browser delegation",
                                                                    pair.key)) });
  const status = (p) => p.then(() => 200, (e) => e.status);
  const own = `/api/delegations/${pair.fingerprint}/links`;
  const out = { unsigned: await status(api.get(own)) };
  api.setSigner(pair);
  out.own = await status(api.get(own));
  out.query = await status(api.get(own + "?x=%C3%A9&y=1"));
  out.other = await status(api.get(`/api/delegations/${other}/links`));
  return out;
}"""


async def test_the_web_client_signs_its_reads(browser: Browser, server: str,
                                              http: Any) -> None:
    # web/api.js signs every GET with the identity its view set; the server checks it
    from summitline.client.operator import Operator
    from summitline.crypto.keys import PrivateKey

    other = Operator(http, "Other", PrivateKey.generate())
    await other.register()
    page = await new_page(browser)
    await page.goto(server + "/")
    out: dict[str, Any] = await page.evaluate(READS, other.id)
    assert out == {"unsigned": 401, "own": 200, "query": 200, "other": 403}

"""Frame encryption in Chromium (docs/protocol.md 5.9, 5.10): the shared vectors, and a
call between a browser principal and a Python principal with every frame encrypted end
to end (RTCRtpScriptTransform in the browser, around aiortc in Python)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import participant
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind, Role
from summitline.crypto import frames
from summitline.crypto.framekeys import KINDS
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    cosigned_plan,
    end_with_python,
    enrol_browser,
    linked_operators,
    new_page,
    principal,
    wait_for_media,
)
from tests.browser.test_principals import key_sorting
from tests.client.test_session import WAIT_S, until

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "frames.json").read_text())

CHECK = """async (v) => {
  const f = await import("/frames.js");
  const c = await import("/crypto.js");
  const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const bytes = (h) => new Uint8Array(h.match(/../g)?.map((x) => parseInt(x, 16)) || []);
  const keyOf = async (x) => f.importFrameKey({ keyId: x.key_id, key: bytes(x.key),
                                               salt: bytes(x.salt) });
  const out = { sealed: [], opened: [], tampered: [] };
  for (const x of v.frames) {
    const k = await keyOf(x);
    out.sealed.push(hex(await f.seal(k, BigInt(x.counter), x.codec, bytes(x.frame))));
    out.opened.push(hex(await f.openFrame(k, bytes(x.sealed))));
  }
  const k0 = await keyOf(v.frames[0]);
  for (const x of v.tampered) {
    out.tampered.push(await f.openFrame(k0, bytes(x.sealed)).then(() => "opened",
      (e) => e instanceof f.FrameError ? "refused" : `threw ${e}`));
  }
  const fk = v.frame_key, m = fk.message;
  const ecdh = async (jwk) => crypto.subtle.importKey("jwk", jwk,
    { name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  const who = (kind) => ({ call: fk.call, sender: fk.sender, receiver: fk.receiver, kind });
  const raw = c.unb64u(m.for);
  out.unwrapped = {}; out.wrapped = {}; out.otherReceiver = {}; out.otherKind = {};
  for (const { kind, key_id: keyId, wrapped } of m.keys) {
    const key = await f.unwrapKey(await ecdh(fk.receiver_ecdh), c.unb64u(m.ecdh), keyId,
                                  c.unb64u(wrapped), who(kind));
    out.unwrapped[kind] = [key.keyId, hex(key.key), hex(key.salt)];
    const x = fk.keys[kind];
    out.wrapped[kind] = c.b64u(await f.wrapKey(await ecdh(fk.sender_ecdh), raw,
      { keyId: x.key_id, key: bytes(x.key), salt: bytes(x.salt) }, who(kind), bytes(x.nonce)));
    out.otherReceiver[kind] = await f.unwrapKey(await ecdh(fk.sender_ecdh), c.unb64u(m.ecdh),
      keyId, c.unb64u(wrapped), who(kind)).then(() => "opened", () => "refused");
    const other = kind === "audio" ? "video" : "audio";
    out.otherKind[kind] = await f.unwrapKey(await ecdh(fk.receiver_ecdh), c.unb64u(m.ecdh),
      keyId, c.unb64u(wrapped), who(other)).then(() => "opened", () => "refused");
  }
  const st = (msg) => c.statements.frameKey({ call: fk.call, planHash: fk.plan_hash,
    sender: fk.sender, receiver: fk.receiver, ecdh: msg.ecdh, forEcdh: msg.for,
    keys: msg.keys });
  out.signed = await c.verify(fk.sender_key, st(m), m.signature);
  out.forged = await c.verify(fk.sender_key, st({ ...m, keys: [m.keys[0]] }), m.signature) ||
    await c.verify(fk.sender_key, st({ ...m, keys: [{ ...m.keys[0], kind: "video" }] }),
                   m.signature);
  return out;
}"""


async def test_the_frame_vectors_hold_in_the_browser(browser: Browser, server: str) -> None:
    page = await new_page(browser)
    await page.goto(server + "/")
    out: dict[str, Any] = await page.evaluate(CHECK, VECTORS)
    assert out["sealed"] == [v["sealed"] for v in VECTORS["frames"]]
    assert out["opened"] == [v["frame"] for v in VECTORS["frames"]]
    assert out["tampered"] == ["refused"] * len(VECTORS["tampered"])
    fk = VECTORS["frame_key"]
    assert out["unwrapped"] == {kind: [k["key_id"], k["key"], k["salt"]]
                                for kind, k in fk["keys"].items()}
    assert out["wrapped"] == {e["kind"]: e["wrapped"] for e in fk["message"]["keys"]}
    assert set(out["wrapped"]) == {"audio", "video"}
    assert out["signed"] is True and out["forged"] is False
    assert out["otherReceiver"] == out["otherKind"] == {"audio": "refused", "video": "refused"}
    await page.context.close()


@pytest.mark.parametrize("browser_offers", [True, False], ids=["browser offers",
                                                             "python offers"])
async def test_a_browser_and_a_python_principal_exchange_encrypted_frames(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        browser_offers: bool) -> None:
    """Both ways round: the answering browser sets its transforms after
    setRemoteDescription, which Chromium honours only with encodedInsertableStreams."""
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = key_sorting(web.device, first=not browser_offers)
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        principal(ru, py_key, "President of the Russian Federation", "ru")])
    await us.control(plan.call, "start")
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback(),
                     frame_encryption=True)
    task = asyncio.create_task(py.run())
    try:
        await asyncio.wait_for(py.joined.wait(), WAIT_S)
        await web.page.goto(f"{server}/?frames=e2ee#/principal/{web.device}")
        await web.page.locator(f'button[data-call="{plan.call}"]').click()
        # decoded both ways: each end opened the other's frames with the key it was handed
        await wait_for_media(web.page, frames=10, audio=10)
        await until([py], lambda s: s.frames(MediaKind.VIDEO) > 10
                    and s.frames(MediaKind.AUDIO) > 10)
        counts = await web.page.evaluate("() => window.summitlineSession.frameCounts()")
        assert counts["sealed"] > 20 and counts["opened"] > 20
        assert py.crypt is not None
        assert all(set(py.crypt.openers[web.device, k].keys) == {0} for k in KINDS)
        alarms = await web.page.evaluate("() => window.summitlineSession.alarms")
        assert alarms == [] and py.alarms == []
        await end_with_python(ru, plan.call, task, py)
    finally:
        if not task.done():
            task.cancel()
        await py.leave()


async def with_an_interpreter(browser: Browser, server: str, ws_url: str,
                              http: httpx.AsyncClient) -> tuple[Any, Any, CallSession,
                                                                 CallSession]:
    """A started call of a browser principal (US), a Python principal and a Python
    interpreter (Russia), both encrypting frames: the page (not yet in the call), the
    plan, and the two sessions (not yet running)."""
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key, interpreter_key = PrivateKey.generate(), PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        principal(ru, py_key, "President of the Russian Federation", "ru"),
        participant(interpreter_key, ru.key, Role.INTERPRETER, "RU interpreter", "ru")])
    await us.control(plan.call, "start")
    py, interpreter = (CallSession(ws_url, plan.call, Identity(k, dict(ru.pinned)),
                                   ice=loopback(), frame_encryption=True, source=source)
                       for k, source in ((py_key, None),
                                         (interpreter_key, MediaSource.interpreter())))
    return web, plan, py, interpreter


async def test_the_browser_hands_a_new_key_when_a_device_that_heard_it_leaves(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    """An interpreter (it hears the principals' floor) leaves: the browser principal
    makes key 1 and hands it to the Python principal, which goes on decoding under it."""
    web, plan, py, interpreter = await with_an_interpreter(browser, server, ws_url, http)
    tasks = [asyncio.create_task(s.run()) for s in (py, interpreter)]
    try:
        await asyncio.wait_for(asyncio.gather(py.joined.wait(), interpreter.joined.wait()),
                               WAIT_S)
        await web.page.goto(f"{server}/?frames=e2ee#/principal/{web.device}")
        await web.page.locator(f'button[data-call="{plan.call}"]').click()
        await until([py], lambda s: s.frames_from(web.device, MediaKind.VIDEO) > 10)
        await until([interpreter], lambda s: s.frames_from(web.device, MediaKind.AUDIO) > 10)
        assert py.crypt is not None and interpreter.crypt is not None
        # the interpreter hears the browser and may not see it: its audio key only
        assert set(interpreter.crypt.openers[web.device, "audio"].keys) == {0}
        assert (web.device, "video") not in interpreter.crypt.openers
        await interpreter.leave()
        await until([py], lambda s: s.crypt is not None
                    and all(1 in s.crypt.openers[web.device, k].keys for k in KINDS))
        before = py.frames_from(web.device, MediaKind.VIDEO)
        await until([py], lambda s: s.frames_from(web.device, MediaKind.VIDEO) > before + 20)
        # the interpreter that left holds key 0 of the browser and nothing newer
        assert set(interpreter.crypt.openers[web.device, "audio"].keys) == {0}
        assert await web.page.evaluate(
            "() => Object.values(window.summitlineSession.e2ee.own).map((k) => k.keyId)") == [1, 1]
    finally:
        for t in tasks:
            t.cancel()
        for s in (py, interpreter):
            await s.leave()


async def test_the_browser_hands_a_newcomer_a_new_key_not_the_one_it_sealed_under(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    """An interpreter joins once the browser principal has sealed frames: the browser
    makes a new key first and hands that, so the newcomer holds no key that opens what
    was sent before it came (protocol 5.10, attacker finding F5)."""
    web, plan, py, interpreter = await with_an_interpreter(browser, server, ws_url, http)
    tasks = [asyncio.create_task(py.run())]
    try:
        await asyncio.wait_for(py.joined.wait(), WAIT_S)
        await web.page.goto(f"{server}/?frames=e2ee#/principal/{web.device}")
        await web.page.locator(f'button[data-call="{plan.call}"]').click()
        await until([py], lambda s: s.frames_from(web.device, MediaKind.VIDEO) > 10)
        key_id = "() => window.summitlineSession.e2ee.own.audio.keyId"
        before = await web.page.evaluate(key_id)
        tasks.append(asyncio.create_task(interpreter.run()))
        await until([interpreter], lambda s: s.frames_from(web.device, MediaKind.AUDIO) > 10)
        after = await web.page.evaluate(key_id)
        assert after > before
        assert interpreter.crypt is not None and py.crypt is not None
        assert before not in interpreter.crypt.openers[web.device, "audio"].keys
        assert (web.device, "video") not in interpreter.crypt.openers  # F1: hears, not sees
        # the principal goes on with it
        assert after in py.crypt.openers[web.device, "audio"].keys
    finally:
        for t in tasks:
            t.cancel()
        for s in (py, interpreter):
            await s.leave()


async def test_the_browser_keeps_the_same_replay_window_as_python(browser: Browser,
                                                                   server: str) -> None:
    """The same counters, in the same order (repeats, frames out of order, a jump far
    ahead and frames left behind it), are let through or refused alike by
    web/frames.js and crypto/frames.py: a forwarder's replay is dropped in both."""
    w = frames.REPLAY_WINDOW
    counters = [0, 2, 1, 2, 0, 5, 4, 5, w + 3, 3, 4, 6, w + 2, w + 3, 3 * w, 2 * w,
                2 * w + 1, 3 * w - 1, 3 * w, *range(3 * w + 1, 6 * w, 7), 5 * w, 4 * w]
    window = frames.ReplayWindow()
    expected = [window.accept(c) for c in counters]
    assert True in expected and False in expected
    page = await new_page(browser)
    await page.goto(server + "/")
    got = await page.evaluate("""async (cs) => {
      const f = await import("/frames.js");
      const w = new f.ReplayWindow();
      return cs.map((c) => w.accept(BigInt(c)));
    }""", counters)
    assert got == expected
    await page.context.close()

"""The interpreter's console as interpreters expect it (issue 16): two booth partners
(English booth, interpreting the Russian principal) and the Russian principal, in
Chromium.

- The cough key silences the channel while it is held: the partner, who hears the live
  interpreter, measures the peak of that voice as it decodes it (a Web Audio analyser),
  held and not held. (Inbound-rtp audio energy is 0 in headless Chromium: no playout.)
- "Hand over" asks the partner: accepted once, declined once; the record shows request,
  accept, request, decline, and the asker stayed live until the accept.
- A booth-mate note and a nudge arrive, and the server's signaling traffic (every text
  frame its WebSockets sent and received, tapped in this process) does not contain them,
  nor does the record.
- "Please slow down" appears on the speaking principal's screen, in Russian.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from starlette.websockets import WebSocket

from summitline.client.operator import participant
from summitline.client.reads import signed_get
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    TIMEOUT_MS,
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    new_page,
    principal,
)

NOTE = "Numbers coming: 4,731 — watch the ruble figure"
# A window of the partner's ear long enough to hold beeps of Chromium's fake microphone,
# after what was on its way (network, jitter buffer) when the key went down or up.
WINDOW_S = 2.5
SETTLE_S = 0.6


@pytest.fixture
def server_traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every text frame the test's server receives or sends over a WebSocket (the server
    runs in this process): a tap that passes each frame on unchanged."""
    frames: list[str] = []
    receive, send = WebSocket.receive, WebSocket.send

    async def tapped_receive(self: WebSocket) -> Any:
        message = await receive(self)
        frames.append(str(message.get("text") or message.get("bytes") or ""))
        return message

    async def tapped_send(self: WebSocket, message: Any) -> None:
        frames.append(str(message.get("text") or message.get("bytes") or ""))
        await send(self, message)

    monkeypatch.setattr(WebSocket, "receive", tapped_receive)
    monkeypatch.setattr(WebSocket, "send", tapped_send)
    yield frames


async def peak_from(page: Page, remote: str) -> float:
    """The peak of ``remote``'s voice as ``page`` receives it (decoded, in its Web Audio
    graph), over WINDOW_S seconds of its audio clock from SETTLE_S seconds on."""
    return float(await page.evaluate(
        """async ([remote, settle, span]) => {
             const L = window.summitlineListening;
             window.__ears = window.__ears || {};
             // the analyser follows the stream that plays (a repaired link brings a new one)
             const ear = () => {
               const node = L.nodes.get(remote);
               let e = window.__ears[remote];
               if (!e || e.stream !== node.stream) {
                 const analyser = L.ctx.createAnalyser();
                 analyser.fftSize = 2048;
                 L.ctx.createMediaStreamSource(node.stream).connect(analyser);
                 e = window.__ears[remote] = { analyser, stream: node.stream,
                                               buf: new Float32Array(2048), n: (e?.n || 0) + 1 };
               }
               return e;
             };
             let peak = 0;
             const t0 = L.ctx.currentTime + settle;
             while (L.ctx.currentTime < t0) await new Promise((r) => setTimeout(r, 40));
             while (L.ctx.currentTime - t0 < span) {
               const e = ear();
               e.analyser.getFloatTimeDomainData(e.buf);
               for (const x of e.buf) peak = Math.max(peak, Math.abs(x));
               await new Promise((r) => setTimeout(r, 40));
             }
             return peak;
           }""", [remote, SETTLE_S, WINDOW_S]))


async def booth_link_open(page: Page, remote: str) -> None:
    await page.wait_for_function(
        """(r) => [...window.summitlineSession.peers.values()].some(
             (l) => l.remote === r && l.boothChannel?.readyState === "open")""", arg=remote)


async def test_cough_key_handover_by_request_booth_mate_and_slow_down(
        browser: Browser, server: str, http: httpx.AsyncClient,
        server_traffic: list[str], screenshots: Path) -> None:
    us, ru, link = await linked_operators(http)
    errors: list[str] = []
    ru_p = await enrol_browser(browser, server, ru, "President of the Russian Federation",
                               errors=errors)
    one = await enrol_browser(browser, server, ru, "Interpreter One", Role.INTERPRETER,
                              errors=errors)
    two_page = await new_page(browser, errors, locale="ru-RU")  # a console in Russian
    two = await enrol_browser(browser, server, ru, "Interpreter Two", Role.INTERPRETER,
                              errors=errors, tab_of=two_page)
    await two_page.close()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, PrivateKey.generate(), "President of the United States", "en"),
        principal(ru, ru_p.key, "President of the Russian Federation", "ru"),
        participant(one.key, ru.key, Role.INTERPRETER, "Interpreter One", "en"),
        participant(two.key, ru.key, Role.INTERPRETER, "Interpreter Two", "en")])
    await us.control(plan.call, "start")
    for device in (ru_p, one, two):
        await join_in_browser(device, server, plan.call)
    a, b = one.page, two.page
    await expect(a.locator("#onair")).to_have_text("Go on air")
    await a.locator("#onair").click()
    await expect(a.locator("#indicator")).to_have_text("ON AIR")
    await expect(b.locator("#partner")).to_contain_text("Interpreter One")
    # the partner off air hears the live one over the floor
    await b.wait_for_function("(i) => window.summitlineListening?.playing === i && "
                              "window.summitlineListening.gainOf(i) === 1", arg=one.device)

    # -- the cough key: held, the channel is silent; released, the voice is back
    await booth_link_open(b, one.device)
    speaking = await peak_from(b, one.device)
    await a.locator("#cough").focus()
    await a.keyboard.down("Space")  # a hold on the focused key, as with C or the pointer
    await expect(a.locator("#indicator")).to_have_text("ON AIR — MUTED")
    await expect(a.locator("#cough")).to_have_attribute("aria-pressed", "true")
    coughing = await peak_from(b, one.device)
    await a.keyboard.up("Space")
    await expect(a.locator("#indicator")).to_have_text("ON AIR")
    again = await peak_from(b, one.device)
    links = await b.evaluate("() => [[...window.summitlineSession.peers.keys()], "
                             "window.__ears, document.querySelector('#alarm').textContent]")
    assert speaking > 0.01 and again > 0.01, (speaking, again, links)  # the fake mic beeps
    assert coughing < 0.001, (speaking, coughing, links)
    box = await a.locator("#cough").bounding_box()
    assert box is not None
    await a.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await a.mouse.down()  # the pointer holds it too
    await expect(a.locator("#cough")).to_have_attribute("aria-pressed", "true")
    await a.mouse.up()
    await expect(a.locator("#cough")).to_have_attribute("aria-pressed", "false")

    # -- the booth mate: a note and a nudge, peer-to-peer
    await booth_link_open(a, two.device)
    await a.locator("#mate-text").fill(NOTE)
    await a.locator("#mate-send").click()
    await expect(b.locator("#mate-log")).to_contain_text(NOTE)
    await a.keyboard.press("n")  # the nudge's key
    await expect(b.locator("#nudge-notice")).to_contain_text("Interpreter One")

    # -- the slow-down signal, to the principal speaking, in that principal's language
    await expect(a.locator("#floor-speaker")).to_contain_text("President of the Russian")
    await a.locator("#slow-down").click()
    await expect(ru_p.page.locator("#speaker-signal")).to_have_text(
        "Переводчик просит вас говорить медленнее")
    await expect(a.locator("#signal-status")).to_contain_text("President of the Russian")
    await ru_p.page.screenshot(path=str(screenshots / "booth-principal-slow-down-ru.png"))

    # -- handover by request, accepted: the asker stays live until the partner takes over
    await a.locator("#handover").click()
    await expect(a.locator("#handover-waiting")).to_be_visible()
    await expect(b.locator("#handover-asked")).to_contain_text("Interpreter One")
    await expect(a.locator("#indicator")).to_have_text("ON AIR")
    await a.screenshot(path=str(screenshots / "booth-console-en.png"), full_page=True)
    await b.screenshot(path=str(screenshots / "booth-console-ru-asked.png"), full_page=True)
    await b.locator("#accept-handover").click()
    await expect(b.locator("#indicator")).to_have_text("В ЭФИРЕ")
    await expect(a.locator("#indicator")).to_have_text("OFF AIR")
    await expect(a.locator("#handover-waiting")).to_be_hidden()
    await expect(a.locator("#shift")).to_have_text("0:00")  # the shift timer restarted
    # -- and declined: nothing changes
    await b.locator("#handover").click()
    await expect(a.locator("#handover-asked")).to_be_visible()
    await a.locator("#decline-handover").click()
    await expect(a.locator("#handover-asked")).to_be_hidden()
    await expect(b.locator("#handover-waiting")).to_be_hidden()
    await expect(b.locator("#indicator")).to_have_text("В ЭФИРЕ")
    await expect(a.locator("#indicator")).to_have_text("OFF AIR")
    await b.screenshot(path=str(screenshots / "booth-console-ru.png"), full_page=True)

    for page in (a, b, ru_p.page):  # every booth action verified (web/booth.js), no alarm
        assert await page.evaluate("() => window.summitlineSession.alarms") == []
    record = (await signed_get(http, us.key, f"/api/calls/{plan.call}/record")).json()
    booth = [(e["kind"], e["data"]["from"] if "from" in e["data"] else e["data"]["device"])
             for e in record["entries"] if e["kind"].startswith("booth.")]
    assert booth == [("booth.live", one.device), ("booth.request", one.device),
                     ("booth.accept", two.device), ("booth.request", two.device),
                     ("booth.decline", one.device)]
    # the booth mate's words went through neither the server nor the record
    traffic = "\n".join(server_traffic)
    assert '"type": "booth"' in traffic or '"type":"booth"' in traffic  # the tap saw it all
    for secret in (NOTE, "4,731", "nudge", "slow-down"):
        assert secret not in traffic and secret not in json.dumps(record, ensure_ascii=False)
    await us.control(plan.call, "end")
    await asyncio.wait_for(expect(a.locator("#stop")).to_be_visible(), TIMEOUT_MS / 1000)
    assert errors == []

"""A stalled link in the browser is seen, shown and repaired make-before-break, and the
operators see it in their call view: two browser principals and two browser consoles
(the Russian one in Russian), all on loopback.

The stall is made in the Russian principal's page: its peer connection stops sending
(its senders' tracks are replaced by none), while the connection itself stays up. The
repair is held back for a while by dropping every offer on the Russian page's signaling
connection, so that "Reconnecting… N s" can be looked at on every screen; then offers
pass again and the next try of the offerer (the device whose id sorts first) carries.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.browser.people import TIMEOUT_MS, new_page, wait_for_media
from tests.browser.test_operator import create_delegation, enrol

US_NAME, RU_NAME = "President of the United States", "President of the Russian Federation"
# A stall must be seen within 1.5 s (STALL_MS + TICK_MS); the rest is a loaded 2-core
# machine running two principals, two consoles and the server.
SEEN_WITHIN_MS = 2500

RULES = """() => { const s = window.summitlineSession;
  return [...s.rules.links.values()].map((l) => ({
    remote: l.remote, playing: l.playing ? l.playing.generation : null,
    trying: l.trying ? l.trying.generation : null, lost: l.lost_ms !== null,
    peers: [...s.peers.values()].filter((p) => p.remote === l.remote).map((p) => p.generation),
    shown: document.getElementById("remote-video").srcObject ===
      (s.peers.get(`${l.remote} ${l.playing ? l.playing.generation : 0}`) || {}).stream })); }"""

# The Russian page stops sending on every peer connection it has now (new ones send).
CUT = """async () => { const at = Date.now();
  for (const link of window.summitlineSession.peers.values()) {
    for (const sender of link.pc.getSenders()) await sender.replaceTrack(null);
  }
  return at; }"""

# What the American page showed, and when (wall clock, as CUT's).
WATCH = """() => { window.__status = [];
  window.summitlineSession.addEventListener("status", (ev) =>
    window.__status.push({ ...ev.detail, wall: Date.now() })); }"""


class OfferGate:
    """The Russian page's signaling connection, with every offer (both ways) dropped
    while ``closed``."""

    def __init__(self) -> None:
        self.closed = False
        self.dropped = 0

    def __call__(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda m: self.pass_on(m, server))
        server.on_message(lambda m: self.pass_on(m, ws))

    def pass_on(self, message: str | bytes, to: WebSocketRoute) -> None:
        if self.closed and json.loads(message).get("type") == "offer":
            self.dropped += 1
            return
        to.send(message)


async def consoles_start_a_call(browser: Browser, server: str, errors: list[str],
                                gate: OfferGate) -> tuple[Page, Page, Page, Page]:
    """The operators' flow of test_operator.py, the Russian office in Russian: returns
    both consoles (the call selected in each) and both principals, in the call."""
    us_op = await new_page(browser, errors)
    ru_context = await browser.new_context(viewport={"width": 1366, "height": 900},
                                           locale="ru-RU")
    ru_op = await ru_context.new_page()
    ru_op.set_default_timeout(TIMEOUT_MS)
    ru_op.on("pageerror", lambda exc: errors.append(str(exc)))
    us_dev, ru_dev = [await new_page(browser, errors) for _ in range(2)]
    await ru_dev.route_web_socket("**/ws", gate)
    us_id, us_short = await create_delegation(us_op, server, "United States")
    ru_id, _ = await create_delegation(ru_op, server, "Russian Federation")
    await us_op.locator("#link-other").fill(ru_id)
    await us_op.locator("#propose-link").click()
    await expect(us_op.locator("#links .badge")).to_have_text("proposed")
    await ru_op.reload()
    await ru_op.locator(".spoken").fill(us_short)
    await ru_op.locator(".accept-link").click()
    await expect(ru_op.locator("#links .badge")).to_have_text("установлена")
    await us_op.reload()
    await expect(us_op.locator("#links .badge")).to_have_text("established")
    await enrol(us_op, us_dev, US_NAME)
    await enrol(ru_op, ru_dev, RU_NAME)
    await us_op.reload()
    await expect(us_op.locator("#draft-plan tbody tr")).to_have_count(2)
    await us_op.locator("#submit-plan").click()
    await expect(us_op.locator(".plan .badge")).to_have_text("awaiting signature")
    await ru_op.reload()
    await ru_op.locator(".cosign").click()
    await expect(ru_op.locator(".plan .badge")).to_have_text("запланированы")
    for dev in (us_dev, ru_dev):
        await dev.locator("text=Continue").click()
        await dev.locator("button[data-call]").click()
    await us_op.reload()
    await us_op.locator(".plan .start").click()  # and watches the call it started
    await us_op.locator("#confirm-ok").click()  # the console asks first
    await ru_op.reload()
    await ru_op.locator(".plan .watch").click()
    for dev in (us_dev, ru_dev):
        await wait_for_media(dev, frames=30, audio=30)
    return us_op, ru_op, us_dev, ru_dev


async def count_at_least(page: Page, selector: str, seconds: int) -> None:
    """The "N s" count under ``selector`` has reached ``seconds``."""
    await page.wait_for_function(
        """([sel, n]) => [...document.querySelectorAll(sel + " .count")]
             .some((el) => parseInt(el.textContent, 10) >= n)""", arg=[selector, seconds])


async def test_a_stalled_link_is_shown_and_repaired_make_before_break(
        browser: Browser, server: str, screenshots: Path) -> None:
    errors: list[str] = []
    gate = OfferGate()
    us_op, ru_op, us_dev, ru_dev = await consoles_start_a_call(browser, server, errors, gate)
    (before,) = await us_dev.evaluate(RULES)
    assert before["playing"] == 1 and not before["lost"] and before["shown"]
    await expect(us_dev.locator("#reconnecting")).to_be_hidden()

    # the Russian side stops sending; repairs are held back
    gate.closed = True
    await us_dev.evaluate(WATCH)
    cut_at = await ru_dev.evaluate(CUT)
    await expect(us_dev.locator("#reconnecting")).to_contain_text("Reconnecting…")
    status: list[dict[str, Any]] = await us_dev.evaluate("window.__status")
    seen = next(s for s in status if s["state"] == "reconnecting")
    assert seen["wall"] - cut_at <= SEEN_WITHIN_MS, status
    # the peer's report reaches the Russian side, which shows it too (in Russian)
    await expect(ru_dev.locator("#reconnecting")).to_contain_text("Восстановление связи…")
    # the operators are told, from the record (link.lost), in each console's language
    pair = rf"({US_NAME}|{RU_NAME}) ↔ ({US_NAME}|{RU_NAME})"  # in the order of their ids
    await expect(us_op.locator("#link-status")).to_contain_text(
        re.compile(pair + r": reconnecting… \d+ s"))
    await expect(ru_op.locator("#link-status")).to_contain_text("восстановление связи…")
    await count_at_least(us_dev, "#reconnecting", 3)
    for page, name in ((us_dev, "principal-reconnecting-en.png"),
                       (ru_dev, "principal-reconnecting-ru.png")):
        await page.screenshot(path=str(screenshots / name))
    await count_at_least(us_op, "#link-status", 3)
    await us_op.locator("#call-panel").scroll_into_view_if_needed()
    await us_op.locator("#call-panel").screenshot(
        path=str(screenshots / "operator-reconnecting-en.png"))
    await count_at_least(ru_op, "#link-status", 3)
    await ru_op.locator("#call-panel").scroll_into_view_if_needed()
    await ru_op.locator("#call-panel").screenshot(
        path=str(screenshots / "operator-reconnecting-ru.png"))
    # make-before-break: tries came and went, and the old link still plays meanwhile
    (stalled,) = await us_dev.evaluate(RULES)
    assert gate.dropped >= 2 and stalled["lost"] and stalled["shown"]
    assert stalled["playing"] == 1 and 1 in stalled["peers"]

    # offers pass again: the next try carries and plays; the old link is closed
    held_ms = await ru_dev.evaluate("Date.now()") - cut_at
    gate.closed = False
    await expect(us_dev.locator("#reconnecting")).to_be_hidden()
    await expect(ru_dev.locator("#reconnecting")).to_be_hidden()
    (after,) = await us_dev.evaluate(RULES)
    assert after["playing"] > 1 and after["peers"] == [after["playing"]] and after["shown"]
    frames = (await us_dev.evaluate("window.summitlineSession.health()"))[0]["framesDecoded"]
    for page in (us_dev, ru_dev):
        await wait_for_media(page, frames=frames + 30, audio=30)

    # the record has the stall and its end; the consoles say the link is back
    call = await us_dev.evaluate("window.summitlineSession.call")
    # the console's own signed read (web/api.js signs with the operator's key)
    record = await us_op.evaluate("async (p) => (await import('/api.js')).get(p)",
                                  f"/api/calls/{call}/record")
    links = [(e["kind"], e["data"]) for e in record["entries"] if e["kind"].startswith("link.")]
    print(json.dumps(links, indent=1))
    assert ("link.lost", 1) in [(k, d["generation"]) for k, d in links]
    assert ("link.restored", after["playing"]) in [(k, d["generation"]) for k, d in links]
    restored = [d for k, d in links if k == "link.restored"]
    assert all(held_ms - SEEN_WITHIN_MS < d["duration_ms"] < held_ms + 20_000 for d in restored)
    await expect(us_op.locator("#link-status")).to_contain_text("All links carry media.")
    await expect(us_op.locator("#repairs")).to_contain_text("Repaired so far: 1")
    await expect(ru_op.locator("#link-status")).to_contain_text("Все соединения в порядке.")
    assert errors == []


A, B, C = "a" * 64, "b" * 64, "c" * 64
RECORD = [  # what the operator's call view reads: kind, at, data
    ("endpoint.joined", 1000, {"device": A, "role": "principal", "name": "Alpha"}),
    ("endpoint.joined", 1100, {"device": B, "role": "principal", "name": "Bravo"}),
    ("endpoint.joined", 1200, {"device": C, "role": "interpreter", "name": "Charlie"}),
    ("call.started", 2000, {"by": "x"}),
    ("press.feed", 2100, {"device": A}),
    ("press.feed", 2200, {"device": B}),
    # a stall of A-B, reported by both sides, repaired (each side reports the end)
    ("link.lost", 3000, {"device": A, "peer": B, "generation": 1}),
    ("link.lost", 3050, {"device": B, "peer": A, "generation": 1}),
    ("link.restored", 4500, {"device": B, "peer": A, "generation": 2, "duration_ms": 1450}),
    ("link.restored", 4600, {"device": A, "peer": B, "generation": 2, "duration_ms": 1600}),
    # A-C stalls and is not back yet
    ("link.lost", 5000, {"device": C, "peer": A, "generation": 1}),
    ("link.lost", 5100, {"device": A, "peer": C, "generation": 1}),
    # B came back on a new connection and has not reached the press gateway again
    ("endpoint.joined", 6000, {"device": B, "role": "principal", "name": "Bravo"}),
]


async def test_the_call_view_reads_stalls_and_press_feeds_from_the_record(
        browser: Browser, server: str) -> None:
    page = await new_page(browser)
    await page.goto(server + "/")
    entries = [{"kind": k, "at": at, "data": d} for k, at, d in RECORD]
    got = await page.evaluate("async (e) => (await import('/views/operator.js')).mediaLinks(e)",
                              entries)
    assert got["lost"] == [{"names": ["Alpha", "Charlie"], "since": 5000}]
    assert got["repairs"] == 1 and got["longest"] == 1600
    assert got["press"] == [{"device": A, "name": "Alpha", "since": 2000, "at": 2100},
                            {"device": B, "name": "Bravo", "since": 6000, "at": None}]

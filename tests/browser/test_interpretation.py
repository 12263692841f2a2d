"""Interpretation in the browser: two principals and one interpreter per delegation,
each interpreting its principal into the other's language. Each principal hears the
channel of its own language (the right interpreter's track, at full level, with the
original ducked underneath). The Russian booth has a second partner (a Python parrot):
the browser interpreter asks it to take over while the principals speak, it accepts, and
the American principal's ear follows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import participant
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, Identity
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    BrowserDevice,
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)
from tests.client.test_session import WAIT_S


async def link_of(page: Page, remote: str) -> dict[str, Any]:
    health: list[dict[str, Any]] = await page.evaluate(
        "() => window.summitlineSession.health()")
    return next(h for h in health if h["peer"] == remote)


async def wait_audio_from(page: Page, remote: str, packets: int) -> None:
    await page.wait_for_function(
        """([remote, packets]) => window.summitlineSession.health().then(hs => {
             window.__a = hs.find(h => h.peer === remote); return true; })
           && window.__a && window.__a.audioPacketsReceived >= packets""",
        arg=[remote, packets], polling=250)


async def hears(page: Page, interpreter: str) -> None:
    """The page plays ``interpreter`` at full level and the original ducked."""
    await page.wait_for_function(
        "(i) => window.summitlineListening?.playing === i && "
        "window.summitlineListening.gainOf(i) === 1", arg=interpreter, polling=100)


async def test_each_principal_hears_its_language_and_a_handover_is_followed(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        screenshots: Path) -> None:
    us, ru, link = await linked_operators(http)
    errors: list[str] = []
    us_p = await enrol_browser(browser, server, us, "President of the United States",
                               errors=errors)
    ru_p = await enrol_browser(browser, server, ru, "President of the Russian Federation",
                               errors=errors)
    us_i = await enrol_browser(browser, server, us, "US interpreter", Role.INTERPRETER,
                               errors=errors)
    ru_i = await enrol_browser(browser, server, ru, "RU interpreter", Role.INTERPRETER,
                               errors=errors)
    partner = PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, us_p.key, "President of the United States", "en"),
        principal(ru, ru_p.key, "President of the Russian Federation", "ru"),
        participant(us_i.key, us.key, Role.INTERPRETER, "US interpreter", "ru"),
        participant(ru_i.key, ru.key, Role.INTERPRETER, "RU interpreter", "en"),
        participant(partner, ru.key, Role.INTERPRETER, "RU interpreter 2", "en")])
    await us.control(plan.call, "start")
    people: list[BrowserDevice] = [us_p, ru_p, us_i, ru_i]
    for device in people:
        await join_in_browser(device, server, plan.call)
    bot = CallSession(ws_url, plan.call, Identity(partner, dict(ru.pinned)), ice=loopback(),
                      source=MediaSource.interpreter(parrot=True))
    task = asyncio.create_task(bot.run())
    for device in (us_p, ru_p):
        await wait_for_media(device.page, frames=10, audio=10)

    # the interpreters go on air; each principal hears the channel of its language
    for device in (us_i, ru_i):
        onair = device.page.locator("#onair")
        # the control is live once the server let the console in; a press before that
        # would go nowhere
        await expect(onair).to_have_text("Go on air")
        await onair.click()
        await expect(device.page.locator("#indicator")).to_have_text("ON AIR")
    await expect(us_p.page.locator("#channel")).to_have_value("en")
    await expect(ru_p.page.locator("#channel")).to_have_value("ru")
    await hears(us_p.page, ru_i.device)  # English, from the Russian delegation's interpreter
    await hears(ru_p.page, us_i.device)  # Russian, from the American one
    for page, interp, floor in ((us_p.page, ru_i.device, ru_p.device),
                                (ru_p.page, us_i.device, us_p.device)):
        before = (await link_of(page, interp))["audioPacketsReceived"]
        await wait_audio_from(page, interp, before + 100)  # two more seconds of it
        ducked = await page.evaluate("(f) => window.summitlineListening.gainOf(f)", floor)
        assert ducked == pytest.approx(0.3)  # the original, ducked underneath (float32)
        assert await page.evaluate("(i) => window.summitlineListening.gainOf(i)",
                                   us_i.device if interp == ru_i.device else ru_i.device) == 0
    # interpreters are never seen and, without the grant, see nothing
    for device in (us_i, ru_i):
        await expect(device.page.locator("#no-video")).to_be_visible()
        health = await device.page.evaluate("() => window.summitlineSession.health()")
        assert health and all(h["framesDecoded"] == 0 for h in health)
    await ru_i.page.screenshot(path=str(screenshots / "interpreter-console.png"))
    await us_p.page.screenshot(path=str(screenshots / "principal-listening.png"))

    # handover in the English booth, while the principals speak (their fake microphones
    # never stop): the browser interpreter asks its partner, who accepts
    await ru_i.page.locator("#handover").click()
    await asyncio.wait_for(bot.wait_for(lambda: bot.handover_asker == ru_i.device), WAIT_S)
    assert not bot.live  # asked, not yet handed over
    await bot.answer_handover(True)
    await expect(ru_i.page.locator("#indicator")).to_have_text("OFF AIR")
    await expect(ru_i.page.locator("#partner")).to_contain_text("on air")
    await hears(us_p.page, partner.fingerprint)
    assert bot.live
    # the Russian principal's ear did not move
    await hears(ru_p.page, us_i.device)

    await us.control(plan.call, "end")
    await asyncio.wait_for(task, WAIT_S)
    await bot.leave()
    record = (await signed_get(http, us.key, f"/api/calls/{plan.call}/record")).json()["entries"]
    booth = [(e["kind"], e["data"]["channel"]) for e in record if e["kind"].startswith("booth")]
    assert ("booth.request", "en") in booth and ("booth.accept", "en") in booth
    assert booth.count(("booth.live", "en")) == 1
    assert errors == []

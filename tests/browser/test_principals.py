"""Principals in the browser: with each other, with the Python endpoint (each side
offering once: the device whose id sorts first offers, whoever joined first), and
refusing a plan with a forged signature."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from summitline.client.ice import loopback
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    cosigned_plan,
    end_with_python,
    enrol_browser,
    health,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)
from tests.client.test_session import WAIT_S, until

US_NAME, RU_NAME = "President of the United States", "President of the Russian Federation"


def key_sorting(other: str, first: bool) -> PrivateKey:
    """A device key whose id sorts before ``other`` (``first``) or after it. The device
    whose id sorts first offers every link of the pair (docs/protocol.md, 5.5), so a test
    picks who offers by picking the Python principal's key."""
    for _ in range(100_000):
        key = PrivateKey.generate()
        if (key.fingerprint < other) == first:
            return key
    raise AssertionError(f"no key sorts {'before' if first else 'after'} {other[:12]}…")


async def frames(page: Page) -> tuple[int, int]:
    (h,) = await health(page)
    return h["framesDecoded"], h["audioPacketsReceived"]


async def test_two_browser_principals_hold_a_call(browser: Browser, server: str,
                                                  http: httpx.AsyncClient,
                                                  screenshots: Path) -> None:
    # two tabs of one browser, as a newcomer tries it on one machine
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    a = await enrol_browser(browser, server, us, US_NAME, errors=errors)
    b = await enrol_browser(browser, server, ru, RU_NAME, errors=errors, tab_of=a.page)
    await a.page.goto(f"{server}/#/principal")  # two devices here: the view asks which
    await expect(a.page.locator("nav.choices a")).to_have_count(2)
    await a.page.screenshot(path=str(screenshots / "principal-choose-device.png"))
    plan = await cosigned_plan(us, ru, link, [principal(us, a.key, US_NAME, "en"),
                                              principal(ru, b.key, RU_NAME, "ru")])
    await join_in_browser(a, server, plan.call)
    await join_in_browser(b, server, plan.call)
    await expect(a.page.locator("#phase")).to_have_text("Waiting for the call to start")
    await us.control(plan.call, "start")
    for page in (a.page, b.page):
        await wait_for_media(page)
    first = [await frames(p) for p in (a.page, b.page)]
    # several seconds later both counters have grown on both sides (30 fps fake camera)
    for page, (video, audio) in zip((a.page, b.page), first, strict=True):
        await wait_for_media(page, frames=video + 90, audio=audio + 150)
    # the same verification code on both screens, and each side in its own language
    await expect(a.page.locator("#sas")).to_have_text(await b.page.locator("#sas").inner_text())
    assert len((await a.page.locator("#sas").inner_text()).replace(" ", "")) == 6
    await expect(a.page.locator("#phase")).to_have_text("Closed session")
    await expect(b.page.locator("#phase")).to_have_text("Закрытая часть")
    await expect(b.page.locator("html")).to_have_attribute("lang", "ru")
    # mute from the keyboard: the control says so and the microphone track is off
    await a.page.keyboard.press("m")
    await expect(a.page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    assert await a.page.evaluate(
        "() => window.summitlineSession.localStream.getAudioTracks()[0].enabled") is False
    await a.page.screenshot(path=str(screenshots / "principal-en.png"))
    await b.page.screenshot(path=str(screenshots / "principal-ru.png"))
    # ending from the principal view, with a confirmation
    await b.page.locator("#end").click()
    await b.page.locator("#end-yes").click()
    for page in (a.page, b.page):
        await expect(page.locator("#stop h1")).to_be_visible()
    await expect(a.page.locator("#stop h1")).to_have_text("The call has ended")
    call = (await signed_get(http, us.key, f"/api/calls/{plan.call}")).json()
    assert call["phase"] == "ended" and call["duration_ms"] > 0
    assert errors == []


async def test_browser_and_python_principals_each_offering_once(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, US_NAME)
    # The lower id offers, whoever joins first: here each side offers once, each time
    # having joined in the order in which it would not have offered by the old rule
    # (the later joiner offered).
    for python_first, python_offers in ((True, True), (False, False)):
        py_key = key_sorting(web.device, first=python_offers)
        plan = await cosigned_plan(us, ru, link, [principal(us, web.key, US_NAME, "en"),
                                                  principal(ru, py_key, RU_NAME, "ru")])
        await us.control(plan.call, "start")
        py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
        task: asyncio.Task[None] | None = None
        if python_first:
            task = asyncio.create_task(py.run())
            await asyncio.wait_for(py.joined.wait(), WAIT_S)
        await join_in_browser(web, server, plan.call)
        if not python_first:
            await web.page.wait_for_function(  # this call's session has joined
                "(call) => window.summitlineSession?.call === call && "
                "window.summitlineSession.signed", arg=plan.call)
            task = asyncio.create_task(py.run())
        await wait_for_media(web.page, frames=10, audio=10)
        await until([py], lambda s: s.frames(MediaKind.VIDEO) > 10
                    and s.frames(MediaKind.AUDIO) > 10)
        record = (await signed_get(http, us.key,
                                   f"/api/calls/{plan.call}/record")).json()["entries"]
        (offer,) = [e for e in record if e["kind"] == "signal.offer"]
        assert offer["data"]["from"] == (py.device if python_offers else web.device)
        assert offer["data"]["from"] == min(py.device, web.device)
        web_sas = await web.page.locator("#sas").inner_text()
        assert py.short_authentication_string(web.device) == web_sas
        await end_with_python(ru, plan.call, task, py)


async def test_a_plan_with_a_forged_signature_is_refused(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        screenshots: Path) -> None:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, US_NAME)
    py_key = key_sorting(web.device, first=False)  # the browser would offer: it must not
    plan = await cosigned_plan(us, ru, link, [principal(us, web.key, US_NAME, "en"),
                                              principal(ru, py_key, RU_NAME, "ru")])
    await us.control(plan.call, "start")
    py = CallSession(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await asyncio.wait_for(py.joined.wait(), WAIT_S)

    # A server that forges: the Russian signature on the plan is replaced by one made
    # with another key, in the welcome the browser receives.
    forger = PrivateKey.generate()

    def forge(message: str | bytes) -> str | bytes:
        msg: dict[str, Any] = json.loads(message)
        if msg.get("type") == "welcome":
            msg["signed_plan"]["signatures"][ru.id] = forger.sign({"purpose": "x"})
        return json.dumps(msg)

    def route(ws: WebSocketRoute) -> None:
        server_side = ws.connect_to_server()
        ws.on_message(lambda m: server_side.send(m))
        server_side.on_message(lambda m: ws.send(forge(m)))

    await web.page.route_web_socket("**/ws", route)
    await join_in_browser(web, server, plan.call)
    await expect(web.page.locator("#stop h1")).to_have_text("This call cannot be verified")
    await web.page.locator("#stop summary").click()
    await expect(web.page.locator("#stop-detail")).to_contain_text(
        "signature of Russian Federation on the plan is invalid")
    await web.page.screenshot(path=str(screenshots / "principal-plan-refused.png"))
    # no media: the browser made no peer connection, its camera is off, and the Python
    # principal received nothing
    assert await web.page.evaluate("() => window.summitlineSession.links.size") == 0
    assert await web.page.evaluate("() => window.summitlineSession.localStream.getTracks()"
                                   ".every(t => t.readyState === 'ended')")
    assert py.frames(MediaKind.VIDEO) == py.frames(MediaKind.AUDIO) == 0 and not py.links
    record = (await signed_get(http, us.key, f"/api/calls/{plan.call}/record")).json()["entries"]
    assert not [e for e in record if e["kind"] == "signal.offer"]
    await end_with_python(us, plan.call, task, py)

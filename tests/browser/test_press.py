"""The press window in the browser: two browser principals send their floor to the press
gateway; a press page shows the programme during the window and nothing after it; the
HLS programme reads with ffprobe and then ends. And a server that keeps the window open:
the browser principal cuts at the signed deadline anyway, and alarms."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import loopback
from summitline.client.press import PressViewer
from summitline.client.session import CallSession, Identity
from summitline.crypto.keys import PrivateKey
from summitline.server.press.gateway import PressGateway
from summitline.server.room import CallRoom
from tests.browser.people import (
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    new_page,
    principal,
)
from tests.client.test_press import CUT_SLACK_MS, DARK, LATE_MS, WAIT_S, ffprobe, luma

US_NAME, RU_NAME = "President of the United States", "President of the Russian Federation"
WINDOW_S = 30  # two browsers, a press page and ffprobe on a loaded 2-core machine
FORGOTTEN_S = 20  # a browser, a Python principal and viewer on a loaded machine


async def keep_told(page: Page) -> None:
    """From now on the page keeps what its session announces (each phase with its press
    deadline, the press feed going out or stopping), so that the test reads the deadline
    and waits for the feed however late it looks: a loaded machine can delay a look at the
    page by many seconds, and the live state is gone once the doors shut."""
    await page.wait_for_function("() => window.summitlineSession")
    await page.evaluate("""() => {
        const session = window.summitlineSession, told = window.summitlineTold = [];
        session.addEventListener("phase", (ev) => told.push(
          { phase: ev.detail.phase, deadline: ev.detail.deadline }));
        session.addEventListener("press", (ev) => told.push({ sending: ev.detail.sending }));
      }""")


async def sending_to_press(page: Page) -> int:
    """Wait until the session has sent its floor to the press gateway (it took the
    gateway's answer); the press deadline it computed from the signed start."""
    await page.wait_for_function(
        "() => window.summitlineTold.some((t) => t.sending === true)")
    told: list[dict[str, Any]] = await page.evaluate("window.summitlineTold")
    deadlines = [t["deadline"] for t in told if t.get("phase") == "open"]
    assert deadlines and all(d == deadlines[0] for d in deadlines), told
    deadline: int = deadlines[0]
    return deadline


async def test_a_press_viewer_sees_the_window_and_nothing_after(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    a = await enrol_browser(browser, server, us, US_NAME, errors=errors)
    b = await enrol_browser(browser, server, ru, RU_NAME, errors=errors)
    plan = await cosigned_plan(us, ru, link, [principal(us, a.key, US_NAME, "en"),
                                              principal(ru, b.key, RU_NAME, "ru")],
                               press_window_s=WINDOW_S)
    for device in (a, b):
        await join_in_browser(device, server, plan.call)
    # the press come early and wait for the window
    issued = await ru.press_token(plan.call)
    token = issued["token"]
    press = await new_page(browser, errors)
    # the link as the press office hands it out: the press pages the server serves
    assert issued["press_page"] == f"/press.html#/press/{plan.call}/{token}"
    await press.goto(server + issued["press_page"])
    await expect(press.locator("#press-state")).to_have_attribute("data-state", "waiting")
    await press.screenshot(path=str(screenshots / "press-page-waiting.png"))
    for device in (a, b):
        await keep_told(device.page)
    deadline = (await us.control(plan.call, "start"))["press_deadline_ms"]
    for device in (a, b):  # each computed the deadline of the signed start itself
        assert await sending_to_press(device.page) == deadline
    await press.wait_for_function("() => window.summitlinePress.frames.length > 20")
    await press.screenshot(path=str(screenshots / "press-page-live.png"))

    playlist = f"/api/press/{plan.call}/hls/index.m3u8"
    await press.wait_for_function(
        """async ([url, token]) => (await (await fetch(url, {
             headers: { authorization: `Bearer ${token}` } })).text()).includes('segment')""",
        arg=[playlist, token])
    streams = await ffprobe(server + playlist, token)
    assert "codec_name=h264|width=640|height=480" in streams and "codec_name=aac" in streams

    await expect(press.locator("#doors")).to_be_visible(timeout=(WINDOW_S + 30) * 1000)
    await expect(press.locator("#programme")).to_be_hidden()
    await expect(press.locator("#doors")).to_have_text(
        "The talks continue behind closed doors.")
    await press.screenshot(path=str(screenshots / "press-page-closed.png"))
    states: list[tuple[str, int]] = await press.evaluate("window.summitlinePress.states")
    seen = dict(states)  # each state's last time (at the deadline the gateway stops a
    # moment before the doors shut, and the page may show "waiting" in between)
    assert states[0][0] == "waiting" and states[-1][0] == "closed"
    assert seen["open"] < deadline <= seen["closed"]
    shown: list[int] = await press.evaluate("window.summitlinePress.frames")
    assert len([t for t in shown if t < deadline]) > 20
    assert max(shown) - deadline < 4 * CUT_SLACK_MS  # what was on the way, no more
    assert await press.evaluate("window.summitlinePress.pc") is None
    for device in (a, b):
        cut = await device.page.evaluate("window.summitlineSession.pressCutAt")
        # the browser cuts on a timer, late by what its page's event loop is busy with
        # (docs/security.md §4); bench/press_cut.py measures it on a quiet machine
        assert 0 <= cut - deadline < 4 * CUT_SLACK_MS
        assert await device.page.evaluate("window.summitlineSession.alarms") == []
    assert (await http.get(playlist, headers={"Authorization": f"Bearer {token}"})
            ).text.rstrip().endswith("#EXT-X-ENDLIST")
    assert errors == []


async def test_the_browser_principal_cuts_when_the_server_keeps_the_window_open(
        monkeypatch: pytest.MonkeyPatch, browser: Browser, server: str,
        http: httpx.AsyncClient, ws_url: str, screenshots: Path) -> None:
    monkeypatch.setattr(CallRoom, "arm_press_timer", lambda self: None)
    monkeypatch.setattr(PressGateway, "enforce_deadline", False)
    us, ru, link = await linked_operators(http)
    a = await enrol_browser(browser, server, us, US_NAME)
    ru_key = PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [principal(us, a.key, US_NAME, "en"),
                                              principal(ru, ru_key, RU_NAME, "ru")],
                               press_window_s=FORGOTTEN_S)
    py = CallSession(ws_url, plan.call, Identity(ru_key, dict(ru.pinned)), ice=loopback())
    task = asyncio.create_task(py.run())
    await join_in_browser(a, server, plan.call)
    await keep_told(a.page)
    await asyncio.wait_for(py.joined.wait(), WAIT_S)
    token = (await us.press_token(plan.call))["token"]
    deadline = (await us.control(plan.call, "start"))["press_deadline_ms"]
    pictures: list[tuple[int, float]] = []
    viewer = PressViewer(http, plan.call, token, loopback(),
                         on_video=lambda f, at: pictures.append((at, luma(f))))
    await viewer.watch()  # at once: the frames before the deadline are the reference
    assert await sending_to_press(a.page) == deadline
    await expect(a.page.locator("#alarm")).to_contain_text("open past the deadline",
                                                           timeout=(FORGOTTEN_S + 30) * 1000)
    await a.page.screenshot(path=str(screenshots / "principal-press-window-alarm.png"))
    cut = await a.page.evaluate("window.summitlineSession.pressCutAt")
    assert 0 <= cut - deadline < 4 * CUT_SLACK_MS  # a timer: see above
    assert await a.page.evaluate("window.summitlineSession.phase") == "open"  # server's word
    # frames that arrive well after the deadline (a loaded machine delays the programme
    # by up to a second or two): neither principal is in them
    await asyncio.wait_for(viewer.wait_for(
        lambda: sum(at > deadline + LATE_MS for at, _ in pictures) > 10), WAIT_S)
    before = [lum for at, lum in pictures if at < deadline]
    after = [lum for at, lum in pictures if at > deadline + LATE_MS]
    assert before and max(before) > DARK
    assert after and max(after) < DARK  # neither principal is in the programme any more
    await viewer.close()
    await py.leave()
    task.cancel()

"""The press page in Chromium through a real Janus: the page gets Janus's offer from the
WHEP-style route, answers it, and shows the programme from Janus until the deadline;
then the doors close and the connection goes (tests/client/test_press_janus.py has the
Python viewers and the mountpoint's end)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import Browser, expect

from summitline.console import WEB
from tests.browser.people import new_page
from tests.client.test_press import CUT_SLACK_MS, WAIT_S, joined_window
from tests.client.test_press_janus import Through, through  # noqa: F401 - the fixture
from tests.client.test_session import leave_all

RU_CLOSED = json.loads((WEB / "i18n" / "ru.json").read_text())["press_closed"]
WINDOW_S = 25  # Chromium, two Python principals and Janus on a loaded 2-core machine


async def test_the_press_page_watches_through_janus_until_the_deadline(
        through: Through, browser: Browser, screenshots: Path) -> None:  # noqa: F811
    errors: list[str] = []
    http, ws = through.http, through.base.replace("http", "ws", 1) + "/ws"
    call, a, b, tasks = await joined_window(http, ws, WINDOW_S)
    issued = await call.a.operator.press_token(call.call)
    press = await new_page(browser, errors, locale="ru")  # a Russian journalist
    await press.goto(through.base + issued["press_page"])
    await expect(press.locator("#press-state")).to_have_attribute("data-state", "waiting")
    await call.a.operator.control(call.call, "start")
    await asyncio.wait_for(asyncio.gather(a.press_answered.wait(), b.press_answered.wait()),
                           WAIT_S)
    assert a.press_deadline_ms is not None
    deadline = a.press_deadline_ms
    await press.wait_for_function("() => window.summitlinePress.frames.length > 20")
    await press.screenshot(path=str(screenshots / "press-page-janus-live-ru.png"))
    feed = through.press.feeds[call.call]
    assert feed.viewers == {} and through.press.viewers(call.call) == 1  # Janus's viewer

    await expect(press.locator("#doors")).to_be_visible(timeout=(WINDOW_S + 30) * 1000)
    await expect(press.locator("#programme")).to_be_hidden()
    await expect(press.locator("#doors")).to_have_text(RU_CLOSED)
    shown: list[int] = await press.evaluate("window.summitlinePress.frames")
    assert len([t for t in shown if t < deadline]) > 20
    assert max(shown) - deadline < 4 * CUT_SLACK_MS
    assert await press.evaluate("window.summitlinePress.pc") is None
    assert await through.api.mountpoints() == []
    await press.screenshot(path=str(screenshots / "press-page-janus-closed-ru.png"))
    await press.context.close()
    await leave_all((a, b), tasks)
    assert errors == []

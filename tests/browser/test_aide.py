"""The aide button in the browser: the American principal pages its aide, whose console
chimes and shows a banner; the aide answers; the principal sees who is coming and holds
the floor for an aside. The Russian principal (a browser too), its interpreter and aide,
and a press viewer receive nothing of the page: every message and track is recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import loopback
from summitline.client.media import MediaSource, loudness
from summitline.client.operator import participant
from summitline.client.peer import SILENCE
from summitline.client.press import PressViewer
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind, Role
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    cosigned_plan,
    enrol_browser,
    health,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)
from tests.client.test_aide import ALLOWED_TO_OTHERS
from tests.client.test_press import WAIT_S

US_NAME, RU_NAME = "President of the United States", "President of the Russian Federation"
AIDE_NAME = "Chief of Staff"


async def test_a_principal_pages_its_aide_and_nothing_reaches_the_other_side(
        browser: Browser, server: str, http: httpx.AsyncClient, ws_url: str,
        screenshots: Path) -> None:
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    a = await enrol_browser(browser, server, us, US_NAME, errors=errors)
    aide = await enrol_browser(browser, server, us, AIDE_NAME, role=Role.AIDE, errors=errors)
    b = await enrol_browser(browser, server, ru, RU_NAME, errors=errors)
    ru_aide_key, ru_interp_key = PrivateKey.generate(), PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, a.key, US_NAME, "en"),
        principal(ru, b.key, RU_NAME, "ru"),
        participant(aide.key, us.key, Role.AIDE, AIDE_NAME, "en"),
        participant(ru_aide_key, ru.key, Role.AIDE, "Aide", "ru"),
        participant(ru_interp_key, ru.key, Role.INTERPRETER, "Interpreter", "ru"),
    ], press_window_s=600)
    # everything the Russian browser principal receives over signaling
    ru_frames: list[str] = []
    b.page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: ru_frames.append(str(payload))))
    pins = dict(ru.pinned)
    ru_aide = CallSession(ws_url, plan.call, Identity(ru_aide_key, pins), ice=loopback(),
                          source=MediaSource(None, None))
    ru_interp = CallSession(ws_url, plan.call, Identity(ru_interp_key, pins), ice=loopback(),
                            source=MediaSource.interpreter())
    tasks = [asyncio.create_task(s.run()) for s in (ru_aide, ru_interp)]
    for device in (a, b, aide):
        await join_in_browser(device, server, plan.call)
    await expect(aide.page.locator("#aide-waiting")).to_contain_text(US_NAME)
    await asyncio.wait_for(asyncio.gather(ru_aide.joined.wait(), ru_interp.joined.wait()),
                           WAIT_S)
    await us.control(plan.call, "start")
    for page in (a.page, b.page):
        await wait_for_media(page)
    viewer = PressViewer(http, plan.call, (await ru.press_token(plan.call))["token"],
                         loopback())
    await viewer.watch()

    # the page: the aide's console chimes and shows a banner until the aide answers
    await a.page.keyboard.press("a")
    await expect(aide.page.locator("#page-banner")).to_be_visible()
    await expect(aide.page.locator("#page-banner")).to_contain_text(
        f"{US_NAME} is calling you")
    await aide.page.wait_for_function("() => (window.summitlineChimes || 0) >= 2")
    await expect(a.page.locator("#aide-status")).to_have_text("Your aides have been called")
    await aide.page.screenshot(path=str(screenshots / "aide-console-paged.png"))
    await aide.page.locator("#ack").click()
    await expect(aide.page.locator("#page-banner")).to_be_hidden()
    await expect(a.page.locator("#aide-status")).to_have_text(f"{AIDE_NAME} is coming")
    chimes = await aide.page.evaluate("window.summitlineChimes")
    await expect(aide.page.locator("#aide-waiting")).to_contain_text("Waiting")
    assert await aide.page.evaluate("window.summitlineChimes") == chimes  # quiet now

    # the aside: one key holds the floor audio; the other side sees only "on hold"
    # what the Russian interpreter hears of the American principal, over every link
    heard = {"frames": 0, "loud": 0}

    def hear(remote: str, frame: object, _now: float) -> None:
        if remote == a.device:
            heard["frames"] += 1
            heard["loud"] += loudness(frame) > SILENCE  # type: ignore[arg-type]

    ru_interp.audio_listeners.append(hear)
    await asyncio.wait_for(ru_interp.wait_for(lambda: heard["loud"] > 5), WAIT_S)
    await a.page.keyboard.press("h")
    await expect(a.page.locator("#on-hold")).to_be_visible()
    await expect(b.page.locator("#remote-hold")).to_have_text(f"{US_NAME}: пауза")  # in Russian
    await a.page.screenshot(path=str(screenshots / "principal-aide-coming-on-hold.png"))
    await b.page.screenshot(path=str(screenshots / "principal-other-side-on-hold.png"))
    # paced by the video the Russian principal decodes (30 fps), not by the held audio
    # itself: what was on the way has arrived after half a second; then three seconds
    seen = await decoded(b.page)
    await wait_for_media(b.page, frames=seen + 15)
    loud, seen = heard["loud"], await decoded(b.page)
    await wait_for_media(b.page, frames=seen + 90)
    assert heard["loud"] == loud  # three seconds, several beeps of the fake microphone
    await a.page.keyboard.press("h")
    await expect(b.page.locator("#remote-hold")).to_be_hidden()
    await asyncio.wait_for(ru_interp.wait_for(lambda: heard["loud"] > loud), WAIT_S)

    # nothing of the page, the answer or the aide reached the other delegation or press
    pages = await a.page.evaluate("[...window.summitlineSession.acks.keys()]")
    assert len(pages) == 1
    ru_messages = [json.loads(f) for f in ru_frames]
    for inbox in (ru_messages, ru_aide.inbox, ru_interp.inbox):
        # and link health: reports of stalled links, and which kinds a peer has off (an
        # aside turns the microphone off; the other side learns that from "held" anyway)
        assert {msg["type"] for msg in inbox} <= ALLOWED_TO_OTHERS | {"link", "media"}
        assert not [m for m in inbox if pages[0] in json.dumps(m)]
    assert {"held"} <= {msg["type"] for msg in ru_messages}
    assert ru_aide.links == {} and not ru_aide.pages
    assert {k for lk in ru_interp.links.values() for k in lk.tracks} == {"audio"}
    assert viewer.frames[MediaKind.VIDEO] > 0
    assert await b.page.evaluate("window.summitlineSession.pages.length") == 0
    private = await us.private_record(plan.call)
    assert [e["kind"] for e in private] == ["aide.paged", "aide.acked", "aside.started",
                                            "aside.ended"]
    assert await ru.private_record(plan.call) == []
    assert errors == []

    await viewer.close()
    for s in (ru_aide, ru_interp):
        await s.leave()
    for task in tasks:
        task.cancel()


async def decoded(page: Page) -> int:
    """Video frames the page has decoded, over its peer connections."""
    return max((h["framesDecoded"] for h in await health(page)), default=0)

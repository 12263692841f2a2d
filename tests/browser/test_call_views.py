"""What the principal and interpreter views show of the others: a verification code per
peer, labelled with who it is for (the principals' codes for each other equal); the other
principal's microphone and camera state, carried over the link itself (the server's
word on it is not taken); shortcuts by physical key, whatever the keyboard layout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from summitline.client.operator import participant
from summitline.core.roles import Role
from tests.browser.people import (
    TIMEOUT_MS,
    BrowserDevice,
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)

US_NAME, RU_NAME = "President of the United States", "President of the Russian Federation"
SHOTS = Path("/work/shots/principal")
SHOTS.mkdir(parents=True, exist_ok=True)


async def russian_tab(browser: Browser) -> Page:
    """A browser whose language is Russian, for the pages that follow it."""
    context = await browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def codes(page: Page) -> dict[str, str]:
    """The verification code the page shows for each peer, by the peer's device id."""
    shown: dict[str, str] = await page.evaluate("""() => {
        const out = {};
        const main = document.querySelector('#sas');
        if (main?.dataset.remote && main.textContent) out[main.dataset.remote] = main.textContent;
        for (const li of document.querySelectorAll('#sas-others li')) {
          out[li.dataset.remote] = li.querySelector('.sas-small').textContent;
        }
        return out; }""")
    return shown


async def wait_codes(page: Page, peers: list[str]) -> dict[str, str]:
    await page.wait_for_function("""(peers) => {
        const ids = new Set([...document.querySelectorAll('[data-remote]')]
          .filter((e) => e.id === 'sas' ? e.textContent : e.closest('#sas-others'))
          .map((e) => e.dataset.remote));
        return peers.every((p) => ids.has(p)); }""", arg=peers, polling=250)
    return await codes(page)


async def press_key(page: Page, code: str, key: str) -> None:
    """A key press as a Russian layout sends it: the physical key's code, a Cyrillic key."""
    await page.evaluate("""([code, key]) => {
        for (const type of ['keydown', 'keyup']) {
          document.dispatchEvent(new KeyboardEvent(type, { code, key, bubbles: true }));
        } }""", [code, key])


async def shoot(page: Page, name: str, sizes: tuple[tuple[int, int], ...] = (
        (1280, 800), (1920, 1080))) -> None:
    for width, height in sizes:
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"))
    await page.set_viewport_size({"width": 1280, "height": 800})


async def test_every_page_shows_a_labelled_code_per_peer_and_the_principals_agree(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    errors: list[str] = []
    us_p = await enrol_browser(browser, server, us, US_NAME, errors=errors)
    ru_p = await enrol_browser(browser, server, ru, RU_NAME, errors=errors)
    us_i = await enrol_browser(browser, server, us, "Anna Smith", Role.INTERPRETER,
                               errors=errors)
    ru_i = await enrol_browser(browser, server, ru, "Pavel Ivanov", Role.INTERPRETER,
                               errors=errors, tab_of=await russian_tab(browser))
    plan = await cosigned_plan(us, ru, link, [
        principal(us, us_p.key, US_NAME, "en"),
        principal(ru, ru_p.key, RU_NAME, "ru"),
        participant(us_i.key, us.key, Role.INTERPRETER, "Anna Smith", "ru"),
        participant(ru_i.key, ru.key, Role.INTERPRETER, "Pavel Ivanov", "en")])
    await us.control(plan.call, "start")
    people: list[BrowserDevice] = [us_p, ru_p, us_i, ru_i]
    for device in people:
        await join_in_browser(device, server, plan.call)
    for device in (us_p, ru_p):
        await wait_for_media(device.page, frames=5, audio=5)

    ids = [d.device for d in people]
    shown = {}
    for device in people:
        shown[device.device] = await wait_codes(
            device.page, [i for i in ids if i != device.device])
    # each pair of devices reads the same code for each other, and no two pairs share one
    for a in ids:
        for b in ids:
            if a != b:
                assert shown[a][b] == shown[b][a], (a[:8], b[:8])
                assert len(shown[a][b].replace(" ", "")) == 6
    assert len({shown[a][b] for a in ids for b in ids if a < b}) == 6
    # the principals' code for each other is the prominent one, labelled with who it is for
    await expect(us_p.page.locator("#sas")).to_have_text(shown[us_p.device][ru_p.device])
    await expect(ru_p.page.locator("#sas")).to_have_text(shown[ru_p.device][us_p.device])
    await expect(us_p.page.locator("#sas-title")).to_have_text(
        f"Verify with {RU_NAME} (Russian Federation)")
    await expect(ru_p.page.locator("#sas-title")).to_have_text(
        f"Сверьте с: {US_NAME} (United States)")
    await expect(us_p.page.locator(f'#sas-others li[data-remote="{us_i.device}"]')).to_have_text(
        f"Verify with Anna Smith (United States){shown[us_p.device][us_i.device]}")

    # the call's time since the signed start, and the connection quality from getStats
    await expect(us_p.page.locator("#timer")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(us_p.page.locator("#quality")).to_have_attribute("data-quality", "good")
    await expect(ru_p.page.locator("#quality")).to_have_text("Связь: хорошая")

    # the interpreter consoles: the channel by name, in the page's language
    await expect(us_i.page.locator("#booth-channel")).to_have_text("Russian")
    await expect(ru_i.page.locator("#booth-channel")).to_have_text("английский")
    await expect(ru_i.page.locator("h1")).to_have_text("Пульт переводчика")
    # no partner in either booth: nothing to hand over to
    for device in (us_i, ru_i):
        await expect(device.page.locator("#handover")).to_be_disabled()
    # on air by the physical L key, on a Russian layout ("д")
    await expect(ru_i.page.locator("#onair")).to_have_text("Выйти в эфир")
    await press_key(ru_i.page, "KeyL", "д")
    await expect(ru_i.page.locator("#indicator")).to_have_text("В ЭФИРЕ")
    await expect(us_i.page.locator("#onair")).to_have_text("Go on air")
    await us_i.page.locator("#onair").click()
    await expect(us_i.page.locator("#indicator")).to_have_text("ON AIR")
    # who holds the floor: the principals' fake microphones beep; a meter per principal
    await expect(us_i.page.locator("#floor-meters .meter-row")).to_have_count(2)
    await expect(us_i.page.locator("#floor-speaker")).not_to_have_text("–")
    await us_i.page.wait_for_function(
        "() => document.querySelector('#own-level').value > 0", polling=200)

    await shoot(us_p.page, "principal-en", ((1280, 800), (1920, 1080), (3840, 2160)))
    await shoot(ru_p.page, "principal-ru")
    await shoot(us_i.page, "interpreter-en")
    await shoot(ru_i.page, "interpreter-ru")
    await us.control(plan.call, "end")
    for device in people:
        await expect(device.page.locator("#stop")).to_be_visible()
    assert errors == []


async def test_remote_mute_and_camera_off_reach_the_other_side_by_the_link_itself(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    errors: list[str] = []
    a = await enrol_browser(browser, server, us, US_NAME, errors=errors)
    b = await enrol_browser(browser, server, ru, RU_NAME, errors=errors)
    plan = await cosigned_plan(us, ru, link, [principal(us, a.key, US_NAME, "en"),
                                              principal(ru, b.key, RU_NAME, "ru")])
    # the server tells the American principal that the Russian one muted and turned the
    # camera off: a claim it could make up, so the page must not show it
    forged: list[WebSocketRoute] = []

    async def relay(ws: WebSocketRoute) -> None:
        server_ws = ws.connect_to_server()
        ws.on_message(lambda m: server_ws.send(m))
        server_ws.on_message(lambda m: ws.send(m))
        forged.append(ws)

    await a.page.route_web_socket("**/ws", relay)
    await us.control(plan.call, "start")
    await join_in_browser(a, server, plan.call)
    # the Russian principal's first screen, in the language chosen there
    await b.page.goto(f"{server}/#/principal/{b.device}")
    await expect(b.page.locator("h1")).to_have_text("Your calls")
    await b.page.locator("#lang-ru").click()
    await expect(b.page.locator("h1")).to_have_text("Ваши переговоры")
    await b.page.locator(f'button[data-call="{plan.call}"]').click()
    for device in (a, b):
        await wait_for_media(device.page, frames=5, audio=5)
    await expect(a.page.locator("#remote-name")).to_have_text(
        f"{RU_NAME} · Russian Federation")
    await expect(b.page.locator("#remote-name")).to_have_text(f"{US_NAME} · United States")
    forged[-1].send(json.dumps({"type": "media", "from": b.device, "off": ["audio", "video"]}))
    await a.page.wait_for_function(  # the server's word reached the link rules ...
        "(b) => window.summitlineSession.rules.links.get(b)?.muted?.length === 2",
        arg=b.device, polling=100)
    await expect(a.page.locator("#remote-muted")).to_be_hidden()  # ... and not the screen
    await expect(a.page.locator("#remote-camera-off")).to_be_hidden()

    # the Russian principal mutes by the physical M key of a Russian layout ("ь")
    await press_key(b.page, "KeyM", "ь")
    await expect(b.page.locator("#mute")).to_have_attribute("aria-pressed", "true")
    await expect(a.page.locator("#remote-muted")).to_be_visible()
    await expect(a.page.locator("#remote-muted")).to_have_text("Microphone off")
    # and the camera, by V ("м")
    await press_key(b.page, "KeyV", "м")
    await expect(b.page.locator("#camera")).to_have_attribute("aria-pressed", "true")
    await expect(a.page.locator("#remote-camera-off")).to_have_text(
        f"{RU_NAME} has turned the camera off")
    await shoot(a.page, "principal-en-remote-off")
    # back on: the other side follows
    await press_key(b.page, "KeyM", "ь")
    await press_key(b.page, "KeyV", "м")
    await expect(a.page.locator("#remote-muted")).to_be_hidden()
    await expect(a.page.locator("#remote-camera-off")).to_be_hidden()
    # E (Russian "у") asks before it ends the call; "continue" keeps it
    await press_key(b.page, "KeyE", "у")
    await expect(b.page.locator("#end-dialog")).to_be_visible()
    await shoot(b.page, "principal-ru-end-confirm")
    await b.page.locator("#end-no").click()
    await expect(b.page.locator("#end-dialog")).to_have_count(0)
    await expect(b.page.locator("#phase")).to_have_text("Закрытая часть")
    await us.control(plan.call, "end")
    for device in (a, b):
        await expect(device.page.locator("#stop")).to_be_visible()
    assert errors == []


async def test_state_messages_quality_and_times_as_the_views_read_them(
        browser: Browser, server: str) -> None:
    """The small rules the views rest on, run in Chromium as the page runs them."""
    page = await russian_tab(browser)
    await page.goto(f"{server}/#/home")
    out = await page.evaluate("""async () => {
        const s = await import('/session.js'), v = await import('/views/principal.js');
        const i = await import('/views/interpreter.js');
        return {
          ok: s.peerState('{"v": 1, "muted": true, "camera_off": false, "x": 1}'),
          refused: ['{"v": 2, "muted": true, "camera_off": false}', '{"v": 1, "muted": 1,' +
                    ' "camera_off": false}', '{"v": 1}', 'not json', '[]', 'null',
                    '{"v": 1, "muted": true, "camera_off": false, "pad": "' + 'x'.repeat(300) +
                    '"}'].map(s.peerState),
          grades: [null, {rtt_ms: null}, {rtt_ms: 40, loss: 0, jitter_ms: 5},
                   {rtt_ms: 250, loss: 0.001, jitter_ms: 5},
                   {rtt_ms: 40, loss: 0.08, jitter_ms: 5}].map(v.quality),
          elapsed: [0, 59999, 3600000 + 62000].map(v.elapsed),
          time: v.timeOf(Date.UTC(2026, 0, 1, 15, 59, 14), 'ru'),
          meter: [0, 0.001, 1].map(i.meterValue),
        }; }""")
    assert out["ok"] == {"muted": True, "cameraOff": False}
    assert out["refused"] == [None] * 7
    assert out["grades"] == [None, None, "good", "fair", "poor"]
    assert out["elapsed"] == ["0:00", "0:59", "1:01:02"]
    assert "PM" not in out["time"] and ":" in out["time"]  # 24-hour Russian time of day
    assert out["meter"] == [0, 0, 1]

"""The operator flow from an empty server to a running call, entirely in the browser:
two communications officers and two principals' devices, each in its own context."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import loopback
from summitline.client.operator import Operator
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, Identity
from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, short_fingerprint
from tests.browser.people import (
    TIMEOUT_MS,
    cosigned_plan,
    linked_operators,
    new_page,
    principal,
    wait_for_media,
)

SHOT = {"width": 1280, "height": 800}  # the console's screenshots


async def create_delegation(page: Page, base: str, name: str) -> tuple[str, str]:
    await page.goto(f"{base}/#/operator")
    await page.locator("#delegation-name").fill(name)
    await page.locator("#create-delegation").click()
    await expect(page.locator("#own-fingerprint")).to_be_visible()
    full = await page.locator("#own-id").text_content()
    short = await page.locator("#own-fingerprint").text_content()
    assert full and short
    return full, short


async def enrol(op: Page, device: Page, name: str) -> str:
    await op.locator("#device-name").fill(name)
    await op.locator("#device-role").select_option("principal")
    await op.locator("#enrol-device").click()
    url = await op.locator("#enrol-url").get_attribute("href")
    assert url
    await device.goto(url)
    shown = await device.locator("#device-fingerprint").text_content()
    # the officer compares the device's screen with the console, then certifies it (the
    # enrolment reaches the console by the server's event stream: no reload)
    await expect(op.locator("#devices")).to_contain_text(shown or "?")
    row = op.locator("#devices tr", has_text=name)
    await row.locator(".read-fingerprint").fill(shown or "?")
    await row.locator(".certify").click()
    await expect(op.locator("#devices tr", has_text=name).locator(".badge.certified")) \
        .to_be_visible()
    return shown or ""


async def test_operators_take_an_empty_server_to_a_running_call(
        browser: Browser, server: str, screenshots: Path) -> None:
    errors: list[str] = []
    us_op, ru_op, us_dev, ru_dev = [await new_page(browser, errors) for _ in range(4)]
    await us_op.goto(f"{server}/#/operator")
    await us_op.screenshot(path=str(screenshots / "operator-new.png"))
    us_id, us_short = await create_delegation(us_op, server, "United States")
    ru_id, _ = await create_delegation(ru_op, server, "Russian Federation")
    # from here on, nothing reloads a console: the link, the devices, the plan and the
    # call state reach it pushed by the server (a reload would drop this mark)
    for op in (us_op, ru_op):
        await op.evaluate("() => { window.notReloaded = true; }")

    # the US office proposes a link; the Russian office accepts after the spoken check
    await us_op.locator("#link-other").fill(ru_id)
    await us_op.locator("#propose-link").click()
    await ru_op.locator(".spoken").fill("0000-0000-0000-0000-0000")  # a wrong reading first
    await ru_op.locator(".accept-link").click()
    await expect(ru_op.locator("#links li .error")).to_contain_text("Do not accept")
    await ru_op.locator(".spoken").fill(us_short)
    await ru_op.locator(".accept-link").click()
    await expect(ru_op.locator("#links .badge")).to_have_text("established")
    await expect(us_op.locator("#links .badge")).to_have_text("established")

    # each office enrols its principal's device
    await enrol(us_op, us_dev, "President of the United States")
    await enrol(ru_op, ru_dev, "President of the Russian Federation")
    await ru_dev.screenshot(path=str(screenshots / "device-enrolled.png"))
    await us_op.screenshot(path=str(screenshots / "operator-devices.png"))
    await us_op.set_viewport_size(SHOT)
    await us_op.screenshot(path=str(screenshots / "operator-devices-en.png"))

    # the US office drafts and signs the plan; the Russian office checks and co-signs
    await expect(us_op.locator("#draft-plan tbody tr")).to_have_count(2)
    await us_op.locator("#plan-title").fill("Secure video call, 7 December")
    await us_op.locator("#plan-studio-audio").check()  # headsets: no voice processing
    await us_op.locator("#submit-plan").click()
    await expect(us_op.locator(".plan .badge")).to_have_text("awaiting signature")
    await expect(ru_op.locator(".plan .participants li")).to_have_count(2)
    await ru_op.locator(".cosign").click()
    await expect(ru_op.locator(".plan .badge")).to_have_text("planned")
    await expect(us_op.locator(".plan .badge")).to_have_text("planned")  # no reload
    await expect(us_op.locator("#draft-plan")).to_be_hidden()  # no second form
    await us_op.screenshot(path=str(screenshots / "operator-plans-en.png"))

    # the principals join; the US office starts the call and watches it
    for dev in (us_dev, ru_dev):
        await dev.locator("text=Continue").click()  # from the enrolment page
        await dev.locator("button[data-call]").click()
    await us_op.locator(".plan .start").click()
    await expect(us_op.locator("#confirm-dialog")).to_be_visible()
    await us_op.locator("#confirm-ok").click()
    for dev in (us_dev, ru_dev):
        await wait_for_media(dev, frames=30, audio=30)
        # the signed plan's studio sound: each microphone captured without processing
        studio = await dev.evaluate("() => window.summitlineSession.studio")
        assert (studio["echoCancellation"], studio["noiseSuppression"],
                studio["autoGainControl"]) == (False, False, False)
    await expect(us_op.locator("#call-phase")).to_have_attribute("data-phase", "closed")
    await expect(us_op.locator("#call-phase")).to_have_text("in session, closed door")
    await expect(us_op.locator("#connected li")).to_have_count(2)
    # health rows arrive from both endpoints' getStats() reports
    await expect(us_op.locator("#health tr")).to_have_count(3, timeout=15_000)
    await expect(us_op.locator("#health")).to_contain_text("connected")
    await expect(us_op.locator("#health")).to_contain_text("direct")
    await expect(us_op.locator("#record")).to_contain_text("signal.answer")
    await us_op.screenshot(path=str(screenshots / "operator-console.png"), full_page=True)
    await us_dev.screenshot(path=str(screenshots / "principal-in-call.png"))

    # and ends it
    await us_op.locator(".plan .end").click()
    await us_op.locator("#confirm-ok").click()
    await expect(us_op.locator("#call-phase")).to_have_text("ended")
    for dev in (us_dev, ru_dev):
        await expect(dev.locator("#stop h1")).to_be_visible()
    await expect(us_op.locator("#record")).to_contain_text("call.ended")
    await expect(us_op.locator("#console-error")).to_be_empty()
    # the Russian office, which never pressed anything after co-signing, saw the call
    # start and end on its plan's badge
    await expect(ru_op.locator(".plan .badge")).to_have_text("ended")
    for op in (us_op, ru_op):
        assert await op.evaluate("() => window.notReloaded === true")
    assert errors == []


async def updates(page: Page) -> int:
    """How often the call card has taken the server's state so far."""
    return int(await page.locator("#call-panel").get_attribute("data-updates") or 0)


async def two_more_updates(page: Page) -> None:
    n = await updates(page)
    await page.wait_for_function(
        "n => Number(document.querySelector('#call-panel').dataset.updates) >= n + 2", arg=n)


async def test_the_link_check_keeps_the_key_to_itself_and_reads_it_however_typed(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors, "en-US", SHOT["width"])
    us = Operator(http, "United States", PrivateKey.generate())
    await us.register()
    ru_id, _ = await create_delegation(page, server, "Russian Federation")

    # a mistyped id is told in the console's words, not the browser's pattern message
    await page.locator("#link-other").fill(ru_id[:-1] + "g")
    await page.locator("#propose-link").click()
    await expect(page.locator("#link-other-error")).to_contain_text("64 characters")
    await page.locator("#link-other").fill(ru_id.upper())  # an id in capitals is still ours
    await page.locator("#propose-link").click()
    await expect(page.locator("#link-other-error")).to_contain_text("your own delegation")

    # the US office proposes; the console shows it without a reload, and says who
    await us.propose_link("link-check", ru_id)
    row = page.locator('#links li[data-link="link-check"]')
    await expect(row.locator(".proposed-by")).to_contain_text(
        "Proposed by the other office: “United States”")
    right = short_fingerprint(us.id)
    wrong = right[:-1] + ("0" if right[-1] != "0" else "1")
    await row.locator(".spoken").fill(wrong)
    await row.locator(".accept-link").click()
    await expect(row.locator(".error")).to_contain_text("Do not accept")
    shown = (await page.locator("body").inner_text()).upper()
    assert right not in shown and right.replace("-", "") not in shown.replace("-", "")
    await page.screenshot(path=str(screenshots / "operator-links-wrong-en.png"))

    # the right reading, as someone types it: lower case, spaces for dashes
    await row.locator(".spoken").fill(" " + right.lower().replace("-", " ") + " ")
    await row.locator(".accept-link").click()
    await expect(page.locator('#links li[data-link="link-check"] .badge')) \
        .to_have_attribute("data-state", "established")
    await us.pin_link("link-check")
    assert us.pinned[ru_id].fingerprint == ru_id
    await page.screenshot(path=str(screenshots / "operator-links-en.png"))

    # this Russian office's browser speaks English: the plan form takes its principal's
    # language from what its officer stated at certification, and the other side's follows
    from tests.browser.test_cosign_review import console_certifies  # (it imports us)
    await console_certifies(page, http, "President of the Russian Federation", "principal", "ru")
    await enrol_certified(us, http, "President of the United States", Role.PRINCIPAL)
    form = page.locator("#draft-plan")
    await expect(form.locator("tbody tr")).to_have_count(2)
    await expect(page.locator("#plan-our-language")).to_have_value("ru")
    await expect(page.locator("#plan-their-language")).to_have_value("en")
    await expect(form.locator("tr", has_text="Russian Federation").locator(".lang")) \
        .to_have_value("ru")
    await expect(form.locator("tr", has_text="United States").locator(".lang")) \
        .to_have_value("en")
    assert errors == []


async def enrol_certified(op: Operator, http: httpx.AsyncClient, name: str, role: Role) -> None:
    """A device (Python) takes a seat ``op`` opened, and ``op`` certifies it."""
    code = await op.open_enrolment(name, role)
    key = PrivateKey.generate()
    r = await http.post("/api/enrolments", json={
        "code": code, "key": key.public.b64u,
        "signature": key.sign(statements.enrol(code, key.public.b64u))})
    assert r.status_code == 200, r.text
    await op.certify(key.fingerprint, short_fingerprint(key.fingerprint))


async def test_start_asks_first_and_the_call_card_updates_in_place(
        browser: Browser, server: str, http: httpx.AsyncClient, ws_url: str,
        screenshots: Path) -> None:
    from tests.browser.test_pressroom import console_of  # (it imports this module)
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    keys = [PrivateKey.generate() for _ in range(2)]
    names = ["President of the United States", "President of the Russian Federation"]
    plan = await cosigned_plan(us, ru, link, [principal(us, keys[0], names[0], "en"),
                                              principal(ru, keys[1], names[1], "ru")],
                               press_window_s=600)  # open still when the doors close
    call = plan.call
    page = await console_of(browser, server, us, ru, errors, "en-US", SHOT["width"])
    row = page.locator(f'.plan[data-call="{call}"]')
    await row.locator(".watch").click()
    await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "planned")

    # Start asks; with nobody connected it says so, and what starting does to the press
    dialog = page.locator("#confirm-dialog")
    await row.locator(".start").click()
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".warning")).to_contain_text(names[1])
    await expect(dialog).to_contain_text("The press window starts running now")
    await expect(page.locator("#confirm-cancel")).to_be_focused()
    await page.screenshot(path=str(screenshots / "operator-start-confirm-en.png"))
    await page.locator("#confirm-cancel").click()
    await expect(dialog).to_be_hidden()
    await page.locator("#call-start").click()  # the card's own Start asks too
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")  # and Escape cancels
    await expect(dialog).to_be_hidden()
    await two_more_updates(page)
    assert (await signed_get(http, us.key, f"/api/calls/{call}")).json()["phase"] == "planned"
    await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "planned")

    # the principals join; now Start warns of nothing
    sessions = [CallSession(ws_url, call, Identity(key, dict(op.pinned)), ice=loopback())
                for key, op in zip(keys, (us, ru), strict=True)]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                               TIMEOUT_MS / 1000)
        await expect(page.locator("#connected li")).to_have_count(2)
        await row.locator(".start").click()
        await expect(dialog).to_be_visible()
        await expect(dialog.locator(".warning")).to_have_count(0)
        await page.locator("#confirm-ok").click()
        await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "open")
        await expect(page.locator("#call-phase")).to_contain_text("press window open until")
        # the plan says what the card says
        await expect(row.locator(".badge")).to_have_attribute("data-phase", "open")

        # the card's buttons and the press link are the same elements second after second
        await page.locator("#press-token").click()
        await expect(page.locator("#press-link")).to_contain_text(f"/press.html#/press/{call}/")
        held = [await page.locator(sel).first.element_handle()
                for sel in ("#call-end", "#press-token", "#press-link code")]
        selected = await held[2].evaluate("""(code) => {
          getSelection().selectAllChildren(code); return getSelection().toString(); }""")
        await two_more_updates(page)
        assert [await el.evaluate("el => el.isConnected") for el in held] == [True] * 3
        assert await page.evaluate("getSelection().toString()") == selected  # still selected
        await expect(page.locator("#connected")).to_contain_text(names[0])
        await page.screenshot(path=str(screenshots / "operator-call-en.png"))

        # Close the doors asks, then ends the press window before its deadline
        await page.locator("#call-close-doors").click()
        await expect(dialog).to_contain_text("The press window ends now")
        await page.screenshot(path=str(screenshots / "operator-doors-confirm-en.png"))
        await page.locator("#confirm-ok").click()
        await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "closed")
        await expect(page.locator("#call-close-doors")).to_be_hidden()
        assert (await signed_get(http, us.key, f"/api/calls/{call}")).json()["phase"] == "closed"

        # End asks too; afterwards the card shows names, and no health that is history
        await page.locator("#call-end").click()
        await expect(dialog).to_contain_text("cannot be resumed")
        await page.locator("#confirm-ok").click()
        await expect(page.locator("#call-phase")).to_have_text("ended")
        await expect(row.locator(".badge")).to_have_attribute("data-phase", "ended")
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT_MS / 1000)
    finally:
        for s in sessions:
            await s.leave()
        for task in tasks:
            task.cancel()
    await expect(page.locator("#health-part")).to_be_hidden()
    await expect(page.locator("#connected")).to_be_hidden()
    await expect(page.locator("#call-timing")).to_contain_text("lasted")
    await expect(page.locator("#record")).to_contain_text(names[1])
    card = await page.locator("#call-panel").inner_text()
    assert not re.search(r"[0-9a-f]{12,}", card), card
    await page.screenshot(path=str(screenshots / "operator-call-ended-en.png"), full_page=True)
    assert errors == []


async def test_the_russian_office_drafts_in_russian_with_interpreter_video(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    # (they import this module)
    from tests.browser.test_cosign_review import console_certifies, console_linked_to
    errors: list[str] = []
    page = await new_page(browser, errors, "ru-RU", SHOT["width"])
    us = Operator(http, "United States", PrivateKey.generate())
    await us.register()
    ru_id = await console_linked_to(page, server, http, us)
    await expect(page.locator("h1")).to_have_text("Пульт оператора")
    await page.locator("#link-other").fill("not an id")
    await page.locator("#propose-link").click()
    await expect(page.locator("#link-other-error")).to_contain_text("64 символов")

    # the Russian principal, certified here (no language stated); the US principal and
    # a US interpreter, certified by the US office
    await console_certifies(page, http, "Президент Российской Федерации")
    for name, role in (("President of the United States", Role.PRINCIPAL),
                       ("US interpreter", Role.INTERPRETER)):
        await enrol_certified(us, http, name, role)
    await page.screenshot(path=str(screenshots / "operator-devices-ru.png"))

    # the form follows the drafter: our principal speaks Russian, theirs English, their
    # interpreter speaks into Russian (for us); the form lists the common UN languages
    form = page.locator("#draft-plan")
    await expect(form.locator("tbody tr")).to_have_count(3)  # no reload: it follows

    def lang(name: str) -> Any:
        return form.locator("tr", has_text=name).locator(".lang")
    await expect(lang("Президент Российской Федерации")).to_have_value("ru")
    await expect(lang("President of the United States")).to_have_value("en")
    await expect(lang("US interpreter")).to_have_value("ru")
    offered = await lang("US interpreter").locator("option").evaluate_all(
        "os => os.map((o) => o.value)")
    assert {"ar", "zh", "en", "fr", "ru", "es", "de", "it", "ja"} <= set(offered)
    await expect(lang("US interpreter").locator('option[value="fr"]')).to_have_text("французский")

    await page.locator("#plan-title").fill("Видеоконференция, 7 декабря")
    await page.locator("#plan-when").fill("2021-12-07T18:00")
    await page.locator("#plan-interpreter-video").check()
    await page.screenshot(path=str(screenshots / "operator-plan-form-ru.png"), full_page=True)
    await page.locator("#submit-plan").click()
    plan_row = page.locator(".plan")
    await expect(plan_row.locator(".badge")).to_have_text("ждёт подписи")
    await expect(plan_row.locator("h3")).to_contain_text("«Видеоконференция, 7 декабря»")
    await expect(page.locator("#draft-plan")).to_be_hidden()  # no second form under it
    await expect(page.locator("#new-plan")).to_be_visible()

    # what the Russian office signed: interpreter video granted, the languages, the time
    (served,) = (await signed_get(http, us.key, "/api/links/link-review/plans")).json()
    plan = CallPlan.from_json(served["plan"])
    us.pinned[ru_id].verify(statements.plan(plan.hash), served["signatures"][ru_id])
    assert plan.interpreter_video is True
    assert {p.name: p.language for p in plan.participants} == {
        "Президент Российской Федерации": "ru", "President of the United States": "en",
        "US interpreter": "ru"}
    assert plan.scheduled_ms == await page.evaluate("new Date('2021-12-07T18:00').getTime()")
    await us.cosign_plan(plan)
    await expect(plan_row.locator(".badge")).to_have_text("запланированы")
    await expect(plan_row.locator(".scheduled")).to_contain_text("2021")
    await page.screenshot(path=str(screenshots / "operator-plans-ru.png"), full_page=True)

    # the call, in Russian: Start warns that nobody is connected; the card after the end
    await plan_row.locator(".start").click()
    await expect(page.locator("#confirm-dialog .warning")).to_contain_text("Ещё не подключены")
    await page.screenshot(path=str(screenshots / "operator-start-confirm-ru.png"))
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#call-phase")).to_have_text("идут, без прессы")
    await two_more_updates(page)
    await page.screenshot(path=str(screenshots / "operator-call-ru.png"))
    await page.locator("#call-end").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#call-phase")).to_have_text("завершены")
    await expect(plan_row.locator(".badge")).to_have_text("завершены")
    await page.screenshot(path=str(screenshots / "operator-call-ended-ru.png"), full_page=True)
    assert errors == []

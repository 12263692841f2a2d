"""The operator flow from an empty server to a running call, entirely in the browser:
two communications officers and two principals' devices, each in its own context."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.browser.people import new_page, wait_for_media


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
    # the officer compares the device's screen with the console, then certifies it
    await op.reload()
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

    # the US office proposes a link; the Russian office accepts after the spoken check
    await us_op.locator("#link-other").fill(ru_id)
    await us_op.locator("#propose-link").click()
    await ru_op.reload()
    await ru_op.locator(".spoken").fill("0000-0000-0000-0000-0000")  # a wrong reading first
    await ru_op.locator(".accept-link").click()
    await expect(ru_op.locator("#links li .error")).to_contain_text("Do not accept")
    await ru_op.locator(".spoken").fill(us_short)
    await ru_op.locator(".accept-link").click()
    await expect(ru_op.locator("#links .badge")).to_have_text("established")
    await us_op.reload()
    await expect(us_op.locator("#links .badge")).to_have_text("established")

    # each office enrols its principal's device
    await enrol(us_op, us_dev, "President of the United States")
    await enrol(ru_op, ru_dev, "President of the Russian Federation")
    await ru_dev.screenshot(path=str(screenshots / "device-enrolled.png"))
    await us_op.screenshot(path=str(screenshots / "operator-devices.png"))

    # the US office drafts and signs the plan; the Russian office checks and co-signs
    await us_op.reload()
    await expect(us_op.locator("#draft-plan tbody tr")).to_have_count(2)
    await us_op.locator("#plan-title").fill("Secure video call, 7 December")
    await us_op.locator("#submit-plan").click()
    await expect(us_op.locator(".plan .badge")).to_have_text("awaiting signature")
    await ru_op.reload()
    await expect(ru_op.locator(".plan .participants li")).to_have_count(2)
    await ru_op.locator(".cosign").click()
    await expect(ru_op.locator(".plan .badge")).to_have_text("planned")

    # the principals join; the US office starts the call and watches it
    for dev in (us_dev, ru_dev):
        await dev.locator("text=Continue").click()  # from the enrolment page
        await dev.locator("button[data-call]").click()
    await us_op.locator(".plan .start").click()
    await expect(us_op.locator("#confirm-dialog")).to_be_visible()
    await us_op.locator("#confirm-ok").click()
    for dev in (us_dev, ru_dev):
        await wait_for_media(dev, frames=30, audio=30)
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
    assert errors == []

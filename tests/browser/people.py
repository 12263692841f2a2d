"""People of a browser test: operators in Python, devices in browser pages."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import Browser, Page

from summitline.client.operator import Operator, participant
from summitline.client.reads import signed_get
from summitline.core.plan import AUDIO_VOICE, CallPlan, Participant
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey, PublicKey

TIMEOUT_MS = 30_000


async def new_page(browser: Browser, errors: list[str] | None = None,
                   locale: str | None = None, width: int = 1366) -> Page:
    """A page in a fresh context; ``locale`` sets the browser's language (navigator.language)."""
    context = await browser.new_context(viewport={"width": width, "height": 800},
                                        **({"locale": locale} if locale else {}))
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


async def linked_operators(http: httpx.AsyncClient) -> tuple[Operator, Operator, str]:
    us, ru = Operator(http, "United States", PrivateKey.generate()), \
        Operator(http, "Russian Federation", PrivateKey.generate())
    for op in (us, ru):
        await op.register()
    link = f"link-{secrets.token_hex(4)}"
    await us.propose_link(link, ru.id)
    spoken = (await http.get(f"/api/delegations/{us.id}")).json()["short_fingerprint"]
    await ru.accept_link(link, spoken)
    await us.pin_link(link)
    return us, ru, link


@dataclass
class BrowserDevice:
    page: Page
    device: str
    key: PublicKey


async def enrol_browser(browser: Browser, base: str, op: Operator, name: str,
                        role: Role = Role.PRINCIPAL, errors: list[str] | None = None,
                        tab_of: Page | None = None) -> BrowserDevice:
    """Open a seat and let a fresh browser context take it, as a device would (or a new
    tab of the browser context of ``tab_of``: two devices in one browser)."""
    code = await op.open_enrolment(name, role)
    if tab_of is None:
        page = await new_page(browser, errors)
    else:
        page = await tab_of.context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        if errors is not None:
            page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(op.enrolment_url(base, code))
    shown = await page.locator("#device-fingerprint").text_content()
    devices = (await signed_get(op.http, op.key, f"/api/delegations/{op.id}/devices")).json()
    (seat,) = [d for d in devices if d["name"] == name]
    assert seat["short_fingerprint"] == shown  # what the operator compares by eye
    return BrowserDevice(page, seat["device"], PublicKey.from_b64u(seat["key"]))


async def cosigned_plan(us: Operator, ru: Operator, link: str,
                        people: list[Participant], press_window_s: int = 0,
                        audio: str = AUDIO_VOICE) -> CallPlan:
    plan = CallPlan(call=f"call-{secrets.token_hex(4)}", link=link, title="Secure video call",
                    delegations=(us.delegation(), ru.delegation()),
                    participants=tuple(people), press_window_s=press_window_s, audio=audio)
    await us.submit_plan(plan)
    await ru.cosign_plan(plan)
    return plan


def principal(op: Operator, key: PrivateKey | PublicKey, name: str, lang: str) -> Participant:
    return participant(key, op.key, Role.PRINCIPAL, name, lang)


async def join_in_browser(device: BrowserDevice, base: str, call: str) -> None:
    own = f"{base}/#/principal/{device.device}"
    if device.page.url == own:
        await device.page.locator("#back").click()  # from the end of an earlier call
    else:
        await device.page.goto(own)
    await device.page.locator(f'button[data-call="{call}"]').click()


async def health(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate(
        "() => window.summitlineSession ? window.summitlineSession.health() : []")
    return result


async def wait_for_media(page: Page, frames: int = 1, audio: int = 1) -> None:
    """Wait until getStats() shows this many video frames decoded and audio packets."""
    await page.wait_for_function(
        """([frames, audio]) => window.summitlineSession &&
             window.summitlineSession.health().then(hs => { window.__h = hs; return true; })
             && window.__h && window.__h.some(h => h.framesDecoded >= frames &&
                                                  h.audioPacketsReceived >= audio)""",
        arg=[frames, audio], polling=250)


async def end_with_python(op: Operator, call: str, task: Any, py: Any) -> None:
    """End the call from an operator and let the Python principal's session finish."""
    await op.control(call, "end")
    assert task is not None
    await asyncio.wait_for(task, TIMEOUT_MS / 1000)
    await py.leave()

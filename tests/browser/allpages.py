"""Every page of the web client, set up in a given language, for the tests that look at
all of them (tests/browser/test_i18n.py, tests/browser/test_a11y.py).

``open_page(name, lang, ...)`` brings one page to its usual first state in a browser
context whose language is ``lang`` (for the pages that follow the browser) and whose
plan puts its device in ``lang`` (for the pages that follow the plan), and returns it
with the user data it shows: names, titles, fingerprints and codes that are not the
client's own text and so are not checked for language.

Screenshots go to $SUMMITLINE_ARTIFACTS (default /tmp/summitline-artifacts).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import Operator, participant
from summitline.client.session import CallSession, Identity
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    TIMEOUT_MS,
    BrowserDevice,
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    principal,
)

PAGES = ["home", "enrolment", "enrolment-mistyped", "principal-home", "principal-call",
         "aide", "aide-paged", "interpreter", "operator", "press", "press-ended", "pressroom"]
LANGS = ["en", "ru"]  # the languages every page is checked in (fr and de: I18N_LANGS)
LOCALES = {"en": "en-US", "ru": "ru-RU", "fr": "fr-FR", "de": "de-DE"}

# user data: Latin names for everyone, so that a Russian page shows no Cyrillic from us
# and an English page none at all; they are taken out of the text before it is checked
US_NAME, RU_NAME = "President Anna Smith", "President Ivan Petrov"
AIDE_NAME, INTERP_NAME = "Chief of Staff Maria", "Interpreter Olga"
US_OFFICE, RU_OFFICE = "United States", "Russian Federation"
TITLE = "Secure video call"


def artifacts(kind: str) -> Path:
    """Where screenshots of ``kind`` go: $SUMMITLINE_ARTIFACTS/kind."""
    base = Path(os.environ.get("SUMMITLINE_ARTIFACTS", "/tmp/summitline-artifacts"))
    path = base / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


READOUTS = {"us": "The presidents discussed strategic stability.",
            "ru": "The sides exchanged views on European security."}
LEAVE_S = 10


@dataclass
class Shown:
    page: Page
    user_data: list[str] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop what the page needed besides the browser (a Python principal)."""
        for closer in self.closers:
            await asyncio.wait_for(closer(), LEAVE_S)


async def _context_page(browser: Browser, lang: str, bypass_csp: bool) -> Page:
    # bypass_csp: for axe only, which comes as an inline script the client's
    # Content-Security-Policy (script-src 'self') would refuse
    context = await browser.new_context(viewport={"width": 1366, "height": 800},
                                        locale=LOCALES[lang], bypass_csp=bypass_csp)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def _device(browser: Browser, server: str, op: Operator, name: str, role: Role,
                  lang: str, bypass_csp: bool) -> BrowserDevice:
    """A device enrolled in a browser context of language ``lang``."""
    first = await _context_page(browser, lang, bypass_csp)
    device = await enrol_browser(browser, server, op, name, role=role, tab_of=first)
    await first.close()
    return device


def _fingerprints(*devices: BrowserDevice) -> list[str]:
    return [d.device for d in devices]


async def open_page(name: str, lang: str, browser: Browser, server: str,
                    http: httpx.AsyncClient, bypass_csp: bool = False) -> Shown:
    us, ru, link = await linked_operators(http)
    other = "ru" if lang == "en" else "en"
    base_data = [US_NAME, RU_NAME, AIDE_NAME, INTERP_NAME, US_OFFICE, RU_OFFICE, TITLE,
                 us.id, ru.id]
    if name == "enrolment":
        page = await _context_page(browser, lang, bypass_csp)
        code = await us.open_enrolment(US_NAME, Role.PRINCIPAL)
        await page.goto(us.enrolment_url(server, code))
        shown = await page.locator("#device-fingerprint").text_content()
        return Shown(page, [*base_data, shown or "", code])
    if name == "home":
        page = await _context_page(browser, lang, bypass_csp)
        await page.goto(f"{server}/#/home")
        await expect(page.locator("#server")).to_be_visible()
        return Shown(page, [*base_data, server])
    if name == "enrolment-mistyped":  # the delegation id lost a character on its way
        page = await _context_page(browser, lang, bypass_csp)
        code = await us.open_enrolment(US_NAME, Role.PRINCIPAL)
        await page.goto(us.enrolment_url(server, code)[:-1])
        await expect(page.locator("main .error[role=alert]")).to_be_visible()
        return Shown(page, [*base_data, code])
    if name == "operator":
        from tests.browser.test_operator import create_delegation
        page = await _context_page(browser, lang, bypass_csp)
        full, short = await create_delegation(page, server, US_OFFICE)
        return Shown(page, [*base_data, full, short])
    if name in ("principal-home", "principal-call"):
        a = await _device(browser, server, us, US_NAME, Role.PRINCIPAL, lang, bypass_csp)
        plan = await cosigned_plan(us, ru, link, [
            principal(us, a.key, US_NAME, lang),
            principal(ru, PrivateKey.generate(), RU_NAME, other)])
        data = [*base_data, plan.call, *_fingerprints(a)]
        if name == "principal-home":
            await a.page.goto(f"{server}/#/principal/{a.device}")
            await expect(a.page.locator(f'button[data-call="{plan.call}"]')).to_be_visible()
        else:
            await join_in_browser(a, server, plan.call)
            await expect(a.page.locator("#phase")).not_to_be_empty()
        return Shown(a.page, data)
    if name in ("aide", "aide-paged", "interpreter"):
        aide = name != "interpreter"
        role = Role.AIDE if aide else Role.INTERPRETER
        d = await _device(browser, server, us, AIDE_NAME if aide else INTERP_NAME,
                          role, lang, bypass_csp)
        us_key = PrivateKey.generate()
        plan = await cosigned_plan(us, ru, link, [
            principal(us, us_key, US_NAME, lang),
            principal(ru, PrivateKey.generate(), RU_NAME, other),
            participant(d.key, us.key, role, AIDE_NAME if aide else INTERP_NAME,
                        lang if aide else other)])
        await join_in_browser(d, server, plan.call)
        shown = Shown(d.page, [*base_data, plan.call, d.device])
        if not aide:
            await expect(d.page.locator("#onair")).to_be_visible()
            return shown
        await expect(d.page.locator("#aide-waiting")).to_contain_text(US_NAME)
        if name == "aide-paged":  # the US principal (in Python, no media) pages its aide
            boss = CallSession(f"{server.replace('http', 'ws', 1)}/ws", plan.call,
                               Identity(us_key, dict(us.pinned)), ice=loopback(),
                               source=MediaSource(None, None))
            task = asyncio.create_task(boss.run())

            async def leave() -> None:
                await boss.leave()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            shown.closers.append(leave)
            await asyncio.wait_for(boss.joined.wait(), TIMEOUT_MS / 1000)
            await boss.page()
            await expect(d.page.locator("#page-banner")).to_be_visible()
        return shown
    if name in ("press", "press-ended", "pressroom"):
        plan = await cosigned_plan(us, ru, link, [
            principal(us, PrivateKey.generate(), US_NAME, "en"),
            principal(ru, PrivateKey.generate(), RU_NAME, "ru")], press_window_s=600)
        page = await _context_page(browser, lang, bypass_csp)
        if name == "press":
            token = (await ru.press_token(plan.call))["token"]
            await page.goto(f"{server}/press.html#/press/{plan.call}/{token}")
            await expect(page.locator("#press-state")).to_have_attribute("data-state",
                                                                         "waiting")
            return Shown(page, [*base_data, plan.call, token])
        await us.control(plan.call, "start")  # a started call with a press window is public
        await us.control(plan.call, "end")
        if name == "press-ended":
            token = (await ru.press_token(plan.call))["token"]
            await page.goto(f"{server}/press.html#/press/{plan.call}/{token}")
            await expect(page.locator("#doors")).to_be_visible()
            return Shown(page, [*base_data, plan.call, token])
        await us.publish_readout(plan.call, READOUTS["us"])
        await ru.publish_readout(plan.call, READOUTS["ru"])
        await page.goto(f"{server}/press.html#/pressroom/{plan.call}/{lang}")
        await expect(page.locator(".readout .readout-text")).to_have_count(2)
        return Shown(page, [*base_data, plan.call, *READOUTS.values()])
    raise ValueError(f"no such page: {name}")


def cases(langs: Sequence[str] = LANGS, pages: Sequence[str] = PAGES) -> list[object]:
    """Each of ``pages`` (all) in each of ``langs`` (English and Russian), as pytest
    parameters named "page-lang"."""
    return [pytest.param(page, lang, id=f"{page}-{lang}") for page in pages for lang in langs]

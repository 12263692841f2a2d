"""The web operator console drafts and co-signs briefing plans (issue 13).

The console hosts a briefing for two guests registered in Python, who co-sign it; the
console, as a guest, co-signs a briefing a Python office hosts, knowing the other guest
only through the host ("France — introduced by United States"); a briefing naming a
delegation that nobody this console pinned introduces is flagged and not signed. The
start, the end and the record's signatures work with three delegations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from summitline.client.operator import Operator, participant
from summitline.client.reads import signed_get
from summitline.core.plan import CallPlan, SignedPlan
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey, short_fingerprint
from tests.browser.people import new_page
from tests.browser.test_cosign_review import (
    console_certifies,
    console_linked_to,
    flagged_and_not_signed,
)
from tests.browser.test_operator import SHOT, create_delegation, enrol_certified


async def registered(http: httpx.AsyncClient, name: str) -> Operator:
    op = Operator(http, name, PrivateKey.generate())
    await op.register()
    return op


async def console_hosts(page: Page, server: str, guests: list[Operator]) -> tuple[str, list[str]]:
    """The US office in the browser console, linked with each guest (Python): the guest
    proposes, the console accepts after the spoken check. Returns its id and the links."""
    host, _ = await create_delegation(page, server, "United States")
    links = []
    for guest in guests:
        link = f"link-{guest.name.split()[0].lower()}"
        await guest.propose_link(link, host)
        await page.reload()
        row = page.locator(f'#links li[data-link="{link}"]')
        await row.locator(".spoken").fill(short_fingerprint(guest.id))
        await row.locator(".accept-link").click()
        await expect(row.locator(".badge")).to_have_attribute("data-state", "established")
        await guest.pin_link(link)
        links.append(link)
    return host, links


async def served_plan(op: Operator, link: str) -> tuple[CallPlan, dict[str, Any]]:
    """The one plan the server files under ``link``, as ``op`` reads it."""
    (row,) = (await signed_get(op.http, op.key, f"/api/links/{link}/plans")).json()
    plan = CallPlan.from_json(row["plan"])
    assert plan.hash == row["hash"]
    return plan, row


def signed_plan(row: dict[str, Any]) -> SignedPlan:
    return SignedPlan.from_json({"plan": row["plan"], "signatures": row["signatures"]})


async def test_the_console_drafts_a_briefing_its_guests_cosign_and_runs_it(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors, "en-US", SHOT["width"])
    fr, de = await registered(http, "France"), await registered(http, "Germany")
    host, links = await console_hosts(page, server, [fr, de])
    await console_certifies(page, http, "President of the United States", "principal", "en")
    await enrol_certified(fr, http, "President of the French Republic", Role.PRINCIPAL)
    await enrol_certified(de, http, "Chancellor of Germany", Role.PRINCIPAL)
    await enrol_certified(de, http, "German interpreter", Role.INTERPRETER)

    # the form: a briefing, both guests, a language each; the rows follow the guests
    form = page.locator("#draft-plan")
    await expect(form.locator("tbody tr")).to_have_count(2)  # bilateral with France first
    await page.locator("#plan-with").select_option(de.id)  # or with Germany
    await expect(form.locator("tbody tr")).to_have_count(3)
    await expect(page.locator("#plan-their-language")).to_be_visible()
    await page.locator("#plan-kind-briefing").check()
    await expect(page.locator("#plan-guests li")).to_have_count(2)
    await expect(page.locator("#plan-their-language")).to_be_hidden()
    guest = {op.id: page.locator(f'#plan-guests li[data-delegation="{op.id}"]') for op in (fr, de)}
    await guest[fr.id].locator(".guest").check()
    await guest[fr.id].locator(".guest-language").select_option("fr")
    await expect(form.locator("tbody tr")).to_have_count(2)  # us and France
    await guest[de.id].locator(".guest").check()
    await guest[de.id].locator(".guest-language").select_option("de")
    await expect(form.locator("tbody tr")).to_have_count(4)

    def lang(name: str) -> Any:
        return form.locator("tr", has_text=name).locator(".lang")
    await expect(lang("President of the United States")).to_have_value("en")
    await expect(lang("President of the French Republic")).to_have_value("fr")
    await expect(lang("Chancellor of Germany")).to_have_value("de")
    await expect(lang("German interpreter")).to_have_value("de")  # serves its channel
    await expect(page.locator("#plan-title")).to_have_value("Briefing")
    await page.locator("#plan-title").fill("Briefing of allies")
    await page.locator("#plan-press").fill("30")
    await page.locator("#draft-plan").screenshot(
        path=str(screenshots / "console-briefing-form-en.png"))

    # a guest must be chosen; then the plan is signed and filed under both links, shown once
    await guest[fr.id].locator(".guest").uncheck()
    await guest[de.id].locator(".guest").uncheck()
    await page.locator("#submit-plan").click()
    await expect(form.locator(".error")).to_have_text(
        "Choose at least one guest for the briefing.")
    await guest[fr.id].locator(".guest").check()
    await guest[de.id].locator(".guest").check()
    await expect(form.locator("tbody tr")).to_have_count(4)
    await page.locator("#submit-plan").click()
    row = page.locator(".plan")
    await expect(row).to_have_count(1)
    await expect(row.locator('.kind[data-kind="briefing"]')).to_have_text("Briefing")
    await expect(row.locator(".hosted-by")).to_have_text("hosted by United States")
    await expect(row.locator(".signed-count")).to_have_text("signatures: 1 of 3")
    signed = row.locator('.briefing-delegations li[data-signed="true"]')
    await expect(signed).to_have_count(1)
    await expect(signed).to_contain_text("United States (host)")
    await expect(row.locator(f'li[data-delegation="{de.id}"]')).to_contain_text("not signed yet")

    # what the console signed is exactly a briefing as core/plan.py writes one
    plan, served = await served_plan(fr, links[0])
    assert served["plan"] == plan.to_json() and "link" not in served["plan"]
    assert (plan.host, plan.links, plan.title) == (host, tuple(links), "Briefing of allies")
    assert [d.name for d in plan.delegations] == ["United States", "France", "Germany"]
    assert {p.name: (p.language, p.delegation) for p in plan.participants} == {
        "President of the United States": ("en", host),
        "President of the French Republic": ("fr", fr.id),
        "Chancellor of Germany": ("de", de.id), "German interpreter": ("de", de.id)}
    assert plan.press_window_s == 30
    assert (await served_plan(de, links[1]))[0] == plan
    # each guest knows the other only through the host
    assert any("Germany — introduced by United States" in v for _, v in fr.review(plan).lines)
    assert fr.review(plan).flags == [] and de.review(plan).flags == []

    # the guests co-sign (Python); the console follows without a reload
    await fr.cosign_plan(plan)
    await expect(row.locator(".signed-count")).to_have_text("signatures: 2 of 3")
    await de.cosign_plan(plan)
    await expect(row.locator(".badge")).to_have_text("planned")
    await expect(row.locator('.briefing-delegations li[data-signed="true"]')).to_have_count(3)
    (_, served) = await served_plan(de, links[1])
    signed_plan(served).verify(de.pinned)  # complete, under the guest's own pins
    await row.locator(".review summary").click()
    await expect(row.locator('.review dd[data-field="host"]')).to_contain_text("United States")
    await expect(row.locator('.review dd[data-field="links"]')).to_have_text(", ".join(links))
    await page.screenshot(path=str(screenshots / "console-briefing-listed-en.png"), full_page=True)

    # the call with three delegations: start (every principal absent), end, the record
    await row.locator(".start").click()
    await expect(page.locator("#confirm-dialog .warning")).to_contain_text(
        "Start only when every principal is in the call.")
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "open")
    await page.locator("#call-end").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#call-phase")).to_have_text("ended")
    await expect(row.locator(".badge")).to_have_text("ended")
    await page.locator("#rec-sign").click()
    await page.locator("#rec-sign-yes").click()
    await expect(page.locator("#rec-signed")).to_be_visible()
    await expect(page.locator("#rec-status")).to_contain_text(
        "Awaiting the signature of: France, Germany.")
    for op in (fr, de):
        await op.sign_record(plan.call, plan.hash)
    await page.locator("#rec-refresh").click()
    await expect(page.locator("#rec-status")).to_contain_text(
        "Every delegation has signed: the record is complete.")
    await expect(page.locator("#console-error")).to_be_empty()
    assert errors == []


async def guest_console(browser: Browser, server: str, http: httpx.AsyncClient,
                        locale: str, sfu_above: int | None = None
                        ) -> tuple[Page, list[str], Operator, Operator, str, CallPlan]:
    """The Russian office in the console, linked with the US (Python), which hosts a
    briefing for it and France (linked with the US only); France has co-signed. The plan
    has the SFU threshold ``sfu_above`` (absent: the default, a mesh for these three)."""
    errors: list[str] = []
    page = await new_page(browser, errors, locale, SHOT["width"])
    us, fr = await registered(http, "United States"), await registered(http, "France")
    ru_id = await console_linked_to(page, server, http, us)
    await us.propose_link("link-fr", fr.id)
    await fr.accept_link("link-fr", short_fingerprint(us.id))
    await us.pin_link("link-fr")
    ru_principal = await console_certifies(page, http, "President of the Russian Federation",
                                           "principal", "ru")
    rows = {d["device"]: d for d in await us.devices(ru_id)}
    plan = CallPlan(call="briefing-review", link=None, title="Briefing of allies",
                    host=us.id, links=("link-review", "link-fr"),
                    delegations=(us.delegation(), us.delegation(ru_id), us.delegation(fr.id)),
                    participants=(
                        participant(PrivateKey.generate(), us.key, Role.PRINCIPAL,
                                    "President of the United States", "en"),
                        us.participant(rows[ru_principal.fingerprint], "ru"),
                        participant(PrivateKey.generate(), fr.key, Role.PRINCIPAL,
                                    "President of the French Republic", "fr")),
                    press_window_s=60, sfu_above=sfu_above)
    await us.submit_plan(plan)
    await fr.cosign_plan(plan)
    await page.reload()
    return page, errors, us, fr, ru_id, plan


async def test_the_console_cosigns_a_briefing_as_a_guest_and_refuses_a_stranger(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    page, errors, us, fr, ru_id, plan = await guest_console(browser, server, http, "en-US")
    row = page.locator('.plan[data-call="briefing-review"]')
    await expect(row.locator(".hosted-by")).to_have_text("hosted by United States")
    await expect(row.locator(f'li[data-delegation="{fr.id}"] .named')).to_have_text(
        "France — introduced by United States")
    await expect(row.locator(f'li[data-delegation="{ru_id}"]')).to_contain_text("not signed yet")
    review = row.locator(".review")  # open: this delegation has not signed yet
    await expect(review.locator("dd.introduced")).to_have_text(
        "France — introduced by United States")
    await expect(review.locator('dd[data-field="host"]')).to_contain_text("United States")
    await expect(review.locator('dd[data-field="links"]')).to_have_text("link-review, link-fr")
    fields = set(await review.locator("dt").evaluate_all(
        "(xs) => xs.map((x) => x.dataset.field)"))
    assert fields == set(plan.to_json()) - {"delegations", "participants"} | {
        "delegation", "participant", "press_channels", "audio",
        "sfu_above"}  # (shown when absent too: a briefing's media route, protocol 3.1)
    await expect(row.locator(".review-flags")).to_have_count(0)
    await page.screenshot(path=str(screenshots / "console-briefing-review-en.png"), full_page=True)
    await row.locator(".cosign").click()
    await expect(row.locator(".badge")).to_have_text("planned")
    (_, served) = await served_plan(fr, "link-fr")
    signed_plan(served).verify(fr.pinned)  # France checks the console's signature

    # a briefing hosted by a delegation this console never pinned, and nobody pinned
    # introduces it: flagged, and nothing is signed
    stranger = Operator(http, "Republic of Nowhere", PrivateKey.generate())
    ru_row = next(p for p in plan.participants if p.delegation == ru_id)
    unknown = CallPlan(call="briefing-stranger", link=None, title="Who?", host=stranger.id,
                       links=("link-nowhere", "link-review"),
                       delegations=(stranger.delegation(), us.delegation(),
                                    us.delegation(ru_id)),
                       participants=(participant(PrivateKey.generate(), stranger.key,
                                                 Role.PRINCIPAL, "Leader of Nowhere", "en"),
                                     plan.participants[0], ru_row))
    await flagged_and_not_signed(page, us, unknown, ru_id,
                                 "nobody this console trusts introduces it")
    await expect(page.locator('.plan[data-call="briefing-stranger"] .hosted-by')) \
        .to_have_text("hosted by Republic of Nowhere")
    assert errors == []


async def test_the_briefing_in_russian(browser: Browser, server: str, http: httpx.AsyncClient,
                                       screenshots: Path) -> None:
    page, errors, us, fr, ru_id, plan = await guest_console(browser, server, http, "ru-RU")
    row = page.locator('.plan[data-call="briefing-review"]')
    await expect(row.locator(".kind")).to_have_text("Брифинг")
    await expect(row.locator(".hosted-by")).to_have_text("проводит: United States")
    await expect(row.locator(f'li[data-delegation="{fr.id}"] .named')).to_have_text(
        "France — представлена делегацией «United States»")
    await expect(row.locator(".review dd.introduced")).to_have_count(1)
    await page.screenshot(path=str(screenshots / "console-briefing-review-ru.png"), full_page=True)
    await row.locator(".cosign").click()
    await expect(row.locator(".badge")).to_have_text("запланированы")
    await expect(row.locator(".signed-count")).to_have_text("подписи: 3 из 3")
    # nothing English is left on the page but user data (names, ids, fingerprints)
    from tests.browser.test_i18n import VISIBLE_TEXT, leftovers
    seen = await page.evaluate(VISIBLE_TEXT)
    data = [plan.title, plan.call, plan.hash[:16], "link-review",
            *(x for d in plan.delegations for x in (d.name, short_fingerprint(d.id))),
            *(x for p in plan.participants for x in (p.name, short_fingerprint(p.device)))]
    assert leftovers("ru", seen["texts"], data) == []
    await page.screenshot(path=str(screenshots / "console-briefing-listed-ru.png"), full_page=True)

    # the form in Russian: a briefing for the one delegation linked with this office
    await page.locator("#new-plan").click()
    await page.locator("#plan-kind-briefing").check()
    await expect(page.locator("#draft-plan h3")).to_have_text("Подготовить план брифинга")
    await page.locator(f'#plan-guests li[data-delegation="{us.id}"] .guest').check()
    await expect(page.locator("#draft-plan tbody tr")).to_have_count(1)  # no US device yet
    await page.locator("#draft-plan").screenshot(
        path=str(screenshots / "console-briefing-form-ru.png"))
    await page.locator("#submit-plan").click()  # the US has no principal in it
    await expect(page.locator("#draft-plan .error")).to_contain_text(
        "У делегации «United States» нет первого лица в плане")
    assert errors == []


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_axe_finds_no_serious_violation_in_the_briefing_form(
        lang: str, browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    """The form with its kind and guests (axe, and a focus ring on each control)."""
    from tests.browser import axe
    from tests.browser.allpages import _context_page
    from tests.browser.test_a11y import check
    axe.script()  # before the page: a missing axe fails at once
    page = await _context_page(browser, lang, bypass_csp=True)  # axe is an inline script
    fr, de = await registered(http, "France"), await registered(http, "Germany")
    await console_hosts(page, server, [fr, de])
    await page.locator("#plan-kind-briefing").check()
    await page.locator(f'#plan-guests li[data-delegation="{fr.id}"] .guest').check()
    await expect(page.locator("#plan-guests .guest:checked")).to_have_count(1)
    await check(page, "console-briefing-form", lang)


# The review of a briefing through the SFU, in English and Russian (issue 14): shown to
# whoever looks at the web client's SFU route.
SFU_SHOTS = Path("/work/shots/sfu-web")
REVIEW_ROUTE = {"en": ("Media route", "through the SFU, every frame encrypted end to end",
                       "planned"),
                "ru": ("Маршрут медиа", "через SFU, каждый кадр зашифрован из конца в конец",
                       "запланированы")}


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_cosign_review_names_the_media_route(
        lang: str, browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    """A guest's console reviewing a briefing whose plan asks for the SFU (sfu_above 0):
    the route is a line of what it signs, in its officer's language."""
    page, errors, _, _, _, plan = await guest_console(browser, server, http,
                                                      f"{lang}-{lang.upper()}", sfu_above=0)
    assert plan.wants_sfu
    SFU_SHOTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before the screenshot
    row = page.locator('.plan[data-call="briefing-review"]')
    review = row.locator(".review")  # open: this delegation has not signed yet
    title, route, planned = REVIEW_ROUTE[lang]
    await expect(review.locator('dt[data-field="sfu_above"]')).to_have_text(title)
    await expect(review.locator('dd[data-field="sfu_above"]')).to_have_text(route)
    await review.locator('dd[data-field="sfu_above"]').scroll_into_view_if_needed()
    await page.screenshot(path=str(SFU_SHOTS / f"cosign-review-sfu-{lang}.png"), full_page=True)
    await row.locator(".cosign").click()
    await expect(row.locator(".badge")).to_have_text(planned)  # signed: complete
    assert errors == []

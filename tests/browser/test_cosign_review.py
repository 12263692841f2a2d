"""The co-sign review of the web operator console (issue 11, attacks 1 and 4): it shows
every signed field of the plan, interpreter_video and press_channels included, and it
will not co-sign a plan that lists a device its own delegation did not certify, even when
the server serves one."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, Page, Route, expect

from summitline.client.operator import Operator, participant
from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey, short_fingerprint
from tests.browser.people import new_page
from tests.browser.test_operator import create_delegation


async def linked_console(browser: Browser, server: str, http: httpx.AsyncClient
                         ) -> tuple[Page, list[str], Operator, str]:
    """A browser page of the Russian console (its page errors collected), linked with a
    US office registered in Python; and the Russian delegation's id."""
    errors: list[str] = []
    page = await new_page(browser, errors)
    us = Operator(http, "United States", PrivateKey.generate())
    await us.register()
    return page, errors, us, await console_linked_to(page, server, http, us)


async def console_linked_to(page: Page, server: str, http: httpx.AsyncClient,
                            us: Operator) -> str:
    """The Russian office in the browser console, linked with the US office (Python)."""
    ru_id, _ = await create_delegation(page, server, "Russian Federation")
    link = "link-review"
    await us.propose_link(link, ru_id)
    await page.reload()
    await page.locator(".spoken").fill(short_fingerprint(us.id))
    await page.locator(".accept-link").click()
    await expect(page.locator("#links .badge")).to_have_attribute("data-state", "established")
    await us.pin_link(link)
    return ru_id


async def console_certifies(page: Page, http: httpx.AsyncClient, name: str,
                            role: str = "principal", language: str = "") -> PrivateKey:
    """The console opens a seat; a device (Python) takes it; the officer reads the
    device's fingerprint into the console, which certifies it (stating its ``language``,
    if given)."""
    await page.locator("#device-name").fill(name)
    await page.locator("#device-role").select_option(role)
    await page.locator("#enrol-device").click()
    url = await page.locator("#enrol-url").get_attribute("href")
    assert url
    code = urlsplit(url).fragment.split("/")[2]
    key = PrivateKey.generate()
    r = await http.post("/api/enrolments", json={
        "code": code, "key": key.public.b64u,
        "signature": key.sign(statements.enrol(code, key.public.b64u))})
    assert r.status_code == 200, r.text
    await page.reload()
    row = page.locator("#devices tr", has_text=name)
    await row.locator(".read-fingerprint").fill(short_fingerprint(key.fingerprint))
    await row.locator(".certify-language").select_option(language)
    await row.locator(".certify").click()
    await expect(page.locator("#devices tr", has_text=name).locator(".badge.certified")) \
        .to_be_visible()
    return key


async def serve_also(page: Page, us: Operator, plan: CallPlan, ru_id: str) -> list[str]:
    """A hostile server lists ``plan`` (signed by the US) among the link's plans, waiting
    for the console's signature. Returns the console's POSTs naming the plan (to stay [])."""
    signed = {"plan": plan.to_json(), "signatures": {
        us.id: us.key.sign(statements.plan(plan.hash))}}
    posts: list[str] = []

    async def serve(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        body.append({"hash": plan.hash, "call": plan.call, **signed, "complete": False,
                     "missing": [ru_id], "phase": "planned"})
        await route.fulfill(response=response, body=json.dumps(body))

    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and
            plan.hash in r.url else None)
    await page.route("**/api/links/*/plans", serve)
    return posts


async def flagged_and_not_signed(page: Page, us: Operator, plan: CallPlan, ru_id: str,
                                 flag: str) -> None:
    """A hostile server serves ``plan`` to the console: its review shows ``flag``, and
    co-signing it is refused with nothing signed or sent."""
    cosigned = await serve_also(page, us, plan, ru_id)
    await page.reload()
    bad = page.locator(f'.plan[data-call="{plan.call}"]')
    await expect(bad.locator(".review-flags")).to_contain_text(flag)
    await bad.locator(".cosign").click()
    await expect(page.locator("#console-error")).to_contain_text("Do not sign")
    assert cosigned == []


async def test_the_console_reviews_every_field_and_refuses_planted_devices(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    page, errors, us, ru_id = await linked_console(browser, server, http)
    ru_principal = await console_certifies(page, http, "President of the Russian Federation")
    rows = {d["device"]: d for d in await us.devices(ru_id)}
    assert rows[ru_principal.fingerprint]["certified"]

    # a plan with every optional field set: the review must show them all
    interp = PrivateKey.generate()
    plan = CallPlan(call="call-review", link="link-review", title="Review me",
                    delegations=(us.delegation(), us.delegation(ru_id)), participants=(
                        participant(PrivateKey.generate(), us.key, Role.PRINCIPAL,
                                    "President of the United States", "en"),
                        participant(interp, us.key, Role.INTERPRETER, "US interpreter", "ru"),
                        us.participant(rows[ru_principal.fingerprint], "ru")),
                    press_window_s=120, interpreter_video=True, press_channels=("ru",),
                    audio="studio")
    await us.submit_plan(plan)
    await page.reload()
    row = page.locator('.plan[data-call="call-review"]')
    review = row.locator(".review")
    await expect(review.locator('dd[data-field="interpreter_video"]')).to_have_text("yes")
    await expect(review.locator('dd[data-field="press_channels"]')).to_have_text("ru")
    await expect(review.locator('dd[data-field="press_window_s"]')).to_have_text("120 s")
    await expect(review.locator('dd[data-field="audio"]')).to_have_text(
        "Studio: no echo cancellation, noise suppression or automatic gain")
    await expect(review.locator('dd[data-field="participant"]')).to_have_count(3)
    await expect(review.locator('dd[data-field="delegation"]')).to_have_count(2)
    fields = set(await review.locator("dt").evaluate_all(
        "(xs) => xs.map((x) => x.dataset.field)"))
    assert fields == set(plan.to_json()) - {"delegations", "participants"} | {
        "delegation", "participant"}
    await expect(row.locator(".review-flags")).to_have_count(0)

    # the server serves a planted plan: two devices the US holds, listed as Russian
    spare, fake_aide = PrivateKey.generate(), PrivateKey.generate()
    real = rows[ru_principal.fingerprint]
    planted = replace(plan, call="call-planted", participants=(
        *plan.participants,
        replace(participant(spare, us.key, Role.PRINCIPAL, "Spare", "ru"), delegation=ru_id,
                certificate=real["certificate"]),
        replace(participant(fake_aide, us.key, Role.AIDE, "Aide", "ru"), delegation=ru_id)))
    await flagged_and_not_signed(page, us, planted, ru_id, "is not certified by")

    # the server serves a plan naming the Russian delegation's own key as a US aide: once
    # signed, the US could "revoke" it and cut the Russian office off (attacker review of
    # issue 11, round 3); the console flags it and signs nothing
    await page.unroute("**/api/links/*/plans")
    ru_key = PublicKey.from_b64u((await http.get(f"/api/delegations/{ru_id}")).json()["key"])
    baited = replace(plan, call="call-baited", participants=(
        *plan.participants, participant(ru_key, us.key, Role.AIDE, "Aide", "en")))
    await flagged_and_not_signed(page, us, baited, ru_id, "a delegation's key, not a device")

    # the genuine plan is co-signed from the console
    await page.unroute("**/api/links/*/plans")
    await page.reload()
    await page.locator('.plan[data-call="call-review"] .cosign').click()
    await expect(page.locator('.plan[data-call="call-review"] .badge')).to_have_text("planned")
    assert errors == []


async def test_the_console_revokes_a_device(browser: Browser, server: str,
                                            http: httpx.AsyncClient) -> None:
    """The officer revokes a certified device from the console (the statement signed in
    the browser, checked by the server): it can no longer be put in a plan."""
    page, errors, us, ru_id = await linked_console(browser, server, http)
    key = await console_certifies(page, http, "President of the Russian Federation")
    [row] = [d for d in await us.devices(ru_id) if d["device"] == key.fingerprint]
    plan = CallPlan(call="call-revoked", link="link-review", title="Too late",
                    delegations=(us.delegation(), us.delegation(ru_id)), participants=(
                        participant(PrivateKey.generate(), us.key, Role.PRINCIPAL,
                                    "President of the United States", "en"),
                        us.participant(row, "ru")))
    await page.locator(f'#devices tr[data-device="{key.fingerprint}"] .revoke').click()
    await page.locator("#confirm-ok").click()  # the console asks first: it cannot be undone
    await expect(page.locator(f'#devices tr[data-device="{key.fingerprint}"] .badge.revoked')) \
        .to_be_visible()
    [row] = [d for d in await us.devices(ru_id) if d["device"] == key.fingerprint]
    assert row["revoked"] is True and row["certified"] is False
    r = await http.post("/api/plans", json={"plan": plan.to_json(), "signatures": {
        us.id: us.key.sign(statements.plan(plan.hash))}})
    assert r.status_code == 409 and "revoked device" in r.json()["detail"]
    await expect(page.locator("#console-error")).to_be_empty()

    # a hostile server forgets the revocation and serves the plan: the console remembers
    # (IndexedDB, across reloads), flags it and does not co-sign it
    posts = await serve_also(page, us, plan, ru_id)
    await page.reload()
    bad = page.locator('.plan[data-call="call-revoked"]')
    await expect(bad.locator(".review-flags")).to_contain_text(
        "is a device this delegation revoked")
    await bad.locator(".cosign").click()
    await expect(page.locator("#console-error")).to_contain_text("Do not sign")
    assert posts == []
    assert errors == []


async def test_the_console_flags_its_interpreter_moved_to_another_channel(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    """Attacker review (e): the officer states the interpreter's language (Russian) when
    certifying it; a plan by the US putting it in the English channel is flagged and not
    co-signed, the one keeping it in Russian is co-signed."""
    page, errors, us, ru_id = await linked_console(browser, server, http)
    principal = await console_certifies(page, http, "President of the Russian Federation")
    interp = await console_certifies(page, http, "Russian interpreter", "interpreter", "ru")
    await expect(page.locator(f'#devices tr[data-device="{interp.fingerprint}"] '
                              ".stated-language")).to_contain_text("Russian")
    rows = {d["device"]: d for d in await us.devices(ru_id)}
    us_principal = participant(PrivateKey.generate(), us.key, Role.PRINCIPAL,
                               "President of the United States", "en")

    def plan(call: str, language: str) -> CallPlan:
        return CallPlan(call=call, link="link-review", title="Channels",
                        delegations=(us.delegation(), us.delegation(ru_id)), participants=(
                            us_principal, us.participant(rows[principal.fingerprint], "ru"),
                            us.participant(rows[interp.fingerprint], language)))

    # the server does not look at languages: the honest one carries both plans
    moved, kept = plan("call-moved", "en"), plan("call-kept", "ru")
    await us.submit_plan(moved)
    await us.submit_plan(kept)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and
            moved.hash in r.url else None)
    await page.reload()
    bad = page.locator('.plan[data-call="call-moved"]')
    await expect(bad.locator(".review-flags")).to_contain_text(
        "is put in channel en; this delegation stated ru")
    await bad.locator(".cosign").click()
    await expect(page.locator("#console-error")).to_contain_text("Do not sign")
    assert posts == []
    good = page.locator('.plan[data-call="call-kept"]')
    await expect(good.locator(".review-flags")).to_have_count(0)
    await good.locator(".cosign").click()
    await expect(page.locator('.plan[data-call="call-kept"] .badge')).to_have_text("planned")
    assert errors == []

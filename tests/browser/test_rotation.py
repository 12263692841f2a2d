"""Key rotation in the web console (issue 11, key lifecycle): the other delegation (US,
Python) rotates its key; the console (RU) follows the chain from the key it pinned, pins
the new key, tells its officer, and co-signs a plan signed with the new key. A rotation
the pinned key did not sign (a hostile server's) is refused with an alarm first."""

from __future__ import annotations

import json
import time

import httpx
from playwright.async_api import Browser, Page, Route, expect

from summitline.client.operator import Operator, participant
from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, short_fingerprint
from tests.browser.test_cosign_review import console_certifies, linked_console


async def us_drafts_and_the_console_cosigns(page: Page, us: Operator, ru_id: str,
                                            ru_principal: PrivateKey, call: str,
                                            reload: bool = False) -> None:
    """The US (Python) drafts a plan with both principals, signed with its key as it is
    now; the Russian console finds nothing to flag in it and co-signs."""
    rows = {d["device"]: d for d in await us.devices(ru_id)}
    plan = CallPlan(call=call, link="link-review", title="After the rotation",
                    delegations=(us.delegation(), us.delegation(ru_id)), participants=(
                        participant(PrivateKey.generate(), us.key, Role.PRINCIPAL,
                                    "President of the United States", "en",
                                    delegation_id=us.id),
                        us.participant(rows[ru_principal.fingerprint], "ru")))
    await us.submit_plan(plan)
    if reload:
        await page.reload()
    row = page.locator(f'.plan[data-call="{call}"]')
    await expect(row.locator(".review-flags")).to_have_count(0)
    await row.locator(".cosign").click()
    await expect(row.locator(".badge")).to_have_text("planned")


async def test_the_console_follows_a_rotation_and_refuses_a_forged_one(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    page, errors, us, ru_id = await linked_console(browser, server, http)
    ru_principal = await console_certifies(page, http, "President of the Russian Federation")

    # a hostile server shows the US under a key of its own, with a chain it signed itself
    attacker = PrivateKey.generate()

    async def forged(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        new, at = attacker.public.b64u, int(time.time() * 1000)
        said = statements.rotation(us.id, body["key"], new, at)
        body["rotations"] = [{"previous": body["key"], "key": new, "at": at,
                              "signature": attacker.sign(said), "proof": attacker.sign(said)}]
        body["key"] = new
        body["name_signature"] = attacker.sign(statements.register(body["name"], new))
        await route.fulfill(response=response, body=json.dumps(body))

    await page.route(f"**/api/delegations/{us.id}", forged)
    await page.reload()
    await expect(page.locator("#rotation-alarm")).to_contain_text("did not sign")
    await expect(page.locator("#rotation-notice")).to_be_hidden()
    # the console may be asking again as the route goes: let that handler finish, or
    # it fulfils a request Playwright already let through ("Route is already handled")
    await page.unroute_all(behavior="wait")

    # the real rotation: the console follows it and says so (from the first key: had it
    # pinned the attacker's, this chain would not pass through it and would be refused)
    await us.rotate()
    await page.reload()
    await expect(page.locator("#rotation-notice")).to_contain_text(
        f"United States ({short_fingerprint(us.id)}) rotated its delegation key")
    await expect(page.locator("#rotation-notice")).to_contain_text(
        short_fingerprint(us.key.fingerprint))
    await expect(page.locator("#rotation-alarm")).to_be_hidden()

    # a plan signed with the new key (and carrying the chain) is co-signed without a flag
    await us_drafts_and_the_console_cosigns(page, us, ru_id, ru_principal, "call-rotated",
                                            reload=True)
    assert errors == []


async def test_the_console_rotates_its_own_key(browser: Browser, server: str,
                                               http: httpx.AsyncClient) -> None:
    # the Russian office replaces its key from the console: the server holds the chain,
    # the US office follows it, the console's devices stay certified (under the new key),
    # and a plan drafted by the US afterwards is co-signed by the console
    page, errors, us, ru_id = await linked_console(browser, server, http)
    ru_principal = await console_certifies(page, http, "President of the Russian Federation")
    # an aide tablet it certified, then revoked: a rotation must not certify it again,
    # whatever the server lists (attacker review of issue 11, round 4)
    tablet = await console_certifies(page, http, "Aide tablet", role="aide")
    await page.locator(f'#devices tr[data-device="{tablet.fingerprint}"] .revoke').click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator(f'#devices tr[data-device="{tablet.fingerprint}"]')) \
        .not_to_contain_text("certified")
    first = (await http.get(f"/api/delegations/{ru_id}")).json()["key"]
    await page.locator("#own-id").locator("xpath=..").locator("summary").click()
    await page.locator("#rotate-key").click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.locator("#confirm-cancel").click()  # asked first: cancel changes nothing
    assert (await http.get(f"/api/delegations/{ru_id}")).json()["key"] == first
    await page.locator("#rotate-key").click()
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#own-rotation-notice")).to_contain_text(
        "1 device(s) certified again")
    view = (await http.get(f"/api/delegations/{ru_id}")).json()
    assert view["key"] != first and [r["previous"] for r in view["rotations"]] == [first]
    notices = await us.follow("link-review")
    assert notices and us.pinned[ru_id].b64u == view["key"]
    rows = {d["device"]: d for d in await us.devices(ru_id)}
    assert rows[ru_principal.fingerprint]["certified"]  # certified again, new key
    await expect(page.locator(f'#devices tr[data-device="{ru_principal.fingerprint}"] '
                              ".badge.certified")).to_be_visible()
    await us_drafts_and_the_console_cosigns(page, us, ru_id, ru_principal,
                                            "call-after-own-rotation")
    # the console, reloaded, still reads with its new key (kept in IndexedDB)
    await page.reload()
    await expect(page.locator('.plan[data-call="call-after-own-rotation"] .badge')) \
        .to_have_text("planned")
    assert errors == []

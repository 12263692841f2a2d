"""Revocation in the browser (issue 11, key lifecycle): a hostile server's forged
revocation of the other principal is an alarm and changes nothing; the real one, signed by
the device's delegation, makes the browser close its link with the device within a
bounded time and say so on screen, though the revoked device itself holds on."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from playwright.async_api import Browser, expect

from summitline.client.ice import loopback
from summitline.client.session import Identity, SessionRefused
from summitline.core.roles import Role
from summitline.crypto import statements
from tests.browser.people import (
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    principal,
    wait_for_media,
)
from tests.browser.test_hostile_server import Route
from tests.client.test_certificates import enrol_and_certify
from tests.client.test_revocation import REVOKED_WITHIN_S, Stubborn
from tests.client.test_session import WAIT_S
from tests.hostile import Message


def keep(msg: Message) -> Message:
    return msg


async def test_the_browser_cuts_off_a_revoked_device(browser: Browser, server: str,
                                                     ws_url: str,
                                                     http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    web = await enrol_browser(browser, server, us, "President of the United States")
    py_key = await enrol_and_certify(ru, http, "President of the Russian Federation",
                                     Role.PRINCIPAL)
    rows = {d["device"]: d for d in await ru.devices(ru.id)}
    plan = await cosigned_plan(us, ru, link, [
        principal(us, web.key, "President of the United States", "en"),
        ru.participant(rows[py_key.fingerprint], "ru")])
    await us.control(plan.call, "start")
    route = Route(keep)
    await web.page.route_web_socket("**/ws", route)
    await join_in_browser(web, server, plan.call)
    py = Stubborn(ws_url, plan.call, Identity(py_key, dict(ru.pinned)), ice=loopback(),
                  reconnect=False)
    task = asyncio.create_task(py.run())
    await wait_for_media(web.page, frames=10, audio=10)

    # forged: signed by the other delegation (the hostile server holds no RU key)
    at = int(time.time() * 1000)
    route.inject({"type": "revoked", "delegation": ru.id, "device": py_key.fingerprint,
                  "at": at, "signature": us.key.sign(
                      statements.revocation(ru.id, py_key.fingerprint, at))})
    await expect(web.page.locator("#alarm")).to_contain_text("did not sign")
    assert await web.page.locator("#revoked-notice").is_hidden()
    assert await web.page.evaluate("() => window.summitlineSession.links.size") == 1
    await wait_for_media(web.page, frames=40, audio=40)  # the call went on

    revoked_at = time.monotonic()
    assert (await ru.revoke(py_key.fingerprint))["told"] == 1
    await web.page.wait_for_function(
        "() => window.summitlineSession.links.size === 0 && "
        "window.summitlineSession.peers.size === 0", timeout=REVOKED_WITHIN_S * 1000,
        polling=50)
    assert time.monotonic() - revoked_at < REVOKED_WITHIN_S
    await expect(web.page.locator("#revoked-notice")).to_contain_text(
        "revoked President of the Russian Federation")
    with contextlib.suppress(SessionRefused):
        await asyncio.wait_for(task, WAIT_S)
    await py.leave()
    await us.control(plan.call, "end")

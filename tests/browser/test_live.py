"""Live updates in the browser: the operator console's page watches its delegation's
event stream (web/live.js, signed like every read) and hears of a link the other side
proposes, without a reload."""

from __future__ import annotations

import secrets

import httpx
from playwright.async_api import Browser

from summitline.client.operator import Operator
from summitline.crypto.keys import PrivateKey
from tests.browser.people import new_page
from tests.browser.test_operator import create_delegation

WATCH = """async (id) => {
  const live = await import("/live.js");
  window.liveEvents = [];
  window.stopLive = live.watch(`/api/delegations/${id}/events`,
                               (ev) => window.liveEvents.push(ev));
}"""


async def test_the_console_hears_of_a_link_the_other_side_proposes(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    us_id, _ = await create_delegation(page, server, "United States")
    await page.evaluate(WATCH, us_id)
    await page.wait_for_function("() => window.liveEvents.some(e => e.type === 'open')")

    ru = Operator(http, "Russian Federation", PrivateKey.generate())
    await ru.register()
    link = f"link-{secrets.token_hex(4)}"
    await ru.propose_link(link, us_id)
    await page.wait_for_function(
        "(link) => window.liveEvents.some(e => e.type === 'link' && e.data.id === link)",
        arg=link)
    # the stream names the link and nothing more: the console re-reads it, signed
    seen = await page.evaluate("() => window.liveEvents.filter(e => e.type === 'link')")
    assert seen == [{"type": "link", "data": {"id": link}}]
    # stopped, it does not reconnect
    await page.evaluate("() => window.stopLive()")
    assert not await page.evaluate("() => window.liveEvents.some(e => e.type === 'closed')")
    assert errors == []

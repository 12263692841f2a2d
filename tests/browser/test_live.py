"""Live updates in the browser: the operator console's page watches its delegation's
event stream (web/live.js, signed like every read) and hears of a link the other side
proposes, without a reload."""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from summitline.client.ice import LOOPBACK
from summitline.client.operator import Operator
from summitline.console import running as console
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings
from summitline.server.run import running
from tests.browser.people import (
    cosigned_plan,
    linked_operators,
    new_page,
    principal,
)
from tests.browser.test_operator import create_delegation
from tests.browser.test_record import pkcs8_b64

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


FOLLOW = """async ([pem, id]) => {
  const der = Uint8Array.from(atob(pem), (c) => c.charCodeAt(0));
  const privateKey = await crypto.subtle.importKey(
    "pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  (await import("/api.js")).setSigner({ fingerprint: id, privateKey });
  const { follow } = await import("/live.js");
  window.changes = [];
  window.stopLive = follow(id, (c) => window.changes.push({
    everything: c.everything, links: [...c.links], plans: [...c.plans],
    devices: [...c.devices], seats: [...c.seats], calls: [...c.calls] }));
}"""


@contextlib.asynccontextmanager
async def server_and_console(data: Path) -> AsyncIterator[tuple[str, str]]:
    """(server URL, console URL): a delegation's own console, on another origin than the
    server, as in real use (the stream crosses origins, preflight and all)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(data_dir=data, press_hosts=LOOPBACK, allowed_origins=(origin,))
        async with running(settings) as server, console(server, sockets=[sock]) as base:
            yield server, base


async def seen(page: Page, kind: str, value: object) -> None:
    await page.wait_for_function(
        "([kind, value]) => window.changes.some((c) => JSON.stringify(c[kind]).includes("
        "JSON.stringify(value)))", arg=[kind, value])


async def test_a_console_follows_links_plans_devices_and_the_call(
        browser: Browser, tmp_path: Path) -> None:
    errors: list[str] = []
    async with server_and_console(tmp_path / "server") as (server, base), \
            httpx.AsyncClient(base_url=server) as http:
        us, ru, link = await linked_operators(http)
        page = await new_page(browser, errors)
        await page.goto(f"{base}/#/home")
        await expect(page.locator("#server")).to_be_visible()
        await page.evaluate(FOLLOW, [pkcs8_b64(us.key), us.id])
        await page.wait_for_function("() => window.changes.some((c) => c.everything)")

        code = await ru.open_enrolment("Aide", Role.AIDE)  # the partner's devices too
        aide = PrivateKey.generate()
        r = await http.post("/api/enrolments", json={
            "code": code, "key": aide.public.b64u,
            "signature": aide.sign(statements.enrol(code, aide.public.b64u))})
        assert r.status_code == 200
        await seen(page, "devices", aide.fingerprint)

        plan = await cosigned_plan(us, ru, link, [
            principal(us, PrivateKey.generate(), "President of the United States", "en"),
            principal(ru, PrivateKey.generate(), "President of the Russian Federation", "ru")])
        await seen(page, "plans", plan.hash)
        await ru.control(plan.call, "start")
        await seen(page, "calls", [plan.call, "closed"])
        await ru.control(plan.call, "end")
        await seen(page, "calls", [plan.call, "ended"])

        other = Operator(http, "Kingdom of Norway", PrivateKey.generate())
        await other.register()
        await other.propose_link("link-north", us.id)
        await seen(page, "links", "link-north")
        await page.evaluate("() => window.stopLive()")
    assert errors == []


async def test_the_stream_is_parsed_across_chunks_and_retried_with_a_growing_wait(
        browser: Browser, server: str) -> None:
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{server}/#/home")
    await expect(page.locator("#server")).to_be_visible()
    # an event split anywhere, CRLF or LF, comments, a data line without a space
    parsed = await page.evaluate("""async () => {
      const { sseParser } = await import("/live.js");
      const out = [], retries = [];
      const feed = sseParser((type, data) => out.push([type, data]), (ms) => retries.push(ms));
      for (const chunk of ["retry: 2000\\r\\n: open\\r\\n\\r\\nev", "ent: link\\ndata: {\\"id\\"",
                           ":\\"l-1\\"}\\n", "\\n: heartbeat\\n\\nevent: call\\ndata:{}\\n\\n"]) {
        feed(chunk);
      }
      return { out, retries };
    }""")
    assert parsed == {"out": [["link", '{"id":"l-1"}'], ["call", "{}"]], "retries": [2000]}
    # unsigned (this page set no signer): refused, and tried again 1 s, 2 s, 4 s later
    await page.evaluate("""async () => {
      const { watch } = await import("/live.js");
      window.closings = [];
      window.stopLive = watch("/api/delegations/" + "0".repeat(64) + "/events",
        (ev) => { if (ev.type === "closed") window.closings.push([ev.status, Date.now()]); });
    }""")
    await page.wait_for_function("() => window.closings.length >= 4", timeout=20_000)
    closings = await page.evaluate("() => { window.stopLive(); return window.closings; }")
    assert {status for status, _ in closings} == {401}
    gaps = [b[1] - a[1] for a, b in zip(closings, closings[1:], strict=False)]
    assert gaps[0] >= 900 and gaps[1] >= 1900 and gaps[2] >= 3900, gaps
    assert errors == []

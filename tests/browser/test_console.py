"""The delegation's own console against a hostile shared server.

The server here is the real one, except that what it serves on its own origin is a key
thief: its /, /app.js, /api.js and /keystore.js are replaced by a script that looks for the
delegation's keys in IndexedDB and tries to sign with them. The US office and its
principal's device use `summitline console` (the client from the package, on its own
origin) in the same browser profile: enrolment, the link, co-signing the plan and the
call all work through it, and the page from the server's origin finds no key to use.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, Page, expect
from starlette.types import ASGIApp, Receive, Scope, Send

from summitline.client.ice import LOOPBACK, loopback
from summitline.client.operator import Operator, participant
from summitline.client.session import CallSession, Identity
from summitline.console import running as console
from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Role
from summitline.crypto.keys import PrivateKey, short_fingerprint
from summitline.server.app import Settings, create_app
from summitline.server.run import OpenWebSockets, serving
from tests.browser.people import TIMEOUT_MS, end_with_python, new_page, wait_for_media
from tests.browser.test_operator import create_delegation, enrol
from tests.client.test_session import until

THIEF_JS = b"""
// Served by a hostile server on its own origin, in place of the client.
function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
function open() {
  const req = indexedDB.open("summitline", 1);
  req.onupgradeneeded = () => req.result.createObjectStore("identities");
  return request(req);
}
window.steal = async () => {
  const found = { identities: -1, signed: 0, error: null };
  try {
    const db = await open();
    const all = await request(
      db.transaction("identities", "readonly").objectStore("identities").getAll());
    db.close();
    found.identities = all.length;
    for (const identity of all) {
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, identity.privateKey,
        new TextEncoder().encode('{"seat":"a device of the server"}'))
        .then(() => { found.signed += 1; }, () => {});
    }
  } catch (err) {
    found.error = String(err);
  }
  return found;
};
// The control: a key kept the client's way in this origin is found and used.
window.plant = async () => {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" },
                                               false, ["sign", "verify"]);
  const db = await open();
  const tx = db.transaction("identities", "readwrite");
  await request(tx.objectStore("identities").put({ privateKey: pair.privateKey },
                                                 "device:planted"));
  db.close();
};
window.stolen = await window.steal();
"""
THIEF_HTML = b'<!doctype html><title>summitline</title><script type="module" src="/app.js">' \
             b"</script>"
THIEF = {"/": (THIEF_HTML, b"text/html"), "/index.html": (THIEF_HTML, b"text/html"),
         **{p: (THIEF_JS, b"text/javascript") for p in ("/app.js", "/api.js", "/keystore.js")}}


class KeyThief:
    """The server's API and signaling as they are, with a key thief for its client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in THIEF:
            body, kind = THIEF[scope["path"]]
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", kind)]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def hostile_server_and_console(data: Path) -> AsyncIterator[tuple[str, str]]:
    """(server URL, console URL): the console's socket is bound first, so that the server
    can be told to admit its origin."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(data_dir=data, press_hosts=LOOPBACK, allowed_origins=(origin,))
        inner = create_app(settings)
        # (the consoles' event streams too: they would hold the server's stop)
        app = OpenWebSockets(KeyThief(inner), inner.state.events)
        async with serving(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on",
                                          log_level="warning")) as server, \
                console(server, sockets=[sock]) as base:
            assert base == origin
            yield server, base


async def identities(page: Page) -> dict[str, int]:
    counts: dict[str, int] = await page.evaluate("""async () => {
      const ks = await import("/keystore.js");
      return { operator: (await ks.listIdentities("operator")).length,
               device: (await ks.listIdentities("device")).length };
    }""")
    return counts


async def blocked_by_csp(page: Page, server: str) -> dict[str, Any]:
    """What the console's CSP does to a script of the server's and to another origin."""
    other = server.replace("127.0.0.1", "localhost")  # the same server, another origin
    result: dict[str, Any] = await page.evaluate("""async ([server, other]) => {
      const violations = [];
      document.addEventListener("securitypolicyviolation",
        (e) => violations.push([e.effectiveDirective, e.blockedURI]));
      const script = await import(server + "/app.js").then(() => "ran", (e) => "refused");
      const fetched = await fetch(other + "/api/nonce").then(() => "read", () => "refused");
      const own = await fetch(server + "/api/nonce").then((r) => r.status, () => "refused");
      await new Promise((resolve) => setTimeout(resolve, 0));  // events are queued
      return { script, fetched, own, violations };
    }""", [server, other])
    return result


async def test_the_console_keeps_working_and_keys_stay_out_of_the_servers_reach(
        browser: Browser, tmp_path: Path, screenshots: Path) -> None:
    errors: list[str] = []
    async with hostile_server_and_console(tmp_path / "server") as (server, base), \
            httpx.AsyncClient(base_url=server) as http:
        us_op = await new_page(browser, errors)
        us_id, us_short = await create_delegation(us_op, base, "United States")
        ru = Operator(http, "Russian Federation", PrivateKey.generate())
        await ru.register()

        # the link: proposed by the Russian office, accepted in the console after the
        # spoken check
        link = f"link-{secrets.token_hex(4)}"
        await ru.propose_link(link, us_id)
        await us_op.reload()
        await us_op.locator(".spoken").fill(short_fingerprint(ru.id))
        await us_op.locator(".accept-link").click()
        await expect(us_op.locator("#links .badge")).to_have_text("established")
        await ru.pin_link(link)
        assert short_fingerprint(ru.pinned[us_id].fingerprint) == us_short

        # the principal's device enrols through the console, in the same browser
        us_dev = await us_op.context.new_page()
        us_dev.set_default_timeout(TIMEOUT_MS)
        us_dev.on("pageerror", lambda exc: errors.append(str(exc)))
        await enrol(us_op, us_dev, "President of the United States")
        (seat,) = await ru.devices(us_id)  # certified in the console (enrol)

        # the Russian office drafts the plan; the console co-signs it
        ru_key = PrivateKey.generate()
        plan = CallPlan(call=f"call-{secrets.token_hex(4)}", link=link,
                        title="Secure video call", participants=(
                            ru.participant(seat, "en"),
                            participant(ru_key, ru.key, Role.PRINCIPAL,
                                        "President of the Russian Federation", "ru")),
                        delegations=(ru.delegation(us_id), ru.delegation()))
        await ru.submit_plan(plan)
        await us_op.reload()
        await us_op.locator(".cosign").click()
        await expect(us_op.locator(".plan .badge")).to_have_text("planned")

        # the call, with signaling from the console's origin to the server's
        await ru.control(plan.call, "start")
        py = CallSession(server.replace("http", "ws", 1) + "/ws", plan.call,
                         Identity(ru_key, dict(ru.pinned)), ice=loopback())
        task = asyncio.create_task(py.run())
        await us_dev.locator("text=Continue").click()  # from the enrolment page
        await us_dev.locator(f'button[data-call="{plan.call}"]').click()
        await wait_for_media(us_dev, frames=10, audio=10)
        await until([py], lambda s: s.frames(MediaKind.VIDEO) > 10)

        # the keys are in the console's IndexedDB ...
        assert await identities(us_op) == {"operator": 1, "device": 1}
        # ... and a page of the server's origin, in the same browser, finds none of them
        thief = await us_op.context.new_page()
        await thief.goto(server + "/")
        await thief.wait_for_function("() => window.stolen !== undefined")
        stolen = await thief.evaluate("() => window.stolen")
        assert stolen == {"identities": 0, "signed": 0, "error": None}
        await thief.evaluate("() => window.plant()")  # the thief works where keys are
        assert await thief.evaluate("() => window.steal()") == \
            {"identities": 1, "signed": 1, "error": None}
        assert await identities(us_op) == {"operator": 1, "device": 1}  # not the console's

        # the console runs none of the server's scripts and talks to no other origin
        csp = await blocked_by_csp(us_op, server)
        assert csp["script"] == "refused" and csp["fetched"] == "refused"
        assert csp["own"] == 200  # the server it was given stays reachable
        assert ["script-src-elem", f"{server}/app.js"] in csp["violations"]
        assert ["connect-src", f"{server.replace('127.0.0.1', 'localhost')}/api/nonce"] \
            in csp["violations"]
        await us_op.screenshot(path=str(screenshots / "console-hostile-server.png"))

        await end_with_python(ru, plan.call, task, py)
        await expect(us_dev.locator("#stop h1")).to_be_visible()
    assert errors == []

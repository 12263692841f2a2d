"""The record in the web console (web/views/record.js): after a call between the two
delegations, the US console reads the record, checks it in the browser, signs it as its
delegation, exports the JSON file (which `summitline verify` accepts, and refuses once
tampered with) and opens the readable page; in English and in Russian."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from summitline.client.operator import Operator
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import PrivateKey
from tests.browser.people import (
    TIMEOUT_MS,
    cosigned_plan,
    linked_operators,
    principal,
)

MOUNT = """async ([pem, me, call]) => {
  const der = Uint8Array.from(atob(pem), (c) => c.charCodeAt(0));
  const privateKey = await crypto.subtle.importKey(
    "pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const { mountRecord } = await import("/views/record.js");
  const box = document.createElement("main");
  document.getElementById("app").replaceChildren(box);
  window.recordPanel = mountRecord(box, { me: { ...me, privateKey }, call });
  await window.recordPanel.ready;
}"""

VERIFY_IN_PAGE = """async ([text, pins]) => {
  const { verifyRecord } = await import("/views/record.js");
  try {
    await verifyRecord(new TextEncoder().encode(text), pins);
    return "accepted";
  } catch (err) {
    return err.key;
  }
}"""


def pkcs8_b64(key: PrivateKey) -> str:
    pem = key.to_pem().decode()
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


async def console_with_record(browser: Browser, server: str, op: Operator, other: Operator,
                              call: str, locale: str, errors: list[str],
                              other_key: str | None = None) -> Page:
    """A page of ``op``'s console (its delegation key imported into WebCrypto, as the
    console keeps it, ``other``'s key pinned: ``other_key`` if given) with the record
    panel of ``call`` mounted."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800},
                                        locale=locale, accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{server}/#/home")
    await expect(page.locator("#server")).to_be_visible()  # the start page is drawn
    me = {"fingerprint": op.id, "key": op.key.public.b64u, "name": op.name,
          "pins": {other.id: other_key or other.key.public.b64u},
          "names": {other.id: {"name": other.name, "signature": "(kept by the console)"}}}
    await page.evaluate(MOUNT, [pkcs8_b64(op.key), me, call])
    return page


async def summitline_verify(path: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "verify", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT_MS / 1000)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_console_signs_exports_and_opens_the_record(
        browser: Browser, server: str, http: httpx.AsyncClient, tmp_path: Path,
        screenshots: Path) -> None:
    us, ru, link = await linked_operators(http)
    plan = await cosigned_plan(us, ru, link, [
        principal(us, PrivateKey.generate(), "President of the United States", "en"),
        principal(ru, PrivateKey.generate(), "President of the Russian Federation", "ru")])
    await us.control(plan.call, "start")
    await us.control(plan.call, "end")
    await ru.sign_record(plan.call, plan.hash)  # the other office signed first

    errors: list[str] = []
    page = await console_with_record(browser, server, us, ru, plan.call, "en-US", errors)
    status = page.locator("#rec-status")
    await expect(status).to_contain_text("the chain of 4 entries is intact")
    await expect(status).to_contain_text("signed by: Russian Federation")
    await expect(status).to_contain_text("Awaiting the signature of: United States")
    # signing asks first: a signature cannot be taken back
    await page.locator("#rec-sign").click()
    await expect(page.locator("#rec-confirm")).to_contain_text("entry 3")
    await page.locator("#record-panel").screenshot(path=str(screenshots / "record-confirm-en.png"))
    await page.locator("#rec-sign-yes").click()
    await expect(status).to_contain_text("Both delegations have signed")
    await expect(page.locator("#rec-signed")).to_have_text("Signed by your delegation")
    await expect(page.locator("#rec-error")).to_be_empty()
    await page.locator("#record-panel").screenshot(path=str(screenshots / "record-en.png"))

    # the export is the server's bytes, as checked: summitline verify accepts them
    async with page.expect_download() as download:
        await page.locator("#rec-export").click()
    saved = tmp_path / "exported.record.json"
    await (await download.value).save_as(saved)
    assert (await download.value).suggested_filename == f"{plan.call}.record.json"
    code, out = await summitline_verify(saved)
    assert code == 0, out
    assert "head signed by United States and Russian Federation" in out

    # one entry changed (and the file put back in canonical form): refused, here and there
    doc = json.loads(saved.read_bytes())
    doc["entries"][2]["at"] += 1
    tampered = tmp_path / "tampered.record.json"
    tampered.write_bytes(canonical(doc) + b"\n")
    code, out = await summitline_verify(tampered)
    assert code == 1 and "entry 2" in out, out
    pins = {us.id: us.key.public.b64u}
    assert await page.evaluate(VERIFY_IN_PAGE, [saved.read_text(), pins]) == "accepted"
    assert await page.evaluate(VERIFY_IN_PAGE, [tampered.read_text(), pins]) == "rec_err_hash"

    # the readable page opens from the console, with its verdict and its stylesheet
    async with page.context.expect_page() as opened:
        await page.locator("#rec-html").click()
    record_page = await opened.value
    await expect(record_page.locator("body")).to_contain_text("Verified")
    await expect(record_page.locator(".ok").first).to_have_css("color", "rgb(34, 102, 58)")
    await record_page.screenshot(path=str(screenshots / "record-page.png"), full_page=True)

    # the Russian console shows the same record, complete, in Russian
    ru_page = await console_with_record(browser, server, us, ru, plan.call, "ru-RU", errors)
    await expect(ru_page.locator("#rec-status")).to_contain_text("Обе делегации подписали")
    await expect(ru_page.locator("#rec-signed")).to_have_text("Подписано вашей делегацией")
    await ru_page.locator("#record-panel").screenshot(path=str(screenshots / "record-ru.png"))
    assert errors == []


async def test_the_console_refuses_to_sign_a_record_the_server_changed(
        browser: Browser, server: str, http: httpx.AsyncClient) -> None:
    """A record whose plan is not the one this console pinned is not signed."""
    us, ru, link = await linked_operators(http)
    plan = await cosigned_plan(us, ru, link, [
        principal(us, PrivateKey.generate(), "President of the United States", "en"),
        principal(ru, PrivateKey.generate(), "President of the Russian Federation", "ru")])
    await us.control(plan.call, "start")
    await us.control(plan.call, "end")
    errors: list[str] = []
    # the console pinned another key for the Russian delegation than the plan carries
    page = await console_with_record(browser, server, us, ru, plan.call, "en-US", errors,
                                     other_key=PrivateKey.generate().public.b64u)
    await expect(page.locator("#rec-error")).to_contain_text(
        "The call plan in the record does not verify")
    await expect(page.locator("#rec-sign")).to_be_disabled()
    assert errors == []


async def test_the_readable_page_runs_nothing_the_server_put_in_it(
        browser: Browser, server: str) -> None:
    """The console shows the server's HTML page under a policy of its own: what a hostile
    server puts in it runs no script and loads nothing but the record's stylesheet, from
    the console's origin (not even what the console's own policy would allow)."""
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{server}/#/home")
    await expect(page.locator("#server")).to_be_visible()
    hostile = ("<!doctype html><html><head><title>Record</title>"
               '<link rel=stylesheet href="/api/record.css"></head><body>'
               "<p class=ok id=verdict>Verified</p>"
               "<script>document.title = 'ran'</script>"
               f'<script type=module src="{server}/dom.js"></script>'
               f'<img src="{server}/api/nonce?seen-by-the-server">'
               "<img src=x onerror=\"document.title = 'ran'\"></body></html>")
    loaded: list[str] = []
    context.on("response", lambda r: loaded.append(r.url))  # (refused ones get none)
    async with context.expect_page() as opened:
        await page.evaluate("""async (html) => {
          const { recordPage } = await import("/views/record.js");
          const url = URL.createObjectURL(new Blob([recordPage(html)], { type: "text/html" }));
          window.open(url, "_blank");
        }""", hostile)
    shown = await opened.value
    await expect(shown.locator("#verdict")).to_have_text("Verified")
    await expect(shown.locator("#verdict")).to_have_css("color", "rgb(34, 102, 58)")
    assert await shown.title() == "Record"
    await shown.wait_for_load_state("load")
    assert [u for u in loaded if not u.startswith("blob:")
            and not u.endswith("/views/record.js")] == [f"{server}/record.css"]
    await context.close()

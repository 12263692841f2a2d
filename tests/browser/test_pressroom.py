"""Readouts in the browser: two delegations' operator consoles draft privately and publish
after the call; the press room, in a third browser context with no keys, shows both side
by side with their times and the call's facts.

The delegation keys are made in Python and imported, non-extractable, into each console's
browser (the console's own path from an empty server is tests/browser/test_operator.py):
so the link and the plan are provisioned in a few lines, and every readout request is
still signed by WebCrypto in the browser and checked by the server in Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from playwright.async_api import Browser, Page, expect

from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.operator import Operator
from summitline.client.press import PressViewer
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.browser.people import TIMEOUT_MS, cosigned_plan, linked_operators, new_page, principal

US_READOUT = (
    "President Joseph R. Biden, Jr. spoke today with President Vladimir Putin of Russia. "
    "President Biden voiced the deep concerns of the United States and our European Allies "
    "about Russia's escalation of forces surrounding Ukraine and made clear that the U.S. "
    "and our Allies would respond with strong economic and other measures in the event of "
    "military escalation.\n\n"
    "The two presidents tasked their teams to follow up, and the U.S. will do so in close "
    "coordination with Allies and partners.")
RU_READOUT = (
    "Состоялась беседа Президента России Владимира Путина с Президентом США Джозефом "
    "Байденом в формате видеоконференции.\n\n"
    "Разговор был откровенным и деловым. Владимир Путин предостерёг от перекладывания на "
    "Россию ответственности, поскольку именно НАТО предпринимает опасные попытки освоения "
    "украинской территории и наращивает военный потенциал у наших границ.\n\n"
    "Президенты договорились поручить своим представителям продолжить обстоятельные "
    "консультации по этим чувствительным вопросам.")
RU_DRAFT = "Черновик: не для печати."

IMPORT_KEY = """async ([der, key, fingerprint, name, pins]) => {
  const c = await import("/crypto.js");
  const ks = await import("/keystore.js");
  const alg = { name: "ECDSA", namedCurve: "P-256" };
  const pkcs8 = Uint8Array.from(atob(der), (ch) => ch.charCodeAt(0));
  const privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, alg, false, ["sign"]);
  const raw = c.unb64u(key);
  const publicKey = await crypto.subtle.importKey("raw", raw, alg, true, ["verify"]);
  if ((await c.fingerprintOf(raw)) !== fingerprint) throw new Error("not this key");
  await ks.saveIdentity("operator", { privateKey, publicKey, raw, key, fingerprint, name,
                                      pins, proposed: {} });
}"""


async def console_of(browser: Browser, base: str, op: Operator, other: Operator,
                     errors: list[str], locale: str | None = None, width: int = 1366) -> Page:
    """A console in a fresh browser context holding ``op``'s delegation key, which has
    pinned the other delegation's."""
    page = await new_page(browser, errors, locale, width)
    await page.goto(f"{base}/")
    pem = op.key.to_pem().decode()
    der = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    await page.evaluate(IMPORT_KEY, [der, op.key.public.b64u, op.id, op.name,
                                     {other.id: other.key.public.b64u}])
    await page.goto(f"{base}/#/operator/{op.id}")
    await expect(page.locator("#own-id")).to_have_text(op.id)
    return page


async def watch(page: Page, call: str) -> None:
    await page.locator(f'.plan[data-call="{call}"] .watch').click()
    await expect(page.locator("#readout-panel")).to_be_visible()
    await expect(page.locator("#readout-state")).not_to_have_text("Loading…")


def iso(ms: int) -> str:
    """As the page writes it in <time datetime>: Date.prototype.toISOString."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


async def test_both_delegations_publish_their_readouts_to_the_press_room(
        browser: Browser, server: str, http: httpx.AsyncClient, screenshots: Path) -> None:
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    plan = await cosigned_plan(us, ru, link, [
        principal(us, PrivateKey.generate(), "President of the United States", "en"),
        principal(ru, PrivateKey.generate(), "President of the Russian Federation", "ru")])
    call = plan.call
    us_page = await console_of(browser, server, us, ru, errors)
    ru_page = await console_of(browser, server, ru, us, errors)
    for page in (us_page, ru_page):
        await watch(page, call)
        await expect(page.locator("#readout-state")).to_have_text(
            "No draft yet. Readouts are published after the call has ended.")
        await expect(page.locator("#capture-photo")).to_be_disabled()

    # the US office drafts before the call; the draft is kept, and private
    await us_page.locator("#readout-text").fill("An early draft.")
    await us_page.locator("#save-draft").click()
    await expect(us_page.locator("#readout-state")).to_contain_text("Draft saved")
    await expect(us_page.locator("#publish-readout")).to_be_disabled()  # not before the end
    await us_page.locator("#readout-text").fill(US_READOUT)
    await expect(us_page.locator("#readout-state")).to_contain_text("unsaved changes")
    await us_page.locator("#save-draft").click()
    await expect(us_page.locator("#readout-state")).not_to_contain_text("unsaved")
    await us_page.reload()  # read back from the server with a signed request
    await watch(us_page, call)
    await expect(us_page.locator("#readout-text")).to_have_value(US_READOUT)
    await expect(ru_page.locator("#readout-text")).to_have_value("")

    # the call: started and ended from the US console
    await us_page.locator(f'.plan[data-call="{call}"] .start').click()
    await us_page.locator("#confirm-ok").click()  # the console asks first
    await expect(us_page.locator("#call-phase")).to_have_attribute("data-phase", "closed")
    await us_page.locator(f'.plan[data-call="{call}"] .end').click()
    await us_page.locator("#confirm-ok").click()
    for page in (us_page, ru_page):
        await expect(page.locator("#call-phase")).to_have_text("ended")
    await expect(us_page.locator("#readout-text")).to_have_value(US_READOUT)  # kept

    # the press room, before anything is published: a call without a press window shows
    # nothing until a side publishes (the same answer as for an unknown call)
    press = await new_page(browser, errors)
    await press.goto(f"{server}/#/pressroom/{call}")
    await expect(press.locator("#pr-nothing[role=status]")).to_have_text(
        "Nothing has been published about this call, or there is no such call. "
        "This page updates by itself.")
    await expect(press.locator("[role=alert]")).to_have_count(0)  # a notice, not an alarm
    await expect(press.locator("h1")).to_have_count(0)

    # the US office publishes, after a confirmation
    await us_page.locator("#publish-readout").click()
    await expect(us_page.locator("#publish-confirm")).to_contain_text("cannot be changed")
    await us_page.locator("#publish-no").click()
    await expect(us_page.locator("#publish-confirm")).to_have_count(0)
    await us_page.locator("#publish-readout").click()
    await us_page.locator("#publish-yes").click()
    await expect(us_page.locator("#readout-state")).to_contain_text("Published")
    await expect(us_page.locator("#readout-text")).to_have_js_property("readOnly", True)
    await expect(us_page.locator("#save-draft")).to_have_count(0)

    # the Russian office saves a draft first: it never reaches the press room
    await ru_page.locator("#readout-text").fill(RU_DRAFT)
    await ru_page.locator("#save-draft").click()
    await expect(ru_page.locator("#readout-state")).to_contain_text("Draft saved")
    us_side = press.locator(f'.readout[data-delegation="{us.id}"]')
    ru_side = press.locator(f'.readout[data-delegation="{ru.id}"]')
    await expect(us_side.locator(".readout-text")).to_have_text(US_READOUT)  # by its refresh
    await expect(ru_side).to_contain_text("Not published yet")
    await press.screenshot(path=str(screenshots / "pressroom-one-side.png"), full_page=True)
    room = (await http.get(f"/api/pressroom/{call}")).json()
    assert RU_DRAFT not in str(room) and "Черновик" not in await press.content()

    await ru_page.locator("#readout-text").fill(RU_READOUT)
    await ru_page.locator("#publish-readout").click()
    await ru_page.locator("#publish-yes").click()
    await expect(ru_page.locator("#readout-state")).to_contain_text("Published")
    await ru_page.screenshot(path=str(screenshots / "operator-readout.png"), full_page=True)

    # both, side by side, with their times and the call's facts
    await expect(ru_side.locator(".readout-text")).to_have_text(RU_READOUT)
    room = (await http.get(f"/api/pressroom/{call}")).json()
    published = {r["delegation"]: r for r in room["readouts"]}
    assert published[us.id]["text"] == US_READOUT and published[ru.id]["text"] == RU_READOUT
    for op in (us, ru):  # signed in the browser, over exactly the published text
        r = published[op.id]
        op.key.public.verify(statements.readout(call, op.id, "publish", r["published_ms"],
                                                statements.text_hash(r["text"])),
                             r["signature"])
    sides = press.locator(".readouts > .readout")
    await expect(sides).to_have_count(2)
    assert [await sides.nth(i).get_attribute("data-delegation") for i in range(2)] == \
        [us.id, ru.id]
    await expect(sides.nth(0).locator("h2")).to_have_text("United States")
    await expect(sides.nth(1).locator("h2")).to_have_text("Russian Federation")
    for side, op in ((us_side, us), (ru_side, ru)):
        await expect(side.locator(".published time")).to_have_attribute(
            "datetime", iso(published[op.id]["published_ms"]))
    boxes = [await sides.nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"]
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 1  # side by side, not one under the other
    assert room["started_ms"] is not None and room["ended_ms"] is not None
    await expect(press.locator("#fact-start time")).to_have_attribute(
        "datetime", iso(room["started_ms"]))
    await expect(press.locator("#fact-end time")).to_have_attribute(
        "datetime", iso(room["ended_ms"]))
    await expect(press.locator("#fact-duration")).to_have_text(
        f"{round(room['duration_ms'] / 1000)} s")
    assert "Черновик" not in await press.content()
    await press.screenshot(path=str(screenshots / "pressroom.png"), full_page=True)

    # in Russian
    await press.locator('.languages a[lang="ru"]').click()
    await expect(press.locator(".kicker")).to_have_text("Пресс-центр")
    await expect(press.locator("#fact-duration")).to_have_text(
        f"{round(room['duration_ms'] / 1000)} с")
    await expect(press.locator(".readout .published").first).to_contain_text("Опубликовано")
    await press.locator(".readout .signature summary").first.click()  # for the press to check
    await expect(press.locator(".readout .signature dd.mono").first).to_have_text(
        published[us.id]["hash"])
    await press.screenshot(path=str(screenshots / "pressroom-ru.png"), full_page=True)

    for page in (us_page, ru_page):
        await expect(page.locator("#readout-error")).to_be_empty()
        await expect(page.locator("#console-error")).to_be_empty()
    assert errors == []


DARK = 40  # mean luma of a programme with no principal's picture in it (black is 16)
LUMA = """(img) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const g = canvas.getContext("2d");
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < px.length; i += 4) {
    sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
  }
  return { width: img.naturalWidth, height: img.naturalHeight, luma: sum / (px.length / 4) };
}"""


async def test_an_official_photo_captured_from_the_press_window(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        screenshots: Path) -> None:
    errors: list[str] = []
    us, ru, link = await linked_operators(http)
    keys = PrivateKey.generate(), PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, keys[0], "President of the United States", "en"),
        principal(ru, keys[1], "President of the Russian Federation", "ru")], press_window_s=60)
    call = plan.call
    sessions = [CallSession(ws_url, call, Identity(key, dict(op.pinned)), ice=loopback())
                for key, op in zip(keys, (us, ru), strict=True)]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    viewer: PressViewer | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                               TIMEOUT_MS / 1000)
        page = await console_of(browser, server, us, ru, errors)
        await watch(page, call)
        await expect(page.locator("#capture-photo")).to_be_disabled()  # no window yet
        await page.locator(f'.plan[data-call="{call}"] .start').click()
        await page.locator("#confirm-ok").click()  # the console asks first
        await expect(page.locator("#call-phase")).to_have_attribute("data-phase", "open")

        # wait until the programme carries the principals' pictures, as a viewer sees it
        await asyncio.wait_for(asyncio.gather(*(s.press_answered.wait() for s in sessions)),
                               TIMEOUT_MS / 1000)
        # the press office issues a press link from the console, for the viewer below
        await page.locator("#press-token").click()
        await expect(page.locator("#press-link")).to_contain_text(f"/press.html#/press/{call}/")
        link_text = await page.locator("#press-link code").first.text_content()
        token = (link_text or "").rsplit("/", 1)[-1]
        pictures: list[float] = []
        viewer = PressViewer(http, call, token, loopback(),
                             on_video=lambda f, _at: pictures.append(
                                 float(np.mean(f.to_ndarray(format="gray")))))
        await viewer.watch()
        await asyncio.wait_for(viewer.wait_for(
            lambda: viewer.frames[MediaKind.VIDEO] > 10 and max(pictures) > DARK),
            TIMEOUT_MS / 1000)
        await viewer.close()  # (decoding costs the machine; the gateway goes on)
        viewer = None

        # the US office captures twice during the window
        await page.locator("#capture-photo").click()
        await expect(page.locator("#photo-preview")).to_be_visible()
        first = await page.locator("#photo-preview").get_attribute("src")
        await page.locator("#capture-photo").click()
        await expect(page.locator(".thumbs .thumb")).to_have_count(2)
        await expect(page.locator("#photo-preview")).not_to_have_attribute("src", first or "")
        await page.locator(f'.thumbs img[src="{first}"]').click()
        await expect(page.locator("#photo-preview")).to_have_attribute("src", first or "")
        shot = await page.locator("#photo-preview").evaluate(LUMA)
        assert (shot["width"], shot["height"]) == (640, 480) and shot["luma"] > DARK
        await page.screenshot(path=str(screenshots / "operator-photo.png"), full_page=True)

        # the call ends; the photo is published afterwards, after a confirmation
        await page.locator(f'.plan[data-call="{call}"] .end').click()
        await page.locator("#confirm-ok").click()
        await expect(page.locator("#call-phase")).to_have_text("ended")
        await expect(page.locator("#capture-photo")).to_have_count(0)
        await expect(page.locator("#photo-preview")).to_have_attribute("src", first or "")
        await page.locator("#publish-photo").click()
        await expect(page.locator("#publish-photo-confirm")).to_contain_text("cannot be changed")
        await page.locator("#publish-photo-yes").click()
        await expect(page.locator("#photo-state")).to_contain_text("Published")
        await expect(page.locator("#photo-preview")).to_have_attribute("src", first or "")

        # the press room shows it, as captured, with who published it and when
        press = await new_page(browser, errors)
        await press.goto(f"{server}/#/pressroom/{call}")
        figure = press.locator("#photos figure")
        await expect(figure).to_have_count(1)
        await expect(figure).to_have_attribute("data-delegation", us.id)
        await expect(figure.locator("figcaption")).to_contain_text("published by United States")
        await expect(figure.locator("img")).to_have_js_property("complete", True)
        shown = await figure.locator("img").evaluate(LUMA)
        assert shown["width"] == 640 and shown["luma"] > DARK
        room = (await http.get(f"/api/pressroom/{call}")).json()
        (official,) = room["photos"]
        served = await http.get(official["url"])
        assert served.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(served.content).hexdigest() == official["id"]
        assert first and first.endswith(f"/{official['id']}.jpg")
        us.key.public.verify(statements.photo(call, us.id, "publish", official["published_ms"],
                                              official["id"]), official["signature"])
        await expect(press.locator("#fact-end time")).to_have_count(1)
        await press.screenshot(path=str(screenshots / "pressroom-photo.png"), full_page=True)
        await expect(page.locator("#readout-error")).to_be_empty()
        assert errors == []
    finally:
        if viewer is not None:
            await viewer.close()
        for s in sessions:
            await s.leave()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# The briefing's readouts, each delegation in its own language, as published.
BRIEFING_READOUTS = (
    "President Biden convened a secure video call with President Macron of France, "
    "Chancellor Scholz of Germany, Prime Minister Draghi of Italy and Prime Minister "
    "Johnson of the United Kingdom. The leaders discussed their shared concern about the "
    "build-up of forces and agreed to stay in close coordination.",
    "Le Président de la République s'est entretenu avec les dirigeants des États-Unis, "
    "d'Allemagne, d'Italie et du Royaume-Uni. Ils ont réaffirmé leur attachement au "
    "dialogue et à la coordination étroite entre alliés.",
    "Bundeskanzler Scholz hat an einer Videokonferenz mit dem amerikanischen Präsidenten "
    "sowie den Staats- und Regierungschefs Frankreichs, Italiens und des Vereinigten "
    "Königreichs teilgenommen. Die Teilnehmer vereinbarten, eng abgestimmt zu bleiben.",
    "Il Presidente del Consiglio ha partecipato a una videoconferenza con i leader di Stati "
    "Uniti, Francia, Germania e Regno Unito. I leader hanno ribadito l'importanza del "
    "dialogo e dell'unità tra alleati.",
    "The Prime Minister joined a call with the leaders of the United States, France, "
    "Germany and Italy. The leaders agreed on the importance of a united response and "
    "committed to keep talking in the days ahead.",
)


async def test_a_briefing_press_room_shows_every_readout_side_by_side(
        browser: Browser, server: str, screenshots: Path) -> None:
    # five delegations' provisioning, on a loaded machine, may take more than httpx's 5 s
    async with httpx.AsyncClient(base_url=server, timeout=TIMEOUT_MS / 1000) as http:
        for n in (3, 5):
            await briefing_press_room(browser, server, http, n, screenshots)


async def briefing_press_room(browser: Browser, server: str, http: httpx.AsyncClient,
                              n: int, screenshots: Path) -> None:
    errors: list[str] = []
    b = await provision_briefing(http, n, title="Briefing of allies")
    ops = [side.operator for side in b.sides]
    await ops[0].control(b.call, "start")
    await ops[0].control(b.call, "end")
    for op, text in reversed(list(zip(ops, BRIEFING_READOUTS, strict=False))):
        await op.publish_readout(b.call, text)  # (signing in the browser: the test above)
    press = await new_page(browser, errors, "en-US")
    await press.goto(f"{server}/press.html#/pressroom/{b.call}")
    cards = press.locator(".readouts > .readout")
    await expect(cards).to_have_count(n)
    for i, op in enumerate(ops):  # in the plan's order, each under its delegation's name
        card = cards.nth(i)
        await expect(card).to_have_attribute("data-delegation", op.id)
        await expect(card.locator("h2")).to_have_text(op.name)
        await expect(card.locator(".readout-text")).to_have_text(BRIEFING_READOUTS[i])
        await expect(card.locator(".published")).to_contain_text("Published")
    await expect(press.locator(".readout .badge.host")).to_have_count(1)
    await expect(cards.nth(0).locator(".badge.host")).to_have_text("Host")
    # the facts: the host, every delegation with its principal, the times
    await expect(press.locator("#fact-host")).to_have_text("United States")
    delegations = press.locator("#fact-delegations > li")
    await expect(delegations).to_have_count(n)
    for i, side in enumerate(b.sides):
        await expect(delegations.nth(i)).to_contain_text(side.operator.name)
        await expect(delegations.nth(i).locator(".principals")).to_have_text(
            side.principal_name)
    await expect(press.locator("#fact-end time")).to_have_count(1)

    # side by side: three in a row; five as three and two
    async def rows() -> list[list[float]]:
        boxes = [await cards.nth(i).bounding_box() for i in range(n)]
        lines: dict[float, list[float]] = {}
        for box in boxes:
            assert box is not None
            lines.setdefault(round(box["y"]), []).append(box["x"])
        return [xs for _, xs in sorted(lines.items())]
    shape = [len(xs) for xs in await rows()]
    assert shape == ([3] if n == 3 else [3, 2]), shape
    assert all(xs == sorted(xs) for xs in await rows())
    await press.screenshot(path=str(screenshots / f"pressroom-briefing-{n}.png"),
                           full_page=True)

    # in Russian
    await press.locator('.languages a[lang="ru"]').click()
    await expect(press.locator(".kicker")).to_have_text("Пресс-центр")
    await expect(press.locator(".facts dt").first).to_have_text("Организатор")
    await expect(cards.nth(0).locator(".badge.host")).to_have_text("Организатор")
    await expect(press.locator(".readout .published").nth(n - 1)).to_contain_text(
        "Опубликовано")
    await press.screenshot(path=str(screenshots / f"pressroom-briefing-{n}-ru.png"),
                           full_page=True)

    # a narrow window: two to a row, then one under another
    await press.set_viewport_size({"width": 1000, "height": 800})
    await press.wait_for_function("innerWidth === 1000")
    assert max(len(xs) for xs in await rows()) == 2
    await press.set_viewport_size({"width": 600, "height": 800})
    await press.wait_for_function("innerWidth === 600")
    assert max(len(xs) for xs in await rows()) == 1
    assert errors == []
    await press.context.close()

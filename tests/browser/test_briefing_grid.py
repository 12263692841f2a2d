"""The briefing in the browser (issue 13, "Must show"): three Chromium principals and two
Python principals in one briefing. Every page shows the four others in a grid, each
picture playing; the group code is the same on every page and the one Python computes
over the plan; the pair codes agree at both ends; the browser caps each peer's video so
that the sum fits its uplink; a principal who leaves and rejoins gets everyone back, and
everyone gets it back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect

from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.operator import participant
from summitline.client.session import CallSession
from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Role
from summitline.core.sas import plan_group_code
from tests.browser.people import TIMEOUT_MS, BrowserDevice, enrol_browser, join_in_browser

SHOTS = Path("/work/shots/webgrid")
SHOTS.mkdir(parents=True, exist_ok=True)
# As web/session.js UPLINK_KBPS and UPLINK_AUDIO_KBPS: what a browser may send in all,
# and what it sets aside per peer for audio.
UPLINK_KBPS, UPLINK_AUDIO_KBPS = 2500, 40

# Small fake media: 5 endpoints on 2 cores, each browser encoding a picture per peer.
SMALL_CAMERA = """(() => {
  const md = navigator.mediaDevices, get = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => get(c && c.video ? { ...c, video: { width: 320, height: 240,
                                                             frameRate: 15 } } : c);
})()"""

# Frames presented in each tile since its stream began (requestVideoFrameCallback), and
# whether each tile of `remotes` shows a picture (videoWidth) with `frames` of them.
TILES_PLAY = """([remotes, frames]) => remotes.map((r) => {
  const v = document.querySelector(`#grid .tile[data-remote="${r}"] video`);
  if (!v || !v.srcObject) return false;
  if (v.__stream !== v.srcObject.id) { v.__stream = v.srcObject.id; v.__frames = 0; }
  if (!v.__counting) {
    v.__counting = true;
    const count = () => { v.__frames += 1; v.requestVideoFrameCallback(count); };
    v.requestVideoFrameCallback(count);
  }
  return v.videoWidth > 0 && v.__frames >= frames; }).every(Boolean)"""


async def tiles_play(page: Page, remotes: list[str], frames: int = 3) -> None:
    try:
        await page.wait_for_function(TILES_PLAY, arg=[remotes, frames], polling=250)
    except Exception:
        state = await page.evaluate("""() => [...document.querySelectorAll('#grid video')].map(
            (v) => [v.closest('[data-remote]')?.dataset.remote?.slice(0, 8), !!v.srcObject,
                    v.videoWidth, v.__frames, v.webkitDecodedFrameCount, v.paused,
                    v.readyState])""")
        print("TILES", page.url, state, await page.locator("body").inner_text())
        print("LINKS", await page.evaluate("""() => { const s = window.summitlineSession;
            return [...s.rules.links].map(([r, l]) => [r.slice(0, 8), l.playing?.generation,
              l.trying?.generation, s.status.get(r)?.state]).concat(
              [...s.peers.values()].map((l) => [l.remote.slice(0, 8), l.generation,
                l.pc.connectionState, l.pc.iceConnectionState, l.pc.signalingState])); }"""))
        await page.screenshot(path="/tmp/grid-fail.png")
        raise


async def stream_of(page: Page, remote: str) -> str:
    stream: str = await page.evaluate(
        """(r) => document.querySelector(`#grid .tile[data-remote="${r}"] video`)
                    .srcObject.id""", remote)
    return stream


async def pair_codes(page: Page) -> dict[str, str]:
    codes: dict[str, str] = await page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#pair-codes li:not(.pending)')].map(
          (li) => [li.dataset.remote, li.querySelector('.sas-small').textContent]))""")
    return codes


async def test_three_browsers_and_two_python_principals_hold_a_briefing(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    began = time.monotonic()
    b = await provision_briefing(http, 5)  # five delegations, the host linked with each guest
    ops = [side.operator for side in b.sides]
    errors: list[str] = []
    pages: list[BrowserDevice] = []
    # the host and two guests in browsers; the Germany principal's screen speaks Russian
    for side, lang in zip(b.sides[:3], ("en", "fr", "ru"), strict=True):
        device = await enrol_browser(browser, server, side.operator, side.principal_name,
                                     errors=errors)
        await device.page.context.add_init_script(SMALL_CAMERA)
        await device.page.evaluate(SMALL_CAMERA)
        pages.append(device)
        side.language = lang
    people = [participant(d.key, side.operator.key, Role.PRINCIPAL, side.principal_name,
                          side.language) for d, side in zip(pages, b.sides, strict=False)]
    people += [participant(side.principal, side.operator.key, Role.PRINCIPAL,
                           side.principal_name, side.language) for side in b.sides[3:]]
    host = ops[0]
    plan = CallPlan(call=f"{b.call}-web", link=None, title="Briefing of allies", host=host.id,
                    links=tuple(b.links), delegations=tuple(host.delegation(op.id) for op in ops),
                    participants=tuple(people))
    await host.submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    await host.control(plan.call, "start")
    sessions = [CallSession(ws_url, plan.call, side.identity(), ice=loopback())
                for side in b.sides[3:]]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    devices = [d.device for d in pages] + [s.device for s in sessions]
    try:
        for d in pages:
            await join_in_browser(d, server, plan.call)
        others = {d.device: [x for x in devices if x != d.device] for d in pages}
        # every page: four remote tiles, each playing
        await asyncio.gather(*(tiles_play(d.page, others[d.device]) for d in pages))
        for d in pages:
            await expect(d.page.locator("#grid .tile[data-remote]")).to_have_count(4)
        setup_s = time.monotonic() - began

        # the group code: the same on every page, and Python's over the same plan
        expected = plan_group_code(plan)
        for d in pages:
            await expect(d.page.locator("#group-code")).to_have_text(expected)
        assert {s.group_code() for s in sessions} == {expected}
        us, fr, de = pages
        await expect(us.page.locator("#group-help")).to_have_text(
            "You host the briefing: read this code aloud to everyone.")
        await expect(fr.page.locator("#group-help")).to_have_text(
            "Compare with the code the host, United States, reads aloud.")
        await expect(de.page.locator("#group-title")).to_have_text("Общий код")
        # named from the plan; a guest sees the other guests introduced by the host
        germany = f'#grid .tile[data-remote="{de.device}"]'
        await expect(fr.page.locator(f"{germany} .tile-person")).to_have_text(
            "Chancellor of Germany")
        await expect(fr.page.locator(f"{germany} .tile-delegation")).to_have_text(
            "Germany — introduced by United States")
        await expect(us.page.locator(f"{germany} .tile-delegation")).to_have_text("Germany")

        # a code per pair, labelled by delegation, equal at both ends (Python's too)
        for d in pages:
            await d.page.wait_for_function(
                "(n) => document.querySelectorAll('#pair-codes li:not(.pending)').length >= n",
                arg=4, polling=250)
        shown = {d.device: await pair_codes(d.page) for d in pages}
        for a in pages:
            for other in pages:
                if a is not other:
                    assert shown[a.device][other.device] == shown[other.device][a.device]
            for s in sessions:
                assert shown[a.device][s.device] == s.short_authentication_string(a.device)
        await expect(fr.page.locator(f'#pair-codes li[data-remote="{de.device}"]')).to_have_text(
            f"Verify with Germany:{shown[fr.device][de.device]}")

        # the uplink shared out: each of the four peers' video capped, the sum within budget
        for d in pages:
            caps = await d.page.evaluate("() => window.summitlineSession.uplinkCaps()")
            assert sorted(caps) == sorted(others[d.device]), caps
            assert all(c is not None and c > 0 for c in caps.values()), caps
            assert sum(caps.values()) + 4 * UPLINK_AUDIO_KBPS <= UPLINK_KBPS, caps
        # the active speaker is marked (every principal sends sound: someone is)
        for d in pages:
            await expect(d.page.locator('#grid .tile[data-speaking="true"] .tile-speaking')
                         ).to_have_count(1)

        for d, name in ((us, "briefing-en"), (de, "briefing-ru")):
            for width, height in ((1920, 1080), (1280, 800)):
                await d.page.set_viewport_size({"width": width, "height": height})
                await d.page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"))
            await d.page.set_viewport_size({"width": 1366, "height": 800})

        # France leaves, and rejoins: it gets everyone back, and everyone gets it back
        before = {d.device: await stream_of(d.page, fr.device) for d in (us, de)}
        python_before = [s.frames_from(fr.device, MediaKind.VIDEO) for s in sessions]
        await fr.page.locator("#end").click()
        await fr.page.locator("#leave-yes").click()
        await expect(fr.page.locator("#stop h1")).to_have_text("You left the briefing")
        left = time.monotonic()
        await fr.page.locator("#rejoin").click()
        await tiles_play(fr.page, others[fr.device])
        for d in (us, de):
            await d.page.wait_for_function(
                """([r, old]) => document.querySelector(
                     `#grid .tile[data-remote="${r}"] video`).srcObject?.id !== old""",
                arg=[fr.device, before[d.device]], polling=250)
            await tiles_play(d.page, [fr.device])

        def back(s: CallSession, n: int) -> bool:
            return bool(s.frames_from(fr.device, MediaKind.VIDEO) > n + 10)
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s, n=n: back(s, n))
                                                for s, n in zip(sessions, python_before,
                                                                strict=True))),
                               TIMEOUT_MS / 1000)
        rejoin_s = time.monotonic() - left
        await expect(fr.page.locator("#group-code")).to_have_text(expected)
        print(f"briefing grid: set up in {setup_s:.1f} s, rejoined in {rejoin_s:.1f} s, "
              f"test {time.monotonic() - began:.1f} s")
        assert errors == []
    finally:
        with contextlib.suppress(Exception):
            await host.control(plan.call, "end")
        for s in sessions:
            await s.leave()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

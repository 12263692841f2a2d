"""A briefing through the SFU in the browser (issue 14, docs/protocol.md 5.12): three
Chromium and two Python principals through a real Janus VideoRoom (Debian's ``janus``,
configured by deploy/janus/, tests/janus.py), each receiving every other's video and
audio. The plan asks for the SFU (its own ``sfu_above``), the server has one: every page
publishes one copy of its media to Janus and takes each other principal's from a feed of
it, with no link between the delegations; every frame is sealed by its sender and opened
with the sender's key (the pages' frame workers open frames: none came in the clear), and
each tile plays once its feed decodes. (The co-sign review names the route:
tests/browser/test_console_briefing.py.)

Networking: the test's namespace only (tests/conftest.py). Janus gathers its candidates on
tests/janus.py's veth (198.18.0.1); Chromium gathers on every interface, that one too, with
raw addresses, not mDNS names (tests/browser/conftest.py: WebRtcHideLocalIpsWithMdns off);
the Python principals are given that address for their host candidates (viewer_ice)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from summitline.client.briefing import provision_briefing
from summitline.client.media import MediaSource
from summitline.client.operator import participant
from summitline.client.session import CallSession, Identity
from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Role
from summitline.core.sas import plan_group_code
from summitline.crypto.frames import FrameError, FrameKey, FrameOpener
from summitline.server.app import Settings
from summitline.server.run import OpenWebSockets, config, serving
from tests.browser.people import TIMEOUT_MS, BrowserDevice, enrol_browser, join_in_browser
from tests.browser.test_briefing_grid import (
    CONSOLE,
    PAGES,
    SMALL_CAMERA,
    PythonPrincipals,
    server_process,
    tiles_play,
)
from tests.client.test_session import leave_all
from tests.client.test_sfu_janus import Through, collect, from_key, tapped
from tests.janus import janus, viewer_ice

SHOTS = Path("/work/shots/sfu-web")
SHOTS.mkdir(parents=True, exist_ok=True)
# Five endpoints on 2 cores, each Chromium decoding four feeds and Janus forwarding twenty:
# a step waits twice as long as any other browser step (as the mesh's test_briefing_grid).
MEDIA_WAIT_MS = 2 * TIMEOUT_MS

# What each feed of a page decoded, per remote: video frames and audio samples played out
# that were not concealed (getStats inbound-rtp), and the energy of the sound decoded from
# it (mean square per block, summed by a Web Audio node on the feed's stream: headless
# Chromium reports no inbound-rtp energy, for lack of a playout device); the page's route,
# its links between endpoints (none on this route) and what its frame worker opened.
FEEDS = """async () => {
  const s = window.summitlineSession;
  if (!s) return null;
  window.__ctx ??= new AudioContext();
  window.__meters ??= new Map();
  const out = { route: s.route, links: s.peers.size, feeds: {}, frames: await s.frameCounts() };
  for (const [remote, feed] of s.sfu.links) {
    let meter = window.__meters.get(remote);
    if (feed.stream.getAudioTracks().length && meter?.stream !== feed.stream) {
      const ctx = window.__ctx;
      const node = ctx.createScriptProcessor(2048, 1, 1);
      meter = { stream: feed.stream, energy: meter?.energy ?? 0, node,
                source: ctx.createMediaStreamSource(feed.stream) };
      node.onaudioprocess = (ev) => {
        const x = ev.inputBuffer.getChannelData(0);
        let sum = 0;
        for (const v of x) sum += v * v;
        meter.energy += sum / x.length;
      };
      meter.source.connect(node);
      node.connect(ctx.destination);
      window.__meters.set(remote, meter);
    }
    const f = { video: 0, samples: 0, energy: meter?.energy ?? 0,
                state: feed.pc.connectionState };
    (await feed.pc.getStats()).forEach((x) => {
      if (x.type !== "inbound-rtp") return;
      if (x.kind === "video") f.video += x.framesDecoded || 0;
      else f.samples += (x.totalSamplesReceived || 0) - (x.concealedSamples || 0);
    });
    out.feeds[remote] = f;
  }
  return out;
}"""

# Whether every remote's feed decoded more than `n` video frames (with `video`; else none
# at all: a video the plan does not grant is not forwarded) and `n` tenths of a second of
# sound with energy in it, as far as the last reading went (a predicate of
# wait_for_function is not awaited: it starts the next reading and looks at the last).
DECODES = """([remotes, n, video]) => {
  const s = window.summitlineSession;
  if (!s || s.route !== "sfu") return false;
  if (!window.__reading) {
    window.__reading = true;
    (""" + FEEDS + """)().then((x) => { window.__feeds = x; })
      .finally(() => { window.__reading = false; });
  }
  const seen = window.__feeds;
  return !!seen && remotes.every((r) => { const f = seen.feeds[r];
    return f && (video ? f.video > n : f.video === 0) && f.samples > 4800 * n &&
      f.energy > 0.01; });
}"""


FEED_ID = "(r) => window.summitlineSession.sfu.links.get(r)?.id ?? null"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    """Janus, and the server in a process of its own given Janus's API (its secret and
    admin key in a file, as an operator would: docs/operations.md)."""
    async with janus(tmp_path / "janus") as j:
        secrets = tmp_path / "janus.secret"
        secrets.write_text(f"{j.api_secret}\n{j.admin_key}\n")
        secrets.chmod(0o600)
        async with server_process(tmp_path, "--janus-url", j.url, "--janus-secret-file",
                                  str(secrets)) as base:
            yield base


async def feeds_decode(page: Page, remotes: list[str], n: int = 10,
                       video: bool = True) -> dict[str, Any]:
    """Wait until `page` decodes video (or, without `video`, no video) and audio of every
    one of `remotes` from its feeds; what it decoded. On a timeout, what every page held,
    for the post-mortem."""
    try:
        await page.wait_for_function(DECODES, arg=[remotes, n, video], polling=500,
                                     timeout=MEDIA_WAIT_MS)
    except Exception:
        print("\n".join(CONSOLE[-150:]))
        for other in PAGES:
            print("FEEDS", other.url, await other.evaluate("window.__feeds ?? null"))
        raise
    seen: dict[str, Any] = await page.evaluate(FEEDS)
    return seen


# Its own waits report what every page holds when a step fails; the suite's 180 s would
# end it first, with nothing said.
@pytest.mark.timeout(480)
async def watched(device: Any, name: str) -> Any:
    """``device``'s page with the small camera, its console kept under ``name`` and the
    page among those dumped when a step fails; ``device`` back."""
    await device.page.context.add_init_script(SMALL_CAMERA)
    PAGES.append(device.page)
    device.page.on("console", lambda m: CONSOLE.append(f"{name}: {m.type} {m.text}"))
    return device


async def test_three_browsers_and_two_python_principals_brief_through_janus(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        tmp_path: Path) -> None:
    began = time.monotonic()
    b = await provision_briefing(http, 5)
    ops = [side.operator for side in b.sides]
    errors: list[str] = []
    pages: list[BrowserDevice] = []
    PAGES.clear()
    CONSOLE.clear()
    for side, lang in zip(b.sides[:3], ("en", "en", "ru"), strict=True):
        device = await enrol_browser(browser, server, side.operator, side.principal_name,
                                     errors=errors)
        await device.page.context.add_init_script(SMALL_CAMERA)
        await device.page.evaluate(SMALL_CAMERA)
        pages.append(device)
        PAGES.append(device.page)
        name = side.operator.name
        device.page.on("console", lambda m, name=name: CONSOLE.append(f"{name}: {m.type} {m.text}"))
        side.language = lang
    people = [participant(d.key, side.operator.key, Role.PRINCIPAL, side.principal_name,
                          side.language) for d, side in zip(pages, b.sides, strict=False)]
    people += [participant(side.principal, side.operator.key, Role.PRINCIPAL,
                           side.principal_name, side.language) for side in b.sides[3:]]
    host = ops[0]
    # five media endpoints, more than the plan's threshold of four: the SFU
    plan = CallPlan(call=f"{b.call}-sfu", link=None, title="Briefing of allies", host=host.id,
                    links=tuple(b.links), delegations=tuple(host.delegation(op.id) for op in ops),
                    participants=tuple(people), sfu_above=4)
    assert plan.wants_sfu
    await host.submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    await host.control(plan.call, "start")
    devices = [d.device for d in pages] + [side.principal.fingerprint for side in b.sides[3:]]
    others = {d: [x for x in devices if x != d] for d in devices}
    children: list[PythonPrincipals] = []

    async def python(command: str = "status") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for answer in await asyncio.gather(*(c.status(command) for c in children)):
            out.update(answer)
        return out
    try:
        for i, side in enumerate(b.sides[3:]):
            children.append(await PythonPrincipals.start(
                ws_url, plan.call, [side], devices, tmp_path / f"python-{i}.log", ice="janus"))
        await asyncio.wait_for(python("media 10 " + " ".join(devices[3:])), MEDIA_WAIT_MS / 1000)
        # the browsers join one after another, each once it decodes everyone before it
        joined = devices[3:]
        for d in pages:
            await join_in_browser(d, server, plan.call)
            await feeds_decode(d.page, joined)
            joined = [*joined, d.device]
        seen = {d.device: await feeds_decode(d.page, others[d.device]) for d in pages}
        await asyncio.gather(*(tiles_play(d.page, others[d.device]) for d in pages))
        setup_s = time.monotonic() - began
        for d in pages:
            s = seen[d.device]
            # the SFU route: no link between the delegations, every frame through the worker
            assert s["route"] == "sfu" and s["links"] == 0, s
            assert s["frames"]["opened"] > 0 and s["frames"]["sealed"] > 0, s
            assert sorted(s["feeds"]) == sorted(others[d.device]), s
            tiles = d.page.locator("#grid .tile[data-remote]")
            await expect(tiles).to_have_count(4)
            await expect(d.page.locator('#grid .tile[data-state="ok"]')).to_have_count(4)
            await expect(d.page.locator("#group-box")).to_have_attribute("data-route", "sfu")
            await expect(d.page.locator("#route-note")).to_be_visible()
            await expect(d.page.locator("#pair-codes")).to_be_hidden()
        # the Python principals decode video and audio from every other principal
        py = await asyncio.wait_for(python("media 10"), MEDIA_WAIT_MS / 1000)
        for device, status in py.items():
            assert all(status["frames"][r] > 10 and status["audio"][r] > 10
                       for r in others[device]), (device, status)
        expected = plan_group_code(plan)
        assert {x["group"] for x in py.values()} == {expected}
        us, _, de = pages
        retries = await us.page.evaluate(
            "import('/sfu.js').then((m) => [0, 1, 2, 3, 4, 5].map(m.retryDelay))")
        assert retries == [2000, 4000, 8000, 16000, 30000, 30000]  # sfu-failed: tried again
        for d in pages:
            await expect(d.page.locator("#group-code")).to_have_text(expected)
        await expect(us.page.locator("#route-title")).to_have_text(
            "Media through the relay (SFU)")
        await expect(de.page.locator("#route-title")).to_have_text(
            "Медиа через ретранслятор (SFU)")

        for d, name in ((us, "sfu-briefing-en"), (de, "sfu-briefing-ru")):
            for width, height in ((1920, 1080), (1366, 800)):
                await d.page.set_viewport_size({"width": width, "height": height})
                await d.page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"))

        # a feed that failed is asked for again (sfu-refeed): the server ends it, offers a
        # new one, and the tile plays from that one once it decodes
        old = await us.page.evaluate(FEED_ID, de.device)
        await us.page.evaluate("""(r) => { const s = window.summitlineSession;
                                          s.sfu.refeed(s.sfu.links.get(r)); }""", de.device)
        await us.page.wait_for_function(
            "([r, old]) => (window.summitlineSession.sfu.playing.get(r)?.id ?? old) !== old",
            arg=[de.device, old], polling=250, timeout=MEDIA_WAIT_MS)
        await feeds_decode(us.page, [de.device])

        # France leaves, and rejoins: it gets everyone back, and everyone gets it back
        fr = pages[1]
        await fr.page.locator("#end").click()
        await fr.page.locator("#leave-yes").click()
        await expect(fr.page.locator("#stop h1")).to_have_text("You left the briefing")
        for d in (us, de):  # its feeds are gone (and each page made a new key, 5.10)
            await d.page.wait_for_function(
                "(r) => !window.summitlineSession.sfu.links.has(r)", arg=fr.device,
                polling=250)
            await d.page.evaluate("window.__feeds = null")
        python_before = max(x["frames"][fr.device] for x in (await python()).values())
        left = time.monotonic()
        await fr.page.locator("#rejoin").click()
        await feeds_decode(fr.page, others[fr.device])
        for d in (us, de):
            await feeds_decode(d.page, [fr.device])
            await tiles_play(d.page, [fr.device])
        await asyncio.wait_for(python(f"wait {python_before + 10} {fr.device}"),
                               MEDIA_WAIT_MS / 1000)
        rejoin_s = time.monotonic() - left
        keys = [k for d in (us, de) for k in await d.page.evaluate(
            "Object.values(window.summitlineSession.e2ee.own).map((k) => k.keyId)")]
        assert all(k >= 1 for k in keys), keys  # rotated when France left
        print(f"sfu briefing: set up in {setup_s:.1f} s, rejoined in {rejoin_s:.1f} s, "
              f"test {time.monotonic() - began:.1f} s")
        assert errors == []
        assert all(x["alarms"] == [] for x in (await python()).values())
        for d in pages:
            alarms = await d.page.evaluate("window.summitlineSession.alarms")
            assert alarms == [], alarms
    finally:
        for child in children:
            await child.leave()




@pytest.mark.timeout(300)
async def test_an_interpreter_works_through_the_sfu(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        tmp_path: Path) -> None:
    """A German interpreter's console (into English) and the American principal in
    Chromium, the French and German principals in Python, through Janus: the console
    hears every principal's floor and sees no picture (the plan grants interpreters none,
    so the SFU forwards none); once on air, the American principal hears it, at full
    level over its ducked original, as on the mesh."""
    b = await provision_briefing(http, 3)
    ops = [side.operator for side in b.sides]
    errors: list[str] = []
    PAGES.clear()
    CONSOLE.clear()
    us = await enrol_browser(browser, server, ops[0], b.sides[0].principal_name, errors=errors)
    booth = await enrol_browser(browser, server, ops[2], "German interpreter",
                                Role.INTERPRETER, errors=errors)
    for d, name in ((us, "United States"), (booth, "German interpreter")):
        await watched(d, name)
    people = [participant(us.key, ops[0].key, Role.PRINCIPAL, b.sides[0].principal_name, "en"),
              *(participant(side.principal, side.operator.key, Role.PRINCIPAL,
                            side.principal_name, lang)
                for side, lang in zip(b.sides[1:], ("fr", "de"), strict=True)),
              participant(booth.key, ops[2].key, Role.INTERPRETER, "German interpreter", "en")]
    plan = CallPlan(call=f"{b.call}-booth", link=None, title="Briefing of allies",
                    host=ops[0].id, links=tuple(b.links),
                    delegations=tuple(ops[0].delegation(op.id) for op in ops),
                    participants=tuple(people), sfu_above=0)
    await ops[0].submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    await ops[0].control(plan.call, "start")
    principals = [us.device, *(side.principal.fingerprint for side in b.sides[1:])]
    python = await PythonPrincipals.start(ws_url, plan.call, b.sides[1:], principals,
                                          tmp_path / "python.log", ice="janus")
    try:
        for d in (us, booth):
            await join_in_browser(d, server, plan.call)
        await feeds_decode(us.page, principals[1:])
        # the console hears the floor of every principal, and gets no picture
        await feeds_decode(booth.page, principals, video=False)
        await expect(booth.page.locator("#no-video")).to_be_visible()

        onair = booth.page.locator("#onair")
        await expect(onair).to_have_text("Go on air")
        await onair.click()
        await expect(booth.page.locator("#indicator")).to_have_text("ON AIR")
        await expect(us.page.locator("#channel")).to_have_value("en")
        await us.page.wait_for_function(
            "(i) => window.summitlineListening?.playing === i && "
            "window.summitlineListening.gainOf(i) === 1", arg=booth.device, polling=100)
        await us.page.evaluate("window.__feeds = null")
        await feeds_decode(us.page, [booth.device], video=False)
        ducked = await us.page.evaluate("(f) => window.summitlineListening.gainOf(f)",
                                        principals[2])
        assert ducked == pytest.approx(0.3)  # the German original, under its interpretation
        await booth.page.screenshot(path=str(SHOTS / "sfu-interpreter-en.png"))
        status = await asyncio.wait_for(python.status("media 10"), MEDIA_WAIT_MS / 1000)
        assert all(x["alarms"] == [] for x in status.values())
        for d in (us, booth):
            assert await d.page.evaluate("window.summitlineSession.alarms") == []
        assert errors == []
    finally:
        await python.leave()


# Frames the page's worker refused and opened, as of the last reading (see DECODES).
REFUSED = """(n) => {
  const s = window.summitlineSession;
  if (!s) return false;
  s.frameCounts().then((c) => { window.__counts = c; });
  return !!window.__counts && window.__counts.refused > n;
}"""


@pytest.mark.timeout(300)
async def test_a_server_that_misnames_the_feeds_gets_nothing_decoded(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient,
        tmp_path: Path) -> None:
    """The server (between the page and the real one) swaps the senders of the page's two
    feeds: each frame then opens under nobody's key but its true sender's, so the page
    decodes nothing of either and shows no picture under a wrong name, while the Python
    principals, told the truth, decode each other and the page."""
    from tests.browser.test_hostile_server import Route
    b = await provision_briefing(http, 3)
    ops = [side.operator for side in b.sides]
    errors: list[str] = []
    PAGES.clear()
    CONSOLE.clear()
    us = await watched(await enrol_browser(browser, server, ops[0], b.sides[0].principal_name,
                                           errors=errors), "us")
    people = [participant(us.key, ops[0].key, Role.PRINCIPAL, b.sides[0].principal_name, "en"),
              *(participant(side.principal, side.operator.key, Role.PRINCIPAL,
                            side.principal_name, lang)
                for side, lang in zip(b.sides[1:], ("fr", "de"), strict=True))]
    plan = CallPlan(call=f"{b.call}-misnamed", link=None, title="Briefing of allies",
                    host=ops[0].id, links=tuple(b.links),
                    delegations=tuple(ops[0].delegation(op.id) for op in ops),
                    participants=tuple(people), sfu_above=0)
    await ops[0].submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    await ops[0].control(plan.call, "start")
    fr, de = (side.principal.fingerprint for side in b.sides[1:])
    swapped: list[str] = []

    def misname(msg: dict[str, Any]) -> dict[str, Any]:
        if msg.get("type") == "sfu-feed" and msg.get("from") in (fr, de):
            msg["from"] = de if msg["from"] == fr else fr
            swapped.append(msg["feed"])
        return msg
    await us.page.route_web_socket("**/ws", Route(misname))
    python = await PythonPrincipals.start(ws_url, plan.call, b.sides[1:], [us.device, fr, de],
                                          tmp_path / "python.log", ice="janus")
    try:
        await join_in_browser(us, server, plan.call)
        status = await asyncio.wait_for(python.status("media 10"), MEDIA_WAIT_MS / 1000)
        assert all(x["alarms"] == [] for x in status.values())
        # seconds of both feeds' frames, every one refused: nothing opens
        await us.page.wait_for_function(REFUSED, arg=500, polling=250, timeout=MEDIA_WAIT_MS)
        assert len(swapped) >= 2
        seen: dict[str, Any] = await us.page.evaluate(FEEDS)
        assert seen["frames"]["opened"] == 0, seen
        assert all(f["video"] == 0 and f["samples"] == 0 for f in seen["feeds"].values()), seen
        for remote in (fr, de):
            tile = us.page.locator(f'#grid .tile[data-remote="{remote}"]')
            await expect(tile).to_have_attribute("data-state", "connecting")
            assert await tile.locator("video").evaluate("(v) => v.srcObject") is None
        assert errors == []
    finally:
        await python.leave()


@pytest.mark.timeout(300)
async def test_the_browser_cuts_off_a_revoked_device_on_the_sfu_route(
        browser: Browser, server: str, http: httpx.AsyncClient, ws_url: str) -> None:
    """France revokes its principal's device during a briefing through the SFU. The server
    between the page and the real one keeps quiet about the feed's end (it drops every
    `sfu-gone`): the page closes the revoked device's feed itself within the bounded time,
    says so on screen, and keeps the German principal's."""
    from tests.browser.test_hostile_server import Route
    from tests.client.test_certificates import enrol_and_certify
    from tests.client.test_revocation import REVOKED_WITHIN_S, Stubborn
    b = await provision_briefing(http, 3)
    ops = [side.operator for side in b.sides]
    errors: list[str] = []
    PAGES.clear()
    CONSOLE.clear()
    web = await watched(await enrol_browser(browser, server, ops[0], b.sides[0].principal_name,
                                            errors=errors), "us")
    fr_key = await enrol_and_certify(ops[1], http, "President of the French Republic",
                                     Role.PRINCIPAL)
    rows = {d["device"]: d for d in await ops[1].devices(ops[1].id)}
    people = [participant(web.key, ops[0].key, Role.PRINCIPAL, b.sides[0].principal_name, "en"),
              ops[1].participant(rows[fr_key.fingerprint], "fr"),
              participant(b.sides[2].principal, ops[2].key, Role.PRINCIPAL,
                          b.sides[2].principal_name, "de")]
    plan = CallPlan(call=f"{b.call}-revoked", link=None, title="Briefing of allies",
                    host=ops[0].id, links=tuple(b.links),
                    delegations=tuple(ops[0].delegation(op.id) for op in ops),
                    participants=tuple(people), sfu_above=0)
    await ops[0].submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    await ops[0].control(plan.call, "start")
    fr, de = fr_key.fingerprint, b.sides[2].principal.fingerprint
    await web.page.route_web_socket("**/ws", Route(
        lambda msg: None if msg.get("type") == "sfu-gone" else msg))
    sessions = [Stubborn(ws_url, plan.call, Identity(fr_key, dict(ops[1].pinned)),
                         ice=viewer_ice(), reconnect=False,
                         source=MediaSource.synthetic(160, 120, 10)),
                CallSession(ws_url, plan.call, b.sides[2].identity(), ice=viewer_ice(),
                            source=MediaSource.synthetic(160, 120, 10))]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await join_in_browser(web, server, plan.call)
        await feeds_decode(web.page, [fr, de])
        revoked_at = time.monotonic()
        assert (await ops[1].revoke(fr))["told"] >= 1
        await web.page.wait_for_function(
            "(r) => !window.summitlineSession.sfu.links.has(r)", arg=fr,
            timeout=REVOKED_WITHIN_S * 1000, polling=50)
        assert time.monotonic() - revoked_at < REVOKED_WITHIN_S
        await expect(web.page.locator("#revoked-notice")).to_contain_text(
            "revoked President of the French Republic")
        # the briefing goes on with Germany: its feed decodes on
        before = (await web.page.evaluate(FEEDS))["feeds"][de]["video"]
        await web.page.wait_for_function(
            """([r, n]) => { const s = window.summitlineSession;
                             s.sfu.links.get(r)?.pc.getStats().then((st) => st.forEach((x) => {
                               if (x.type === "inbound-rtp" && x.kind === "video") {
                                 window.__video = x.framesDecoded; } }));
                             return window.__video > n; }""",
            arg=[de, before + 20], polling=250, timeout=MEDIA_WAIT_MS)
        assert errors == []
    finally:
        await leave_all(sessions, tasks)

# -- what a tap on Janus gets of a Chromium principal ---------------------------------------
@pytest.fixture
async def through_web(tmp_path: Path) -> AsyncIterator[Through]:
    """Janus and the server in this event loop (its SFU broker at hand, for the tap), the
    web client served too."""
    async with janus(tmp_path / "janus") as j:
        settings = Settings(data_dir=tmp_path / "server", janus_url=j.url,
                            janus_api_secret=j.api_secret, janus_admin_key=j.admin_key,
                            serve_client=True)
        cfg = config(settings, "127.0.0.1", 0, "warning")
        assert isinstance(cfg.app, OpenWebSockets)
        app = cfg.app.app
        async with serving(cfg) as base, httpx.AsyncClient(base_url=base) as http:
            yield Through(j, base, base.replace("http", "ws", 1) + "/ws", http,
                          app.state.hub)  # type: ignore[attr-defined]


def green(picture: av.VideoFrame) -> bool:
    """Whether a decoded picture is Chromium's fake camera's: a green field (with a clock
    and a turning sector in brighter green)."""
    rgb = picture.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    return bool(rgb[1] > 60 and rgb[1] > 1.5 * rgb[0] and rgb[1] > 1.5 * rgb[2])


def green_pictures(frames: list[bytes]) -> int:
    """How many of the VP8 frames decode to the fake camera's picture, with one decoder for
    the whole stream, as a receiver has."""
    codec = av.CodecContext.create("vp8", "r")
    good = 0
    for data in frames:
        with contextlib.suppress(av.error.FFmpegError):
            good += sum(green(p) for p in codec.decode(av.Packet(data))
                        if isinstance(p, av.VideoFrame))
    return good


def opened_with(key: FrameKey, frames: list[bytes]) -> list[bytes]:
    opener = FrameOpener()
    opener.add(key)
    out = []
    for data in frames:
        with contextlib.suppress(FrameError):
            out.append(opener.open(data))
    return out


async def test_a_tap_on_janus_gets_nothing_of_a_chromium_principal_in_the_clear(
        through_web: Through, browser: Browser) -> None:
    """Janus's own RTP forwarder of a Chromium principal's publisher (what Janus's operator,
    or whoever took it over, can turn on): every frame it copies is sealed under the page's
    media key (it opens with that key, and only with it), the pictures do not decode
    without it, and with it they are the page's camera; the Python receivers decode the
    page all along (tests/client/test_sfu_janus.py does the same for a Python sender)."""
    t = through_web
    errors: list[str] = []
    b = await provision_briefing(t.http, 3)
    ops = [side.operator for side in b.sides]
    page = await enrol_browser(browser, t.base, ops[0], b.sides[0].principal_name,
                               errors=errors)
    await page.page.context.add_init_script(SMALL_CAMERA)
    people = [participant(page.key, ops[0].key, Role.PRINCIPAL, b.sides[0].principal_name,
                          "en")]
    people += [participant(side.principal, side.operator.key, Role.PRINCIPAL,
                           side.principal_name, "en") for side in b.sides[1:]]
    plan = CallPlan(call=f"{b.call}-tap", link=None, title="Briefing of allies",
                    host=ops[0].id, links=tuple(b.links),
                    delegations=tuple(ops[0].delegation(op.id) for op in ops),
                    participants=tuple(people), sfu_above=0)
    await ops[0].submit_plan(plan)
    for guest in ops[1:]:
        await guest.cosign_plan(plan)
    sessions = [CallSession(t.ws, plan.call, side.identity(), ice=viewer_ice(),
                            source=MediaSource.synthetic(160, 120, 10)) for side in b.sides[1:]]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await ops[0].control(plan.call, "start")
        await join_in_browser(page, t.base, plan.call)
        devices = [page.device, *(s.device for s in sessions)]
        await feeds_decode(page.page, devices[1:])
        async with tapped(t, plan.call, page.device) as tap:
            # Chromium sends a key frame only when asked, or when its picture changes size:
            # half the size, so that the tap holds a stream from a key frame on
            await page.page.evaluate("""async () => {
                const pc = window.summitlineSession.sfu.publisher.pc;
                const sender = pc.getSenders().find((x) => x.track?.kind === "video");
                const params = sender.getParameters();
                params.encodings[0].scaleResolutionDownBy = 2;
                await sender.setParameters(params); }""")
            try:
                await collect(tap, sessions, devices, page.device)
            except TimeoutError:
                pytest.fail(f"tapped {len(tap.audio)} audio, {len(tap.video)} video frames "
                            f"({len(from_key(tap.video))} from a key frame); Python decoded "
                            + str([{k: s.frames_from(page.device, k) for k in MediaKind}
                                   for s in sessions]))
        own = await page.page.evaluate("""() => Object.fromEntries(
            Object.entries(window.summitlineSession.e2ee.own).map(([kind, k]) =>
              [kind, [k.keyId, Array.from(k.key), Array.from(k.salt)]]))""")
        keys = {kind: FrameKey(k[0], bytes(k[1]), bytes(k[2])) for kind, k in own.items()}
        video, audio = from_key(tap.video), list(tap.audio)
        assert len(video) >= 30 and len(audio) >= 100
        # every frame Janus forwards is sealed under the page's key of its kind: AES-GCM
        # authenticates it (the clear header aside, ciphertext), and it is 30 bytes longer
        # than the frame
        for kind, frames in (("video", video), ("audio", audio)):
            plain = opened_with(keys[kind], frames)
            assert len(plain) == len(frames)
            assert all(len(s) == len(p) + 30 for s, p in zip(frames, plain, strict=True))
            # and only under it: another key of the same id, or the other kind's, opens none
            other = FrameKey(keys[kind].key_id, bytes(16), bytes(12))
            assert opened_with(other, frames) == []
            assert opened_with(keys["audio" if kind == "video" else "video"], frames) == []
        # what Janus holds does not decode to the page's picture; opened, it does
        assert green_pictures(video) == 0
        assert green_pictures(opened_with(keys["video"], video)) >= len(video) - 2
        assert all(s.alarms == [] for s in sessions)
        assert errors == []
    finally:
        await leave_all(sessions, tasks)

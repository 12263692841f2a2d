"""Browser tests: Playwright driving Debian's Chromium, inside the test network namespace.

Chromium runs headless with a fake camera and microphone, and may make peer
connections over loopback (--allow-loopback-in-peer-connection). Each test gets a
fresh browser; each person in a test gets a fresh context (its own IndexedDB).
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.browser.people import TIMEOUT_MS

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ARGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--no-sandbox", "--disable-gpu",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]

# An assertion on the page waits as long as any other step of a browser test. Playwright's
# 5 s is too short on a loaded 2-core machine: there, a mere page.evaluate("1") took up
# to 13 s, and a click's round trip through the server over a second.
expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test's server starts before its browser, so that the browser closes before the
    server stops: a page left open (live updates, a route handler) would otherwise fetch
    from a server already gone and fail the teardown (CI, stop 19:
    test_the_console_revokes_a_device). Fixtures are set up in this order and torn down
    in reverse."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and "server" in names and "browser" in names and \
                names.index("server") > names.index("browser"):
            names.remove("server")
            names.insert(names.index("browser"), "server")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - one stat before a browser starts
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS

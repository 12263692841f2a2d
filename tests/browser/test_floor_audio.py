"""The floor as an interpreter hears it when a browser sends it: Chromium's microphone is
the sound check (client/soundcheck.py, as a WAV file Chromium's fake microphone plays),
captured with the plan's studio sound (no echo cancellation, noise suppression or
automatic gain), and a Python interpreter hears every tone from 125 Hz to 15 kHz within
3 dB of the one at 1 kHz, Opus at 64 kb/s (web/floor.js)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from summitline.client import opus, soundcheck
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import participant
from summitline.client.session import CallSession, Identity
from summitline.core.plan import AUDIO_STUDIO
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests.browser.conftest import ARGS, CHROMIUM
from tests.browser.people import (
    cosigned_plan,
    enrol_browser,
    join_in_browser,
    linked_operators,
    principal,
)
from tests.client.test_session import WAIT_S

HEARD_S = 1.0  # the stretch whose spectrum is read
SETTLE_S = 2.0  # heard before it: the microphone and the encoder settle
LOOP_S = 2.0  # the WAV file's length; Chromium loops it


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Chromium whose fake microphone plays the sound check (this module's own browser)."""
    wav = tmp_path / "soundcheck.wav"
    wav.write_bytes(soundcheck.wav(LOOP_S))
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[
            *ARGS, f"--use-file-for-fake-audio-capture={wav}"])
        yield b
        await b.close()


SENT_AUDIO = """() => {
  const s = window.summitlineSession;
  return Promise.all([...s.links.values()].map((l) => l.pc.getStats())).then((rs) => {
    const out = [];
    for (const r of rs) r.forEach((x) => {
      if (x.type === "outbound-rtp" && x.kind === "audio") {
        out.push({ bytes: x.bytesSent, packets: x.packetsSent,
                   fmtp: r.get(x.codecId)?.sdpFmtpLine || "" });
      }
    });
    return out;
  });
}"""


PLAYOUT = """() => [...window.summitlineSession.links.values()].flatMap((l) =>
  l.pc.getReceivers().filter((r) => r.track.kind === "audio").map((r) => r.jitterBufferTarget))"""


async def test_a_browser_principal_in_studio_sound_reaches_the_interpreter_level(
        browser: Browser, server: str, ws_url: str, http: httpx.AsyncClient) -> None:
    us, ru, link = await linked_operators(http)
    errors: list[str] = []
    us_p = await enrol_browser(browser, server, us, "President of the United States",
                               errors=errors)
    interpreter = PrivateKey.generate()
    plan = await cosigned_plan(us, ru, link, [
        principal(us, us_p.key, "President of the United States", "en"),
        principal(ru, PrivateKey.generate(), "President of the Russian Federation", "ru"),
        participant(interpreter, ru.key, Role.INTERPRETER, "RU interpreter", "ru")],
        audio=AUDIO_STUDIO)
    await us.control(plan.call, "start")
    await join_in_browser(us_p, server, plan.call)
    heard = soundcheck.Recorder(HEARD_S)

    def hear(remote: str, frame: Any, arrived: float) -> None:
        if remote == us_p.device:
            heard.feed(frame)

    bot = CallSession(ws_url, plan.call, Identity(interpreter, dict(ru.pinned)),
                      ice=loopback(), source=MediaSource.interpreter())
    bot.audio_listeners.append(hear)
    task = asyncio.create_task(bot.run())
    await asyncio.wait_for(bot.wait_for(
        lambda: heard.samples >= (HEARD_S + SETTLE_S) * soundcheck.RATE), 2 * WAIT_S)

    # the microphone runs without voice processing, as the plan says
    settings = await us_p.page.evaluate("() => window.summitlineSession.studio")
    assert (settings["echoCancellation"], settings["noiseSuppression"],
            settings["autoGainControl"]) == (False, False, False)
    levels = soundcheck.levels_db(heard.pcm())
    assert soundcheck.worst_deviation_db(levels) <= 3.0, levels
    # at the level sent: no gain control rode it, no noise suppression took it for noise
    # (with the browser's voice processing on, the 1 kHz tone came 19 dB lower)
    assert levels[0] == pytest.approx(soundcheck.TONE_DBFS, abs=2.0), levels
    # and it goes as 64 kb/s mono Opus
    (sent,) = await us_p.page.evaluate(SENT_AUDIO)
    assert "maxaveragebitrate=64000" in sent["fmtp"] and "stereo=0" in sent["fmtp"]
    assert sent["bytes"] * 8 / (sent["packets"] * 0.02) >= 0.8 * opus.BITRATE
    # the interpreter's channel plays with the shortest wait (a Chromium with the control)
    assert await us_p.page.evaluate(PLAYOUT) == [0]

    await us.control(plan.call, "end")
    await asyncio.wait_for(task, WAIT_S)
    await bot.leave()
    assert errors == []

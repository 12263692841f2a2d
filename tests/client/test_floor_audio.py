"""The floor as an interpreter hears it, Python endpoints at both ends: full band
(125 Hz to 15 kHz within 3 dB of the level at 1 kHz) and mono Opus at 64 kb/s.
client/soundcheck.py is the signal and its reading; tests/browser/test_floor_audio.py
checks the same with a browser sending."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from summitline.client import opus, soundcheck
from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.media import MediaSource, PatternVideoTrack
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind, Role
from summitline.crypto.keys import PrivateKey
from tests.client.test_session import WAIT_S

HEARD_S = 1.0  # the stretch whose spectrum is read
SETTLE_S = 1.0  # heard before it, while the link settles


def test_the_floor_encoder_codes_full_band_mono_celt() -> None:
    encoder, decoder = opus.FloorOpusEncoder(), OpusDecoder()
    track = soundcheck.SoundCheckTrack()
    kinds, sizes, heard = set(), [], []
    for n in range(100):  # two seconds, without the clock of a real track
        frame = track.frame_at(n)
        for packet in encoder.encode(frame)[0]:
            kinds.add(opus.toc(packet))
            sizes.append(len(packet))
            heard += [soundcheck.mono(f) for f in decoder.decode(JitterFrame(packet, 0))]
    assert kinds == {("CELT", "FB", False)}
    assert np.mean(sizes) * 8 / 0.02 == pytest.approx(opus.BITRATE, rel=0.15)
    levels = soundcheck.levels_db(np.concatenate(heard)[-48_000:])
    assert soundcheck.worst_deviation_db(levels) < 1.0, levels


async def test_an_interpreter_hears_the_floor_level_from_125_hz_to_15_khz(
        ws_url: str, http: httpx.AsyncClient) -> None:
    key = PrivateKey.generate()
    call = await provision(http, extra=[(1, key, Role.INTERPRETER, "RU interpreter")])
    await call.a.operator.control(call.call, "start")
    floor = call.a.principal.fingerprint
    principal = CallSession(ws_url, call.call, call.a.identity(), ice=loopback(),
                            source=MediaSource(soundcheck.SoundCheckTrack(),
                                               PatternVideoTrack()))
    interpreter = CallSession(ws_url, call.call, call.b.identity(key), ice=loopback(),
                              source=MediaSource.interpreter())
    heard = soundcheck.Recorder(HEARD_S)

    def hear(remote: str, frame: Any, arrived: float) -> None:
        if remote == floor:
            heard.feed(frame)

    interpreter.audio_listeners.append(hear)
    tasks = [asyncio.create_task(s.run()) for s in (principal, interpreter)]
    await asyncio.wait_for(interpreter.wait_for(
        lambda: heard.samples >= (HEARD_S + SETTLE_S) * soundcheck.RATE), WAIT_S)
    levels = soundcheck.levels_db(heard.pcm())
    assert soundcheck.worst_deviation_db(levels) <= 3.0, levels
    assert levels[0] == pytest.approx(soundcheck.TONE_DBFS, abs=1.0)  # at the level sent

    link = principal.link(key.fingerprint)
    assert link is not None
    sender = next(s for s in link.pc.getSenders() if s.kind == str(MediaKind.AUDIO))
    sent = next(s for s in (await sender.getStats()).values() if s.type == "outbound-rtp")
    assert sent.bytesSent * 8 / (sent.packetsSent * 0.02) == pytest.approx(opus.BITRATE,
                                                                           rel=0.2)
    await call.a.operator.control(call.call, "end")
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    for s in (principal, interpreter):
        await s.leave()

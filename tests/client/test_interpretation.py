"""Interpretation with Python endpoints: two principals and two booth partners into
Russian, on real peer connections. The interpreters parrot the English floor, so what
the Russian principal hears on the channel is real audio; nothing is heard from a
booth until an interpreter goes live, and after a handover only the partner is heard."""

from __future__ import annotations

import asyncio

import httpx

from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.reads import signed_get
from summitline.client.session import HANDOVER_TAIL_S, CallSession
from summitline.core.roles import MediaKind, Role
from summitline.crypto.keys import PrivateKey
from tests.client.test_session import WAIT_S


async def until(session: CallSession, condition: object) -> None:
    await asyncio.wait_for(session.wait_for(condition), WAIT_S)  # type: ignore[arg-type]


async def test_booth_partners_interpret_and_hand_over(ws_url: str,
                                                      http: httpx.AsyncClient) -> None:
    k1, k2 = PrivateKey.generate(), PrivateKey.generate()
    call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter 1"),
                                        (1, k2, Role.INTERPRETER, "RU interpreter 2")])
    await call.a.operator.control(call.call, "start")
    a = CallSession(ws_url, call.call, call.a.identity(), ice=loopback())
    b = CallSession(ws_url, call.call, call.b.identity(), ice=loopback())
    i1, i2 = (CallSession(ws_url, call.call, call.b.identity(k), ice=loopback(),
                          source=MediaSource.interpreter(parrot=True)) for k in (k1, k2))
    everyone = [a, b, i1, i2]
    tasks = [asyncio.create_task(s.run()) for s in everyone]
    # everyone is connected to everyone the plan allows: 3 peers each
    for s in everyone:
        await until(s, lambda s=s: len(s.links) == 3 and all(
            link.frames[MediaKind.AUDIO] > 25 for link in s.links.values()))
    booth1, booth2 = b.link(k1.fingerprint), b.link(k2.fingerprint)
    assert booth1 and booth2
    assert booth1.loud == booth2.loud == 0  # nobody is live: the booth is silent
    assert b.link(call.a.principal.fingerprint).loud > 0  # the floor is heard

    mix = b.listen("ru")  # the Russian principal listens to the Russian channel
    assert mix is not None
    await i1.go_live()
    await until(b, lambda: booth1.loud > 25)  # interpreter 1 parrots the English floor
    assert booth2.loud == 0 and i1.live and not i2.live and mix.playing == k1.fingerprint

    # the cough key: while held, the channel is silent; released, the voice is back
    i1.cough(True)
    muted_at, frames_at = booth1.loud, booth1.frames[MediaKind.AUDIO]
    await until(b, lambda: booth1.frames[MediaKind.AUDIO] > frames_at + 100)  # 2 s of it
    assert booth1.loud - muted_at < 10  # at most what was on its way
    i1.cough(False)
    spoke_at = booth1.loud
    await until(b, lambda: booth1.loud > spoke_at + 25)

    await i1.handover(k2.fingerprint)
    await until(b, lambda: booth2.loud > 25 and mix.playing == k2.fingerprint)
    assert i2.live and not i1.live and b.booth["live"] == {"ru": k2.fingerprint}
    # the listener switched once, to the partner, and never played the two together
    who = [w for _, w, _ in mix.played]
    switch = who.index(k2.fingerprint)
    assert set(who[:switch]) == {k1.fingerprint} and set(who[switch:]) == {k2.fingerprint}
    # interpreter 1 speaks on for its tail (no gap for listeners), then falls silent
    await until(b, lambda: booth2.loud > 25 + 50 * HANDOVER_TAIL_S + 25)
    quiet_from, partner_from = booth1.loud, booth2.loud
    await until(b, lambda: booth2.loud > partner_from + 50)  # another second of the partner
    assert booth1.loud - quiet_from <= 3  # at most what was in flight
    # the interpreters are never seen, and see nothing
    for s in (i1, i2):
        assert all(link.frames[MediaKind.VIDEO] == 0 for link in s.links.values())
    assert booth1.tracks == ["audio"] and booth2.tracks == ["audio"]

    await call.a.operator.control(call.call, "end")
    await asyncio.gather(*tasks)
    for s in everyone:
        await s.leave()
    record = (await signed_get(http, call.a.operator.key,
                               f"/api/calls/{call.call}/record")).json()["entries"]
    booth = [(e["kind"], {k: e["data"].get(k) for k in ("from", "to", "channel", "seq")})
             for e in record if e["kind"].startswith("booth.")]
    # each with the signed action, for anyone to check (core/booth.py)
    assert booth == [("booth.live", {"from": k1.fingerprint, "to": None, "channel": "ru",
                                     "seq": 1}),
                     ("booth.handover", {"from": k1.fingerprint, "to": k2.fingerprint,
                                         "channel": "ru", "seq": 2})]


async def test_relay_an_interpreter_takes_another_channel_as_its_source(
        ws_url: str, http: httpx.AsyncClient) -> None:
    # Nobody interprets Russian into English directly from the floor here: the Russian
    # principal's microphone is silent, so the English interpreter can only voice what
    # it relays from the Russian channel (which parrots the English floor).
    k_ru, k_en = PrivateKey.generate(), PrivateKey.generate()
    call = await provision(http, extra=[(1, k_ru, Role.INTERPRETER, "RU interpreter"),
                                        (0, k_en, Role.INTERPRETER, "US interpreter")])
    en_channel = call.a.language  # the US interpreter speaks into English
    await call.a.operator.control(call.call, "start")
    a = CallSession(ws_url, call.call, call.a.identity(), ice=loopback())
    b = CallSession(ws_url, call.call, call.b.identity(), ice=loopback(),
                    source=MediaSource(None, MediaSource.synthetic().video_track))
    i_ru = CallSession(ws_url, call.call, call.b.identity(k_ru), ice=loopback(),
                       source=MediaSource.interpreter(parrot=True))
    i_en = CallSession(ws_url, call.call, call.a.identity(k_en), ice=loopback(),
                       source=MediaSource.interpreter(parrot=True))
    everyone = [a, b, i_ru, i_en]
    tasks = [asyncio.create_task(s.run()) for s in everyone]
    for s in everyone:
        await until(s, lambda s=s: len(s.links) == 3)
    await i_ru.go_live()
    await i_en.go_live()
    en_voice = a.link(k_en.fingerprint)
    assert en_voice is not None and i_en.channel == en_channel
    await until(a, lambda: en_voice.frames[MediaKind.AUDIO] > 75)  # live, from the floor:
    assert en_voice.loud == 0  # the silent Russian principal, so nothing to voice
    await i_en.set_source("ru")
    await until(a, lambda: en_voice.loud > 25)  # now it voices the Russian channel
    assert i_en.booth["sources"] == {k_en.fingerprint: "ru"}
    await call.a.operator.control(call.call, "end")
    await asyncio.gather(*tasks)
    for s in everyone:
        await s.leave()
    record = (await signed_get(http, call.a.operator.key,
                               f"/api/calls/{call.call}/record")).json()["entries"]
    assert {"device": k_en.fingerprint, "source": "ru", "channel": "en"} in [
        e["data"] for e in record if e["kind"] == "interpreter.source"]

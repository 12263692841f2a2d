"""The aide button and the aside, with Python endpoints: a principal pages its own aides,
one acknowledges, the principal holds its floor audio; the other delegation, its
interpreter and the press learn nothing but "on hold"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.press import PressViewer
from summitline.client.reads import signed_get
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind, Role
from summitline.crypto.keys import PrivateKey
from tests.client.test_session import leave_all

WAIT_S = 30.0
# link health (a stall, a kind switched off) may reach the other side; pages may not
ALLOWED_TO_OTHERS = {"challenge", "welcome", "phase", "peer-joined", "peer-left", "offer",
                     "answer", "candidate", "bye", "booth", "pong", "held", "press-answer",
                     "error", "link", "media"}


async def test_a_page_reaches_only_our_aides_and_an_aside_holds_the_floor(
        http: httpx.AsyncClient, ws_url: str) -> None:
    keys = {name: PrivateKey.generate() for name in ("us_aide", "ru_aide", "ru_interp")}
    call = await provision(http, press_window_s=600, extra=[
        (0, keys["us_aide"], Role.AIDE, "Chief of Staff"),
        (1, keys["ru_aide"], Role.AIDE, "Aide to the President"),
        (1, keys["ru_interp"], Role.INTERPRETER, "Interpreter")])
    us = CallSession(ws_url, call.call, call.a.identity(), ice=loopback())
    ru = CallSession(ws_url, call.call, call.b.identity(), ice=loopback())
    us_aide, ru_aide = (CallSession(ws_url, call.call, side.identity(keys[k]), ice=loopback(),
                                    source=MediaSource(None, None))
                        for side, k in ((call.a, "us_aide"), (call.b, "ru_aide")))
    ru_interp = CallSession(ws_url, call.call, call.b.identity(keys["ru_interp"]),
                            ice=loopback(), source=MediaSource.interpreter())
    everyone = [us, ru, us_aide, ru_aide, ru_interp]
    tasks = [asyncio.create_task(s.run()) for s in everyone]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in everyone)), WAIT_S)
    await call.a.operator.control(call.call, "start")
    ua, ra = call.a.principal.fingerprint, call.b.principal.fingerprint
    await asyncio.wait_for(ru.wait_for(lambda: ru.link(ua) is not None and
                                       ru.link(ua).loud > 10), WAIT_S)  # type: ignore[union-attr]
    token = (await call.b.operator.press_token(call.call))["token"]
    viewer = PressViewer(http, call.call, token, loopback())
    await viewer.watch()

    alerts: list[dict[str, Any]] = []
    us_aide.page_listeners.append(alerts.append)
    page = await us.page()
    await asyncio.wait_for(us_aide.wait_for(lambda: bool(us_aide.pages)), WAIT_S)
    assert alerts == us_aide.pages and alerts[0]["id"] == page and alerts[0]["by"] == ua
    # the other delegation's aide may not answer our principal's page
    await ru_aide.ack(page)
    await asyncio.wait_for(ru_aide.wait_for(lambda: bool(ru_aide.errors)), WAIT_S)
    assert ru_aide.errors[0]["code"] == "not-permitted" and not us.acks[page]
    await us_aide.ack(page)
    await asyncio.wait_for(us.wait_for(lambda: bool(us.acks[page])), WAIT_S)
    assert us.acks[page] == [us_aide.device] and us_aide.pages[0]["acked"]

    # the aside: our floor audio falls silent to everyone; the other side sees "on hold"
    link = ru.link(ua)
    assert link is not None
    await us.hold(True)
    await asyncio.wait_for(ru.wait_for(lambda: ua in ru.held), WAIT_S)
    heard = link.frames[MediaKind.AUDIO]
    await asyncio.wait_for(ru.wait_for(lambda: link.frames[MediaKind.AUDIO] > heard + 25),
                           WAIT_S)  # what was on the way when the hold began has arrived
    loud, heard = link.loud, link.frames[MediaKind.AUDIO]
    await asyncio.wait_for(ru.wait_for(lambda: link.frames[MediaKind.AUDIO] > heard + 50),
                           WAIT_S)
    assert link.loud == loud  # a second of silence from the held principal
    await us.hold(False)
    await asyncio.wait_for(ru.wait_for(lambda: ua not in ru.held and link.loud > loud + 10),
                           WAIT_S)

    # nothing of the page reached the other delegation, its interpreter or the press
    for other in (ru, ru_aide, ru_interp):
        types = {msg["type"] for msg in other.inbox}
        assert types <= ALLOWED_TO_OTHERS, types
        assert page not in json.dumps(other.inbox)
        assert not other.pages and not other.alarms
    assert ru_aide.links == {} and not ru_aide.frames(MediaKind.VIDEO)
    assert {k for lk in ru_interp.links.values() for k in lk.tracks} == {"audio"}
    assert viewer.frames[MediaKind.VIDEO] > 0  # the press saw the programme, only that

    # the pages and the aside are in our delegation's private record, and nowhere else
    ours = await call.a.operator.private_record(call.call)
    assert [e["kind"] for e in ours] == ["aide.paged", "aide.acked", "aside.started",
                                         "aside.ended"]
    assert ours[0]["data"]["page"] == page and ours[1]["data"]["by"] == us_aide.device
    assert await call.b.operator.private_record(call.call) == []
    shared = (await signed_get(http, call.a.operator.key,
                               f"/api/calls/{call.call}/record")).json()
    assert page not in json.dumps(shared)
    assert not [e for e in shared["entries"] if e["kind"].startswith(("aide", "aside"))]
    assert ra not in {e["data"].get("by") for e in ours}

    await leave_all(everyone, tasks, [viewer])


async def test_only_principals_page_and_only_signed_pages_count(
        http: httpx.AsyncClient, ws_url: str) -> None:
    aide_key = PrivateKey.generate()
    call = await provision(http, extra=[(0, aide_key, Role.AIDE, "Chief of Staff")])
    us = CallSession(ws_url, call.call, call.a.identity(), ice=loopback())
    aide = CallSession(ws_url, call.call, call.a.identity(aide_key), ice=loopback(),
                       source=MediaSource(None, None))
    tasks = [asyncio.create_task(s.run()) for s in (us, aide)]
    await asyncio.wait_for(asyncio.gather(us.joined.wait(), aide.joined.wait()), WAIT_S)
    await aide.page()  # an aide cannot page
    await us._send({"type": "page", "id": "A" * 22, "at": 1, "signature": "A" * 86})
    await asyncio.wait_for(asyncio.gather(
        aide.wait_for(lambda: bool(aide.errors)), us.wait_for(lambda: bool(us.errors))), WAIT_S)
    assert aide.errors[0]["code"] == "not-permitted"
    assert us.errors[0]["code"] == "bad-signature"
    assert not aide.pages
    # no aide connected: the page waits and reaches the first aide to connect
    await aide.leave()
    page = await us.page()
    await asyncio.wait_for(us.wait_for(lambda: len(us.errors) > 1), WAIT_S)
    assert us.errors[1]["code"] == "no-aide"
    late = CallSession(ws_url, call.call, call.a.identity(aide_key), ice=loopback(),
                       source=MediaSource(None, None))
    tasks.append(asyncio.create_task(late.run()))
    await asyncio.wait_for(late.wait_for(lambda: bool(late.pages)), WAIT_S)
    assert late.pages[0]["id"] == page
    await leave_all((us, late), tasks)

"""The press through a real Janus (Debian's ``janus``, configured by deploy/janus/): the
viewers get the programme from Janus's Streaming plugin during the window and nothing
after the deadline; a bad token is refused before Janus; the mountpoint is gone after
the window; the Python server carries no viewer media."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from summitline.client.ice import LOOPBACK, loopback
from summitline.client.press import PressRefused, PressViewer
from summitline.core.roles import MediaKind, Phase
from summitline.server.app import Settings
from summitline.server.press.gateway import PressGateway
from summitline.server.press.janus import JanusPress
from summitline.server.run import OpenWebSockets, config, running, serving
from tests.client.test_press import CUT_SLACK_MS, DARK, WAIT_S, joined_window, luma, started_window
from tests.client.test_session import leave_all
from tests.janus import Janus, janus, viewer_ice

WINDOW_S = 20  # room for two viewers to start on a loaded machine


@dataclass
class Through:
    janus: Janus
    base: str
    http: httpx.AsyncClient
    api: JanusPress  # a client of Janus's API of the test's own, to ask what Janus holds
    press: PressGateway  # the server's


@pytest.fixture
async def through(tmp_path: Path) -> AsyncIterator[Through]:
    async with janus(tmp_path / "janus") as j:
        settings = Settings(data_dir=tmp_path / "server", press_hosts=LOOPBACK,
                            janus_url=j.url, janus_api_secret=j.api_secret,
                            janus_admin_key=j.admin_key)
        api = JanusPress(j.url, j.api_secret, j.admin_key)
        cfg = config(settings, "127.0.0.1", 0, "warning")
        assert isinstance(cfg.app, OpenWebSockets)
        app = cfg.app.app
        async with serving(cfg) as base, httpx.AsyncClient(base_url=base) as http:
            yield Through(j, base, http, api, app.state.hub.press)  # type: ignore[attr-defined]
        await api.aclose()


async def test_the_press_watch_through_janus_until_the_deadline_and_no_longer(
        through: Through) -> None:
    http, ws = through.http, through.base.replace("http", "ws", 1) + "/ws"
    call, a, b, tasks = await joined_window(http, ws, WINDOW_S)
    assert await through.api.mountpoints() == []
    await call.a.operator.control(call.call, "start")
    await asyncio.wait_for(asyncio.gather(a.press_answered.wait(), b.press_answered.wait()),
                           WAIT_S)
    token = (await call.b.operator.press_token(call.call))["token"]
    assert a.press_deadline_ms is not None
    deadline = a.press_deadline_ms

    # a bad token is refused by summitline, before Janus: no viewer handle is made
    for bad in ("not-a-token", token[:-1] + ("A" if token[-1] != "A" else "B")):
        with pytest.raises(PressRefused) as refused:
            await PressViewer(http, call.call, bad, loopback()).watch()
        assert refused.value.status == 401

    pictures: list[tuple[int, float]] = []
    viewers = [PressViewer(http, call.call, token, viewer_ice(),
                           on_video=lambda f, at: pictures.append((at, luma(f))))
               for _ in range(2)]
    for viewer in viewers:
        await viewer.watch()
        assert viewer.resource is not None  # brokered to Janus: it answered Janus's offer
    try:
        await asyncio.wait_for(asyncio.gather(*(v.wait_for(
            lambda v=v: all(v.frames[k] > 5 for k in MediaKind)) for v in viewers)), WAIT_S)
    except TimeoutError:
        pytest.fail(f"frames {[v.frames for v in viewers]}, connections "
                    f"{[v.pc.connectionState if v.pc else None for v in viewers]}, window "
                    f"{through.press.state(call.call)}, {deadline - time.time() * 1000:.0f} ms "
                    "before the deadline")
    assert max(lum for _, lum in pictures) > DARK  # the principals are in the picture

    press = through.press
    feed = press.feeds[call.call]
    assert feed.viewers == {}  # no peer connection of a viewer in the Python server
    assert press.viewers(call.call) == 2  # the two Janus viewers, and not the bad ones
    assert len(feed.forwarders) == 1 and feed.forwarders[0].sent > 0
    mountpoint = feed.forwarders[0].mountpoint.id
    assert await through.api.mountpoints() == [mountpoint]

    # the deadline: the principals cut, the doors shut, the mountpoint goes, and with it
    # the viewers' media
    await asyncio.wait_for(asyncio.gather(
        a.wait_for(lambda: a.phase is Phase.CLOSED), b.wait_for(lambda: b.phase is Phase.CLOSED)),
        WAIT_S)
    for s in (a, b):  # (how soon after the deadline: tests/client/test_press.py)
        assert s.press_cut_ms is not None and s.press_cut_ms >= deadline
    await asyncio.wait_for(asyncio.gather(*(r for v in viewers for r in v._readers)), WAIT_S)
    last = max(max(v.last_ms.values()) for v in viewers)
    assert last - deadline < 4 * CUT_SLACK_MS
    assert await through.api.mountpoints() == []
    counts = [dict(v.frames) for v in viewers]
    # no way back in after the deadline
    with pytest.raises(PressRefused, match="closed doors") as refused:
        await PressViewer(http, call.call, token, loopback()).watch()
    assert refused.value.status == 409
    assert [dict(v.frames) for v in viewers] == counts
    assert a.alarms == b.alarms == []
    await leave_all((a, b), tasks, viewers)



async def test_without_janus_the_press_get_503_and_the_call_goes_on(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: Janus is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "server", press_hosts=LOOPBACK,
                        janus_url=f"http://127.0.0.1:{port}/janus")
    async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
        ws = base.replace("http", "ws", 1) + "/ws"
        call, a, b, tasks = await started_window(http, ws, 60)
        await asyncio.wait_for(asyncio.gather(a.press_answered.wait(), b.press_answered.wait()),
                               WAIT_S)
        token = (await call.a.operator.press_token(call.call))["token"]
        with pytest.raises(PressRefused, match="relay is not available") as refused:
            await PressViewer(http, call.call, token, loopback()).watch()
        assert refused.value.status == 503
        # the principals' call and their press feeds go on
        n = a.frames(MediaKind.VIDEO)
        await asyncio.wait_for(a.wait_for(lambda: a.frames(MediaKind.VIDEO) > n + 10), WAIT_S)
        assert a.press is not None and a.alarms == b.alarms == []
        await leave_all((a, b), tasks)

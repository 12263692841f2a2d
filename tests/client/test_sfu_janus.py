"""Briefings through a real Janus VideoRoom (Debian's ``janus``, configured by
deploy/janus/), every frame encrypted end to end (docs/protocol.md 5.12): the Python
principals each decode every other's audio and video from Janus's feeds, with no link
between endpoints; what Janus forwards does not decode without the keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from summitline.client.briefing import Briefing, provision_briefing
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind
from summitline.server.app import Settings
from summitline.server.hub import Hub
from summitline.server.run import OpenWebSockets, config, serving
from summitline.server.sfu import SfuBroker
from tests.client.test_session import WAIT_S, leave_all
from tests.janus import Janus, janus, viewer_ice

FRAMES = 10  # of each kind from each other principal


@dataclass
class Through:
    janus: Janus
    base: str
    ws: str
    http: httpx.AsyncClient
    hub: Hub  # the server's

    @property
    def sfu(self) -> SfuBroker:
        assert self.hub.sfu is not None
        return self.hub.sfu


@pytest.fixture
async def through(tmp_path: Path) -> AsyncIterator[Through]:
    async with janus(tmp_path / "janus") as j:
        settings = Settings(data_dir=tmp_path / "server", janus_url=j.url,
                            janus_api_secret=j.api_secret, janus_admin_key=j.admin_key)
        cfg = config(settings, "127.0.0.1", 0, "warning")
        assert isinstance(cfg.app, OpenWebSockets)
        app = cfg.app.app
        async with serving(cfg) as base, httpx.AsyncClient(base_url=base) as http:
            yield Through(j, base, base.replace("http", "ws", 1) + "/ws", http,
                          app.state.hub)  # type: ignore[attr-defined]


async def briefing(t: Through, size: int = 3) -> tuple[Briefing, list[CallSession],
                                                       list[asyncio.Task[None]]]:
    """A briefing of ``size`` Python principals whose plan asks for the SFU, joined."""
    b = await provision_briefing(t.http, size, sfu_above=0)
    sessions = [CallSession(t.ws, b.call, side.identity(), ice=viewer_ice())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
    return b, sessions, tasks


def from_everyone(s: CallSession, devices: list[str], n: int = FRAMES) -> bool:
    return all(s.frames_from(d, k) > n for d in devices if d != s.device for k in MediaKind)


async def everyone_hears_everyone(sessions: list[CallSession], devices: list[str]) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(
            s.wait_for(lambda s=s: from_everyone(s, devices)) for s in sessions)), WAIT_S)
    except TimeoutError:
        pytest.fail("frames " + str([{d[:6]: [s.frames_from(d, k) for k in MediaKind]
                                      for d in devices} for s in sessions]) + ", alarms "
                    + str([s.alarms for s in sessions]) + ", errors "
                    + str([s.errors for s in sessions]))


async def test_three_principals_hear_and_see_each_other_through_janus_only(
        through: Through) -> None:
    b, sessions, tasks = await briefing(through)
    try:
        assert all(s.sfu is not None for s in sessions)  # welcome.sfu, and the plan wants it
        assert all(s.crypt is not None for s in sessions)  # frames encrypted, forced on
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        for s in sessions:
            assert s.sfu is not None
            # through Janus only: no link between endpoints, no offer or answer to one
            assert s._peers == {} and s.links == {}
            assert not [m for m in s.inbox if m["type"] in ("offer", "answer", "candidate")]
            assert {link.remote for link in s.sfu.feeds.values()} == set(devices) - {s.device}
            assert s.alarms == []
        room = through.sfu.rooms[b.call]
        assert set(room.publishers) == set(devices)
        assert len(room.feeds) == len(devices) * (len(devices) - 1)
        await b.host.operator.control(b.call, "end")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert b.call not in through.sfu.rooms  # destroyed at the end
    finally:
        await leave_all(sessions, tasks)

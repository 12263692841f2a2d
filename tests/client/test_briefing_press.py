"""The press window of a briefing with Python endpoints: the programme shows every
principal in its cell of the grid, and every principal stops sending to the press at the
deadline of the signed plan by itself, even when the server keeps the window open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import av
import httpx
import numpy as np
import pytest

from summitline.client.briefing import provision_briefing
from summitline.client.ice import loopback
from summitline.client.press import PressViewer
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind, Phase
from summitline.server.press.gateway import PressGateway
from summitline.server.press.programme import CELL_H, CELL_W, cells, frame_size
from summitline.server.room import CallRoom
from tests.client.test_press import CUT_SLACK_MS, DARK, LATE_MS
from tests.client.test_session import WAIT_S, leave_all

WINDOW_S = 15  # three principals' mesh and press feeds set up well within it, when loaded
EDGE = 8  # pixels off a cell's edges, which the codec blurs


@dataclass
class Picture:
    at: int  # arrival, wall-clock ms
    size: tuple[int, int]
    cells: list[float]  # mean luma inside each principal's cell, in the plan's order
    empty: float  # mean luma where no principal is


def measure(frame: av.VideoFrame, at: int, n: int) -> Picture:
    luma = frame.to_ndarray()[:frame.height].astype(np.float64)  # the Y plane
    used = np.zeros(luma.shape, dtype=bool)
    means = []
    for left, top in cells(n):
        means.append(float(luma[top + EDGE:top + CELL_H - EDGE,
                                left + EDGE:left + CELL_W - EDGE].mean()))
        used[max(0, top - EDGE):top + CELL_H + EDGE,
             max(0, left - EDGE):left + CELL_W + EDGE] = True
    return Picture(at, (frame.width, frame.height), means,
                   float(luma[~used].mean()) if (~used).any() else 0.0)


async def test_a_briefing_press_programme_shows_every_principal_and_every_principal_cuts(
        monkeypatch: pytest.MonkeyPatch, server: str, ws_url: str) -> None:
    # a hostile server: no doors closed at the deadline, and a gateway that goes on
    monkeypatch.setattr(CallRoom, "arm_press_timer", lambda self: None)
    monkeypatch.setattr(PressGateway, "enforce_deadline", False)
    # three delegations' provisioning, on a loaded machine, may take more than httpx's 5 s
    async with httpx.AsyncClient(base_url=server, timeout=WAIT_S) as http:
        await briefing_press(http, ws_url)


async def briefing_press(http: httpx.AsyncClient, ws_url: str) -> None:
    b = await provision_briefing(http, 3, press_window_s=WINDOW_S)
    sessions = [CallSession(ws_url, b.call, side.identity(), ice=loopback())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    viewer: PressViewer | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        await asyncio.wait_for(asyncio.gather(*(s.press_answered.wait() for s in sessions)),
                               WAIT_S)
        token = (await b.sides[2].operator.press_token(b.call))["token"]  # a guest's office
        pictures: list[Picture] = []
        viewer = PressViewer(http, b.call, token, loopback(),
                             on_video=lambda f, at: pictures.append(measure(f, at, 3)))
        await viewer.watch()
        deadline = sessions[0].press_deadline_ms
        assert deadline is not None and all(s.press_deadline_ms == deadline for s in sessions)

        # every principal in its cell: the host and a guest on top, the other guest
        # centred below, nobody on either side of it. (Each at some moment: on a loaded
        # machine a principal's picture may come later than the programme shows it.)
        def bright() -> list[bool]:
            return [any(p.cells[i] > DARK for p in pictures) for i in range(3)]
        try:
            await asyncio.wait_for(viewer.wait_for(lambda: all(bright())), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"cells seen: {bright()}, {len(pictures)} pictures") from None
        before = [p for p in pictures if p.at < deadline]
        assert all(any(p.cells[i] > DARK for p in before) for i in range(3))
        assert {p.size for p in pictures} == {frame_size(3)} == {(640, 480)}
        assert max(p.empty for p in pictures) < 20  # black (16) beside the third principal

        # the deadline: each principal stops sending by itself and alarms, since the
        # server still says "open"
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: bool(s.alarms))
                                                for s in sessions)), WAIT_S)
        for s in sessions:
            assert "open past the deadline" in s.alarms[0]
            assert s.phase is Phase.OPEN and s.press is None
            assert s.press_cut_ms is not None and 0 <= s.press_cut_ms - deadline < CUT_SLACK_MS
        assert (await http.get(f"/api/press/{b.call}")).json()["state"] == "open"
        # the gateway goes on sending, but no principal is in its picture any more
        await asyncio.wait_for(viewer.wait_for(
            lambda: sum(p.at > deadline + LATE_MS for p in pictures) > 10), WAIT_S)
        after = [p for p in pictures if p.at > deadline + LATE_MS]
        assert max(max(p.cells) for p in after) < DARK
        # the briefing itself goes on, peer to peer
        n = sessions[1].frames(MediaKind.VIDEO)
        await asyncio.wait_for(sessions[1].wait_for(
            lambda: sessions[1].frames(MediaKind.VIDEO) > n + 10), WAIT_S)
    finally:
        await leave_all(sessions, tasks, [viewer] if viewer else [])

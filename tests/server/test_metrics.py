"""``GET /metrics``: closed to all but the server's operator, and each metric present and
moving when its event happens, driven by real calls, connections and press viewers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from summitline.client.bilateral import provision
from summitline.client.ice import LOOPBACK, loopback
from summitline.client.press import PressViewer
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind
from summitline.server.app import Settings
from summitline.server.run import running
from summitline.server.turn import TurnSettings
from tests import wire
from tests.client.test_session import leave_all
from tests.postgres import both_stores

WAIT_S = 30.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Every metric of docs/operations.md, by family (a counter's samples add "_total").
FAMILIES = {"summitline_calls", "summitline_connected_endpoints",
            "summitline_signaling_relay_seconds", "summitline_record_append_seconds",
            "summitline_press_viewers", "summitline_press_gateway_cpu_seconds",
            "summitline_turn_credentials_issued", "summitline_incidents"}

async def scrape(http: httpx.AsyncClient, token: str) -> Samples:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def turn_server(tmp_path: Path, database: str) -> AsyncIterator[tuple[str, str]]:
    """A server that hands out TURN credentials (no relay runs: none is used here); its
    base URL and its operator token."""
    settings = Settings(data_dir=tmp_path / "server", database_url=database,
                        press_hosts=LOOPBACK,
                        turn=TurnSettings(("turn:127.0.0.1:3478?transport=udp",), "secret"))
    async with running(settings) as base:
        yield base, (tmp_path / "server" / "operator.token").read_text().strip()


async def test_metrics_are_for_the_operator_alone(turn_server: tuple[str, str]) -> None:
    base, token = turn_server
    async with httpx.AsyncClient(base_url=base) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Basic {token}"}):
            response = await http.get("/metrics", headers=headers)
            assert response.status_code == 401 and "summitline_" not in response.text
        assert "/metrics" not in (await http.get("/openapi.json")).text
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert FAMILIES <= {f.name for f in text_string_to_metric_families(response.text)}
        assert {"offer", "answer", "candidate"} <= {  # at zero before the first relay
            dict(labels)["type"] for name, labels in await scrape(http, token)
            if name == "summitline_signaling_relay_seconds_count"}


@both_stores
async def test_each_metric_moves_when_its_event_happens(turn_server: tuple[str, str]) -> None:
    base, token = turn_server
    ws_url = base.replace("http", "ws", 1) + "/ws"
    async with httpx.AsyncClient(base_url=base) as http:
        start = await scrape(http, token)
        assert value(start, "summitline_calls", phase="closed") == 0
        call = await provision(http)
        await call.a.operator.control(call.call, "start")  # no press window: doors shut
        started = await scrape(http, token)
        assert value(started, "summitline_calls", phase="closed") == 1
        appends = "summitline_record_append_seconds_count"
        assert value(started, appends) > value(start, appends)

        a, welcome = await wire.join(ws_url, call.call, call.a.principal)
        b, _ = await wire.join(ws_url, call.call, call.b.principal)
        assert welcome["ice_servers"][0]["username"]  # a credential was minted
        joined = await scrape(http, token)
        assert value(joined, "summitline_connected_endpoints") == 2
        issued = "summitline_turn_credentials_issued_total"
        assert value(joined, issued) == value(started, issued) + 2
        assert value(joined, appends) >= value(started, appends) + 2  # two joins recorded

        await wire.send(b, {"type": "offer", "to": call.a.principal.fingerprint,
                            "generation": 1, "sdp": "v=0", "signature": wire.FAKE_SIG})
        await wire.next_of(a, "offer")
        relayed = await scrape(http, token)
        relays = "summitline_signaling_relay_seconds_count"
        assert value(relayed, relays, type="offer") == value(joined, relays, type="offer") + 1
        assert value(relayed, "summitline_signaling_relay_seconds_bucket", type="offer",
                     le="+Inf") == value(relayed, relays, type="offer")

        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(ws_url, origin="http://evil.example")  # type: ignore[arg-type]
        refused = await scrape(http, token)
        incidents = "summitline_incidents_total"
        assert value(refused, incidents, code="bad-origin") == \
            value(relayed, incidents, code="bad-origin") + 1

        await a.close()
        await b.close()
        await call.a.operator.control(call.call, "end")
        ended = await scrape(http, token)
        assert value(ended, "summitline_calls", phase="ended") == 1
        assert value(ended, "summitline_calls", phase="closed") == 0
        assert value(ended, "summitline_connected_endpoints") == 0


async def test_press_viewers_and_the_gateway_s_cpu_are_counted(
        http: httpx.AsyncClient, ws_url: str, operator_headers: dict[str, str]) -> None:
    token = operator_headers["Authorization"].removeprefix("Bearer ")
    call = await provision(http, press_window_s=30)
    a, b = (CallSession(ws_url, call.call, side.identity(), ice=loopback())
            for side in (call.a, call.b))
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    viewer: PressViewer | None = None
    try:
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        before = await scrape(http, token)
        cpu = "summitline_press_gateway_cpu_seconds_total"
        assert value(before, cpu) == 0 and value(before, "summitline_press_viewers") == 0
        await call.a.operator.control(call.call, "start")
        await asyncio.wait_for(asyncio.gather(a.press_answered.wait(),
                                              b.press_answered.wait()), WAIT_S)
        press = (await call.b.operator.press_token(call.call))["token"]
        viewer = PressViewer(http, call.call, press, loopback())
        await viewer.watch()
        await asyncio.wait_for(viewer.wait_for(lambda: viewer.frames[MediaKind.VIDEO] > 5),
                               WAIT_S)
        watching = await scrape(http, token)
        assert value(watching, "summitline_press_viewers") == 1
        assert value(watching, "summitline_calls", phase="open") == 1
        assert value(watching, cpu) > 0  # the programme was encoded for the viewer
    finally:
        if viewer is not None:
            await viewer.close()
        await leave_all((a, b), tasks)

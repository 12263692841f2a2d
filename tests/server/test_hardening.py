"""Hardening of what the server exposes: headers, origins, connection limits, TLS, and
no secret in any log line."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind, Role
from summitline.devcert import make_dev_cert
from summitline.server import closecodes as cc
from summitline.server.app import Settings
from summitline.server.run import running
from summitline.server.security import MAX_CONNECTIONS_PER_ADDRESS
from tests import wire
from tests.client.test_session import WAIT_S
from tests.hostile import hostile


@pytest.mark.parametrize("path", ["/", "/app.js", "/api/nonce", "/openapi.json", "/nowhere"])
async def test_security_headers_on_every_response(http: httpx.AsyncClient, path: str) -> None:
    r = await http.get(path)
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "server" not in r.headers


async def test_no_docs_page_that_loads_scripts_from_elsewhere(http: httpx.AsyncClient) -> None:
    assert (await http.get("/docs")).status_code == 404
    assert (await http.get("/openapi.json")).status_code == 200


async def test_a_page_of_another_origin_cannot_open_signaling(
        server: str, ws_url: str, http: httpx.AsyncClient,
        operator_headers: dict[str, str]) -> None:
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(ws_url, origin="http://evil.example")  # type: ignore[arg-type]
    assert err.value.response.status_code == 403
    page = (await http.get("/api/incidents", headers=operator_headers)).json()
    assert "bad-origin" in [i["code"] for i in page["incidents"]]
    own = await websockets.connect(ws_url, origin=server)  # type: ignore[arg-type]
    assert (await wire.recv(own))["type"] == "challenge"
    await own.close()


async def test_connections_per_address_are_limited(ws_url: str, http: httpx.AsyncClient,
                                                   operator_headers: dict[str, str]) -> None:
    held = [await websockets.connect(ws_url) for _ in range(MAX_CONNECTIONS_PER_ADDRESS)]
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(ws_url)
    # another address is not affected
    other = await websockets.connect(ws_url, local_addr=("127.0.0.2", 0))
    assert (await wire.recv(other))["type"] == "challenge"
    await held.pop().close()
    again = await websockets.connect(ws_url)  # a slot is free again
    assert (await wire.recv(again))["type"] == "challenge"
    for ws in [*held, other, again]:
        await ws.close()
    page = (await http.get("/api/incidents", headers=operator_headers)).json()
    codes = [i["code"] for i in page["incidents"]]
    assert "too-many-connections" in codes


async def test_connections_per_call_are_limited(tmp_path: Path) -> None:
    async with running(Settings(data_dir=tmp_path, max_connections_per_call=2)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        url = base.replace("http", "ws", 1) + "/ws"
        call = await provision(http)
        a, _ = await wire.join(url, call.call, call.a.principal)
        b, _ = await wire.join(url, call.call, call.b.principal)
        ws, nonce = await wire.connect_from(url, "127.0.0.2")
        await wire.send(ws, wire.hello(call.call, call.a.principal, nonce))
        await wire.refused(ws, "too-many-connections", cc.TOO_MANY)
        other = await provision(http)  # other calls are not affected
        c, _ = await wire.join(url, other.call, other.a.principal)
        await b.close()
        await wire.closed_with(b)
        # b's slot is free again once the server has seen it go
        await asyncio.wait_for(wire.until_admitted(url, call.call, call.b.principal), WAIT_S)
        for w in (a, c):
            await w.close()


async def test_tls_with_a_development_certificate(tmp_path: Path) -> None:
    cert, key = make_dev_cert(tmp_path / "tls", ["127.0.0.1"])
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    context = ssl.create_default_context(cafile=str(cert))
    async with running(Settings(data_dir=tmp_path / "data"), tls=(cert, key)) as base, \
            httpx.AsyncClient(base_url=base, verify=context) as http:
        assert base.startswith("https://")
        r = await http.get("/")
        assert r.headers["strict-transport-security"].startswith("max-age=")
        call = await provision(http)
        session = CallSession(base.replace("https", "wss", 1) + "/ws", call.call,
                              call.a.identity(), ice=loopback(), ssl=context)
        task = asyncio.create_task(session.run())
        await asyncio.wait_for(session.joined.wait(), WAIT_S)
        await session.leave()
        await asyncio.wait_for(task, WAIT_S)
        with pytest.raises(httpx.ConnectError):  # without the CA, no trust
            async with httpx.AsyncClient(base_url=base) as untrusting:
                await untrusting.get("/")


async def test_no_secret_in_any_log_line(ws_url: str, http: httpx.AsyncClient,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    aide = await provision(http, extra=[])
    code = await aide.a.operator.open_enrolment("Aide console", Role.AIDE)
    async with hostile(ws_url) as proxy:  # a passive observer, to collect the secrets
        await aide.a.operator.control(aide.call, "start")
        sessions = [CallSession(proxy.url, aide.call, side.identity(), ice=loopback())
                    for side in (aide.a, aide.b)]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(
            lambda s=s: s.frames(MediaKind.VIDEO) > 5) for s in sessions)), WAIT_S)
        bad, nonce = await wire.connect(ws_url)
        await wire.send(bad, {**wire.hello(aide.call, aide.a.principal, nonce),
                              "signature": wire.FAKE_SIG})
        await wire.recv(bad)
        await aide.a.operator.control(aide.call, "end")
        await asyncio.gather(*tasks)
        secrets = [code, nonce]
        for w in proxy.wires:
            for m in w.seen_down + w.seen_up:
                secrets += [m[k] for k in ("nonce", "signature") if k in m]
    for s in sessions:
        await s.leave()
    text = caplog.text
    assert len(caplog.records) > 5 and len(secrets) > 6
    for secret in secrets:
        assert secret not in text
    assert "PRIVATE KEY" not in text


async def test_a_lone_surrogate_gets_a_clear_422_not_a_server_error(
        http: httpx.AsyncClient) -> None:
    # JSON may escape a lone surrogate; it is no text. The error must not echo it back.
    response = await http.post("/api/delegations", content='{"name": "\\ud800"}',
                               headers={"content-type": "application/json"})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert {"loc": ["body", "name"], "type": "string_unicode"}.items() <= problems[0].items()
    assert "\\ud800" not in response.text and "input" not in problems[0]

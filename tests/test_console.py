"""``summitline console`` and what the shared server grants it: the console serves the
client with a CSP that names one server; the server lets that console's origin (and no
other) call its API and open signaling, and serves no client unless told to."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.console import BadServerUrl, server_origin
from summitline.console import running as console
from summitline.server.app import Settings
from summitline.server.run import running
from tests import wire
from tests.test_cli_signals import STOP_S, summitline

EVIL = "http://evil.example"


@pytest.mark.parametrize(("url", "origin"), [
    ("http://127.0.0.1:8750", "http://127.0.0.1:8750"),
    ("https://Summit.Example.org:8750/", "https://summit.example.org:8750"),
    ("http://[::1]:8750", "http://[::1]:8750"),
    ("https://summit.example.org", "https://summit.example.org"),
])
def test_a_server_url_names_an_origin(url: str, origin: str) -> None:
    assert server_origin(url) == origin


@pytest.mark.parametrize(("url", "why"), [
    ("summit.example.org:8750", "http://HOST:PORT"),
    ("ftp://summit.example.org", "http://HOST:PORT"),
    ("http://", "no host"),
    ("http://x:99999", "not a URL"),
    ("http://x:8750/api", "without a path"),
    ("http://x:8750/?a=1", "without a path"),
    ("http://user:pw@x:8750", "no user name"),
    # found by the attacker review: pasted into the CSP, this opened connect-src to all
    ("http://a;connect-src *;x", "letters, digits"),
    ("http://a b:8750", "letters, digits"),
])
def test_a_bad_server_url_is_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(BadServerUrl, match=re.escape(why)):
        server_origin(url)


async def test_the_console_serves_the_client_naming_its_one_server() -> None:
    async with console("http://127.0.0.1:8750/") as base, \
            httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/config.json")).json() == {"server": "http://127.0.0.1:8750"}
        for path in ("/", "/app.js", "/api.js", "/i18n/ru.json"):
            r = await http.get(path)
            assert r.status_code == 200, path
            policy = r.headers["content-security-policy"]
            assert "connect-src 'self' http://127.0.0.1:8750 ws://127.0.0.1:8750;" in policy
            assert "script-src 'self';" in policy and "unsafe" not in policy
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
            assert r.headers["x-frame-options"] == "DENY"
        assert "<script" not in (await http.get("/")).text.replace(
            '<script type="module" src="/app.js"></script>', "")  # no inline script


async def test_the_server_serves_no_client_unless_told(tmp_path: Path) -> None:
    async with running(Settings(data_dir=tmp_path / "a")) as base, \
            httpx.AsyncClient(base_url=base) as http:
        for path in ("/", "/index.html", "/app.js", "/keystore.js", "/views/operator.js",
                     "/views/principal.js", "/views/enrol.js"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get("/api/nonce")).status_code == 200
        # the press pages only: the link a press office hands out points at this server
        for path in ("/press.html", "/pressapp.js", "/views/press.js", "/i18n/ru.json",
                     "/i18n/fr.json", "/i18n/de.json"):
            r = await http.get(path)
            assert r.status_code == 200 and "script-src 'self'" in r.headers[
                "content-security-policy"], path
    async with running(Settings(data_dir=tmp_path / "b", serve_client=True)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/app.js")).status_code == 200


async def test_cors_and_signaling_admit_the_console_and_no_other_origin(
        tmp_path: Path) -> None:
    ours = "http://127.0.0.1:8761"
    async with running(Settings(data_dir=tmp_path, allowed_origins=(ours,))) as base, \
            httpx.AsyncClient(base_url=base) as http:
        preflight = {"access-control-request-method": "POST",
                     "access-control-request-headers": "content-type"}
        r = await http.options("/api/delegations", headers={"origin": ours, **preflight})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == ours
        assert "access-control-allow-credentials" not in r.headers  # nothing ambient
        r = await http.get("/api/nonce", headers={"origin": ours})
        assert r.headers["access-control-allow-origin"] == ours
        r = await http.options("/api/delegations", headers={"origin": EVIL, **preflight})
        assert "access-control-allow-origin" not in r.headers
        r = await http.get("/api/nonce", headers={"origin": EVIL})
        assert "access-control-allow-origin" not in r.headers  # its page cannot read it

        url = base.replace("http", "ws", 1) + "/ws"
        ws = await websockets.connect(url, origin=ours)  # type: ignore[arg-type]
        assert (await wire.recv(ws))["type"] == "challenge"
        await ws.close()
        with pytest.raises(websockets.InvalidStatus) as err:
            await websockets.connect(url, origin=EVIL)  # type: ignore[arg-type]
        assert err.value.response.status_code == 403


async def test_by_default_the_server_admits_a_console_on_its_default_address(
        tmp_path: Path) -> None:
    async with running(Settings(data_dir=tmp_path)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        for origin in ("http://127.0.0.1:8760", "http://localhost:8760"):
            r = await http.get("/api/nonce", headers={"origin": origin})
            assert r.headers["access-control-allow-origin"] == origin
        r = await http.get("/api/nonce", headers={"origin": "http://127.0.0.1:8761"})
        assert "access-control-allow-origin" not in r.headers


async def test_console_cli_refuses_a_bad_url_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "console", "--server", "summit.example.org",
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(STOP_S * 4):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"give the server as http://HOST:PORT" in err

    with socket.socket() as s:  # a free port, found in this test's own namespace
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with summitline("console", "--server", "http://127.0.0.1:8750", "--port",
                          str(port), stderr=asyncio.subprocess.PIPE) as c:
        line = await c.line_with("console on", "stderr")
        assert f"http://127.0.0.1:{port}/" in line and "http://127.0.0.1:8750" in line
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{port}/config.json")
            assert r.json() == {"server": "http://127.0.0.1:8750"}
            # a page whose name was pointed here (DNS rebinding) gets neither the
            # configuration nor the scripts under its own origin (attacker review)
            for path in ("/config.json", "/app.js"):
                r = await http.get(f"http://127.0.0.1:{port}{path}",
                                   headers={"host": f"evil.example:{port}"})
                assert r.status_code == 400 and "server" not in r.text, path
            r = await http.get(f"http://127.0.0.1:{port}/config.json",
                               headers={"host": f"localhost:{port}"})
            assert r.status_code == 200
        c.signal(signal.SIGTERM)
        code, _ = await c.exit(STOP_S)
    assert code == 0

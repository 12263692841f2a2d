"""The server is not in the media path: kill it mid-call, media goes on; restart it,
the endpoints rejoin, and the call and its record continue where they were."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.reads import signed_get
from summitline.client.session import CallSession
from summitline.core.record import verify_export
from summitline.core.roles import MediaKind
from tests.client.test_session import WAIT_S, until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "summitline", "serve", "--port",
                                 str(port), "--data", str(data)], stdout=out, stderr=out)


async def ready(http: httpx.AsyncClient) -> None:
    """Wait until the server process answers (it announces nothing; we ask, bounded)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                if (await http.get("/api/nonce")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.05)


async def test_media_survives_a_server_crash_and_the_call_continues(tmp_path: Path) -> None:
    port, data, log = free_port(), tmp_path / "data", tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, data, log)
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            await ready(http)
            call = await provision(http)
            sessions = [CallSession(f"ws://127.0.0.1:{port}/ws", call.call, side.identity(),
                                    ice=loopback()) for side in (call.a, call.b)]
            tasks = [asyncio.create_task(s.run()) for s in sessions]
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
            await call.a.operator.control(call.call, "start")
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > 10)
            before = (await signed_get(http, call.a.operator.key,
                                         f"/api/calls/{call.call}/record")).json()["entries"]

            server.kill()  # SIGKILL: no shutdown, no flushing
            server.wait()
            counts = {s: s.frames(MediaKind.VIDEO) for s in sessions}
            # about three seconds of video at 15 fps, with no server at all
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > counts[s] + 45)

            server = start_server(port, data, log)
            await ready(http)
            await asyncio.wait_for(asyncio.gather(*(s.rejoined.wait() for s in sessions)),
                                   WAIT_S)
            after = (await signed_get(http, call.a.operator.key,
                                         f"/api/calls/{call.call}/record")).json()["entries"]
            assert after[: len(before)] == before  # nothing committed was lost
            kinds = [e["kind"] for e in after[len(before):]]
            assert kinds[0] == "server.restarted" and kinds.count("endpoint.joined") == 2
            # the peer connections were never renegotiated: still generation 1, connected
            for s in sessions:
                (link,) = s.links.values()
                assert link.generation == 1 and link.connected
            assert "signal.offer" not in kinds
            counts = {s: s.frames(MediaKind.VIDEO) for s in sessions}
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > counts[s] + 15)

            await call.b.operator.control(call.call, "end")
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
            for side in (call.a, call.b):
                await side.operator.sign_record(call.call, call.plan.hash)
            record = verify_export(await call.a.operator.export_record(call.call))
            assert record.entries[-1].kind == "call.ended"
            assert all(s.alarms == [] for s in sessions)
            for s in sessions:
                await s.leave()
    finally:
        server.kill()
        server.wait()

"""Two server nodes behind HAProxy, sharing a store and Redis (tests/cluster.py): a call
whose principals sit on different nodes (and the node of one killed for good); a node
killed mid-call, its endpoints moving to the other through the proxy while media goes
on, and the record whole afterwards; a revocation taken by one node reaching the other."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import provision
from summitline.client.ice import loopback
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, SessionRefused
from summitline.core.record import verify_export
from summitline.core.roles import MediaKind
from tests.client.test_revocation import enrolled_plan, in_call
from tests.client.test_session import WAIT_S, leave_all, until
from tests.cluster import PROXY_SOURCE, Cluster, cluster
from tests.server.test_attack_review2 import verify_cli

# The one store every node uses: a fresh PostgreSQL database (the ``database`` fixture of
# tests/conftest.py), as a deployment of several nodes has (docs/operations.md); the
# database keeps each call's record in order whichever node appends (protocol §8.1).
pytestmark = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


@pytest.fixture
async def nodes(tmp_path: Path, database: str) -> AsyncIterator[Cluster]:
    async with cluster(tmp_path, database) as c:
        yield c


async def test_a_call_whose_principals_sit_on_different_nodes(nodes: Cluster,
                                                            tmp_path: Path) -> None:
    one, two = nodes.nodes
    async with httpx.AsyncClient(base_url=nodes.url) as http:
        call = await provision(http)  # through the proxy: any node
        # each straight to its node (no proxy to move it)
        sessions = [CallSession(node.ws, call.call, side.identity(), ice=loopback())
                    for node, side in ((one, call.a), (two, call.b))]
        a, b = sessions
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                                   WAIT_S)
            assert await nodes.node_of(call.call, a.device) is one
            assert await nodes.node_of(call.call, b.device) is two
            await call.a.operator.control(call.call, "start")
            # the offer, answer and candidates went from one node to the other: media
            # flows both ways
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > 10
                        and s.frames(MediaKind.AUDIO) > 10)

            # node one dies and ``a``, pinned to it, does not come back: once node one's
            # key expires, node two records ``a`` as gone and tells ``b``
            one.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(one.proc.wait, WAIT_S)
            await asyncio.wait_for(b.wait_for(lambda: a.device not in b.rules.present),
                                   WAIT_S)
            count = b.frames(MediaKind.VIDEO)
            await until([b], lambda s: s.frames(MediaKind.VIDEO) > count + 15)  # media on

            await call.b.operator.control(call.call, "end")
            await asyncio.wait_for(tasks[1], WAIT_S)
            for side in (call.a, call.b):
                await side.operator.sign_record(call.call, call.plan.hash)
            raw = await call.b.operator.export_record(call.call)
            (tmp_path / "record.json").write_bytes(raw)
            code, out, err = await verify_cli(tmp_path / "record.json")
            assert code == 0, out + err
            kinds = [(e.kind, e.data.get("device"), e.data.get("reason"))
                     for e in verify_export(raw).entries]
            assert ("endpoint.left", a.device, "node-lost") in kinds
            assert kinds[-1][0] == "call.ended"
            assert b.alarms == []
        finally:
            for s in sessions:
                await s.leave()
            for task in tasks:
                task.cancel()


async def malformed_hello(url: str, headers: dict[str, str] | None = None) -> None:
    async with websockets.connect(url, additional_headers=headers, open_timeout=WAIT_S) as ws:
        await asyncio.wait_for(ws.recv(), WAIT_S)  # the challenge
        await ws.send("not a hello")
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(WAIT_S):
                async for _ in ws:
                    pass


async def the_client_behind_the_proxy_counts_not_the_proxy(nodes: Cluster) -> None:
    """With --trusted-proxy, a node takes the client's address from the proxy's
    X-Forwarded-For (for its per-address limits and incidents), and from nobody else."""
    one = nodes.nodes[0]
    await malformed_hello(nodes.ws)  # through the proxy, whichever node it picks
    # straight to a node, with a header of one's own: not believed
    await malformed_hello(one.ws, {"X-Forwarded-For": "198.51.100.7"})
    token = (one.data / "operator.token").read_text().strip()
    async with httpx.AsyncClient(base_url=one.url) as http:
        rows = (await http.get("/api/incidents", headers={
            "Authorization": f"Bearer {token}"})).json()["incidents"]
    remotes = {r["remote"] for r in rows}
    # the client as the proxy names it (no port: a forwarded address has none), never the
    # proxy's own address, never the header a client wrote itself
    assert "127.0.0.1:0" in remotes, remotes
    assert not any(r.startswith((PROXY_SOURCE, "198.51.100.7")) for r in remotes), remotes


async def test_a_node_killed_mid_call_its_endpoints_move_and_the_record_is_whole(
        nodes: Cluster, tmp_path: Path) -> None:
    # (here, to spare the suite another start of the cluster)
    await the_client_behind_the_proxy_counts_not_the_proxy(nodes)
    async with httpx.AsyncClient(base_url=nodes.url) as http:
        call = await provision(http)
        sessions = [CallSession(nodes.ws, call.call, side.identity(), ice=loopback())
                    for side in (call.a, call.b)]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                                   WAIT_S)
            await call.a.operator.control(call.call, "start")
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > 10)
            before = (await signed_get(http, call.a.operator.key,
                                       f"/api/calls/{call.call}/record")).json()["entries"]

            doomed = await nodes.node_of(call.call, sessions[0].device)
            moved = [s for s in sessions
                     if await nodes.node_of(call.call, s.device) is doomed]
            doomed.proc.send_signal(signal.SIGKILL)  # no shutdown, nothing flushed
            await asyncio.to_thread(doomed.proc.wait, WAIT_S)
            counts = {s: s.frames(MediaKind.VIDEO) for s in sessions}
            # the endpoints of the killed node reconnect through the proxy to the other
            await asyncio.wait_for(asyncio.gather(*(s.rejoined.wait() for s in moved)),
                                   WAIT_S)
            (alive,) = [n for n in nodes.nodes if n is not doomed]
            for s in sessions:
                assert await nodes.node_of(call.call, s.device) is alive
            # media went on, and goes on (about a second and a half more at 15 fps)
            await until(sessions, lambda s: s.frames(MediaKind.VIDEO) > counts[s] + 22)

            await call.b.operator.control(call.call, "end")
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
            for side in (call.a, call.b):
                await side.operator.sign_record(call.call, call.plan.hash)
            raw = await call.a.operator.export_record(call.call)
            record = verify_export(raw)
            path = tmp_path / "record.json"
            path.write_bytes(raw)
            code, out, err = await verify_cli(path)
            assert code == 0, out + err
            entries = [e.to_json() for e in record.entries]
            assert entries[:len(before)] == before  # what both nodes had committed stays
            assert [e.seq for e in record.entries] == list(range(len(record.entries)))
            after = entries[len(before):]
            # the moved endpoints: their old connection recorded as gone, a new join
            for s in moved:
                mine = [e for e in after if e["kind"].startswith("endpoint.")
                        and e["data"].get("device") == s.device]
                assert [e["kind"] for e in mine][:2] == ["endpoint.left", "endpoint.joined"]
                assert mine[0]["data"].get("reason") in ("replaced", "node-lost")
            assert record.entries[-1].kind == "call.ended"
            assert all(s.alarms == [] for s in sessions)
        finally:
            for s in sessions:
                await s.leave()
            for task in tasks:
                task.cancel()


async def test_a_revocation_taken_by_one_node_drops_the_device_on_the_other(
        nodes: Cluster) -> None:
    one, two = nodes.nodes
    async with httpx.AsyncClient(base_url=one.url) as http:  # the REST API: node one
        call = await provision(http)
        plan, key = await enrolled_plan(call, http, "call-revoke")
        a, b, tasks = await in_call(two.ws, call, plan, key)  # the endpoints: node two
        try:
            answer = await call.b.operator.revoke(key.fingerprint)
            assert answer["dropped"] == 0 and answer["told"] == 0  # none of them here
            # node two was told: it tells ``a`` and drops the revoked device
            await asyncio.wait_for(a.wait_for(lambda: key.fingerprint in a.revoked
                                              and key.fingerprint not in a.links), WAIT_S)
            with pytest.raises(SessionRefused) as refused:
                await asyncio.wait_for(tasks[1], WAIT_S)
            assert refused.value.code == "device-revoked"
            assert a.alarms == []
        finally:
            await leave_all([a, b], tasks)

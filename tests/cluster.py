"""Several server nodes as in deploy/: a real redis-server, two ``summitline serve``
processes sharing one store and that Redis, and HAProxy with deploy/haproxy/haproxy.cfg
in front, all on loopback in the test's network namespace. Every start and stop bounded.

``store_url``: the one store every node uses (the fixture's parameter; SQLite in a shared
directory for now)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from summitline.store import open_store
from tests.client.test_server_restart import free_port

HAPROXY_CFG = Path(__file__).parent.parent / "deploy" / "haproxy" / "haproxy.cfg"
START_S = 90.0  # a node imports aiortc and opens the store on a busy 2-core machine (load 40)
STOP_S = 15.0
# HAProxy reaches the nodes from this address, the one they trust for X-Forwarded-For
# (the clients, on 127.0.0.1, are not trusted)
PROXY_SOURCE = "127.0.0.2"


@dataclass
class Node:
    port: int
    data: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Cluster:
    redis_url: str
    store_url: str
    proxy_port: int
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.proxy_port}/ws"

    async def node_of(self, call: str, device: str) -> Node:
        """The node a device is connected to, by the cluster's presence in Redis."""
        async with aioredis.from_url(self.redis_url, decode_responses=True) as r:
            node_id = await r.hget(f"summitline:presence:{call}", device)
        assert node_id, f"{device[:12]} is connected to no node"
        pid = int(str(node_id).split("-")[-2])
        (node,) = [n for n in self.nodes if n.proc.pid == pid]
        return node


async def answering(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers /api/nonce (nothing announces it; we ask), bounded."""
    async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(START_S):
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if (await http.get("/api/nonce")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=out)


def start_node(port: int, data: Path, log: Path, store_url: str,
               redis_url: str) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "summitline", "serve", "--port", str(port), "--data",
                  str(data), "--database-url", store_url, "--redis-url", redis_url,
                  "--trusted-proxy", PROXY_SOURCE], log)


def haproxy_config(proxy_port: int, node_ports: list[int]) -> str:
    """deploy/haproxy/haproxy.cfg with this run's addresses: its bind, the address it
    reaches the nodes from, and the nodes."""
    text = HAPROXY_CFG.read_text()
    text = re.sub(r"bind 127\.0\.0\.1:\d+", f"bind 127.0.0.1:{proxy_port}", text)
    head, _, _ = text.partition("    server node1")
    servers = "".join(f"    server node{i + 1} 127.0.0.1:{p} check\n"
                      for i, p in enumerate(node_ports))
    servers = f"    source {PROXY_SOURCE}\n{servers}"
    return head + servers


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_S)


@contextlib.asynccontextmanager
async def cluster(tmp: Path, store_url: str, nodes: int = 2) -> AsyncIterator[Cluster]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_port = free_port()
        procs.append(spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                           tmp / "redis.log"))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        async with aioredis.from_url(redis_url) as r, asyncio.timeout(START_S):
            while True:
                with contextlib.suppress(aioredis.ConnectionError):
                    if await r.ping():
                        break
                await asyncio.sleep(0.05)
        c = Cluster(redis_url, store_url, free_port())
        # the tables first, here: nodes starting together would each create them
        await (await open_store(store_url)).close()
        for i in range(nodes):
            data = tmp / f"node{i + 1}"  # each its own operator token; the store is shared
            port, log = free_port(), tmp / f"node{i + 1}.log"
            proc = start_node(port, data, log, store_url, redis_url)
            procs.append(proc)
            c.nodes.append(Node(port, data, log, proc))
        await asyncio.gather(*(answering(n.url, n.proc) for n in c.nodes))
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(haproxy_config(c.proxy_port, [n.port for n in c.nodes]))
        procs.append(spawn(["haproxy", "-W", "-db", "-f", str(cfg)], tmp / "haproxy.log"))
        await answering(c.url, procs[-1])
        yield c
    finally:
        for proc in reversed(procs):
            stop(proc)

"""A real coturn (Debian package ``coturn``) for tests, on 127.0.0.1 in the test network
namespace, with use-auth-secret. Unlike the shipped example (deploy/coturn), it must
allow loopback peers: the test endpoints live on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.daemon import DaemonLog, stop

READY = "UDP listener opened on: 127.0.0.1:{port}"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Coturn:
    url: str
    secret: str
    log: Path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(workdir: Path, lines: list[str]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@contextlib.asynccontextmanager
async def coturn(workdir: Path) -> AsyncIterator[Coturn]:
    exe = shutil.which("turnserver")
    if exe is None:
        raise RuntimeError("coturn is not installed (apt-get install coturn)")
    port, secret = free_udp_port(), secrets.token_hex(16)
    conf = write_config(workdir, [
        "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={port}",
        "min-port=49152", "max-port=49999", "use-auth-secret",
        f"static-auth-secret={secret}", "realm=summitline.test", "fingerprint", "no-tls",
        "no-dtls", "no-tcp", "no-cli", "allow-loopback-peers", "no-multicast-peers",
        "log-file=stdout", "verbose", f"pidfile={workdir / 'turnserver.pid'}",
        f"userdb={workdir / 'turndb'}", "no-software-attribute"])
    log = workdir / "turnserver.log"
    proc = await asyncio.create_subprocess_exec(exe, "-c", str(conf),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    out = DaemonLog(proc.stdout, "turnserver")
    try:
        await out.ready(READY.format(port=port), START_TIMEOUT_S)
        yield Coturn(f"turn:127.0.0.1:{port}?transport=udp", secret, log)
    finally:
        await stop(proc, STOP_TIMEOUT_S)
        await out.finish(log, STOP_TIMEOUT_S)

"""A real Janus (Debian package ``janus``) for tests and benchmarks, in the test network
namespace, configured by the shipped files of deploy/janus/: copied, with fresh secrets
in place of the CHANGE-ME ones and a free port for the HTTP API.

Janus (and libnice under it) never gathers an ICE candidate on a loopback interface or
address, and the namespace has nothing else. So the fixture gives it one: a veth pair,
both ends inside the test's namespace, with ``MEDIA_ADDRESS`` (198.18.0.1, of the range
RFC 2544 sets aside for benchmarking, routed nowhere) on one end; Janus's candidates are
there (``-E``), and the viewers' (``viewer_ice``). A packet to it is delivered locally,
as to 127.0.0.1; the namespace has no route out. The pair goes with Janus. The HTTP API
and the RTP input stay on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from summitline import netns
from summitline.client.ice import IceSettings
from tests.daemon import DaemonLog, stop

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "janus"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
MEDIA_IFACE, MEDIA_PEER, MEDIA_ADDRESS = "janus0", "janus1", "198.18.0.1"
READY = "HTTP webserver started (port {port}, /janus path listener)"
STREAMING = "janus.plugin.streaming"
VIDEOROOM = "janus.plugin.videoroom"


@dataclass(frozen=True)
class Janus:
    url: str  # the HTTP API, e.g. http://127.0.0.1:PORT/janus
    api_secret: str
    admin_key: str  # the Streaming and VideoRoom plugins' (one for both, in tests)
    pid: int
    log: Path


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(workdir: Path, port: int, api_secret: str, admin_key: str) -> Path:
    conf = workdir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for source in DEPLOY.glob("*.jcfg"):
        text = source.read_text()
        text = text.replace("CHANGE-ME-api-secret", api_secret)
        text = text.replace("CHANGE-ME-streaming-admin-key", admin_key)
        text = text.replace("CHANGE-ME-videoroom-admin-key", admin_key)
        text = text.replace("CHANGE-ME-unused-admin-api", secrets.token_hex(16))
        text = re.sub(r"(?m)^(\s*port = )8088", rf"\g<1>{port}", text)
        (conf / source.name).write_text(text)
    return conf


def media_interface() -> None:
    """The veth pair Janus gathers its candidates on (see the module's doc)."""
    if set(netns.interfaces()) - {"lo", MEDIA_IFACE, MEDIA_PEER}:
        raise RuntimeError(f"not in a test network namespace: {netns.interfaces()}")
    drop_media_interface()
    for command in (f"ip link add {MEDIA_IFACE} type veth peer name {MEDIA_PEER}",
                    f"ip addr add {MEDIA_ADDRESS}/32 dev {MEDIA_IFACE}",
                    f"ip link set {MEDIA_PEER} up", f"ip link set {MEDIA_IFACE} up"):
        subprocess.run(command.split(), check=True)


def viewer_ice() -> IceSettings:
    """A viewer of Janus in the test namespace: its host candidate on MEDIA_ADDRESS too
    (libnice does not pair its candidates with a remote one on loopback)."""
    return IceSettings(host_addresses=(MEDIA_ADDRESS,))


def drop_media_interface() -> None:
    subprocess.run(["ip", "link", "del", MEDIA_IFACE], check=False, capture_output=True)


@contextlib.asynccontextmanager
async def janus(workdir: Path) -> AsyncIterator[Janus]:
    exe = shutil.which("janus")
    if exe is None:
        raise RuntimeError("Janus is not installed (apt-get install janus)")
    port = free_tcp_port()
    api_secret, admin_key = secrets.token_hex(16), secrets.token_hex(16)
    conf = write_config(workdir, port, api_secret, admin_key)
    media_interface()
    log = workdir / "janus.log"
    # -d 4: the info lines, among them the one that says the HTTP API listens
    proc = await asyncio.create_subprocess_exec(exe, "-F", str(conf), "-o", "-d", "4",
                                                "-E", MEDIA_IFACE,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    url = f"http://127.0.0.1:{port}/janus"
    out = DaemonLog(proc.stdout, "janus")
    try:
        await out.ready(READY.format(port=port), START_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=START_TIMEOUT_S) as http:
            info = (await http.get(url + "/info")).json()
        assert info["janus"] == "server_info" and STREAMING in info["plugins"] and \
            VIDEOROOM in info["plugins"], info
        yield Janus(url, api_secret, admin_key, proc.pid, log)
    finally:
        await stop(proc, STOP_TIMEOUT_S)
        drop_media_interface()
        await out.finish(log, STOP_TIMEOUT_S)

"""A real nginx (Debian package ``nginx``) for tests, on 127.0.0.1 in the test network
namespace, serving the press HLS with the shipped deploy/nginx/summitline-hls.conf:
copied, with a free port, a fresh secret, and the test's directories in place of
/var/lib/summitline/hls and /var/log/nginx."""

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

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "summitline-hls.conf"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
READY = "start worker process"


@dataclass(frozen=True)
class Nginx:
    url: str  # where the HLS directory is served: http://127.0.0.1:PORT/hls
    secret: str
    hls_dir: Path


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(workdir: Path, port: int, secret: str, hls_dir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    hls_dir.mkdir(parents=True, exist_ok=True)
    site = DEPLOY.read_text()
    for old, new in (("listen 8780;", f"listen 127.0.0.1:{port};"),
                     ("CHANGE-ME-hls-secret", secret),
                     ("/var/lib/summitline/hls/", f"{hls_dir}/"),
                     ("/var/log/nginx/", f"{workdir}/")):
        assert old in site, old
        site = site.replace(old, new)
    (workdir / "summitline-hls.conf").write_text(site)
    conf = workdir / "nginx.conf"
    # the worker runs as root here: the test's directories are root's alone
    conf.write_text(f"""user root;
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {workdir}/summitline-hls.conf;
}}
""")
    return conf


@contextlib.asynccontextmanager
async def nginx(workdir: Path, hls_dir: Path) -> AsyncIterator[Nginx]:
    exe = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx)")
    port, secret = free_tcp_port(), secrets.token_hex(16)
    conf = write_config(workdir, port, secret, hls_dir)
    proc = await asyncio.create_subprocess_exec(exe, "-c", str(conf), "-p", str(workdir),
                                                "-e", "stderr",
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    out = DaemonLog(proc.stderr, "nginx")
    try:
        await out.ready(READY, START_TIMEOUT_S)
        yield Nginx(f"http://127.0.0.1:{port}/hls", secret, hls_dir)
    finally:
        await stop(proc, STOP_TIMEOUT_S)
        await out.finish(workdir / "nginx.log", STOP_TIMEOUT_S)

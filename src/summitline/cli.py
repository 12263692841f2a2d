"""The ``summitline`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from summitline import __version__
from summitline.console import DEFAULT_PORT as CONSOLE_PORT
from summitline.server.limits import MAX_PRESS_VIEWERS
from summitline.server.security import DEFAULT_CONSOLE_ORIGINS

if TYPE_CHECKING:
    from summitline.server.run import Server

DEFAULT_PORT = 8750


# Addresses only this machine reaches: a read's origin may follow the request's Host.
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def every_address(host: str) -> bool:
    """Whether ``host`` names every address (0.0.0.0, ::, 0, 0:0::0 …), however spelt."""
    import ipaddress
    import socket

    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        pass
    try:  # "0", "00.0.0.0": what the resolver makes of it, without a lookup
        info = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except OSError:
        return False
    return any(ipaddress.ip_address(i[4][0]).is_unspecified for i in info)


def _read_secret(path: Path) -> str | None:
    """A secret file's text, or None (said on stderr) when it is readable by others or
    cannot be read: ``serve`` then exits 2."""
    try:
        if path.stat().st_mode & 0o077:
            print(f"summitline serve: {path} is readable by others; "
                  f"run 'chmod 600 {path}'", file=sys.stderr)
            return None
        return path.read_text()
    except OSError as exc:
        print(f"summitline serve: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from summitline.server.app import Settings
    from summitline.server.run import config

    if (args.cert is None) != (args.key is None):
        print("summitline serve: --cert and --key go together", file=sys.stderr)
        return 2
    tls = (args.cert, args.key) if args.cert else None
    for path in tls or ():
        if not path.is_file():
            print(f"summitline serve: no such file {path}", file=sys.stderr)
            return 2
    turn = None
    if args.turn_url:
        if args.turn_secret_file is None:
            print("summitline serve: --turn-url needs --turn-secret-file", file=sys.stderr)
            return 2
        text = _read_secret(args.turn_secret_file)
        if text is None:
            return 2
        secret = text.strip()
        from summitline.server.turn import TurnSettings

        turn = TurnSettings(tuple(args.turn_url), secret)
    janus_secrets: list[str | None] = [None, None, None]
    if args.janus_secret_file is not None:
        if args.janus_url is None:
            print("summitline serve: --janus-secret-file needs --janus-url", file=sys.stderr)
            return 2
        text = _read_secret(args.janus_secret_file)
        if text is None:
            return 2
        lines = text.split("\n")
        janus_secrets = [line.strip() or None for line in (lines + ["", "", ""])[:3]]
    hls = (args.hls_dir, args.hls_url, args.hls_secret_file)
    hls_secret = None
    if any(v is not None for v in hls):
        if any(v is None for v in hls):
            print("summitline serve: --hls-dir, --hls-url and --hls-secret-file go together",
                  file=sys.stderr)
            return 2
        text = _read_secret(args.hls_secret_file)
        if text is None:
            return 2
        hls_secret = text.strip()
    if args.max_press_viewers < 1:
        print("summitline serve: --max-press-viewers must be at least 1", file=sys.stderr)
        return 2
    from summitline.crypto.statements import origin

    try:
        public = tuple(origin(o) for o in args.public_origin)
        if not public and args.host not in LOOPBACK:
            # Reached from other machines: a read must name this server, not whatever
            # Host a request claims (a hostile server could replay a read here with the
            # Host of its own). Bound to one address, that address is the origin.
            if every_address(args.host) or args.port == 0:
                raise ValueError("serving on every address (or a random port): say which "
                                 "origin clients use, e.g. --public-origin "
                                 "https://summit.example.org")
            host = f"[{args.host}]" if ":" in args.host else args.host
            public = (origin(f"{'https' if tls else 'http'}://{host}:{args.port}"),)
    except ValueError as exc:
        print(f"summitline serve: --public-origin: {exc}", file=sys.stderr)
        return 2
    settings = Settings(data_dir=args.data, database_url=args.database_url,
                        redis_url=args.redis_url,
                        trusted_proxies=tuple(args.trusted_proxy),
                        public_origins=public,
                        allowed_origins=tuple(args.allow_origin or DEFAULT_CONSOLE_ORIGINS),
                        turn=turn, serve_client=args.serve_client,
                        press_hosts=tuple(args.press_host) if args.press_host else None,
                        max_press_viewers=args.max_press_viewers,
                        janus_url=args.janus_url, janus_api_secret=janus_secrets[0],
                        janus_admin_key=janus_secrets[1],
                        janus_videoroom_key=janus_secrets[2], hls_dir=args.hls_dir,
                        hls_url=args.hls_url, hls_secret=hls_secret)
    from summitline.server.run import Server

    def started(url: str) -> None:
        client = (f"; the web client (development only) at {url}/" if args.serve_client
                  else "")
        print(f"summitline {__version__}: serving on {url} (OpenAPI at /openapi.json), "
              f"data in {args.data}; consoles admitted from "
              f"{', '.join(settings.allowed_origins)}{client}", file=sys.stderr, flush=True)

    _raise_open_files()
    server = Server(config(settings, args.host, args.port, tls=tls), on_started=started)
    if not _run_until_signalled(server):
        return 1  # uvicorn said why (the port is taken, say)
    print("summitline: stopped; WebSockets closed (going away), store closed",
          file=sys.stderr, flush=True)
    return _exit_without_stuck_threads(0)


def _raise_open_files() -> None:
    """Each signaling connection holds a file descriptor; a soft limit of 1024, common,
    would refuse connections past about a thousand. Take the hard limit (systemd's
    LimitNOFILE, docs/operations.md); 10,000 connections need about 10,100."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit is over the kernel's cap
            pass


def _run_until_signalled(server: Server) -> bool:
    """Run ``server`` until SIGTERM or SIGINT; whether it had started."""
    from summitline.shutdown import stop_on_signals

    def stop(signum: int) -> None:
        server.should_exit = True  # uvicorn's main loop looks every 0.1 s

    with stop_on_signals(stop):
        server.run()
    return server.started


def _console(args: argparse.Namespace) -> int:
    from summitline.console import BadServerUrl, config, server_origin
    from summitline.server.run import Server

    try:
        server = server_origin(args.server)
    except BadServerUrl as exc:
        print(f"summitline console: --server {exc}", file=sys.stderr)
        return 2

    def started(url: str) -> None:
        print(f"summitline {__version__}: console on {url}/ for the server {server}; "
              f"that server must admit this origin (its --allow-origin {url})",
              file=sys.stderr, flush=True)

    console = Server(config(server, args.host, args.port,
                            allowed_hosts=tuple(args.allowed_host)), on_started=started)
    if not _run_until_signalled(console):
        return 1
    print("summitline: console stopped", file=sys.stderr, flush=True)
    return 0


def _dev_cert(args: argparse.Namespace) -> int:
    from summitline.devcert import VALID_DAYS, make_dev_cert

    cert, key = make_dev_cert(args.out, args.host or ["localhost", "127.0.0.1", "::1"])
    print(f"wrote {cert} and {key} (valid {VALID_DAYS} days); serve with\n"
          f"  summitline serve --cert {cert} --key {key}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from summitline.core.plan import MAX_BRIEFING_DELEGATIONS
    from summitline.demo import run_briefing_demo, run_demo

    if args.seconds <= 0:
        print("summitline demo: --seconds must be positive", file=sys.stderr)
        return 2
    if args.briefing is not None and not 2 <= args.briefing <= MAX_BRIEFING_DELEGATIONS:
        print(f"summitline demo: --briefing takes 2 to {MAX_BRIEFING_DELEGATIONS} "
              f"delegations, not {args.briefing}", file=sys.stderr)
        return 2

    async def until_signalled() -> int:
        from summitline.shutdown import stop_on_signals

        loop = asyncio.get_running_loop()
        stop: asyncio.Future[int] = loop.create_future()

        def settle(signum: int) -> None:
            if not stop.done():
                stop.set_result(signum)

        def signalled(signum: int) -> None:
            loop.call_soon_threadsafe(settle, signum)

        with stop_on_signals(signalled):
            if args.briefing is not None:
                return await run_briefing_demo(args.briefing, args.seconds, args.data,
                                               args.export, stop=stop)
            return await run_demo(args.seconds, args.data, args.export, stop=stop)

    return _exit_without_stuck_threads(asyncio.run(until_signalled()))


def _exit_without_stuck_threads(code: int) -> int:
    """aiortc's decoder threads are not daemons: Python would wait at exit for one stuck
    in a decode (client/closing.py left it behind) for ever. Exit without it."""
    if "summitline.client.closing" not in sys.modules:
        return code
    from summitline.client.closing import abandoned_decoders

    stuck = abandoned_decoders()
    if stuck:
        print(f"summitline: {len(stuck)} media decoder thread(s) did not stop; exiting "
              "without them", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _verify(args: argparse.Namespace) -> int:
    from summitline.core.record import RecordError, summary, verify_export
    from summitline.crypto.keys import short_fingerprint

    try:
        raw = args.record.read_bytes()
    except OSError as exc:
        print(f"summitline verify: cannot read {args.record}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        record = verify_export(raw)
    except RecordError as exc:
        print(f"REJECTED {args.record}: {exc}", file=sys.stderr)
        return 1
    plan = record.signed.plan
    for expected in args.expect:
        who, _, fingerprint = expected.partition("=")
        d = next((d for d in plan.delegations
                  if who in (d.id, d.name, short_fingerprint(d.id))), None)
        if d is None or not fingerprint:
            print(f"summitline verify: --expect {expected!r}: give NAME=FINGERPRINT, NAME a "
                  "delegation of the record (its name or id)", file=sys.stderr)
            return 2
        key = record.head_keys[d.id].fingerprint
        given = fingerprint.strip().upper().replace(" ", "")
        if given not in (key.upper(), short_fingerprint(key)):
            print(f"REJECTED {args.record}: the head of {d.name!r} is signed by key "
                  f"{short_fingerprint(key)}, not by {fingerprint} as expected",
                  file=sys.stderr)
            return 1
    from summitline.report import and_list

    s = summary(record.entries)
    duration = f"{s['duration_ms'] / 1000:.3f} s" if s["duration_ms"] is not None else "-"
    if args.html is not None:
        from summitline.report import render

        args.html.write_text(render(record.signed, record.entries,
                                    "Verified offline: the chain is intact and its head is "
                                    f"signed by {and_list(record.signers)}.", True))
    print(f"OK {args.record}: call {record.signed.plan.call!r}, {s['events']} events, "
          f"duration {duration}, chain intact, head signed by {and_list(record.signers)}")
    # Each name is the one its delegation signed for itself (the plan's name_signature,
    # checked); the fingerprints are what to compare with your pins (--expect).
    for d in plan.delegations:
        head = record.head_keys[d.id]
        how = ("its key in the plan" if head == d.key else
               "a later key its own signed rotations lead to from its key in the plan")
        print(f"  {d.name}: id {short_fingerprint(d.id)}; head signed by key "
              f"{short_fingerprint(head.fingerprint)} ({how})")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from summitline.core.messages import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="summitline", description=(
        "Confidential, interpreted one-on-one video talks on a co-signed call plan."))
    p.add_argument("--version", action="version", version=f"summitline {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the shared server (REST API, signaling)",
                       description="Run the summitline server in the foreground. With no "
                       "options it keeps its data in SQLite under ./summitline-data and "
                       f"listens on 127.0.0.1:{DEFAULT_PORT}. It serves no web client "
                       "(unless --serve-client): each delegation runs 'summitline console'.",
                       epilog="SIGTERM or SIGINT: stops accepting, closes WebSockets with "
                       "1001 (going away), closes the store, exits 0; a second one aborts.")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT})")
    s.add_argument("--data", type=Path, default=Path("summitline-data"),
                   help="data directory for the SQLite store (default ./summitline-data)")
    s.add_argument("--database-url", default=None,
                   help="the store instead of SQLite in --data, for several nodes: "
                   "postgresql+asyncpg://USER@/DB?host=/var/run/postgresql")
    s.add_argument("--redis-url", default=None, metavar="URL",
                   help="Redis for several nodes behind a proxy (presence and signaling "
                   "between them), e.g. redis://127.0.0.1:6379/0; default: one node, "
                   "nothing shared (docs/operations.md)")
    s.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="the address of a reverse proxy in front (repeatable): its "
                   "X-Forwarded-For names the client, whose address the per-address "
                   "limits then count (deploy/haproxy/haproxy.cfg); default: none")
    s.add_argument("--cert", type=Path, default=None, help="TLS certificate (PEM)")
    s.add_argument("--key", type=Path, default=None, help="TLS private key (PEM)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="the origin of a delegation's console, whose pages may call the "
                   "API and open signaling (repeatable), e.g. http://127.0.0.1:8760; "
                   "default: a console on its default address, "
                   f"{' and '.join(DEFAULT_CONSOLE_ORIGINS)}")
    s.add_argument("--public-origin", action="append", default=[], metavar="URL",
                   help="the origin clients address this server by, e.g. "
                   "https://summit.example.org (repeatable): a signed read names it, so "
                   "that it is good at this server only; default: on a loopback --host, "
                   "the Host of each request; on another address, that address and "
                   "--port (required with 0.0.0.0 or ::, and behind a reverse proxy)")
    s.add_argument("--serve-client", action="store_true",
                   help="also serve the web client at / (development and the demo only: "
                   "keys made there live under this server's origin, which the server "
                   "can script; delegations use 'summitline console')")
    s.add_argument("--turn-url", action="append", default=[], metavar="URL",
                   help="a TURN server for the endpoints, e.g. turn:turn.example.org:3478 "
                   "(repeatable); see deploy/coturn/turnserver.conf")
    s.add_argument("--turn-secret-file", type=Path, default=None, metavar="FILE",
                   help="file holding coturn's static-auth-secret (a file, so that the "
                   "secret is not in the process list)")
    s.add_argument("--press-host", action="append", default=[], metavar="ADDR",
                   help="an address of this machine the press gateway offers to principals "
                   "and press viewers (repeatable); by default every non-loopback "
                   "interface (127.0.0.1 for a server on one machine)")
    s.add_argument("--max-press-viewers", type=int, default=MAX_PRESS_VIEWERS, metavar="N",
                   help=f"WebRTC press viewers per call (default {MAX_PRESS_VIEWERS}); more "
                   "press go to the HLS programme or a Janus Streaming mountpoint")
    s.add_argument("--janus-url", default=None, metavar="URL",
                   help="Janus's HTTP API on this machine, e.g. http://127.0.0.1:8088/janus: "
                   "the press watch through its Streaming plugin, and this server carries "
                   "none of their media, and briefings whose plan wants the SFU go "
                   "through its VideoRoom plugin (see deploy/janus/); default: the "
                   "server's own press gateway serves the press, and briefings are a mesh")
    s.add_argument("--janus-secret-file", type=Path, default=None, metavar="FILE",
                   help="file holding Janus's api_secret on its first line and the "
                   "Streaming plugin's admin_key on its second, and the VideoRoom plugin's "
                   "on its third (absent: the Streaming plugin's)")
    s.add_argument("--hls-dir", type=Path, default=None, metavar="DIR",
                   help="write the press HLS programme to DIR/CALL/ as plain files, for a "
                   "static web server to serve (deploy/nginx/summitline-hls.conf); needs "
                   "--hls-url and --hls-secret-file")
    s.add_argument("--hls-url", default=None, metavar="URL",
                   help="where that web server serves DIR, e.g. https://press.example.org/hls")
    s.add_argument("--hls-secret-file", type=Path, default=None, metavar="FILE",
                   help="file holding the secret of the web server's secure_link_md5")
    s.set_defaults(func=_serve)

    c = sub.add_parser("console", help="serve the web client for a delegation, on its "
                       "own machine", description="Serve the web client (operator console, "
                       "principal, interpreter, aide and press views) from this installed "
                       "package, on 127.0.0.1 by default. Keys are made and kept in the "
                       "browser under this console's origin, which the shared server cannot "
                       "script; the pages may connect only to this console and the one "
                       "server given. The server must admit the console's origin "
                       "(summitline serve --allow-origin; by default it admits "
                       f"{' and '.join(DEFAULT_CONSOLE_ORIGINS)}).",
                       epilog="SIGTERM or SIGINT: stops serving and exits 0.")
    c.add_argument("--server", required=True, metavar="URL",
                   help="the shared summitline server, e.g. https://summit.example.org:8750")
    c.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                   "browsers open the camera only on 127.0.0.1, localhost or HTTPS)")
    c.add_argument("--port", type=int, default=CONSOLE_PORT,
                   help=f"port (default {CONSOLE_PORT})")
    c.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a further host name browsers reach this console by (repeatable); "
                   "requests naming any other Host get 400, so that a page whose name "
                   "was pointed at this machine (DNS rebinding) gets nothing; default: "
                   "127.0.0.1, localhost, ::1 and the --host address")
    c.set_defaults(func=_console)

    dc = sub.add_parser("dev-cert", help="make a self-signed TLS certificate for development",
                        description="Write cert.pem and key.pem (readable by you only) for "
                        "local development. Browsers need TLS for camera and microphone on "
                        "any address but localhost.")
    dc.add_argument("--out", type=Path, default=Path("summitline-tls"),
                    help="directory to write to (default ./summitline-tls)")
    dc.add_argument("--host", action="append", default=None, metavar="NAME",
                    help="a host name or address the certificate is for (repeatable; "
                    "default localhost, 127.0.0.1, ::1)")
    dc.set_defaults(func=_dev_cert)

    d = sub.add_parser("demo", help="hold a headless demo call between two principals, "
                       "or a briefing of up to eight",
                       description="Start a server on loopback, create two delegations, a "
                       "link and a co-signed plan, hold a call between two synthetic "
                       "principals, end it, print and verify the record. Sends nothing "
                       "beyond 127.0.0.1. Exits 0 when media flowed both ways. With "
                       "--briefing N: N delegations, the United States hosting France, "
                       "Germany, Italy, the United Kingdom, Canada, Poland and Japan (the "
                       "first N-1 of them), linked with each guest, one principal each in a "
                       "peer-to-peer mesh; prints the pair codes on the host's screen and "
                       "the group code on each; the record is signed by all N delegations; "
                       "exits 0 when every principal received audio and video from every "
                       "other.",
                       epilog="SIGTERM or SIGINT: ends the call early, then signs, exports "
                       "and verifies the record as above; a second one aborts.")
    d.add_argument("--seconds", type=float, default=10.0,
                   help="how long to hold the call once media flows (default 10)")
    d.add_argument("--briefing", type=int, default=None, metavar="N",
                   help="hold a briefing of N delegations (2 to 8) instead of the bilateral")
    d.add_argument("--data", type=Path, default=None,
                   help="keep the server's data here (default: a temporary directory)")
    d.add_argument("--export", type=Path, default=None,
                   help="where to write the exported record (default ./CALL.record.json)")
    d.set_defaults(func=_demo)

    v = sub.add_parser("verify", help="check an exported record offline",
                       description="Check the hash chain, the plan signatures and every "
                       "delegation's signature on the head of an exported record (both of a "
                       "bilateral, all of a briefing's). Exits 0 "
                       "if it verifies, 1 naming the fault if not, 2 if it cannot be read.")
    v.add_argument("record", type=Path, metavar="RECORD", help="an exported .record.json")
    v.add_argument("--html", type=Path, default=None, metavar="FILE",
                   help="also write a readable HTML page of the verified record")
    v.add_argument("--expect", action="append", default=[], metavar="NAME=FINGERPRINT",
                   help="the key a delegation (its name or id) signs with, as you know it "
                   "(short or full fingerprint, e.g. from your console's pins): refuse "
                   "the record unless that delegation's head is signed by it "
                   "(repeatable). Offline, a key stolen before a rotation can sign a "
                   "record with a chain of its own; this is how to tell.")
    v.set_defaults(func=_verify)

    sc = sub.add_parser("schema", help="print the JSON Schema of the signaling messages",
                        description="Print the JSON Schema of every signaling message, "
                        "both directions, for writing other clients.")
    sc.set_defaults(func=_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.func(args)
    return code

"""What the netlab tests run inside lab hosts: small UDP/TCP/HTTP peers driven over a
pipe. A module of its own, importing no more than the standard library, because every
spawned child imports it (the test module would bring pytest with it)."""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time
import urllib.request
from multiprocessing.connection import Connection

ECHO_PORT = 9000
SINK_PORT = 9001
STAMP = struct.Struct("!Id")  # sequence number, send time (CLOCK_MONOTONIC is machine-wide)


def echo_server(control: Connection) -> None:
    """Echo UDP datagrams and TCP connections on ECHO_PORT until the driver hangs up."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", ECHO_PORT))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", ECHO_PORT))
    tcp.listen()
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "listen")
    sel.register(control, selectors.EVENT_READ, "control")
    control.send(("ready", [name for _, name in socket.if_nameindex()]))
    while True:
        for key, _ in sel.select():
            if key.data == "control":
                return
            if key.data == "udp":
                data, peer = udp.recvfrom(2048)
                udp.sendto(data, peer)
            elif key.data == "listen":
                conn, _ = tcp.accept()
                sel.register(conn, selectors.EVENT_READ, "tcp")
            else:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = conn.recv(2048)
                if data:
                    conn.sendall(data)
                else:
                    sel.unregister(conn)
                    conn.close()


def prober(control: Connection) -> None:
    """Answer ("udp"|"tcp", address, timeout_s) with whether an echo came back in time."""
    control.send("ready")
    while True:
        try:
            kind, address, timeout_s = control.recv()
        except EOFError:
            return
        control.send(_probe(kind, address, timeout_s))


def _probe(kind: str, address: str, timeout_s: float) -> bool:
    token = os.urandom(8)
    family = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, family) as s:
        s.settimeout(timeout_s)
        try:
            s.connect((address, ECHO_PORT))
            s.send(token)
            return s.recv(64) == token
        except OSError:  # timeouts included
            return False


def sink(control: Connection) -> None:
    """Bound to SINK_PORT; on ("collect", idle_s, limit_s), receive stamped datagrams
    until none came for idle_s after the first, and answer (sequence, one-way ms) in
    order of arrival."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("0.0.0.0", SINK_PORT))
    control.send("ready")
    while True:
        try:
            _, idle_s, limit_s = control.recv()
        except EOFError:
            return
        control.send(_collect(s, idle_s, limit_s))


def _collect(s: socket.socket, idle_s: float, limit_s: float) -> list[tuple[int, float]]:
    arrivals: list[tuple[int, float]] = []
    deadline = time.monotonic() + limit_s
    s.settimeout(limit_s)
    while time.monotonic() < deadline:
        try:
            data = s.recv(2048)
        except TimeoutError:
            break
        now = time.monotonic()
        seq, sent = STAMP.unpack(data[: STAMP.size])
        arrivals.append((seq, (now - sent) * 1000.0))
        s.settimeout(idle_s)
    return arrivals


def http_getter(control: Connection) -> None:
    """Answer each URL with the HTTP status of a GET (0: no answer in 1 s)."""
    control.send("ready")
    while True:
        try:
            url = control.recv()
        except EOFError:
            return
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                control.send(response.status)
        except OSError:  # refused, timed out, unreachable
            control.send(0)


def source(control: Connection, address: str) -> None:
    """On (count, burst, interval_s), send ``count`` stamped datagrams to the sink,
    ``burst`` at a time every ``interval_s``; answer "sent"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    control.send("ready")
    while True:
        try:
            count, burst, interval_s = control.recv()
        except EOFError:
            return
        start = time.monotonic()
        for seq in range(count):
            if seq % burst == 0:
                time.sleep(max(0.0, start + (seq // burst) * interval_s - time.monotonic()))
            s.sendto(STAMP.pack(seq, time.monotonic()) + bytes(100), (address, SINK_PORT))
        control.send("sent")

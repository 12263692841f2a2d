"""Limits on every signaling connection, on by default. Each has its reason."""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from summitline.core.messages import MAX_MESSAGE_BYTES

# A device answers the challenge in milliseconds; ten seconds allows a slow smart card.
HANDSHAKE_TIMEOUT_S = 10.0
# A browser trickles 10-30 candidates in a burst per peer connection; 30 messages a
# second sustained with bursts of 120 carries that, and stops a peer from flooding.
RATE_PER_S = 30.0
RATE_BURST = 120.0
# Link reports a device may put into a call's shared record (server/room.py): an honest
# endpoint reports a stall once and its end once, a few a minute in a bad network; a
# burst of 40 and one every 2 s sustained carry that, per device, across reconnections.
LINK_REPORT_RATE_PER_S = 0.5
LINK_REPORT_BURST = 40.0
# Messages waiting for a slow reader. Past this the reader is dropped, not buffered for.
SEND_QUEUE = 256
# Transport keepalive (WebSocket ping): a dead peer is noticed within about 40 s.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
# The WebSocket layer itself refuses frames over this (close 1009 without a word).
# It is above MAX_MESSAGE_BYTES so that an oversized message up to here reaches the
# server, which records it and says why it closes.
TRANSPORT_MAX_BYTES = 4 * MAX_MESSAGE_BYTES
# Non-fatal protocol errors tolerated on one connection before it is closed.
MAX_ERRORS = 20
# How far above a booth's last sequence number a signed booth action may go. Honest
# consoles sign the next one; a larger step is refused (seq-too-far), so that nobody can
# sign the largest number there is and shut the booth for the rest of the call.
BOOTH_SEQ_STEP = 64

# REST writes (POST) per remote address: a delegation's console makes a few per action
# (register, link, enrol, submit, co-sign, start, end, a readout, a photo). 200 at once
# and 2 a second sustained is far beyond that, and stops a stranger from filling the
# store and the server's memory with plans of its own (7,200 an hour at most). A press
# viewer's WHEP offer is not counted: it stores nothing, needs a valid viewer token, and
# viewers per call are capped (MAX_PRESS_VIEWERS); a press centre behind one address
# may well have 80 of them.
POST_RATE_PER_S = 2.0
POST_BURST = 200.0
# Addresses whose buckets are kept; past this the least recently seen is forgotten
# (it starts again with a full bucket). IPv6 addresses count per /64.
POST_ADDRESSES = 10_000
_UNCOUNTED = re.compile(r"^/api/press/[^/]+/whep$")

__all__ = ["MAX_MESSAGE_BYTES", "PostLimit", "TokenBucket"]


@dataclass
class TokenBucket:
    rate: float = RATE_PER_S
    burst: float = RATE_BURST
    tokens: float = RATE_BURST
    stamp: float = 0.0

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

# WebRTC press viewers per call: about what one gateway process serves in one core
# beside the programme's own encoding (bench/press_fanout.py).
MAX_PRESS_VIEWERS = 80


def _address_key(host: str) -> str:
    """One key per IPv4 address, one per IPv6 /64 (what one subscriber gets)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@dataclass
class PostLimit:
    """A token bucket per remote address for the REST API's POSTs (ASGI middleware):
    past it, 429 with a ``Retry-After`` and a detail saying why."""

    app: Any
    rate: float = POST_RATE_PER_S
    burst: float = POST_BURST
    addresses: int = POST_ADDRESSES
    buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)

    def allow(self, host: str, now: float | None = None) -> bool:
        key = _address_key(host)
        bucket = self.buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, self.burst)
        self.buckets[key] = bucket  # the most recently seen last
        while len(self.buckets) > self.addresses:
            self.buckets.popitem(last=False)
        return bucket.take(now)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or \
                _UNCOUNTED.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if self.allow(client[0] if client else "unknown"):
            await self.app(scope, receive, send)
            return
        wait = max(1, round(1 / self.rate))
        body = json.dumps({"detail": f"too many requests from this address: at most "
                                     f"{self.burst:.0f} at once and {self.rate:g} a "
                                     f"second; try again in {wait} s"}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"retry-after", str(wait).encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

"""Limits on every signaling connection, on by default. Each has its reason."""

from __future__ import annotations

import time
from dataclasses import dataclass

from summitline.core.messages import MAX_MESSAGE_BYTES

# A device answers the challenge in milliseconds; ten seconds allows a slow smart card.
HANDSHAKE_TIMEOUT_S = 10.0
# A browser trickles 10-30 candidates in a burst per peer connection; 30 messages a
# second sustained with bursts of 120 carries that, and stops a peer from flooding.
RATE_PER_S = 30.0
RATE_BURST = 120.0
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

__all__ = ["MAX_MESSAGE_BYTES", "TokenBucket"]


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

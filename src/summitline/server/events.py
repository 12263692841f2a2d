"""Live updates for a delegation's consoles: a stream of server-sent events.

``GET /api/delegations/{id}/events`` (a signed read, docs/protocol.md §4.6) is answered
only to that delegation, as ``text/event-stream``. Each event names what changed and
nothing more: ``link`` (a link id), ``plan`` (a plan hash), ``device`` (a device id or a
seat's code hash), ``call`` (a call id and its phase). The console then re-reads the
object with a signed GET, so the stream tells no one anything a read would not.

Bounded everywhere: at most ``MAX_STREAMS_PER_DELEGATION`` streams per delegation and
``MAX_STREAMS`` in all; each stream holds at most ``MAX_PENDING`` distinct events not yet
sent (the same event twice is sent once), and a stream that falls further behind is
ended: its client reconnects and re-reads everything, rather than the server buffering
for a slow reader. ``close()`` ends every stream (the server's stop, server/run.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

log = logging.getLogger(__name__)

# A delegation's office runs a console or two, each perhaps in a couple of tabs.
MAX_STREAMS_PER_DELEGATION = 4
# In all: registering a delegation costs nothing, so the per-delegation cap alone does
# not bound the server's open streams.
MAX_STREAMS = 256
# From one remote address: registering delegations costs nothing, so without this one
# stranger could hold every stream of the server (attacker review of issue 11, round 4).
MAX_STREAMS_PER_ADDRESS = 16
# Distinct changes a stream may owe its client. A console that re-reads on each event
# is never this far behind; one that is, is better served by a reconnect and a re-read.
MAX_PENDING = 64
# A comment line this often: proxies and the client see the stream is alive, and a
# client gone without a word is noticed at the next write.
HEARTBEAT_S = 15.0
# How long a client waits before it reconnects (the SSE "retry" field, ms).
RETRY_MS = 2_000

KINDS = ("link", "plan", "device", "call")

Event = tuple[str, str]  # (kind, JSON data)


class Stream:
    """One client's stream: the events it is owed, distinct, in order of first change."""

    def __init__(self, delegation: str, address: str = "") -> None:
        self.delegation = delegation
        self.address = address
        self._pending: dict[Event, None] = {}  # ordered set
        self._wake = asyncio.Event()
        self.ended = False

    def put(self, event: Event) -> None:
        if self.ended or event in self._pending:
            return
        if len(self._pending) >= MAX_PENDING:
            self.end()  # too far behind: the client reconnects and re-reads
            return
        self._pending[event] = None
        self._wake.set()

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    async def next(self, timeout_s: float) -> Event | None:
        """The next event; None after ``timeout_s`` without one or once ended."""
        if not self._pending and not self.ended:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
            except TimeoutError:
                return None
        if self.ended or not self._pending:
            return None
        event = next(iter(self._pending))
        del self._pending[event]
        return event


class EventStreams:
    """The open streams of this server process, by delegation."""

    def __init__(self, per_delegation: int = MAX_STREAMS_PER_DELEGATION,
                 total: int = MAX_STREAMS, per_address: int = MAX_STREAMS_PER_ADDRESS) -> None:
        self.per_delegation = per_delegation
        self.total = total
        self.per_address = per_address
        # each delegation's streams, oldest first (an ordered set)
        self._streams: dict[str, dict[Stream, None]] = {}
        self.closed = False

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def _from(self, address: str) -> int:
        return sum(1 for own in self._streams.values() for s in own if s.address == address)

    def open(self, delegation: str, address: str = "") -> Stream | None:
        """A new stream for ``delegation`` from ``address``; None if the server or the
        address is at its cap, or the server stops. A delegation at its own cap loses its
        oldest stream instead: the request is signed by its current key, and an old tab
        (or whoever kept an old key's stream) must not lock its console out."""
        if self.closed or len(self) >= self.total or self._from(address) >= self.per_address:
            return None
        own = self._streams.setdefault(delegation, {})
        while len(own) >= self.per_delegation:
            self.release(next(iter(own)))
            own = self._streams.setdefault(delegation, {})
        stream = Stream(delegation, address)
        own[stream] = None
        return stream

    def release(self, stream: Stream) -> None:
        stream.end()
        own = self._streams.get(stream.delegation)
        if own is not None:
            own.pop(stream, None)
            if not own:
                del self._streams[stream.delegation]

    def end_delegation(self, delegation: str) -> int:
        """End every stream of ``delegation`` (its key rotated: each was opened by a read
        the old key signed); how many. Its consoles reconnect with the new key."""
        streams = list(self._streams.get(delegation, ()))
        for s in streams:
            self.release(s)
        return len(streams)

    def publish(self, delegations: Iterable[str], kind: str, **fields: Any) -> None:
        """Tell the streams of ``delegations`` that the object ``fields`` name changed."""
        assert kind in KINDS, kind
        event = (kind, json.dumps(fields, sort_keys=True, separators=(",", ":")))
        for d in set(delegations):
            for stream in list(self._streams.get(d, ())):
                stream.put(event)

    def close(self) -> int:
        """End every stream (the server stops); how many were open."""
        self.closed = True
        streams = [s for own in self._streams.values() for s in own]
        for s in streams:
            s.end()
        return len(streams)


def frame(kind: str, data: str) -> bytes:
    """One server-sent event: ``event:`` and ``data:`` lines, then a blank line."""
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def _body(streams: EventStreams, stream: Stream,
                heartbeat_s: float) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY_MS}\n: open\n\n".encode()
        while not stream.ended:
            event = await stream.next(heartbeat_s)
            if event is not None:
                yield frame(*event)
            elif not stream.ended:
                yield b": heartbeat\n\n"
    finally:
        streams.release(stream)


def router() -> APIRouter:
    # here, not at the top: reads needs the hub, and the hub holds the streams
    from summitline.server.reads import signed_read

    r = APIRouter(prefix="/api")

    @r.get("/delegations/{id}/events", response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}}}})
    async def events(id: str, request: Request) -> StreamingResponse:
        """What changes for this delegation (links, plans, devices, calls), as server-sent
        events naming each changed object: for the delegation itself (signed read)."""
        await signed_read(request, {id: None})
        streams: EventStreams = request.app.state.events
        stream = streams.open(id, request.client.host if request.client else "")
        if stream is None:
            if streams.closed:
                raise HTTPException(503, detail="the server is stopping; reconnect shortly")
            raise HTTPException(429, detail="too many event streams open from this address "
                                "or on this server; close another console tab and reconnect")
        return StreamingResponse(_body(streams, stream, HEARTBEAT_S),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    return r

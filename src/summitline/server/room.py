"""A call room: the live state of one call and the one writer of its record.

Every change goes through ``CallRoom.record``: under the room's lock it applies the
core event (which may raise ``IllegalEvent`` and change nothing), appends the entry
to the store durably, and only then makes the new state current. So memory never
runs ahead of the record, and after a crash the record replays to the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from summitline.core import call as c
from summitline.core import policy
from summitline.core.plan import SignedPlan
from summitline.core.record import Entry, advance, replay, to_event
from summitline.core.roles import Phase, Role
from summitline.server.closecodes import CALL_ENDED
from summitline.server.limits import LINK_REPORT_BURST, LINK_REPORT_RATE_PER_S, TokenBucket
from summitline.store import RecordMoved, Store, StoreError

log = logging.getLogger(__name__)

# Appends lost to other nodes in a row before one gives up (server/cluster.py), and the
# most a node waits before its next try (random, growing with the tries: two nodes busy
# with one call take turns instead of one losing every time).
APPEND_TRIES = 40
APPEND_BACKOFF_S = 0.005

Clock = Callable[[], int]  # milliseconds since the epoch


class Endpoint(Protocol):
    """What a room needs of a signaling connection."""

    device: str
    left: asyncio.Event  # set once its leaving is in the call's state

    def send(self, message: dict[str, Any]) -> None: ...
    def error(self, code: str, message: str, fatal: bool = False,
              ref: str | None = None) -> None: ...
    def finish(self, code: int, reason: str) -> None: ...


class CallRoom:
    def __init__(self, store: Store, clock: Clock, signed: SignedPlan,
                 entries: list[Entry]) -> None:
        self.store = store
        self.clock = clock
        self.signed = signed
        self.state = replay(signed, entries)
        self.start_proof = next((_proof(e.data) for e in entries
                                 if e.kind == "call.started"), None)
        self.head: Entry | None = entries[-1] if entries else None
        # channel -> the latest signed booth action (what endpoints check ``live`` by)
        self.booth_actions: dict[str, dict[str, Any]] = {}
        for e in entries:
            self._note_booth(e)
        self.endpoints: dict[str, Endpoint] = {}
        # Latest connection health each endpoint reported (not recorded: it is telemetry).
        self.health: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._press_timer: asyncio.Task[None] | None = None
        # the delegation-private parts of the record: delegation -> its chain's head
        self.private_heads: dict[str, Entry | None] = {}
        self.pages: dict[str, dict[str, Any]] = {}  # open pages by id, until acknowledged
        self.held: set[str] = set()  # principals whose floor audio is on hold
        # Link reports that go into the shared record: the last state per (device, peer,
        # generation), so a repeat is not recorded twice, and a budget per device that
        # outlives its connections (attacker review of issue 13, d5: reports within the
        # message rate, and reconnections refilling it, grew every delegation's record
        # without bound).
        self.link_states: dict[tuple[str, str, int], str] = {}
        self.link_budget: dict[str, TokenBucket] = {}
        # Called when the doors shut or the call ends (the press gateway closes its feed).
        self.on_doors_shut: Callable[[], Awaitable[None]] | None = None
        # Called after every change of phase (the SFU's feeds follow it: server/sfu.py).
        self.on_phase: Callable[[], Awaitable[None]] | None = None
        # Called after each entry of the shared record (the consoles' live updates).
        self.on_entry: Callable[[], None] | None = None
        # Called after each entry this process appended (other nodes then read it).
        self.on_append: Callable[[Entry], None] | None = None
        # Called after entries appended elsewhere were read (server/cluster.py).
        self.on_caught_up: Callable[[], None] | None = None

    @property
    def call_id(self) -> str:
        return self.signed.plan.call

    def link_report(self, device: str, peer: str, generation: int, state: str,
                    now: float | None = None) -> str:
        """What becomes of a link report: "record" (and relay) a new state within the
        device's budget; only "relay" a repeat of the last state this device reported for
        this link (its peer may have missed the first); "drop" one past the budget."""
        key = (device, peer, generation)
        if self.link_states.get(key) == state:
            return "relay"
        bucket = self.link_budget.setdefault(device, TokenBucket(
            rate=LINK_REPORT_RATE_PER_S, burst=LINK_REPORT_BURST, tokens=LINK_REPORT_BURST))
        if not bucket.take(now):
            return "drop"
        self.link_states[key] = state
        return "record"

    async def record(self, kind: str, data: dict[str, Any], event: c.Event | None = None,
                     at_ms: int | None = None) -> Entry:
        async with self._lock:
            return await self._record_locked(kind, data, event, at_ms)

    async def _record_locked(self, kind: str, data: dict[str, Any], event: c.Event | None,
                             at_ms: int | None) -> Entry:
        for tries in range(APPEND_TRIES):
            self._check_booth_seq(kind, data)  # again after each catch-up (attacker e1)
            new_state, entry = advance(self.state, self.head,
                                       self.clock() if at_ms is None else at_ms, kind, data,
                                       event)
            try:
                await self.store.append(self.call_id, entry)
            except RecordMoved:
                # Another node appended first (the store refuses an entry that does not
                # follow the head it holds): read what it wrote, and try on top of it (the
                # event may no longer be legal: IllegalEvent, nothing recorded).
                await asyncio.sleep(random.uniform(0, APPEND_BACKOFF_S * min(tries + 1, 8)))
                if not await self._catch_up_locked():
                    raise
                continue
            self.state, self.head = new_state, entry
            self._note_booth(entry)
            if self.on_entry is not None:
                self.on_entry()
            if self.on_append is not None:
                self.on_append(entry)
            return entry
        raise StoreError(f"record of {self.call_id!r}: {APPEND_TRIES} appends lost in a row")

    async def catch_up(self) -> None:
        """Read the entries other nodes appended since this room's head."""
        async with self._lock:
            await self._catch_up_locked()

    async def _catch_up_locked(self) -> bool:
        """Take the stored entries past the head into the state; whether there were any."""
        seq = -1 if self.head is None else self.head.seq
        newer = await self.store.entries(self.call_id, after=seq)
        phase = self.state.phase
        for entry in newer:
            if entry.prev != (self.head.hash if self.head else entry.prev):
                raise StoreError(f"record of {self.call_id!r} forks at {entry.seq}")
            event = to_event(entry)
            if event is not None:
                self.state = self.state.apply(event)
            self.head = entry
            if entry.kind == "call.started":
                self.start_proof = _proof(entry.data)
            self._note_booth(entry)
            if self.on_entry is not None:
                self.on_entry()
        if self.state.phase is not phase:
            self.arm_press_timer()
        if newer and self.on_caught_up is not None:
            self.on_caught_up()
        return bool(newer)

    def _check_booth_seq(self, kind: str, data: dict[str, Any]) -> None:
        """A signed booth action must come after the booth's last, as the record holds it
        now: signaling checks it against this room before recording, but another node may
        have recorded a booth action meanwhile, which the catch-up of a lost append brings
        in. Without this check, two nodes could each record the same sequence number (a
        partner's accept racing the live interpreter's new request), and every endpoint
        would refuse the second as a replay while the server announced it."""
        if kind in BOOTH_KINDS and "signature" in data and isinstance(data.get("seq"), int):
            last = self.booth_actions.get(data.get("channel", ""), {}).get("seq", 0)
            if data["seq"] <= last:
                raise c.IllegalEvent("stale-seq", f"the booth's sequence is at {last}; "
                                     "sign the next one")

    def _note_booth(self, e: Entry) -> None:
        if e.kind in BOOTH_KINDS and "signature" in e.data:
            self.booth_actions[e.data["channel"]] = booth_action(e.data)

    async def record_private(self, delegation: str, kind: str, data: dict[str, Any]) -> Entry:
        """Append to ``delegation``'s private chain: only that delegation ever reads it."""
        async with self._lock:
            if delegation not in self.private_heads:
                entries = await self.store.private_entries(self.call_id, delegation)
                self.private_heads[delegation] = entries[-1] if entries else None
            for _ in range(APPEND_TRIES):
                entry = Entry.make(self.private_heads[delegation], self.clock(), kind, data)
                try:
                    await self.store.append_private(self.call_id, delegation, entry)
                    self.private_heads[delegation] = entry
                    return entry
                except RecordMoved:
                    entries = await self.store.private_entries(self.call_id, delegation)
                    self.private_heads[delegation] = entries[-1] if entries else None
            raise StoreError(f"the private record of {self.call_id!r} kept moving")

    async def note(self, kind: str, data: dict[str, Any], remote: str = "") -> None:
        """Record something that changes no state (a refusal). After the end the record
        is closed and its head signed, so such notes go to the server's incidents."""
        if self.state.phase is Phase.ENDED:
            await self.store.add_incident(self.clock(), remote, kind, str(data)[:400])
        else:
            await self.record(kind, data)

    # -- phases --------------------------------------------------------------------------
    async def change_phase(self, kind: str, data: dict[str, Any],
                           make: Callable[[int], c.Event]) -> None:
        now = self.clock()
        await self.record(kind, data, make(now), at_ms=now)
        if kind == "call.started":
            self.start_proof = _proof(data)
        self.broadcast({"type": "phase", "phase": str(self.state.phase),
                        "press_deadline_ms": self.state.press_deadline_ms,
                        "start": self.start_proof})
        self.arm_press_timer()
        if self.state.phase is not Phase.OPEN and self.on_doors_shut is not None:
            await self.on_doors_shut()
        if self.on_phase is not None:
            await self.on_phase()
        if self.state.phase is Phase.ENDED:
            for endpoint in list(self.endpoints.values()):
                endpoint.finish(CALL_ENDED, "the call has ended")
            self.endpoints.clear()

    def arm_press_timer(self) -> None:
        """While the press window is open, shut the doors at its deadline."""
        deadline = self.state.press_deadline_ms
        if deadline is None or self._press_timer is not None:
            return
        self._press_timer = asyncio.create_task(self._close_at(deadline))

    async def _close_at(self, deadline_ms: int) -> None:
        await asyncio.sleep(max(0.0, (deadline_ms - self.clock()) / 1000))
        if self.state.phase is Phase.OPEN:
            with contextlib.suppress(c.IllegalEvent):  # another node shut them first
                await self.change_phase("doors.closed", {"reason": "press window ended"},
                                        c.CloseDoors)

    def stop(self) -> None:
        if self._press_timer is not None:
            self._press_timer.cancel()

    # -- presence ------------------------------------------------------------------------
    def presence_of(self, device: str) -> list[str]:
        """Admitted devices that ``device`` may ever connect to (and so may know about)."""
        plan = self.signed.plan
        return [d for d in policy.peers_of(plan, Phase.CLOSED, device)
                if d in self.state.admitted]

    async def gone(self, device: str, reason: str) -> bool:
        """Record that ``device`` left without its connection saying so (its node was
        lost); tell its peers. Whether it was recorded (another node may have been first)."""
        booth_before = dict(self.state.live)
        try:
            await self.record("endpoint.left", {"device": device, "reason": reason},
                              c.Leave(device))
        except c.IllegalEvent:
            return False
        self.tell_peers(device, {"type": "peer-left", "device": device})
        if self.state.live != booth_before:
            self.broadcast(self.booth_state())
        return True

    def booth_state(self) -> dict[str, Any]:
        return {"type": "booth", "live": dict(self.state.live),
                "sources": dict(self.state.sources), "actions": dict(self.booth_actions)}

    def broadcast(self, message: dict[str, Any]) -> None:
        for endpoint in list(self.endpoints.values()):
            endpoint.send(message)

    def tell_delegation(self, delegation: str, message: dict[str, Any],
                        roles: frozenset[Role] = frozenset({Role.AIDE})) -> int:
        """Send to the connected devices of ``delegation`` in ``roles``; how many got it."""
        sent = 0
        for device, endpoint in list(self.endpoints.items()):
            p = self.signed.plan.participant(device)
            if p is not None and p.delegation == delegation and p.role in roles:
                endpoint.send(message)
                sent += 1
        return sent

    def tell_peers(self, device: str, message: dict[str, Any]) -> None:
        for peer in self.presence_of(device):
            if peer in self.endpoints:
                self.endpoints[peer].send(message)


BOOTH_KINDS = ("booth.live", "booth.handover", "booth.quiet", "booth.request", "booth.accept",
               "booth.decline")
BOOTH_ACTION_FIELDS = ("action", "from", "to", "seq", "at", "signature")


def booth_action(data: dict[str, Any]) -> dict[str, Any]:
    """The signed booth action a ``booth.*`` entry carries, as endpoints check it."""
    return {k: data.get(k) for k in BOOTH_ACTION_FIELDS}


def _proof(data: dict[str, Any]) -> dict[str, Any] | None:
    """The signed start request as endpoints check it: statements.control(call, "start",
    delegation, at) under the delegation's key."""
    if not {"by", "at", "signature"} <= data.keys():
        return None
    return {"delegation": data["by"], "at": data["at"], "signature": data["signature"]}

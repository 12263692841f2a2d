"""The call state machine.

Theory of operation: a ``Call`` is the state of one call on one signed plan. It changes
only through ``Call.apply(event)``; every rule about phases, admission and peer
connection generations lives here. ``apply`` either returns the new state or raises
``IllegalEvent`` and leaves the state as it was (the state is immutable). The server
records every event it applies, and rebuilds a call after a restart by applying the
recorded events again, so the record and the state cannot disagree.

Phases move by one table, ``TRANSITIONS``. Admission: only devices in the plan, never
after the end, and at most one principal per delegation at a time (a plan may list a
spare terminal for a principal; only one of them is on the air). Generations: each
pair of devices numbers its peer connections; an offer must carry a higher number
than any before it (so an old offer cannot be replayed), and an answer must answer
the pending offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from summitline.core import policy
from summitline.core.plan import CallPlan
from summitline.core.roles import Phase, Role

__all__ = ["TRANSITIONS", "Answer", "Call", "CloseDoors", "End", "Event", "IllegalEvent",
           "Join", "Leave", "Offer", "Phase", "Reset", "Start", "pair"]


class IllegalEvent(Exception):
    """The event is not allowed in this state. ``code`` is stable; the text explains."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# (phase, transition) -> next phase. Anything not in this table is illegal.
TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.PLANNED, "start-with-press"): Phase.OPEN,
    (Phase.PLANNED, "start-closed"): Phase.CLOSED,
    (Phase.OPEN, "close-doors"): Phase.CLOSED,
    (Phase.PLANNED, "end"): Phase.ENDED,  # cancelled before it began
    (Phase.OPEN, "end"): Phase.ENDED,
    (Phase.CLOSED, "end"): Phase.ENDED,
}


@dataclass(frozen=True)
class Start:
    at_ms: int


@dataclass(frozen=True)
class CloseDoors:
    at_ms: int


@dataclass(frozen=True)
class End:
    at_ms: int


@dataclass(frozen=True)
class Join:
    device: str


@dataclass(frozen=True)
class Leave:
    device: str


@dataclass(frozen=True)
class Reset:
    """Every signaling connection is gone (the server restarted); media may go on."""


@dataclass(frozen=True)
class Offer:
    sender: str
    receiver: str
    generation: int


@dataclass(frozen=True)
class Answer:
    sender: str
    receiver: str
    generation: int


Event = Start | CloseDoors | End | Join | Leave | Reset | Offer | Answer


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Call:
    plan: CallPlan
    phase: Phase = Phase.PLANNED
    admitted: frozenset[str] = frozenset()
    started_ms: int | None = None
    ended_ms: int | None = None
    # per device pair: the highest generation offered, and who offered it while unanswered
    generations: dict[tuple[str, str], int] = field(default_factory=dict)
    pending: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def press_deadline_ms(self) -> int | None:
        if self.phase is not Phase.OPEN or self.started_ms is None:
            return None
        return self.started_ms + 1000 * self.plan.press_window_s

    def generation(self, a: str, b: str) -> int:
        return self.generations.get(pair(a, b), 0)

    def apply(self, event: Event) -> Call:
        handler = _HANDLERS[type(event)]
        return handler(self, event)

    def _move(self, transition: str) -> Phase:
        target = TRANSITIONS.get((self.phase, transition))
        if target is None:
            raise IllegalEvent("phase", f"cannot {transition} a call that is {self.phase}")
        return target


def _start(call: Call, e: Start) -> Call:
    transition = "start-with-press" if call.plan.press_window_s > 0 else "start-closed"
    return replace(call, phase=call._move(transition), started_ms=e.at_ms)


def _close_doors(call: Call, e: CloseDoors) -> Call:
    return replace(call, phase=call._move("close-doors"))


def _end(call: Call, e: End) -> Call:
    return replace(call, phase=call._move("end"), ended_ms=e.at_ms, admitted=frozenset(),
                   pending={})


def _join(call: Call, e: Join) -> Call:
    me = call.plan.participant(e.device)
    if me is None:
        raise IllegalEvent("not-in-plan", "this device is not in the call plan")
    if call.phase is Phase.ENDED:
        raise IllegalEvent("call-ended", "the call has ended")
    if e.device in call.admitted:
        raise IllegalEvent("already-joined", f"{me.name} is already connected to this call")
    if me.role is Role.PRINCIPAL:
        for other in call.admitted:
            p = call.plan.participant(other)
            if p and p.role is Role.PRINCIPAL and p.delegation == me.delegation:
                raise IllegalEvent("seat-taken", f"the principal's seat of this delegation is "
                                   f"held by {p.name}; only one principal per delegation")
    return replace(call, admitted=call.admitted | {e.device})


def _leave(call: Call, e: Leave) -> Call:
    if e.device not in call.admitted:
        raise IllegalEvent("not-joined", "this device is not connected to the call")
    pending = {k: v for k, v in call.pending.items() if e.device not in k}
    return replace(call, admitted=call.admitted - {e.device}, pending=pending)


def _reset(call: Call, e: Reset) -> Call:
    return replace(call, admitted=frozenset(), pending={})


def _check_pair(call: Call, sender: str, receiver: str) -> None:
    if sender not in call.admitted:
        raise IllegalEvent("not-joined", "join the call before signaling")
    if receiver not in call.admitted:
        raise IllegalEvent("peer-absent", "that endpoint is not connected to the call")
    if not policy.may_connect(call.plan, call.phase, sender, receiver):
        raise IllegalEvent("not-permitted", f"the plan does not let {call.plan.label(sender)} "
                           f"connect to {call.plan.label(receiver)} while the call is "
                           f"{call.phase}")


def _offer(call: Call, e: Offer) -> Call:
    _check_pair(call, e.sender, e.receiver)
    key = pair(e.sender, e.receiver)
    if e.generation <= call.generations.get(key, 0):
        raise IllegalEvent("stale-generation", f"generation {e.generation} is not newer than "
                           f"{call.generations.get(key, 0)}: an old or replayed offer")
    return replace(call, generations={**call.generations, key: e.generation},
                   pending={**call.pending, key: e.sender})


def _answer(call: Call, e: Answer) -> Call:
    _check_pair(call, e.sender, e.receiver)
    key = pair(e.sender, e.receiver)
    if call.pending.get(key) != e.receiver or e.generation != call.generations.get(key):
        raise IllegalEvent("no-offer", f"there is no pending offer of generation "
                           f"{e.generation} from that endpoint to answer")
    pending = {k: v for k, v in call.pending.items() if k != key}
    return replace(call, pending=pending)


_HANDLERS: dict[type, Callable[[Call, Any], Call]] = {
    Start: _start, CloseDoors: _close_doors, End: _end, Join: _join, Leave: _leave,
    Reset: _reset, Offer: _offer, Answer: _answer,
}

"""The call state machine.

Theory of operation: a ``Call`` is the state of one call on one signed plan. It changes
only through ``Call.apply(event)``; every rule about phases, admission and peer
connection generations lives here. ``apply`` either returns the new state or raises
``IllegalEvent`` and leaves the state as it was (the state is immutable). The server
records every event it applies, and rebuilds a call after a restart by applying the
recorded events again, so the record and the state cannot disagree.

Interpretation: the interpreters of one channel (language) share a booth; at most one
of them is live at a time, and only the live one hands over (to a booth partner) or
falls quiet. A handover may also go by request: the live interpreter asks its partner
(``RequestHandover``), who accepts within ``HANDOVER_ANSWER_MS`` (and is live from then on)
or declines; until then, and after a decline or no answer, the asker stays live. An
interpreter's source is the floor or another channel (relay).

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

__all__ = ["FLOOR", "TRANSITIONS", "Answer", "Call", "CloseDoors", "End", "Event", "GoLive",
           "GoQuiet", "HANDOVER_ANSWER_MS", "Handover", "HandoverAnswer", "IllegalEvent", "Join",
           "Leave", "Offer", "Phase", "Reset", "RequestHandover", "SetSource", "Start", "pair"]


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


@dataclass(frozen=True)
class GoLive:
    device: str


@dataclass(frozen=True)
class Handover:
    sender: str  # the live interpreter
    receiver: str  # its booth partner, live from now on


# How long a booth partner has to answer a handover request (issue 16: ISO 24019 consoles
# give the partner a minute); after it, an accept is refused and the asker stays live.
HANDOVER_ANSWER_MS = 60_000


@dataclass(frozen=True)
class RequestHandover:
    sender: str  # the live interpreter, live until its partner accepts
    receiver: str  # its booth partner, asked to take over
    at_ms: int  # the server's clock: the answer is due within HANDOVER_ANSWER_MS


@dataclass(frozen=True)
class HandoverAnswer:
    sender: str  # the partner that was asked
    receiver: str  # the live interpreter that asked
    accept: bool  # True: the sender is live from now on; False: nothing changes
    at_ms: int


@dataclass(frozen=True)
class GoQuiet:
    device: str


@dataclass(frozen=True)
class SetSource:
    device: str
    source: str  # FLOOR or a channel


FLOOR = "floor"

Event = (Start | CloseDoors | End | Join | Leave | Reset | Offer | Answer | GoLive | Handover
         | RequestHandover | HandoverAnswer | GoQuiet | SetSource)


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
    live: dict[str, str] = field(default_factory=dict)  # channel -> its live interpreter
    sources: dict[str, str] = field(default_factory=dict)  # interpreter -> FLOOR or channel
    # channel -> the open handover request: (asker, asked, at_ms). Any change of who is
    # live in the booth, or either of them leaving, withdraws it.
    requests: dict[str, tuple[str, str, int]] = field(default_factory=dict)

    @property
    def press_deadline_ms(self) -> int | None:
        if self.phase is not Phase.OPEN or self.started_ms is None:
            return None
        return self.started_ms + 1000 * self.plan.press_window_s

    def source_of(self, interpreter: str) -> str:
        return self.sources.get(interpreter, FLOOR)

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
                   pending={}, live={}, requests={})


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
    live = {ch: d for ch, d in call.live.items() if d != e.device}  # its booth falls quiet
    requests = {ch: r for ch, r in call.requests.items() if e.device not in r[:2]}
    return replace(call, admitted=call.admitted - {e.device}, pending=pending, live=live,
                   requests=requests)


def _reset(call: Call, e: Reset) -> Call:
    return replace(call, admitted=frozenset(), pending={}, requests={})


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


def _interpreter(call: Call, device: str) -> str:
    """The channel of an admitted interpreter, in a phase with media; or raise."""
    p = call.plan.participant(device)
    if p is None or p.role is not Role.INTERPRETER:
        raise IllegalEvent("not-interpreter", "only an interpreter of the plan has a booth")
    if device not in call.admitted:
        raise IllegalEvent("not-joined", "join the call first")
    if call.phase not in policy.MEDIA_PHASES:
        raise IllegalEvent("phase", f"no interpretation while the call is {call.phase}")
    return p.language


def _go_live(call: Call, e: GoLive) -> Call:
    channel = _interpreter(call, e.device)
    holder = call.live.get(channel)
    if holder == e.device:
        raise IllegalEvent("already-live", "this interpreter is live already")
    # A holder no longer connected (the server restarted and it never came back) does
    # not keep the booth: the seat is free.
    if holder is not None and holder in call.admitted:
        raise IllegalEvent("booth-busy", f"{call.plan.label(holder)} is live in the "
                           f"{channel} booth; it hands over")
    return _on_air(call, channel, e.device)


def _on_air(call: Call, channel: str, device: str | None) -> Call:
    """``device`` live in ``channel``'s booth (None: quiet); an open request is void."""
    live = {c: d for c, d in call.live.items() if c != channel}
    if device is not None:
        live[channel] = device
    return replace(call, live=live,
                   requests={c: r for c, r in call.requests.items() if c != channel})


def _partner_of(call: Call, sender: str, receiver: str) -> str:
    """The channel of the live ``sender``, whose connected booth partner is ``receiver``."""
    channel = _interpreter(call, sender)
    if call.live.get(channel) != sender:
        raise IllegalEvent("not-live", "only the live interpreter hands over")
    partner = call.plan.participant(receiver)
    if partner is None or partner.role is not Role.INTERPRETER or \
            partner.language != channel or receiver == sender:
        raise IllegalEvent("not-partner", f"hand over to a partner in the {channel} booth")
    if receiver not in call.admitted:
        raise IllegalEvent("peer-absent", "the booth partner is not connected")
    return channel


def _handover(call: Call, e: Handover) -> Call:
    return _on_air(call, _partner_of(call, e.sender, e.receiver), e.receiver)


def _request_handover(call: Call, e: RequestHandover) -> Call:
    channel = _partner_of(call, e.sender, e.receiver)  # a new request replaces an open one
    return replace(call, requests={**call.requests, channel: (e.sender, e.receiver, e.at_ms)})


def _answer_handover(call: Call, e: HandoverAnswer) -> Call:
    channel = _interpreter(call, e.sender)
    request = call.requests.get(channel)
    if request is None or request[:2] != (e.receiver, e.sender):
        raise IllegalEvent("no-request", "no handover request from that partner is open")
    if e.at_ms > request[2] + HANDOVER_ANSWER_MS:
        raise IllegalEvent("request-expired", f"the handover request is older than "
                           f"{HANDOVER_ANSWER_MS // 1000} s; the partner stays live")
    if not e.accept:
        return replace(call, requests={c: r for c, r in call.requests.items() if c != channel})
    return _on_air(call, channel, e.sender)


def _go_quiet(call: Call, e: GoQuiet) -> Call:
    channel = _interpreter(call, e.device)
    if call.live.get(channel) != e.device:
        raise IllegalEvent("not-live", "this interpreter is not live")
    return _on_air(call, channel, None)


def _set_source(call: Call, e: SetSource) -> Call:
    channel = _interpreter(call, e.device)
    if e.source != FLOOR and (e.source == channel or e.source not in call.plan.channels):
        raise IllegalEvent("bad-source", f"the source is the floor or another channel "
                           f"({', '.join(c for c in call.plan.channels if c != channel)})")
    return replace(call, sources={**call.sources, e.device: e.source})


_HANDLERS: dict[type, Callable[[Call, Any], Call]] = {
    Start: _start, CloseDoors: _close_doors, End: _end, Join: _join, Leave: _leave,
    Reset: _reset, Offer: _offer, Answer: _answer, GoLive: _go_live, Handover: _handover,
    RequestHandover: _request_handover, HandoverAnswer: _answer_handover, GoQuiet: _go_quiet,
    SetSource: _set_source,
}

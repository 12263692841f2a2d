"""The permission table: roles x phases -> what media may flow from whom to whom.

This is the one place that says who may send what to whom. Endpoints consult it
before they add a track to a peer connection; the server consults it before it
relays an offer. Both read the same signed plan, so they agree.
"""

from __future__ import annotations

from summitline.core.plan import CallPlan
from summitline.core.roles import MediaKind, Phase, Role

A = frozenset({MediaKind.AUDIO})
AV = frozenset({MediaKind.AUDIO, MediaKind.VIDEO})
NOTHING: frozenset[MediaKind] = frozenset()

# Phases in which peer-to-peer media flows at all. Before the start nobody is on the
# air; after the end nothing flows.
MEDIA_PHASES = frozenset({Phase.OPEN, Phase.CLOSED})

# (sender role, receiver role) -> media the sender sends. Absent pairs send nothing.
# Interpreter video is granted per plan (see ``media``); aides, operators and press
# receive nothing peer-to-peer.
SENDS: dict[tuple[Role, Role], frozenset[MediaKind]] = {
    (Role.PRINCIPAL, Role.PRINCIPAL): AV,  # the floor, both ways
    (Role.PRINCIPAL, Role.INTERPRETER): A,  # floor audio to the booth
    (Role.INTERPRETER, Role.PRINCIPAL): A,  # the interpretation channel
    (Role.INTERPRETER, Role.INTERPRETER): A,  # relay and booth partner
}


def media(plan: CallPlan, phase: Phase, sender: str, receiver: str) -> frozenset[MediaKind]:
    """What ``sender`` may send ``receiver`` (device fingerprints) in ``phase``."""
    if phase not in MEDIA_PHASES or sender == receiver:
        return NOTHING
    s, r = plan.participant(sender), plan.participant(receiver)
    if s is None or r is None:
        return NOTHING
    kinds = SENDS.get((s.role, r.role), NOTHING)
    if (s.role, r.role) == (Role.PRINCIPAL, Role.INTERPRETER) and plan.interpreter_video:
        kinds = AV
    return kinds


def media_in_call(plan: CallPlan, sender: str, receiver: str) -> frozenset[MediaKind]:
    """What ``sender`` may send ``receiver`` in some media phase: the keys a sender hands
    a receiver (docs/protocol.md 5.10) and what it publishes to an SFU (5.12)."""
    return frozenset().union(*(media(plan, phase, sender, receiver)
                               for phase in MEDIA_PHASES))


def sends_in_call(plan: CallPlan, device: str) -> frozenset[MediaKind]:
    """What ``device`` may send anyone of the plan in some media phase."""
    return frozenset().union(*(media_in_call(plan, device, p.device)
                               for p in plan.participants))


def may_connect(plan: CallPlan, phase: Phase, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` may hold a peer connection at all."""
    return bool(media(plan, phase, a, b) or media(plan, phase, b, a))


def peers_of(plan: CallPlan, phase: Phase, device: str) -> list[str]:
    """Devices ``device`` may hold a peer connection with, in plan order."""
    return [p.device for p in plan.participants if may_connect(plan, phase, device, p.device)]


# Roles whose devices may end the call from the call itself. (Operators end it with the
# delegation key over the REST API.)
MAY_END = frozenset({Role.PRINCIPAL})


def may_end(plan: CallPlan, device: str) -> bool:
    p = plan.participant(device)
    return p is not None and p.role in MAY_END

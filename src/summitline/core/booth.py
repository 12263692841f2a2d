"""Signed booth actions: who may be live in a booth, as the interpreters signed it.

The server announces who is live in each booth; an endpoint believes it only where an
interpreter of that booth signed it. Going live is signed by the interpreter going live,
a handover by the live interpreter handing over, falling quiet by the one falling quiet
(``statements.booth``). A handover by request is three actions: ``request`` (the live one
asks its partner, and stays live), then the partner's ``accept`` (it is live from then on)
or ``decline`` (the asker stays live); the server holds the request open for a minute
(core/call.py). Each action carries a sequence number per call and channel,
strictly increasing, so that an old go-live replayed after a quiet or a handover is
stale. The server may always take away (say a booth is quiet: an interpreter left); it
can never put anyone on air that no valid action put there.

``BoothLedger`` is pure: the Python client feeds it what the server sends and acts on
``live``; ``web/booth.js`` is its port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import SignatureError

ACTIONS = ("live", "handover", "quiet", "request", "accept", "decline")
# The actions that name the other partner (``to``): whom one hands over to or asks, or the
# asker one answers.
NAMING = frozenset({"handover", "request", "accept", "decline"})


class BoothActionError(ValueError):
    """A booth action that no interpreter of that booth could have signed."""


def statement_of(call: str, plan: CallPlan, channel: str,
                 action: dict[str, Any]) -> dict[str, Any]:
    """The statement ``action`` ({action, from, to, seq, at, signature}) claims to sign."""
    kind, seq, at = action.get("action"), action.get("seq"), action.get("at")
    if kind not in ACTIONS or not isinstance(seq, int) or not isinstance(at, int) or \
            isinstance(seq, bool) or isinstance(at, bool):
        raise BoothActionError("malformed booth action")
    to = action.get("to")
    if (kind in NAMING) != isinstance(to, str):
        raise BoothActionError("a handover, a request or its answer, and only these, "
                               "name 'to'")
    return statements.booth(call, plan.hash, channel, kind, str(action.get("from")), seq,
                            at, to)


def verify(call: str, plan: CallPlan, channel: str, action: dict[str, Any]) -> str | None:
    """Check ``action`` on ``channel``; the interpreter it puts on air (None: quiet).
    Raises BoothActionError if no interpreter of the booth signed it as it stands."""
    statement = statement_of(call, plan, channel, action)
    booth = {p.device: p for p in plan.booth(channel)}
    signer = booth.get(statement["from"])
    if signer is None or signer.role is not Role.INTERPRETER:
        raise BoothActionError("the signer is not an interpreter of that booth")
    if statement["action"] in NAMING and (
            statement["to"] not in booth or statement["to"] == statement["from"]):
        raise BoothActionError("a handover to someone outside the booth")
    try:
        signer.key.verify(statement, str(action.get("signature")))
    except (SignatureError, ValueError) as exc:  # ValueError: not canonicalisable
        raise BoothActionError(f"it does not verify ({exc})") from None
    # Who is live after it: the one going live, asking or accepting; the one handed
    # over to, or whose request was declined (it stays live).
    if statement["action"] in ("live", "request", "accept"):
        return str(statement["from"])
    if statement["action"] in ("handover", "decline"):
        return str(statement["to"])
    return None


@dataclass
class BoothLedger:
    """Per channel, the latest valid action this endpoint has seen, and so who may be
    live. Survives reconnections (it is the endpoint's memory, not the server's)."""

    call: str
    plan: CallPlan
    seq: dict[str, int] = field(default_factory=dict)  # channel -> last accepted seq
    _digest: dict[str, str] = field(default_factory=dict)  # channel -> its statement's
    holder: dict[str, str | None] = field(default_factory=dict)  # as the actions say
    since: dict[str, int] = field(default_factory=dict)  # channel -> that action's signed at
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # channel -> that action

    def take(self, actions: dict[str, Any]) -> list[str]:
        """Take the actions the server shows (channel -> action); alarms for the bad."""
        alarms = []
        for channel, action in actions.items():
            if not isinstance(action, dict) or channel not in self.plan.channels:
                alarms.append(f"a booth action for {channel!r} that is no channel; ignored")
                continue
            try:
                on_air = verify(self.call, self.plan, channel, action)
            except BoothActionError as exc:
                alarms.append(f"a booth action in the {channel} booth that no interpreter "
                              f"of it signed: {exc}; ignored")
                continue
            seq, key = action["seq"], digest(statement_of(self.call, self.plan, channel,
                                                          action))
            last = self.seq.get(channel)
            if last is not None and (seq < last or (seq == last and key != self._digest[
                    channel])):
                alarms.append(f"an old booth action replayed in the {channel} booth "
                              f"(sequence {seq}, seen {last}); ignored")
                continue
            self.seq[channel], self._digest[channel] = seq, key
            self.holder[channel] = on_air
            self.since[channel] = action["at"]
            self.last[channel] = action
        return alarms

    def live(self, claimed: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        """Who is live, of what the server claims: only those a valid action put there.
        The server may leave anyone out (a booth falls quiet when its interpreter left)."""
        out, alarms = {}, []
        for channel, device in claimed.items():
            if device is not None and device == self.holder.get(channel):
                out[channel] = device
            elif device is not None:
                alarms.append(f"the server says {self.plan.label(str(device))} is live in "
                              f"the {channel} booth, but no interpreter of the booth signed "
                              "that; not believed")
        return out, alarms

    def asker(self, channel: str, device: str) -> str | None:
        """Who asks ``device`` to take over in ``channel``: the latest action is a request
        naming it. (Whether it is still open, the server decides: a minute, core/call.py.)"""
        last = self.last.get(channel)
        if last is None or last.get("action") != "request" or last.get("to") != device:
            return None
        return str(last["from"])

    def next_seq(self, channel: str) -> int:
        return self.seq.get(channel, 0) + 1

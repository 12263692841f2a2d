"""Plans and keys for tests that need no server."""

from __future__ import annotations

from dataclasses import dataclass, field

from summitline.client.operator import participant
from summitline.core.call import Call, Join, Start
from summitline.core.plan import CallPlan, Delegation, SignedPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey


@dataclass
class World:
    """Two delegations, their principals, a spare principal terminal, an aide, an
    interpreter and a device outside the plan."""

    us: PrivateKey = field(default_factory=PrivateKey.generate)
    ru: PrivateKey = field(default_factory=PrivateKey.generate)
    us_principal: PrivateKey = field(default_factory=PrivateKey.generate)
    us_spare: PrivateKey = field(default_factory=PrivateKey.generate)
    ru_principal: PrivateKey = field(default_factory=PrivateKey.generate)
    us_aide: PrivateKey = field(default_factory=PrivateKey.generate)
    ru_interpreter: PrivateKey = field(default_factory=PrivateKey.generate)
    outsider: PrivateKey = field(default_factory=PrivateKey.generate)

    def plan(self, press_window_s: int = 0, call: str = "call-1") -> CallPlan:
        us, ru = self.us.fingerprint, self.ru.fingerprint
        return CallPlan(
            call=call, link="link-1", title="Test call",
            delegations=(Delegation(us, "United States", self.us.public),
                         Delegation(ru, "Russian Federation", self.ru.public)),
            participants=(
                participant(self.us_principal, us, Role.PRINCIPAL, "US principal", "en"),
                participant(self.us_spare, us, Role.PRINCIPAL, "US spare terminal", "en"),
                participant(self.ru_principal, ru, Role.PRINCIPAL, "RU principal", "ru"),
                participant(self.us_aide, us, Role.AIDE, "US aide", "en"),
                participant(self.ru_interpreter, ru, Role.INTERPRETER, "RU interpreter", "ru"),
            ),
            press_window_s=press_window_s)

    def signed(self, plan: CallPlan | None = None) -> SignedPlan:
        plan = plan or self.plan()
        return SignedPlan(plan, {k.fingerprint: k.sign(statements.plan(plan.hash))
                                 for k in (self.us, self.ru)})


def started(plan: CallPlan, *devices: str, at_ms: int = 1000) -> Call:
    """A call on ``plan``, started, with ``devices`` joined."""
    state = Call(plan).apply(Start(at_ms))
    for d in devices:
        state = state.apply(Join(d))
    return state

"""Plans and keys for tests that need no server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from summitline.client.operator import participant
from summitline.core.call import Call, Join, Start
from summitline.core.plan import CallPlan, Delegation, Participant, SignedPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PrivateKey


def delegation(key: PrivateKey, name: str) -> Delegation:
    """A plan's delegation entry, its name signed by the delegation itself."""
    return Delegation(key.fingerprint, name, key.public,
                      key.sign(statements.register(name, key.public.b64u)))


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
    # ECDSA signatures are randomised: each statement is signed once, so that plan() is
    # the same plan (the same hash) every time it is called.
    _signed: dict[str, str] = field(default_factory=dict)

    def sign(self, key: PrivateKey, statement: dict[str, Any]) -> str:
        k = f"{key.fingerprint} {digest(statement)}"
        if k not in self._signed:
            self._signed[k] = key.sign(statement)
        return self._signed[k]

    def delegation(self, key: PrivateKey, name: str) -> Delegation:
        return Delegation(key.fingerprint, name, key.public,
                          self.sign(key, statements.register(name, key.public.b64u)))

    def participant(self, key: PrivateKey, by: PrivateKey, role: Role, name: str,
                    language: str) -> Participant:
        """A participant certified by the delegation whose key is ``by``."""
        return participant(key, by.fingerprint, role, name, language, self.sign(
            by, statements.device(by.fingerprint, key.fingerprint, key.public.b64u, str(role),
                                  name)))

    def plan(self, press_window_s: int = 0, call: str = "call-1") -> CallPlan:
        us, ru, p = self.us, self.ru, self.participant
        return CallPlan(
            call=call, link="link-1", title="Test call",
            delegations=(self.delegation(us, "United States"),
                         self.delegation(ru, "Russian Federation")),
            participants=(
                p(self.us_principal, us, Role.PRINCIPAL, "US principal", "en"),
                p(self.us_spare, us, Role.PRINCIPAL, "US spare terminal", "en"),
                p(self.ru_principal, ru, Role.PRINCIPAL, "RU principal", "ru"),
                p(self.us_aide, us, Role.AIDE, "US aide", "en"),
                p(self.ru_interpreter, ru, Role.INTERPRETER, "RU interpreter", "ru"),
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

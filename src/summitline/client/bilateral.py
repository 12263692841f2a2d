"""Provisioning a bilateral call from nothing: two delegations, a link, a signed plan.

The steps the two communications officers take, in order, against a server. Used by
``summitline demo``, the tests and the benchmarks.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from summitline.client.operator import Operator, participant
from summitline.client.session import Identity
from summitline.core.plan import AUDIO_VOICE, CallPlan
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey


@dataclass
class Side:
    operator: Operator
    principal: PrivateKey
    principal_name: str
    language: str

    def identity(self, key: PrivateKey | None = None) -> Identity:
        return Identity(key or self.principal, dict(self.operator.pinned))


@dataclass
class Bilateral:
    a: Side
    b: Side
    plan: CallPlan
    link_id: str

    @property
    def call(self) -> str:
        return self.plan.call


async def provision(http: httpx.AsyncClient, *, names: tuple[str, str] = (
        "United States", "Russian Federation"), principals: tuple[str, str] = (
        "President of the United States", "President of the Russian Federation"),
        languages: tuple[str, str] = ("en", "ru"), press_window_s: int = 0,
        title: str = "Secure video call", extra: list[tuple[int, PrivateKey, Role, str]] | None
        = None, cosign: bool = True, press_channels: tuple[str, ...] = (),
        audio: str = AUDIO_VOICE) -> Bilateral:
    """Register both delegations, link them, and (co-)sign a plan with two principals.

    ``extra`` adds participants: (side 0 or 1, device key, role, name).
    """
    ops = [Operator(http, name, PrivateKey.generate()) for name in names]
    for op in ops:
        await op.register()
    link_id = f"link-{secrets.token_hex(6)}"
    await ops[0].propose_link(link_id, ops[1].id)
    # Out of band (a phone call between the two offices) the proposer reads its short
    # fingerprint; the acceptor checks it against what the server shows.
    spoken = (await http.get(f"/api/delegations/{ops[0].id}")).json()["short_fingerprint"]
    await ops[1].accept_link(link_id, spoken)
    await ops[0].pin_link(link_id)
    sides = [Side(op, PrivateKey.generate(), principals[i], languages[i])
             for i, op in enumerate(ops)]
    people = [participant(s.principal, s.operator.key, Role.PRINCIPAL, s.principal_name,
                          s.language) for s in sides]
    for side, key, role, name in extra or []:
        people.append(participant(key, ops[side].key, role, name, languages[side]))
    plan = CallPlan(call=f"call-{secrets.token_hex(6)}", link=link_id, title=title,
                    delegations=(ops[0].delegation(), ops[1].delegation()),
                    participants=tuple(people), press_window_s=press_window_s,
                    press_channels=press_channels, audio=audio)
    await ops[0].submit_plan(plan)
    if cosign:
        await ops[1].cosign_plan(plan)
    return Bilateral(sides[0], sides[1], plan, link_id)

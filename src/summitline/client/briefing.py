"""Provisioning a briefing from nothing: a host and its guests, a link between the host
and each guest, and a plan every delegation signed (docs/protocol.md §3.1).

The steps the communications officers take, in order, against a server: the host's
office links with each guest's (each guest checks the host's short fingerprint, read
to it out of band), drafts the plan and signs it; each guest's office reviews and
co-signs it, knowing the other guests only through the host. Used by ``summitline demo
--briefing``, the tests and the benchmarks.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx

from summitline.client.bilateral import Side
from summitline.client.operator import Operator, participant
from summitline.core.plan import MAX_BRIEFING_DELEGATIONS, CallPlan
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey

# The briefing of the reports: the US president and four European leaders; then more
# allies, up to the most a briefing holds.
DELEGATIONS: tuple[tuple[str, str, str], ...] = (
    ("United States", "President of the United States", "en"),
    ("France", "President of the French Republic", "fr"),
    ("Germany", "Chancellor of Germany", "de"),
    ("Italy", "Prime Minister of Italy", "it"),
    ("United Kingdom", "Prime Minister of the United Kingdom", "en"),
    ("Canada", "Prime Minister of Canada", "en"),
    ("Poland", "President of Poland", "pl"),
    ("Japan", "Prime Minister of Japan", "ja"),
)


@dataclass
class Briefing:
    sides: list[Side]  # the host first
    plan: CallPlan
    links: list[str]  # one per guest, in the order of sides[1:]

    @property
    def call(self) -> str:
        return self.plan.call

    @property
    def host(self) -> Side:
        return self.sides[0]


async def provision_briefing(http: httpx.AsyncClient, size: int = 5, *,
                             press_window_s: int = 0, title: str = "Briefing of allies",
                             extra: list[tuple[int, PrivateKey, Role, str, str]] | None = None,
                             cosign: bool = True, sfu_above: int | None = None) -> Briefing:
    """Register ``size`` delegations (2..8, the first hosts), link the host with each
    guest, and have every delegation sign a plan with one principal each. ``extra`` adds
    participants: (side index, device key, role, name, language). ``sfu_above``: the
    plan's SFU threshold (0: through the SFU whatever the size; None: absent)."""
    if not 2 <= size <= MAX_BRIEFING_DELEGATIONS:
        raise ValueError(f"a briefing has 2 to {MAX_BRIEFING_DELEGATIONS} delegations")
    ops = [Operator(http, name, PrivateKey.generate()) for name, _, _ in DELEGATIONS[:size]]
    for op in ops:
        await op.register()
    host, guests = ops[0], ops[1:]
    spoken = (await http.get(f"/api/delegations/{host.id}")).json()["short_fingerprint"]
    links = []
    for guest in guests:
        link = f"link-{secrets.token_hex(6)}"
        await host.propose_link(link, guest.id)
        await guest.accept_link(link, spoken)
        await host.pin_link(link)
        links.append(link)
    sides = [Side(op, PrivateKey.generate(), person, language)
             for op, (_, person, language) in zip(ops, DELEGATIONS, strict=False)]
    people = [participant(s.principal, s.operator.key, Role.PRINCIPAL, s.principal_name,
                          s.language) for s in sides]
    for side, key, role, name, language in extra or []:
        people.append(participant(key, ops[side].key, role, name, language))
    plan = CallPlan(call=f"briefing-{secrets.token_hex(6)}", link=None, title=title,
                    host=host.id, links=tuple(links),
                    delegations=tuple(host.delegation(op.id) for op in ops),
                    participants=tuple(people), press_window_s=press_window_s,
                    sfu_above=sfu_above)
    await host.submit_plan(plan)
    if cosign:
        for guest in guests:
            await guest.cosign_plan(plan)
    return Briefing(sides, plan, links)

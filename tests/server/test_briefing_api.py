"""The server's checks on a briefing plan (issue 13): its links join the host with each
guest, each established; every delegation must sign before the call starts."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import httpx
import pytest

from summitline.client.briefing import provision_briefing
from summitline.client.operator import ApiError, Operator
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PrivateKey


async def submit(http: httpx.AsyncClient, op: Operator, plan_json: dict[str, Any]
                 ) -> httpx.Response:
    return await http.post("/api/plans", json={"plan": plan_json, "signatures": {
        op.id: op.key.sign(statements.plan(digest(plan_json)))}})


async def test_a_briefing_is_listed_under_each_of_its_links_and_starts_when_all_signed(
        http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3, cosign=False)
    host, fr, de = (s.operator for s in b.sides)
    # not signed by every delegation: it does not start
    with pytest.raises(ApiError, match="not signed by") as refused:
        await host.control(b.call, "start")
    assert refused.value.status == 409
    await fr.cosign_plan(b.plan)
    for guest, link in ((fr, b.links[0]), (de, b.links[1])):
        listed = await guest._call("GET", f"/api/links/{link}/plans")
        assert [(p["hash"], p["missing"]) for p in listed] == [(b.plan.hash, [de.id])]
    await de.cosign_plan(b.plan)
    await host.control(b.call, "start")


async def test_a_briefing_whose_links_do_not_join_the_host_with_each_guest_is_refused(
        http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3, cosign=False)
    host, fr, de = (s.operator for s in b.sides)
    plan = b.plan
    # a link between the two guests, not the host
    link = f"link-{secrets.token_hex(4)}"
    await fr.propose_link(link, de.id)
    await de.accept_link(link, (await http.get(f"/api/delegations/{fr.id}")).json()[
        "short_fingerprint"])
    other = replace(plan, call=f"{plan.call}-x", links=(plan.links[0], link))
    r = await submit(http, host, other.to_json())
    assert r.status_code == 422 and "does not join the host" in r.text
    # the same guest's link twice: Germany is joined by none
    twice = replace(plan, call=f"{plan.call}-y", links=(plan.links[0], plan.links[0]))
    r = await submit(http, host, twice.to_json())
    assert r.status_code == 422 and "one link per guest" in r.text
    # a link only proposed
    italy = Operator(http, "Italy", PrivateKey.generate())
    await italy.register()
    pending = f"link-{secrets.token_hex(4)}"
    await host.propose_link(pending, italy.id)
    r = await submit(http, host, replace(plan, call=f"{plan.call}-z",
                                         links=(plan.links[0], pending)).to_json())
    assert r.status_code == 409 and "not yet accepted" in r.text
    # an unknown link
    r = await submit(http, host, replace(plan, call=f"{plan.call}-w",
                                         links=(plan.links[0], "link-nowhere")).to_json())
    assert r.status_code == 404

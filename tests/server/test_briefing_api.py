"""The server's checks on a briefing plan (issue 13): its links join the host with each
guest, each established; every delegation must sign before the call starts."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

import httpx
import pytest

from summitline.client.briefing import provision_briefing
from summitline.client.operator import ApiError, Operator
from summitline.core.record import verify_export
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PrivateKey
from summitline.server.limits import LINK_REPORT_BURST
from summitline.server.room import CallRoom
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL


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


async def test_a_rotation_after_the_head_signature_leaves_the_record_verifiable(
        http: httpx.AsyncClient) -> None:
    """Attacker review of issue 13 (d3): Germany rotates during the briefing, signs the
    head with its new key, then rotates again. The export's chain for Germany stops at
    the key that signed, so the record every delegation signed still verifies."""
    b = await provision_briefing(http, 3)
    us, fr, de = (s.operator for s in b.sides)
    await us.control(b.call, "start")
    await de.rotate()
    await us.control(b.call, "end")
    for op in (us, fr, de):
        await op.sign_record(b.call, b.plan.hash)
    signed_with = de.key.public
    assert len(verify_export(await us.export_record(b.call)).signers) == 3
    await de.rotate()
    raw = await us.export_record(b.call)
    record = verify_export(raw)
    assert len(record.signers) == 3 and record.head_keys[de.id] == signed_with
    chain = json.loads(raw)["rotations"][de.id]
    assert chain[-1]["key"] == signed_with.b64u and len(chain) == 1


async def test_a_guest_cannot_submit_a_briefing_in_the_host_s_name(
        http: httpx.AsyncClient) -> None:
    """Attacker review of issue 13 (d2): France drafts a briefing hosted by the US over
    the US's links; signed by France alone, it is refused, so Germany is never asked to
    co-sign what the host never drafted."""
    b = await provision_briefing(http, 3, cosign=False)
    fr = b.sides[1].operator
    other = replace(b.plan, call=f"{b.plan.call}-by-france", title="Drafted by a guest")
    r = await submit(http, fr, other.to_json())
    assert r.status_code == 422 and "submitted by its host" in r.text


def test_link_reports_reach_the_record_once_each_and_within_a_budget_per_device() -> None:
    """Attacker review of issue 13 (d5): a device's link reports (within the message
    rate, and again after each reconnection) grew the shared record without bound."""
    room = CallRoom.__new__(CallRoom)  # only the report bookkeeping, no store
    room.link_states, room.link_budget = {}, {}
    assert room.link_report("a", "b", 1, "lost", now=1000.0) == "record"
    assert room.link_report("a", "b", 1, "lost", now=1000.0) == "relay"  # a repeat
    assert room.link_report("a", "b", 1, "restored", now=1000.0) == "record"
    fates = [room.link_report("a", "b", 1, ("lost", "restored")[i % 2], now=1000.0)
             for i in range(100)]
    spent = int(LINK_REPORT_BURST) - 2
    assert fates[:spent] == ["record"] * spent
    # then a new state is dropped; a repeat of the last recorded one is only relayed
    assert set(fates[spent:]) == {"drop", "relay"} and fates[spent:].count("drop") == 31
    # the budget refills slowly, and another device has its own
    assert room.link_report("a", "b", 1, "lost", now=1060.0) == "record"
    assert room.link_report("c", "b", 1, "lost", now=1000.0) == "record"

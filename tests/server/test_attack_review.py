"""Findings of the attacker review of issue 11 (each reproduced against a live server by
a script, then fixed): a test per finding, asserting the refusal."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import provision
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.reads import signed_get
from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey, PublicKey
from summitline.server.app import Settings
from summitline.server.run import running
from tests.client.test_certificates import enrol_and_certify


async def linked(http: httpx.AsyncClient, x: Operator, y: Operator) -> str:
    link = f"link-{secrets.token_hex(4)}"
    await x.propose_link(link, y.id)
    spoken = (await http.get(f"/api/delegations/{x.id}")).json()["short_fingerprint"]
    await y.accept_link(link, spoken)
    await x.pin_link(link)
    return link


def bait(link: str, b: Operator, puppet: Operator, planted: PrivateKey | PublicKey) -> CallPlan:
    """B's plan with its sock puppet, naming another's device as B's aide under B's own
    certificate."""
    return CallPlan(call=f"bait-{secrets.token_hex(4)}", link=link, title="bait",
                    delegations=(b.delegation(), puppet.delegation()), participants=(
                        participant(PrivateKey.generate(), b.key, Role.PRINCIPAL, "b", "ru"),
                        participant(PrivateKey.generate(), puppet.key, Role.PRINCIPAL, "p",
                                    "ru"),
                        participant(planted, b.key, Role.AIDE, "planted", "ru")))


async def test_certifying_another_s_device_shows_none_of_its_calls(
        http: httpx.AsyncClient) -> None:
    # finding 1: a delegation certified the other side's device key as its own aide in a
    # plan with a sock puppet, and then read every call of that device
    call = await provision(http)
    a, b = call.a.operator, call.b.operator
    device = next(p for p in call.plan.participants if p.delegation == a.id)
    own = (await signed_get(http, a.key, f"/api/devices/{device.device}/calls")).json()
    assert [c["call"] for c in own] == [call.call]
    puppet = Operator(http, "Sock puppet", PrivateKey.generate())
    await puppet.register()
    link = await linked(http, b, puppet)
    bait_plan = bait(link, b, puppet, device.key)
    await b.submit_plan(bait_plan)
    await puppet.cosign_plan(bait_plan)
    seen = (await signed_get(http, b.key, f"/api/devices/{device.device}/calls")).json()
    assert [c["call"] for c in seen] == [bait_plan.call]  # never the device's call under A


async def test_an_enrolled_device_is_named_only_under_its_own_delegation(
        http: httpx.AsyncClient) -> None:
    call = await provision(http)
    a, b = call.a.operator, call.b.operator
    aide = await enrol_and_certify(a, http, "A's aide", Role.AIDE)
    puppet = Operator(http, "Sock puppet", PrivateKey.generate())
    await puppet.register()
    link = await linked(http, b, puppet)
    with pytest.raises(ApiError, match="another delegation enrolled"):
        await b.submit_plan(bait(link, b, puppet, aide))


async def test_a_revoked_device_reads_nothing_more(http: httpx.AsyncClient) -> None:
    # finding 4: a revoked device still read the plan, the call and the record
    k = PrivateKey.generate()
    call = await provision(http, extra=[(0, k, Role.AIDE, "A's aide")])
    path = f"/api/calls/{call.call}"
    assert (await signed_get(http, k, path)).status_code == 200
    a = call.a.operator
    enrolled = await enrol_and_certify(a, http, "A's second aide", Role.AIDE)
    assert (await signed_get(http, enrolled, f"/api/devices/{enrolled.fingerprint}/calls")
            ).status_code == 200
    await a.revoke(enrolled.fingerprint)
    r = await signed_get(http, enrolled, f"/api/devices/{enrolled.fingerprint}/calls")
    assert r.status_code == 403 and "revoked" in r.text


async def test_a_forwarded_for_header_changes_no_address(tmp_path: Path) -> None:
    # finding 8: uvicorn trusted X-Forwarded-For from loopback, so one client made a row
    # (and a connection allowance) per address it claimed
    data = tmp_path / "server"
    async with running(Settings(data_dir=data)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        ws_url = base.replace("http", "ws", 1) + "/ws"
        for i in range(5):
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(ws_url, origin="http://evil.example",  # type: ignore[arg-type]
                                         additional_headers={"X-Forwarded-For": f"203.0.113.{i}"},
                                         open_timeout=10)
        token = (data / "operator.token").read_text().strip()
        page = (await http.get("/api/incidents",
                               headers={"Authorization": f"Bearer {token}"})).json()
    assert [(row["remote"], row["count"]) for row in page["incidents"]] == [("127.0.0.1", 5)]

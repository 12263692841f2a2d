"""Findings of the attacker review of issue 11 (each reproduced against a live server by
a script, then fixed): a test per finding, asserting the refusal."""

from __future__ import annotations

import gc
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import provision
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.reads import read_headers, signed_get
from summitline.core.plan import CallPlan
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey
from summitline.server.app import Settings, create_app
from summitline.server.hub import Hub
from summitline.server.limits import POST_BURST, POST_RATE_PER_S, PostLimit
from summitline.server.run import running
from tests.client.test_certificates import enrol_and_certify
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL


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


# -- (b) the press routes answer only for a call with something public ------------------

async def test_the_press_routes_show_nothing_of_a_call_without_a_window(
        http: httpx.AsyncClient) -> None:
    # the press page and the press room told a keyless stranger the title, the
    # delegations and the times of any call id, even one without a press window
    call = await provision(http, title="Secret border talks")  # no press window
    a = call.a.operator
    made_up = "call-000000000000"
    for route in ("/api/press/{}", "/api/pressroom/{}"):
        for moment in ("planned", "ended"):
            if moment == "ended" and route.startswith("/api/pressroom"):
                await a.control(call.call, "start")
                await a.control(call.call, "end")
            real = await http.get(route.format(call.call))
            unknown = await http.get(route.format(made_up))
            assert real.status_code == unknown.status_code == 404, (route, moment)
            assert real.json()["detail"].replace(call.call, made_up) == \
                unknown.json()["detail"], (route, moment)
            assert "Secret" not in real.text
    # once a side publishes, the press room is public (the press page never is)
    await a.publish_readout(call.call, "We talked.")
    room = (await http.get(f"/api/pressroom/{call.call}")).json()
    assert room["title"] == "Secret border talks" and len(room["readouts"]) == 1
    assert (await http.get(f"/api/press/{call.call}")).status_code == 404
    # a call with a press window has a press page from the start
    windowed = await provision(http, press_window_s=60)
    page = (await http.get(f"/api/press/{windowed.call}")).json()
    assert page["state"] == "waiting"
    assert (await http.get(f"/api/pressroom/{windowed.call}")).status_code == 404  # not yet


# -- (c) no existence oracle on closed reads ---------------------------------------------

async def test_an_unsigned_or_badly_signed_read_is_401_whether_or_not_the_object_exists(
        http: httpx.AsyncClient) -> None:
    device = PrivateKey.generate()  # named by the plan, not enrolled here
    call = await provision(http, extra=[(0, device, Role.AIDE, "A's aide")])
    plan = call.plan
    link = plan.link
    pairs = [(f"/api/calls/{call.call}", "/api/calls/call-000000000000"),
             (f"/api/calls/{call.call}/record", "/api/calls/call-000000000000/record"),
             (f"/api/calls/{call.call}/record/export",
              "/api/calls/call-000000000000/record/export"),
             (f"/api/calls/{call.call}/record/export.html",
              "/api/calls/call-000000000000/record/export.html"),
             (f"/api/plans/{plan.hash}", "/api/plans/" + "0" * 64),
             (f"/api/links/{link}", "/api/links/link-000000000000"),
             (f"/api/links/{link}/plans", "/api/links/link-000000000000/plans")]
    nosy = Operator(http, "Nosy", PrivateKey.generate())
    await nosy.register()
    unknown_key = PrivateKey.generate()
    now = time.time_ns() // 1_000_000
    server = statements.origin(str(http.base_url))

    def refusals(path: str) -> dict[str, dict[str, str]]:
        other = "/api/delegations/" + nosy.id + "/links"
        return {
            "unsigned": {},
            "malformed": {"Summitline-Signer": "x", "Summitline-At": "1",
                          "Summitline-Signature": "y"},
            "stale": read_headers(nosy.key, "GET", path, server, now_ms=now - 120_000),
            "signed for another path": read_headers(nosy.key, "GET", other, server),
            "signer not known here": read_headers(unknown_key, "GET", path, server),
            "plan device, bad signature": read_headers(
                unknown_key, "GET", path, server, signer=device.fingerprint),
        }

    for real, missing in pairs:
        answers = {}
        for path in (real, missing):
            for what, headers in refusals(path).items():
                r = await http.get(path, headers=headers)
                assert r.status_code == 401, (path, what, r.status_code)
                answers.setdefault(what, set()).add(r.json()["detail"])
        # the same words whether the object exists or not
        assert all(len(details) == 1 for details in answers.values()), (real, answers)
        # a valid signer the object does not concern: 403 for a real one and for none,
        # in the same words (anyone may register a delegation: a 404 would be an oracle)
        mine, none = (await signed_get(http, nosy.key, real)), (
            await signed_get(http, nosy.key, missing))
        assert mine.status_code == none.status_code == 403, (real, missing)
        assert mine.json() == none.json(), (mine.json(), none.json())
    # the plan's own device (not enrolled here) reads its call with the plan's key, and
    # gets 401 for a call that does not exist: it is known only through plans
    assert (await signed_get(http, device, f"/api/calls/{call.call}")).status_code == 200
    assert (await signed_get(http, device, "/api/calls/call-000000000000")).status_code == 401


# -- (d) REST quotas ---------------------------------------------------------------------

def test_the_post_bucket_refills_at_its_rate() -> None:
    limit = PostLimit(app=None)
    assert (limit.rate, limit.burst) == (POST_RATE_PER_S, POST_BURST) == (2.0, 200.0)
    assert all(limit.allow("192.0.2.1", now=100.0) for _ in range(200))
    assert not limit.allow("192.0.2.1", now=100.0)
    assert limit.allow("192.0.2.2", now=100.0)  # another address has its own
    assert limit.allow("192.0.2.1", now=100.5) and not limit.allow("192.0.2.1", now=100.5)
    # IPv6: one bucket per /64; an IPv4-mapped address is its IPv4 address
    assert all(limit.allow(f"2001:db8::{i:x}", now=100.0) for i in range(200))
    assert not limit.allow("2001:db8::ffff:1", now=100.0)
    assert not limit.allow("::ffff:192.0.2.1", now=100.0)
    small = PostLimit(app=None, addresses=3)
    for i in range(5):
        small.allow(f"192.0.2.{i}", now=1.0)
    assert list(small.buckets) == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]


async def test_a_burst_of_posts_gets_429_and_the_server_stays_usable(tmp_path: Path) -> None:
    # rest_flood.py: a stranger submitted plans without end, each stored and cached
    async with running(Settings(data_dir=tmp_path / "server")) as base, \
            httpx.AsyncClient(base_url=base) as http:
        statuses = [(await http.post("/api/links", json={})).status_code
                    for _ in range(int(POST_BURST) + 40)]
        assert statuses[0] == 422  # counted, then refused for what it is
        assert 429 in statuses and statuses.count(429) >= 20, statuses.count(429)
        r = await http.post("/api/delegations", json={})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "too many requests from this address" in r.json()["detail"]
        assert r.headers["x-content-type-options"] == "nosniff"  # security headers too
        # a press viewer's offer is not counted (it needs a token; viewers are capped)
        assert (await http.post("/api/press/call-x/whep")).status_code == 401
        # reads go on, for this address too
        assert (await http.get("/api/nonce")).status_code == 200
        # and another address is not held back by this one's flood
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=base, transport=other) as second:
            op = Operator(second, "Elsewhere", PrivateKey.generate())
            await op.register()
            assert (await second.get(f"/api/delegations/{op.id}")).status_code == 200


@pytest.fixture
async def app_hub(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Hub]]:
    app = create_app(Settings(data_dir=tmp_path / "server"))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://summitline.test") as http:
        yield http, app.state.hub


async def test_a_plan_signed_by_one_side_keeps_no_room_in_memory(
        app_hub: tuple[httpx.AsyncClient, Hub]) -> None:
    http, hub = app_hub
    call = await provision(http, cosign=False)
    x, y = call.a.operator, call.b.operator
    loaded = hub.loaded
    plans = []
    for _ in range(5):
        plan = CallPlan(call=f"c-{secrets.token_hex(6)}", link=call.plan.link, title="t",
                        delegations=(x.delegation(), y.delegation()),
                        participants=call.plan.participants)
        r = await http.post("/api/plans", json={
            "plan": plan.to_json(), "signatures": {x.id: x.key.sign(statements.plan(plan.hash))}})
        assert r.status_code == 201, r.text
        plans.append(plan)
    gc.collect()
    assert hub.loaded == loaded and len(hub._unsigned) == 0
    await y.cosign_plan(plans[0])  # complete: its call can run, its room stays
    assert hub.loaded == loaded + 1
    assert await hub.room(plans[0].call) is await hub.room(plans[0].call)

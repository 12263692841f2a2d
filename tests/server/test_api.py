"""The REST API: provisioning checks every signature and refuses what does not fit."""

from __future__ import annotations

import json

import httpx
import pytest

from summitline.client.bilateral import Bilateral
from summitline.client.operator import ApiError, Operator
from summitline.client.reads import signed_get
from summitline.core.plan import CallPlan
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL


async def test_the_openapi_document_lists_the_api(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    for path in ("/api/delegations", "/api/links", "/api/plans",
                 "/api/calls/{call}/control", "/api/calls/{call}/record/export"):
        assert path in doc["paths"]
    schema = (await http.get("/api/protocol")).json()
    assert schema["version"] == 1 and "client_to_server" in schema


async def test_registration_needs_proof_of_the_private_key(http: httpx.AsyncClient) -> None:
    key, other = PrivateKey.generate(), PrivateKey.generate()
    body = {"name": "Kingdom", "key": key.public.b64u,
            "signature": other.sign(statements.register("Kingdom", key.public.b64u))}
    r = await http.post("/api/delegations", json=body)
    assert r.status_code == 403
    op = Operator(http, "Kingdom", key)
    assert (await op.register())["short_fingerprint"].count("-") == 4
    with pytest.raises(ApiError) as err:
        await op.register()
    assert err.value.status == 409


async def test_a_link_is_accepted_only_after_the_fingerprint_check(
        http: httpx.AsyncClient) -> None:
    a, b = (Operator(http, n, PrivateKey.generate()) for n in ("A", "B"))
    await a.register()
    await b.register()
    await a.propose_link("link-x", b.id)
    with pytest.raises(ApiError, match="not the one checked out of band"):
        await b.accept_link("link-x", "0000-0000-0000-0000-0000")

    class Lying(httpx.AsyncBaseTransport):
        """A server that shows the short fingerprint the victim expects, whatever the key."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if request.url.path == "/api/links/link-x":
                await response.aread()
                body = json.loads(response.content)
                for d in body["delegations"]:
                    d["short_fingerprint"] = "0000-0000-0000-0000-0000"
                return httpx.Response(response.status_code, json=body)
            return response

    async with httpx.AsyncClient(base_url=str(http.base_url),
                                 transport=Lying(httpx.AsyncHTTPTransport())) as lying:
        fooled = Operator(lying, "B", b.key)
        with pytest.raises(ApiError, match="not the one checked out of band"):
            await fooled.accept_link("link-x", "0000-0000-0000-0000-0000")
    assert (await signed_get(http, a.key, "/api/links/link-x")).json()["state"] == "proposed"
    spoken = (await http.get(f"/api/delegations/{a.id}")).json()["short_fingerprint"]
    await b.accept_link("link-x", spoken)
    await a.pin_link("link-x")
    assert a.pinned[b.id] == b.key.public and b.pinned[a.id] == a.key.public
    with pytest.raises(ApiError) as err:
        await b.accept_link("link-x", spoken)  # once only
    assert err.value.status == 409


async def test_plans_must_fit_their_link(http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    plan = bilateral.plan
    raw = plan.to_json()
    raw["call"] = "call-other"
    stranger = Operator(http, "Stranger", PrivateKey.generate())
    await stranger.register()
    raw["delegations"][1] = stranger.delegation().to_json()
    raw["participants"] = [p for p in raw["participants"]
                           if p["delegation"] == bilateral.a.operator.id]
    r = await http.post("/api/plans", json={"plan": raw, "signatures": {}})
    assert r.status_code == 422  # Stranger has no principal, or is not of the link
    good = CallPlan.from_json({**plan.to_json(), "call": "call-unsigned"})
    r = await http.post("/api/plans", json={"plan": good.to_json(), "signatures": {}})
    assert r.status_code == 422 and "proposer's signature" in r.json()["detail"]
    with pytest.raises(ApiError) as err:
        await bilateral.a.operator.submit_plan(plan)  # the same call again
    assert err.value.status == 409


async def test_the_record_head_is_signed_only_after_the_end(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    with pytest.raises(ApiError) as err:
        await bilateral.a.operator.sign_record(bilateral.call, bilateral.plan.hash)
    assert err.value.status == 409
    await bilateral.a.operator.control(bilateral.call, "start")
    await bilateral.b.operator.control(bilateral.call, "end")
    for side in (bilateral.a, bilateral.b):
        await side.operator.sign_record(bilateral.call, bilateral.plan.hash)
    call = (await signed_get(http, bilateral.b.operator.key,
                             f"/api/calls/{bilateral.call}")).json()
    assert call["phase"] == "ended" and call["duration_ms"] >= 0
    with pytest.raises(ApiError) as err:
        await bilateral.a.operator.control(bilateral.call, "start")
    assert err.value.status == 409 and "ended" in err.value.detail


async def test_the_record_as_a_readable_page_escapes_what_it_shows(
        http: httpx.AsyncClient) -> None:
    from summitline.client.bilateral import provision

    call = await provision(http, title="<script>alert(1)</script> talks")
    await call.a.operator.control(call.call, "start")
    await call.a.operator.control(call.call, "end")
    page = (await signed_get(http, call.a.operator.key,
                             f"/api/calls/{call.call}/record/export.html"))
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "Not verified" in page.text and "not signed" in page.text  # not yet signed
    for side in (call.a, call.b):
        await side.operator.sign_record(call.call, call.plan.hash)
    page = (await signed_get(http, call.b.operator.key,
                             f"/api/calls/{call.call}/record/export.html"))
    assert "Verified: the chain is intact" in page.text and "call.ended" in page.text
    assert "<style>" not in page.text  # the server's CSP forbids inline style
    css = await http.get("/api/record.css")
    assert css.headers["content-type"].startswith("text/css") and "table" in css.text

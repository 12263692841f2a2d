"""Device certificates and self-signed names on the server and in the Python operator
(issue 11): who may certify a device, what the devices list carries, and the co-sign
review that shows every signed field (attack 4)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import insert

from summitline.client.bilateral import Bilateral
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, SessionRefused
from summitline.core.plan import CallPlan, PlanError
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import PrivateKey, short_fingerprint
from summitline.store import schema
from summitline.store.sql import open_store
from tests.client.test_certificates import enrol_and_certify
from tests.client.test_session import WAIT_S
from tests.factories import World
from tests.postgres import both_stores

pytestmark = both_stores  # each test that stores runs on SQLite and on PostgreSQL


async def enrolled(op: Operator, http: httpx.AsyncClient, name: str) -> PrivateKey:
    key = PrivateKey.generate()
    code = await op.open_enrolment(name, Role.AIDE)
    r = await http.post("/api/enrolments", json={
        "code": code, "key": key.public.b64u,
        "signature": key.sign(statements.enrol(code, key.public.b64u))})
    assert r.status_code == 200, r.text
    return key


async def test_only_its_own_delegation_certifies_a_device(http: httpx.AsyncClient,
                                                          bilateral: Bilateral) -> None:
    a, b = bilateral.a.operator, bilateral.b.operator
    key = await enrolled(b, http, "Aide")
    [row] = [d for d in await a.devices(b.id) if d["device"] == key.fingerprint]
    assert row["certificate"] is None and row["certified"] is False
    with pytest.raises(ApiError, match="not certified by its delegation"):
        a.participant(row, "ru")
    # A signs a certificate of B's device: the server checks it under B's key
    path = f"/api/delegations/{b.id}/devices/{key.fingerprint}/certificate"
    forged = a.key.sign(statements.device(b.id, key.fingerprint, key.public.b64u, "aide",
                                          "Aide"))
    r = await http.post(path, json={"signature": forged})
    assert r.status_code == 403 and "device certificate" in r.json()["detail"]
    # B's officer compares the fingerprint first: a wrong reading certifies nothing
    with pytest.raises(ApiError, match="not certifying"):
        await b.certify(key.fingerprint, "0000-0000-0000-0000-0000")
    # a certificate for another role or name than the enrolment's does not verify
    wrong = b.key.sign(statements.device(b.id, key.fingerprint, key.public.b64u, "principal",
                                         "Aide"))
    assert (await http.post(path, json={"signature": wrong})).status_code == 403
    await b.certify(key.fingerprint, short_fingerprint(key.fingerprint))
    [row] = [d for d in await a.devices(b.id) if d["device"] == key.fingerprint]
    assert row["certified"] is True
    p = a.participant(row, "ru")
    assert (p.delegation, p.role, p.name) == (b.id, Role.AIDE, "Aide")
    unknown = PrivateKey.generate().fingerprint
    r = await http.post(f"/api/delegations/{b.id}/devices/{unknown}/certificate",
                        json={"signature": forged})
    assert r.status_code == 404


async def test_a_plan_drafted_from_the_devices_lists_is_cosigned(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    """The real flow: each office certifies its devices; the drafter takes both lists."""
    a, b = bilateral.a.operator, bilateral.b.operator
    mine = await enrol_and_certify(a, http, "Chief of Staff", Role.AIDE)
    theirs = await enrol_and_certify(b, http, "Interpreter", Role.INTERPRETER)
    rows = {d["device"]: d for d in [*await a.devices(), *await a.devices(b.id)]}
    plan = replace(bilateral.plan, call="call-drafted", participants=(
        *bilateral.plan.participants, a.participant(rows[mine.fingerprint], "en"),
        a.participant(rows[theirs.fingerprint], "en")))
    assert b.review(plan).flags == []
    await a.submit_plan(plan)
    view = await b.cosign_plan(await b.fetch_plan(plan.hash))
    assert view["complete"] is True


async def test_the_review_shows_every_signed_field(bilateral: Bilateral) -> None:
    """Attack 4: interpreter_video and press_channels were not shown."""
    b = bilateral.b.operator
    interp = PrivateKey.generate()
    plan = replace(bilateral.plan, press_window_s=120, interpreter_video=True,
                   press_channels=("ru",), audio="studio", participants=(
                       *bilateral.plan.participants,
                       participant(interp, b.key, Role.INTERPRETER, "Interpreter", "ru")))
    CallPlan.from_json(plan.to_json())  # well formed
    review = b.review(plan)
    fields = [f for f, _ in review.lines]
    assert set(fields) == set(plan.to_json()) - {"delegations", "participants"} | {
        "delegation", "participant"}
    shown = dict(review.lines)
    assert shown["interpreter_video"].startswith("yes") and shown["press_channels"] == "ru"
    assert shown["audio"].startswith("studio: no echo cancellation")
    assert fields.count("participant") == len(plan.participants) == 3
    assert review.flags == []
    # a key that is not the pinned one is flagged
    stranger = PrivateKey.generate()
    other = replace(plan.delegations[0], key=stranger.public, id=stranger.fingerprint)
    flags = b.review(replace(plan, delegations=(other, plan.delegations[1]))).flags
    assert any("is not pinned with this link" in f for f in flags)


async def test_plans_stored_before_version_2_are_left_out_of_lists(database: str) -> None:
    """A database from before certificates: its version 1 plans no longer read; lists
    leave them out instead of failing."""
    store = await open_store(database)
    try:
        w = World()
        for key, name in ((w.us, "US"), (w.ru, "RU")):
            await store.add_delegation(key.fingerprint, name, key.public.b64u, 0)
        await store.add_link("link-1", w.us.fingerprint, w.ru.fingerprint, "s" * 86, 0)
        await store.add_plan(w.signed(), 0)
        old = {**w.plan().to_json(), "version": 1, "call": "call-old"}
        async with store.engine.begin() as conn:
            await conn.execute(insert(schema.plans).values(
                hash="0" * 64, call="call-old", link="link-1",
                body=canonical(old).decode(), created_ms=1))
            await conn.execute(insert(schema.plan_devices).values(
                plan="0" * 64, device=w.us_principal.fingerprint))
        assert [s.plan.call for s in await store.plans_of_link("link-1")] == ["call-1"]
        assert [s.plan.call for s in await store.plans_of_device(
            w.us_principal.fingerprint)] == ["call-1"]
    finally:
        await store.close()


async def test_a_revoked_device_is_refused_and_dropped_from_a_call(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral) -> None:
    """Revocation (issue 11, key lifecycle): the server closes the device's signaling in
    the call in progress, refuses its joins, and refuses plans that name it."""
    a, b = bilateral.a.operator, bilateral.b.operator
    aide = await enrol_and_certify(b, http, "Aide", Role.AIDE)
    rows = {d["device"]: d for d in await a.devices(b.id)}
    plan = replace(bilateral.plan, call="call-revoked", participants=(
        *bilateral.plan.participants, a.participant(rows[aide.fingerprint], "ru")))
    await a.submit_plan(plan)
    await b.cosign_plan(plan)
    later = replace(plan, call="call-later")
    await a.submit_plan(later)  # not yet co-signed when the device is revoked
    await a.control(plan.call, "start")
    session = CallSession(ws_url, plan.call, bilateral.b.identity(aide), ice=loopback(),
                          source=MediaSource(None, None), reconnect=False)
    task = asyncio.create_task(session.run())
    await asyncio.wait_for(session.joined.wait(), WAIT_S)

    forged = a.key.sign(statements.revocation(b.id, aide.fingerprint, 1))
    r = await http.post(f"/api/delegations/{b.id}/devices/{aide.fingerprint}/revocation",
                        json={"at": 1, "signature": forged})
    assert r.status_code == 403  # only its own delegation revokes a device
    assert (await b.revoke(aide.fingerprint))["dropped"] == 1
    with pytest.raises(SessionRefused, match="device-revoked"):
        await asyncio.wait_for(task, WAIT_S)
    view = (await signed_get(http, b.key, f"/api/calls/{plan.call}")).json()
    assert aide.fingerprint not in [c["device"] for c in view["connected"]]
    again = CallSession(ws_url, plan.call, bilateral.b.identity(aide), ice=loopback(),
                        source=MediaSource(None, None), reconnect=False)
    with pytest.raises(SessionRefused, match="device-revoked"):
        await asyncio.wait_for(again.run(), WAIT_S)

    [row] = [d for d in await a.devices(b.id) if d["device"] == aide.fingerprint]
    assert row["revoked"] is True and row["certified"] is False
    with pytest.raises(PlanError, match="a device this delegation revoked"):
        await b.cosign_plan(later)  # B's own memory refuses before the server is asked
    r = await http.post(f"/api/plans/{later.hash}/signatures", json={
        "delegation": b.id, "signature": b.key.sign(statements.plan(later.hash))})
    assert r.status_code == 409 and "revoked device" in r.json()["detail"], r.text
    with pytest.raises(ApiError) as err:
        await a.submit_plan(replace(plan, call="call-after"))
    assert err.value.status == 409 and "revoked device" in err.value.detail
    for s in (session, again):
        await s.leave()

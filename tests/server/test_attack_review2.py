"""Second attacker review of issue 11, against a live server (scripts in the note of the
issue): a delegation's retired key still acted for it on calls planned before the
rotation (start, press tokens, private record, readouts, record head, co-signatures);
the signed POSTs answered a stranger whether a call exists and who is in it; a device
never enrolled here could not be revoked; one interpreter could shut a booth with the
largest sequence number. A test per finding, asserting the refusal."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from summitline.client.bilateral import Bilateral, provision
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.reads import signed_get
from summitline.core.record import RecordError, verify_export
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import canonical
from summitline.crypto.keys import PrivateKey, short_fingerprint
from summitline.server import closecodes as cc
from summitline.server.api import NOT_THIS_CALL
from tests import wire
from tests.client.test_certificates import enrol_and_certify
from tests.postgres import both_stores
from tests.server.test_attack_review import bait, linked

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL

TEXT = "The presidents discussed the situation."


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def verify_cli(path: Path, *args: str) -> tuple[int, str, str]:
    """``summitline verify PATH ARGS``: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "summitline", "verify", str(path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def ghost_of(http: httpx.AsyncClient, op: Operator) -> Operator:
    """Whoever kept ``op``'s key (a departing officer, a lost token): it acts in the
    delegation's name with that key, after the delegation rotated away from it."""
    return Operator(http, op.name, op.key)


async def refused(attempt: Any, status: int, words: str) -> None:
    with pytest.raises(ApiError) as err:
        await attempt
    assert err.value.status == status and words in err.value.detail, err.value


async def test_a_retired_key_acts_on_no_call_and_the_current_one_finishes_it(
        http: httpx.AsyncClient, tmp_path: Path) -> None:
    call = await provision(http, press_window_s=60)
    a, b = call.a.operator, call.b.operator
    await a.control(call.call, "start")
    ghost = ghost_of(http, a)
    await a.rotate()
    # the retired key: nothing, on a call planned (and started) under it
    for attempt in (ghost.control(call.call, "close-doors"), ghost.press_token(call.call),
                    ghost.private_record(call.call), ghost.draft_readout(call.call, TEXT)):
        await refused(attempt, 403, NOT_THIS_CALL)
    # the current key: the rest of the call, its readout and its record
    await a.press_token(call.call)
    await a.control(call.call, "end")
    await refused(ghost.publish_readout(call.call, TEXT), 403, NOT_THIS_CALL)
    assert (await a.publish_readout(call.call, TEXT))["published"]["text"] == TEXT
    await refused(ghost.sign_record(call.call, call.plan.hash), 401, "does not verify")  # read
    head = (await signed_get(http, a.key, f"/api/calls/{call.call}/record", a.id)).json()[
        "entries"][-1]
    r = await http.post(f"/api/calls/{call.call}/record/signatures", json={
        "delegation": a.id, "seq": head["seq"], "signature": ghost.key.sign(
            statements.record_head(call.call, call.plan.hash, head["seq"], head["hash"]))})
    assert r.status_code == 403 and r.json()["detail"] == NOT_THIS_CALL, r.text
    await a.sign_record(call.call, call.plan.hash)
    await b.sign_record(call.call, call.plan.hash)
    # the export carries A's chain: the head A signed with its new key verifies offline
    raw = await b.export_record(call.call)
    assert sorted(verify_export(raw).signers) == sorted([a.name, b.name])
    doc = json.loads(raw)
    assert list(doc["rotations"]) == [a.id]
    # round 3: the retired key's signature swapped in does not verify with the chain kept
    head = doc["entries"][-1]
    retired = ghost.key.sign(statements.record_head(call.call, call.plan.hash, head["seq"],
                                                    head["hash"]))
    swapped = {**doc, "head_signatures": {**doc["head_signatures"], a.id: retired}}
    with pytest.raises(RecordError, match="United States"):
        verify_export(canonical(swapped) + b"\n")
    # round 4: the thief of the retired key writes a chain of its own to a key of its own
    # and signs the head with it. Offline that verifies (the file is all a verifier
    # has); the key that signed is shown, and --expect with A's key as its reader knows
    # it refuses the file
    evil, at = PrivateKey.generate(), now_ms()
    step = statements.rotation(a.id, ghost.key.public.b64u, evil.public.b64u, at)
    forged_doc = {**doc, "rotations": {a.id: [{
        "previous": ghost.key.public.b64u, "key": evil.public.b64u, "at": at,
        "signature": ghost.key.sign(step), "proof": evil.sign(step)}]},
        "head_signatures": {**doc["head_signatures"], a.id: evil.sign(statements.record_head(
            call.call, call.plan.hash, head["seq"], head["hash"]))}}
    path = tmp_path / "forged.record.json"
    path.write_bytes(canonical(forged_doc) + b"\n")
    assert verify_export(path.read_bytes()).head_keys[a.id] == evil.public
    code, out, _ = await verify_cli(path)
    assert code == 0 and short_fingerprint(evil.fingerprint) in out
    code, _, err = await verify_cli(path, "--expect",
                                    f"{a.name}={short_fingerprint(a.key.fingerprint)}")
    assert code == 1 and "not by" in err
    # a chain not signed by the plan's key does not carry the signature
    forged = dict(doc["rotations"][a.id][0], signature=PrivateKey.generate().sign({"x": 1}))
    doc["rotations"][a.id] = [forged]
    with pytest.raises(RecordError, match="key chain"):
        verify_export(canonical(doc) + b"\n")


async def test_a_plan_naming_a_retired_key_is_drafted_again(http: httpx.AsyncClient) -> None:
    # co-signed before B rotated, started after: endpoints check the start against the
    # plan's keys, so the plan is dead for both sides
    call = await provision(http)
    a, b = call.a.operator, call.b.operator
    await b.rotate()
    for op in (a, b):
        await refused(op.control(call.call, "start"), 409, "retired")
    # pending when B rotated: B's old key cannot consent, its new one is told to re-draft
    pending = await provision(http, cosign=False)
    b = pending.b.operator
    ghost = ghost_of(http, b)
    await b.rotate()
    h = pending.plan.hash

    async def cosign(key: PrivateKey) -> httpx.Response:
        return await http.post(f"/api/plans/{h}/signatures", json={
            "delegation": b.id, "signature": key.sign(statements.plan(h))})

    r = await cosign(ghost.key)
    assert r.status_code == 403 and "current key" in r.json()["detail"], r.text
    r = await cosign(b.key)
    assert r.status_code == 409 and "retired" in r.json()["detail"], r.text
    view = (await signed_get(http, b.key, f"/api/plans/{h}", b.id)).json()
    assert view["complete"] is False and list(view["signatures"]) == [pending.a.operator.id]


def bodies(call: str, delegation: str, key: PrivateKey) -> dict[str, dict[str, Any]]:
    """One request of each kind a delegation signs about a call, signed by ``key``."""
    at = now_ms()

    def control(action: str) -> dict[str, Any]:
        return {"action": action, "delegation": delegation, "at": at,
                "signature": key.sign(statements.control(call, action, delegation, at))}

    def readout(action: str) -> dict[str, Any]:
        return {"delegation": delegation, "text": TEXT, "at": at, "signature": key.sign(
            statements.readout(call, delegation, action, at, statements.text_hash(TEXT)))}

    def signed(make: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        return {"delegation": delegation, "at": at,
                "signature": key.sign(make(call, delegation, *args, at))}

    return {
        "control": control("start"),
        "press/tokens": {k: v for k, v in control("press-token").items() if k != "action"},
        "record/private": {k: v for k, v in control("read-private").items()
                           if k != "action"},
        "readouts/draft": readout("draft"),
        "readouts/publish": readout("publish"),
        "readouts/read": signed(statements.readout, "read"),
        "photos": signed(statements.photo, "capture"),
        "record/signatures": {"delegation": delegation, "seq": 0, "signature": key.sign(
            statements.record_head(call, "0" * 64, 0, "0" * 64))},
    }


async def test_signed_posts_tell_a_stranger_nothing(http: httpx.AsyncClient,
                                                    bilateral: Bilateral) -> None:
    # a registered stranger with good signatures of its own, and a forger naming a member
    # of the call: the same answer for the real call as for one that does not exist
    stranger = Operator(http, "Stranger", PrivateKey.generate())
    await stranger.register()
    member = bilateral.a.operator.id
    answers: dict[str, set[tuple[int, str]]] = {}
    for call in (bilateral.call, "call-that-does-not-exist"):
        for who, key in ((stranger.id, stranger.key), (member, PrivateKey.generate())):
            for route, body in bodies(call, who, key).items():
                r = await http.post(f"/api/calls/{call}/{route}", json=body)
                answers.setdefault(route, set()).add((r.status_code, r.json()["detail"]))
    assert all(a == {(403, NOT_THIS_CALL)} for a in answers.values()), answers
    # co-signing: a real plan and none, by a stranger and by a forger naming a member
    plan_answers = set()
    for h in (bilateral.plan.hash, "0" * 64):
        for who, key in ((stranger.id, stranger.key), (member, PrivateKey.generate())):
            r = await http.post(f"/api/plans/{h}/signatures", json={
                "delegation": who, "signature": key.sign(statements.plan(h))})
            plan_answers.add((r.status_code, r.json()["detail"]))
    assert len(plan_answers) == 1 and next(iter(plan_answers))[0] == 403, plan_answers


async def test_a_device_never_enrolled_here_is_revoked_by_its_own_delegation_only(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral) -> None:
    # finding 5: a device certified without enrolment here (as the demo's) could not be
    # revoked (404) and kept joining. Its delegation revokes it now; another delegation,
    # even one that named it in a plan of its own, cannot revoke it for its delegation.
    a, b = bilateral.a.operator, bilateral.b.operator
    device = bilateral.b.principal
    def revocation(op: Operator) -> dict[str, Any]:
        at = now_ms()
        return {"at": at, "signature": op.key.sign(
            statements.revocation(op.id, device.fingerprint, at))}

    r = await http.post(f"/api/delegations/{a.id}/devices/{device.fingerprint}/revocation",
                        json=revocation(a))
    assert r.status_code == 404, r.text  # no plan names it under A
    puppet = Operator(http, "Sock puppet", PrivateKey.generate())
    await puppet.register()
    plan = bait(await linked(http, a, puppet), a, puppet, device.public)
    await a.submit_plan(plan)  # A certifies B's principal as its own aide there
    r = await http.post(f"/api/delegations/{a.id}/devices/{device.fingerprint}/revocation",
                        json=revocation(a))
    assert r.status_code == 404, r.text  # a plan only A signed is no claim to the device
    await puppet.cosign_plan(plan)
    assert (await a.revoke(device.fingerprint))["revoked"]  # counts in A's plans only
    ws, welcome = await wire.join(ws_url, bilateral.call, device)  # still B's principal
    assert welcome["revocations"] == []
    await ws.close()
    assert (await signed_get(http, device, f"/api/calls/{bilateral.call}")).status_code == 200
    # B revokes its own: refused at hello, reads closed, plans naming it under B refused
    assert (await b.revoke(device.fingerprint))["revoked"]
    ws, nonce = await wire.connect(ws_url)
    await wire.send(ws, wire.hello(bilateral.call, device, nonce))
    await wire.refused(ws, "device-revoked", cc.AUTH_FAILED)
    assert (await signed_get(http, device, f"/api/calls/{bilateral.call}")).status_code == 403
    again = replace(bilateral.plan, call="call-again")
    forgetful = Operator(http, a.name, a.key)  # an A that does not remember revoking it
    forgetful.pinned, forgetful.names = dict(a.pinned), dict(a.names)
    with pytest.raises(ApiError) as err:
        await forgetful.submit_plan(again)
    assert err.value.status == 409 and "revoked" in err.value.detail


async def test_a_start_dated_back_is_refused(http: httpx.AsyncClient,
                                             bilateral: Bilateral) -> None:
    # a start back-dated by 115 s cut a 300 s press window to 185 s, without an alarm
    a = bilateral.a.operator
    for ago, status in ((20_000, 403), (2_000, 200)):
        at = now_ms() - ago
        r = await http.post(f"/api/calls/{bilateral.call}/control", json={
            "action": "start", "delegation": a.id, "at": at,
            "signature": a.key.sign(statements.control(bilateral.call, "start", a.id, at))})
        assert r.status_code == status, r.text
    assert "shorten the press window" not in r.text


async def test_a_delegation_is_no_device_and_cannot_be_revoked(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    # round 3, finding 1: A listed B's delegation key as its own aide, B co-signed (its
    # review said nothing), A "revoked" B's id, and B's own reads were 403 from then on
    a, b = bilateral.a.operator, bilateral.b.operator
    plan = replace(bilateral.plan, call="call-bait", participants=(
        *bilateral.plan.participants,
        participant(b.key.public, a.key, Role.AIDE, "Aide (B's delegation key)", "en")))
    assert any("a delegation's key, not a device" in f for f in b.review(plan).flags)
    r = await http.post("/api/plans", json={  # A's side skips its own review
        "plan": plan.to_json(), "signatures": {a.id: a.key.sign(statements.plan(plan.hash))}})
    assert r.status_code == 422 and "delegation's key" in r.json()["detail"], r.text
    at = now_ms()
    r = await http.post(f"/api/delegations/{a.id}/devices/{b.id}/revocation", json={
        "at": at, "signature": a.key.sign(statements.revocation(a.id, b.id, at))})
    assert r.status_code == 403 and "a delegation, not a device" in r.json()["detail"]
    for path in (f"/api/calls/{bilateral.call}", f"/api/delegations/{b.id}/links"):
        assert (await signed_get(http, b.key, path)).status_code == 200, path


async def test_a_revoked_device_is_not_certified_again(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    # round 4: a rotation re-certified a device the console had revoked, and the server
    # took the new certificate; a revocation is final
    b = bilateral.b.operator
    tablet = await enrol_and_certify(b, http, "Aide tablet", Role.AIDE)
    await b.revoke(tablet.fingerprint)
    row = next(r for r in await b.devices(b.id) if r["device"] == tablet.fingerprint)
    r = await http.post(f"/api/delegations/{b.id}/devices/{tablet.fingerprint}/certificate",
                        json={"signature": b.key.sign(statements.device(
                            b.id, tablet.fingerprint, row["key"], row["role"], row["name"]))})
    assert r.status_code == 409 and "revocation is final" in r.json()["detail"], r.text

"""Bad input: each gets a clear error (and a close code where fatal), is recorded, and
leaves the server and every other call unharmed."""

from __future__ import annotations

import time
from typing import Any

import httpx

from summitline.client.bilateral import Bilateral, provision
from summitline.client.reads import signed_get
from summitline.core.messages import MAX_MESSAGE_BYTES
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import b64u, unb64u
from summitline.crypto.keys import PrivateKey
from summitline.server import closecodes as cc
from summitline.server.limits import RATE_BURST
from tests import wire
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL


async def record_kinds(http: httpx.AsyncClient, call: Bilateral) -> list[dict[str, Any]]:
    r = await signed_get(http, call.a.operator.key, f"/api/calls/{call.call}/record")
    return [e for e in r.json()["entries"]]


async def refusals(http: httpx.AsyncClient, call: Bilateral, kind: str) -> list[str]:
    return [e["data"]["code"] for e in await record_kinds(http, call) if e["kind"] == kind]


async def incidents(http: httpx.AsyncClient, operator: dict[str, str]) -> list[str]:
    page = (await http.get("/api/incidents", headers=operator)).json()
    return [i["code"] for i in page["incidents"]]


async def assert_unharmed(http: httpx.AsyncClient, ws_url: str) -> None:
    """A fresh call on the same server still works: both principals join and see each other."""
    other = await provision(http)
    a, _ = await wire.join(ws_url, other.call, other.a.principal)
    b, welcome = await wire.join(ws_url, other.call, other.b.principal)
    assert [p["device"] for p in welcome["peers"]] == [other.a.principal.fingerprint]
    assert (await wire.next_of(a, "peer-joined"))["device"] == other.b.principal.fingerprint
    await wire.send(b, {"type": "ping", "id": 7})
    assert (await wire.next_of(b, "pong"))["id"] == 7
    await a.close()
    await b.close()


async def test_malformed_json_as_first_message(http: httpx.AsyncClient, ws_url: str,
                                               operator_headers: dict[str, str]) -> None:
    ws, _ = await wire.connect(ws_url)
    await ws.send("{this is not json")
    err = await wire.refused(ws, "malformed", cc.BAD_HANDSHAKE)
    assert "not valid JSON" in err["message"]
    assert "malformed" in await incidents(http, operator_headers)
    await assert_unharmed(http, ws_url)


async def test_malformed_json_after_joining_is_refused_and_the_connection_goes_on(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral) -> None:
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    await ws.send("[1, 2")
    err = await wire.next_of(ws, "error")
    assert (err["code"], err["fatal"]) == ("malformed", False)
    await wire.send(ws, {"type": "ping", "id": 1})
    assert (await wire.next_of(ws, "pong"))["id"] == 1
    assert await refusals(http, bilateral, "signal.refused") == ["malformed"]
    await assert_unharmed(http, ws_url)


async def test_unknown_message_type(http: httpx.AsyncClient, ws_url: str,
                                    bilateral: Bilateral) -> None:
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    await wire.send(ws, {"type": "launch", "target": "everything"})
    err = await wire.next_of(ws, "error")
    assert (err["code"], err["fatal"]) == ("unknown-type", False)
    assert "'launch'" in err["message"]
    assert await refusals(http, bilateral, "signal.refused") == ["unknown-type"]
    await assert_unharmed(http, ws_url)


async def test_invalid_fields_name_the_field(http: httpx.AsyncClient, ws_url: str,
                                             bilateral: Bilateral) -> None:
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    await wire.send(ws, {"type": "offer", "to": "nobody", "generation": 1, "sdp": "",
                         "signature": wire.FAKE_SIG})
    err = await wire.next_of(ws, "error")
    assert err["code"] == "invalid" and "offer: to:" in err["message"]


async def test_message_over_the_size_limit(http: httpx.AsyncClient, ws_url: str,
                                           bilateral: Bilateral) -> None:
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    await ws.send('{"type":"ping","pad":"' + "x" * MAX_MESSAGE_BYTES + '"}')
    await wire.refused(ws, "too-big", cc.MESSAGE_TOO_BIG)
    assert await refusals(http, bilateral, "protocol.error") == ["too-big"]
    # its seat is free again: the principal can rejoin
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    await assert_unharmed(http, ws_url)


async def test_a_bad_handshake_signature(http: httpx.AsyncClient, ws_url: str,
                                         bilateral: Bilateral,
                                         operator_headers: dict[str, str]) -> None:
    ws, nonce = await wire.connect(ws_url)
    forged = wire.hello(bilateral.call, bilateral.a.principal, nonce)
    forged["signature"] = PrivateKey.generate().sign({"purpose": "summitline/join"})
    await wire.send(ws, forged)
    await wire.refused(ws, "not-admitted", cc.AUTH_FAILED)
    # unauthenticated: the server's incidents, not the call's record (strangers cannot
    # write into a record)
    assert "bad-signature" in await incidents(http, operator_headers)
    assert await refusals(http, bilateral, "endpoint.refused") == []
    await assert_unharmed(http, ws_url)


async def test_a_replayed_handshake(http: httpx.AsyncClient, ws_url: str,
                                    bilateral: Bilateral,
                                    operator_headers: dict[str, str]) -> None:
    first, nonce = await wire.connect(ws_url)
    captured = wire.hello(bilateral.call, bilateral.a.principal, nonce)
    await wire.send(first, captured)
    assert (await wire.recv(first))["type"] == "welcome"
    await first.close()
    second, _ = await wire.connect(ws_url)
    await wire.send(second, captured)  # the same valid hello, on a new connection
    await wire.refused(second, "not-admitted", cc.AUTH_FAILED)
    assert "stale-nonce" in await incidents(http, operator_headers)
    await assert_unharmed(http, ws_url)


async def test_an_unsupported_protocol_version(http: httpx.AsyncClient, ws_url: str,
                                               bilateral: Bilateral) -> None:
    ws, nonce = await wire.connect(ws_url)
    await wire.send(ws, {**wire.hello(bilateral.call, bilateral.a.principal, nonce),
                         "version": 99})
    err = await wire.refused(ws, "unsupported-version", cc.UNSUPPORTED_VERSION)
    assert "[1]" in err["message"]


async def test_a_device_outside_the_plan_and_an_unknown_call(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral,
        operator_headers: dict[str, str]) -> None:
    # a stranger is told the same, word for word, whether the call exists or not and
    # whether the fingerprint is in its plan (no oracle); the incidents say which it was
    told = []
    for call, key, answer in [(bilateral.call, PrivateKey.generate(), True),
                              ("call-nobody", bilateral.a.principal, True),
                              (bilateral.call, bilateral.a.principal, False)]:
        ws, nonce = await wire.connect(ws_url)
        await wire.send(ws, wire.hello(call, key, nonce if answer else "x" * len(nonce)))
        told.append(await wire.refused(ws, "not-admitted", cc.AUTH_FAILED))
    assert told[0] == told[1] == told[2], told
    assert {"not-in-plan", "unknown-call", "stale-nonce"} <= set(
        await incidents(http, operator_headers))
    await assert_unharmed(http, ws_url)


async def test_a_plan_not_signed_by_both_delegations(http: httpx.AsyncClient,
                                                     ws_url: str) -> None:
    half = await provision(http, cosign=False)
    ws, nonce = await wire.connect(ws_url)
    await wire.send(ws, wire.hello(half.call, half.a.principal, nonce))
    err = await wire.refused(ws, "plan-unsigned", cc.PLAN_UNSIGNED)
    assert "not signed by Russian Federation" in err["message"]
    assert await refusals(http, half, "endpoint.refused") == ["plan-unsigned"]
    # and the server refuses a co-signature that does not verify
    r = await http.post(f"/api/plans/{half.plan.hash}/signatures", json={
        "delegation": half.b.operator.id, "signature": PrivateKey.generate().sign({"x": 1})})
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    await assert_unharmed(http, ws_url)


async def test_an_offer_to_an_endpoint_it_may_not_talk_to(http: httpx.AsyncClient,
                                                          ws_url: str) -> None:
    aide = PrivateKey.generate()
    call = await provision(http, extra=[(1, aide, Role.AIDE, "RU aide")])
    a, _ = await wire.join(ws_url, call.call, call.a.principal)
    b_aide, welcome = await wire.join(ws_url, call.call, aide)
    assert welcome["peers"] == []  # an aide is told of nobody it may not talk to
    await call.a.operator.control(call.call, "start")
    await wire.send(a, {"type": "offer", "to": aide.fingerprint, "generation": 1,
                        "sdp": "v=0", "signature": wire.FAKE_SIG})
    err = await wire.next_of(a, "error")
    assert (err["code"], err["fatal"], err["ref"]) == ("not-permitted", False, "offer")
    assert await refusals(http, call, "signal.refused") == ["not-permitted"]
    # the aide got the phase change and nothing else
    assert (await wire.recv(b_aide))["type"] == "phase"
    await wire.send(b_aide, {"type": "ping", "id": 3})
    assert await wire.recv(b_aide) == {"type": "pong", "id": 3}
    await assert_unharmed(http, ws_url)


async def test_a_second_principal_of_a_delegation(http: httpx.AsyncClient, ws_url: str) -> None:
    spare = PrivateKey.generate()
    call = await provision(http, extra=[(0, spare, Role.PRINCIPAL, "US spare terminal")])
    first, _ = await wire.join(ws_url, call.call, call.a.principal)
    ws, nonce = await wire.connect(ws_url)
    await wire.send(ws, wire.hello(call.call, spare, nonce))
    err = await wire.refused(ws, "seat-taken", cc.SEAT_TAKEN)
    assert "only one principal per delegation" in err["message"]
    assert await refusals(http, call, "endpoint.refused") == ["seat-taken"]
    await first.close()
    await assert_unharmed(http, ws_url)


async def test_the_same_device_again_takes_over_its_seat(http: httpx.AsyncClient,
                                                         ws_url: str,
                                                         bilateral: Bilateral) -> None:
    # A device whose network dropped reconnects before the server noticed: its fresh,
    # signed hello proves it is the same device, so the new connection takes over.
    first, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    second, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    err = await wire.next_of(first, "error")
    assert (err["code"], err["fatal"]) == ("replaced", True)
    assert await wire.closed_with(first) == cc.REPLACED
    await wire.send(second, {"type": "ping", "id": 9})
    assert (await wire.next_of(second, "pong"))["id"] == 9
    entries = await record_kinds(http, bilateral)
    assert [(e["kind"], e["data"].get("reason")) for e in entries[-3:]] == [
        ("endpoint.joined", None), ("endpoint.left", "replaced"), ("endpoint.joined", None)]


async def test_a_flood_of_messages_is_cut_off(http: httpx.AsyncClient, ws_url: str,
                                              bilateral: Bilateral) -> None:
    ws, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    for i in range(int(RATE_BURST) + 50):
        await wire.send(ws, {"type": "ping", "id": i})
    while (msg := await wire.recv(ws))["type"] == "pong":
        pass
    assert (msg["code"], msg["fatal"]) == ("rate-limit", True)
    assert await wire.closed_with(ws) == cc.POLICY
    assert await refusals(http, bilateral, "protocol.error") == ["rate-limit"]
    await assert_unharmed(http, ws_url)


async def test_offers_are_relayed_to_their_target_only_and_not_replayed(
        http: httpx.AsyncClient, ws_url: str, bilateral: Bilateral) -> None:
    a, _ = await wire.join(ws_url, bilateral.call, bilateral.a.principal)
    b, _ = await wire.join(ws_url, bilateral.call, bilateral.b.principal)
    await bilateral.a.operator.control(bilateral.call, "start")
    offer = {"type": "offer", "to": bilateral.a.principal.fingerprint, "generation": 1,
             "sdp": "v=0", "signature": wire.FAKE_SIG}
    await wire.send(b, offer)
    got = await wire.next_of(a, "offer")
    assert got["from"] == bilateral.b.principal.fingerprint and "to" not in got
    await wire.send(b, offer)  # the same offer again
    err = await wire.next_of(b, "error")
    assert err["code"] == "stale-generation"
    await wire.send(b, {"type": "candidate", "to": bilateral.a.principal.fingerprint,
                        "generation": 5, "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
    err = await wire.next_of(b, "error")
    assert (err["code"], err["ref"]) == ("not-permitted", "candidate")
    kinds = [e["kind"] for e in await record_kinds(http, bilateral)]
    assert kinds.count("signal.offer") == 1
    assert await refusals(http, bilateral, "signal.refused") == ["stale-generation",
                                                                      "not-permitted"]


async def test_control_requests_cannot_be_replayed_or_forged(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    action, op = "start", bilateral.a.operator
    at = time.time_ns() // 1_000_000
    body = {"action": action, "delegation": op.id, "at": at,
            "signature": op.key.sign(statements.control(bilateral.call, action, op.id, at))}
    assert (await http.post(f"/api/calls/{bilateral.call}/control", json=body)).status_code == 200
    again = await http.post(f"/api/calls/{bilateral.call}/control", json=body)
    assert again.status_code == 403 and "already used" in again.json()["detail"]
    stale_at = at - 10 * 60_000
    stale = {**body, "at": stale_at, "signature": op.key.sign(
        statements.control(bilateral.call, "end", op.id, stale_at)), "action": "end"}
    r = await http.post(f"/api/calls/{bilateral.call}/control", json=stale)
    assert r.status_code == 403 and "stale" in r.json()["detail"]
    forged = {**body, "action": "end"}  # signature was for "start"
    r = await http.post(f"/api/calls/{bilateral.call}/control", json=forged)
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    # the signature's other ECDSA form (r, n - s) is refused outright: only low-S verifies
    raw = unb64u(body["signature"])
    s = N_P256 - int.from_bytes(raw[32:], "big")
    twin = {**body, "signature": b64u(raw[:32] + s.to_bytes(32, "big"))}
    r = await http.post(f"/api/calls/{bilateral.call}/control", json=twin)
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]


N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def booth(call: Bilateral, key: PrivateKey, action: str, seq: int,
          to: str | None = None, channel: str = "ru") -> dict[str, Any]:
    """A booth action signed by ``key`` (statements.booth)."""
    at = int(time.time() * 1000)
    return {"type": "booth", "action": action, "to": to, "seq": seq, "at": at,
            "signature": key.sign(statements.booth(call.call, call.plan.hash, channel, action,
                                                   key.fingerprint, seq, at, to))}


async def test_booth_requests_that_the_plan_does_not_allow(http: httpx.AsyncClient,
                                                           ws_url: str) -> None:
    k1 = PrivateKey.generate()
    call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter")])
    a, _ = await wire.join(ws_url, call.call, call.a.principal)
    i1, welcome = await wire.join(ws_url, call.call, k1)
    assert welcome["booth"] == {"type": "booth", "live": {}, "sources": {}, "actions": {}}
    await wire.send(i1, booth(call, k1, "live", 1))  # before the start
    assert (await wire.next_of(i1, "error"))["code"] == "phase"
    await call.a.operator.control(call.call, "start")
    await wire.send(a, booth(call, call.a.principal, "live", 1))  # a principal: no booth
    assert (await wire.next_of(a, "error"))["code"] == "not-interpreter"
    await wire.send(i1, {**booth(call, k1, "handover", 1), "to": None})  # to whom?
    assert (await wire.next_of(i1, "error"))["code"] == "invalid"
    await wire.send(i1, {"type": "source", "source": "ru"})  # its own channel
    assert (await wire.next_of(i1, "error"))["code"] == "bad-source"
    unsigned = {**booth(call, k1, "live", 1), "signature": booth(call, k1, "quiet", 1)[
        "signature"]}
    await wire.send(i1, unsigned)  # a signature over another action
    assert (await wire.next_of(i1, "error"))["code"] == "bad-signature"
    go_live = booth(call, k1, "live", 1)
    await wire.send(i1, go_live)
    state = await wire.next_of(a, "booth")
    await wire.next_of(i1, "booth")
    assert state["live"] == {"ru": k1.fingerprint}
    assert state["actions"]["ru"] == {**{k: go_live[k] for k in (
        "action", "to", "seq", "at", "signature")}, "from": k1.fingerprint}
    await wire.send(i1, booth(call, k1, "quiet", 2))
    assert (await wire.next_of(a, "booth"))["live"] == {}
    await wire.next_of(i1, "booth")
    await wire.send(i1, go_live)  # the old go-live again
    assert (await wire.next_of(i1, "error"))["code"] == "stale-seq"
    # the largest number there is would shut the booth for the rest of the call
    # (attacker review of issue 11): at most 64 above the last
    await wire.send(i1, booth(call, k1, "live", 2**53 - 1))
    assert (await wire.next_of(i1, "error"))["code"] == "seq-too-far"
    await wire.send(i1, booth(call, k1, "live", 2 + 64))
    assert (await wire.next_of(a, "booth"))["live"] == {"ru": k1.fingerprint}
    assert await refusals(http, call, "signal.refused") == [
        "phase", "not-interpreter", "invalid", "bad-source", "bad-signature", "stale-seq",
        "seq-too-far"]

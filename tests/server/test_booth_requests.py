"""A handover by request on the server: the live interpreter asks, the partner declines
(nothing changes) or accepts (it is live from then on); an answer with no open request
is refused; the record shows request, decline and accept, each with its signed action."""

from __future__ import annotations

import httpx

from summitline.client.bilateral import provision
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests import wire
from tests.server.test_bad_input import booth, record_kinds, refusals


async def test_a_partner_declines_then_accepts_a_handover_request(
        http: httpx.AsyncClient, ws_url: str) -> None:
    k1, k2 = PrivateKey.generate(), PrivateKey.generate()
    call = await provision(http, extra=[(1, k1, Role.INTERPRETER, "RU interpreter 1"),
                                        (1, k2, Role.INTERPRETER, "RU interpreter 2")])
    await call.a.operator.control(call.call, "start")
    a, _ = await wire.join(ws_url, call.call, call.a.principal)
    i1, _ = await wire.join(ws_url, call.call, k1)
    i2, _ = await wire.join(ws_url, call.call, k2)
    one, two = k1.fingerprint, k2.fingerprint

    async def booth_state() -> dict[str, object]:
        for ws in (i1, i2):
            state = await wire.next_of(ws, "booth")
        return state

    await wire.send(i1, booth(call, k1, "live", 1))
    assert (await booth_state())["live"] == {"ru": one}
    await wire.send(i2, booth(call, k2, "decline", 2, one))  # nothing asked yet
    assert (await wire.next_of(i2, "error"))["code"] == "no-request"
    await wire.send(i2, booth(call, k2, "request", 2, one))  # the partner is not live
    assert (await wire.next_of(i2, "error"))["code"] == "not-live"
    await wire.send(i1, booth(call, k1, "request", 2, two))
    state = await booth_state()
    assert state["live"] == {"ru": one}  # asking is not handing over
    asked = state["actions"]["ru"]  # type: ignore[index]
    assert (asked["action"], asked["from"], asked["to"], asked["seq"]) == ("request", one, two, 2)
    await wire.send(i2, booth(call, k2, "decline", 3, one))
    assert (await booth_state())["live"] == {"ru": one}  # declined: the asker stays live
    await wire.send(i2, booth(call, k2, "accept", 4, one))  # declined already
    assert (await wire.next_of(i2, "error"))["code"] == "no-request"
    await wire.send(i1, booth(call, k1, "request", 4, two))
    await booth_state()
    await wire.send(i2, booth(call, k2, "accept", 5, one))
    assert (await booth_state())["live"] == {"ru": two}
    assert (await wire.next_of(a, "booth"))["type"] == "booth"
    entries = [e for e in await record_kinds(http, call) if e["kind"].startswith("booth.")]
    assert [(e["kind"], e["data"]["from"], e["data"].get("to")) for e in entries] == [
        ("booth.live", one, None), ("booth.request", one, two), ("booth.decline", two, one),
        ("booth.request", one, two), ("booth.accept", two, one)]
    assert all(e["data"]["signature"] for e in entries)
    assert await refusals(http, call, "signal.refused") == ["no-request", "not-live",
                                                            "no-request"]

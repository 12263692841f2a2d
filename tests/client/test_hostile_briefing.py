"""A hostile server against a briefing of three Python principals (the United States
hosting France and Germany): a WebSocket proxy between the endpoints and the real
server (tests/hostile.py) that rewrites, drops or injects signaling messages, and
plans drafted as a hostile server would serve them. For each attack the server (where
it is honest) or every endpoint refuses, every endpoint alarms with the reason, and no
media reaches anyone outside the plan (docs/security.md section 3, the briefing rows).
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from summitline.client.briefing import Briefing, provision_briefing
from summitline.client.ice import loopback
from summitline.client.operator import ApiError, Operator, participant
from summitline.client.reads import signed_get
from summitline.client.session import CallSession, PlanRejected, SessionRefused
from summitline.core.plan import CallPlan, PlanError
from summitline.core.roles import MediaKind, Role
from summitline.crypto import sdp as signed_sdp
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.client.test_session import WAIT_S
from tests.hostile import Message, Wire, hostile


def sessions_via(url: str, b: Briefing) -> list[CallSession]:
    return [CallSession(url, b.call, side.identity(), ice=loopback(), reconnect=False)
            for side in b.sides]


async def stop(sessions: list[CallSession], tasks: list[asyncio.Task[None]]) -> None:
    for s in sessions:
        await s.leave()
    await asyncio.gather(*tasks, return_exceptions=True)


async def offers_recorded(http: httpx.AsyncClient, b: Briefing) -> list[dict[str, Any]]:
    entries = (await signed_get(http, b.host.operator.key,
                                 f"/api/calls/{b.call}/record")).json()["entries"]
    return [e for e in entries if e["kind"] == "signal.offer"]


def tamper_welcome(change: Any) -> Any:
    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            msg = copy.deepcopy(msg)
            change(msg["signed_plan"])
        return msg
    return down


async def every_endpoint_refuses(url: str, b: Briefing, http: httpx.AsyncClient,
                                 why: str) -> list[CallSession]:
    """Start the briefing (the host signs the start), join all three through ``url``:
    each must stop with PlanRejected naming ``why``, alarm, and hold no link."""
    await b.host.operator.control(b.call, "start")
    sessions = sessions_via(url, b)
    results = await asyncio.wait_for(asyncio.gather(*(s.run() for s in sessions),
                                                    return_exceptions=True), WAIT_S)
    for s, result in zip(sessions, results, strict=True):
        assert isinstance(result, PlanRejected), result
        assert why in str(result), result
        assert s.alarms and s.alarms[0].startswith("plan refused") and why in s.alarms[0]
        assert not s.links and s.frames(MediaKind.AUDIO) == s.frames(MediaKind.VIDEO) == 0
    assert await offers_recorded(http, b) == []  # nobody offered anyone anything
    for s in sessions:
        await s.leave()
    return sessions


# -- 1. a plan missing one delegation's signature ---------------------------------------
async def test_the_server_refuses_a_briefing_missing_one_signature_at_start_and_join(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3, cosign=False)
    await b.sides[1].operator.cosign_plan(b.plan)  # France signs; Germany never does
    for side in b.sides:  # not even the host starts it
        with pytest.raises(ApiError) as refused:
            await side.operator.control(b.call, "start")
        assert refused.value.status == 409 and "every delegation" in refused.value.detail
    sessions = [CallSession(ws_url, b.call, side.identity(), ice=loopback(), reconnect=False)
                for side in b.sides]
    results = await asyncio.wait_for(asyncio.gather(*(s.run() for s in sessions),
                                                    return_exceptions=True), WAIT_S)
    for s, result in zip(sessions, results, strict=True):
        assert isinstance(result, SessionRefused) and result.code == "plan-unsigned", result
        assert "Germany" in str(result) and not s.links
    assert await offers_recorded(http, b) == []


@pytest.mark.parametrize("dropped", [0, 2], ids=["host", "guest"])
async def test_every_endpoint_refuses_a_briefing_served_without_one_signature(
        dropped: int, ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    gone = b.sides[dropped].operator

    def change(signed: dict[str, Any]) -> None:
        del signed["signatures"][gone.id]

    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        await every_endpoint_refuses(proxy.url, b, http, f"not signed by {gone.name!r}")


# -- 2. a delegation that nobody pinned or introduced -----------------------------------
def swap_guest(b: Briefing, victim: int, attacker: PrivateKey,
               puppet: PrivateKey) -> Any:
    """The server's change: guest ``victim`` replaced by a delegation of the attacker's
    under the same name (its own key, its own self-signed name, its own principal
    certified by it), with the attacker's signature on the new plan; the other
    signatures kept (the attacker cannot make them)."""
    real = b.sides[victim].operator

    def change(signed: dict[str, Any]) -> None:
        plan = signed["plan"]
        name = real.name
        for d in plan["delegations"]:
            if d["id"] == real.id:
                d.update(id=attacker.fingerprint, key=attacker.public.b64u,
                         name_signature=attacker.sign(statements.register(
                             name, attacker.public.b64u)))
        for p in plan["participants"]:
            if p["delegation"] == real.id:
                p.update(delegation=attacker.fingerprint, device=puppet.fingerprint,
                         key=puppet.public.b64u, certificate=attacker.sign(statements.device(
                             attacker.fingerprint, puppet.fingerprint, puppet.public.b64u,
                             p["role"], p["name"])))
        forged = CallPlan.from_json(plan)  # well formed: only the signatures can tell
        del signed["signatures"][real.id]
        signed["signatures"][attacker.fingerprint] = attacker.sign(
            statements.plan(forged.hash))
    return change


async def test_every_endpoint_refuses_a_guest_swapped_for_one_nobody_linked(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    attacker, puppet = PrivateKey.generate(), PrivateKey.generate()
    change = swap_guest(b, 2, attacker, puppet)
    async with hostile(ws_url, down=tamper_welcome(change)) as proxy:
        sessions = await every_endpoint_refuses(
            proxy.url, b, http, f"the signature of {b.host.operator.name!r} on the plan "
            "is invalid")
        for wire in proxy.wires:  # the attacker's principal was never offered to
            assert not [m for m in wire.seen_up if m.get("to") == puppet.fingerprint]
    assert all(not s.links for s in sessions)


async def test_the_server_and_every_co_signer_refuse_a_delegation_nobody_linked(
        http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3, cosign=False)
    us, france, germany = (side.operator for side in b.sides)
    stranger = Operator(http, "Stranger", PrivateKey.generate())
    await stranger.register()
    # (a) the host's briefing with a guest the host never linked: the server refuses it
    plan = CallPlan(call=f"briefing-{secrets.token_hex(6)}", link=None, title="bait",
                    host=stranger.id, links=tuple(b.links),
                    delegations=(stranger.delegation(), france.delegation(),
                                 germany.delegation()),
                    participants=tuple(
                        participant(PrivateKey.generate(), op.key, Role.PRINCIPAL,
                                    f"{op.name} principal", "en")
                        for op in (stranger, france, germany)))
    # the stranger hosts France and Germany over the links of the US: refused by the
    # server (the links do not join the host and each guest) ...
    r = await http.post("/api/plans", json={
        "plan": plan.to_json(),
        "signatures": {stranger.id: stranger.key.sign(statements.plan(plan.hash))}})
    assert r.status_code in (409, 422) and "link" in r.json()["detail"], r.text
    # ... and, were the server to serve it anyway, by each guest's officer: France and
    # Germany pinned neither the stranger nor each other
    for guest in (france, germany):
        flags = guest.review(plan).flags
        assert any("the host is not either" in f for f in flags), flags
        with pytest.raises(PlanError, match="not signing the plan"):
            await guest.cosign_plan(plan)
    # (b) the real briefing: Germany is introduced by the host to France, not flagged
    review = france.review(b.plan)
    assert review.flags == []
    assert ("delegation", f"{germany.name} — introduced by {us.name}") in review.lines
    # (c) the same briefing with the host swapped for the stranger (a plan a hostile
    # server would show France's officer): flagged, never co-signed
    swapped = CallPlan.from_json({**b.plan.to_json(), "host": stranger.id, "delegations": [
        stranger.delegation().to_json(), *(d.to_json() for d in b.plan.delegations
                                           if d.id != us.id)],
        "participants": [
            participant(PrivateKey.generate(), stranger.key, Role.PRINCIPAL, "Host",
                        "en").to_json(),
            *(p.to_json() for p in b.plan.participants if p.delegation != us.id)]})
    for guest in (france, germany):
        with pytest.raises(PlanError, match="the host is not either"):
            await guest.cosign_plan(swapped)


# -- 3. an extra device injected into one pair ------------------------------------------
def mesh_carries(sessions: list[CallSession], devices: list[str]) -> Any:
    def everyone(s: CallSession) -> bool:
        return all(s.frames_from(d, k) > 10 for d in devices if d != s.device
                   for k in MediaKind)
    return asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: everyone(s))
                                             for s in sessions)), WAIT_S)


async def test_an_outsider_announced_and_offering_is_refused_by_every_endpoint(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    outsider = PrivateKey.generate()
    pc = RTCPeerConnection(loopback().configuration())
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    injected: list[str] = []

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            # the outsider is announced present, joins again, and offers, signed by its
            # own key for this call, plan and receiver
            msg = {**msg, "peers": [*msg["peers"], {"device": outsider.fingerprint,
                                                    "generation": 0}]}
            offer_sdp = pc.localDescription.sdp
            sig = signed_sdp.sign(outsider, call=b.call, plan_hash=b.plan.hash,
                                  receiver=wire.device, generation=1, kind="offer",
                                  sdp=offer_sdp)

            async def inject() -> None:
                await wire.inject({"type": "peer-joined", "device": outsider.fingerprint})
                await wire.inject({"type": "offer", "from": outsider.fingerprint,
                                   "generation": 1, "sdp": offer_sdp, "signature": sig})
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(inject()))
            injected.append(wire.device)
        return msg

    async with hostile(ws_url, down=down) as proxy:
        await b.host.operator.control(b.call, "start")
        sessions = sessions_via(proxy.url, b)
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            # the three still hold their mesh: only the outsider is refused
            await mesh_carries(sessions, [s.device for s in sessions])

            def refused(s: CallSession) -> bool:
                return any(t.startswith("offer from a device outside the plan")
                           for t in s.alarms) and any(
                    "announces a device outside the plan" in t for t in s.alarms)
            await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: refused(s))
                                                    for s in sessions)), WAIT_S)
            for s in sessions:
                assert outsider.fingerprint not in s.links
                assert s.frames_from(outsider.fingerprint, MediaKind.AUDIO) == 0
            for wire in proxy.wires:  # nothing ever went towards the outsider
                assert not [m for m in wire.seen_up if m.get("to") == outsider.fingerprint]
            assert pc.remoteDescription is None and pc.connectionState == "new"
            assert sorted(injected) == sorted(s.device for s in sessions)
        finally:
            await stop(sessions, tasks)
            await pc.close()


@pytest.mark.parametrize("relabel", ["signer", "addressee"])
async def test_an_offer_of_another_pair_relayed_into_a_pair_is_refused(
        relabel: str, ws_url: str, http: httpx.AsyncClient) -> None:
    # Every genuine offer goes through, and the server also hands a copy of it to the
    # third principal: as from its signer (signed for someone else), or as from the
    # copy's addressee (so that it looks like an offer of that pair).
    b = await provision_briefing(http, 3)
    devices = [side.principal.fingerprint for side in b.sides]
    forged: list[tuple[str, str]] = []  # (to whom, as from whom)
    # copies for a principal not connected yet: handed over with the first message it
    # gets (an offer may pass before the third has joined)
    pending: dict[str, list[Message]] = {}

    def hand_over(wire: Wire, copies: list[Message]) -> None:
        async def inject() -> None:
            for c in copies:
                await wire.inject(c)
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(inject()))

    def down(wire: Wire, msg: Message) -> Message:
        if pending.get(wire.device):
            hand_over(wire, pending.pop(wire.device))
        if msg["type"] == "offer" and msg["from"] in devices:
            (third,) = set(devices) - {msg["from"], wire.device}
            copy_ = {**msg, "from": msg["from"] if relabel == "signer" else wire.device}
            forged.append((third, copy_["from"]))
            target = next((w for w in proxy.wires if w.device == third), None)
            if target is None:
                pending.setdefault(third, []).append(copy_)
            else:
                hand_over(target, [copy_])
        return msg

    async with hostile(ws_url, down=down) as proxy:
        await b.host.operator.control(b.call, "start")
        sessions = sessions_via(proxy.url, b)
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                                   WAIT_S)
            await mesh_carries(sessions, devices)
            # three pairs, one genuine offer each, each copied to the third principal
            targets = {to for to, _ in forged}
            assert len(forged) >= 3 and len(targets) >= 2
            for s in sessions:
                if s.device not in targets:
                    continue
                n = sum(to == s.device for to, _ in forged)
                await asyncio.wait_for(s.wait_for(lambda s=s, n=n: sum(
                    "fails its signature" in t for t in s.alarms) >= n), WAIT_S)
                assert all(t.startswith("offer from ") and "fails its signature" in t
                           for t in s.alarms), s.alarms
            # no endpoint answered a forged copy: each answer went to its genuine offerer
            answers = [(w.device, m["to"]) for w in proxy.wires for m in w.seen_up
                       if m["type"] == "answer"]
            assert len(answers) >= 3 and all(to in devices for _, to in answers)
            for s in sessions:  # each holds exactly its two genuine links
                assert sorted(s.links) == sorted(d for d in devices if d != s.device)
        finally:
            await stop(sessions, tasks)


# -- a split view: one call, two plans ---------------------------------------------------
async def test_a_split_view_of_two_plans_for_one_call_shows_in_the_group_code(
        ws_url: str, http: httpx.AsyncClient) -> None:
    # The host redrafted the briefing (Germany left out) and host and France signed the
    # redraft too; the server kept both and serves France the redraft, the others the
    # first plan. Each plan is valid on its own: the signed offers (over the plan hash)
    # do not cross the split, and the group code the host reads aloud differs from
    # France's.
    b = await provision_briefing(http, 3)
    us, france = b.sides[0].operator, b.sides[1].operator
    redraft = CallPlan.from_json({
        **b.plan.to_json(), "links": [b.links[0]],
        "delegations": [d.to_json() for d in b.plan.delegations[:2]],
        "participants": [p.to_json() for p in b.plan.participants
                         if p.delegation in (us.id, france.id)]})
    split = {"plan": redraft.to_json(), "signatures": {
        op.id: op.key.sign(statements.plan(redraft.hash)) for op in (us, france)}}
    france_device = b.sides[1].principal.fingerprint

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome" and wire.device == france_device:
            msg = {**msg, "signed_plan": split}
        return msg

    async with hostile(ws_url, down=down) as proxy:
        await us.control(b.call, "start")
        sessions = sessions_via(proxy.url, b)
        host, fr, de = sessions
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            # the host and Germany, on the same plan, hold their link
            await mesh_carries([host, de], [host.device, de.device])
            # the pair across the split: the offer fails its receiver's check
            waits = [asyncio.ensure_future(s.wait_for(lambda s=s: any(
                "fails its signature" in t for t in s.alarms))) for s in (host, fr)]
            done, pending = await asyncio.wait(waits, timeout=WAIT_S,
                                               return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            assert done, "neither end of the pair across the split alarmed"
            assert fr.frames(MediaKind.AUDIO) == fr.frames(MediaKind.VIDEO) == 0
            assert host.frames_from(fr.device, MediaKind.AUDIO) == 0
            assert de.frames_from(fr.device, MediaKind.AUDIO) == 0
            # what the people compare: the host's code, read aloud, is not France's
            assert host.group_code() == de.group_code() != fr.group_code()
            assert fr.signed is not None and fr.signed.plan.hash == redraft.hash
        finally:
            await stop(sessions, tasks)


# -- a revocation by a delegation that does not own the device ---------------------------
@pytest.mark.parametrize("signer", ["another guest", "the host"])
async def test_a_delegation_revoking_another_s_device_cuts_no_one(
        signer: str, ws_url: str, http: httpx.AsyncClient) -> None:
    # In a bilateral "the other delegation" is one; here any of the others might try.
    # The server relays Germany's (or the host's) genuinely signed "revocation" of
    # France's principal, under either name: every endpoint alarms, France stays.
    b = await provision_briefing(http, 3)
    by = (b.sides[2] if signer == "another guest" else b.sides[0]).operator
    france = b.sides[1]
    target = france.principal.fingerprint
    async with hostile(ws_url) as proxy:
        await b.host.operator.control(b.call, "start")
        sessions = sessions_via(proxy.url, b)
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            devices = [s.device for s in sessions]
            await mesh_carries(sessions, devices)
            at = int(time.time() * 1000)
            signature = by.key.sign(statements.revocation(by.id, target, at))
            for named in (by.id, france.operator.id):  # as its own act, and as France's
                for wire in proxy.wires:
                    await wire.inject({"type": "revoked", "delegation": named,
                                       "device": target, "at": at, "signature": signature,
                                       "rotations": []})
            await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: sum(
                "did not sign" in t for t in s.alarms) >= 2) for s in sessions)), WAIT_S)
            for s in sessions:
                assert all("a revocation of" in t and "France did not sign" in t
                           and "the device stays in the call" in t for t in s.alarms), s.alarms
                assert s.revoked == {}
            # and France's media goes on: a second more from it at both others
            before = {s.device: s.frames_from(target, MediaKind.AUDIO) for s in sessions}
            others = [s for s in sessions if s.device != target]
            await asyncio.wait_for(asyncio.gather(*(s.wait_for(
                lambda s=s: s.frames_from(target, MediaKind.AUDIO) > before[s.device] + 50)
                for s in others)), WAIT_S)
        finally:
            await stop(sessions, tasks)


async def test_a_device_of_the_plan_with_no_pair_injected_into_the_mesh_is_refused(
        ws_url: str, http: httpx.AsyncClient) -> None:
    # Not an outsider: Germany's aide is in the plan, and its device (compromised, say)
    # signs its offers itself. The plan gives an aide no media with anyone; the server
    # announces it to each principal as a peer and relays its offer.
    aide = PrivateKey.generate()
    b = await provision_briefing(http, 3, extra=[(2, aide, Role.AIDE, "Aide", "de")])
    pc = RTCPeerConnection(loopback().configuration())
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())

    def down(wire: Wire, msg: Message) -> Message:
        if msg["type"] == "welcome":
            offer_sdp = pc.localDescription.sdp
            sig = signed_sdp.sign(aide, call=b.call, plan_hash=b.plan.hash,
                                  receiver=wire.device, generation=1, kind="offer",
                                  sdp=offer_sdp)

            async def inject() -> None:
                await wire.inject({"type": "peer-joined", "device": aide.fingerprint})
                await wire.inject({"type": "offer", "from": aide.fingerprint,
                                   "generation": 1, "sdp": offer_sdp, "signature": sig})
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(inject()))
        return msg

    async with hostile(ws_url, down=down) as proxy:
        await b.host.operator.control(b.call, "start")
        sessions = sessions_via(proxy.url, b)
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await mesh_carries(sessions, [s.device for s in sessions])

            def refused(s: CallSession) -> bool:
                return any("offer from a device the plan does not let us connect to" in t
                           for t in s.alarms) and any(
                    "Aide (aide) as a peer, but the plan gives this end no link" in t
                    for t in s.alarms)
            await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: refused(s))
                                                    for s in sessions)), WAIT_S)
            for s in sessions:
                assert aide.fingerprint not in s.links
            for wire in proxy.wires:
                assert not [m for m in wire.seen_up if m.get("to") == aide.fingerprint]
            assert pc.remoteDescription is None and pc.connectionState == "new"
        finally:
            await stop(sessions, tasks)
            await pc.close()

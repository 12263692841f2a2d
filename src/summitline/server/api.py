"""The REST API: delegations, links, plans (submit, co-sign), calls and records.

Nothing here is taken on the server's word: every request that changes something
carries a signature by the delegation key it speaks for, and the server checks it.
(The endpoints check the same signatures again; the server is only a second wall.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from summitline import report
from summitline.core import call as c
from summitline.core.plan import CallPlan, Delegation, PlanError, SignedPlan
from summitline.core.record import RecordError, export, summary, verify_export
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PublicKey, SignatureError, short_fingerprint
from summitline.server import views as v
from summitline.server.hub import Hub
from summitline.server.reads import not_found, reader, signed_read
from summitline.server.room import CallRoom
from summitline.server.security import bearer_matches
from summitline.store import StoreError

# A signed control request is accepted this long after it was made (clock skew and
# transit); within that time its signature can be used once.
CONTROL_FRESHNESS_MS = 120_000
# ... but none dated ahead of the server's clock by more than this (clock skew between
# honest machines is well under it): a start dated ahead would lengthen the press window
# for endpoints that count from it.
CONTROL_AHEAD_MS = 5_000
# A start dated further back would shorten the press window by as much (the deadline
# counts from the signed time): a start is sent as soon as it is signed.
START_FRESHNESS_MS = 15_000

# The most incident rows one page of GET /api/incidents returns.
MAX_INCIDENT_PAGE = 500

Name = Annotated[str, Field(min_length=1, max_length=120)]
Id = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Sig = Annotated[str, Field(min_length=80, max_length=100)]
KeyText = Annotated[str, Field(min_length=80, max_length=100)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DelegationIn(_Body):
    name: Name
    key: KeyText
    signature: Sig


class RotationIn(_Body):
    key: KeyText  # the new key
    at: Annotated[int, Field(ge=0, le=2**53)]
    signature: Sig  # statements.rotation by the current key
    proof: Sig  # the same statement by the new key
    name_signature: Sig  # statements.register(name, new key) by the new key


class LinkIn(_Body):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")]
    proposer: Id
    acceptor: Id
    signature: Sig


class LinkAccept(_Body):
    signature: Sig


class PlanIn(_Body):
    plan: dict[str, Any]
    signatures: dict[str, str]


class PlanSignature(_Body):
    delegation: Id
    signature: Sig


class Control(_Body):
    action: Literal["start", "close-doors", "end"]
    delegation: Id
    at: int
    signature: Sig


class PrivateRead(_Body):
    delegation: Id
    at: int
    signature: Sig


class HeadSignature(_Body):
    delegation: Id
    seq: int
    signature: Sig


def bad(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def verify(key: PublicKey, statement: dict[str, Any], sig: str, what: str) -> None:
    try:
        key.verify(statement, sig)
    except SignatureError:
        raise bad(403, f"the signature on {what} does not verify") from None


def hub(request: Request) -> Hub:
    h: Hub = request.app.state.hub
    return h


async def delegation_key(h: Hub, id: str) -> tuple[str, PublicKey]:
    row = await h.store.delegation(id)
    if row is None:
        raise bad(404, f"no delegation {short_fingerprint(id)} on this server")
    return row["name"], PublicKey.from_b64u(row["key"])


async def name_signature(h: Hub, id: str) -> str | None:
    """The delegation's signature on its own name, kept from its registration."""
    row = await h.store.delegation(id)
    return row["name_signature"] if row else None


async def refuse_participants(h: Hub, signed: SignedPlan) -> None:
    """409 if the plan names a device its delegation revoked; 422 if it names a
    delegation's key (current or retired) as a device, or another's enrolled device."""
    plan = signed.plan
    for p in plan.participants:
        if await h.store.key_in_use(p.key.b64u, p.device):
            raise bad(422, f"{plan.label(p.device)} is a delegation's key, not a device: "
                           "a delegation cannot stand in a plan as a participant")
    revoked = await h.store.revoked_as([(p.device, p.delegation) for p in plan.participants])
    if revoked:
        raise bad(409, "the plan names a revoked device: " + ", ".join(
            plan.label(d) for d in sorted(revoked)) + "; draft it again without it")
    # A device enrolled here belongs to the delegation that enrolled it: no other may
    # name it, even with a certificate of its own (it would then be "concerned" by the
    # device and read its calls).
    for p in plan.participants:
        seat = await h.store.enrolled_device(p.device)
        if seat is not None and seat["delegation"] != p.delegation:
            raise bad(422, f"participant {p.name!r} is a device another delegation enrolled; "
                      "a plan names a device only under its own delegation")


async def room_of(h: Hub, call: str) -> CallRoom:
    room = await h.room(call)
    if room is None:
        raise bad(404, f"no call {call!r} on this server")
    return room


async def room_to_read(request: Request, call: str) -> CallRoom:
    """The room of a call for a signed read: the signature is checked first, so that an
    unsigned or badly signed read is 401 whether the call exists or not."""
    await reader(request)
    room = await hub(request).room(call)
    if room is None:
        raise await not_found(request)
    return room


def owners(signed: SignedPlan) -> dict[str, str]:
    """The delegation each device of the plan stands under."""
    return {p.device: p.delegation for p in signed.plan.participants}


def readers(signed: SignedPlan, devices: bool = True) -> dict[str, PublicKey | None]:
    """Who may read a call's objects: its two delegations, and (``devices``) the devices
    its plan names."""
    out: dict[str, PublicKey | None] = {d.id: d.key for d in signed.plan.delegations}
    if devices:
        out.update({p.device: p.key for p in signed.plan.participants})
    return out


async def link_view(h: Hub, id: str) -> dict[str, Any]:
    row = await h.store.link(id)
    if row is None:
        raise bad(404, f"no link {id!r}")
    delegations = []
    for role in ("proposer", "acceptor"):
        name, key = await delegation_key(h, row[role])
        delegations.append({"id": row[role], "name": name, "key": key.b64u,
                            "short_fingerprint": short_fingerprint(row[role]),
                            "name_signature": await name_signature(h, row[role]),
                            "rotations": await h.store.rotations(row[role])})
    return {"id": id, "delegations": delegations,
            "state": "established" if row["acceptor_signature"] else "proposed",
            "signatures": {row["proposer"]: row["proposer_signature"],
                           row["acceptor"]: row["acceptor_signature"]}}


async def refuse_unlinked(h: Hub, plan: CallPlan) -> None:
    """A bilateral plan's delegations are the two of its established link; a briefing's
    links are established, each joins the host and one guest, and together they join
    every guest (docs/protocol.md §3.1). The keys are the ones the server holds now."""
    keys: dict[str, str] = {}
    guests: list[str] = []
    for id in plan.filed_under:
        link = await link_view(h, id)
        if link["state"] != "established":
            raise bad(409, f"the link {id!r} is not yet accepted by both delegations")
        ends = {d["id"]: d["key"] for d in link["delegations"]}
        keys.update(ends)
        if plan.host is not None:
            if plan.host not in ends:
                raise bad(422, f"the link {id!r} does not join the host of the briefing")
            guests += [d for d in ends if d != plan.host]
    if plan.host is None:
        if {d.id: d.key.b64u for d in plan.delegations} != keys:
            raise bad(422, "the plan's delegations are not the two delegations of its link")
        return
    if sorted(guests) != sorted(d.id for d in plan.delegations if d.id != plan.host):
        raise bad(422, "the briefing's links do not join the host with each guest, once each")
    if any(keys[d.id] != d.key.b64u for d in plan.delegations):
        raise bad(422, "a delegation's key in the briefing is not the one of its link")


# One answer for a call that does not exist, a delegation not in its plan and a signature
# that does not verify with the delegation's current key: so that a stranger learns
# neither which calls exist nor who is in them (attacker review of issue 11).
NOT_THIS_CALL = ("no such call here, or that delegation is not part of it, or the signature "
                 "does not verify with the delegation's current key")


async def current_key(h: Hub, delegation: str) -> PublicKey | None:
    """The delegation's key now (after its rotations), or None if it is not registered."""
    row = await h.store.delegation(delegation)
    return PublicKey.from_b64u(row["key"]) if row else None


def verifies(key: PublicKey | None, statement: dict[str, Any], sig: str) -> bool:
    """Whether ``sig`` signs ``statement`` with ``key`` (a delegation not registered,
    None, verifies nothing)."""
    return key is not None and key.verifies(statement, sig)


async def signed_request(h: Hub, call: str, delegation: str, at: int,
                         statement: dict[str, Any], signature: str,
                         what: str) -> tuple[CallRoom, Delegation]:
    """The call and its delegation that signed ``statement`` (made at ``at``) with its
    current key, fresh and not used before. The signature is checked before the call is
    looked up, and a missing call, a delegation outside it and a bad signature get one
    403 (``NOT_THIS_CALL``); a retired key signs nothing (docs/protocol.md §3.5)."""
    room = None
    if verifies(await current_key(h, delegation), statement, signature):
        room = await h.room(call)
    d = room.signed.plan.delegation(delegation) if room is not None else None
    if room is None or d is None:
        raise bad(403, NOT_THIS_CALL)
    now = h.clock()
    if now - at > CONTROL_FRESHNESS_MS:
        raise bad(403, f"{what} is stale (or the clocks disagree)")
    if at - now > CONTROL_AHEAD_MS:
        raise bad(403, f"{what} is dated {(at - now) / 1000:.0f} s ahead of the server's "
                  "clock (check the clock of the machine that signed it)")
    try:
        # Keyed on what was signed: an ECDSA signature has a second valid form (r, n-s),
        # so the signature itself cannot tell a replay from a first use.
        await h.store.use_control(digest(statement), now)
    except StoreError:
        raise bad(403, f"{what} was already used (replayed?)") from None
    return room, d


async def signed_control(h: Hub, call: str, action: str, delegation: str, at: int,
                         signature: str, what: str) -> tuple[CallRoom, Delegation]:
    """``signed_request`` for ``statements.control(call, action, delegation, at)``."""
    return await signed_request(h, call, delegation, at,
                                statements.control(call, action, delegation, at),
                                signature, what)


async def rotated(h: Hub, room: CallRoom) -> dict[str, list[dict[str, Any]]]:
    """The key chains an export carries: of each delegation of the call whose key changed
    since its plan, unless the head signature it holds is by the plan's key (signed
    before the rotation). With the chain, a verifier takes the head signature only by the
    key the chain leads to (docs/protocol.md §8.3); so a chain stops at the key that
    signed the head: a rotation after the signature must not unmake a finished record
    (attacker review of issue 13, d3)."""
    out = {}
    heads = await room.store.head_signatures(room.call_id)
    head = room.head
    for d in room.signed.plan.delegations:
        now = await current_key(h, d.id)
        if now is None or now == d.key:
            continue
        said = statements.record_head(room.call_id, room.signed.plan.hash, head.seq,
                                      head.hash) if head is not None else None
        if d.id in heads and said is not None and verifies(d.key, said, heads[d.id]):
            continue
        chain = list(await h.store.rotations(d.id))
        if d.id in heads and said is not None:
            signer = next((i for i, step in enumerate(chain) if verifies(
                PublicKey.from_b64u(step["key"]), said, heads[d.id])), None)
            if signer is not None:
                chain = chain[:signer + 1]
        out[d.id] = chain
    return out


async def refuse_retired(h: Hub, d: Delegation, what: str) -> None:
    """409 if the plan names a key of ``d`` that it has since retired: endpoints check
    the plan's key (a start, a plan signature), so such a plan is drafted again."""
    now = await current_key(h, d.id)
    if now is not None and now != d.key:
        raise bad(409, f"the plan names a key {d.name} has retired since (it rotated its "
                       f"key): {what} needs a plan drafted again with its current key")


def router() -> APIRouter:  # a list of small routes, read top to bottom
    r = APIRouter(prefix="/api")

    # -- delegations ---------------------------------------------------------------------
    @r.post("/delegations", status_code=201, response_model=v.DelegationView)
    async def add_delegation(body: DelegationIn, request: Request) -> dict[str, Any]:
        """Register a delegation key. The signature proves possession of the private key."""
        try:
            key = PublicKey.from_b64u(body.key)
        except SignatureError as exc:
            raise bad(422, str(exc)) from None
        verify(key, statements.register(body.name, body.key), body.signature, "registration")
        h = hub(request)
        if await h.store.key_in_use(body.key, key.fingerprint):
            raise bad(409, "this delegation key is already registered")
        try:
            await h.store.add_delegation(key.fingerprint, body.name, body.key, h.clock())
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        # kept: plans drafted by the other delegation carry it (docs/protocol.md §2.2)
        await h.store.add_name_signature(key.fingerprint, body.signature)
        return {"id": key.fingerprint, "name": body.name, "key": body.key,
                "short_fingerprint": short_fingerprint(key.fingerprint),
                "name_signature": body.signature}

    @r.get("/delegations/{id}", response_model=v.DelegationView)
    async def get_delegation(id: str, request: Request) -> dict[str, Any]:
        """A delegation's name and key, by its fingerprint (the SHA-256 of that key). Open:
        a device reads it before it is enrolled, and it tells nothing about links or
        calls to someone who does not already hold the key's fingerprint."""
        name, key = await delegation_key(hub(request), id)
        return {"id": id, "name": name, "key": key.b64u,
                "short_fingerprint": short_fingerprint(id),
                "name_signature": await name_signature(hub(request), id),
                "rotations": await hub(request).store.rotations(id)}

    @r.post("/delegations/{id}/rotations", response_model=v.DelegationView)
    async def rotate(id: str, body: RotationIn, request: Request) -> dict[str, Any]:
        """The delegation replaces its key: the new key signed by the current one, with the
        new key's proof of possession and its signature on the delegation's name. The id
        stays; plans from now on carry the new key and the chain (docs/protocol.md §3.5)."""
        h = hub(request)
        name, current = await delegation_key(h, id)
        try:
            new = PublicKey.from_b64u(body.key)
        except SignatureError as exc:
            raise bad(422, str(exc)) from None
        statement = statements.rotation(id, current.b64u, body.key, body.at)
        verify(current, statement, body.signature, "the rotation (by the current key)")
        verify(new, statement, body.proof, "the rotation (by the new key)")
        verify(new, statements.register(name, body.key), body.name_signature,
               "the delegation's name (by the new key)")
        if await h.store.key_in_use(body.key, new.fingerprint):
            raise bad(409, "that key is, or was, a delegation key already")
        try:
            await h.store.rotate(id, current.b64u, body.key, body.at, body.signature,
                                 body.proof, body.name_signature)
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        for row in await h.store.links_of(id):  # the link views carry the key chain
            h.events.publish([row["proposer"], row["acceptor"]], "link", id=row["id"])
        # its streams were opened by reads the retired key signed: they end, and its
        # consoles reconnect with the new key (a thief of the old one gets 401)
        h.events.end_delegation(id)
        return await get_delegation(id, request)

    # -- links ---------------------------------------------------------------------------
    @r.post("/links", status_code=201, response_model=v.LinkView)
    async def propose_link(body: LinkIn, request: Request) -> dict[str, Any]:
        """Propose a link to another delegation, signed by the proposer."""
        h = hub(request)
        if body.proposer == body.acceptor:
            raise bad(422, "a link joins two different delegations")
        _, key = await delegation_key(h, body.proposer)
        await delegation_key(h, body.acceptor)
        verify(key, statements.link(body.id, [body.proposer, body.acceptor]), body.signature,
                "the link proposal")
        try:
            await h.store.add_link(body.id, body.proposer, body.acceptor, body.signature,
                                   h.clock())
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        h.events.publish([body.proposer, body.acceptor], "link", id=body.id)
        return await link_view(h, body.id)

    @r.post("/links/{id}/accept", response_model=v.LinkView)
    async def accept_link(id: str, body: LinkAccept, request: Request) -> dict[str, Any]:
        """Accept a proposed link, signed by the other delegation (after checking the
        proposer's short fingerprint out of band)."""
        h = hub(request)
        row = await h.store.link(id)
        # one answer for a link that does not exist and a signature that is not its
        # acceptor's: a stranger learns neither which links exist nor their state
        if row is None or not verifies(await current_key(h, row["acceptor"]), statements.link(
                id, [row["proposer"], row["acceptor"]]), body.signature):
            raise bad(403, "no such link here, or the signature is not its acceptor's")
        if row["acceptor_signature"] is not None:
            raise bad(409, "this link is already established")
        await h.store.accept_link(id, body.signature)
        h.events.publish([row["proposer"], row["acceptor"]], "link", id=id)
        return await link_view(h, id)

    @r.get("/links/{id}", response_model=v.LinkView)
    async def get_link(id: str, request: Request) -> dict[str, Any]:
        """A link, for its two delegations (signed read)."""
        h = hub(request)
        await reader(request)
        row = await h.store.link(id)
        if row is None:
            raise await not_found(request)
        await signed_read(request, {row["proposer"]: None, row["acceptor"]: None})
        return await link_view(h, id)

    # -- plans ---------------------------------------------------------------------------
    @r.post("/plans", status_code=201, response_model=v.PlanView)
    async def submit_plan(body: PlanIn, request: Request) -> dict[str, Any]:
        """Submit a call plan with at least one delegation's signature."""
        h = hub(request)
        try:
            signed = SignedPlan.from_json(body.model_dump())
        except PlanError as exc:
            raise bad(422, f"invalid plan: {exc}") from None
        plan = signed.plan
        await refuse_participants(h, signed)
        await refuse_unlinked(h, plan)
        if not signed.signatures:
            raise bad(422, "a plan is submitted with its proposer's signature")
        if plan.host is not None and plan.host not in signed.signatures:
            # only the host drafts a briefing: a guest must not put one under the host's
            # name to the other guests (attacker review of issue 13, d2)
            raise bad(422, "a briefing is submitted by its host, with the host's signature")
        for delegation, sig in signed.signatures.items():
            d = plan.delegation(delegation)
            if d is None:
                raise bad(422, "a signature is by a delegation the plan does not name")
            verify(d.key, statements.plan(plan.hash), sig, f"the plan by {d.name}")
        try:
            await h.store.add_plan(signed, h.clock())
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        room = await room_of(h, plan.call)
        await room.record("plan.submitted", {"plan": plan.hash,
                                             "signed_by": sorted(signed.signatures)})
        h.events.publish([d.id for d in plan.delegations], "plan", id=plan.hash)
        return _plan_view(room.signed)

    @r.post("/plans/{plan_hash}/signatures", response_model=v.PlanView)
    async def cosign_plan(plan_hash: str, body: PlanSignature,
                          request: Request) -> dict[str, Any]:
        """Add a delegation's signature to a submitted plan."""
        h = hub(request)
        # the signature first, with the delegation's current key: a missing plan, a
        # delegation outside it and a bad signature are one answer
        signed = None
        if verifies(await current_key(h, body.delegation), statements.plan(plan_hash),
                    body.signature):
            signed = await h.store.plan(plan_hash)
        d = signed.plan.delegation(body.delegation) if signed is not None else None
        if signed is None or d is None:
            raise bad(403, "no such plan here, or that delegation is not part of it, or the "
                           "signature does not verify with the delegation's current key")
        await refuse_retired(h, d, "its signature")
        await refuse_participants(h, signed)
        try:
            await h.store.add_plan_signature(plan_hash, body.delegation, body.signature)
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        h.forget(signed.plan.call)  # reload with the new signature
        room = await room_of(h, signed.plan.call)
        await room.record("plan.signed", {"plan": plan_hash, "delegation": body.delegation})
        h.events.publish([d.id for d in signed.plan.delegations], "plan", id=plan_hash)
        return _plan_view(room.signed)

    @r.get("/plans/{plan_hash}", response_model=v.PlanView)
    async def get_plan(plan_hash: str, request: Request) -> dict[str, Any]:
        """A plan, for its two delegations and its devices (signed read)."""
        await reader(request)
        signed = await hub(request).store.plan(plan_hash)
        if signed is None:
            raise await not_found(request)
        await signed_read(request, readers(signed), owners(signed))
        return _plan_view(signed)

    # -- calls ---------------------------------------------------------------------------
    @r.get("/calls/{call}", response_model=v.CallView)
    async def get_call(call: str, request: Request) -> dict[str, Any]:
        """A call's state, for its two delegations and its devices (signed read)."""
        room = await room_to_read(request, call)
        await signed_read(request, readers(room.signed), owners(room.signed))
        return await call_view(room)

    async def call_view(room: CallRoom) -> dict[str, Any]:
        call = room.call_id
        entries = await room.store.entries(call)
        plan = room.signed.plan
        return {"call": call, "title": plan.title, "plan": plan.hash,
                "phase": str(room.state.phase), "press_deadline_ms": room.state.press_deadline_ms,
                "connected": [{"device": d, "label": plan.label(d)}
                              for d in sorted(room.state.admitted)],
                "health": room.health,
                **summary(entries)}

    @r.post("/calls/{call}/control", response_model=v.CallView)
    async def control(call: str, body: Control, request: Request) -> dict[str, Any]:
        """Start the call, shut the doors on the press, or end it: signed by a delegation."""
        h = hub(request)
        room, d = await signed_control(h, call, body.action, body.delegation, body.at,
                                       body.signature, "the control request")
        if not room.signed.complete:
            missing = ", ".join(x.name for x in room.signed.missing()) or "a delegation"
            raise bad(409, f"the plan is not signed by {missing} yet; every delegation of "
                           "the plan must sign it")
        host = room.signed.plan.host
        if host is not None and d.id != host:
            # a briefing is the host's: one guest does not start, open to the press or end
            # it for the others (its people leave; docs/protocol.md section 4)
            raise bad(403, "in a briefing only the host starts the call, shuts the doors on "
                           "the press and ends it; a guest's people leave it")
        if body.action == "start":
            if h.clock() - body.at > START_FRESHNESS_MS:
                raise bad(403, f"the start is dated {(h.clock() - body.at) / 1000:.0f} s ago: "
                               "it would shorten the press window; sign it again")
            for each in room.signed.plan.delegations:
                await refuse_retired(h, each, "the start")
        make, kind = _CONTROLS[body.action]
        try:
            # the signed request goes into the record, and (for the start) to every
            # endpoint, which checks it rather than take the server's word
            # The start counts from the signed time, so that the server and every
            # endpoint compute one press deadline from it.
            when = (lambda _now: c.Start(body.at)) if body.action == "start" else make
            await room.change_phase(kind, {"by": d.id, "at": body.at,
                                           "signature": body.signature}, when)
        except c.IllegalEvent as exc:
            raise bad(409, str(exc)) from None
        return await call_view(room)

    @r.post("/calls/{call}/record/private", response_model=v.PrivateRecord)
    async def private_record(call: str, body: PrivateRead, request: Request) -> dict[str, Any]:
        """A delegation's private part of the record (its principal's pages, its aides'
        acknowledgements, asides): read only with a fresh request signed by that
        delegation (control action "read-private")."""
        h = hub(request)
        _, d = await signed_control(h, call, "read-private", body.delegation, body.at,
                                    body.signature, "the read request")
        entries = await h.store.private_entries(call, d.id)
        return {"call": call, "delegation": d.id,
                "entries": [e.to_json() for e in entries]}

    @r.get("/calls/{call}/record", response_model=v.RecordView)
    async def get_record(call: str, request: Request) -> dict[str, Any]:
        """The call's shared record, for its two delegations and its devices (signed
        read)."""
        room = await room_to_read(request, call)
        await signed_read(request, readers(room.signed), owners(room.signed))
        return await record_view(room)

    async def record_view(room: CallRoom) -> dict[str, Any]:
        call = room.call_id
        entries = await room.store.entries(call)
        return {"call": call, "entries": [e.to_json() for e in entries],
                "head_signatures": await room.store.head_signatures(call), **summary(entries)}

    @r.post("/calls/{call}/record/signatures", response_model=v.RecordView)
    async def sign_record(call: str, body: HeadSignature, request: Request) -> dict[str, Any]:
        """A delegation signs the head of the ended call's record."""
        h = hub(request)
        room = await h.room(call)
        d = room.signed.plan.delegation(body.delegation) if room is not None else None
        head = room.head if room is not None else None
        # the head's statement needs the call's entry at ``seq``; still, a missing call, a
        # delegation outside it and a bad signature (by its current key) are one answer,
        # and the phase is told only to the call's own delegation
        signed_entry = None
        if room is not None and d is not None and head is not None and 0 <= body.seq <= head.seq:
            signed_entry = head if body.seq == head.seq else next(
                (e for e in await room.store.entries(call) if e.seq == body.seq), None)
        if room is None or d is None or signed_entry is None or not verifies(
                await current_key(h, d.id), statements.record_head(
                    call, room.signed.plan.hash, body.seq, signed_entry.hash),
                body.signature):
            raise bad(403, NOT_THIS_CALL)
        if room.state.phase is not c.Phase.ENDED or head is None:
            raise bad(409, "the record's head is signed after the call has ended")
        if body.seq != head.seq:
            raise bad(409, f"the head is entry {head.seq}, not {body.seq}")
        try:
            await room.store.add_head_signature(call, d.id, body.seq, body.signature)
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        return await record_view(room)

    @r.get("/calls/{call}/record/export")
    async def export_record(call: str, request: Request) -> Response:
        """The record as one canonical JSON file, for ``summitline verify``: for the
        call's two delegations (signed read)."""
        room = await room_to_read(request, call)
        await signed_read(request, readers(room.signed, devices=False), owners(room.signed))
        body = export(room.signed, await room.store.entries(call),
                      await room.store.head_signatures(call), await rotated(hub(request), room))
        return Response(body, media_type="application/json", headers={
            "content-disposition": f'attachment; filename="{call}.record.json"'})

    @r.get("/calls/{call}/record/export.html")
    async def export_record_html(call: str, request: Request) -> Response:
        """The record as a readable page, with whether it verifies now: for the call's
        two delegations (signed read)."""
        room = await room_to_read(request, call)
        await signed_read(request, readers(room.signed, devices=False), owners(room.signed))
        entries = await room.store.entries(call)
        raw = export(room.signed, entries, await room.store.head_signatures(call),
                     await rotated(hub(request), room))
        try:
            verified = verify_export(raw)
            verdict = ("Verified: the chain is intact and its head is signed by "
                       f"{' and '.join(verified.signers)}.")
            ok = True
        except RecordError as exc:
            verdict, ok = f"Not verified: {exc}", False
        return Response(report.render(room.signed, entries, verdict, ok,
                                      stylesheet="/api/record.css"),
                        media_type="text/html; charset=utf-8")

    @r.get("/record.css", include_in_schema=False)
    async def record_css() -> Response:
        return Response(report.STYLE, media_type="text/css")

    @r.get("/incidents", response_model=v.IncidentPage)
    async def incidents(request: Request,
                        offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int, Query(ge=1, le=MAX_INCIDENT_PAGE)] = 100,
                        ) -> dict[str, Any]:
        """Bad input that belonged to no call (or came after a call's end), one row per
        (remote address, code) with a count, most recently seen first, a page at a time:
        for the server's operator alone (``Authorization: Bearer`` with the token in
        ``operator.token`` of the data directory)."""
        if not bearer_matches(request.headers.get("authorization"),
                              request.app.state.operator_token):
            raise HTTPException(401, detail="incidents are read with the server operator's "
                                "token (operator.token in the data directory)",
                                headers={"WWW-Authenticate": "Bearer"})
        total, rows = await hub(request).store.incidents(offset, limit)
        return {"total": total, "offset": offset, "limit": limit, "incidents": rows}

    @r.get("/nonce", response_model=v.Nonce)
    async def nonce() -> dict[str, str]:
        """A random value, for clients that want one (ids of links and calls)."""
        return {"nonce": secrets.token_urlsafe(16)}

    return r


_CONTROLS: dict[str, tuple[Callable[[int], c.Event], str]] = {
    "start": (c.Start, "call.started"),
    "close-doors": (c.CloseDoors, "doors.closed"),
    "end": (c.End, "call.ended"),
}


def _plan_view(signed: SignedPlan) -> dict[str, Any]:
    return {"hash": signed.plan.hash, "call": signed.plan.call, **signed.to_json(),
            "complete": signed.complete, "missing": [d.name for d in signed.missing()]}

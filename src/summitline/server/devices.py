"""REST routes for devices: enrolment, and what an enrolled device or operator lists.

Enrolment: an operator opens a seat for one device (name, role) with a random code it
keeps, signing the code's hash with the delegation key; the device shows the code,
sends its new public key and signs (code, key). The operator then compares the
device's short fingerprint on the device's screen with the one its console shows
before it puts the device in a plan: the server could swap keys, but not unseen.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field

from summitline.core.record import summary
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PublicKey, SignatureError, short_fingerprint
from summitline.server import closecodes as cc
from summitline.server import views as v
from summitline.server.api import Id, Name, Sig, _Body, bad, delegation_key, hub, verify
from summitline.server.hub import Hub
from summitline.server.reads import not_found, reader, signed_read
from summitline.store import StoreError

# Roles a device can be enrolled for (press never hold keys).
DEVICE_ROLES = tuple(str(r) for r in Role if r is not Role.PRESS)
Code = Annotated[str, Field(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class EnrolmentIn(_Body):
    code_hash: Id
    name: Name
    role: Annotated[str, Field(pattern="^(" + "|".join(DEVICE_ROLES) + ")$")]
    signature: Sig


class CertificateIn(_Body):
    signature: Sig


class RevocationIn(_Body):
    at: int
    signature: Sig


class EnrolIn(_Body):
    code: Code
    key: Annotated[str, Field(min_length=80, max_length=100)]
    signature: Sig


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def device_changed(h: Hub, delegation: str, **fields: str) -> None:
    """Tell the consoles that read this delegation's devices (itself and the delegations
    linked with it) that one changed (server/events.py)."""
    partners = [row["acceptor"] if row["proposer"] == delegation else row["proposer"]
                for row in await h.store.links_of(delegation) if row["acceptor_signature"]]
    h.events.publish([delegation, *partners], "device", **fields)


def router() -> APIRouter:
    r = APIRouter(prefix="/api")

    @r.post("/delegations/{id}/enrolments", status_code=201, response_model=v.SeatOpened)
    async def open_enrolment(id: str, body: EnrolmentIn, request: Request) -> dict[str, Any]:
        """Open a seat for one device of this delegation, signed by the delegation."""
        h = hub(request)
        _, key = await delegation_key(h, id)
        verify(key, statements.enrolment(id, body.code_hash, body.name, body.role),
               body.signature, "the enrolment")
        try:
            await h.store.add_enrolment(body.code_hash, id, body.name, body.role, h.clock())
        except StoreError as exc:
            raise bad(409, str(exc)) from None
        await device_changed(h, id, seat=body.code_hash)
        return {"code_hash": body.code_hash, "name": body.name, "role": body.role}

    @r.post("/enrolments", response_model=v.Enrolled)
    async def enrol(body: EnrolIn, request: Request) -> dict[str, Any]:
        """A device takes the seat its code opens, with its public key."""
        h = hub(request)
        seat = await h.store.enrolment(code_hash(body.code))
        if seat is None:
            raise bad(404, "this enrolment code is not known; ask your communications "
                      "officer for a new one")
        try:
            key = PublicKey.from_b64u(body.key)
        except SignatureError as exc:
            raise bad(422, str(exc)) from None
        verify(key, statements.enrol(body.code, body.key), body.signature, "the enrolment")
        if not await h.store.enrol(code_hash(body.code), key.fingerprint, body.key):
            raise bad(409, "this enrolment code was used already")
        name, dkey = await delegation_key(h, seat["delegation"])
        await device_changed(h, seat["delegation"], id=key.fingerprint)
        return {"device": key.fingerprint, "short_fingerprint": short_fingerprint(
                key.fingerprint), "name": seat["name"], "role": seat["role"],
                "delegation": {"id": seat["delegation"], "name": name, "key": dkey.b64u}}

    @r.post("/delegations/{id}/devices/{device}/certificate", response_model=v.Certified)
    async def certify(id: str, device: Id, body: CertificateIn,
                      request: Request) -> dict[str, Any]:
        """The delegation vouches for one of its enrolled devices (statements.device over
        the key, role and name of the enrolment), after its officer compared the device's
        short fingerprint. Plans carry this certificate for each participant."""
        h = hub(request)
        _, key = await delegation_key(h, id)
        seat = next((e for e in await h.store.enrolments_of(id) if e["device"] == device),
                    None)
        if seat is None:
            raise bad(404, f"no enrolled device {short_fingerprint(device)} of this delegation")
        verify(key, statements.device(id, device, seat["key"], seat["role"], seat["name"]),
               body.signature, "the device certificate")
        if await h.store.revoked([device], by=id):
            raise bad(409, "this delegation revoked the device: a revocation is final")
        await h.store.add_certificate(device, id, body.signature)
        await device_changed(h, id, id=device)
        return {"delegation": id, "device": device, "name": seat["name"],
                "role": seat["role"], "certificate": body.signature}

    @r.post("/delegations/{id}/devices/{device}/revocation", response_model=v.Revoked)
    async def revoke(id: str, device: Id, body: RevocationIn,
                     request: Request) -> dict[str, Any]:
        """The delegation revokes one of its devices: plans naming it are refused from
        now on, its joins too, and its signaling in a call in progress is closed."""
        h = hub(request)
        _, key = await delegation_key(h, id)
        verify(key, statements.revocation(id, device, body.at), body.signature,
               "the revocation")
        # A device enrolled here is revoked by the delegation that enrolled it; one enrolled
        # elsewhere (or certified without enrolment) by a delegation a plan here names it
        # under: the revocation then counts where it is that delegation's device.
        if await h.store.delegation(device) is not None:
            raise bad(403, f"{short_fingerprint(device)} is a delegation, not a device")
        seat = await h.store.enrolled_device(device)
        if seat is not None and seat["delegation"] != id:
            raise bad(403, f"{short_fingerprint(device)} is a device of another delegation")
        if seat is None and not await h.store.names_device(id, device):
            raise bad(404, f"no device {short_fingerprint(device)} of this delegation: "
                           "neither enrolled here nor named by a plan under it")
        await h.store.revoke(device, id, body.at, body.signature)
        # The others are told, with the delegation's signature, so that they close their
        # peer-to-peer links with the device (its media does not pass through here). The
        # first revocation is the one kept and sent.
        [kept] = await h.store.revocations([device], [(device, id)])
        told = h.tell_revoked(kept)
        dropped = await h.drop(device, "device-revoked", "its delegation revoked this device",
                               cc.DEVICE_REVOKED, by=id)
        await device_changed(h, id, id=device)
        return {"delegation": id, "device": device, "revoked": True, "dropped": dropped,
                "told": told}

    @r.get("/delegations/{id}/devices", response_model=list[v.SeatRow])
    async def devices(id: str, request: Request) -> list[dict[str, Any]]:
        """The seats this delegation opened, and the devices that took them: for the
        delegation itself, and for a delegation it has an established link with (whose
        operator drafts plans naming these devices). Signed read."""
        h = hub(request)
        await signed_read(request, {id: None, **{
            (row["acceptor"] if row["proposer"] == id else row["proposer"]): None
            for row in await h.store.links_of(id) if row["acceptor_signature"]}})
        rows = await h.store.enrolments_of(id)
        revoked = await h.store.revoked([e["device"] for e in rows if e["device"]], by=id)
        return [{"name": e["name"], "role": e["role"], "device": e["device"], "key": e["key"],
                 "short_fingerprint": short_fingerprint(e["device"]) if e["device"] else None,
                 "code_hash": e["code_hash"], "delegation": id,
                 "certificate": e["certificate"], "revoked": e["device"] in revoked}
                for e in rows]

    @r.get("/delegations/{id}/links", response_model=list[v.LinkRow])
    async def links(id: str, request: Request) -> list[dict[str, Any]]:
        """The delegation's links: for the delegation itself (signed read)."""
        await signed_read(request, {id: None})
        rows = await hub(request).store.links_of(id)
        return [{"id": row["id"], "proposer": row["proposer"], "acceptor": row["acceptor"],
                 "state": "established" if row["acceptor_signature"] else "proposed"}
                for row in rows]

    @r.get("/links/{id}/plans", response_model=list[v.LinkPlanRow])
    async def plans_of_link(id: str, request: Request) -> list[dict[str, Any]]:
        """The plans of a link: for its two delegations (signed read)."""
        h = hub(request)
        await reader(request)
        link = await h.store.link(id)
        if link is None:
            raise await not_found(request)
        await signed_read(request, {link["proposer"]: None, link["acceptor"]: None})
        out = []
        for signed in await h.store.plans_of_link(id):
            out.append({"hash": signed.plan.hash, "call": signed.plan.call, **signed.to_json(),
                        "complete": signed.complete,
                        "missing": [d.id for d in signed.missing()],
                        "phase": await h.phase_of(signed.plan.call)})
        return out

    @r.get("/devices/{device}/calls", response_model=list[v.DeviceCallRow])
    async def calls_of_device(device: Id, request: Request) -> list[dict[str, Any]]:
        """The calls whose plans name this device, newest last (signed read). The device
        reads all of them. A delegation reads only the calls in which the device stands
        under that delegation, and only if it is the device's own: the one that enrolled
        it here, or (for a device enrolled elsewhere) one it stands under. Certifying
        another's key in a plan of one's own shows nothing of that device's other calls."""
        h = hub(request)
        plans = await h.store.plans_of_device(device)
        seat = await h.store.enrolled_device(device)
        concerned: dict[str, PublicKey | None] = {device: None}
        if seat is not None:
            concerned[seat["delegation"]] = None
        for signed in plans:
            for p in signed.plan.participants:
                if p.device == device:
                    concerned[device] = p.key
                    if seat is None:
                        concerned[p.delegation] = None
        reader = await signed_read(request, concerned)
        out = []
        for signed in plans:
            standing = signed.plan.participant(device)
            if reader != device and (standing is None or standing.delegation != reader):
                continue
            if reader == device and standing is not None and \
                    await h.store.revoked_as([(device, standing.delegation)]):
                continue  # not the device of that delegation any more
            entries = await h.store.entries(signed.plan.call)
            out.append({"call": signed.plan.call, "title": signed.plan.title,
                        "phase": await h.phase_of(signed.plan.call),
                        "complete": signed.complete, **summary(entries)})
        return out

    return r

"""Readouts, the official photos, and the press room.

Each delegation drafts its readout privately and publishes it when ready; during the
press window its operator may capture a frame of the press programme and publish it
as the delegation's official photo. Every write, and every read of a private draft,
is signed by the delegation key (``statements.readout`` / ``statements.photo``),
fresh, and usable once, as a control request is. What is published is final.

The press room (``GET /api/pressroom/{call}``) is public once there is something public
about the call (it started with a press window, or a delegation published): the call's
title, its delegations (two, or a briefing's host and guests) with their principals, its
public facts (start, end, duration, from the record) and what each delegation published,
with the signatures so that anyone can check them against the delegation's key. Drafts
never appear there.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from summitline.core import call as c
from summitline.core.record import summary
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.server import views as v
from summitline.server.api import (
    Id,
    Sig,
    _Body,
    bad,
    hub,
    room_of,
    signed_request,
)
from summitline.server.hub import Hub
from summitline.store import StoreError
from summitline.store import pressroom as store

MAX_READOUT_CHARS = 20_000
JPEG = b"\xff\xd8\xff"


class Signed(_Body):
    """A signed request of a delegation without content: read a draft, capture a photo,
    publish a photo (the photo's id is in the path and in the statement)."""

    delegation: Id
    at: int
    signature: Sig


class ReadoutIn(_Body):
    delegation: Id
    text: Annotated[str, Field(min_length=1, max_length=MAX_READOUT_CHARS)]
    at: int
    signature: Sig


def text_hash(text: str) -> str:
    """What the readout statement binds of ``text`` (``statements.text_hash``). A NUL
    is refused: PostgreSQL cannot store it in text. (A lone surrogate never gets here:
    the JSON parser refuses it.)"""
    if "\x00" in text:
        raise bad(422, "the text contains a NUL character")
    return statements.text_hash(text)


def photo_url(call: str, photo_id: str) -> str:
    return f"/api/calls/{call}/photos/{photo_id}.jpg"


async def own_view(h: Hub, call: str, delegation: str) -> dict[str, Any]:
    """What one delegation sees of its own readout and photos (after a signed request)."""
    published = next((r for r in await store.published_readouts(h.store, call)
                      if r["delegation"] == delegation), None)
    official = next((p for p in await store.published_photos_of(h.store, call)
                     if p["delegation"] == delegation), None)
    return {
        "call": call, "delegation": delegation,
        "draft": await store.draft(h.store, call, delegation),
        "published": published,
        "photos": [{"id": p["id"], "url": photo_url(call, p["id"]),
                    "captured_ms": p["captured_ms"],
                    "official": official is not None and p["id"] == official["id"],
                    "published_ms": official["at"] if official and p["id"] == official["id"]
                    else None}
                   for p in await store.photos_of(h.store, call, delegation)],
    }


def jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"cache-control": "no-cache"})


def router() -> APIRouter:
    r = APIRouter(prefix="/api")

    # -- readouts ------------------------------------------------------------------------
    @r.post("/calls/{call}/readouts/draft", response_model=v.OwnView)
    async def save_draft(call: str, body: ReadoutIn, request: Request) -> dict[str, Any]:
        """Save (or replace) the delegation's private draft, until it publishes."""
        h = hub(request)
        digest_ = text_hash(body.text)
        room, d = await signed_request(h, call, body.delegation, body.at, statements.readout(
            call, body.delegation, "draft", body.at, digest_), body.signature, "the draft")
        if any(x["delegation"] == d.id for x in await store.published_readouts(h.store, call)):
            raise bad(409, "the readout is published; a published readout is final")
        await store.save_draft(h.store, call, d.id, body.text, body.at)
        return await own_view(h, call, d.id)

    @r.post("/calls/{call}/readouts/read", response_model=v.OwnView)
    async def read_own(call: str, body: Signed, request: Request) -> dict[str, Any]:
        """The delegation's own draft, readout and photos: a signed read, since drafts
        are private to the delegation."""
        h = hub(request)
        room, d = await signed_request(h, call, body.delegation, body.at, statements.readout(
            call, body.delegation, "read", body.at), body.signature, "the read request")
        return await own_view(h, call, d.id)

    @r.post("/calls/{call}/readouts/publish", response_model=v.OwnView)
    async def publish(call: str, body: ReadoutIn, request: Request) -> dict[str, Any]:
        """Publish the delegation's readout: the text whose hash it signed. Final."""
        h = hub(request)
        digest_ = text_hash(body.text)
        room, d = await signed_request(h, call, body.delegation, body.at, statements.readout(
            call, body.delegation, "publish", body.at, digest_), body.signature,
            "the publication")
        if room.state.phase is not c.Phase.ENDED:
            raise bad(409, "a readout is published after the call has ended")
        if not body.text.strip():
            raise bad(422, "the readout is empty")
        try:
            await store.publish_readout(h.store, call, d.id, body.text, digest_, body.at,
                                        body.signature)
        except StoreError as exc:
            raise bad(409, f"{exc}; a published readout is final") from None
        return await own_view(h, call, d.id)

    # -- photos --------------------------------------------------------------------------
    @r.post("/calls/{call}/photos", status_code=201, response_model=v.Captured)
    async def capture(call: str, body: Signed, request: Request) -> dict[str, Any]:
        """Capture a frame of the press programme, as the delegation's unpublished photo.
        Only during the press window."""
        h = hub(request)
        room, d = await signed_request(h, call, body.delegation, body.at, statements.photo(
            call, body.delegation, "capture", body.at), body.signature, "the capture request")
        if room.state.phase is not c.Phase.OPEN:
            raise bad(409, "a photo is captured during the press window only")
        data = h.press.snapshot(call)  # the programme as the press see it now
        if data is None:
            raise bad(409, "the press programme is not running: a photo is captured "
                           "during the press window only")
        if not data.startswith(JPEG):
            raise bad(502, "the press gateway returned something other than a JPEG")
        photo_id = hashlib.sha256(data).hexdigest()
        await store.add_photo(h.store, call, d.id, photo_id, data, h.clock())
        return {**await own_view(h, call, d.id), "captured": photo_id}

    @r.get("/calls/{call}/photos/{photo_id}.jpg", response_class=Response,
           responses={200: {"content": {"image/jpeg": {}}}})
    async def get_photo(call: str, photo_id: str, request: Request) -> Response:
        """A captured photo, by its SHA-256: a frame of the (public) press programme, for
        the operator's preview; unguessable until published."""
        row = await store.photo(hub(request).store, call, photo_id)
        if row is None:
            raise bad(404, "no such photo")
        return jpeg(row["data"])

    @r.post("/calls/{call}/photos/{photo_id}/publish", response_model=v.OwnView)
    async def publish_photo(call: str, photo_id: str, body: Signed,
                            request: Request) -> dict[str, Any]:
        """Publish one of the delegation's photos as its official photo of the call. Final."""
        h = hub(request)
        room, d = await signed_request(h, call, body.delegation, body.at, statements.photo(
            call, body.delegation, "publish", body.at, photo_id), body.signature,
            "the publication")
        if not any(p["id"] == photo_id for p in await store.photos_of(h.store, call, d.id)):
            raise bad(404, "this delegation has no such photo of the call")
        try:
            await store.publish_photo(h.store, call, d.id, photo_id, body.at, body.signature)
        except StoreError as exc:
            raise bad(409, f"{exc}; a published photo is final") from None
        return await own_view(h, call, d.id)

    # -- the press room ------------------------------------------------------------------
    @r.get("/pressroom/{call}", response_model=v.PressRoom)
    async def pressroom(call: str, request: Request) -> dict[str, Any]:
        """What every delegation published about the call, and its public facts: only once
        the call has started with a press window, or something is published (else 404,
        as for an unknown call)."""
        h = hub(request)
        room = await room_of(h, call)
        plan = room.signed.plan
        names = {d.id: d.name for d in plan.delegations}
        readouts = await store.published_readouts(h.store, call)
        photos = await store.published_photos_of(h.store, call)
        facts = summary(await h.store.entries(call))
        started = facts["started_ms"] is not None
        if not (readouts or photos or (started and plan.press_window_s > 0)):
            # nothing public about this call yet: the same answer as for an unknown
            # call, so that this route tells nobody which calls exist
            raise bad(404, f"no call {call!r} on this server")
        return {
            "call": call, "title": plan.title, "phase": str(room.state.phase),
            "host": plan.host,
            "delegations": [{"id": d.id, "name": d.name,
                             "principals": [p.name for p in plan.participants
                                            if p.delegation == d.id
                                            and p.role is Role.PRINCIPAL]}
                            for d in plan.delegations],
            "started_ms": facts["started_ms"], "ended_ms": facts["ended_ms"],
            "duration_ms": facts["duration_ms"],
            "readouts": [{"delegation": x["delegation"], "name": names.get(x["delegation"]),
                          "text": x["text"], "hash": x["hash"], "published_ms": x["at"],
                          "signature": x["signature"]}
                         for x in readouts],
            "photos": [{"delegation": p["delegation"], "name": names.get(p["delegation"]),
                        "id": p["id"],
                        "url": f"/api/pressroom/{call}/photos/{p['delegation']}.jpg",
                        "published_ms": p["at"], "signature": p["signature"]}
                       for p in photos],
        }

    @r.get("/pressroom/{call}/photos/{delegation}.jpg", response_class=Response,
           responses={200: {"content": {"image/jpeg": {}}}})
    async def official_photo(call: str, delegation: str, request: Request) -> Response:
        """A delegation's official photo of the call."""
        s = hub(request).store
        official = next((p for p in await store.published_photos_of(s, call)
                         if p["delegation"] == delegation), None)
        row = await store.photo(s, call, official["id"]) if official else None
        if row is None:
            raise bad(404, "that delegation has published no photo of this call")
        return jpeg(row["data"])

    return r

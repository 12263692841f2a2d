"""Readouts and photos of calls: each delegation's private drafts and what it published.

Tables on the same ``metadata`` as ``schema``: importing this module (the server's press
room routes do) is what lets ``open_store`` create them. A draft is private to its
delegation; a published readout or photo is final (there is no update of either).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from summitline.store.schema import FP, metadata
from summitline.store.sql import Store, StoreError

# How many unpublished photos a delegation keeps per call; older ones are dropped.
MAX_DRAFT_PHOTOS = 10

# One private draft per delegation and call, replaced at each save.
readout_drafts = Table(
    "readout_drafts", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("text", Text, nullable=False),
    Column("at", BigInteger, nullable=False),  # the signed time of the save
    PrimaryKeyConstraint("call", "delegation"),
)

# The published readout: once per delegation and call, with the signature over its text.
readouts = Table(
    "readouts", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("text", Text, nullable=False),
    Column("hash", String(43), nullable=False),  # SHA-256 of the text, base64url
    Column("at", BigInteger, nullable=False),  # the signed time of publication
    Column("signature", String(100), nullable=False),
    PrimaryKeyConstraint("call", "delegation"),
)

# Frames of the press programme a delegation captured (JPEG), by SHA-256 (hex).
photos = Table(
    "photos", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("id", FP, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("captured_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("call", "delegation", "id"),
)

# The photo a delegation published as official: once per delegation and call.
published_photos = Table(
    "published_photos", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("id", FP, nullable=False),
    Column("at", BigInteger, nullable=False),  # the signed time of publication
    Column("signature", String(100), nullable=False),
    PrimaryKeyConstraint("call", "delegation"),
)


# -- readouts --------------------------------------------------------------------------
async def save_draft(store: Store, call: str, delegation: str, text: str, at_ms: int) -> None:
    """Replace the delegation's draft (the caller checks it is not yet published)."""
    async with store.writing() as conn:
        await conn.execute(delete(readout_drafts).where(
            (readout_drafts.c.call == call) & (readout_drafts.c.delegation == delegation)))
        await conn.execute(insert(readout_drafts).values(
            call=call, delegation=delegation, text=text, at=at_ms))


async def draft(store: Store, call: str, delegation: str) -> dict[str, Any] | None:
    row = await store._one(select(readout_drafts).where(
        (readout_drafts.c.call == call) & (readout_drafts.c.delegation == delegation)))
    return {"text": row["text"], "at": row["at"]} if row else None


async def publish_readout(store: Store, call: str, delegation: str, text: str, text_hash: str,
                          at_ms: int, signature: str) -> None:
    """Publish, once: a second publication of the same delegation raises StoreError. The
    draft goes (what was published is the readout now)."""
    try:
        async with store.writing() as conn:
            await conn.execute(insert(readouts).values(
                call=call, delegation=delegation, text=text, hash=text_hash, at=at_ms,
                signature=signature))
            await conn.execute(delete(readout_drafts).where(
                (readout_drafts.c.call == call) & (readout_drafts.c.delegation == delegation)))
    except IntegrityError as exc:
        raise StoreError("this delegation has already published its readout") from exc


async def published_readouts(store: Store, call: str) -> list[dict[str, Any]]:
    rows = await store._all(select(readouts).where(readouts.c.call == call)
                            .order_by(readouts.c.at))
    return [{"delegation": r["delegation"], "text": r["text"], "hash": r["hash"],
             "at": r["at"], "signature": r["signature"]} for r in rows]


# -- photos ----------------------------------------------------------------------------
async def add_photo(store: Store, call: str, delegation: str, photo_id: str, data: bytes,
                    now_ms: int) -> None:
    """Keep a captured photo (the same picture twice is kept once), and only the newest
    MAX_DRAFT_PHOTOS of the delegation's unpublished ones."""
    async with store.writing() as conn:
        mine = (photos.c.call == call) & (photos.c.delegation == delegation)
        known = (await conn.execute(select(photos.c.id).where(
            mine & (photos.c.id == photo_id)))).first()
        if known is None:
            await conn.execute(insert(photos).values(
                call=call, delegation=delegation, id=photo_id, data=data,
                captured_ms=now_ms))
        official = select(published_photos.c.id).where(
            (published_photos.c.call == call) & (published_photos.c.delegation == delegation))
        keep = select(photos.c.id).where(mine).order_by(
            photos.c.captured_ms.desc(), photos.c.id).limit(MAX_DRAFT_PHOTOS)
        await conn.execute(delete(photos).where(
            mine & photos.c.id.not_in(keep.scalar_subquery())
            & photos.c.id.not_in(official.scalar_subquery())))


async def photo(store: Store, call: str, photo_id: str) -> dict[str, Any] | None:
    """A photo of the call by its id (whichever delegation captured it)."""
    row = await store._one(select(photos).where(
        (photos.c.call == call) & (photos.c.id == photo_id)))
    return dict(row) if row else None


async def photos_of(store: Store, call: str, delegation: str) -> list[dict[str, Any]]:
    """The delegation's photos of the call, newest first, without their bytes."""
    rows = await store._all(
        select(photos.c.id, photos.c.captured_ms)
        .where((photos.c.call == call) & (photos.c.delegation == delegation))
        .order_by(photos.c.captured_ms.desc(), photos.c.id))
    return [dict(r) for r in rows]


async def publish_photo(store: Store, call: str, delegation: str, photo_id: str, at_ms: int,
                        signature: str) -> None:
    try:
        await store._insert(published_photos, "", call=call, delegation=delegation,
                            id=photo_id, at=at_ms, signature=signature)
    except StoreError as exc:
        raise StoreError("this delegation has already published its photo") from exc


async def published_photos_of(store: Store, call: str) -> list[dict[str, Any]]:
    rows = await store._all(select(published_photos).where(published_photos.c.call == call)
                            .order_by(published_photos.c.at))
    return [{"delegation": r["delegation"], "id": r["id"], "at": r["at"],
             "signature": r["signature"]} for r in rows]

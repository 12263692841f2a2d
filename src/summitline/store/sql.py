"""``Store``: the one storage interface, on SQLAlchemy 2 Core (async).

SQLite in a data directory is the embedded default, in WAL mode with synchronous=FULL
so that an entry the store acknowledged survives a crash of the process or machine.
PostgreSQL works through the same code with a ``postgresql+asyncpg://`` URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from summitline.core.plan import PlanError, SignedPlan
from summitline.core.record import GENESIS, Entry
from summitline.crypto.encoding import canonical
from summitline.store import schema as t

# How long an SQLite write waits for another process's write lock before it fails. Within
# this process writes take turns (``Store.writing``) and never wait on SQLite.
BUSY_TIMEOUT_MS = 30_000
# At most this many (remote address, code) rows of incidents: an attacker with many
# addresses cannot grow the table without bound. Past it, a new pair is counted in the
# row of its code whose remote is OVERFLOW.
MAX_INCIDENT_GROUPS = 10_000
OVERFLOW = "(other addresses)"


class StoreError(Exception):
    """A write conflicts with what is stored (a duplicate, a fork of the record)."""


class RecordMoved(StoreError):
    """An entry that does not follow the head of its chain as stored: another writer (a
    process on another node) appended first. Read the entries past your head, and try
    again from the new head."""


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'summitline.db'}"


async def open_store(url: str) -> Store:
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    async with engine.begin() as conn:
        await conn.run_sync(t.metadata.create_all)
    return Store(engine)


def _entry(row: Any) -> Entry:
    return Entry(row["seq"], row["at"], row["kind"], json.loads(row["data"]), row["prev"],
                 row["hash"])


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # One writer at a time: SQLite has one write lock, and a flood of concurrent
        # writes (1,500 foreign-Origin attempts) otherwise queues in the pool and in
        # SQLite's busy handler until some fail with "database is locked".
        self._writer = asyncio.Lock()
        # Told how long each append to a shared record took (s), and the code of each
        # incident counted: the server's metrics (server/metrics.py).
        self.on_append: Callable[[float], None] = lambda seconds: None
        self.on_incident: Callable[[str], None] = lambda code: None

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer, self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()

    async def _insert(self, table: Any, conflict: str, **values: Any) -> None:
        try:
            async with self.writing() as conn:
                await conn.execute(insert(table).values(**values))
        except IntegrityError as exc:
            raise StoreError(conflict) from exc

    async def _one(self, query: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).mappings().first()

    async def _all(self, query: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    # -- delegations and links -----------------------------------------------------------
    async def add_delegation(self, id: str, name: str, key: str, now_ms: int) -> None:
        await self._insert(t.delegations, "this delegation key is already registered",
                           id=id, name=name, key=key, created_ms=now_ms)

    async def delegation(self, id: str) -> dict[str, Any] | None:
        row = await self._one(select(t.delegations).where(t.delegations.c.id == id))
        if row is None:
            return None
        name = await self._one(select(t.delegation_names.c.signature)
                               .where(t.delegation_names.c.delegation == id))
        return {**dict(row), "name_signature": name["signature"] if name else None}

    async def rotations(self, delegation: str) -> list[dict[str, Any]]:
        """A delegation's key chain, oldest first: ``{previous, key, at, signature,
        proof}`` each."""
        r = t.delegation_rotations
        rows = await self._all(select(r.c.previous, r.c.key, r.c.at, r.c.signature, r.c.proof)
                               .where(r.c.delegation == delegation).order_by(r.c.seq))
        return [dict(row) for row in rows]

    async def key_in_use(self, key: str, fingerprint: str) -> bool:
        """Whether ``key`` (whose fingerprint is given) is or was any delegation's key."""
        if await self._one(select(t.delegations.c.id).where(
                (t.delegations.c.id == fingerprint) | (t.delegations.c.key == key))):
            return True
        r = t.delegation_rotations
        return await self._one(select(r.c.key).where(
            (r.c.key == key) | (r.c.previous == key))) is not None

    async def rotate(self, delegation: str, previous: str, key: str, at: int, signature: str,
                     proof: str, name_signature: str) -> None:
        """Append a rotation to the chain and make ``key`` the delegation's current key,
        with its new signature on the delegation's name; only if ``previous`` is still the
        current key (else StoreError: another rotation came first)."""
        try:
            async with self.writing() as conn:
                await self._rotate(conn, delegation, previous, key, at, signature, proof,
                                   name_signature)
        except IntegrityError as exc:
            raise StoreError("that key is already in a delegation's chain") from exc

    @staticmethod
    async def _rotate(conn: AsyncConnection, delegation: str, previous: str, key: str,
                      at: int, signature: str, proof: str, name_signature: str) -> None:
        r = t.delegation_rotations
        row = (await conn.execute(select(t.delegations.c.key).where(
            t.delegations.c.id == delegation))).first()
        if row is None or row.key != previous:
            raise StoreError("the delegation's key changed meanwhile")
        seq = (await conn.execute(select(func.count()).select_from(r).where(
            r.c.delegation == delegation))).scalar_one()
        await conn.execute(insert(r).values(
            delegation=delegation, seq=seq, previous=previous, key=key, at=at,
            signature=signature, proof=proof))
        await conn.execute(t.delegations.update().where(
            t.delegations.c.id == delegation).values(key=key))
        await conn.execute(t.delegation_names.update().where(
            t.delegation_names.c.delegation == delegation).values(
            signature=name_signature))

    async def add_name_signature(self, delegation: str, signature: str) -> None:
        """The delegation's signature on its registered name (statements.register)."""
        await self._insert(t.delegation_names, "this delegation's name is already signed",
                           delegation=delegation, signature=signature)

    async def add_certificate(self, device: str, delegation: str, signature: str) -> None:
        """A delegation's certificate of its enrolled device (replaces an older one)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(t.device_certificates)
                               .where(t.device_certificates.c.device == device))
            await conn.execute(insert(t.device_certificates).values(
                device=device, delegation=delegation, signature=signature))

    async def add_link(self, id: str, proposer: str, acceptor: str, signature: str,
                       now_ms: int) -> None:
        await self._insert(t.links, "a link with this id exists", id=id, proposer=proposer,
                           acceptor=acceptor, proposer_signature=signature, created_ms=now_ms)

    async def accept_link(self, id: str, signature: str) -> None:
        async with self.writing() as conn:
            await conn.execute(t.links.update().where(t.links.c.id == id)
                               .values(acceptor_signature=signature))

    async def link(self, id: str) -> dict[str, Any] | None:
        row = await self._one(select(t.links).where(t.links.c.id == id))
        return dict(row) if row else None

    # -- plans ---------------------------------------------------------------------------
    async def add_plan(self, signed: SignedPlan, now_ms: int) -> None:
        plan = signed.plan
        try:
            async with self.writing() as conn:
                await conn.execute(insert(t.plans).values(
                    hash=plan.hash, call=plan.call, link=plan.filed_under[0],
                    body=canonical(plan.to_json()).decode(), created_ms=now_ms))
                if plan.host is not None:
                    for link in plan.links:
                        await conn.execute(insert(t.plan_links).values(plan=plan.hash,
                                                                       link=link))
                for delegation, sig in signed.signatures.items():
                    await conn.execute(insert(t.plan_signatures).values(
                        plan=plan.hash, delegation=delegation, signature=sig))
                for p in plan.participants:
                    await conn.execute(insert(t.plan_devices).values(plan=plan.hash,
                                                                     device=p.device))
        except IntegrityError as exc:
            raise StoreError(f"a plan for call {plan.call!r} was already submitted") from exc

    async def add_plan_signature(self, plan_hash: str, delegation: str, sig: str) -> None:
        await self._insert(t.plan_signatures, "this delegation has already signed the plan",
                           plan=plan_hash, delegation=delegation, signature=sig)

    async def plan_for_call(self, call: str) -> SignedPlan | None:
        row = await self._one(select(t.plans).where(t.plans.c.call == call))
        return await self._signed(row) if row else None

    async def plan(self, plan_hash: str) -> SignedPlan | None:
        row = await self._one(select(t.plans).where(t.plans.c.hash == plan_hash))
        return await self._signed(row) if row else None

    async def _signed(self, row: Any) -> SignedPlan:
        sigs = await self._all(select(t.plan_signatures)
                               .where(t.plan_signatures.c.plan == row["hash"]))
        return SignedPlan.from_json({"plan": json.loads(row["body"]),
                                     "signatures": {s["delegation"]: s["signature"]
                                                    for s in sigs}})

    async def plans_of_device(self, device: str) -> list[SignedPlan]:
        rows = await self._all(select(t.plans).join(t.plan_devices,
                                                    t.plan_devices.c.plan == t.plans.c.hash)
                               .where(t.plan_devices.c.device == device)
                               .order_by(t.plans.c.created_ms))
        return await self._readable(rows)

    async def names_device(self, delegation: str, device: str) -> bool:
        """Whether a plan here, signed by both its delegations, names ``device`` as a
        device of ``delegation``."""
        return any(p.device == device and p.delegation == delegation
                   for signed in await self.plans_of_device(device) if signed.complete
                   for p in signed.plan.participants)

    async def plans_of_link(self, link: str) -> list[SignedPlan]:
        briefings = select(t.plan_links.c.plan).where(t.plan_links.c.link == link)
        rows = await self._all(select(t.plans).where(
            (t.plans.c.link == link) | t.plans.c.hash.in_(briefings))
            .order_by(t.plans.c.created_ms))
        return await self._readable(rows)

    async def _readable(self, rows: list[Any]) -> list[SignedPlan]:
        """The plans this build still reads: plans stored before a plan version change
        (version 1, without device certificates) are left out of lists, not fatal."""
        out = []
        for row in rows:
            try:
                out.append(await self._signed(row))
            except PlanError:
                continue
        return out

    async def links_of(self, delegation: str) -> list[dict[str, Any]]:
        rows = await self._all(select(t.links).where(
            (t.links.c.proposer == delegation) | (t.links.c.acceptor == delegation))
            .order_by(t.links.c.created_ms))
        return [dict(r) for r in rows]

    # -- enrolment -----------------------------------------------------------------------
    async def add_enrolment(self, code_hash: str, delegation: str, name: str, role: str,
                            now_ms: int) -> None:
        await self._insert(t.enrolments, "this enrolment code is already in use",
                           code_hash=code_hash, delegation=delegation, name=name, role=role,
                           created_ms=now_ms)

    async def enrolment(self, code_hash: str) -> dict[str, Any] | None:
        row = await self._one(select(t.enrolments)
                              .where(t.enrolments.c.code_hash == code_hash))
        return dict(row) if row else None

    async def enrol(self, code_hash: str, device: str, key: str) -> bool:
        """Seat the device; False if the seat was taken already."""
        async with self.writing() as conn:
            result = await conn.execute(
                t.enrolments.update()
                .where((t.enrolments.c.code_hash == code_hash)
                       & t.enrolments.c.device.is_(None))
                .values(device=device, key=key))
            return bool(result.rowcount == 1)

    async def enrolled_device(self, device: str) -> dict[str, Any] | None:
        """The seat a device took (its key and delegation), if it enrolled here."""
        row = await self._one(select(t.enrolments).where(t.enrolments.c.device == device))
        return dict(row) if row else None

    async def revoke(self, device: str, delegation: str, at: int, signature: str) -> None:
        """Keep a delegation's revocation of its device (the first one counts)."""
        try:
            await self._insert(t.device_revocations, "revoked already", device=device,
                               delegation=delegation, at=at, signature=signature)
        except StoreError:
            pass  # revoked already: a revocation is final

    async def revoked(self, devices: list[str], by: str | None = None) -> set[str]:
        """Which of ``devices`` delegation ``by`` revoked (any delegation if None)."""
        r = t.device_revocations
        query = select(r.c.device).where(r.c.device.in_(devices))
        if by is not None:
            query = query.where(r.c.delegation == by)
        return {row["device"] for row in await self._all(query)}

    async def revoked_as(self, seats: list[tuple[str, str]]) -> set[str]:
        """Which of the (device, delegation) ``seats`` that delegation revoked."""
        r = t.device_revocations
        found: set[str] = set()
        for delegation in {d for _, d in seats}:
            rows = await self._all(select(r.c.device).where(
                r.c.delegation == delegation,
                r.c.device.in_([dev for dev, d in seats if d == delegation])))
            found |= {row["device"] for row in rows}
        return found

    async def revocations(self, devices: list[str],
                          seats: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        """The signed revocations of those of ``devices`` that were revoked:
        ``{delegation, device, at, signature, rotations}``, by device; only those by the
        delegation each (device, delegation) of ``seats`` names, if given."""
        r = t.device_revocations
        rows = await self._all(select(r.c.delegation, r.c.device, r.c.at, r.c.signature)
                               .where(r.c.device.in_(devices))
                               .order_by(r.c.device, r.c.delegation))
        if seats is not None:
            rows = [row for row in rows if (row["device"], row["delegation"]) in set(seats)]
        # with the delegation's key chain, for endpoints whose plan has an older key
        return [{**row, "rotations": await self.rotations(row["delegation"])} for row in rows]

    async def enrolments_of(self, delegation: str) -> list[dict[str, Any]]:
        """The seats of a delegation, each with its device's certificate (or None)."""
        cert = t.device_certificates
        rows = await self._all(
            select(t.enrolments, cert.c.signature.label("certificate"))
            .outerjoin(cert, (cert.c.device == t.enrolments.c.device)
                       & (cert.c.delegation == t.enrolments.c.delegation))
            .where(t.enrolments.c.delegation == delegation)
            .order_by(t.enrolments.c.created_ms))
        return [dict(r) for r in rows]

    # -- the record ----------------------------------------------------------------------
    async def append(self, call: str, entry: Entry) -> None:
        """Durably append ``entry`` to the call's shared record; it is stored when this
        returns. Only the entry that follows the stored head (``seq`` one more, ``prev``
        its hash) is taken: else RecordMoved, and nothing is stored."""
        started = time.perf_counter()
        await self._append_chained(t.entries, call, "", entry, {})
        self.on_append(time.perf_counter() - started)

    async def head(self, call: str) -> Entry | None:
        """The last entry of the call's shared record (None if it has none)."""
        rows = await self._all(select(t.entries).where(t.entries.c.call == call)
                               .order_by(t.entries.c.seq.desc()).limit(1))
        return _entry(rows[0]) if rows else None

    async def entries(self, call: str, after: int = -1) -> list[Entry]:
        """The call's shared record in order; only the entries past seq ``after``."""
        rows = await self._all(select(t.entries)
                               .where(t.entries.c.call == call, t.entries.c.seq > after)
                               .order_by(t.entries.c.seq))
        return [_entry(r) for r in rows]

    async def append_private(self, call: str, delegation: str, entry: Entry) -> None:
        """Append to ``delegation``'s private chain of the call, as ``append`` does."""
        await self._append_chained(t.private_entries, call, delegation, entry,
                                   {"delegation": delegation})

    async def private_entries(self, call: str, delegation: str) -> list[Entry]:
        c = t.private_entries.c
        rows = await self._all(select(t.private_entries)
                               .where(c.call == call, c.delegation == delegation)
                               .order_by(c.seq))
        return [_entry(r) for r in rows]

    async def _append_chained(self, table: Table, call: str, chain: str, entry: Entry,
                              key: dict[str, str]) -> None:
        """Insert ``entry`` into ``table`` and move the chain's head in one transaction,
        only from (entry.seq - 1, entry.prev). The head row is the point of contention:
        PostgreSQL makes a concurrent UPDATE of it wait for the first to commit and then
        finds it moved; SQLite has one writer at a time. So of two processes that append
        the same seq, exactly one succeeds, and no seq is ever skipped."""
        h = t.record_heads
        here = (h.c.call == call) & (h.c.chain == chain)
        moved = RecordMoved(f"the record of {call!r} has moved past entry {entry.seq - 1}: "
                            "read its new entries and try again")
        try:
            async with self.writing() as conn:
                result = await conn.execute(
                    update(h).where(here, h.c.seq == entry.seq - 1, h.c.hash == entry.prev)
                    .values(seq=entry.seq, hash=entry.hash))
                if result.rowcount != 1:
                    await self._first_head(conn, table, call, chain, entry, key, moved)
                await conn.execute(insert(table).values(
                    call=call, seq=entry.seq, at=entry.at, kind=entry.kind,
                    data=json.dumps(entry.data), prev=entry.prev, hash=entry.hash, **key))
        except IntegrityError as exc:  # another process made the first head, or a row
            raise moved from exc

    @staticmethod
    async def _first_head(conn: AsyncConnection, table: Table, call: str, chain: str,
                          entry: Entry, key: dict[str, str], moved: RecordMoved) -> None:
        """The chain has no head row: a new chain, or one stored before heads were kept
        (it starts from its last entry). Raise ``moved`` if the head has a row already
        or ``entry`` does not follow the last entry."""
        h = t.record_heads
        if (await conn.execute(select(h.c.seq).where(h.c.call == call,
                                                     h.c.chain == chain))).first():
            raise moved
        mine = [table.c.call == call, *(table.c[k] == v for k, v in key.items())]
        last = (await conn.execute(select(table.c.seq, table.c.hash).where(*mine)
                                   .order_by(table.c.seq.desc()).limit(1))).first()
        if (entry.seq - 1, entry.prev) != ((last.seq, last.hash) if last else (-1, GENESIS)):
            raise moved
        await conn.execute(insert(h).values(call=call, chain=chain, seq=entry.seq,
                                            hash=entry.hash))

    async def add_press_token(self, token_hash: str, call: str, delegation: str,
                              expires_ms: int) -> None:
        await self._insert(t.press_tokens, "token exists", token=token_hash, call=call,
                           delegation=delegation, expires=expires_ms)

    async def press_token(self, token_hash: str) -> dict[str, Any] | None:
        rows = await self._all(select(t.press_tokens).where(t.press_tokens.c.token == token_hash))
        return dict(rows[0]) if rows else None

    async def add_head_signature(self, call: str, delegation: str, seq: int, sig: str) -> None:
        await self._insert(t.head_signatures, "this delegation has already signed the record",
                           call=call, delegation=delegation, seq=seq, signature=sig)

    async def head_signatures(self, call: str) -> dict[str, str]:
        rows = await self._all(select(t.head_signatures)
                               .where(t.head_signatures.c.call == call))
        return {r["delegation"]: r["signature"] for r in rows}

    # -- replay protection and incidents -------------------------------------------------
    async def use_control(self, statement_hash: str, now_ms: int) -> None:
        await self._insert(t.used_controls, "this signed request was already used",
                           statement=statement_hash, at=now_ms)

    async def add_incident(self, now_ms: int, remote: str, code: str, detail: str) -> None:
        """Count one incident in its (remote, code) row."""
        g = t.incident_groups
        remote, code, detail = remote[:80], code[:40], detail[:400]
        self.on_incident(code)
        async with self.writing() as conn:
            known = (await conn.execute(select(g.c.count).where(
                (g.c.remote == remote) & (g.c.code == code)))).first()
            if known is None:
                groups = (await conn.execute(select(func.count()).select_from(g))).scalar_one()
                if groups >= MAX_INCIDENT_GROUPS:
                    remote = OVERFLOW
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            upsert = dialect.insert(g).values(remote=remote, code=code, count=1,
                                              first_ms=now_ms, last_ms=now_ms, detail=detail)
            await conn.execute(upsert.on_conflict_do_update(
                index_elements=[g.c.remote, g.c.code],
                set_={"count": g.c.count + 1, "last_ms": now_ms, "detail": detail}))

    async def incidents(self, offset: int = 0,
                        limit: int = 100) -> tuple[int, list[dict[str, Any]]]:
        """A page of incident rows, most recently seen first, and how many there are."""
        g = t.incident_groups
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(g))).scalar_one()
            rows = (await conn.execute(select(g).order_by(g.c.last_ms.desc(), g.c.remote,
                                                          g.c.code)
                                       .offset(offset).limit(limit))).mappings().all()
        return int(total), [dict(r) for r in rows]

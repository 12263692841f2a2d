"""The tables. Nothing of media is stored: only keys, links, plans and records."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

FP = String(64)  # hex SHA-256 fingerprints and hashes

delegations = Table(
    "delegations", metadata,
    Column("id", FP, primary_key=True),
    Column("name", String(120), nullable=False),
    Column("key", String(120), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

links = Table(
    "links", metadata,
    Column("id", String(120), primary_key=True),
    Column("proposer", FP, ForeignKey("delegations.id"), nullable=False),
    Column("acceptor", FP, ForeignKey("delegations.id"), nullable=False),
    Column("proposer_signature", String(100), nullable=False),
    Column("acceptor_signature", String(100)),
    Column("created_ms", BigInteger, nullable=False),
)

plans = Table(
    "plans", metadata,
    Column("hash", FP, primary_key=True),
    Column("call", String(120), nullable=False, unique=True),
    Column("link", String(120), ForeignKey("links.id"), nullable=False),
    Column("body", Text, nullable=False),  # canonical JSON of the plan
    Column("created_ms", BigInteger, nullable=False),
)

plan_signatures = Table(
    "plan_signatures", metadata,
    Column("plan", FP, ForeignKey("plans.hash"), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("signature", String(100), nullable=False),
    PrimaryKeyConstraint("plan", "delegation"),
)

# Which devices each plan names, to find a device's calls.
plan_devices = Table(
    "plan_devices", metadata,
    Column("plan", FP, ForeignKey("plans.hash"), nullable=False),
    Column("device", FP, nullable=False),
    PrimaryKeyConstraint("plan", "device"),
)

# The links a briefing plan is filed under, one per guest (its ``plans.link`` is the
# first of them), so that each guest's console finds it under its link with the host.
# A table of its own, so that databases made before briefings only gain a table.
plan_links = Table(
    "plan_links", metadata,
    Column("plan", FP, ForeignKey("plans.hash"), nullable=False),
    Column("link", String(120), ForeignKey("links.id"), nullable=False),
    PrimaryKeyConstraint("plan", "link"),
)

# A seat a delegation opens for one device; the device that shows the code takes it.
enrolments = Table(
    "enrolments", metadata,
    Column("code_hash", FP, primary_key=True),
    Column("delegation", FP, ForeignKey("delegations.id"), nullable=False),
    Column("name", String(120), nullable=False),
    Column("role", String(20), nullable=False),
    Column("device", FP),
    Column("key", String(120)),
    Column("created_ms", BigInteger, nullable=False),
)

# A delegation's signature on its own name (statements.register), kept from registration
# so that a plan drafted by the other delegation can carry it (issue 11). A table of its
# own, so that databases made before it only gain a table.
delegation_names = Table(
    "delegation_names", metadata,
    Column("delegation", FP, ForeignKey("delegations.id"), primary_key=True),
    Column("signature", String(100), nullable=False),
)

# The delegation's certificate of an enrolled device (statements.device, over the key,
# role and name of its enrolment): the delegation vouches for its own people.
device_certificates = Table(
    "device_certificates", metadata,
    Column("device", FP, primary_key=True),
    Column("delegation", FP, ForeignKey("delegations.id"), nullable=False),
    Column("signature", String(100), nullable=False),
)

# A delegation's key chain: each rotation retires ``previous`` for ``key``, signed by both
# (statements.rotation). ``delegations.key`` is the current key; the id stays the
# fingerprint of the first.
delegation_rotations = Table(
    "delegation_rotations", metadata,
    Column("delegation", FP, ForeignKey("delegations.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("previous", String(120), nullable=False),
    Column("key", String(120), nullable=False, unique=True),
    Column("at", BigInteger, nullable=False),
    Column("signature", String(100), nullable=False),
    Column("proof", String(100), nullable=False),
    PrimaryKeyConstraint("delegation", "seq"),
)

# A delegation's signed revocation of one of its devices (statements.revocation).
# A revocation counts where the device acts as that delegation's (a device not enrolled
# here can be named by plans of more than one delegation: one cannot revoke it for another).
device_revocations = Table(
    "device_revocations", metadata,
    Column("device", FP, primary_key=True),
    Column("delegation", FP, ForeignKey("delegations.id"), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("signature", String(100), nullable=False),
)

# The record: one row per entry. The primary key (call, seq) makes a fork impossible.
entries = Table(
    "entries", metadata,
    Column("call", String(120), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev", FP, nullable=False),
    Column("hash", FP, nullable=False),
    PrimaryKeyConstraint("call", "seq"),
)

# The head of each hash chain of a call's record: its last seq and hash, one row per
# chain ("" for the shared record, the delegation's id for its private chain). An append
# moves the head from (seq - 1, prev) to (seq, hash) in the same transaction as it inserts
# the entry, so the database itself refuses a gap, a duplicate or a fork, whichever
# server process appends (sql.Store.append). A table of its own, so that databases made
# before it only gain a table; a chain without a row starts from its last stored entry.
record_heads = Table(
    "record_heads", metadata,
    Column("call", String(120), nullable=False),
    Column("chain", FP, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", FP, nullable=False),
    PrimaryKeyConstraint("call", "chain"),
)

head_signatures = Table(
    "head_signatures", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("signature", String(100), nullable=False),
    PrimaryKeyConstraint("call", "delegation"),
)

# The delegation-private part of a call's record (pages, acknowledgements, asides): one
# hash chain per delegation, never shown to the other delegation or in the shared export.
private_entries = Table(
    "private_entries", metadata,
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("data", Text, nullable=False),
    Column("prev", FP, nullable=False),
    Column("hash", FP, nullable=False),
    PrimaryKeyConstraint("call", "delegation", "seq"),
)

# Press viewer tokens (by SHA-256 of the token; the token itself is never stored).
press_tokens = Table(
    "press_tokens", metadata,
    Column("token", FP, primary_key=True),
    Column("call", String(120), nullable=False),
    Column("delegation", FP, nullable=False),
    Column("expires", BigInteger, nullable=False),
)

# Signed control requests already used (by hash of the signed statement): a captured
# request cannot be replayed.
used_controls = Table(
    "used_controls", metadata,
    Column("statement", FP, primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# Bad input that belongs to no call (a malformed first message, an unknown call, a
# foreign Origin), one row per (remote address, code) with a count: a flood of the same
# mistake from one address is one row, not one row per attempt. (A database from before
# this table keeps its old "incidents" table, unused.)
incident_groups = Table(
    "incident_groups", metadata,
    Column("remote", String(80), primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("first_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    Column("detail", String(400), nullable=False),  # the latest one's
)

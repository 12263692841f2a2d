"""What the REST routes answer, as typed models: the OpenAPI document names every field.

Each model is the view docs/protocol.md §4 describes. They forbid extra fields, so a
route that answers a field its model (and so the document) does not name fails loudly
in the tests instead of drifting from the contract. The plan itself is left an object
here: its rules are those of ``core/plan.py`` (protocol §3), which reads it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Fingerprint = Annotated[str, Field(description="lowercase hex SHA-256 of a raw P-256 key")]
Signature = Annotated[str, Field(description="IEEE P1363 r||s, unpadded base64url, low S")]
Millis = Annotated[int, Field(description="milliseconds since the epoch")]


class View(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- delegations and links ---------------------------------------------------------------
class RotationView(View):
    previous: str = Field(description="the key before")
    key: str = Field(description="the key after")
    at: Millis
    signature: Signature = Field(description="summitline/rotation by the key before")
    proof: Signature = Field(description="the same statement by the key after")


class DelegationView(View):
    id: Fingerprint
    name: str
    key: str
    short_fingerprint: str
    name_signature: Signature | None = Field(
        description="the delegation's own signature of (name, key) (summitline/register); "
                    "null for delegations registered before names were signed")
    rotations: list[RotationView] = Field(
        default=[], description="the key chain from the first key (the id) to `key`, "
                                "oldest first (protocol §3.5)")


class LinkView(View):
    id: str
    delegations: list[DelegationView] = Field(description="proposer first")
    state: Literal["proposed", "established"]
    signatures: dict[str, Signature | None]


class LinkRow(View):
    id: str
    proposer: Fingerprint
    acceptor: Fingerprint
    state: Literal["proposed", "established"]


# -- devices -----------------------------------------------------------------------------
class SeatOpened(View):
    code_hash: str
    name: str
    role: str


class EnrolledDelegation(View):
    id: Fingerprint
    name: str
    key: str


class Enrolled(View):
    device: Fingerprint
    short_fingerprint: str
    name: str
    role: str
    delegation: EnrolledDelegation


class SeatRow(View):
    name: str
    role: str
    device: Fingerprint | None = Field(description="null until a device took the seat")
    key: str | None
    short_fingerprint: str | None
    code_hash: str
    delegation: Fingerprint
    certificate: Signature | None = Field(description="null until the delegation certified it")
    revoked: bool


class Certified(View):
    delegation: Fingerprint
    device: Fingerprint
    name: str
    role: str
    certificate: Signature


class Revoked(View):
    delegation: Fingerprint
    device: Fingerprint
    revoked: Literal[True]
    dropped: int = Field(description="signaling connections of the device closed")
    told: int = Field(description="endpoints sent the signed revocation")


# -- plans and calls -----------------------------------------------------------------------
class PlanView(View):
    hash: str
    call: str
    plan: dict[str, Any] = Field(description="the plan JSON (protocol §3.1)")
    signatures: dict[str, Signature]
    complete: bool
    missing: list[str] = Field(description="names of the delegations yet to sign")


class LinkPlanRow(View):
    hash: str
    call: str
    plan: dict[str, Any]
    signatures: dict[str, Signature]
    complete: bool
    missing: list[Fingerprint] = Field(description="ids of the delegations yet to sign")
    phase: str | None


class Timing(View):
    started_ms: Millis | None
    ended_ms: Millis | None
    duration_ms: int | None
    events: int = Field(description="entries in the shared record")


class DeviceCallRow(Timing):
    call: str
    title: str
    phase: str | None
    complete: bool


class Connected(View):
    device: Fingerprint
    label: str


class PeerHealth(View):
    peer: Fingerprint
    state: str
    rtt_ms: float | None = None
    loss: float | None = None
    bitrate_kbps: float | None = None
    width: int | None = None
    height: int | None = None
    path: Literal["direct", "relayed"] | None = None


class Health(View):
    at: Millis
    peers: list[PeerHealth]


class CallView(Timing):
    call: str
    title: str
    plan: str = Field(description="the plan hash")
    phase: str
    press_deadline_ms: Millis | None
    connected: list[Connected]
    health: dict[str, Health] = Field(description="by device: its latest stats report")


class EntryView(View):
    seq: int
    at: Millis
    kind: str
    data: dict[str, Any]
    prev: str
    hash: str


class RecordView(Timing):
    call: str
    entries: list[EntryView]
    head_signatures: dict[str, Signature]


class PrivateRecord(View):
    call: str
    delegation: Fingerprint
    entries: list[EntryView]


# -- the server's own ----------------------------------------------------------------------
class Incident(View):
    remote: str
    code: str
    count: int
    first_ms: Millis
    last_ms: Millis
    detail: str = Field(description="the latest one's")


class IncidentPage(View):
    total: int
    offset: int
    limit: int
    incidents: list[Incident]


class Nonce(View):
    nonce: str


# -- the press -----------------------------------------------------------------------------
class PressToken(View):
    token: str = Field(description="send it as Authorization: Bearer, never in a URL")
    expires_ms: Millis
    press_page: str
    hls: str
    hls_static: str | None = Field(None, description="with --hls-dir: the playlist on the "
                                   "static web server")
    hls_key: str | None = Field(None, description="its Authorization: Bearer credential")


class PressWindow(View):
    call: str
    title: str
    state: Literal["waiting", "open", "closed", "ended"]
    delegations: list[str]
    press_deadline_ms: Millis | None
    channels: list[str]


class Draft(View):
    text: str
    at: Millis


class PublishedReadout(View):
    delegation: Fingerprint
    text: str
    hash: str
    at: Millis
    signature: Signature


class OwnPhoto(View):
    id: str
    url: str
    captured_ms: Millis
    official: bool
    published_ms: Millis | None


class OwnView(View):
    call: str
    delegation: Fingerprint
    draft: Draft | None
    published: PublishedReadout | None
    photos: list[OwnPhoto] = Field(description="newest first")


class Captured(OwnView):
    captured: str = Field(description="the new photo's id (hex SHA-256 of the JPEG)")


class RoomDelegation(View):
    id: Fingerprint
    name: str
    principals: list[str] = Field(description="the names of its principals in the plan")


class RoomReadout(View):
    delegation: Fingerprint
    name: str | None
    text: str
    hash: str
    published_ms: Millis
    signature: Signature


class RoomPhoto(View):
    delegation: Fingerprint
    name: str | None
    id: str
    url: str
    published_ms: Millis
    signature: Signature


class PressRoom(View):
    call: str
    title: str
    phase: str
    host: Fingerprint | None = Field(description="a briefing's host; null in a bilateral")
    delegations: list[RoomDelegation]
    started_ms: Millis | None
    ended_ms: Millis | None
    duration_ms: int | None
    readouts: list[RoomReadout]
    photos: list[RoomPhoto]

"""Signaling messages: JSON objects with a ``type``, validated on arrival.

``parse_client`` turns raw text from an endpoint into a message or a
``RemoteProtocolError`` with a stable code; it never lets a pydantic error reach the
peer. The JSON Schema of both directions is exported for other clients
(``summitline schema``). docs/protocol.md describes every message.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
# An SDP offer of aiortc or Chromium with audio and video is 3-8 KiB; 64 KiB leaves room
# for many candidates and still stops a peer from making the server buffer megabytes.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP_CHARS = 60 * 1024

Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Generation = Annotated[int, Field(ge=1, le=2**31 - 1)]
# A link reported back after more than a day was never lost in any sense that matters.
MAX_LINK_DURATION_MS = 24 * 3600 * 1000
Signature = Annotated[str, Field(min_length=80, max_length=100)]


class RemoteProtocolError(Exception):
    """The peer broke the protocol. ``code`` goes on the wire; the text explains it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def size_of(raw: str | bytes) -> int:
    return len(raw.encode()) if isinstance(raw, str) else len(raw)


class _Message(BaseModel):
    # Serialization schemas list every field as required: the server always sends them.
    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_serialization_defaults_required=True)


# -- endpoint -> server -------------------------------------------------------------------
class Hello(_Message):
    type: Literal["hello"]
    version: int
    call: Annotated[str, Field(min_length=1, max_length=120)]
    device: Fingerprint
    nonce: Annotated[str, Field(min_length=16, max_length=64)]
    signature: Signature


class Offer(_Message):
    type: Literal["offer"]
    to: Fingerprint
    generation: Generation
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS)]
    signature: Signature


class Answer(_Message):
    type: Literal["answer"]
    to: Fingerprint
    generation: Generation
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS)]
    signature: Signature


class Candidate(_Message):
    type: Literal["candidate"]
    to: Fingerprint
    generation: Generation
    candidate: Annotated[str, Field(max_length=1024)] | None
    sdp_mid: Annotated[str, Field(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=64)] | None = None


class Bye(_Message):
    type: Literal["bye"]
    to: Fingerprint
    generation: Generation


class LinkReport(_Message):
    """The sender's peer connection with ``to`` of ``generation`` stalled ("lost"), or
    carries media again after ``duration_ms`` ("restored"). Recorded as ``link.lost`` /
    ``link.restored`` and relayed to ``to``, which may not see the stall itself."""

    type: Literal["link"]
    to: Fingerprint
    generation: Generation
    state: Literal["lost", "restored"]
    duration_ms: Annotated[int, Field(ge=0, le=MAX_LINK_DURATION_MS)] = 0


class MediaOff(_Message):
    """The kinds the sender does not send now (microphone muted, camera off), so that
    receivers do not take their silence for a stall. Relayed to its peers."""

    type: Literal["media"]
    off: Annotated[list[Literal["audio", "video"]], Field(max_length=2)]


class PeerHealth(_Message):
    """One peer connection as its endpoint's getStats() sees it."""

    peer: Fingerprint
    state: Annotated[str, Field(max_length=20)]
    rtt_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    loss: Annotated[float, Field(ge=0, le=1)] | None = None  # fraction of packets lost
    bitrate_kbps: Annotated[float, Field(ge=0, le=1_000_000)] | None = None  # received
    width: Annotated[int, Field(ge=0, le=16384)] | None = None
    height: Annotated[int, Field(ge=0, le=16384)] | None = None
    path: Literal["direct", "relayed"] | None = None


class Stats(_Message):
    type: Literal["stats"]
    peers: Annotated[list[PeerHealth], Field(max_length=32)]


class End(_Message):
    """A principal ends the call (operators end it over REST with the delegation key)."""

    type: Literal["end"]


class BoothAction(_Message):
    """An interpreter goes live, hands over to its booth partner (at once, or by a request
    the partner accepts or declines), or falls quiet, signed (statements.booth) with a
    sequence number per channel, for every endpoint to check."""

    type: Literal["booth"]
    action: Literal["live", "handover", "quiet", "request", "accept", "decline"]
    to: Fingerprint | None = None  # the partner, for all but live and quiet
    seq: Annotated[int, Field(ge=1, le=2**53)]
    at: Annotated[int, Field(ge=0, le=2**53)]
    signature: Signature


class Source(_Message):
    """An interpreter takes the floor or another channel (relay) as its source."""

    type: Literal["source"]
    source: Annotated[str, Field(min_length=1, max_length=16)]


class Ping(_Message):
    type: Literal["ping"]
    id: Annotated[int, Field(ge=0)] = 0


class PressOffer(_Message):
    """A principal offers its floor to the press gateway (send-only, during the window)."""

    type: Literal["press-offer"]
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS)]


PageId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Millis = Annotated[int, Field(ge=0, le=2**53)]


class Page(_Message):
    """A principal calls its own aides; signed (statements.page) for the aides to check."""

    type: Literal["page"]
    id: PageId
    at: Millis
    signature: Signature


class Ack(_Message):
    """An aide acknowledges a page of its principal: it is coming (statements.ack)."""

    type: Literal["ack"]
    page: PageId
    at: Millis
    signature: Signature


# A raw uncompressed P-256 point in base64url: 65 bytes, 87 characters.
EcdhPublic = Annotated[str, Field(min_length=87, max_length=87)]
# A wrapped frame key: 12-byte nonce, 32-byte key and 12-byte salt at most, 16-byte tag.
MAX_WRAPPED_CHARS = 100


class WrappedKey(_Message):
    """A sender's media key of one kind, wrapped to the receiver's ECDH key."""

    kind: Literal["audio", "video"]
    key_id: Annotated[int, Field(ge=0, le=2**32 - 1)]
    wrapped: Annotated[str, Field(min_length=16, max_length=MAX_WRAPPED_CHARS)]


class FrameKey(_Message):
    """A device's ECDH key for the call, and its media key of each kind ``to`` may
    receive, wrapped to ``to``'s ECDH key ``for`` (docs/protocol.md, "Frame keys").
    Relayed to ``to``, which checks it."""

    type: Literal["frame-key"]
    to: Fingerprint
    ecdh: EcdhPublic
    for_: EcdhPublic | None = Field(default=None, alias="for")
    keys: Annotated[list[WrappedKey], Field(max_length=2)] = []
    signature: Signature


FeedId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class SfuPublish(_Message):
    """An endpoint's send-only offer to the SFU (docs/protocol.md 5.12)."""

    type: Literal["sfu-publish"]
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS)]


class SfuWatch(_Message):
    """A receiver's answer to the offer of one of its feeds."""

    type: Literal["sfu-watch"]
    feed: FeedId
    sdp: Annotated[str, Field(max_length=MAX_SDP_CHARS)]


class SfuRefeed(_Message):
    """A receiver's feed of ``from`` failed: the server ends it and offers a new one."""

    type: Literal["sfu-refeed"]
    from_: Fingerprint = Field(alias="from")


class Hold(_Message):
    """A principal holds its floor audio (an aside with an aide) or releases it."""

    type: Literal["hold"]
    on: bool


AnyClientMessage = (Hello | Offer | Answer | Candidate | Bye | Stats | End | BoothAction
                    | Source | Ping | PressOffer | Page | Ack | Hold | LinkReport | MediaOff
                    | FrameKey | SfuPublish | SfuWatch | SfuRefeed)
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="type")]
CLIENT_TYPES = ("hello", "offer", "answer", "candidate", "bye", "stats", "end", "booth",
                "source", "ping", "press-offer", "page", "ack", "hold", "link", "media",
                "frame-key", "sfu-publish", "sfu-watch", "sfu-refeed")
_client: TypeAdapter[AnyClientMessage] = TypeAdapter(ClientMessage)


def parse_client(raw: str | bytes) -> AnyClientMessage:
    if size_of(raw) > MAX_MESSAGE_BYTES:
        raise RemoteProtocolError("too-big", f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RemoteProtocolError("malformed", "message is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise RemoteProtocolError("malformed", "message must be a JSON object with a 'type'")
    if obj["type"] not in CLIENT_TYPES:
        raise RemoteProtocolError("unknown-type", f"unknown message type {obj['type'][:40]!r}")
    try:
        return _client.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise RemoteProtocolError("invalid", f"{obj['type']}: {where}: {first['msg']}") from None


# -- server -> endpoint -------------------------------------------------------------------
class Challenge(_Message):
    type: Literal["challenge"] = "challenge"
    versions: list[int]
    nonce: str


class PeerInfo(_Message):
    device: Fingerprint
    generation: int


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    you: Fingerprint
    signed_plan: dict[str, Any]
    phase: str
    peers: list[PeerInfo]
    press_deadline_ms: int | None
    # STUN/TURN servers of this deployment, with credentials minted for this device
    ice_servers: list[dict[str, Any]] = []
    booth: dict[str, Any] = {}  # as in BoothState
    # The start of the call as a delegation signed it ({delegation, at, signature}), for
    # the endpoint to check; None before the start.
    start: dict[str, Any] | None = None
    held: list[Fingerprint] = []  # principals whose floor audio is on hold
    # The signed revocations of devices of this plan that the server knows of (as in
    # Revoked, without ``type``): endpoints check each and refuse those devices.
    revocations: list[dict[str, Any]] = []
    # Whether this call's media goes through this server's SFU (docs/protocol.md 5.12).
    sfu: bool = False


class BoothState(_Message):
    """Who is live in each booth, and each interpreter's source (absent: the floor)."""

    type: Literal["booth"] = "booth"
    live: dict[str, Fingerprint]  # channel -> its live interpreter
    sources: dict[str, str]  # interpreter -> "floor" or a channel
    # channel -> the latest signed action in its booth ({action, from, to, seq, at,
    # signature}): endpoints believe ``live`` only where such an action put it there
    actions: dict[str, dict[str, Any]] = {}


class PeerJoined(_Message):
    type: Literal["peer-joined"] = "peer-joined"
    device: Fingerprint


class PeerLeft(_Message):
    type: Literal["peer-left"] = "peer-left"
    device: Fingerprint


class PhaseChanged(_Message):
    type: Literal["phase"] = "phase"
    phase: str
    press_deadline_ms: int | None
    start: dict[str, Any] | None = None  # as in Welcome


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool
    ref: str | None = None  # the type of the message that caused it


class Pong(_Message):
    type: Literal["pong"] = "pong"
    id: int


class PressAnswer(_Message):
    type: Literal["press-answer"] = "press-answer"
    sdp: str


class Paged(_Message):
    """To the aides of the paging principal's delegation only."""

    type: Literal["paged"] = "paged"
    id: str
    by: Fingerprint  # the principal
    at: int
    signature: str


class Acked(_Message):
    """To the paging principal and its delegation's aides only."""

    type: Literal["acked"] = "acked"
    page: str
    by: Fingerprint  # the aide
    at: int
    signature: str


class Held(_Message):
    """To everyone in the call: a principal's floor audio is on hold (no reason given)."""

    type: Literal["held"] = "held"
    device: Fingerprint
    on: bool


class Revoked(_Message):
    """To every endpoint of a call whose plan names ``device``: its delegation revoked it
    (the signed ``summitline/revocation``). Endpoints verify it with the plan's key of
    ``delegation`` and close their links with the device; a forged one is an alarm."""

    type: Literal["revoked"] = "revoked"
    delegation: Fingerprint
    device: Fingerprint
    at: int
    signature: str
    # The delegation's key chain (docs/protocol.md 3.5), so that an endpoint whose plan
    # carries an older key of the delegation can still check a revocation signed later.
    rotations: list[dict[str, Any]] = []


class RelayedMedia(_Message):
    """A peer's ``media`` announcement, to the devices it may connect with."""

    type: Literal["media"] = "media"
    off: list[str]
    from_: Fingerprint = Field(alias="from")


class SfuPublished(_Message):
    """Janus's answer to the endpoint's publisher offer (not signed: no peer's DTLS)."""

    type: Literal["sfu-published"] = "sfu-published"
    sdp: str


class SfuFeed(_Message):
    """A subscription of the receiver to ``from``'s streams of ``kinds``: Janus's offer."""

    type: Literal["sfu-feed"] = "sfu-feed"
    feed: str
    from_: Fingerprint = Field(alias="from")
    kinds: list[Literal["audio", "video"]]
    sdp: str


class SfuGone(_Message):
    """The feed is over: the receiver closes its peer connection."""

    type: Literal["sfu-gone"] = "sfu-gone"
    feed: str


def relayed(msg: Offer | Answer | Candidate | Bye | LinkReport | FrameKey, sender: str
            ) -> dict[str, Any]:
    """A signaling message as the receiver gets it: ``to`` replaced by ``from``."""
    out = msg.model_dump(by_alias=True)
    del out["to"]
    out["from"] = sender
    return out


ServerMessage = Annotated[Challenge | Welcome | PeerJoined | PeerLeft | PhaseChanged
                          | BoothState | ErrorMessage | Pong | PressAnswer | Paged | Acked
                          | Held | RelayedMedia | Revoked | SfuPublished | SfuFeed
                          | SfuGone, Field(discriminator="type")]


def _relayed_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The schema of ``model`` as the receiver gets it: ``from`` in place of ``to``."""
    schema = model.model_json_schema()
    schema["title"] = f"Relayed{schema['title']}"
    schema["properties"]["from"] = schema["properties"].pop("to")
    schema["required"] = ["from" if f == "to" else f for f in schema["required"]]
    return schema


def json_schema() -> dict[str, Any]:
    return {
        "client_to_server": _client.json_schema(),
        "server_to_client": TypeAdapter(ServerMessage).json_schema(mode="serialization"),
        "relayed_to_client": {m.__name__: _relayed_schema(m)
                              for m in (Offer, Answer, Candidate, Bye, LinkReport, FrameKey)},
    }

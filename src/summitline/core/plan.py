"""The call plan: who takes part, in which role, and what the press may see.

A plan is plain data. It becomes binding when every delegation it names has signed its
hash (``SignedPlan.verify``). Every endpoint verifies it and enforces it; the server
enforces it too, as a second wall.

Two kinds: a **bilateral** plan names its ``link`` and exactly two delegations; a
**briefing** plan names a ``host`` among 2 to 8 delegations and ``links``, one
established link between the host and each guest (docs/protocol.md §3.1). Guests need
no link with each other: the host introduces them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.encoding import digest
from summitline.crypto.keys import PublicKey, SignatureError, short_fingerprint

# 2: each participant carries its delegation's device certificate, each delegation the
# signature on its own name (issue 11). Version 1 plans bound neither and are refused.
PLAN_VERSION = 2
# A bilateral call: the format the reports describe.
DELEGATIONS_PER_CALL = 2
# A briefing: the host and up to seven guests (the reports' briefing had five), and as
# many principals: every pair of principals holds a peer connection (a mesh).
MAX_BRIEFING_DELEGATIONS = 8
MAX_BRIEFING_PRINCIPALS = 8
# A plan is a list a person reviews before signing: keep it reviewable.
MAX_PARTICIPANTS = 64
MAX_PRESS_WINDOW_S = 3600
MAX_NAME = 120
# How the devices of the call capture sound: "voice" lets the browser clean up a
# microphone for a meeting room (echo cancellation, noise suppression, automatic gain);
# "studio" turns all three off, for principals and interpreters with headsets and good
# microphones: what the interpreter hears is then the floor as it was, tones and all.
AUDIO_VOICE, AUDIO_STUDIO = "voice", "studio"
AUDIO_MODES = (AUDIO_VOICE, AUDIO_STUDIO)
# A briefing's media goes through an SFU (Janus VideoRoom, every frame encrypted end to
# end) when its plan names more media endpoints (principals and interpreters) than
# ``sfu_above``: absent, this many; 0, always (the plan asks for the SFU); a number at
# or above every endpoint, never (a mesh).
SFU_ABOVE = 5
# A planned start, in ms since the Unix epoch: at most the last millisecond of the year
# 9999, the last one both Python's datetime and JavaScript's Date can show.
MAX_SCHEDULED_MS = 253_402_300_799_999


class PlanError(ValueError):
    """The plan is malformed or its signatures do not hold. The message says what."""


@dataclass(frozen=True)
class Rotation:
    """One step of a delegation's key chain: ``previous`` retired for ``key``, signed by
    ``previous`` (``signature``) and by ``key`` (``proof``, possession of the new key)."""

    previous: PublicKey
    key: PublicKey
    at: int
    signature: str
    proof: str

    def to_json(self) -> dict[str, Any]:
        return {"previous": self.previous.b64u, "key": self.key.b64u, "at": self.at,
                "signature": self.signature, "proof": self.proof}

    @classmethod
    def from_json(cls, obj: Any) -> Rotation:
        if not isinstance(obj, dict):
            raise PlanError("a rotation is a JSON object")
        _fields(obj, "a rotation", {"previous", "key", "at", "signature", "proof"})
        at = obj.get("at")
        if type(at) is not int or not 0 <= at <= 2**53:
            raise PlanError("a rotation's 'at' must be an integer (ms)")
        return cls(previous=_key(obj, "previous"), key=_key(obj, "key"), at=at,
                   signature=_text(obj, "signature", 200), proof=_text(obj, "proof", 200))

    def statement(self, delegation: str) -> dict[str, Any]:
        return statements.rotation(delegation, self.previous.b64u, self.key.b64u, self.at)


def follow_rotations(delegation: str, start: PublicKey,
                     rotations: tuple[Rotation, ...] | list[Rotation]) -> PublicKey:
    """The key reached from ``start`` through ``rotations`` (in order), each step signed
    by the key before it and proved by the key after it. Steps before the one that
    retires ``start`` are skipped (``start`` is then a later key of the chain); raises
    PlanError if a step does not verify, the chain breaks, or ``start`` is not in it."""
    chain = list(rotations)
    at = next((i for i, r in enumerate(chain) if r.previous == start), None)
    if at is None:
        if chain and chain[-1].key == start or not chain:
            return start
        raise PlanError(f"the key chain of {short_fingerprint(delegation)} does not pass "
                        "through the pinned key")
    key = start
    for r in chain[at:]:
        if r.previous != key:
            raise PlanError(f"the key chain of {short_fingerprint(delegation)} is broken")
        try:
            r.previous.verify(r.statement(delegation), r.signature)
            r.key.verify(r.statement(delegation), r.proof)
        except SignatureError as exc:
            raise PlanError(f"a key rotation of {short_fingerprint(delegation)} is not signed "
                            "by the key it retires and by the key it brings") from exc
        key = r.key
    return key


@dataclass(frozen=True)
class Delegation:
    id: str  # fingerprint of the delegation's first key
    name: str
    key: PublicKey  # its current key: the first, or the last of ``rotations``
    # The delegation's own signature on statements.register(name, key): the name is the
    # one it gave itself, not one a drafter chose for it.
    name_signature: str
    # How the first key (whose fingerprint is the id) led to ``key``; empty if it never
    # rotated (and then absent from the JSON, so older plans keep their hash).
    rotations: tuple[Rotation, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "key": self.key.b64u,
                "name_signature": self.name_signature,
                **({"rotations": [r.to_json() for r in self.rotations]}
                   if self.rotations else {})}

    @property
    def first_key(self) -> PublicKey:
        return self.rotations[0].previous if self.rotations else self.key

    def keys(self) -> list[PublicKey]:
        """Every key this delegation has held, first to current."""
        return [self.first_key, *(r.key for r in self.rotations)]

    def check(self) -> None:
        if self.first_key.fingerprint != self.id:
            raise PlanError(f"delegation {self.name!r}: id is not the fingerprint of its "
                            "(first) key")
        if follow_rotations(self.id, self.first_key, self.rotations) != self.key:
            raise PlanError(f"delegation {self.name!r}: its key chain does not end at its "
                            "key")
        try:
            self.key.verify(statements.register(self.name, self.key.b64u), self.name_signature)
        except SignatureError as exc:
            raise PlanError(f"delegation {self.name!r}: that is not the name the delegation "
                            "signed for itself: refusing the plan") from exc


@dataclass(frozen=True)
class Participant:
    device: str  # fingerprint of the device key
    key: PublicKey
    delegation: str
    role: Role
    name: str
    language: str
    # The delegation's signature on statements.device(...): it vouches that this key is
    # its ``name`` in ``role``. Only the delegation it stands under can sign it.
    certificate: str

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "key": self.key.b64u, "delegation": self.delegation,
                "role": str(self.role), "name": self.name, "language": self.language,
                "certificate": self.certificate}

    @property
    def statement(self) -> dict[str, Any]:
        """What the certificate signs (everything of the participant but its language)."""
        return statements.device(self.delegation, self.device, self.key.b64u, str(self.role),
                                 self.name)

    def check(self, delegation: Delegation) -> None:
        try:
            delegation.key.verify(self.statement, self.certificate)
        except SignatureError as exc:
            raise PlanError(f"participant {self.name!r} ({self.role}) is not certified by "
                            f"{delegation.name!r} as its {self.role} {self.name!r}: a "
                            "delegation vouches only for its own people; refusing the "
                            "plan") from exc


def _fields(obj: dict[str, Any], what: str, allowed: set[str]) -> None:
    """Refuse unknown fields: what is signed must be exactly what is read."""
    unknown = set(obj) - allowed
    if unknown:
        raise PlanError(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")


def _text(obj: dict[str, Any], field: str, limit: int = MAX_NAME) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise PlanError(f"'{field}' must be a non-empty string of at most {limit} characters")
    return value


# A call or link id: what goes into URLs, file names and headers, so nothing else
# (a CR LF in a call id broke the record's export; attacker review of issue 11).
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")  # not "." or "..": URLs fold those


# A language (a channel, for an interpreter): a lowercase BCP 47 tag, so that no two
# channels read alike ("RU", "ru ", "ru\u200b" beside "ru"; attacker review of issue 13).
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8}){0,2}")


def _ident(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise PlanError(f"'{field}' must be 1..120 of the characters A-Z a-z 0-9 . _ -, "
                        "the first a letter or digit")
    return value


def _key(obj: dict[str, Any], field: str) -> PublicKey:
    try:
        return PublicKey.from_b64u(_text(obj, field, 200))
    except SignatureError as exc:
        raise PlanError(f"'{field}': {exc}") from exc


@dataclass(frozen=True)
class CallPlan:
    call: str
    link: str | None  # a bilateral's link; None in a briefing (see ``links``)
    title: str
    delegations: tuple[Delegation, ...]
    participants: tuple[Participant, ...]
    press_window_s: int = 0
    interpreter_video: bool = False
    # Interpretation channels the press may hear during the window (besides the floor).
    # Absent from the JSON when empty, so plans without it keep their hash.
    press_channels: tuple[str, ...] = ()
    # When the call is to begin (ms since the Unix epoch, UTC), as both delegations agreed
    # by signing: for the people who read the plan; nothing is enforced from it (the call
    # starts with a signed start). Absent from the JSON when not given (hashes kept).
    scheduled_ms: int | None = None
    # A briefing's host (a delegation id) and its links, one per guest, each between the
    # host and that guest; both absent (None, ()) in a bilateral plan.
    host: str | None = None
    links: tuple[str, ...] = ()
    # AUDIO_VOICE or AUDIO_STUDIO (above); absent from the JSON when "voice" (hashes kept).
    audio: str = AUDIO_VOICE
    # Briefings only: the SFU threshold (SFU_ABOVE above); None: absent from the JSON
    # (hashes kept), and then SFU_ABOVE applies.
    sfu_above: int | None = None

    @property
    def briefing(self) -> bool:
        return self.host is not None

    @property
    def media_endpoints(self) -> int:
        """The devices that send or receive the call's media: principals, interpreters."""
        return sum(1 for p in self.participants
                   if p.role in (Role.PRINCIPAL, Role.INTERPRETER))

    @property
    def wants_sfu(self) -> bool:
        """Whether this plan routes its media through an SFU (when the server has one):
        a briefing with more media endpoints than its threshold. Frames are then
        encrypted end to end (docs/protocol.md 5.9, 5.12)."""
        if self.host is None:
            return False
        above = SFU_ABOVE if self.sfu_above is None else self.sfu_above
        return self.media_endpoints > above

    @property
    def filed_under(self) -> tuple[str, ...]:
        """The links this plan is listed under: its link, or a briefing's links."""
        return self.links if self.host is not None else (self.link or "",)

    # -- reading -------------------------------------------------------------------------
    @classmethod
    def from_json(cls, obj: Any) -> CallPlan:
        if not isinstance(obj, dict):
            raise PlanError("a plan is a JSON object")
        _fields(obj, "the plan", {"version", "call", "link", "title", "delegations",
                                  "participants", "press_window_s", "interpreter_video",
                                  "press_channels", "scheduled_ms", "host", "links", "audio",
                                  "sfu_above"})
        if obj.get("version") == 1:
            raise PlanError("this is a version 1 plan, from before device certificates: it "
                            "does not say who vouches for its participants. Draft the plan "
                            f"again with this build (version {PLAN_VERSION})")
        if obj.get("version") != PLAN_VERSION:
            raise PlanError(f"unsupported plan version {obj.get('version')!r}; "
                            f"this build reads version {PLAN_VERSION}")
        delegations = tuple(_delegation(d) for d in _list(obj, "delegations"))
        participants = tuple(_participant(p) for p in _list(obj, "participants"))
        window = obj.get("press_window_s", 0)
        if type(window) is not int or not 0 <= window <= MAX_PRESS_WINDOW_S:
            raise PlanError(f"'press_window_s' must be an integer 0..{MAX_PRESS_WINDOW_S}")
        video = obj.get("interpreter_video", False)
        if not isinstance(video, bool):
            raise PlanError("'interpreter_video' must be true or false")
        press = obj.get("press_channels", [])
        if not isinstance(press, list) or not all(isinstance(c, str) for c in press) or \
                "press_channels" in obj and not press:
            raise PlanError("'press_channels' must be a non-empty list of channels (or absent)")
        scheduled = obj.get("scheduled_ms")
        if "scheduled_ms" in obj and (type(scheduled) is not int or
                                      not 0 <= scheduled <= MAX_SCHEDULED_MS):
            raise PlanError("'scheduled_ms' must be an integer (ms since 1970, UTC), or absent")
        audio = obj.get("audio", AUDIO_VOICE)
        if audio not in AUDIO_MODES or "audio" in obj and audio == AUDIO_VOICE:
            raise PlanError(f"'audio' must be {AUDIO_STUDIO!r}, or absent (voice processing "
                            "on)")
        sfu_above = obj.get("sfu_above")
        if "sfu_above" in obj and (type(sfu_above) is not int or
                                   not 0 <= sfu_above <= MAX_PARTICIPANTS):
            raise PlanError(f"'sfu_above' must be an integer 0..{MAX_PARTICIPANTS}, or absent "
                            f"({SFU_ABOVE})")
        host: str | None = None
        links: tuple[str, ...] = ()
        link: str | None = None
        if "host" in obj or "links" in obj:
            if "link" in obj:
                raise PlanError("a briefing plan names its 'links' (one per guest), not a 'link'")
            host = _text(obj, "host", 64)
            raw = obj.get("links")
            if not isinstance(raw, list):
                raise PlanError("'links' must be a list of link ids, one per guest")
            links = tuple(_ident({"links": x}, "links") for x in raw)
        else:
            link = _ident(obj, "link")
        plan = cls(call=_ident(obj, "call"), link=link, title=_text(obj, "title"),
                   delegations=delegations, participants=participants,
                   press_window_s=window, interpreter_video=video,
                   press_channels=tuple(press), scheduled_ms=scheduled, host=host, links=links,
                   audio=audio, sfu_above=sfu_above)
        plan.check()
        return plan

    def check(self) -> None:
        """Raise PlanError if the plan is not a well-formed bilateral or briefing plan."""
        if self.audio not in AUDIO_MODES:
            raise PlanError(f"'audio' must be one of {', '.join(AUDIO_MODES)}")
        ids = {d.id for d in self.delegations}
        if self.host is None:
            if len(self.delegations) != DELEGATIONS_PER_CALL or self.links:
                raise PlanError(f"a bilateral plan names exactly {DELEGATIONS_PER_CALL} "
                                "delegations")
            if len(ids) != DELEGATIONS_PER_CALL:
                raise PlanError("the two delegations must be different")
            if self.sfu_above is not None:
                raise PlanError("'sfu_above' is for briefings: a bilateral call is "
                                "peer to peer")
        else:
            if not 2 <= len(self.delegations) <= MAX_BRIEFING_DELEGATIONS:
                raise PlanError("a briefing plan names 2 to "
                                f"{MAX_BRIEFING_DELEGATIONS} delegations")
            if len(ids) != len(self.delegations):
                raise PlanError("a delegation appears more than once in the plan")
            if self.host not in ids:
                raise PlanError("the host of a briefing must be one of its delegations")
            if len(self.links) != len(self.delegations) - 1 or \
                    len(set(self.links)) != len(self.links):
                raise PlanError("a briefing plan names one link per guest (between the host "
                                "and that guest), each once")
            principals = sum(p.role is Role.PRINCIPAL for p in self.participants)
            if principals > MAX_BRIEFING_PRINCIPALS:
                raise PlanError(f"a briefing holds at most {MAX_BRIEFING_PRINCIPALS} "
                                "principals (a mesh)")
            # each delegation's interpreters serve its own channel: one delegation's
            # interpreter never takes over another's booth
            serving: dict[str, str] = {}
            for p in self.participants:
                if p.role is Role.INTERPRETER and serving.setdefault(p.language,
                                                                     p.delegation) != p.delegation:
                    raise PlanError(f"channel {p.language!r} has interpreters of two "
                                    "delegations; in a briefing each delegation's "
                                    "interpreters serve a channel of their own")
        for d in self.delegations:
            d.check()
        if not 0 < len(self.participants) <= MAX_PARTICIPANTS:
            raise PlanError(f"a plan lists 1..{MAX_PARTICIPANTS} participants")
        devices = Counter(p.device for p in self.participants)
        if any(n > 1 for n in devices.values()):
            raise PlanError("a device appears more than once in the plan")
        for p in self.participants:
            if p.key.fingerprint != p.device:
                raise PlanError(f"participant {p.name!r}: device is not the fingerprint of its key")
            under = self.delegation(p.delegation)
            if under is None:
                raise PlanError(f"participant {p.name!r} belongs to no delegation of this plan")
            if p.role is Role.PRESS:
                raise PlanError("press are not plan participants (they never hold keys)")
            if p.role is Role.INTERPRETER and p.language == "floor":
                raise PlanError("'floor' names the original, not a language")
            if not LANGUAGE.fullmatch(p.language):
                raise PlanError(f"participant {p.name!r}: {p.language!r} is not a language "
                                "tag (lowercase, like en, fr or pt-br)")
            p.check(under)
        for d in self.delegations:
            if not any(p.role is Role.PRINCIPAL and p.delegation == d.id
                       for p in self.participants):
                raise PlanError(f"delegation {d.name!r} has no principal in the plan")
        if self.press_channels:
            if list(self.press_channels) != sorted(set(self.press_channels)):
                raise PlanError("'press_channels' must be sorted, without repeats")
            unknown = set(self.press_channels) - set(self.channels)
            if unknown:
                raise PlanError(f"press channel(s) {', '.join(sorted(unknown))} are no "
                                "channel of the plan (no interpreter speaks into them)")
            if self.press_window_s == 0:
                raise PlanError("press channels need a press window")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION, "call": self.call,
            **({"host": self.host, "links": list(self.links)} if self.host is not None
               else {"link": self.link}),
            "title": self.title,
            "delegations": [d.to_json() for d in self.delegations],
            "participants": [p.to_json() for p in self.participants],
            "press_window_s": self.press_window_s, "interpreter_video": self.interpreter_video,
            **({"press_channels": list(self.press_channels)} if self.press_channels else {}),
            **({"scheduled_ms": self.scheduled_ms} if self.scheduled_ms is not None else {}),
            **({"audio": self.audio} if self.audio != AUDIO_VOICE else {}),
            **({"sfu_above": self.sfu_above} if self.sfu_above is not None else {}),
        }

    @property
    def hash(self) -> str:
        return digest(self.to_json())

    # -- looking up ----------------------------------------------------------------------
    def participant(self, device: str) -> Participant | None:
        return next((p for p in self.participants if p.device == device), None)

    def delegation(self, delegation_id: str) -> Delegation | None:
        return next((d for d in self.delegations if d.id == delegation_id), None)

    # -- interpretation ------------------------------------------------------------------
    # A channel is a language some interpreter of the plan speaks into (its participant
    # language); the interpreters of one channel share its booth, one of them live.
    @property
    def channels(self) -> list[str]:
        return sorted({p.language for p in self.participants if p.role is Role.INTERPRETER})

    def booth(self, channel: str) -> list[Participant]:
        return [p for p in self.participants
                if p.role is Role.INTERPRETER and p.language == channel]

    def introduced_by(self, viewer: str) -> dict[str, str]:
        """For the people of delegation ``viewer``: each delegation of a briefing that
        the viewer's delegation knows only through the host (neither itself nor the host),
        mapped to the host. Empty for the host's people and in a bilateral plan."""
        if self.host is None or viewer == self.host:
            return {}
        return {d.id: self.host for d in self.delegations if d.id not in (viewer, self.host)}

    def label(self, device: str) -> str:
        p = self.participant(device)
        return f"{p.name} ({p.role})" if p else f"unknown device {short_fingerprint(device)}"


def _list(obj: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = obj.get(field)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PlanError(f"'{field}' must be a list of objects")
    return value


def _delegation(obj: dict[str, Any]) -> Delegation:
    _fields(obj, "a delegation", {"id", "name", "key", "name_signature", "rotations"})
    rotations = obj.get("rotations", [])
    if not isinstance(rotations, list) or "rotations" in obj and not rotations:
        raise PlanError("'rotations' must be a non-empty list (or absent)")
    return Delegation(id=_text(obj, "id", 64), name=_text(obj, "name"), key=_key(obj, "key"),
                      name_signature=_text(obj, "name_signature", 200),
                      rotations=tuple(Rotation.from_json(r) for r in rotations))


def _participant(obj: dict[str, Any]) -> Participant:
    _fields(obj, "a participant", {"device", "key", "delegation", "role", "name", "language",
                                   "certificate"})
    role = obj.get("role")
    if role not in {str(r) for r in Role}:
        raise PlanError(f"unknown role {role!r}; roles are {', '.join(Role)}")
    return Participant(device=_text(obj, "device", 64), key=_key(obj, "key"),
                       delegation=_text(obj, "delegation", 64), role=Role(role),
                       name=_text(obj, "name"), language=_text(obj, "language", 16),
                       certificate=_text(obj, "certificate", 200))


@dataclass(frozen=True)
class SignedPlan:
    """A plan and its delegation signatures, keyed by delegation id."""

    plan: CallPlan
    signatures: dict[str, str]

    @classmethod
    def from_json(cls, obj: Any) -> SignedPlan:
        if not isinstance(obj, dict):
            raise PlanError("a signed plan is a JSON object with 'plan' and 'signatures'")
        _fields(obj, "the signed plan", {"plan", "signatures"})
        sigs = obj.get("signatures", {})
        if not isinstance(sigs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sigs.items()
        ):
            raise PlanError("'signatures' must map delegation ids to signatures")
        return cls(CallPlan.from_json(obj.get("plan")), dict(sigs))

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json(), "signatures": dict(self.signatures)}

    def missing(self) -> list[Delegation]:
        return [d for d in self.plan.delegations if d.id not in self.signatures]

    def verify(self, pinned: dict[str, PublicKey] | None = None,
               names: dict[str, str] | None = None) -> None:
        """Raise PlanError unless every delegation of the plan signed this exact plan.

        ``pinned`` maps delegation ids to keys this endpoint pinned: at least its own
        delegation's (from enrolment), perhaps also the other's (from the link). At least
        one delegation of the plan must be pinned, and each pinned one must match. The
        pinned delegation's signature then vouches for the rest of the plan, the other
        delegation's key included, and that key must have signed too. ``names`` maps
        delegation ids to the names pinned with them (from the link): each must match.
        """
        for d in self.plan.delegations:
            if names and d.id in names and names[d.id] != d.name:
                raise PlanError(f"the plan names delegation {short_fingerprint(d.id)} "
                                f"{d.name!r}, but it signed {names[d.id]!r} when linked: "
                                "refusing the plan")
        if pinned is not None:
            for d in self.plan.delegations:
                # the pinned key, or one it rotated to (the chain is checked with the plan)
                if d.id in pinned and pinned[d.id] not in d.keys():
                    raise PlanError(f"delegation {d.name!r} in the plan is not the pinned key "
                                    f"{short_fingerprint(d.id)}: refusing the plan")
            if not any(d.id in pinned for d in self.plan.delegations):
                raise PlanError("no delegation of the plan is one this device trusts "
                                "(pinned): refusing the plan")
        for d in self.plan.delegations:
            sig = self.signatures.get(d.id)
            if sig is None:
                raise PlanError(f"the plan is not signed by {d.name!r}; "
                                "every delegation of the plan must sign it")
            try:
                d.key.verify(statements.plan(self.plan.hash), sig)
            except SignatureError as exc:
                raise PlanError(f"the signature of {d.name!r} on the plan is invalid") from exc
        extra = set(self.signatures) - {d.id for d in self.plan.delegations}
        if extra:
            raise PlanError("the plan carries signatures of delegations it does not name")

    @property
    def complete(self) -> bool:
        try:
            self.verify()
        except PlanError:
            return False
        return True


@dataclass(frozen=True)
class Review:
    """What a delegation's officer reads before co-signing: every signed field of the
    plan (``lines``: label, value) and what differs from what this delegation pinned
    (``flags``; a co-signer signs only when there are none)."""

    lines: list[tuple[str, str]]
    flags: list[str]


def review(plan: CallPlan, pinned: dict[str, PublicKey], names: dict[str, str],
           revoked: Collection[str] = (),
           languages: Mapping[str, Collection[str]] | None = None) -> Review:
    """The review of ``plan`` against the keys and names pinned with the link. Each field
    of ``plan.to_json()`` appears in ``lines`` (a test holds the two together).

    What the reviewing delegation keeps itself, not the server: ``revoked``, the devices
    it revoked (a plan naming one is flagged, whoever drafted it), and ``languages``, the
    language(s) its officer stated for each of its devices when certifying it (a plan
    putting such a device in another channel is flagged)."""
    lines = [("version", str(PLAN_VERSION)), ("call", plan.call)]
    if plan.host is None:
        lines.append(("link", plan.link or ""))
    else:
        host = plan.delegation(plan.host)
        lines += [("host", f"{host.name if host else '?'} · {short_fingerprint(plan.host)}"),
                  ("links", ", ".join(plan.links))]
    lines.append(("title", plan.title))
    flags = []
    # In a briefing, a guest this delegation has no link with counts when the host is
    # pinned (and signs the same plan): the host introduces it.
    host_pinned = plan.host is not None and plan.host in pinned and \
        any(d.id == plan.host and pinned[d.id] in d.keys() for d in plan.delegations)
    for d in plan.delegations:
        lines.append(("delegation", f"{d.name} · {short_fingerprint(d.id)} · key {d.key.b64u}"
                      " · name signed by the delegation"))
        if d.id not in pinned and host_pinned and plan.host is not None:
            host = plan.delegation(plan.host)
            lines.append(("delegation", f"{d.name} — introduced by "
                          f"{host.name if host else '?'}"))
        elif d.id not in pinned:
            flags.append(f"delegation {d.name!r} ({short_fingerprint(d.id)}) is not pinned "
                         "with this link" if plan.host is None else
                         f"delegation {d.name!r} ({short_fingerprint(d.id)}) is pinned with "
                         "no link of this delegation, and the host is not either")
        elif pinned[d.id] not in d.keys():
            flags.append(f"the key of {d.name!r} is not the one pinned with the link")
        elif pinned[d.id] != d.key:
            lines.append(("delegation", f"{d.name} rotated its key since it was pinned; "
                          f"the new key {d.key.b64u} is signed by the pinned one"))
        if d.id in names and names[d.id] != d.name:
            flags.append(f"{short_fingerprint(d.id)} is named {d.name!r}; it signed "
                         f"{names[d.id]!r} for itself when linked")
    by_id = {d.id: d.name for d in plan.delegations}
    # a delegation is no device: its key as a participant would let the other side
    # "revoke" it and so cut it off (attacker review of issue 11, round 3)
    delegation_keys = {k for d in plan.delegations for k in d.keys()} | set(pinned.values())
    for p in plan.participants:
        lines.append(("participant", f"{p.name} · {p.role} · {by_id.get(p.delegation, '?')} · "
                      f"{p.language} · {short_fingerprint(p.device)} · certified by "
                      f"{by_id.get(p.delegation, '?')}"))
        if p.key in delegation_keys or p.device in by_id or p.device in pinned:
            flags.append(f"{p.name!r} ({short_fingerprint(p.device)}) is a delegation's key, "
                         "not a device")
        if p.device in revoked:
            flags.append(f"{p.name!r} ({short_fingerprint(p.device)}) is a device this "
                         "delegation revoked")
        stated = (languages or {}).get(p.device)
        if stated and p.language not in stated:
            flags.append(f"{p.name!r} ({short_fingerprint(p.device)}) is put in channel "
                         f"{p.language!r}; this delegation stated {', '.join(sorted(stated))} "
                         "when it certified the device")
    lines += [("press_window_s", f"{plan.press_window_s} s"),
              ("interpreter_video", "yes: principals send video to interpreters"
               if plan.interpreter_video else "no: interpreters receive audio only"),
              ("press_channels", ", ".join(plan.press_channels) or "none (floor only)"),
              ("audio", "studio: no echo cancellation, noise suppression or automatic gain"
               if plan.audio == AUDIO_STUDIO else "voice: the browsers' voice processing on")]
    if plan.briefing:
        lines.append(("sfu_above", "media through the SFU, every frame encrypted end to end"
                      if plan.wants_sfu else "media peer to peer (a mesh)"))
    if plan.scheduled_ms is not None:
        at = datetime.fromtimestamp(plan.scheduled_ms / 1000, UTC)
        lines.append(("scheduled_ms", at.strftime("%Y-%m-%d %H:%M UTC")))
    try:
        plan.check()
    except PlanError as exc:
        flags.append(str(exc))
    return Review(lines, flags)

"""The operator of a delegation, in Python: the REST side of links, plans and calls.

Holds the delegation key and signs what the delegation agrees to: its registration,
a link, a plan, control of a call, the head of a record. Used by the demo, the tests
and scripts; the web operator console (a later issue) does the same in the browser.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import httpx

from summitline.client.reads import signed_get
from summitline.core.plan import (
    CallPlan,
    Delegation,
    Participant,
    PlanError,
    Review,
    Rotation,
    follow_rotations,
    review,
)
from summitline.core.record import check_chain
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError, short_fingerprint
from summitline.crypto.keystore import Keystore, KeystoreError

log = logging.getLogger(__name__)


def _chain(view: dict[str, Any]) -> tuple[Rotation, ...]:
    """The key chain of a delegation view (``rotations``), parsed."""
    return tuple(Rotation.from_json(r) for r in view.get("rotations") or [])


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Operator:
    def __init__(self, http: httpx.AsyncClient, name: str, key: PrivateKey,
                 keystore: Keystore | None = None) -> None:
        self.http = http
        self.name = name
        self.key = key
        self._id = key.fingerprint  # the first key's: it stays when the key rotates
        # Each pinned delegation's key chain (Rotation steps from its first key), own too.
        self.rotations: dict[str, tuple[Rotation, ...]] = {}
        self.alarms: list[str] = []  # rotations refused (not signed by the pinned key)
        self.pinned: dict[str, PublicKey] = {key.fingerprint: key.public}
        # Each delegation's name as it signed it for itself, pinned with its key: id ->
        # (name, signature on statements.register(name, key)).
        self.names: dict[str, tuple[str, str]] = {
            key.fingerprint: (name, key.sign(statements.register(name, key.public.b64u)))}
        self._proposed: dict[str, str] = {}  # link id -> the delegation we proposed it to
        # Kept here, not by the server (which a hostile one could forget): the devices this
        # delegation revoked, and the language(s) its officer stated for each device it
        # certified. The review flags a plan naming a revoked device or putting one of
        # these devices in another channel. Persisted in ``keystore`` when given.
        self.keystore = keystore
        self.revoked: set[str] = set()
        self.languages: dict[str, tuple[str, ...]] = {}
        if keystore is not None:
            state = keystore.operator_state()
            self.revoked = set(state["revoked"])
            self.languages = {d: tuple(v) for d, v in state["languages"].items()}
            # the pins outlive the process too (each checked again: key, name, chain)
            for did, view in keystore.pin_views().items():
                if did != self.id:
                    self.pin(did, view["key"], view["name"], view["name_signature"],
                             view["rotations"], save=False)

    @property
    def id(self) -> str:
        return self._id

    def delegation(self, delegation_id: str | None = None) -> Delegation:
        """This delegation (or a pinned one) as a plan names it: key and self-signed name
        as pinned, never as the server shows them now."""
        did = delegation_id or self.id
        if did not in self.pinned or did not in self.names:
            raise ApiError(0, f"delegation {short_fingerprint(did)} is not pinned (link first)")
        name, signature = self.names[did]
        return Delegation(did, name, self.pinned[did], signature, self.rotations.get(did, ()))

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "GET":  # reads are signed by the delegation (docs/protocol.md §4.3)
            r = await signed_get(self.http, self.key, path, signer=self.id)
        else:
            r = await self.http.request(method, path, json=body)
        if r.status_code >= 400:
            detail = r.json().get("detail", r.text) if r.headers.get(
                "content-type", "").startswith("application/json") else r.text
            raise ApiError(r.status_code, str(detail))
        return r.json()

    async def register(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/api/delegations", {
            "name": self.name, "key": self.key.public.b64u,
            "signature": self.names[self.id][1]})
        return result

    async def propose_link(self, link_id: str, other: str) -> dict[str, Any]:
        self._proposed[link_id] = other
        result: dict[str, Any] = await self._call("POST", "/api/links", {
            "id": link_id, "proposer": self.id, "acceptor": other,
            "signature": self.key.sign(statements.link(link_id, [self.id, other]))})
        return result

    async def accept_link(self, link_id: str, expected_short: str) -> dict[str, Any]:
        """Accept after the out-of-band check: ``expected_short`` is the short fingerprint
        the other delegation read out. It is compared with the fingerprint of the key the
        server returns, computed here (never the server's own rendering of it), and that
        very key is pinned."""
        link = await self._call("GET", f"/api/links/{link_id}")
        other = next(d for d in link["delegations"] if d["id"] != self.id)
        key = PublicKey.from_b64u(other["key"])
        if short_fingerprint(key.fingerprint) != expected_short.strip().upper():
            raise ApiError(0, f"the proposer's key {short_fingerprint(key.fingerprint)} is "
                              f"not the one checked out of band ({expected_short}); "
                              "not accepting")
        ids = [d["id"] for d in link["delegations"]]
        self._check_pin(other)
        result: dict[str, Any] = await self._call(
            "POST", f"/api/links/{link_id}/accept",
            {"signature": self.key.sign(statements.link(link_id, ids))})
        self.pin(other["id"], other["key"], other["name"], other["name_signature"],
                 other.get("rotations"))
        return result

    @staticmethod
    def _check_pin(d: dict[str, Any]) -> None:
        public = PublicKey.from_b64u(d["key"])
        try:
            Delegation(d["id"], d["name"], public, d.get("name_signature") or "",
                       _chain(d)).check()
        except PlanError:
            raise ApiError(0, "the server returned a key that does not match its id (by "
                              "the delegation's own key chain)") from None
        try:
            public.verify(statements.register(d["name"], d["key"]), d.get("name_signature") or "")
        except SignatureError:
            raise ApiError(0, f"the name {d['name']!r} the server shows for "
                              f"{short_fingerprint(d['id'])} is not one that delegation "
                              "signed for itself; not linking") from None

    def pin(self, delegation_id: str, key: str, name: str, name_signature: str,
            rotations: list[dict[str, Any]] | None = None, save: bool = True) -> None:
        """Pin a delegation's key and the name it signed for itself (kept in the
        keystore, if any, unless ``save`` is false)."""
        chain = rotations or []
        view = {"id": delegation_id, "key": key, "name": name,
                "name_signature": name_signature, "rotations": chain}
        self._check_pin(view)
        if self.keystore is not None and save:
            try:
                self.keystore.pin(delegation_id, name, PublicKey.from_b64u(key),
                                  name_signature, chain)
            except KeystoreError as exc:
                raise ApiError(0, str(exc)) from None
        self.pinned[delegation_id] = PublicKey.from_b64u(key)
        self.names[delegation_id] = (name, name_signature)
        self.rotations[delegation_id] = _chain(view)

    async def rotate(self) -> dict[str, Any]:
        """Replace this delegation's key with a fresh one: the new key signed by the old
        (statements.rotation), its proof of possession, and its signature on the name.
        The id stays; the other side's operator follows with ``follow``."""
        new = PrivateKey.generate()
        at = time.time_ns() // 1_000_000
        statement = statements.rotation(self.id, self.key.public.b64u, new.public.b64u, at)
        name_signature = new.sign(statements.register(self.name, new.public.b64u))
        step = Rotation(self.key.public, new.public, at, self.key.sign(statement),
                        new.sign(statement))
        result: dict[str, Any] = await self._call(
            "POST", f"/api/delegations/{self.id}/rotations",
            {"key": new.public.b64u, "at": at, "signature": step.signature,
             "proof": step.proof, "name_signature": name_signature})
        self.rotations[self.id] = (*self.rotations.get(self.id, ()), step)
        self.key = new
        self.pinned[self.id] = new.public
        self.names[self.id] = (self.name, name_signature)
        return result

    async def follow(self, link_id: str) -> list[str]:
        """Read the link and follow the other delegation's key rotations from the key
        pinned for it: each step signed by the key before it. Returns what to tell the
        operator (empty if nothing changed); a chain that does not come from the pinned
        key is refused (ApiError, and ``alarms``), and the pin stays."""
        link = await self._call("GET", f"/api/links/{link_id}")
        notices = []
        for d in link["delegations"]:
            did = d["id"]
            if did == self.id or did not in self.pinned:
                continue
            key = PublicKey.from_b64u(d["key"])
            if key == self.pinned[did]:
                continue
            try:
                reached = follow_rotations(did, self.pinned[did], _chain(d))
                if reached != key:
                    raise PlanError("the chain does not end at the key the server shows")
                self._check_pin(d)
            except (PlanError, ApiError, KeyError, TypeError) as exc:
                alarm = (f"{d.get('name')!r} ({short_fingerprint(did)}) shows a new key that "
                         f"the pinned key did not sign over ({exc}); the pin stays")
                self.alarms.append(alarm)
                log.warning("ALARM %s", alarm)
                raise ApiError(0, alarm) from None
            self.pin(did, d["key"], d["name"], d["name_signature"], d.get("rotations"))
            notice = (f"{d['name']} ({short_fingerprint(did)}) rotated its key: the new key "
                      f"{short_fingerprint(key.fingerprint)} is signed by the one pinned; "
                      "pinned now")
            log.warning("NOTICE %s", notice)
            notices.append(notice)
        return notices

    async def pin_link(self, link_id: str) -> None:
        """The proposer pins the acceptor's key once the link is established: the key
        whose fingerprint is the delegation id it proposed the link to."""
        link = await self._call("GET", f"/api/links/{link_id}")
        if link["state"] != "established":
            raise ApiError(0, "the link is not yet accepted")
        expected = self._proposed.get(link_id)
        others = [d for d in link["delegations"] if d["id"] != self.id]
        if expected is None or [d["id"] for d in others] != [expected]:
            raise ApiError(0, "the link the server shows is not the one proposed")
        o = others[0]
        self.pin(o["id"], o["key"], o["name"], o["name_signature"], o.get("rotations"))

    async def open_enrolment(self, name: str, role: Role) -> str:
        """Open a seat for one device; the code goes to the device (in its link)."""
        code = secrets.token_urlsafe(24)
        code_hash = hashlib.sha256(code.encode()).hexdigest()
        await self._call("POST", f"/api/delegations/{self.id}/enrolments", {
            "code_hash": code_hash, "name": name, "role": str(role),
            "signature": self.key.sign(statements.enrolment(self.id, code_hash, name,
                                                            str(role)))})
        return code

    def enrolment_url(self, base: str, code: str) -> str:
        return f"{base}/#/enrol/{code}/{self.id}"

    # -- devices: enrolment is followed by the delegation's certificate --------------
    async def devices(self, delegation_id: str | None = None) -> list[dict[str, Any]]:
        """The enrolled devices of this (or a pinned) delegation, each certificate checked
        here under the pinned key: a device without a valid one gets ``certified`` False."""
        did = delegation_id or self.id
        rows: list[dict[str, Any]] = await self._call("GET", f"/api/delegations/{did}/devices")
        for row in rows:
            row["certified"] = False
            if row.get("device") and row.get("certificate") and did in self.pinned and \
                    not row.get("revoked"):
                try:
                    self.pinned[did].verify(statements.device(
                        did, row["device"], row["key"], row["role"], row["name"]),
                        row["certificate"])
                    row["certified"] = PublicKey.from_b64u(row["key"]).fingerprint == \
                        row["device"]
                except (SignatureError, ValueError):
                    pass
        return rows

    def _save(self) -> None:
        if self.keystore is not None:
            self.keystore.save_operator_state(self.revoked, self.languages)

    async def certify(self, device: str, expected_short: str,
                      languages: Iterable[str] = ()) -> dict[str, Any]:
        """Vouch for an enrolled device after comparing ``expected_short`` (read on the
        device's screen) with the fingerprint computed here from the key the server holds
        for it. Signs statements.device with the delegation key. ``languages``: the
        channel(s) the officer states for the device (an interpreter's target language, a
        listener's); kept here, and a plan putting the device elsewhere is flagged."""
        rows = await self._call("GET", f"/api/delegations/{self.id}/devices")
        row = next((r for r in rows if r.get("device") == device), None)
        if row is None:
            raise ApiError(0, f"no enrolled device {short_fingerprint(device)} of this "
                              "delegation")
        key = PublicKey.from_b64u(row["key"])
        if key.fingerprint != device or short_fingerprint(device) != \
                expected_short.strip().upper():
            raise ApiError(0, f"the device's key {short_fingerprint(key.fingerprint)} is not "
                              f"the one read on the device ({expected_short}); not "
                              "certifying")
        signature = self.key.sign(statements.device(self.id, device, row["key"], row["role"],
                                                    row["name"]))
        result: dict[str, Any] = await self._call(
            "POST", f"/api/delegations/{self.id}/devices/{device}/certificate",
            {"signature": signature})
        stated = tuple(sorted(set(languages)))
        if stated:
            self.languages[device] = stated
            self._save()
        return result

    async def revoke(self, device: str) -> dict[str, Any]:
        """Revoke one of this delegation's devices: no plan may name it from now on, and
        the server closes its signaling in a call in progress."""
        # remembered here first: the review flags any plan naming the device, whatever
        # the server does with the revocation
        self.revoked.add(device)
        self._save()
        at = time.time_ns() // 1_000_000
        result: dict[str, Any] = await self._call(
            "POST", f"/api/delegations/{self.id}/devices/{device}/revocation",
            {"at": at, "signature": self.key.sign(statements.revocation(self.id, device, at))})
        return result

    def participant(self, row: dict[str, Any], language: str) -> Participant:
        """A plan participant from a row of ``devices()`` (own or a pinned delegation's),
        with its certificate; refuses a device its delegation has not certified."""
        if not row.get("certified"):
            raise ApiError(0, f"{row.get('name')!r} is not certified by its delegation; "
                              "only a delegation vouches for its own people")
        return Participant(device=row["device"], key=PublicKey.from_b64u(row["key"]),
                           delegation=row["delegation"], role=Role(row["role"]),
                           name=row["name"], language=language,
                           certificate=row["certificate"])

    # -- plans -----------------------------------------------------------------------
    def review(self, plan: CallPlan) -> Review:
        """Every signed field of ``plan``, and what differs from what this delegation
        pinned with the link (keys, self-signed names) or breaks the plan's rules, and any
        device this delegation revoked or put by the plan in a channel its officer did not
        state when certifying it."""
        return review(plan, self.pinned, {d: n for d, (n, _) in self.names.items()},
                      self.revoked, self.languages)

    async def fetch_plan(self, plan_hash: str) -> CallPlan:
        """A submitted plan, read and checked here (never taken from the server as is)."""
        view = await self._call("GET", f"/api/plans/{plan_hash}")
        plan = CallPlan.from_json(view["plan"])
        if plan.hash != plan_hash:
            raise PlanError("the server served a plan with another hash")
        return plan

    async def submit_plan(self, plan: CallPlan) -> dict[str, Any]:
        self._refuse_flagged(plan)
        result: dict[str, Any] = await self._call("POST", "/api/plans", {
            "plan": plan.to_json(),
            "signatures": {self.id: self.key.sign(statements.plan(plan.hash))}})
        return result

    def _refuse_flagged(self, plan: CallPlan) -> None:
        flags = self.review(plan).flags
        if flags:
            raise PlanError("not signing the plan: " + "; ".join(flags))

    async def cosign_plan(self, plan: CallPlan) -> dict[str, Any]:
        """Co-sign after review: refuses (PlanError) a plan whose review flags anything:
        a participant its delegation did not certify, a key or name not the pinned one."""
        self._refuse_flagged(plan)
        result: dict[str, Any] = await self._call("POST", f"/api/plans/{plan.hash}/signatures", {
            "delegation": self.id, "signature": self.key.sign(statements.plan(plan.hash))})
        return result

    async def control(self, call: str, action: str) -> dict[str, Any]:
        at = time.time_ns() // 1_000_000
        result: dict[str, Any] = await self._call("POST", f"/api/calls/{call}/control", {
            "action": action, "delegation": self.id, "at": at,
            "signature": self.key.sign(statements.control(call, action, self.id, at))})
        return result

    async def private_record(self, call: str) -> list[dict[str, Any]]:
        """This delegation's private part of the call's record, chain checked."""
        at = time.time_ns() // 1_000_000
        result = await self._call("POST", f"/api/calls/{call}/record/private", {
            "delegation": self.id, "at": at,
            "signature": self.key.sign(statements.control(call, "read-private", self.id, at))})
        if result["entries"]:
            check_chain(result["entries"])  # raises RecordError naming a broken entry
        entries: list[dict[str, Any]] = result["entries"]
        return entries

    async def press_token(self, call: str, ttl_s: int = 900) -> dict[str, Any]:
        """A short-lived press viewer token for ``call`` (token, expires_ms, press_page,
        hls)."""
        at = time.time_ns() // 1_000_000
        result: dict[str, Any] = await self._call("POST", f"/api/calls/{call}/press/tokens", {
            "delegation": self.id, "at": at, "ttl_s": ttl_s,
            "signature": self.key.sign(statements.control(call, "press-token", self.id, at))})
        return result

    async def sign_record(self, call: str, plan_hash: str) -> dict[str, Any]:
        record = await self._call("GET", f"/api/calls/{call}/record")
        head = check_chain(record["entries"])[-1].to_json()  # never sign a broken chain
        result: dict[str, Any] = await self._call(
            "POST", f"/api/calls/{call}/record/signatures", {
                "delegation": self.id, "seq": head["seq"],
                "signature": self.key.sign(statements.record_head(call, plan_hash, head["seq"],
                                                                  head["hash"]))})
        return result

    async def export_record(self, call: str) -> bytes:
        r = await signed_get(self.http, self.key, f"/api/calls/{call}/record/export")
        r.raise_for_status()
        return r.content

    # -- readouts and photos (each request signed, fresh, used once) ----------------------
    async def _signed(self, path: str, statement: dict[str, Any], at: int,
                      **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", path, {
            "delegation": self.id, "at": at, **fields,
            "signature": self.key.sign(statement)})
        return result

    async def draft_readout(self, call: str, text: str) -> dict[str, Any]:
        """Save (or replace) the delegation's private draft of its readout."""
        at = time.time_ns() // 1_000_000
        return await self._signed(f"/api/calls/{call}/readouts/draft", statements.readout(
            call, self.id, "draft", at, statements.text_hash(text)), at, text=text)

    async def read_draft(self, call: str) -> dict[str, Any]:
        """The delegation's own draft, published readout and photos of the call."""
        at = time.time_ns() // 1_000_000
        return await self._signed(f"/api/calls/{call}/readouts/read",
                                  statements.readout(call, self.id, "read", at), at)

    async def publish_readout(self, call: str, text: str) -> dict[str, Any]:
        """Publish ``text`` as the delegation's readout (after the call; final)."""
        at = time.time_ns() // 1_000_000
        return await self._signed(f"/api/calls/{call}/readouts/publish", statements.readout(
            call, self.id, "publish", at, statements.text_hash(text)), at, text=text)

    async def capture_photo(self, call: str) -> str:
        """Capture a frame of the press programme (press window only); its id."""
        at = time.time_ns() // 1_000_000
        result = await self._signed(f"/api/calls/{call}/photos",
                                    statements.photo(call, self.id, "capture", at), at)
        captured: str = result["captured"]
        return captured

    async def publish_photo(self, call: str, photo_id: str) -> dict[str, Any]:
        """Publish a captured photo as the delegation's official photo of the call."""
        at = time.time_ns() // 1_000_000
        return await self._signed(f"/api/calls/{call}/photos/{photo_id}/publish",
                                  statements.photo(call, self.id, "publish", at, photo_id), at)


def participant(key: PrivateKey | PublicKey, delegation: PrivateKey | str, role: Role,
                name: str, language: str, certificate: str | None = None,
                delegation_id: str | None = None) -> Participant:
    """A participant; certified by ``delegation`` when that is the delegation's private key
    (scripts and tests that hold it), else ``certificate`` is the delegation's signature.
    ``delegation_id``: the delegation's id if its key rotated (else the key's fingerprint)."""
    public = key.public if isinstance(key, PrivateKey) else key
    did = delegation_id or (delegation.fingerprint if isinstance(delegation, PrivateKey)
                            else delegation)
    if isinstance(delegation, PrivateKey):
        certificate = delegation.sign(statements.device(did, public.fingerprint, public.b64u,
                                                        str(role), name))
    if certificate is None:
        raise ValueError("a participant needs its delegation's certificate")
    return Participant(device=public.fingerprint, key=public, delegation=did, role=role,
                       name=name, language=language, certificate=certificate)

"""The operator of a delegation, in Python: the REST side of links, plans and calls.

Holds the delegation key and signs what the delegation agrees to: its registration,
a link, a plan, control of a call, the head of a record. Used by the demo, the tests
and scripts; the web operator console (a later issue) does the same in the browser.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import httpx

from summitline.client.reads import signed_get
from summitline.core.plan import CallPlan, Delegation, Participant
from summitline.core.record import check_chain
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey, PublicKey, short_fingerprint


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Operator:
    def __init__(self, http: httpx.AsyncClient, name: str, key: PrivateKey) -> None:
        self.http = http
        self.name = name
        self.key = key
        self.pinned: dict[str, PublicKey] = {key.fingerprint: key.public}
        self._proposed: dict[str, str] = {}  # link id -> the delegation we proposed it to

    @property
    def id(self) -> str:
        return self.key.fingerprint

    def delegation(self) -> Delegation:
        return Delegation(self.id, self.name, self.key.public)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "GET":  # reads are signed by the delegation (docs/protocol.md §4.3)
            r = await signed_get(self.http, self.key, path)
        else:
            r = await self.http.request(method, path, json=body)
        if r.status_code >= 400:
            detail = r.json().get("detail", r.text) if r.headers.get(
                "content-type", "").startswith("application/json") else r.text
            raise ApiError(r.status_code, str(detail))
        return r.json()

    async def register(self) -> dict[str, Any]:
        key = self.key.public.b64u
        result: dict[str, Any] = await self._call("POST", "/api/delegations", {
            "name": self.name, "key": key,
            "signature": self.key.sign(statements.register(self.name, key))})
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
        result: dict[str, Any] = await self._call(
            "POST", f"/api/links/{link_id}/accept",
            {"signature": self.key.sign(statements.link(link_id, ids))})
        self.pin(other["id"], other["key"])
        return result

    def pin(self, delegation_id: str, key: str) -> None:
        public = PublicKey.from_b64u(key)
        if public.fingerprint != delegation_id:
            raise ApiError(0, "the server returned a key that does not match its id")
        self.pinned[delegation_id] = public

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
        self.pin(others[0]["id"], others[0]["key"])

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

    async def submit_plan(self, plan: CallPlan) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/api/plans", {
            "plan": plan.to_json(),
            "signatures": {self.id: self.key.sign(statements.plan(plan.hash))}})
        return result

    async def cosign_plan(self, plan: CallPlan) -> dict[str, Any]:
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


def participant(key: PrivateKey | PublicKey, delegation: str, role: Role, name: str,
                language: str) -> Participant:
    public = key.public if isinstance(key, PrivateKey) else key
    return Participant(device=public.fingerprint, key=public, delegation=delegation,
                       role=role, name=name, language=language)

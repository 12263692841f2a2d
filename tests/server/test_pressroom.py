"""Readouts, photos and the press room: drafts stay private, every write is signed by the
delegation, fresh and once, what is published is final and shows in the press room."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from summitline.client.bilateral import Bilateral, provision
from summitline.client.briefing import provision_briefing
from summitline.client.operator import ApiError, Operator
from summitline.client.reads import signed_get
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings, create_app
from tests.postgres import both_stores

pytestmark = both_stores  # each test with a server runs on SQLite and on PostgreSQL

US_TEXT = "President Biden voiced deep concerns.\n\nThe presidents tasked their teams to follow up."
RU_TEXT = "Владимир Путин подчеркнул: ответственность лежит на другой стороне."


class FakePress:
    """Stands in for the press gateway's snapshot: the programme's picture as JPEG, or None
    when it is not running. (The real gateway is in the browser test.)"""

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.asked: list[str] = []

    def snapshot(self, call: str) -> bytes | None:
        self.asked.append(call)
        return self.frame


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(Settings(data_dir=tmp_path / "server"))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://summitline.test") as http:
        yield http


@pytest.fixture
async def call(client: httpx.AsyncClient) -> Bilateral:
    return await provision(client, press_window_s=60)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def readout_body(op: Operator, call: str, action: str, text: str, at: int | None = None,
                 signed_text: str | None = None, key: PrivateKey | None = None) -> dict[str, Any]:
    at = now_ms() if at is None else at
    statement = statements.readout(call, op.id, action, at,
                                   statements.text_hash(text if signed_text is None
                                                        else signed_text))
    return {"delegation": op.id, "text": text, "at": at,
            "signature": (key or op.key).sign(statement)}


def read_body(op: Operator, call: str, key: PrivateKey | None = None) -> dict[str, Any]:
    at = now_ms()
    return {"delegation": op.id, "at": at,
            "signature": (key or op.key).sign(statements.readout(call, op.id, "read", at))}


async def end(call: Bilateral) -> None:
    await call.a.operator.control(call.call, "start")
    await call.b.operator.control(call.call, "end")


async def test_the_press_room_before_anything_is_published(
        client: httpx.AsyncClient, call: Bilateral) -> None:
    # before the call starts there is nothing public: the same 404 as an unknown call
    unknown = await client.get("/api/pressroom/call-nobody-planned")
    early = await client.get(f"/api/pressroom/{call.call}")
    assert early.status_code == unknown.status_code == 404
    assert early.json()["detail"].replace(call.call, "X") == \
        unknown.json()["detail"].replace("call-nobody-planned", "X")
    await call.a.operator.control(call.call, "start")  # with a press window: public now
    room = (await client.get(f"/api/pressroom/{call.call}")).json()
    assert room["title"] == "Secure video call" and room["phase"] == "open"
    assert [d["name"] for d in room["delegations"]] == ["United States", "Russian Federation"]
    assert [d["id"] for d in room["delegations"]] == [call.a.operator.id, call.b.operator.id]
    assert room["host"] is None  # a bilateral
    assert [d["principals"] for d in room["delegations"]] == [
        [call.a.principal_name], [call.b.principal_name]]
    assert room["started_ms"] is not None and room["ended_ms"] is None
    assert room["duration_ms"] is None
    assert room["readouts"] == [] and room["photos"] == []
    assert (await client.get("/api/pressroom/call-nobody-planned")).status_code == 404
    r = await client.get(f"/api/pressroom/{call.call}/photos/{call.a.operator.id}.jpg")
    assert r.status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/pressroom/{call}", "/api/calls/{call}/readouts/draft",
                 "/api/calls/{call}/readouts/read", "/api/calls/{call}/readouts/publish",
                 "/api/calls/{call}/photos", "/api/calls/{call}/photos/{photo_id}/publish"):
        assert path in paths  # and so fuzzed by tests/fuzz/test_openapi.py


async def test_a_draft_is_private_to_its_delegation(
        client: httpx.AsyncClient, call: Bilateral) -> None:
    us, ru = call.a.operator, call.b.operator
    await us.draft_readout(call.call, "first thoughts")
    mine = await us.draft_readout(call.call, US_TEXT)  # replaces the first
    assert mine["draft"]["text"] == US_TEXT and mine["published"] is None
    assert (await us.read_draft(call.call))["draft"]["text"] == US_TEXT
    # the other delegation reads its own (empty) state, never ours
    theirs = await ru.read_draft(call.call)
    assert theirs["delegation"] == ru.id and theirs["draft"] is None
    # nor can it ask for ours, signed with its own key
    r = await client.post(f"/api/calls/{call.call}/readouts/read",
                          json=read_body(us, call.call, key=ru.key))
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    # an unsigned look finds nothing: the press room and the call show no draft
    for path in (f"/api/pressroom/{call.call}", f"/api/calls/{call.call}",
                 f"/api/calls/{call.call}/record"):
        text = (await client.get(path)).text
        assert "first thoughts" not in text and "Biden" not in text, path
    assert (await client.get(f"/api/pressroom/{call.call}")).status_code == 404


async def test_signed_requests_that_are_refused(
        client: httpx.AsyncClient, call: Bilateral) -> None:
    us, ru = call.a.operator, call.b.operator
    url = f"/api/calls/{call.call}/readouts/draft"

    async def refused(body: dict[str, Any], status: int, why: str,
                      path: str = url) -> None:
        r = await client.post(path, json=body)
        assert r.status_code == status and why in r.json()["detail"], r.text

    # signed by the other delegation's key, in our name
    await refused(readout_body(us, call.call, "draft", US_TEXT, key=ru.key), 403,
                  "does not verify")
    # signed over another text than the one sent
    await refused(readout_body(us, call.call, "draft", US_TEXT, signed_text="harmless"), 403,
                  "does not verify")
    # a "read" signature does not make a draft
    at = now_ms()
    await refused({"delegation": us.id, "text": US_TEXT, "at": at, "signature": us.key.sign(
        statements.readout(call.call, us.id, "read", at))}, 403, "does not verify")
    # a draft signature does not publish
    draft = readout_body(us, call.call, "draft", US_TEXT)
    await refused(draft, 403, "does not verify", f"/api/calls/{call.call}/readouts/publish")
    # stale
    await refused(readout_body(us, call.call, "draft", US_TEXT, at=now_ms() - 10 * 60_000),
                  403, "stale")
    # a delegation outside the call
    outsider = Operator(client, "Elsewhere", PrivateKey.generate())
    await outsider.register()
    await refused(readout_body(outsider, call.call, "draft", US_TEXT), 403,
                  "not part of it")
    # once only: the same signed draft again
    assert (await client.post(url, json=draft)).status_code == 200
    await refused(draft, 403, "already used")
    read = read_body(us, call.call)
    assert (await client.post(f"/api/calls/{call.call}/readouts/read", json=read)).is_success
    await refused(read, 403, "already used", f"/api/calls/{call.call}/readouts/read")
    # text no store can keep as it is
    await refused(readout_body(us, call.call, "draft", "a\x00b"), 422, "NUL")
    # none of it reached the store: the draft is the one request that was accepted
    assert (await us.read_draft(call.call))["draft"]["text"] == US_TEXT


async def test_both_readouts_are_published_once_after_the_call(
        client: httpx.AsyncClient, call: Bilateral) -> None:
    us, ru = call.a.operator, call.b.operator
    await us.draft_readout(call.call, "not this one")
    with pytest.raises(ApiError) as err:
        await us.publish_readout(call.call, US_TEXT)
    assert err.value.status == 409 and "after the call has ended" in err.value.detail
    await end(call)
    with pytest.raises(ApiError) as err:
        await us.publish_readout(call.call, "   \n")
    assert err.value.status == 422
    # the text published is the text signed, or nothing is published
    r = await client.post(f"/api/calls/{call.call}/readouts/publish", json=readout_body(
        us, call.call, "publish", US_TEXT + " And more.", signed_text=US_TEXT))
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    r = await client.post(f"/api/calls/{call.call}/readouts/publish", json=readout_body(
        us, call.call, "publish", US_TEXT, key=ru.key))
    assert r.status_code == 403
    assert (await client.get(f"/api/pressroom/{call.call}")).json()["readouts"] == []
    published = (await us.publish_readout(call.call, US_TEXT))["published"]
    assert published["text"] == US_TEXT and published["hash"] == statements.text_hash(US_TEXT)
    mine = await us.read_draft(call.call)
    assert mine["draft"] is None and mine["published"]["text"] == US_TEXT
    room = (await client.get(f"/api/pressroom/{call.call}")).json()
    assert [(x["name"], x["text"]) for x in room["readouts"]] == [("United States", US_TEXT)]
    assert "not this one" not in json.dumps(room)  # the draft is gone, never published
    facts = (await signed_get(client, us.key, f"/api/calls/{call.call}")).json()
    assert room["started_ms"] == facts["started_ms"] and room["ended_ms"] == facts["ended_ms"]
    assert room["duration_ms"] == facts["ended_ms"] - facts["started_ms"]
    # the press can check the signature with the delegation's key
    (x,) = room["readouts"]
    us.key.public.verify(statements.readout(call.call, us.id, "publish", x["published_ms"],
                                            statements.text_hash(x["text"])), x["signature"])
    # final: neither a new draft nor a second publication
    for attempt in (us.draft_readout, us.publish_readout):
        with pytest.raises(ApiError) as err:
            await attempt(call.call, "a revised version")
        assert err.value.status == 409 and "final" in err.value.detail
    await ru.publish_readout(call.call, RU_TEXT)
    room = (await client.get(f"/api/pressroom/{call.call}")).json()
    assert [(x["delegation"], x["text"]) for x in room["readouts"]] == [(us.id, US_TEXT),
                                                                        (ru.id, RU_TEXT)]
    assert room["readouts"][0]["published_ms"] <= room["readouts"][1]["published_ms"]
    assert "a revised version" not in json.dumps(room)


JPEG_A = b"\xff\xd8\xff\xe0" + b"frame one" + b"\xff\xd9"
JPEG_B = b"\xff\xd8\xff\xe0" + b"frame two" + b"\xff\xd9"


async def test_a_photo_is_captured_in_the_press_window_and_published_once(
        app: FastAPI, client: httpx.AsyncClient, call: Bilateral,
        monkeypatch: pytest.MonkeyPatch) -> None:
    us, ru = call.a.operator, call.b.operator
    press = FakePress()
    monkeypatch.setattr(app.state.hub.press, "snapshot", press.snapshot)
    press.frame = JPEG_A
    with pytest.raises(ApiError) as err:  # before the call: no window yet
        await us.capture_photo(call.call)
    assert err.value.status == 409 and "press window" in err.value.detail
    assert press.asked == []
    await us.control(call.call, "start")  # the press window opens
    photo = await us.capture_photo(call.call)
    assert photo == hashlib.sha256(JPEG_A).hexdigest() and press.asked == [call.call]
    preview = await client.get(f"/api/calls/{call.call}/photos/{photo}.jpg")
    assert preview.headers["content-type"] == "image/jpeg" and preview.content == JPEG_A
    assert (await client.get(f"/api/pressroom/{call.call}")).json()["photos"] == []
    press.frame = None  # the gateway says its programme is not running
    with pytest.raises(ApiError) as err:
        await us.capture_photo(call.call)
    assert err.value.status == 409 and "press window" in err.value.detail
    press.frame = JPEG_B
    second = await us.capture_photo(call.call)
    assert [p["id"] for p in (await us.read_draft(call.call))["photos"]] == [second, photo]
    assert (await ru.read_draft(call.call))["photos"] == []  # each side its own

    # the publication binds the photo: a signature over another one does not do
    at = now_ms()
    r = await client.post(f"/api/calls/{call.call}/photos/{photo}/publish", json={
        "delegation": us.id, "at": at,
        "signature": us.key.sign(statements.photo(call.call, us.id, "publish", at, second))})
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    with pytest.raises(ApiError) as err:  # not a photo of the other delegation's
        await ru.publish_photo(call.call, photo)
    assert err.value.status == 404
    mine = await us.publish_photo(call.call, photo)
    assert [p["official"] for p in mine["photos"]] == [False, True]
    with pytest.raises(ApiError) as err:
        await us.publish_photo(call.call, second)
    assert err.value.status == 409 and "final" in err.value.detail

    room = (await client.get(f"/api/pressroom/{call.call}")).json()
    (official,) = room["photos"]
    assert official["delegation"] == us.id and official["name"] == "United States"
    assert official["id"] == photo
    us.key.public.verify(statements.photo(call.call, us.id, "publish", official["published_ms"],
                                          photo), official["signature"])
    served = await client.get(official["url"])
    assert served.headers["content-type"] == "image/jpeg" and served.content == JPEG_A
    assert (await client.get(f"/api/pressroom/{call.call}/photos/{ru.id}.jpg")).status_code \
        == 404

    # after the window no photo is taken, whatever the gateway would give
    await us.control(call.call, "close-doors")
    with pytest.raises(ApiError) as err:
        await ru.capture_photo(call.call)
    assert err.value.status == 409
    assert press.asked == [call.call] * 3


async def test_capture_requests_are_signed_and_used_once(
        app: FastAPI, client: httpx.AsyncClient, call: Bilateral,
        monkeypatch: pytest.MonkeyPatch) -> None:
    us, ru = call.a.operator, call.b.operator
    press = FakePress()
    press.frame = JPEG_A
    monkeypatch.setattr(app.state.hub.press, "snapshot", press.snapshot)
    await us.control(call.call, "start")
    at = now_ms()
    body = {"delegation": us.id, "at": at,
            "signature": ru.key.sign(statements.photo(call.call, us.id, "capture", at))}
    r = await client.post(f"/api/calls/{call.call}/photos", json=body)
    assert r.status_code == 403 and "does not verify" in r.json()["detail"]
    body["signature"] = us.key.sign(statements.photo(call.call, us.id, "capture", at))
    assert (await client.post(f"/api/calls/{call.call}/photos", json=body)).status_code == 201
    r = await client.post(f"/api/calls/{call.call}/photos", json=body)
    assert r.status_code == 403 and "already used" in r.json()["detail"]
    assert press.asked == [call.call]  # the gateway is asked only for a valid request


async def test_a_briefing_press_room_shows_every_delegation_and_its_readout(
        client: httpx.AsyncClient) -> None:
    b = await provision_briefing(client, 3, press_window_s=60)
    host, *guests = (side.operator for side in b.sides)
    await host.control(b.call, "start")
    room = (await client.get(f"/api/pressroom/{b.call}")).json()
    assert room["host"] == host.id
    assert [(d["id"], d["name"], d["principals"]) for d in room["delegations"]] == [
        (side.operator.id, side.operator.name, [side.principal_name]) for side in b.sides]
    assert room["readouts"] == []
    await host.control(b.call, "end")
    texts = {op.id: f"{op.name}: the allies agreed to stay in close contact." for op in
             (guests[1], host, guests[0])}
    for op_id, text in texts.items():  # in an order other than the plan's
        op = next(side.operator for side in b.sides if side.operator.id == op_id)
        await op.publish_readout(b.call, text)
    room = (await client.get(f"/api/pressroom/{b.call}")).json()
    assert [(x["delegation"], x["name"], x["text"]) for x in room["readouts"]] == [
        (op_id, next(s.operator.name for s in b.sides if s.operator.id == op_id), text)
        for op_id, text in texts.items()]  # by publication time
    for x in room["readouts"]:  # each checks with its delegation's key alone
        key = next(s.operator.key.public for s in b.sides if s.operator.id == x["delegation"])
        assert key.verifies(statements.readout(b.call, x["delegation"], "publish",
                                               x["published_ms"], x["hash"]), x["signature"])

"""Closed reads (issue 11): every GET of an object answers only a signed request by a
delegation or device the object concerns. Route by route: unsigned -> 401, signed by a
delegation the object does not concern -> 403, by one it concerns -> 200. And the
server's incidents: for its operator alone, aggregated, capped and paged."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
import websockets

from summitline.client.bilateral import Bilateral, provision
from summitline.client.operator import Operator
from summitline.client.reads import read_headers, signed_get
from summitline.core.roles import Role
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings
from summitline.server.run import running
from summitline.store.sql import MAX_INCIDENT_GROUPS
from tests.postgres import both_stores

OPEN = ["/api/protocol", "/api/nonce", "/api/record.css"]


async def stranger(http: httpx.AsyncClient) -> Operator:
    op = Operator(http, "Stranger", PrivateKey.generate())
    await op.register()
    return op


def routes(call: Bilateral, device: PrivateKey) -> list[tuple[str, list[PrivateKey]]]:
    """Each closed route of one call, and keys it concerns (delegations, devices)."""
    a, b = call.a.operator, call.b.operator
    both = [a.key, b.key]
    return [
        (f"/api/links/{call.link_id}", both),
        (f"/api/plans/{call.plan.hash}", [*both, call.a.principal]),
        (f"/api/calls/{call.call}", [*both, call.b.principal]),
        (f"/api/calls/{call.call}/record", [*both, call.a.principal]),
        (f"/api/calls/{call.call}/record/export", both),
        (f"/api/calls/{call.call}/record/export.html", both),
        (f"/api/links/{call.link_id}/plans", both),
        (f"/api/delegations/{a.id}/links", [a.key]),
        (f"/api/delegations/{a.id}/devices", [a.key, b.key]),  # b drafts plans with them
        (f"/api/devices/{call.a.principal.fingerprint}/calls", [call.a.principal, a.key]),
        (f"/api/devices/{device.fingerprint}/calls", [a.key, device]),  # in no plan yet
    ]


@both_stores
async def test_every_closed_route_refuses_the_unsigned_and_the_unconcerned(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    other = await provision(http)  # a delegation with a call of its own elsewhere
    nosy = await stranger(http)
    code = await bilateral.a.operator.open_enrolment("Aide", Role.AIDE)
    aide = PrivateKey.generate()
    r = await http.post("/api/enrolments", json={
        "code": code, "key": aide.public.b64u,
        "signature": aide.sign(statements.enrol(code, aide.public.b64u))})
    assert r.status_code == 200
    for path, concerned in routes(bilateral, aide):
        unsigned = await http.get(path)
        assert unsigned.status_code == 401, path
        assert "signed request" in unsigned.json()["detail"], path
        # a stranger, a delegation with calls of its own, an enrolled device of A that
        # this call does not name
        outsiders = [nosy.key, other.a.operator.key, aide]
        for outsider in [k for k in outsiders if k not in concerned]:
            r = await signed_get(http, outsider, path)
            assert r.status_code == 403, (path, r.text)
        for key in concerned:
            r = await signed_get(http, key, path)
            assert r.status_code == 200, (path, r.text)
    # a key the server cannot tell (a device of another plan, never enrolled here): 401
    assert (await signed_get(http, other.b.principal,
                             f"/api/devices/{bilateral.a.principal.fingerprint}/calls")
            ).status_code == 401
    assert (await signed_get(http, aide, f"/api/devices/{aide.fingerprint}/calls")
            ).json() == []
    for path in OPEN:
        assert (await http.get(path)).status_code == 200, path


@both_stores
async def test_a_bad_stale_or_displaced_signature_is_401(
        http: httpx.AsyncClient, bilateral: Bilateral) -> None:
    key = bilateral.a.operator.key
    path = f"/api/calls/{bilateral.call}/record"

    async def get(headers: dict[str, str], target: str = path) -> int:
        return (await http.get(target, headers=headers)).status_code

    now = time.time_ns() // 1_000_000
    here = statements.origin(str(http.base_url))
    good = read_headers(key, "GET", path, here, now)
    assert await get(good) == 200
    # signed for another path, another method, by another key, or long ago
    assert await get(read_headers(key, "GET", f"/api/calls/{bilateral.call}", here, now)) == 401
    assert await get(read_headers(key, "POST", path, here, now)) == 401
    assert await get({**good, "Summitline-Signer": bilateral.b.operator.id}) == 401
    assert await get(read_headers(key, "GET", path, here, now - 31_000)) == 401
    assert await get(read_headers(key, "GET", path, here, now + 31_000)) == 401
    # dated ahead: clock skew only (attacker review: +29 s kept a read usable for 59 s)
    assert await get(read_headers(key, "GET", path, here, now + 6_000)) == 401
    assert await get(read_headers(key, "GET", path, here, now + 3_000)) == 200
    # one spelling of the time: no leading zero
    assert await get({**good, "Summitline-At": "0" + good["Summitline-At"]}) == 401
    assert await get({**good, "Summitline-At": "soon"}) == 401
    assert await get({**good, "Summitline-Signature": "x" * 86}) == 401
    unknown = PrivateKey.generate()
    assert await get(read_headers(unknown, "GET", path, here, now)) == 401
    # the query is part of what is signed
    assert await get(good, path + "?x=1") == 401
    assert await get(read_headers(key, "GET", path + "?x=1", here, now), path + "?x=1") == 200


async def test_a_read_is_good_at_the_server_it_names_only(tmp_path: Path) -> None:
    """Attacker review of issue 11 (a): a hostile server replays a read it received to
    another summitline server where the same delegation is registered. The read names the
    origin its signer addressed, and a server takes only its own."""
    async with running(Settings(data_dir=tmp_path / "a")) as base_a, \
            running(Settings(data_dir=tmp_path / "b",
                             public_origins=("HTTPS://Summit.Example.org:443/",))) as base_b, \
            httpx.AsyncClient(base_url=base_a) as a, httpx.AsyncClient(base_url=base_b) as b:
        key = PrivateKey.generate()
        ops = [Operator(http, "Office", key) for http in (a, b)]
        for op in ops:
            await op.register()
        path = f"/api/delegations/{ops[0].id}/links"
        # signed for server A: good at A (it names A's Host), no good at B
        for_a = read_headers(key, "GET", path, statements.origin(base_a))
        assert (await a.get(path, headers=for_a)).status_code == 200
        assert (await b.get(path, headers=for_a)).status_code == 401
        # B names its public origin: a read for it is good there whatever Host says
        # (behind a proxy), and one for B's loopback address is not
        for_b = read_headers(key, "GET", path, "https://summit.example.org")
        assert (await b.get(path, headers=for_b)).status_code == 200
        assert (await a.get(path, headers=for_b)).status_code == 401
        by_host = read_headers(key, "GET", path, statements.origin(base_b))
        assert (await b.get(path, headers=by_host)).status_code == 401


def test_origins_are_serialised_as_a_browser_does() -> None:
    assert statements.origin("HTTP://Example.ORG:80/x?y") == "http://example.org"
    assert statements.origin("https://example.org:8443") == "https://example.org:8443"
    assert statements.origin("http://[::1]:8750/api") == "http://[::1]:8750"
    for bad in ("example.org", "ftp://example.org", "http://", "http://h:99999"):
        with pytest.raises(ValueError):
            statements.origin(bad)


async def test_incidents_are_for_the_operator_aggregated_and_paged(
        tmp_path: Path) -> None:
    # attack 5 of issue 11: 1,500 foreign-Origin attempts left 1,471 rows, open to anyone,
    # and "database is locked" in the log
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep(logging.WARNING)
    data = tmp_path / "server"
    async with running(Settings(data_dir=data)) as base, \
            httpx.AsyncClient(base_url=base) as http:
        for name in ("", "uvicorn", "sqlalchemy"):  # after the start: uvicorn configures
            logging.getLogger(name).addHandler(keep)
        try:
            ws_url = base.replace("http", "ws", 1) + "/ws"

            async def attempt(i: int) -> None:
                with pytest.raises(websockets.InvalidStatus):
                    await websockets.connect(
                        ws_url, origin=f"http://evil{i % 3}.example",  # type: ignore[arg-type]
                        open_timeout=30)

            for start in range(0, 1500, 100):  # 100 at a time, concurrently
                await asyncio.gather(*(attempt(i) for i in range(start, start + 100)))
        finally:
            for name in ("", "uvicorn", "sqlalchemy"):
                logging.getLogger(name).removeHandler(keep)
        token_file = data / "operator.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        operator = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert (await http.get("/api/incidents")).status_code == 401
        assert (await http.get("/api/incidents", headers={
            "Authorization": "Bearer " + "x" * 43})).status_code == 401
        nosy = await stranger(http)
        assert (await signed_get(http, nosy.key, "/api/incidents")).status_code == 401
        page = (await http.get("/api/incidents", headers=operator)).json()
        assert page["total"] == len(page["incidents"]) == 1  # one address, one code
        (row,) = page["incidents"]
        assert (row["remote"], row["code"], row["count"]) == ("127.0.0.1", "bad-origin", 1500)
        assert row["first_ms"] <= row["last_ms"] and "evil" in row["detail"]
        # paged: a second page is empty, and a page is at most 500 rows
        assert (await http.get("/api/incidents?offset=1", headers=operator)
                ).json()["incidents"] == []
        assert (await http.get("/api/incidents?limit=501", headers=operator)
                ).status_code == 422
    messages = [r.getMessage() for r in seen] + [str(r.exc_info) for r in seen]
    assert not [m for m in messages if "locked" in m], messages[:5]
    assert not [r for r in seen if r.levelno >= logging.ERROR], messages[:5]


@both_stores
async def test_incident_rows_are_capped(database: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from summitline.store import open_store, sql
    from summitline.store.sql import OVERFLOW

    assert MAX_INCIDENT_GROUPS == 10_000  # as docs/protocol.md says
    cap = 20  # the same rule, on a table small enough to fill quickly
    monkeypatch.setattr(sql, "MAX_INCIDENT_GROUPS", cap)
    store = await open_store(database)
    try:
        for i in range(cap + 5):
            await store.add_incident(i, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                                     "malformed", "")
        total, rows = await store.incidents(0, 10)
        assert total == cap + 1  # the cap, and one row for every address past it
        assert rows[0]["remote"] == OVERFLOW and rows[0]["count"] == 5
    finally:
        await store.close()


def test_the_read_statement_is_the_one_docs_protocol_shows() -> None:
    from summitline.crypto.encoding import canonical

    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    shown = next(line for line in doc.splitlines()
                 if line.startswith('{"at":1700000000000,"method":"GET"'))
    signer = "ab" * 32
    built = canonical(statements.read("https://summit.example.org", "GET",
                                      "/api/calls/call-1/record", signer, 1700000000000))
    assert built.decode() == shown.replace("<64 hex>", signer)


def test_a_server_on_every_address_must_name_its_origin(tmp_path: Path) -> None:
    # attacker review round 3: with no --public-origin a read is bound to whatever Host a
    # request claims, so a server others reach must say which origin is its own
    import subprocess
    import sys

    for host in ("0.0.0.0", "::", "0", "00.0.0.0", "0:0:0:0:0:0:0:0"):  # however spelt
        run = subprocess.run([sys.executable, "-m", "summitline", "serve", "--host", host,
                              "--data", str(tmp_path)], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 2 and "--public-origin" in run.stderr, (host, run.stderr)

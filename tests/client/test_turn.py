"""TURN on a real coturn: a relay-only call works with credentials the server mints;
an expired credential fails with a clear alarm within a bounded time; the shipped
coturn configuration denies loopback, private and link-local peers."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import httpx

from summitline.client.bilateral import provision
from summitline.client.ice import IceSettings
from summitline.client.session import CallSession
from summitline.core.endpoint import offers
from summitline.core.roles import MediaKind
from summitline.server.app import Settings
from summitline.server.run import running
from summitline.server.turn import TurnSettings
from tests.client.test_session import WAIT_S
from tests.turn import coturn

RELAY_ONLY = IceSettings(relay_only=True)  # no host candidates at all: only the relay
EXPIRED_FAILS_WITHIN_S = 5.0
SHIPPED = Path(__file__).parents[2] / "deploy" / "coturn" / "turnserver.conf"


async def test_a_call_forced_to_relay_only_works(tmp_path: Path) -> None:
    async with coturn(tmp_path / "turn") as turn, running(Settings(
            data_dir=tmp_path / "data", turn=TurnSettings((turn.url,), turn.secret))) as base, \
            httpx.AsyncClient(base_url=base) as http:
        call = await provision(http)
        await call.a.operator.control(call.call, "start")
        ws = base.replace("http", "ws", 1) + "/ws"
        sessions = [CallSession(ws, call.call, side.identity(), ice=RELAY_ONLY)
                    for side in (call.a, call.b)]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(
            lambda s=s: all(s.frames(k) > 10 for k in MediaKind)) for s in sessions)), WAIT_S)
        for s in sessions:
            (link,) = s.links.values()
            candidates = [line for line in link.sent_sdp.splitlines()
                          if line.startswith("a=candidate:")]
            assert candidates and all(" typ relay" in c for c in candidates)
            assert s.alarms == []
        await call.a.operator.control(call.call, "end")
        await asyncio.gather(*tasks)
        for s in sessions:
            await s.leave()
    log = turn.log.read_text()
    assert "ALLOCATE" in log and "success" in log


async def test_an_expired_credential_fails_clearly_and_soon(tmp_path: Path) -> None:
    async with coturn(tmp_path / "turn") as turn, running(Settings(
            data_dir=tmp_path / "data",
            turn=TurnSettings((turn.url,), turn.secret, ttl_s=-60))) as base, \
            httpx.AsyncClient(base_url=base) as http:
        call = await provision(http)
        await call.a.operator.control(call.call, "start")
        ws = base.replace("http", "ws", 1) + "/ws"
        first = CallSession(ws, call.call, call.a.identity(), ice=RELAY_ONLY)
        later = CallSession(ws, call.call, call.b.identity(), ice=RELAY_ONLY)
        tasks = [asyncio.create_task(first.run())]
        await asyncio.wait_for(first.joined.wait(), WAIT_S)
        tasks.append(asyncio.create_task(later.run()))
        # the offerer (its id sorts first) finds no relay candidate in its offer
        offerer, other = (first, later) if offers(first.device, later.device) else (later,
                                                                                     first)
        await asyncio.wait_for(offerer.wait_for(lambda: bool(offerer.alarms)),
                               EXPIRED_FAILS_WITHIN_S)
        assert "no TURN relay" in offerer.alarms[0] and "expired" in offerer.alarms[0]
        assert not offerer.links and offerer.frames(MediaKind.VIDEO) == 0
        assert other.frames(MediaKind.VIDEO) == 0
        await call.a.operator.control(call.call, "end")
        await asyncio.gather(*tasks)
        for s in (first, later):
            await s.leave()
    assert "401" in turn.log.read_text()


def denied_ranges(conf: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    out = []
    for line in conf.splitlines():
        if line.startswith("denied-peer-ip="):
            value = line.split("=", 1)[1].strip()
            lo, _, hi = value.partition("-")
            out.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))
    return out


def test_the_shipped_coturn_configuration_denies_internal_peers() -> None:
    conf = SHIPPED.read_text()
    assert "allow-loopback-peers" not in conf and "use-auth-secret" in conf
    ranges = denied_ranges(conf)

    def denied(address: str) -> bool:
        a = ipaddress.ip_address(address)
        return any(type(lo) is type(a) and lo <= a <= hi for lo, hi in ranges)

    for address in ["127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.254",
                    "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
                    "fe80::1", "fd00::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
                    "64:ff9b::a00:1", "2002:a00:1::"]:
        assert denied(address), address
    for address in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"]:
        assert not denied(address), address
    # an IPv6 range starting at '::' would deny every IPv4 peer in coturn 4.6
    assert all(str(lo) != "::" for lo, _ in ranges)

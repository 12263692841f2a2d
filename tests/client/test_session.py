"""The Python endpoint: a call between two principals, peer-to-peer, checked end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from summitline.client.bilateral import Bilateral
from summitline.client.ice import loopback
from summitline.client.session import CallSession, Identity, PlanRejected
from summitline.core.record import verify_export
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey

WAIT_S = 30.0  # bounds a hang; media on loopback starts within a second


async def until(sessions: list[CallSession], condition: Callable[[CallSession], bool]) -> None:
    """Wait until ``condition`` holds for every session (woken by their frames), bounded."""
    await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: condition(s))
                                            for s in sessions)), WAIT_S)


async def leave_all(sessions: Iterable[CallSession], tasks: Iterable[asyncio.Task[None]],
                    viewers: Iterable[Any] = ()) -> None:
    """Close press viewers, leave every session, and end their run tasks."""
    for viewer in viewers:
        await viewer.close()
    for s in sessions:
        await s.leave()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def sessions_for(ws_url: str, call: Bilateral) -> list[CallSession]:
    return [CallSession(ws_url, call.call, side.identity(), ice=loopback())
            for side in (call.a, call.b)]


async def test_two_principals_hold_a_call_and_the_record_verifies(
        ws_url: str, bilateral: Bilateral) -> None:
    a, b = sessions_for(ws_url, bilateral)
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
    await bilateral.a.operator.control(bilateral.call, "start")
    await until([a, b], lambda s: all(s.frames(k) > 20 for k in MediaKind))
    pa, pb = bilateral.a.principal.fingerprint, bilateral.b.principal.fingerprint
    # both ends derive the same short authentication string from the DTLS fingerprints
    assert a.short_authentication_string(pb) == b.short_authentication_string(pa) is not None
    assert a.link(pb).generation == b.link(pa).generation == 1  # type: ignore[union-attr]
    await bilateral.b.operator.control(bilateral.call, "end")
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    assert a.ended.is_set() and b.ended.is_set() and not a.links
    for side in (bilateral.a, bilateral.b):
        await side.operator.sign_record(bilateral.call, bilateral.plan.hash)
    record = verify_export(await bilateral.a.operator.export_record(bilateral.call))
    kinds = [e.kind for e in record.entries]
    assert kinds.index("call.started") < kinds.index("signal.offer") < kinds.index(
        "signal.answer") < kinds.index("call.ended") == len(kinds) - 1
    assert a.alarms == b.alarms == []
    for s in (a, b):
        await s.leave()


async def test_a_plan_that_does_not_match_the_pinned_keys_is_refused(
        ws_url: str, bilateral: Bilateral) -> None:
    impostor = PrivateKey.generate()
    pins = dict(bilateral.a.operator.pinned)
    pins[bilateral.b.operator.id] = impostor.public  # we pinned another key for RU
    session = CallSession(ws_url, bilateral.call, Identity(bilateral.a.principal, pins),
                          ice=loopback())
    with pytest.raises(PlanRejected, match="not the pinned key"):
        await asyncio.wait_for(session.run(), WAIT_S)
    assert session.alarms and not session.links
    assert session.frames(MediaKind.VIDEO) == 0

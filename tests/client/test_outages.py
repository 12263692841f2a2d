"""Calls that hold: outages of the network, of the server and of an endpoint, each between
processes in network namespaces of their own (summitline.netlab), each ending with
video flowing both ways again and a record that verifies, with ``link.lost`` /
``link.restored`` wherever media stopped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from summitline.core.endpoint import STALL_MS, TICK_MS
from summitline.labcall import LabCall, stalled_within
from summitline.netlab import Lab

# The aim: video back on both sides within 2 s of the network's return
# (bench/recovery.py measures how far within).
BACK_WITHIN_S = 2.0
# How long the test watches for a recovery that missed the aim, to say by how much.
WATCH_S = 20.0


@pytest.fixture
def call(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LabCall]:
    relayed = bool(getattr(request, "param", False))
    with Lab() as lab:
        c = LabCall(lab, tmp_path / "server", relayed=relayed).open()
        try:
            c.start()
            yield c
        finally:
            c.close()


def stalls(record: dict[str, object], kind: str) -> list[dict[str, object]]:
    return [e["data"] for e in record["entries"] if e["kind"] == kind]  # type: ignore[index, union-attr]


def assert_back(call: LabCall, since: float, what: str) -> None:
    back = call.recovered(since, WATCH_S)
    assert None not in back, f"{what}: video did not come back on {back}"
    assert max(b for b in back if b is not None) <= BACK_WITHIN_S, f"{what}: back after {back} s"
    call.settled()


# A gap of decoded video this long is a stall the endpoint must have seen: STALL_MS plus
# a tick, plus a frame interval.
SEEN_STALL_S = (STALL_MS + TICK_MS) / 1000 + 0.1


def assert_recorded(call: LabCall, record: dict[str, object]) -> None:
    """Wherever media stopped, the principal reported the stall and its end, and the
    record has both."""
    lost_entries, restored = stalls(record, "link.lost"), stalls(record, "link.restored")
    for p in call.principals:
        report = p.report()
        states = [s["state"] for s in report["stalls"]]
        # a gap while this endpoint's own loop stood still (SIGSTOP) is not a stall it
        # could see; the other side sees one
        own = [tuple(i) for i in report["loop_stalls"]]
        gaps = [b - a - stalled_within((a, b), own) for a, b in report["freezes"]]
        if max(gaps, default=0.0) >= SEEN_STALL_S:
            assert "lost" in states, (p.name, gaps, states)
        if states:
            assert states[-1] == "restored", states
    reporters = {e["device"] for e in lost_entries}
    assert reporters <= {e["device"] for e in restored}, record["kinds"]
    assert all(int(e["duration_ms"]) > 0 for e in restored)  # type: ignore[call-overload]
    assert any(p.report()["stalls"] for p in call.principals) == bool(lost_entries)


@pytest.mark.parametrize("seconds", [1, 3, 10, 30, 35])
def test_a_cut_network_comes_back_within_2_s(call: LabCall, seconds: int) -> None:
    a = call.principals[0]
    call.lab.cut(a.host)
    time.sleep(seconds)  # the outage itself: the network stays cut this long
    call.lab.restore(a.host)
    back_at = time.monotonic()
    assert_back(call, back_at, f"{seconds} s cut")
    record = call.end()
    assert_recorded(call, record)
    assert all(p.report()["alarms"] == [] for p in call.principals)


@pytest.mark.parametrize("seconds", [10, 40])
def test_udp_cut_with_signaling_up_comes_back_within_2_s(call: LabCall, seconds: int) -> None:
    a = call.principals[0]
    call.lab.cut(a.host, udp_only=True)
    time.sleep(seconds)
    call.lab.restore(a.host)
    assert_back(call, time.monotonic(), f"{seconds} s UDP cut")
    record = call.end()
    assert_recorded(call, record)
    assert stalls(record, "link.lost")  # a cut this long stalls the media
    if seconds > 30:  # the old link's consent expired: repairs were offered meanwhile
        assert record["kinds"].count("signal.offer") > 1  # type: ignore[union-attr]


def test_an_endpoint_frozen_for_5_s_comes_back(call: LabCall) -> None:
    a = call.principals[0]
    os.kill(a.process.pid, signal.SIGSTOP)
    try:
        time.sleep(5)
    finally:
        os.kill(a.process.pid, signal.SIGCONT)
    assert_back(call, time.monotonic(), "SIGSTOP 5 s")
    record = call.end()
    assert_recorded(call, record)


@pytest.mark.parametrize("seconds", [5, 60])
def test_the_server_killed_and_restarted_changes_nothing_for_the_media(
        call: LabCall, seconds: int) -> None:
    counts = [p.frames()["video"] for p in call.principals]
    call.order("kill")
    killed = time.monotonic()
    time.sleep(seconds)
    # media went on without any server
    gaps = [p.video_times(killed) for p in call.principals]
    assert all(len(t) > 10 * seconds for t in gaps), [len(t) for t in gaps]
    back = call.order("restart")
    call.wait(lambda: all(p.report()["status"] for p in call.principals), "rejoined")
    for p, n in zip(call.principals, counts, strict=True):
        assert p.frames()["video"] > n
        assert max(p.report()["generations"].values()) == 1  # never renegotiated
    assert back > killed
    record = call.end()
    kinds = record["kinds"]
    assert "server.restarted" in kinds and kinds[-1] == "call.ended"  # type: ignore[index]
    assert stalls(record, "link.lost") == []  # the media never stopped


@pytest.mark.timeout(420)  # three minutes of call, and its setup and end
@pytest.mark.parametrize("call", [True], indirect=True)
def test_three_minutes_on_a_long_haul_path(call: LabCall) -> None:
    for p in call.principals:
        call.lab.impair(p.host, delay_ms=75, jitter_ms=10, loss=0.01, reorder=True)
    for p in call.principals:
        p.ask("reset-gaps")
    audio = [p.frames()["audio"] for p in call.principals]
    start = time.monotonic()
    time.sleep(180)
    elapsed = time.monotonic() - start
    raw, net = call.freezes()
    # no gap between decoded frames above 1 s that the path caused: a freeze counts less
    # the time the machine stalled either endpoint's event loop within it (the suite may
    # run on a busy machine; starvation has its own test, tests/test_demo_starved.py)
    assert max(net, default=0.0) <= 1.0, {"freezes": raw, "less stalls": net}
    for p, before in zip(call.principals, audio, strict=True):
        got = p.frames()["audio"] - before
        assert got >= 0.97 * 50 * elapsed, (got, elapsed)  # 20 ms Opus frames
    record = call.end()
    assert record["kinds"][-1] == "call.ended"  # type: ignore[index]

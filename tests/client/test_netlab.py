"""The lab network: hosts reach each other, cuts and impairments do what they say, and
nothing of a lab is left once it is closed (or once its owner died)."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from summitline import netns
from summitline.netlab import CHILD_GRACE_S, Host, Lab
from tests.client.netlab_peers import echo_server, http_getter, prober, sink, source

# --- driving them ------------------------------------------------------------------------


def ask(control: Connection, message: Any = None, within_s: float = 10.0) -> Any:
    if message is not None:
        control.send(message)
    assert control.poll(within_s), f"no answer within {within_s} s"
    return control.recv()


def start(lab: Lab, host: Host, target: Any, *args: Any) -> Connection:
    """Run ``target(conn, *args)`` in ``host``; the driver's end of ``conn``."""
    _, driver = lab.piped(host, target, *args)
    return driver


def reaches(control: Connection, kind: str, host: Host, within_s: float) -> bool:
    """Whether ``kind`` gets through to ``host`` within ``within_s`` (probing again and again)."""
    deadline = time.monotonic() + within_s
    while True:
        if ask(control, (kind, host.address, 0.5)):
            return True
        if time.monotonic() >= deadline:
            return False


def lab_namespaces(lab_id: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(lab_id + "-")]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a reparented child may wait a while to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- tests -------------------------------------------------------------------------------


def test_two_hosts_reach_each_other_and_pytest_stays_loopback_only() -> None:
    with Lab() as lab:
        a, b = lab.host("alice"), lab.host("bob", relayed=True)
        assert (a.address, b.address, b.gateway) == ("198.18.1.2", "198.18.2.2", "198.18.2.1")
        server = start(lab, b, echo_server)
        word, interfaces = ask(server)
        assert (word, sorted(interfaces)) == ("ready", ["lo", "tun0"])
        client = start(lab, a, prober)
        assert ask(client) == "ready"
        assert reaches(client, "udp", b, within_s=5)
        assert reaches(client, "tcp", b, within_s=5)
        assert netns.isolated(), netns.interfaces()


@pytest.mark.parametrize("relayed", [False, True], ids=["veth", "relayed"])
def test_cut_stops_udp_and_tcp_udp_only_spares_tcp_restore_brings_both(relayed: bool) -> None:
    with Lab() as lab:
        a, b = lab.host("alice"), lab.host("bob", relayed=relayed)
        server = start(lab, b, echo_server)
        assert ask(server)[0] == "ready"
        client = start(lab, a, prober)
        assert ask(client) == "ready"
        assert reaches(client, "udp", b, within_s=5) and reaches(client, "tcp", b, within_s=5)

        lab.cut(b)
        assert not ask(client, ("udp", b.address, 0.5))
        assert not ask(client, ("tcp", b.address, 0.5))

        lab.cut(b, udp_only=True)
        assert not ask(client, ("udp", b.address, 0.5))
        assert reaches(client, "tcp", b, within_s=5)

        lab.restore(b)
        assert reaches(client, "udp", b, within_s=5)
        assert reaches(client, "tcp", b, within_s=5)


def test_the_server_in_one_host_answers_an_endpoint_in_another(tmp_path: Path) -> None:
    with Lab() as lab:
        server, alice = lab.host("server"), lab.host("alice", relayed=True)
        serving = lab.popen(server, [sys.executable, "-m", "summitline", "serve",
                                     "--host", server.address, "--port", "8750",
                                     "--data", str(tmp_path / "server")])
        getter = start(lab, alice, http_getter)
        assert ask(getter) == "ready"
        nonce = f"http://{server.address}:8750/api/nonce"
        deadline = time.monotonic() + 20
        while (status := ask(getter, nonce)) != 200 and time.monotonic() < deadline:
            assert serving.poll() is None, "the server exited"
            time.sleep(0.1)  # not listening yet; nothing outside the server tells when it is
        assert status == 200
        lab.cut(alice)
        assert ask(getter, nonce) == 0
        lab.restore(alice)
        assert ask(getter, nonce) == 200


class Stream:
    """A source in one host and a sink in another: stamped datagrams, 10 every 10 ms."""

    def __init__(self, lab: Lab, sender: Host, receiver: Host) -> None:
        self.sink = start(lab, receiver, sink)
        assert ask(self.sink) == "ready"
        self.source = start(lab, sender, source, receiver.address)
        assert ask(self.source) == "ready"

    def measure(self, count: int) -> list[tuple[int, float]]:
        """Send ``count`` datagrams; the arrivals as (sequence, one-way ms)."""
        self.sink.send(("collect", 0.5, count / 1000 + 10))
        assert ask(self.source, (count, 10, 0.010), within_s=count / 1000 + 10) == "sent"
        arrivals: list[tuple[int, float]] = ask(self.sink, within_s=15)
        return arrivals


def inversions(arrivals: list[tuple[int, float]]) -> int:
    """Packets that arrived after one sent later than them."""
    highest, late = -1, 0
    for seq, _ in arrivals:
        if seq < highest:
            late += 1
        highest = max(highest, seq)
    return late


def test_impair_delays_loses_and_reorders_as_the_profile_says() -> None:
    with Lab() as lab:
        far, near = lab.host("far", relayed=True), lab.host("near")
        stream = Stream(lab, far, near)
        lab.impair(far, delay_ms=150, jitter_ms=20, loss=0.02, reorder=True)
        count = 3000
        arrivals = stream.measure(count)
        delays = [ms for _, ms in arrivals]
        assert 145 <= statistics.median(delays) <= 160, statistics.median(delays)
        assert min(delays) >= 129.5, min(delays)  # never earlier than delay - jitter
        lost = 1 - len({seq for seq, _ in arrivals}) / count
        assert 0.01 <= lost <= 0.032, lost  # 2 % of 3000: 60 +- 7.7 (1 sigma)
        assert inversions(arrivals) > count // 10
        stats = lab.relay_stats(far)
        assert stats.forwarded + stats.lost == count, stats  # every packet met the profile
        assert stats.late_ms_max < 50, stats

        lab.impair(far, delay_ms=150, jitter_ms=20, loss=0.02, reorder=False)
        arrivals = stream.measure(1000)
        assert inversions(arrivals) == 0
        assert statistics.median(ms for _, ms in arrivals) >= 145

        lab.impair(far, None)
        arrivals = stream.measure(300)
        assert len(arrivals) == 300 and inversions(arrivals) == 0
        assert statistics.median(ms for _, ms in arrivals) < 20


def test_a_target_must_be_importable_by_name() -> None:
    with Lab() as lab, pytest.raises(TypeError, match="module-level"):
        lab.process(lab.host("alice"), lambda: None)


async def test_nothing_of_a_lab_is_left_after_it_closes() -> None:
    with Lab() as lab:
        a, b = lab.host("alice"), lab.host("bob", relayed=True)
        server = start(lab, b, echo_server)
        assert ask(server)[0] == "ready"
        sleeper = lab.popen(a, ["sleep", "600"])
        relays = processes_mentioning(lab.id)
        assert relays, "a relayed host has a relay process"
        assert sorted(lab_namespaces(lab.id)) == sorted(lab.namespaces())
    assert lab_namespaces(lab.id) == []
    assert sleeper.returncode is not None
    assert not any(running(pid) for pid in relays)
    assert processes_mentioning(lab.id) == []


def test_a_keyboard_interrupt_still_removes_the_lab() -> None:
    with pytest.raises(KeyboardInterrupt), Lab() as lab:
        lab.host("alice", relayed=True)
        lab.host("bob")
        raise KeyboardInterrupt
    assert lab_namespaces(lab.id) == []
    assert processes_mentioning(lab.id) == []


ORPHAN = """
import sys
from summitline.netlab import Lab
lab = Lab().__enter__()
lab.host("alice", relayed=True)
sleeper = lab.popen(lab.host("bob"), ["sleep", "600"])
print(lab.id, sleeper.pid, flush=True)
sys.stdin.read()
"""


def test_a_new_lab_sweeps_the_labs_of_dead_processes() -> None:
    owner = subprocess.Popen([sys.executable, "-c", ORPHAN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        lab_id, sleeper = owner.stdout.readline().split()
        assert len(lab_namespaces(lab_id)) == 3
        with Lab() as alive:
            assert len(lab_namespaces(lab_id)) == 3, "a live owner's lab is left alone"
            owner.send_signal(signal.SIGKILL)
            owner.wait(5)
            with Lab() as fresh:
                assert lab_namespaces(lab_id) == []
                assert not running(int(sleeper))
                assert processes_mentioning(lab_id) == []
                assert lab_namespaces(alive.id) == [alive.router]
                assert lab_namespaces(fresh.id) == [fresh.router]
    finally:
        owner.kill()
        owner.wait(5)


STUBBORN = """
import sys
from summitline.netlab import Lab
with Lab() as lab:
    lab.host("alice", relayed=True)
    lab.popen(lab.host("bob"), ["sh", "-c", "trap '' TERM; sleep 600 & echo $!; wait"])
    print(lab.id, flush=True)
    sys.stdin.read()
"""


def test_ctrl_c_during_teardown_waits_for_it_and_children_deaf_to_sigterm_are_killed() -> None:
    owner = subprocess.Popen([sys.executable, "-c", STUBBORN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        lines = sorted(owner.stdout.readline().strip() for _ in range(2))  # in either order
        sleeper, lab_id = int(lines[0]), lines[1]
        owner.send_signal(signal.SIGINT)  # teardown starts; sh ignores the SIGTERM
        time.sleep(0.5)  # let the teardown start: a second Ctrl-C must not cut it short
        owner.send_signal(signal.SIGINT)
        assert owner.wait(CHILD_GRACE_S + 10) != 0
        assert lab_namespaces(lab_id) == []
        assert not running(sleeper)
    finally:
        owner.kill()
        owner.wait(5)


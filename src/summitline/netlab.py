"""A network you can break in tests: hosts in namespaces of their own, joined by a router.

A ``Lab`` makes a *router* network namespace and, on demand, named *hosts*: each host
is a network namespace of its own, joined to the router by a veth pair (or, for a
``relayed`` host, by a userspace relay), with one address and a default route via the
router. Nothing in a lab can reach the namespace of the test or anything beyond the
machine: the namespaces have no other interfaces.

    host N:  198.18.N.2/24 on eth0 (tun0 if relayed), default via 198.18.N.1
    router:  198.18.N.1/24 on hN (tN if relayed), IPv4 forwarding on, IPv6 off everywhere

Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking). Namespace names are
``sl-PID-XXXX-HOST`` and ``sl-PID-XXXX-router``: unique per lab, so parallel runs do
not collide. Leaving the ``with`` block (normally, on an exception or on
KeyboardInterrupt, which waits until the teardown is done) stops every process the lab
started, then removes its namespaces, veths and relays. It takes well under a second
unless a child ignores SIGTERM; every step is bounded (``CHILD_GRACE_S``,
``KILL_WAIT_S``, ``COMMAND_TIMEOUT_S`` per ``ip`` call). Starting a lab first removes
the labs of processes that died without cleaning up (``sweep_stale``).

Breaking links, per host, instantly and reversibly:

* ``lab.cut(host)`` / ``lab.cut(host, udp_only=True)`` / ``lab.restore(host)``:
  nftables sets in the router namespace drop everything (or UDP only) forwarded to
  or from the host. Works for veth and relayed hosts alike.
* ``lab.impair(host, delay_ms=150, jitter_ms=20, loss=0.02, reorder=True)`` on a host
  made with ``lab.host(name, relayed=True)``, and ``lab.impair(host, None)`` to clear.
  A relayed host is joined to the router by two TUN devices, one in each namespace,
  and one relay process shovels packets between them: each packet, in each direction,
  is delayed by ``delay_ms`` plus a uniform jitter in ``[-jitter_ms, +jitter_ms]`` and
  lost with probability ``loss``; with ``reorder=False`` no packet leaves before the
  one that came before it, so at a few hundred packets/s most delays sit near
  ``delay_ms + jitter_ms`` (median 161 ms at 400 packets/s for 150 +- 20 ms). A path
  between two relayed hosts crosses both profiles. The relay runs at real-time priority
  and costs about 3-5 % of a core at 400 packets/s of 1.1 kB; ``lab.relay_stats(host)``
  says how late, at most, it let a packet leave (under 1 ms at a load of 11 on 2
  cores). (This kernel has no netem qdisc, hence the relay.)

Running things in a host:

* ``lab.popen(host, argv, **popen_kwargs)``: ``subprocess.Popen`` of
  ``ip netns exec NETNS argv...``.
* ``lab.process(host, target, *args)``: a started ``multiprocessing`` process (spawn)
  that enters the host's namespace with setns(2) first, then imports ``target``'s
  module and calls ``target(*args)``. ``target`` must be a module-level function (of
  an importable module, or of a script run as ``__main__``, which spawn re-imports
  before the setns: keep its module level free of sockets and threads). ``args`` may
  hold ``multiprocessing.Pipe()`` ends.
* ``lab.piped(host, target, *args) -> (process, conn)``: the same, calling
  ``target(child_conn, *args)``, for a driver to command what runs in the host.

Everything the lab started is stopped when it closes (SIGTERM, then SIGKILL after
``CHILD_GRACE_S``), and so is anything else left in its namespaces.

An aiortc endpoint in a host gathers host candidates on its address only with
``IceSettings(host_addresses=(host.address,))`` (client/ice.py).

The test process stays where it is (tests/conftest.py keeps pytest in a namespace with
only loopback); it talks to what runs in the lab through pipes. Every method blocks
for some milliseconds (it runs ``ip``/``nft``); from async code call it as is, or in
``asyncio.to_thread`` when the event loop must not stall.

Example::

    with Lab() as lab:
        server = lab.host("server")
        alice = lab.host("alice", relayed=True)
        lab.popen(server, ["python3", "-m", "summitline", "serve",
                           "--host", server.address, "--port", "8443", "--data", str(tmp)])
        endpoint, control = lab.piped(alice, run_endpoint, f"http://{server.address}:8443")
        control.send("join")  # run_endpoint(conn, url) reads its orders from conn
        lab.impair(alice, delay_ms=150, jitter_ms=20, loss=0.02, reorder=True)
        lab.cut(alice, udp_only=True)
        ...
        lab.restore(alice)
        lab.impair(alice, None)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import heapq
import importlib
import json
import multiprocessing
import os
import random
import re
import secrets
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType, TracebackType
from typing import Any

NETNS_DIR = "/run/netns"  # where `ip netns` keeps its named namespaces
LOCK_DIR = "/run/summitline-netlab"  # one flock-held file per live lab
PREFIX = "sl-"
CLONE_NEWNET = 0x40000000

COMMAND_TIMEOUT_S = 10.0  # one ip/nft call; they take milliseconds unless the machine is stuck
RELAY_READY_S = 10.0  # a relay is a fresh Python process: import + two TUN opens
CHILD_GRACE_S = 3.0  # SIGTERM to SIGKILL for what the lab started
KILL_WAIT_S = 1.0  # after SIGKILL, how long to wait for the kernel to reap
MAX_HOSTS = 254  # host N is 198.18.N.2

_HOST_NAME = re.compile(r"[a-z][a-z0-9]{0,14}")
_spawn = multiprocessing.get_context("spawn")


class LabError(RuntimeError):
    """A namespace, link, rule or relay of the lab could not be made or changed."""


@dataclass(frozen=True)
class Host:
    name: str
    netns: str  # the `ip netns` name
    address: str  # 198.18.N.2
    gateway: str  # 198.18.N.1, the router's side
    interface: str  # inside the host: eth0, or tun0 if relayed
    relayed: bool


@dataclass(frozen=True)
class Impairment:
    """What a relay does to each packet, in each direction."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform in [-jitter_ms, +jitter_ms], never below zero delay
    loss: float = 0.0  # probability that a packet is dropped
    reorder: bool = False  # False: a packet never leaves before the one before it

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss is a probability in [0, 1)")


CLEAN = Impairment()


# --- entering a namespace -------------------------------------------------------------


def enter(netns: str) -> None:
    """Move the calling thread into the named network namespace (root only).

    Sockets and threads made afterwards live there; call it before starting threads.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _run_in(netns: str, module: str, qualname: str, args: tuple[object, ...]) -> None:
    """The child's first step: setns, and only then import the target's module."""
    enter(netns)
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    target(*args)


# --- commands ----------------------------------------------------------------------------


def _run(argv: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: no answer in {COMMAND_TIMEOUT_S} s") from exc
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _ip_batch(netns: str, commands: Sequence[str]) -> None:
    _run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(commands) + "\n")


def _in_ns(netns: str, argv: Sequence[str], stdin: str | None = None) -> str:
    return _run(["ip", "netns", "exec", netns, *argv], stdin=stdin)


def _pids_in(netns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def _kill_all_in(netns: str) -> None:
    for pid in _pids_in(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _delete_netns(netns: str) -> None:
    _kill_all_in(netns)
    _run(["ip", "netns", "del", netns], check=False)


def _disable_ipv6(netns: str, forward: bool = False) -> None:
    settings = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
    if forward:
        settings.append("net.ipv4.ip_forward=1")
    _in_ns(netns, ["sysctl", "-q", "-w", *settings])


# --- stale labs --------------------------------------------------------------------------


def _lab_of(netns: str) -> str | None:
    """``sl-PID-XXXX-host`` -> ``sl-PID-XXXX``."""
    parts = netns.split("-")
    if len(parts) < 4 or not netns.startswith(PREFIX) or not parts[1].isdigit():
        return None
    return "-".join(parts[:3])


def _lock_path(lab_id: str) -> str:
    return os.path.join(LOCK_DIR, lab_id + ".lock")


def sweep_stale() -> list[str]:
    """Remove the namespaces (and their processes) of labs whose owner is gone.

    A live lab holds an flock on its lock file; a lab whose file is missing or can be
    locked belongs to a process that died. Returns the namespaces removed.
    """
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        names = []
    labs: dict[str, list[str]] = {}
    for name in names:
        lab_id = _lab_of(name)
        if lab_id is not None:
            labs.setdefault(lab_id, []).append(name)
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(LOCK_DIR):
            if entry.endswith(".lock") and not entry.startswith("."):
                labs.setdefault(entry.removesuffix(".lock"), [])
    removed: list[str] = []
    for lab_id, netnses in labs.items():
        try:
            fd = os.open(_lock_path(lab_id), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive
            for netns in sorted(netnses, key=lambda n: n.endswith("-router")):
                _delete_netns(netns)
                removed.append(netns)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_lock_path(lab_id))
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def _take_lock(lab_id: str) -> int:
    """A lock file that appears already locked, so a sweep never sees it unlocked."""
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    temporary = os.path.join(LOCK_DIR, f".{lab_id}.tmp")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(temporary, _lock_path(lab_id))
    return fd


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C until teardown is done, then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
    if received:
        raise KeyboardInterrupt


# --- the lab -----------------------------------------------------------------------------


class Lab:
    """A router namespace and hosts around it; a context manager. See the module doc."""

    def __init__(self) -> None:
        self.id = f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        self.router = f"{self.id}-router"
        self._hosts: dict[str, Host] = {}
        self._relays: dict[str, _RelayHandle] = {}
        self._cuts: dict[str, str] = {}  # host name -> nft set it is in
        self._popens: list[subprocess.Popen[Any]] = []
        self._processes: list[BaseProcess] = []
        self._lock_fd = -1
        self._open = False

    # lifetime

    def __enter__(self) -> Lab:
        if self._lock_fd >= 0:
            raise LabError("a Lab is entered once; make a new one")
        sweep_stale()
        self._lock_fd = _take_lock(self.id)
        self._open = True
        atexit.register(self.close)
        try:
            self._make_router()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop what the lab started and remove its namespaces (idempotent, bounded)."""
        if not self._open:
            return
        self._open = False
        atexit.unregister(self.close)
        with _interrupts_deferred():
            self._stop_children()
            for relay in self._relays.values():
                relay.close()
            for netns in self.namespaces():
                _delete_netns(netns)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_lock_path(self.id))
            os.close(self._lock_fd)

    def namespaces(self) -> list[str]:
        """The lab's namespaces, hosts first and the router last."""
        return [h.netns for h in self._hosts.values()] + [self.router]

    # hosts

    def host(self, name: str, *, relayed: bool = False) -> Host:
        """The host called ``name``, made on first use (``relayed``: impairable link)."""
        self._check_open()
        known = self._hosts.get(name)
        if known is not None:
            if known.relayed != relayed:
                raise LabError(f"host {name} exists with relayed={known.relayed}")
            return known
        if not _HOST_NAME.fullmatch(name) or name == "router":
            raise ValueError(f"host name {name!r}: lowercase letters and digits, at most 15, "
                             "starting with a letter, not 'router'")
        index = len(self._hosts) + 1
        if index > MAX_HOSTS:
            raise LabError(f"a lab holds at most {MAX_HOSTS} hosts")
        host = Host(name=name, netns=f"{self.id}-{name}", address=f"198.18.{index}.2",
                    gateway=f"198.18.{index}.1", interface="tun0" if relayed else "eth0",
                    relayed=relayed)
        self._hosts[name] = host
        _run(["ip", "netns", "add", host.netns])
        _disable_ipv6(host.netns)
        outside = f"t{index}" if relayed else f"h{index}"
        if relayed:
            self._relays[name] = _RelayHandle(host.netns, host.interface, self.router, outside)
        else:
            _run(["ip", "-n", self.router, "link", "add", outside, "type", "veth",
                  "peer", "name", host.interface, "netns", host.netns])
        _ip_batch(self.router, [f"addr add {host.gateway}/24 dev {outside}",
                                f"link set {outside} up"])
        _ip_batch(host.netns, ["link set lo up",
                               f"addr add {host.address}/24 dev {host.interface}",
                               f"link set {host.interface} up",
                               f"route add default via {host.gateway}"])
        return host

    def _make_router(self) -> None:
        _run(["ip", "netns", "add", self.router])
        _disable_ipv6(self.router, forward=True)
        _ip_batch(self.router, ["link set lo up"])
        _in_ns(self.router, ["nft", "-f", "-"], stdin=_RULESET)

    def _resolve(self, host: Host | str) -> Host:
        self._check_open()
        name = host if isinstance(host, str) else host.name
        try:
            return self._hosts[name]
        except KeyError:
            raise LabError(f"no host {name} in this lab") from None

    def _check_open(self) -> None:
        if not self._open:
            raise LabError("the lab is not open: use it inside 'with Lab() as lab:'")

    # running things

    def popen(self, host: Host | str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``argv`` inside the host's namespace; stopped when the lab closes."""
        h = self._resolve(host)
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, *argv], **kwargs)
        self._popens.append(proc)
        return proc

    def process(self, host: Host | str, target: Callable[..., object],
                *args: object) -> BaseProcess:
        """A started spawn process running ``target(*args)`` inside the host's namespace."""
        h = self._resolve(host)
        module = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", "<none>")
        if module is None or "<" in qualname:
            raise TypeError(f"target {target!r} must be a module-level function: "
                            "the child imports it by name")
        proc = _spawn.Process(target=_run_in, args=(h.netns, module, qualname, args),
                              name=f"{h.name}:{qualname}")
        proc.start()
        self._processes.append(proc)
        return proc

    def piped(self, host: Host | str, target: Callable[..., object],
              *args: object) -> tuple[BaseProcess, Connection]:
        """``process`` calling ``target(conn, *args)``; the driver's end of ``conn`` with it."""
        driver, child = _spawn.Pipe()
        try:
            proc = self.process(host, target, child, *args)
        finally:
            child.close()  # the child holds its own copy; EOF reaches each side
        return proc, driver

    def _stop_children(self) -> None:
        popens = [p for p in self._popens if p.poll() is None]
        processes = [p for p in self._processes if p.is_alive()]
        for p in popens:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for q in processes:
            q.terminate()
        deadline = time.monotonic() + CHILD_GRACE_S
        for p in popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for q in processes:
            q.join(max(0.0, deadline - time.monotonic()))
        for p in popens:
            if p.poll() is None:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(KILL_WAIT_S)
        for q in processes:
            if q.is_alive():
                q.kill()
                q.join(KILL_WAIT_S)

    # breaking links

    def cut(self, host: Host | str, udp_only: bool = False) -> None:
        """Drop everything (or only UDP) the router forwards to or from the host."""
        h = self._resolve(host)
        self._set_cut(h, "cut_udp" if udp_only else "cut_all")

    def restore(self, host: Host | str) -> None:
        """Undo ``cut``."""
        self._set_cut(self._resolve(host), None)

    def _set_cut(self, h: Host, wanted: str | None) -> None:
        current = self._cuts.get(h.name)
        if current == wanted:
            return
        script = []
        if current is not None:
            script.append(f"delete element inet netlab {current} {{ {h.address} }}")
        if wanted is not None:
            script.append(f"add element inet netlab {wanted} {{ {h.address} }}")
        _in_ns(self.router, ["nft", "-f", "-"], stdin="\n".join(script) + "\n")
        if wanted is None:
            self._cuts.pop(h.name, None)
        else:
            self._cuts[h.name] = wanted

    def impair(self, host: Host | str, delay_ms: float | None = 150.0, jitter_ms: float = 20.0,
               loss: float = 0.02, reorder: bool = True) -> None:
        """Give a relayed host's link a profile, each direction; ``delay_ms=None`` clears it.

        The defaults are the long-haul profile: 150 ms +- 20 ms, 2 % loss, reordering.
        """
        relay = self._relay(self._resolve(host))
        relay.set(CLEAN if delay_ms is None else Impairment(delay_ms, jitter_ms, loss, reorder))

    def relay_stats(self, host: Host | str) -> RelayStats:
        """Counters of a relayed host's relay: packets forwarded, lost, how late at most."""
        return self._relay(self._resolve(host)).stats()

    def _relay(self, h: Host) -> _RelayHandle:
        relay = self._relays.get(h.name)
        if relay is None:
            raise LabError(f"host {h.name} is not relayed: make it with "
                           f"lab.host({h.name!r}, relayed=True)")
        return relay


_RULESET = """\
table inet netlab {
    set cut_all { type ipv4_addr; }
    set cut_udp { type ipv4_addr; }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip saddr @cut_all drop
        ip daddr @cut_all drop
        ip saddr @cut_udp meta l4proto udp drop
        ip daddr @cut_udp meta l4proto udp drop
    }
}
"""


# --- the relay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayStats:
    """What a relay did since it started, both directions together.

    ``late_ms_max`` says how faithful the profile was: how much later than due, at
    most, a packet left (the relay starved of CPU shows here, not as the profile).
    """

    forwarded: int
    lost: int  # dropped by the profile's loss
    late_ms_max: float
    late_ms_mean: float


class _RelayHandle:
    """The lab's end of one relay process: one JSON line per command, one per answer."""

    def __init__(self, host_ns: str, host_if: str, router_ns: str, router_if: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "summitline.netlab", "relay",
             host_ns, host_if, router_ns, router_if],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self._answer(RELAY_READY_S)
        except BaseException:
            self.close()
            raise

    def set(self, profile: Impairment) -> None:
        self._ask({"profile": asdict(profile)})

    def stats(self) -> RelayStats:
        return RelayStats(**self._ask({"stats": None}))

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise LabError(f"relay {self.proc.pid} is gone") from exc
        return self._answer(COMMAND_TIMEOUT_S)

    def _answer(self, within_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], within_s)
        line = self.proc.stdout.readline() if ready else b""
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:
            raise LabError(f"relay {self.proc.pid}: no answer within {within_s} s "
                           f"(exit status {self.proc.poll()})") from None
        return answer

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            self.proc.wait(KILL_WAIT_S)  # EOF on its control pipe ends it
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_WAIT_S)


TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_BATCH = 64  # packets read from one TUN before the queue is served again
MAX_PACKET = 65535
# The relay stands for the network: on a loaded machine, endpoints under test must not
# starve it (at nice -5 and a load of 12 on 2 cores it left packets up to 424 ms late).
# It takes about 3 % of a core, so the lowest real-time priority costs others nothing;
# the kernel's real-time throttling bounds it should it ever spin.
RELAY_PRIORITY = 1  # SCHED_FIFO


def _open_tun(name: str) -> int:
    """A TUN device in the current namespace; it disappears when the fd is closed."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class _Shovel:
    """Moves packets between two TUN fds through one timer heap, per the profile."""

    def __init__(self, a: int, b: int, control: int) -> None:
        self.peer = {a: b, b: a}
        self.control = control
        self.profile = CLEAN
        self.queue: list[tuple[float, int, int, bytes]] = []  # (due, seq, out fd, packet)
        self.last_due = {a: 0.0, b: 0.0}  # per out fd, for reorder=False
        self.seq = 0
        self.rng = random.Random()
        self.pending = b""
        self.forwarded = self.lost = 0
        self.late_max = self.late_sum = 0.0

    def run(self) -> None:
        fds = [*self.peer, self.control]
        while True:
            timeout = None
            if self.queue:
                timeout = max(0.0, self.queue[0][0] - time.monotonic())
            readable, _, _ = select.select(fds, [], [], timeout)
            for fd in readable:
                if fd == self.control:
                    if not self._command():
                        return
                else:
                    self._take(fd)
            self._release()

    def _command(self) -> bool:
        data = os.read(self.control, 4096)
        if not data:
            return False
        self.pending += data
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            command = json.loads(line)
            if "profile" in command:
                self.profile = Impairment(**command["profile"])
                answer: dict[str, Any] = {}
            else:
                answer = asdict(RelayStats(
                    self.forwarded, self.lost, self.late_max * 1000.0,
                    self.late_sum * 1000.0 / max(1, self.forwarded)))
            os.write(1, json.dumps(answer).encode() + b"\n")
        return True

    def _take(self, fd: int) -> None:
        p = self.profile
        out = self.peer[fd]
        now = time.monotonic()
        for _ in range(READ_BATCH):
            try:
                packet = os.read(fd, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as exc:  # the device went away: so did the lab; never spin
                raise SystemExit(f"relay: {exc}") from None
            if p.loss and self.rng.random() < p.loss:
                self.lost += 1
                continue
            delay = p.delay_ms
            if p.jitter_ms:
                delay = max(0.0, delay + self.rng.uniform(-p.jitter_ms, p.jitter_ms))
            due = now + delay / 1000.0
            if not p.reorder:
                due = max(due, self.last_due[out])
                self.last_due[out] = due
            heapq.heappush(self.queue, (due, self.seq, out, packet))
            self.seq += 1

    def _release(self) -> None:
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            due, _, out, packet = heapq.heappop(self.queue)
            with contextlib.suppress(OSError):
                os.write(out, packet)
            self.forwarded += 1
            self.late_sum += now - due
            self.late_max = max(self.late_max, now - due)


def _relay_main(host_ns: str, host_if: str, router_ns: str, router_if: str) -> None:
    with contextlib.suppress(PermissionError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RELAY_PRIORITY))
    enter(host_ns)
    inside = _open_tun(host_if)
    enter(router_ns)
    outside = _open_tun(router_if)
    os.write(1, b"{}\n")  # ready
    _Shovel(inside, outside, control=0).run()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "relay":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the lab ends it by closing stdin
        _relay_main(*sys.argv[2:])
    else:
        sys.exit("usage: python -m summitline.netlab relay HOST_NS HOST_IF ROUTER_NS ROUTER_IF")

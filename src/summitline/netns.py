"""Isolating a test or benchmark process in a fresh network namespace.

Tests and benchmarks open network paths only inside a network namespace of their own
with nothing but loopback, so that no packet can leave the machine, whatever a
library does by default. ``isolate()`` moves the calling process there (it needs
root, or CAP_SYS_ADMIN) before any thread is started; child processes inherit it.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess

CLONE_NEWNET = 0x40000000


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def isolated() -> bool:
    return interfaces() == ["lo"]


def isolate() -> None:
    """Enter a fresh network namespace with only loopback (up), unless already in one."""
    if not isolated():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter a fresh network namespace ({os.strerror(err)}): "
                          "run as root, or under 'unshare --net --map-root-user'")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if not isolated():
        raise RuntimeError(f"network namespace still has interfaces {interfaces()}")

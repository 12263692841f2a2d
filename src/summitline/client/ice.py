"""ICE settings of the Python endpoint.

Two facts of aiortc/aioice shape this module:

* aiortc falls back to a public STUN server when ``iceServers`` is not given. A
  summitline endpoint never contacts anything but the servers of its deployment, so
  the fallback is removed on import, and ``IceSettings.configuration()`` always passes
  ``iceServers`` explicitly.
* aioice gathers host candidates on every interface except loopback. For tests and
  local demos, ``IceSettings(host_addresses=["127.0.0.1"])`` points host candidates at
  exactly the given addresses (loopback, or veth addresses of test namespaces). This
  is the documented test setting; production endpoints leave it unset. It applies to
  the whole process, as aioice reads it from a module function.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy
from aiortc.rtcicetransport import RTCIceGatherer

_gather_all = aioice.ice.get_host_addresses
LOOPBACK = ("127.0.0.1",)


def _no_default_servers(cls: type) -> list[RTCIceServer]:
    return []


setattr(RTCIceGatherer, "getDefaultIceServers", classmethod(_no_default_servers))  # noqa: B010


@dataclass(frozen=True)
class IceSettings:
    servers: tuple[RTCIceServer, ...] = ()  # STUN/TURN of the deployment only
    host_addresses: tuple[str, ...] | None = None  # None: every non-loopback interface
    relay_only: bool = False

    def with_servers(self, servers: list[dict[str, Any]]) -> IceSettings:
        """These settings plus the servers the signaling server handed out (``welcome``)."""
        extra = tuple(RTCIceServer(urls=s["urls"], username=s.get("username"),
                                   credential=s.get("credential")) for s in servers)
        return replace(self, servers=self.servers + extra)

    def configuration(self) -> RTCConfiguration:
        self.apply_host_addresses()
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=list(self.servers), iceTransportPolicy=policy)

    def apply_host_addresses(self) -> None:
        if self.host_addresses is None:
            aioice.ice.get_host_addresses = _gather_all
            return
        chosen = list(self.host_addresses)

        def only_these(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

        aioice.ice.get_host_addresses = only_these


def loopback() -> IceSettings:
    """Host candidates on 127.0.0.1 and no STUN/TURN: tests and the local demo."""
    return IceSettings(host_addresses=LOOPBACK)

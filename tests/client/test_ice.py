"""The Python endpoint never falls back to a public STUN server, and its loopback
setting gathers host candidates on 127.0.0.1 only."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtcicetransport import RTCIceGatherer

from summitline.client.ice import IceSettings, loopback


def test_there_is_no_default_ice_server() -> None:
    assert RTCIceGatherer.getDefaultIceServers() == []


async def test_loopback_setting_gathers_only_loopback_host_candidates() -> None:
    pc = RTCPeerConnection(loopback().configuration())
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    candidates = [line for line in pc.localDescription.sdp.splitlines()
                  if line.startswith("a=candidate:")]
    assert candidates and all(" 127.0.0.1 " in c and " typ host" in c for c in candidates)
    await pc.close()
    IceSettings().apply_host_addresses()  # back to every interface for other tests

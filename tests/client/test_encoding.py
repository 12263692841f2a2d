"""Each endpoint of a mesh encodes once per kind (client/encoding.py): every link's
sender packs the one encoding and never encodes itself, and a keyframe request from any
link's receiver reaches the shared encoder."""

from __future__ import annotations

import asyncio

import httpx

from summitline.client.briefing import provision_briefing
from summitline.client.encoding import EncodedCopy
from summitline.client.ice import loopback
from summitline.client.session import CallSession
from summitline.core.roles import MediaKind
from tests.client.test_session import WAIT_S, leave_all


async def test_every_link_of_a_mesh_sends_one_shared_encoding(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 3)
    sessions = [CallSession(ws_url, b.call, side.identity(), ice=loopback())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]

        def from_everyone(s: CallSession) -> bool:
            return all(s.frames_from(d, k) > 20 for d in devices if d != s.device
                       for k in MediaKind)
        await asyncio.wait_for(asyncio.gather(*(s.wait_for(lambda s=s: from_everyone(s))
                                                for s in sessions)), WAIT_S)
        for s in sessions:
            video = s.source.encoders[MediaKind.VIDEO]
            audio = s.source.encoders[MediaKind.AUDIO]
            assert video.keyframes >= 1 and audio.encoded > 0
            senders = [sender for link in s.links.values() for sender in link.pc.getSenders()]
            assert len(senders) == 2 * (len(sessions) - 1)
            for sender in senders:
                assert isinstance(sender.track, EncodedCopy) and sender.track.shared
                # aiortc's own encoder of this sender only packed, never encoded: no VP8
                # codec made; no Opus packet out
                packer = sender._RTCRtpSender__encoder
                assert (packer.codec is None if sender.kind == "video"
                        else packer.first_packet_pts is None)
            # one encode per frame of the source, not one per link
            produced = s.source.video_track._count  # type: ignore[union-attr]
            assert video.encoded <= produced
            # a PLI on any link (aiortc's sender calls this) asks the shared encoder
            before = video.requests
            next(x for x in senders if x.kind == "video")._send_keyframe()
            assert video.requests == before + 1
            keyframes = video.keyframes
            await asyncio.wait_for(s.wait_for(lambda v=video, k=keyframes: v.keyframes > k),
                                   WAIT_S)
    finally:
        await leave_all(sessions, tasks)

"""Briefings through a real Janus VideoRoom (Debian's ``janus``, configured by
deploy/janus/), every frame encrypted end to end (docs/protocol.md 5.12): the Python
principals each decode every other's audio and video from Janus's feeds, with no link
between endpoints; what Janus forwards does not decode without the keys."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from summitline.client.briefing import Briefing, provision_briefing
from summitline.client.framecrypt import open_frames
from summitline.client.ice import loopback
from summitline.client.media import DEFAULT_HEIGHT, DEFAULT_WIDTH, TONE_HZ, MediaSource
from summitline.client.session import CallSession, Identity
from summitline.client.sfu import RETRY_FIRST_S, RETRY_MAX_S, retry_delay
from summitline.core.roles import MediaKind, Role
from summitline.crypto.framekeys import KINDS
from summitline.crypto.frames import FrameError, FrameOpener, key_id_of
from summitline.crypto.keys import PrivateKey
from summitline.server.app import Settings
from summitline.server.hub import Hub
from summitline.server.janusapi import JanusApi, JanusSession
from summitline.server.run import OpenWebSockets, config, running, serving
from summitline.server.sfu import VIDEOROOM, SfuBroker
from tests.client.test_session import WAIT_S, leave_all, until
from tests.janus import Janus, janus, viewer_ice

FRAMES = 10  # of each kind from each other principal


@dataclass
class Through:
    janus: Janus
    base: str
    ws: str
    http: httpx.AsyncClient
    hub: Hub  # the server's

    @property
    def sfu(self) -> SfuBroker:
        assert self.hub.sfu is not None
        return self.hub.sfu


@pytest.fixture
async def through(tmp_path: Path) -> AsyncIterator[Through]:
    async with janus(tmp_path / "janus") as j:
        settings = Settings(data_dir=tmp_path / "server", janus_url=j.url,
                            janus_api_secret=j.api_secret, janus_admin_key=j.admin_key)
        cfg = config(settings, "127.0.0.1", 0, "warning")
        assert isinstance(cfg.app, OpenWebSockets)
        app = cfg.app.app
        async with serving(cfg) as base, httpx.AsyncClient(base_url=base) as http:
            yield Through(j, base, base.replace("http", "ws", 1) + "/ws", http,
                          app.state.hub)  # type: ignore[attr-defined]


async def briefing(t: Through, size: int = 3) -> tuple[Briefing, list[CallSession],
                                                       list[asyncio.Task[None]]]:
    """A briefing of ``size`` Python principals whose plan asks for the SFU, joined."""
    b = await provision_briefing(t.http, size, sfu_above=0)
    sessions = [CallSession(t.ws, b.call, side.identity(), ice=viewer_ice())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
    except BaseException:
        await leave_all(sessions, tasks)
        raise
    return b, sessions, tasks


def from_everyone(s: CallSession, devices: list[str], n: int = FRAMES) -> bool:
    return all(s.frames_from(d, k) > n for d in devices if d != s.device for k in MediaKind)


async def everyone_hears_everyone(sessions: list[CallSession], devices: list[str]) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(
            s.wait_for(lambda s=s: from_everyone(s, devices)) for s in sessions)), WAIT_S)
    except TimeoutError:
        pytest.fail("frames " + str([{d[:6]: [s.frames_from(d, k) for k in MediaKind]
                                      for d in devices} for s in sessions]) + ", alarms "
                    + str([s.alarms for s in sessions]) + ", errors "
                    + str([s.errors for s in sessions]))


async def test_three_principals_hear_and_see_each_other_through_janus_only(
        through: Through) -> None:
    b, sessions, tasks = await briefing(through)
    try:
        assert all(s.sfu is not None for s in sessions)  # welcome.sfu, and the plan wants it
        assert all(s.crypt is not None for s in sessions)  # frames encrypted, forced on
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        for s in sessions:
            assert s.sfu is not None
            # through Janus only: no link between endpoints, no offer or answer to one
            assert s._peers == {} and s.links == {}
            assert not [m for m in s.inbox if m["type"] in ("offer", "answer", "candidate")]
            assert {link.remote for link in s.sfu.feeds.values()} == set(devices) - {s.device}
            assert s.alarms == []
        # what each shows of the others: their feeds decode
        await until(sessions, lambda s: all(s.status.get(d, ("", 0))[0] == "ok"
                                            for d in devices if d != s.device))
        room = through.sfu.rooms[b.call]
        assert set(room.publishers) == set(devices)
        assert len(room.feeds) == len(devices) * (len(devices) - 1)
        await b.host.operator.control(b.call, "end")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert b.call not in through.sfu.rooms  # destroyed at the end
        # nothing of the SFU in the record: who was connected, as for every call
        entries = await through.hub.store.entries(b.call)
        assert not [e for e in entries if "sfu" in e.kind or "sfu" in str(e.data)]
        assert {e.kind for e in entries} >= {"endpoint.joined", "call.started", "call.ended"}
    finally:
        await leave_all(sessions, tasks)


# -- what a tap on Janus, or a device outside the plan, gets --------------------------------
def looks_like_the_pattern(picture: av.VideoFrame) -> bool:
    """Whether a decoded picture is the synthetic source's: a gradient across the width
    (client/media.py PatternVideoTrack), the moving bar aside."""
    if (picture.width, picture.height) != (DEFAULT_WIDTH, DEFAULT_HEIGHT):
        return False
    row = picture.to_ndarray(format="gray")[DEFAULT_HEIGHT // 2].astype(float)
    gradient = np.linspace(16, 235, DEFAULT_WIDTH)
    return bool(np.median(np.abs(row - gradient)) < 12)


def decoded(codec_name: str, frames: list[bytes],
            judge: Callable[[av.VideoFrame | av.AudioFrame], bool]) -> tuple[int, int]:
    """(frames ``judge`` finds are the source's, decoder errors), with one decoder of
    ``codec_name`` for the whole stream, as a receiver has."""
    codec = av.CodecContext.create(codec_name, "r")
    good = errors = 0
    for data in frames:
        try:
            out = codec.decode(av.Packet(data))
        except av.error.FFmpegError:
            errors += 1
            continue
        good += sum(judge(f) for f in out if isinstance(f, av.VideoFrame | av.AudioFrame))
    return good, errors


def pictures(frames: list[bytes]) -> tuple[int, int]:
    """(VP8 frames that decode to the source's picture, decoder errors)."""
    return decoded("vp8", frames, lambda f: isinstance(f, av.VideoFrame)
                   and looks_like_the_pattern(f))


def sounds_like_the_tone(frame: av.VideoFrame | av.AudioFrame) -> bool:
    """Most of the frame's power at the tone's frequency: the tone, not noise nor
    silence."""
    if not isinstance(frame, av.AudioFrame):
        return False
    pcm = frame.to_ndarray().astype(float).reshape(-1)[:frame.samples]
    power = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm)))) ** 2
    near = np.abs(np.fft.rfftfreq(len(pcm), 1 / frame.sample_rate) - TONE_HZ) < 60
    return bool(power.sum() > 0 and power[near].sum() > 0.8 * power.sum())


def tones(frames: list[bytes]) -> tuple[int, int]:
    """(Opus packets that decode to the source's 440 Hz tone, decoder errors)."""
    return decoded("opus", frames, sounds_like_the_tone)


def from_key(frames: list[bytes]) -> list[bytes]:
    """VP8 frames from the first key frame on (the P bit of the frame tag, in the clear
    header of a sealed frame too: docs/protocol.md 5.9)."""
    keys = [i for i, data in enumerate(frames) if data and not data[0] & 1]
    return frames[keys[0]:] if keys else []


def opened(frames: list[bytes], sender: CallSession, kind: str) -> list[bytes]:
    """The frames that open under ``sender``'s current media key of ``kind`` (the tap's
    control)."""
    assert sender.crypt is not None
    opener = FrameOpener()
    opener.add(sender.crypt.sealers[kind].key)
    out = []
    for data in frames:
        with contextlib.suppress(FrameError):
            out.append(opener.open(data))
    return out


class Tap(asyncio.DatagramProtocol):
    """A UDP port that Janus's RTP forwarder sends a publisher's packets to: the frames
    of each kind, depacketized (VP8 frames reassembled by RTP timestamp)."""

    def __init__(self) -> None:
        self.audio: list[bytes] = []
        self.video: list[bytes] = []
        self._parts: dict[int, dict[int, bytes]] = {}
        self._ports: dict[int, str] = {}
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        with contextlib.suppress(ValueError):
            self._take(self._ports[addr[1]] if addr[1] in self._ports else "", data)

    def _take(self, kind: str, data: bytes) -> None:
        packet = RtpPacket.parse(data)
        if packet.payload_type == AUDIO_PT:
            self.audio.append(packet.payload)
        elif packet.payload_type == VIDEO_PT:
            _, rest = VpxPayloadDescriptor.parse(packet.payload)
            parts = self._parts.setdefault(packet.timestamp, {})
            parts[packet.sequence_number] = rest
            if packet.marker:
                seqs = sorted(parts)
                if seqs[-1] - seqs[0] + 1 == len(seqs):
                    self.video.append(b"".join(parts[s] for s in seqs))
                del self._parts[packet.timestamp]
        self.changed.set()

    async def enough(self) -> None:
        """Until it holds 100 Opus packets and 30 VP8 frames from a key frame on."""
        while len(self.audio) < 100 or len(from_key(self.video)) < 30:
            self.changed.clear()
            await self.changed.wait()


AUDIO_PT, VIDEO_PT = 111, 96  # what the test's forwarder asks Janus to send


@contextlib.asynccontextmanager
async def tapped(t: Through, call: str, device: str) -> AsyncIterator[Tap]:
    """An RTP forwarder of ``device``'s publisher to a UDP socket of the test. It needs
    the room's secret and the VideoRoom's admin_key (lock_rtp_forward): the test has
    both, as Janus's operator (or whoever took Janus over) has."""
    loop = asyncio.get_running_loop()
    transport, tap = await loop.create_datagram_endpoint(Tap, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    api = JanusApi(t.janus.url, t.janus.api_secret)
    room = t.sfu.rooms[call]
    pub = room.publishers[device]
    own = JanusSession(session=await api._create_session())
    api._start_poll(own)
    try:
        handle = await api._attach(own.session, VIDEOROOM)
        await api._message(own, handle, {
            "request": "rtp_forward", "room": room.room, "publisher_id": pub.id,
            "host": "127.0.0.1", "host_family": "ipv4", "secret": room.secret,
            "admin_key": t.janus.admin_key, "streams": [
                {"mid": pub.mids[MediaKind.AUDIO], "port": port, "pt": AUDIO_PT},
                {"mid": pub.mids[MediaKind.VIDEO], "port": port, "pt": VIDEO_PT}]})
        yield tap
    finally:
        await api._end_session(own)
        await api.aclose()
        transport.close()


async def collect(tap: Tap, sessions: list[CallSession], devices: list[str],
                  sender: str) -> None:
    """Until the tap holds plenty of both kinds while every receiver decodes more of
    ``sender``'s frames of both kinds."""
    before = {s.device: {k: s.frames_from(sender, k) for k in MediaKind} for s in sessions}

    def receivers_decode() -> bool:
        return all(s.frames_from(sender, k) > before[s.device][k] + FRAMES
                   for s in sessions if s.device != sender for k in MediaKind)

    await asyncio.wait_for(asyncio.gather(tap.enough(), *(
        s.wait_for(receivers_decode) for s in sessions)), WAIT_S)


async def test_a_tap_on_janus_gets_frames_that_do_not_decode(through: Through) -> None:
    """Janus's own RTP forwarder (what its operator, or whoever took it over, can turn
    on) copies a publisher's packets to the test: none of its frames decodes to the
    source's picture or tone, while the receivers decode them; opened with the sender's
    key (which only the plan's receivers hold), the same frames do."""
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        sender = sessions[1]
        async with tapped(through, b.call, sender.device) as tap:
            await collect(tap, sessions, devices, sender.device)
        video, audio = from_key(tap.video), list(tap.audio)
        # Janus forwards key frames (their clear header says so) and all else: nothing
        # of them decodes to the picture or the tone
        assert pictures(video)[0] == 0
        assert tones(audio)[0] == 0
        # the control: the same frames, opened with the sender's key, are its media
        assert len(opened(video, sender, "video")) == len(video)
        assert pictures(opened(video, sender, "video"))[0] >= len(video) - 2
        assert tones(opened(audio, sender, "audio"))[0] >= len(audio) - 5
        assert all(s.alarms == [] for s in sessions)
    finally:
        await leave_all(sessions, tasks)


class Intruder:
    """A device outside the plan that joins the call's Janus room by itself, as a
    compromised Janus (or a leaked PIN) would let it: a raw aiortc subscriber to one
    publisher's streams. Each frame its receivers depacketize is kept, and never reaches
    a decoder (it has no key to open it with)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(viewer_ice().configuration())
        self.frames: dict[str, list[bytes]] = {"audio": [], "video": []}
        self.changed = asyncio.Event()
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        kept = self.frames[track.kind]

        def keep(_kind: str, data: bytes) -> bytes:
            kept.append(data)
            self.changed.set()
            raise FrameError("no key")
        for receiver in self.pc.getReceivers():
            if receiver.track is track:
                open_frames(self.pc, receiver, keep, lambda: None)

    async def join(self, t: Through, room: int, pin: str, feed: int,
                   mids: list[str]) -> JanusApi:
        api = JanusApi(t.janus.url, t.janus.api_secret)
        own = self.session = JanusSession(session=await api._create_session())
        api._start_poll(own)
        handle = await api._attach(own.session, VIDEOROOM)
        reply = await api._message(own, handle, {
            "request": "join", "ptype": "subscriber", "room": room, "pin": pin,
            "streams": [{"feed": feed, "mid": mid} for mid in mids]})
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await api._message(own, handle, {"request": "start"},
                           {"type": "answer", "sdp": self.pc.localDescription.sdp})
        return api

    async def enough(self) -> None:
        while len(self.frames["audio"]) < 100 or len(from_key(self.frames["video"])) < 30:
            self.changed.clear()
            await self.changed.wait()


async def test_a_device_outside_the_plan_in_the_janus_room_decodes_nothing(
        through: Through) -> None:
    b, sessions, tasks = await briefing(through)
    intruder = Intruder()
    api: JanusApi | None = None
    try:
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        room = through.sfu.rooms[b.call]
        sender = sessions[0]
        pub = room.publishers[sender.device]
        api = await intruder.join(through, room.room, room.pin, pub.id,
                                  [pub.mids[MediaKind.AUDIO], pub.mids[MediaKind.VIDEO]])
        before = {s.device: s.frames_from(sender.device, MediaKind.VIDEO) for s in sessions}
        await asyncio.wait_for(asyncio.gather(intruder.enough(), *(
            s.wait_for(lambda s=s: s.frames_from(sender.device, MediaKind.VIDEO)
                       > before[s.device] + FRAMES) for s in sessions[1:])), WAIT_S)
        video, audio = from_key(intruder.frames["video"]), list(intruder.frames["audio"])
        # it gets the media packets, Janus forwarding them as to anyone in the room ...
        assert intruder.pc.connectionState == "connected"
        # ... and nothing of them decodes: no picture, no tone
        assert pictures(video)[0] == 0
        assert tones(audio)[0] == 0
        # (they are the sender's media: its key opens them)
        assert pictures(opened(video, sender, "video"))[0] >= len(video) - 2
        # the receivers of the plan decode on; none was told of the intruder
        assert all(s.alarms == [] for s in sessions)
    finally:
        await intruder.pc.close()
        if api is not None:
            await api._end_session(intruder.session)
            await api.aclose()
        await leave_all(sessions, tasks)


async def test_senders_through_janus_seal_under_a_new_key_after_a_device_leaves(
        through: Through) -> None:
    """When a device leaves, every device that sent it media makes a new key and hands
    it to the others only; what Janus forwards from then on does not open with the
    leaver's keys, and the others decode it. The server lets the leaver's publisher and
    feeds go."""
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        first, second, leaver = sessions
        assert all(s.crypt is not None and s.crypt.key_id(k) == 0 for s in sessions
                   for k in KINDS)
        await leaver.leave()
        await until([first, second], lambda s: s.crypt is not None
                    and all(s.crypt.key_id(k) == 1 for k in KINDS)
                    and all(1 in t.crypt.openers[s.device, k].keys  # type: ignore[union-attr]
                            for t in (first, second) if t is not s for k in KINDS))
        room = through.sfu.rooms[b.call]
        assert leaver.device not in room.publishers
        assert all(leaver.device not in (f.sender, f.receiver) for f in room.feeds.values())
        async with tapped(through, b.call, first.device) as tap:
            await collect(tap, [first, second], devices[:2], first.device)
        frames = {"video": from_key(tap.video), "audio": tap.audio}
        assert {key_id_of(f) for k in KINDS for f in frames[k]} == {1}
        assert leaver.crypt is not None
        assert second.crypt is not None
        for kind in KINDS:
            assert set(leaver.crypt.openers[first.device, kind].keys) == {0}
            for data in frames[kind]:
                with pytest.raises(FrameError):
                    leaver.crypt.open(first.device, kind, data)
            # second's keys open them all (in an opener of their own: second's has opened
            # these frames already, and would refuse them as replays)
            fresh = FrameOpener()
            for key in second.crypt.openers[first.device, kind].keys.values():
                fresh.add(key)
            assert all(fresh.open(data) for data in frames[kind])
        assert first.alarms == second.alarms == []
    finally:
        await leave_all(sessions, tasks)


async def test_the_sfu_refuses_what_the_route_and_phase_do_not_allow(
        through: Through) -> None:
    # a plan that does not want the SFU (two endpoints, the threshold absent: 5): the
    # welcome says so, the briefing is a mesh, and a publish is refused
    mesh = await provision_briefing(through.http, 2)
    a, b = (CallSession(through.ws, mesh.call, side.identity(), ice=viewer_ice())
            for side in mesh.sides)
    tasks = [asyncio.create_task(s.run()) for s in (a, b)]
    try:
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), b.joined.wait()), WAIT_S)
        welcome = next(m for m in a.inbox if m["type"] == "welcome")
        assert welcome["sfu"] is False and a.sfu is None and a.crypt is None
        await mesh.host.operator.control(mesh.call, "start")
        await until([a, b], lambda s: all(s.frames_from(t.device, k) > FRAMES
                                          for t in (a, b) if t is not s for k in MediaKind))
        assert a.link(b.device) is not None  # peer to peer
        await a._send({"type": "sfu-publish", "sdp": "v=0"})
        await until([a], lambda s: any(e["code"] == "no-sfu" for e in s.errors))
        assert mesh.call not in through.sfu.rooms
    finally:
        await leave_all([a, b], tasks)

    # on the SFU route: before the start, a publish is refused (no media yet), and an
    # answer to a feed that is not this device's is invalid; after it, an aide (who
    # sends and receives no media) may not publish, and is offered no feed
    key = PrivateKey.generate()
    sfu_b = await provision_briefing(through.http, 2, sfu_above=0,
                                     extra=[(0, key, Role.AIDE, "Aide", "en")])
    sessions = [CallSession(through.ws, sfu_b.call, side.identity(), ice=viewer_ice())
                for side in sfu_b.sides]
    aide = CallSession(through.ws, sfu_b.call, Identity(key, sfu_b.sides[0].identity().pinned),
                       ice=viewer_ice())
    sessions.append(aide)
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        s = sessions[0]
        assert s.sfu is not None and s.sfu.publisher is None
        await s._send({"type": "sfu-publish", "sdp": "v=0"})
        await s._send({"type": "sfu-watch", "feed": "not-a-feed-of-mine", "sdp": "v=0"})
        await until([s], lambda s: {e["code"] for e in s.errors} >= {"phase", "invalid"})
        assert sfu_b.call not in through.sfu.rooms  # no room before a publish is taken
        await sfu_b.host.operator.control(sfu_b.call, "start")
        devices = [side.principal.fingerprint for side in sfu_b.sides]
        await until(sessions[:2], lambda s: from_everyone(s, devices))
        await aide._send({"type": "sfu-publish", "sdp": "v=0"})
        await until([aide], lambda s: any(e["code"] == "not-permitted" for e in s.errors))
        assert aide.sfu is not None and aide.sfu.publisher is None
        assert not [m for m in aide.inbox if m["type"] == "sfu-feed"]
        assert aide.device not in through.sfu.rooms[sfu_b.call].publishers
    finally:
        await leave_all(sessions, tasks)


async def test_without_janus_the_welcome_says_no_sfu_and_the_briefing_is_a_mesh(
        ws_url: str, http: httpx.AsyncClient) -> None:
    b = await provision_briefing(http, 2, sfu_above=0)  # the plan asks for the SFU
    a, c = (CallSession(ws_url, b.call, side.identity(), ice=loopback()) for side in b.sides)
    tasks = [asyncio.create_task(s.run()) for s in (a, c)]
    try:
        await asyncio.wait_for(asyncio.gather(a.joined.wait(), c.joined.wait()), WAIT_S)
        assert next(m for m in a.inbox if m["type"] == "welcome")["sfu"] is False
        assert a.sfu is None and c.sfu is None
        await b.host.operator.control(b.call, "start")
        await until([a, c], lambda s: all(s.frames_from(t.device, k) > FRAMES
                                          for t in (a, c) if t is not s for k in MediaKind))
        assert a.link(c.device) is not None
        await a._send({"type": "sfu-publish", "sdp": "v=0"})
        await until([a], lambda s: any(e["code"] == "no-sfu" for e in s.errors))
    finally:
        await leave_all([a, c], tasks)


async def janus_has_room(t: Through, room: int) -> bool:
    """Whether Janus's VideoRoom holds ``room`` (its "exists" request)."""
    api = JanusApi(t.janus.url, t.janus.api_secret)
    own = JanusSession(session=await api._create_session())
    api._start_poll(own)
    try:
        handle = await api._attach(own.session, VIDEOROOM)
        reply = await api._message(own, handle, {"request": "exists", "room": room})
        return bool(reply["plugindata"]["data"]["exists"])
    finally:
        await api._end_session(own)
        await api.aclose()


async def test_an_interpreter_gets_only_audio_through_janus_and_the_room_goes_at_the_end(
        through: Through) -> None:
    """The server subscribes each device to exactly the kinds the plan lets it receive:
    an interpreter (interpreter_video false) gets the principals' audio and not their
    video, Janus's offer to it has no video; it publishes audio only. At the end of the
    call the room is destroyed in Janus."""
    key = PrivateKey.generate()
    b = await provision_briefing(through.http, 2, sfu_above=0,
                                 extra=[(0, key, Role.INTERPRETER, "DE interpreter", "de")])
    principals = [CallSession(through.ws, b.call, side.identity(), ice=viewer_ice())
                  for side in b.sides]
    booth = CallSession(through.ws, b.call, Identity(key, b.sides[0].identity().pinned),
                        ice=viewer_ice(), source=MediaSource.interpreter())
    sessions = [*principals, booth]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in principals]
        await until([booth], lambda s: all(s.frames_from(d, MediaKind.AUDIO) > FRAMES
                                           for d in devices))
        await until(principals, lambda s: s.frames_from(booth.device, MediaKind.AUDIO)
                    > FRAMES and from_everyone(s, devices))
        assert booth.sfu is not None
        assert all(link.receive == {MediaKind.AUDIO} for link in booth.sfu.feeds.values())
        assert all(s.frames_from(d, MediaKind.VIDEO) == 0 for s in [booth] for d in devices)
        feeds = [m for m in booth.inbox if m["type"] == "sfu-feed"]
        assert feeds and all(m["kinds"] == ["audio"] and "m=video" not in m["sdp"]
                             for m in feeds)
        room = through.sfu.rooms[b.call]
        assert set(room.publishers[booth.device].mids) == {MediaKind.AUDIO}
        assert all(s.alarms == [] for s in sessions)
        assert await janus_has_room(through, room.room)
        await b.host.operator.control(b.call, "end")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        assert b.call not in through.sfu.rooms
        assert not await janus_has_room(through, room.room)
    finally:
        await leave_all(sessions, tasks)


async def test_a_second_publish_replaces_the_first_and_the_feeds_follow(
        through: Through) -> None:
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        again = sessions[0]
        room = through.sfu.rooms[b.call]
        first = room.publishers[again.device].id
        old = {s.device: {f for f, link in s.sfu.feeds.items()  # type: ignore[union-attr]
                          if link.remote == again.device} for s in sessions[1:]}
        assert again.sfu is not None
        await again.sfu.publish()
        await until(sessions[1:], lambda s: any(
            m["type"] == "sfu-gone" and m["feed"] in old[s.device] for m in s.inbox))
        await until([again], lambda s: s.sfu is not None and s.sfu.published.is_set())
        assert room.publishers[again.device].id != first
        before = {s.device: s.frames_from(again.device, MediaKind.VIDEO) for s in sessions}
        await until(sessions[1:], lambda s: s.frames_from(again.device, MediaKind.VIDEO)
                    > before[s.device] + FRAMES)
        for s in sessions[1:]:
            assert s.sfu is not None and not old[s.device] & set(s.sfu.feeds)
        assert all(s.alarms == [] for s in sessions)
    finally:
        await leave_all(sessions, tasks)


async def test_a_publish_janus_refuses_is_tried_again_later(tmp_path: Path) -> None:
    """Janus down: the server has an SFU configured, so the route is the SFU's; each
    publish gets sfu-failed, and the endpoint tries again after 2 s, then 4 .."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "server", janus_url=f"http://127.0.0.1:{port}/janus")
    async with running(settings) as base, httpx.AsyncClient(base_url=base) as http:
        b = await provision_briefing(http, 2, sfu_above=0)
        ws = base.replace("http", "ws", 1) + "/ws"
        sessions = [CallSession(ws, b.call, side.identity(), ice=loopback()) for side in b.sides]
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)),
                                   WAIT_S)
            await b.host.operator.control(b.call, "start")
            s = sessions[0]

            def refused(n: int) -> bool:
                return sum(e["code"] == "sfu-failed" for e in s.errors) >= n
            await until([s], lambda s: refused(1))
            started = time.monotonic()
            await until([s], lambda s: refused(2))
            assert time.monotonic() - started >= RETRY_FIRST_S - 0.1
            assert s.sfu is not None and s.sfu.publishes >= 2 and s.sfu.failures >= 2
            assert retry_delay(s.sfu.failures) == min(RETRY_MAX_S, 2.0 * 2 ** (s.sfu.failures - 1))
            assert [retry_delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
            assert s._peers == {}  # no fallback to a mesh the server did not announce
        finally:
            await leave_all(sessions, tasks)


async def test_after_a_new_signaling_connection_a_device_publishes_and_receives_again(
        through: Through) -> None:
    """A device's signaling drops: the server lets its publisher and feeds go (as for a
    leave); after its new welcome it publishes again and gets its feeds anew."""
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [side.principal.fingerprint for side in b.sides]
        await everyone_hears_everyone(sessions, devices)
        back = sessions[2]
        assert back._ws is not None and back.sfu is not None
        publishes = back.sfu.publishes
        await back._ws.close()
        await asyncio.wait_for(back.rejoined.wait(), WAIT_S)
        await until([back], lambda s: s.sfu is not None and s.sfu.publishes > publishes
                    and s.sfu.published.is_set())
        before = {s.device: {d: s.frames_from(d, MediaKind.VIDEO) for d in devices}
                  for s in sessions}
        await until(sessions, lambda s: all(
            s.frames_from(d, MediaKind.VIDEO) > before[s.device][d] + FRAMES
            for d in devices if d != s.device))
        assert back._peers == {}
    finally:
        await leave_all(sessions, tasks)


async def test_the_server_destroys_its_janus_rooms_when_it_stops(tmp_path: Path) -> None:
    async with janus(tmp_path / "janus") as j:
        settings = Settings(data_dir=tmp_path / "server", janus_url=j.url,
                            janus_api_secret=j.api_secret, janus_admin_key=j.admin_key)
        cfg = config(settings, "127.0.0.1", 0, "warning")
        assert isinstance(cfg.app, OpenWebSockets)
        app = cfg.app.app
        sessions: list[CallSession] = []
        tasks: list[asyncio.Task[None]] = []
        try:
            async with serving(cfg) as base, httpx.AsyncClient(base_url=base) as http:
                t = Through(j, base, base.replace("http", "ws", 1) + "/ws", http,
                            app.state.hub)  # type: ignore[attr-defined]
                b, sessions, tasks = await briefing(t, 2)
                await b.host.operator.control(b.call, "start")
                devices = [side.principal.fingerprint for side in b.sides]
                await everyone_hears_everyone(sessions, devices)
                room = t.sfu.rooms[b.call].room
                assert await janus_has_room(t, room)
                for s in sessions:  # they would rejoin a server that comes back
                    s.reconnect = False
            assert not await janus_has_room(t, room)
        finally:
            await leave_all(sessions, tasks)


async def test_a_server_that_announces_the_mesh_then_the_sfu_gets_no_clear_frame_to_janus(
        through: Through) -> None:
    """The server first welcomes the devices without an SFU (a mesh: frames not sealed,
    the encoders made so), then, after their signaling drops, with one. Their encoders
    seal from then on: what Janus forwards still decodes to nothing."""
    sfu, through.hub.sfu = through.hub.sfu, None  # the server "has no Janus" at first
    b = await provision_briefing(through.http, 2, sfu_above=0)
    sessions = [CallSession(through.ws, b.call, side.identity(), ice=viewer_ice())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await until(sessions, lambda s: from_everyone(s, devices))
        assert all(s.sfu is None and s.crypt is None for s in sessions)  # a clear mesh
        through.hub.sfu = sfu  # now it "has" one
        for s in sessions:
            assert s._ws is not None
            await s._ws.close()
        await asyncio.wait_for(asyncio.gather(*(s.rejoined.wait() for s in sessions)),
                               WAIT_S)
        assert all(s.sfu is not None for s in sessions)
        await until(sessions, lambda s: s.sfu is not None and s.sfu.published.is_set())
        assert b.call in through.sfu.rooms
        sender = sessions[0]
        await until([sender], lambda s: s.sfu is not None and s.sfu.publisher is not None
                    and s.sfu.publisher.connectionState == "connected")
        async with tapped(through, b.call, sender.device) as tap:
            await asyncio.wait_for(tap.enough(), WAIT_S)
        video, audio = from_key(tap.video), list(tap.audio)
        assert pictures(video)[0] == 0 and tones(audio)[0] == 0
        assert pictures(opened(video, sender, "video"))[0] >= len(video) - 2
        # and the receiver decodes the sender's feed
        await until(sessions[1:], lambda s: s.sfu is not None
                    and s.sfu.frames_from(sender.device, MediaKind.VIDEO) > FRAMES)
    finally:
        through.hub.sfu = sfu
        await leave_all(sessions, tasks)

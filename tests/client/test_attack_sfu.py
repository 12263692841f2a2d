"""Attacker review of the SFU route of briefings (issue 14, docs/protocol.md 5.9, 5.10,
5.12): a real Janus VideoRoom, the real server, Python endpoints and raw attack clients.

Findings (each test asserts the secure behaviour, and failed while the hole was open):

- F1 ``test_f1_an_interpreter_holds_no_key_that_opens_video_the_plan_denies_it``: open
  (docs/security.md 4), an expected failure until a key per kind
- F2 ``test_f2_a_receiver_cannot_forge_frames_under_another_sender_s_key``: open
  (docs/security.md 4), an expected failure until frames are signed
- F3 ``test_f3_a_frame_replayed_by_janus_does_not_open_twice``: fixed (a replay window)
- F4 ``test_f4_an_interpreter_cannot_send_video_as_its_audio``: fixed (mids from Janus's
  answer)
- F5 ``test_f5_a_device_that_comes_back_cannot_open_what_was_sent_while_it_was_away``:
  fixed (a new key before handing it to a device that did not hold it)

Claims that held (passing attack tests): the rest of this module.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from aiortc import RTCSessionDescription

from summitline.client.briefing import Briefing, provision_briefing
from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.session import CallSession, PlanRejected
from summitline.core.roles import MediaKind, Role
from summitline.crypto.framekeys import KINDS
from summitline.crypto.frames import FrameError, FrameKey, FrameOpener, FrameSealer, key_id_of
from summitline.crypto.keys import PrivateKey
from summitline.server.janusapi import JanusApi, JanusSession
from summitline.server.sfu import VIDEOROOM
from tests import wire
from tests.client import test_sfu_janus
from tests.client.test_session import WAIT_S, leave_all, until
from tests.client.test_sfu_janus import (
    FRAMES,
    Intruder,
    Through,
    briefing,
    collect,
    everyone_hears_everyone,
    from_key,
    opened,
    pictures,
    tapped,
)
from tests.hostile import Wire, hostile
from tests.janus import viewer_ice

through = test_sfu_janus.through  # the fixture: a real Janus, and the server using it

FOREIGN_LANGUAGE = "fr"  # the channel of the French delegation's interpreter


async def briefing_with(t: Through, size: int, extra: list[tuple[int, PrivateKey, Role, str,
                                                                str]]
                        ) -> tuple[Briefing, list[CallSession], list[CallSession],
                                   list[asyncio.Task[None]]]:
    """A briefing through the SFU (``sfu_above`` 0) of ``size`` principals and the
    ``extra`` participants, all joined as Python endpoints; (briefing, principals,
    extras, run tasks)."""
    b = await provision_briefing(t.http, size, sfu_above=0, extra=extra)
    principals = [CallSession(t.ws, b.call, side.identity(), ice=viewer_ice())
                  for side in b.sides]
    others = [CallSession(t.ws, b.call, b.sides[side].identity(key), ice=viewer_ice(),
                          source=None if role is not Role.AIDE else MediaSource(None, None))
              for side, key, role, _, _ in extra]
    everyone = principals + others
    tasks = [asyncio.create_task(s.run()) for s in everyone]
    await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in everyone)), WAIT_S)
    return b, principals, others, tasks


def interpreter(side: int = 1) -> tuple[int, PrivateKey, Role, str, str]:
    return (side, PrivateKey.generate(), Role.INTERPRETER, "Interpreter", FOREIGN_LANGUAGE)


async def hears_audio(s: CallSession, senders: list[str]) -> None:
    await asyncio.wait_for(s.wait_for(lambda: all(
        s.frames_from(d, MediaKind.AUDIO) > FRAMES for d in senders)), WAIT_S)


def refusals(s: CallSession, ref: str) -> list[str]:
    return [e["code"] for e in s.errors if e.get("ref") == ref]


async def refused(s: CallSession, ref: str, n: int) -> list[str]:
    """Wait until ``s`` holds ``n`` refusals of ``ref``; their codes."""
    await asyncio.wait_for(s.wait_for(lambda: len(refusals(s, ref)) >= n), WAIT_S)
    return refusals(s, ref)


async def video_of(t: Through, call: str, sender: str, intruder: Intruder) -> JanusApi:
    """Join ``intruder`` to the call's room with the PIN (a compromised Janus, a leaked
    PIN, or the server itself), subscribed to ``sender``'s video only; wait for 30
    frames from a key frame on."""
    room = t.sfu.rooms[call]
    pub = room.publishers[sender]
    api = await intruder.join(t, room.room, room.pin, pub.id, [pub.mids[MediaKind.VIDEO]])

    async def enough() -> None:
        while len(from_key(intruder.frames["video"])) < 30:
            intruder.changed.clear()
            await intruder.changed.wait()
    await asyncio.wait_for(enough(), WAIT_S)
    return api


# -- F1 -------------------------------------------------------------------------------------
async def test_f1_an_interpreter_holds_no_key_that_opens_video_the_plan_denies_it(
        through: Through) -> None:
    """F1 (medium, fixed): ONE media key per sender served audio AND video (5.9 "One key
    serves all the kinds the device sends", before the fix). An interpreter of a plan without
    ``interpreter_video`` is handed each principal's key, because it hears their audio;
    that key opens the principal's VIDEO too. The server's kind filter (an interpreter's
    feeds carry audio only) is then the only barrier: whoever runs or takes over Janus
    (or holds the room PIN, or the server) forwards the video to the interpreter, and
    the interpreter decodes the principal's picture, which the signed plan denies it.
    Claim broken: "a receiver gets only the kinds of media the plan permits".
    Fix: a key per (sender, kind), or at least a separate video key wrapped only to the
    devices the plan lets see the sender's video (policy.media per kind in
    FrameCrypt.message / web frames), and a key id space per kind. As fixed: a sender has
    an audio and a video key, and the interpreter is handed the audio key only."""
    b, principals, (interp,), tasks = await briefing_with(through, 2, [interpreter()])
    intruder = Intruder()
    api: JanusApi | None = None
    try:
        await b.host.operator.control(b.call, "start")
        host = principals[0]
        await hears_audio(interp, [p.device for p in principals])
        # the honest server keeps its side: the interpreter's feeds are audio only
        room = through.sfu.rooms[b.call]
        assert {f.kinds for f in room.feeds.values() if f.receiver == interp.device} == \
            {frozenset({MediaKind.AUDIO})}
        assert interp.frames_from(host.device, MediaKind.VIDEO) == 0
        # the interpreter was handed the host principal's audio key, not its video key
        assert interp.crypt is not None and (host.device, "audio") in interp.crypt.openers
        assert (host.device, "video") not in interp.crypt.openers
        # a compromised Janus hands the interpreter the principal's video
        api = await video_of(through, b.call, host.device, intruder)
        video = from_key(intruder.frames["video"])
        opens = []
        for data in video:
            for kind in ("video", "audio"):  # on a video track, or passed off as audio
                try:
                    opens.append(interp.crypt.open(host.device, kind, data))
                except FrameError:
                    pass
        # SECURE: no key the interpreter holds opens the principal's video
        assert pictures(opens)[0] == 0 and opens == [], (
            f"the interpreter opened {len(opens)} of {len(video)} video frames of the "
            f"principal with the key it was handed for the audio; "
            f"{pictures(opens)[0]} decode to the principal's picture")
    finally:
        await intruder.pc.close()
        if api is not None:
            await api._end_session(intruder.session)
            await api.aclose()
        await leave_all(principals + [interp], tasks)


# -- F2, F3: what a receiver's copy of a sender's key allows, with Janus's help ------------
@pytest.mark.xfail(strict=True, reason="open defect F2 (docs/security.md 4): frame keys are "
                   "symmetric, so a receiver with the SFU can forge a sender's frames")
async def test_f2_a_receiver_cannot_forge_frames_under_another_sender_s_key(
        through: Through) -> None:
    """F2 (high): media keys are symmetric and shared by every receiver of a sender, and
    frames carry no per-sender signature or per-receiver MAC. So any receiver of S
    (e.g. the HOST delegation's principal, whose delegation runs the server and so the
    Janus that forwards S's feed to everyone) can seal frames of its choosing under S's
    key and have Janus put them on S's feed to a third delegation: they authenticate as
    S's. Claims broken: "a server naming the wrong ``from`` gains nothing" and "no
    impersonation of another sender" hold only against a server WITHOUT a participant:
    a receiver + Janus (the host's, in a self-hosted briefing) put words in S's mouth.
    Fix (as SFrame discussions): per-frame (or per-group-of-frames) signatures by the
    sender's device key, or per-receiver keys (a key per (sender, receiver): n-1
    encryptions), or at least document it as an open defect in security.md 4."""
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        host, victim, third = sessions
        async with tapped(through, b.call, victim.device) as tap:
            await collect(tap, sessions, devices, victim.device)
        assert host.crypt is not None and third.crypt is not None
        # the host's principal holds the victim's key, as every receiver of it does
        key: FrameKey = host.crypt.openers[victim.device, "audio"].keys[
            key_id_of(tap.audio[-1])]
        words = host.crypt.open(victim.device, "audio", tap.audio[0])  # any audio, re-timed
        forged = FrameSealer(key, counter=2**40).seal("opus", words)
        # SECURE: the third delegation does not take it as the victim's
        with pytest.raises(FrameError):
            third.crypt.open(victim.device, "audio", forged)
    finally:
        await leave_all(sessions, tasks)


async def test_f3_a_frame_replayed_by_janus_does_not_open_twice(through: Through) -> None:
    """F3 (medium): receivers keep no replay window (FrameOpener.open is stateless: any
    frame under one of the last 4 keys opens, again and again, in any order). A
    compromised Janus (or the server) can re-inject a sender's earlier frames (its
    "yes" of ten minutes ago) on its feed, and every receiver decodes and plays them as
    live. Fix: per sender and key, a highest-counter + sliding bitmap window (SFrame /
    SRTP replay list), refusing counters already seen or below the window; separate
    windows per kind, or a counter space per kind, since audio and video share one
    counter."""
    b, sessions, tasks = await briefing(through, 2)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        sender, receiver = sessions
        async with tapped(through, b.call, sender.device) as tap:
            await collect(tap, sessions, devices, sender.device)
        await asyncio.wait_for(receiver.wait_for(lambda: receiver.frames_from(
            sender.device, MediaKind.AUDIO) > len(tap.audio) + 2 * FRAMES), WAIT_S)
        assert receiver.crypt is not None
        # the receiver has taken these frames already (and many after them): replayed
        replayed = 0
        for data in tap.audio[:-5]:
            try:
                receiver.crypt.open(sender.device, "audio", data)
                replayed += 1
            except FrameError:
                pass
        # SECURE: a frame whose counter the receiver has seen does not open again
        assert replayed == 0, (f"{replayed} of {len(tap.audio) - 5} replayed audio frames "
                               "opened again at the receiver")
    finally:
        await leave_all(sessions, tasks)


# -- claims that held -------------------------------------------------------------------------
async def test_a_feed_relabelled_with_another_from_decodes_nothing(through: Through) -> None:
    """The server (here: its own broker, driven by the test as a hostile operator would)
    subscribes the third principal to the victim's streams and offers them as a feed
    ``from`` the host: the third principal answers, the feed connects, and not one
    frame of it opens under the host's key; nothing of it is decoded."""
    b = await provision_briefing(through.http, 3, sfu_above=0)
    sessions = [CallSession(through.ws, b.call, side.identity(), ice=viewer_ice())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    api = JanusApi(through.janus.url, through.janus.api_secret)
    own: JanusSession | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        host, victim, third = sessions
        room = through.sfu.rooms[b.call]
        pub = room.publishers[victim.device]
        own = JanusSession(session=await api._create_session())
        api._start_poll(own)
        handle = await api._attach(own.session, VIDEOROOM)
        reply = await api._message(own, handle, {
            "request": "join", "ptype": "subscriber", "room": room.room, "pin": room.pin,
            "streams": [{"feed": pub.id, "mid": pub.mids[k]} for k in sorted(MediaKind)]})
        feed = "lie-" + secrets.token_urlsafe(12)
        assert room.owner is not None
        room.owner.endpoints[third.device].send({
            "type": "sfu-feed", "feed": feed, "from": host.device,
            "kinds": ["audio", "video"], "sdp": reply["jsep"]["sdp"]})
        assert third.sfu is not None
        sfu = third.sfu
        await asyncio.wait_for(third.wait_for(
            lambda: feed in sfu.feeds and bool(sfu.feeds[feed].sent_sdp)), WAIT_S)
        link = sfu.feeds[feed]
        # the broker does not know the feed (invalid); the hostile operator starts it
        await api._message(own, handle, {"request": "start"},
                           {"type": "answer", "sdp": link.sent_sdp, "e2ee": True})
        await asyncio.wait_for(third.wait_for(lambda: link.refused > 50), WAIT_S)
        assert all(n == 0 for n in link.frames.values()), link.frames
        assert link.remote == host.device  # taken as the host's, and nothing opened
    finally:
        if own is not None:
            await api._end_session(own)
        await api.aclose()
        await leave_all(sessions, tasks)


async def test_participants_get_no_feed_and_no_publish_beyond_the_plan(
        through: Through) -> None:
    """Legitimate participants asking for more than the plan gives: an aide publishes
    (``not-permitted``), asks for a principal's feed (``sfu-refeed``: ``invalid``) and
    answers another device's feed (``sfu-watch``: ``invalid``); an interpreter answers a
    principal's feed (``invalid``), asks for one again and gets audio only; a device of
    another briefing names this call's feeds and devices (``invalid``); a device outside
    the plan is not let in."""
    aide = (0, PrivateKey.generate(), Role.AIDE, "Aide", "en")
    b, principals, (interp, aide_s), tasks = await briefing_with(
        through, 2, [interpreter(), aide])
    other = await provision_briefing(through.http, 2, sfu_above=0)
    strangers = [CallSession(through.ws, other.call, side.identity(), ice=viewer_ice())
                 for side in other.sides]
    tasks += [asyncio.create_task(s.run()) for s in strangers]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in strangers)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        await other.host.operator.control(other.call, "start")
        host, guest = principals
        await everyone_hears_everyone(principals, [p.device for p in principals])
        await everyone_hears_everyone(strangers, [s.device for s in strangers])
        await hears_audio(interp, [host.device, guest.device])
        assert guest.sfu is not None
        theirs = next(f for f, link in guest.sfu.feeds.items()
                      if link.remote == host.device)
        # the aide
        await aide_s._send({"type": "sfu-publish", "sdp": "v=0\r\n"})
        await aide_s._send({"type": "sfu-refeed", "from": host.device})
        await aide_s._send({"type": "sfu-watch", "feed": theirs, "sdp": "v=0\r\n"})
        assert await refused(aide_s, "sfu-publish", 1) == ["not-permitted"]
        assert await refused(aide_s, "sfu-refeed", 1) == ["invalid"]
        assert await refused(aide_s, "sfu-watch", 1) == ["invalid"]
        assert aide_s.sfu is None or aide_s.sfu.feeds == {}
        # the interpreter: another's feed is not its to answer; its own again, audio only
        room = through.sfu.rooms[b.call]
        await interp._send({"type": "sfu-watch", "feed": theirs, "sdp": "v=0\r\n"})
        assert await refused(interp, "sfu-watch", 1) == ["invalid"]
        n = len(interp.inbox)
        await interp._send({"type": "sfu-refeed", "from": host.device})
        await asyncio.wait_for(interp.wait_for(lambda: any(
            msg["type"] == "sfu-feed" and msg["from"] == host.device
            for msg in interp.inbox[n:])), WAIT_S)
        for msg in interp.inbox:
            if msg["type"] == "sfu-feed":
                assert msg["kinds"] == ["audio"], msg["kinds"]
                assert "m=video" not in msg["sdp"]
        assert {f.kinds for f in room.feeds.values() if f.receiver == interp.device} == \
            {frozenset({MediaKind.AUDIO})}
        assert interp.frames_from(host.device, MediaKind.VIDEO) == 0
        # another briefing's device names this one's feed and principal
        await strangers[0]._send({"type": "sfu-watch", "feed": theirs, "sdp": "v=0\r\n"})
        await strangers[0]._send({"type": "sfu-refeed", "from": host.device})
        assert await refused(strangers[0], "sfu-watch", 1) == ["invalid"]
        assert await refused(strangers[0], "sfu-refeed", 1) == ["invalid"]
        assert all(f.receiver in (s.device for s in strangers)
                   for f in through.sfu.rooms[other.call].feeds.values())
        # a device outside the plan
        ws, nonce = await wire.connect(through.ws)
        try:
            await wire.send(ws, wire.hello(b.call, PrivateKey.generate(), nonce))
            err = await wire.recv(ws)
            assert err["type"] == "error" and err["fatal"] and err["code"] in ("not-admitted",
                                                                     "not-in-plan")
        finally:
            await ws.close()
        # the briefing goes on
        before = {p.device: p.frames_from(q.device, MediaKind.VIDEO)
                  for p in principals for q in principals if q is not p}
        await until(principals, lambda p: all(
            p.frames_from(q.device, MediaKind.VIDEO) > before[p.device] + FRAMES
            for q in principals if q is not p))
    finally:
        await leave_all(principals + [interp, aide_s] + strangers, tasks)


ODD_SDPS = {
    "tiny": "v=0\r\n",
    "garbage": "x" * 61_440,
    "no media": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
    "many sections": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + "".join(
        f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\n"
        f"a=rtpmap:111 opus/48000/2\r\na=sendonly\r\n" for i in range(300)),
    "nul and unicode": "v=0\r\n\x00\u202e" + "é" * 1000,
}


async def test_odd_sdp_crashes_nothing_and_shows_no_room_secret(through: Through) -> None:
    """An interpreter (who may publish) sends odd, huge and malformed offers to the SFU
    and an over-long one: each is refused (``sfu-failed`` from Janus, or ``invalid``),
    no refusal names the room, its secret or its PIN (nor Janus's secrets), the
    connection stays up, and the principals' media goes on through the same room."""
    b, principals, (interp,), tasks = await briefing_with(through, 2, [interpreter()])
    try:
        await b.host.operator.control(b.call, "start")
        await everyone_hears_everyone(principals, [p.device for p in principals])
        await hears_audio(interp, [p.device for p in principals])
        room = through.sfu.rooms[b.call]
        before = refusals(interp, "sfu-publish")
        for sdp in ODD_SDPS.values():
            await interp._send({"type": "sfu-publish", "sdp": sdp})
        await interp._send({"type": "sfu-publish", "sdp": "v=0\r\n" + "x" * 61_440})
        await interp._send({"type": "sfu-watch", "feed": "A" * 64, "sdp": "x" * 61_440})
        await interp._send({"type": "sfu-refeed", "from": "f" * 64})
        codes = await refused(interp, "sfu-publish", len(before) + len(ODD_SDPS))
        assert set(codes[len(before):]) <= {"sfu-failed", "invalid"}, codes
        await refused(interp, "sfu-refeed", 1)
        secrets_ = [room.pin, room.secret, str(room.room), through.janus.api_secret,
                    through.janus.admin_key]
        text = repr([m for m in interp.inbox if m["type"] == "error"])
        assert not [s for s in secrets_ if s in text], text
        for p in principals:  # (the room's number is in Janus's SDP: "s=VideoRoom <room>")
            assert not [s for s in secrets_[:2] + secrets_[3:] if s in repr(p.inbox)]
        # the room and the call go on (the interpreter's own client publishes again)
        assert b.call in through.sfu.rooms and through.sfu.rooms[b.call] is room
        before_v = {p.device: p.frames_from(q.device, MediaKind.VIDEO)
                    for p in principals for q in principals if q is not p}
        await until(principals, lambda p: all(
            p.frames_from(q.device, MediaKind.VIDEO) > before_v[p.device] + FRAMES
            for q in principals if q is not p))
        assert interp.joined.is_set()
    finally:
        await leave_all(principals + [interp], tasks)


async def test_a_device_that_left_opens_nothing_of_a_replayed_old_key(
        through: Through) -> None:
    """After a device leaves, a hostile server replays to a remaining receiver the
    sender's old ``frame-key`` messages (key 0): the sender seals under key 1, which
    only the present devices hold; what the leaver kept (key 0) opens nothing sealed
    since, and the replayed old key changes nothing for the receiver. (A leaver that
    COMES BACK is F5.)"""
    b, sessions, tasks = await briefing(through)
    try:
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        first, second, leaver = sessions
        old: list[dict[str, Any]] = [m for m in second.inbox if m["type"] == "frame-key"
                                     and m["from"] == first.device and m["keys"]]
        assert old
        await leaver.leave()
        await until([first, second], lambda s: s.crypt is not None
                    and all(s.crypt.key_id(k) == 1 for k in KINDS))
        await until([second], lambda s: all(1 in s.crypt.openers[first.device, k].keys  # type: ignore[union-attr]
                                            for k in KINDS))
        # the hostile server replays first's old frame-key to second
        room = through.sfu.rooms[b.call]
        assert room.owner is not None
        for msg in old:
            room.owner.endpoints[second.device].send(msg)
        async with tapped(through, b.call, first.device) as tap:
            await collect(tap, [first, second], devices[:2], first.device)
        frames = {"video": from_key(tap.video), "audio": tap.audio}
        assert {key_id_of(f) for k in KINDS for f in frames[k]} == {1}
        assert leaver.crypt is not None
        assert not opened_by(leaver, first.device, frames)
        assert second.crypt is not None
        assert len(opened_by(second, first.device, frames)) == \
            len(frames["video"]) + len(frames["audio"])
        assert pictures(opened(from_key(tap.video), first, "video"))[0] > 0
    finally:
        await leave_all(sessions, tasks)


def opened_by(s: CallSession, sender: str, frames: dict[str, list[bytes]]) -> list[bytes]:
    """The frames (per kind) ``s``'s keys of ``sender`` of that kind open, in an opener of
    their own (``s``'s own has opened the frames it decoded, and refuses them again as
    replays)."""
    assert s.crypt is not None
    out = []
    for kind, kind_frames in frames.items():
        opener = FrameOpener()
        for key in getattr(s.crypt.openers.get((sender, kind)), "keys", {}).values():
            opener.add(key)
        for data in kind_frames:
            try:
                out.append(opener.open(data))
            except FrameError:
                pass
    return out


async def test_a_raw_client_in_the_room_with_the_pin_cannot_publish_as_a_device(
        through: Through) -> None:
    """A raw aiortc client that holds the room's PIN (a compromised Janus) can subscribe
    (see test_sfu_janus) but its frames, published under a plan device's ``display``,
    reach no endpoint: the server brokers feeds only of the publishers it made, and a
    frame under no key of that device opens nowhere. (The room takes as many publishers
    as the plan has participants: an aide, who publishes nothing, leaves a slot free.)"""
    aide = (0, PrivateKey.generate(), Role.AIDE, "Aide", "en")
    b, sessions, others, tasks = await briefing_with(through, 2, [aide])
    try:
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        host, guest = sessions
        room = through.sfu.rooms[b.call]
        # a raw publisher, display = the host's fingerprint, with the PIN
        from aiortc import RTCPeerConnection

        from summitline.client.media import PatternVideoTrack
        pc = RTCPeerConnection(viewer_ice().configuration())
        pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        api = JanusApi(through.janus.url, through.janus.api_secret)
        own = JanusSession(session=await api._create_session())
        api._start_poll(own)
        try:
            await pc.setLocalDescription(await pc.createOffer())
            handle = await api._attach(own.session, VIDEOROOM)
            reply = await api._message(own, handle, {
                "request": "joinandconfigure", "ptype": "publisher", "room": room.room,
                "pin": room.pin, "display": host.device, "audio": False, "video": True},
                {"type": "offer", "sdp": pc.localDescription.sdp, "e2ee": True})
            await pc.setRemoteDescription(RTCSessionDescription(reply["jsep"]["sdp"],
                                                                "answer"))
            before = guest.frames_from(host.device, MediaKind.VIDEO)
            refused_before = guest.sfu.refused if guest.sfu else 0
            await asyncio.wait_for(guest.wait_for(lambda: guest.frames_from(
                host.device, MediaKind.VIDEO) > before + 2 * FRAMES), WAIT_S)
            # the guest's feeds are the broker's, of the host's real publisher only
            assert guest.sfu is not None
            assert {f.publisher for f in room.feeds.values()
                    if f.receiver == guest.device} == {room.publishers[host.device].id}
            assert guest.sfu.refused == refused_before
            assert guest.alarms == []
        finally:
            await pc.close()
            await api._end_session(own)
            await api.aclose()
    finally:
        await leave_all(sessions + others, tasks)


# -- F4 -------------------------------------------------------------------------------------
def smuggle_audio_label(sdp: str) -> str:
    """The offer with a line inside its video section, before its ``a=mid``, that holds
    ``m=audio`` after a form feed: Janus reads one attribute ``a=x-note:...`` there;
    Python's ``str.splitlines`` (server/sfu.py ``mids``) splits at the form feed too,
    and so takes the video section's mid for the audio's."""
    out, kind = [], ""
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        if kind == "video" and line.startswith("a=mid:"):
            out.append("a=x-note:hello\x0cm=audio 9 UDP/TLS/RTP/SAVPF 111")
        out.append(line)
    return "\r\n".join(out)


async def next_type(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        msg = await wire.recv(ws)
        if msg["type"] == kind or msg["type"] == "error":
            return msg


async def test_f4_an_interpreter_cannot_send_video_as_its_audio(through: Through) -> None:
    """F4 (low): the server learns a publisher's streams by parsing its offer
    with ``str.splitlines`` (server/sfu.py ``mids``), which also splits at form feeds,
    \\x1c-\\x1e, \\x85, U+2028/9; Janus splits at CRLF only. An interpreter (audio only to
    the principals, section 3.2) publishes audio AND video, with a form feed line that
    makes ``mids`` take its VIDEO stream's mid as its audio's: the server subscribes
    every principal to the interpreter's video, labelled ``kinds: ["audio"]`` (the
    receivers' own check reads the label). The plan's "interpreter -> principal: audio"
    is the server's to keep here and it does not (the Python endpoint still drops a
    track of a kind it was not granted, with an alarm: peer.py ``_on_track``; the
    browser's SFU client, web/sfu.js, does not exist yet). Fix: parse SDP as Janus does (CRLF/LF
    only; refuse any other control character in an offer), better: take the mids and
    kinds from Janus's own answer / ``configured`` event ("streams": type, mid), and
    have the endpoint drop any m= section of a feed not in ``kinds``."""
    from aiortc import RTCPeerConnection

    from summitline.client.media import PatternVideoTrack, ToneAudioTrack
    interp_key = PrivateKey.generate()
    b = await provision_briefing(through.http, 2, sfu_above=0, extra=[
        (1, interp_key, Role.INTERPRETER, "Interpreter", FOREIGN_LANGUAGE)])
    principals = [CallSession(through.ws, b.call, side.identity(), ice=viewer_ice())
                  for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in principals]
    pc = RTCPeerConnection(viewer_ice().configuration())
    ws = None
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in principals)),
                               WAIT_S)
        await b.host.operator.control(b.call, "start")
        await everyone_hears_everyone(principals, [p.device for p in principals])
        ws, _ = await wire.join(through.ws, b.call, interp_key)
        # video first: its section's mid is the first that ``mids`` files under audio
        pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        pc.addTransceiver(ToneAudioTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        await wire.send(ws, {"type": "sfu-publish",
                             "sdp": smuggle_audio_label(pc.localDescription.sdp)})
        answer = await next_type(ws, "sfu-published")
        assert answer["type"] == "sfu-published", answer  # Janus took the offer
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        host = principals[0]
        await asyncio.wait_for(host.wait_for(lambda: any(
            m["type"] == "sfu-feed" and m["from"] == interp_key.fingerprint
            for m in host.inbox)), WAIT_S)
        feed = next(m for m in host.inbox
                    if m["type"] == "sfu-feed" and m["from"] == interp_key.fingerprint)
        assert feed["kinds"] == ["audio"]
        # SECURE: a feed labelled audio carries no video section (Janus's offer)
        assert "m=video" not in feed["sdp"], (
            "the server subscribed the principal to the interpreter's video, as audio")
    finally:
        await pc.close()
        if ws is not None:
            await ws.close()
        await leave_all(principals, tasks)


# -- F5 -------------------------------------------------------------------------------------
async def test_f5_a_device_that_comes_back_cannot_open_what_was_sent_while_it_was_away(
        through: Through) -> None:
    """F5 (medium): keys rotate when a device leaves, but not when one joins. A device
    that left and joins again is handed the senders' CURRENT key, the one they sealed
    with while it was away; whoever kept the ciphertext of that time (Janus, the server:
    the host's) gives it the frames, and it opens what was said after it left, when the
    others believed it gone. Claim broken: "a device that left cannot decode what is sent
    after it left". Fix: a sender rotates on ``peer-joined`` too (or whenever it hands
    its key to a device that did not hold the current one), and hands the newcomer only
    a key it makes then."""
    b = await provision_briefing(through.http, 3, sfu_above=0)
    sessions = [CallSession(through.ws, b.call, side.identity(), ice=viewer_ice())
                for side in b.sides]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    back: CallSession | None = None
    try:
        await asyncio.wait_for(asyncio.gather(*(s.joined.wait() for s in sessions)), WAIT_S)
        await b.host.operator.control(b.call, "start")
        devices = [s.device for s in sessions]
        await everyone_hears_everyone(sessions, devices)
        first, second, leaver = sessions
        await leaver.leave()
        await until([first, second], lambda s: s.crypt is not None
                    and all(s.crypt.key_id(k) == 1 for k in KINDS))
        # while it is away, Janus's operator keeps what the first principal sends
        async with tapped(through, b.call, first.device) as tap:
            await collect(tap, [first, second], devices[:2], first.device)
        away = {"video": from_key(tap.video), "audio": tap.audio}
        assert {key_id_of(f) for k in KINDS for f in away[k]} == {1}
        # it comes back (the same device, a new session)
        back = CallSession(through.ws, b.call, b.sides[2].identity(), ice=viewer_ice())
        tasks.append(asyncio.create_task(back.run()))
        await asyncio.wait_for(back.joined.wait(), WAIT_S)
        await asyncio.wait_for(back.wait_for(lambda: back.frames_from(
            first.device, MediaKind.VIDEO) > FRAMES), WAIT_S)
        # SECURE: nothing sealed while it was away opens with what it holds now
        got = opened_by(back, first.device, away)
        assert got == [], (f"the device that came back opened {len(got)} of "
                           f"{len(away['video']) + len(away['audio'])} "
                           f"frames sent while it was away; {pictures(got)[0]} pictures")
    finally:
        await leave_all(sessions + ([back] if back else []), tasks)


# -- the route is the plan's and the server's together ---------------------------------------
async def test_a_hostile_server_cannot_put_a_mesh_briefing_on_its_sfu(
        ws_url: str, http: httpx.AsyncClient) -> None:
    """A hostile server says ``sfu: true`` in the welcome of a briefing whose plan does
    not want the SFU (two endpoints, threshold absent: 5), and to a second pair changes
    the plan's ``sfu_above`` to 0 to make it want it: the first pair stays on the mesh
    (no publish, frames not forced through a key exchange, peer to peer), the second
    refuses the plan (its hash no longer matches the signatures)."""
    def say_sfu(_: Wire, msg: dict[str, Any]) -> dict[str, Any] | None:
        if msg.get("type") == "welcome":
            msg = {**msg, "sfu": True}
        return msg

    mesh = await provision_briefing(http, 2)
    async with hostile(ws_url, down=say_sfu) as proxy:
        a, c = (CallSession(proxy.url, mesh.call, side.identity(), ice=loopback())
                for side in mesh.sides)
        tasks = [asyncio.create_task(s.run()) for s in (a, c)]
        try:
            await asyncio.wait_for(asyncio.gather(a.joined.wait(), c.joined.wait()), WAIT_S)
            await mesh.host.operator.control(mesh.call, "start")
            await until([a, c], lambda s: all(s.frames_from(t.device, k) > FRAMES
                                              for t in (a, c) if t is not s
                                              for k in MediaKind))
            assert a.sfu is None and c.sfu is None
            assert a.link(c.device) is not None
            assert not [m for w in proxy.wires for m in w.seen_up
                        if str(m.get("type", "")).startswith("sfu-")]
        finally:
            await leave_all([a, c], tasks)

    def want_sfu(_: Wire, msg: dict[str, Any]) -> dict[str, Any] | None:
        if msg.get("type") == "welcome":
            plan = {**msg["signed_plan"]["plan"], "sfu_above": 0}
            msg = {**msg, "sfu": True, "signed_plan": {**msg["signed_plan"], "plan": plan}}
        return msg

    other = await provision_briefing(http, 2)
    async with hostile(ws_url, down=want_sfu) as proxy:
        s = CallSession(proxy.url, other.call, other.sides[0].identity(), ice=loopback(),
                        reconnect=False)
        with pytest.raises(PlanRejected):
            await asyncio.wait_for(s.run(), WAIT_S)
        assert s.sfu is None


async def test_a_forged_frame_key_for_another_sender_is_refused(through: Through) -> None:
    """An interpreter (a device of the plan) signs a ``frame-key`` with a media key of
    its own choosing; the hostile server relays it to the guest principal as ``from``
    the host principal. The guest refuses it (alarm): the signature is not the host's
    device key, and its keys of the host stay what the host sent; the host's media
    decodes on, and a frame sealed under the forged key opens nowhere."""
    from summitline.crypto import framekeys
    from summitline.crypto.framekeys import EcdhKey

    iside, ikey, irole, iname, ilang = interpreter()
    b, principals, (interp,), tasks = await briefing_with(
        through, 2, [(iside, ikey, irole, iname, ilang)])
    try:
        await b.host.operator.control(b.call, "start")
        host, guest = principals
        await everyone_hears_everyone(principals, [p.device for p in principals])
        assert guest.crypt is not None
        keys_before = {k: dict(guest.crypt.openers[host.device, k].keys) for k in KINDS}
        alarms = len(guest.alarms)
        forged_key = FrameKey.generate(7)
        msg = framekeys.message(ikey, EcdhKey(), call=b.call, plan_hash=b.plan.hash,
                                receiver=guest.device, peer_ecdh=guest.crypt.ecdh.public,
                                keys={"audio": forged_key})
        relayed = {k: v for k, v in msg.items() if k != "to"} | {"from": host.device}
        room = through.sfu.rooms[b.call]
        assert room.owner is not None
        room.owner.endpoints[guest.device].send(relayed)
        await asyncio.wait_for(guest.wait_for(lambda: len(guest.alarms) > alarms), WAIT_S)
        assert {k: guest.crypt.openers[host.device, k].keys for k in KINDS} == keys_before
        with pytest.raises(FrameError):
            guest.crypt.open(host.device, "audio",
                             FrameSealer(forged_key).seal("opus", b"\xfcforged"))
        before = guest.frames_from(host.device, MediaKind.VIDEO)
        await asyncio.wait_for(guest.wait_for(lambda: guest.frames_from(
            host.device, MediaKind.VIDEO) > before + FRAMES), WAIT_S)
    finally:
        await leave_all(principals + [interp], tasks)

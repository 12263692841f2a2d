"""Video and audio that heal: what a lossy long-haul path does to a call, undone per link.

aiortc (read from 1.16.0) leaves a call's media to four things that do not hold on a
150 ms, 2 % loss path:

* its video jitter buffer waits for every missing packet; when NACK cannot bring one
  back (the NACK or the retransmission is lost too) it asks for a keyframe only once
  512 packets have piled up behind the hole: half a minute of frozen video at 15
  packets a second;
* its encoder sends a keyframe every 3000 frames unless asked;
* its audio jitter buffer holds four packets before it plays one (80 ms on a clean
  path), stalls on a lost packet until 16 more have come, throws away the frame before
  the hole too, and from then on plays 300 ms late;
* its receiver decodes at most one frame per packet that arrives, so frames that waited
  behind a hole, or came in a burst, stay that late for good.

``heal(pc)`` gives the receivers of that one peer connection ``VideoFrameBuffer`` and
``AudioReorderBuffer`` below instead of aiortc's jitter buffers, which hand every frame
that is ready to the receiver's decoder at once, and makes its video senders send a
keyframe every ``KEYFRAME_INTERVAL_S``; video receivers say each NACK twice. Nothing is
changed process-wide; the private parts of aiortc this touches are named in one place
each (``_install``, ``_nack_twice``, ``_force_keyframe``), with the reason.

A buffer is called as aiortc's is, ``add(packet) -> (send a PLI?, None)``, once per RTP
packet; the receiver sends a picture loss indication (PLI) when told to. The sender of
the other side answers a PLI with a keyframe (aiortc's ``RTCRtpSender`` forces the next
encoded frame to be one, for VP8 and H.264 alike).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, fields

from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.sdp import SessionDescription

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# A packet this far behind what a buffer already handed on is no late packet but a stream
# that started again (a new sender on the same receiver): the buffer starts again too.
STREAM_RESTART = 3000
# Where a buffer hands a frame ready for the decoder, with the payload type of its packets.
Deliver = Callable[[JitterFrame, int], None]

# --- video ---------------------------------------------------------------------------------

# The round trip assumed until the senders of the link have measured one (RTCP): the
# long-haul path summitline is built for (150 ms each way).
DEFAULT_RTT_S = 0.3
# A retransmission asked for by NACK arrives one round trip later, give or take the
# path's jitter (+-20 ms each way; the measured round trip is an average). A hole still
# open after that is given up on: a PLI goes out. Sending it too early costs the sender
# one keyframe (the buffer still takes the retransmission if it comes first); too late
# is frozen video: on the long-haul path a given-up hole already freezes the picture for
# about 0.85 s (the hole seen, this wait, the PLI's way there and the keyframe's back).
RETRANSMISSION_MARGIN_S = 0.06
# Every PLI is said twice, this far apart: one lost PLI, or one lost keyframe (the
# second PLI makes the next frame a keyframe too), would otherwise add a round trip to
# the freeze. The echo goes only if the buffer still waits for a keyframe.
PLI_ECHO_S = 0.05
# aiortc's sender keeps the last 128 packets for retransmission, and its receiver stops
# asking for packets more than 128 behind the newest: a hole further back never fills.
NACK_REACH = RTP_HISTORY_SIZE
# A packet after this much silence, behind a hole, is a link coming back: what was lost
# in between is stale, so a keyframe is asked for at once rather than after a round trip.
RESUME_QUIET_S = 0.5
# Held packets; beyond this the oldest go and the buffer waits for a keyframe. It only
# fills when keyframes stop coming: 512 is aiortc's own, 4 s at 1.5 Mbit/s.
VIDEO_CAPACITY = 512
# The encoder's GOP: a keyframe at least this often, so that a receiver whose PLIs are all
# lost still resynchronises. Measured on a noisy 15 fps source at aiortc's 500 kbit/s: a
# keyframe every 1 s costs 10 % (320x240) to 27 % (640x480) of the delta frames' bits,
# every 3 s 2 % to 7 %, every 5 s 1 % to 3 %.
KEYFRAME_INTERVAL_S = 3.0
RTT_POLL_S = 1.0  # how often the link's round trip is read from its senders' statistics

# --- audio ---------------------------------------------------------------------------------

# How long a missing packet is waited for, from when a packet after it came. A packet that
# comes in order is handed on at once (nothing added on a clean path); one missing holds
# those behind it until it comes or this long has passed. In time, not in packets:
# packets that bunched up on the way (a busy relay, a congested hop) come out of order
# within the path's jitter however many they are. 30 ms is one 20 ms packet overtaken by
# the next on the long haul's +-20 ms.
AUDIO_MIN_WAIT_S = 0.03
# ...and only on a packet that came at the pace of the stream: at least half as long after
# the one before as the audio between them lasts, and not first after a silence of
# AUDIO_SILENCE_S. Packets that come faster are an endpoint reading what queued up while
# its event loop stalled (a busy machine), or a burst off a congested hop: the missing
# packet may be next in line, though the wait has passed by the clock.
AUDIO_PACE = 0.5
AUDIO_SILENCE_S = 0.1
# ...unless this many packets wait behind it (320 ms of 20 ms packets): a loop that is
# always behind reads everything in bursts, and audio must still go on.
AUDIO_MAX_HELD = 16
OPUS_CLOCK_RATE = 48_000  # when the payload type is not known
# A packet that comes after it was given up teaches the buffer to wait that long, and this
# much more...
AUDIO_WAIT_STEP_S = 0.02
# ...up to this: the lateness a 300 ms round-trip path can show.
AUDIO_MAX_WAIT_S = 0.3
# The wait is kept while packets need most of it, and for this long after the last one
# did (late packets come in bursts), then comes down AUDIO_WAIT_STEP_S per AUDIO_DECAY_S.
AUDIO_HOLD_S = 10.0
AUDIO_DECAY_S = 1.0
AUDIO_GIVEN_UP_MEMORY = 64  # packets given up on, remembered to learn from their lateness


@dataclass
class HealingStatistics:
    """What the healing buffers of one peer connection did, summed over its receivers."""

    plis: int = 0  # picture loss indications asked for
    video_frames: int = 0  # video frames handed to the decoder
    video_keyframes: int = 0  # of which keyframes
    video_skipped: int = 0  # video frames given up on to resume at a keyframe
    video_late: int = 0  # video packets after their frame went (a second retransmission)
    audio_frames: int = 0  # audio frames handed to the decoder
    audio_lost: int = 0  # audio packets given up on
    audio_late: int = 0  # audio packets that came after they were given up on
    audio_wait_ms: int = 0  # the longest current wait for a missing audio packet

    def __add__(self, other: HealingStatistics) -> HealingStatistics:
        total = HealingStatistics()
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(total, f.name, max(a, b) if f.name == "audio_wait_ms" else a + b)
        return total


class _Unwrapper:
    """16-bit RTP sequence numbers to a count that does not wrap."""

    def __init__(self) -> None:
        self._last: int | None = None

    def extend(self, seq: int) -> int:
        if self._last is None:
            self._last = seq
            return seq
        step = ((seq - self._last + 0x8000) & 0xFFFF) - 0x8000
        extended = self._last + step
        self._last = max(self._last, extended)
        return extended


def _data(packet: RtpPacket) -> bytes:
    # aiortc's receiver puts the depayloaded bytes on the packet as ``_data`` before it
    # hands it to the jitter buffer (rtcrtpreceiver.py, 1.16.0); its own buffer reads the
    # same attribute.
    data: bytes = getattr(packet, "_data", b"")
    return data


def vp8_keyframe_start(payload: bytes) -> bool:
    """The first packet of a VP8 key frame (RFC 7741: S=1, partition 0, P bit clear)."""
    try:
        descriptor, rest = VpxPayloadDescriptor.parse(payload)
    except ValueError:
        return False
    return (descriptor.partition_start == 1 and descriptor.partition_id == 0
            and len(rest) > 0 and rest[0] & 0x01 == 0)


H264_SPS, H264_STAP_A = 7, 24


def h264_keyframe_start(payload: bytes) -> bool:
    """The first packet of an H.264 IDR access unit: it opens with the sequence parameter
    set, alone or first in a STAP-A (RFC 6184), as aiortc and browsers send it."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == H264_STAP_A:
        return len(payload) > 3 and payload[3] & 0x1F == H264_SPS
    return nal == H264_SPS


KEYFRAME_START: dict[str, Callable[[bytes], bool]] = {
    "vp8": vp8_keyframe_start,
    "h264": h264_keyframe_start,
}


class VideoFrameBuffer:
    """Reassembles video frames and never waits on a hole longer than a round trip.

    Frames go to the decoder in order, complete, and only from a keyframe on: after a hole
    the buffer either gets the missing packets back (NACK) or resumes at the next complete
    keyframe, whichever comes first, and asks for that keyframe (PLI) as soon as the hole
    has outlived a retransmission, lies beyond NACK's reach, or follows a silence.

    Every frame ready is handed to ``deliver`` as soon as it is, not one per packet:
    the frames that waited behind a hole go together once it is filled.
    ``keyframe_start(payload_type, payload)`` tells a keyframe's first packet (None: a
    codec the buffer cannot read, whose frames are then only ever taken in order);
    ``round_trip()`` is the link's current round trip in seconds.
    """

    def __init__(self, deliver: Deliver, keyframe_start: Callable[[int, bytes], bool | None],
                 round_trip: Callable[[], float] = lambda: DEFAULT_RTT_S,
                 clock: Clock = time.monotonic, capacity: int = VIDEO_CAPACITY) -> None:
        self._deliver = deliver
        self._keyframe_start = keyframe_start
        self._round_trip = round_trip
        self._clock = clock
        self.capacity = capacity
        self._held: dict[int, RtpPacket] = {}
        self._keys: set[int] = set()  # held packets that start a keyframe
        self._seq = _Unwrapper()
        self._floor: int | None = None  # everything below was decoded or given up
        self._in_step = False  # the packet at the floor starts a frame the decoder can use
        self._newest: int | None = None
        self._hole: int | None = None  # the first missing packet while frames wait behind it
        self._stuck_since: float | None = None
        self._last_arrival: float | None = None
        self._last_pli = float("-inf")
        self._echo_at: float | None = None  # when to say the last PLI again
        self._keyframe_wanted = False
        self.stats = HealingStatistics()

    def statistics(self) -> HealingStatistics:
        return self.stats

    def request_keyframe(self) -> None:
        """Ask for a keyframe with the next packet (a link that resumed)."""
        self._keyframe_wanted = True

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        quiet = 0.0 if self._last_arrival is None else now - self._last_arrival
        self._last_arrival = now
        seq = self._seq.extend(packet.sequence_number)
        if self._floor is not None and seq < self._floor - STREAM_RESTART:
            self._restart()
            seq = self._seq.extend(packet.sequence_number)
        if self._floor is not None and seq < self._floor:
            self.stats.video_late += 1
        elif seq not in self._held:
            self._hold(seq, packet)
        while self._next_frame(now):
            pass
        if quiet >= RESUME_QUIET_S and self._stuck_since is not None:
            self._keyframe_wanted = True
        return self._pli_due(now), None

    def _restart(self) -> None:
        self._held.clear()
        self._keys.clear()
        self._seq = _Unwrapper()
        self._floor = self._newest = self._hole = self._stuck_since = None
        self._in_step = False

    def _hold(self, seq: int, packet: RtpPacket) -> None:
        self._held[seq] = packet
        self._newest = seq if self._newest is None else max(self._newest, seq)
        starts = self._keyframe_start(packet.payload_type, packet.payload)
        if starts:
            self._keys.add(seq)
        elif starts is None and self._floor is None:
            # A codec this buffer cannot read: take its frames in order from the first.
            self._floor, self._in_step = seq, True
        if len(self._held) > self.capacity:
            self._overflow()

    def _overflow(self) -> None:
        """Keyframes stopped coming: keep the newest half and wait for one."""
        keep = sorted(self._held)[len(self._held) // 2:]
        self._drop_below(keep[0])
        self._in_step = False
        self._keyframe_wanted = True

    def _next_frame(self, now: float) -> bool:
        """Deliver the next frame if it is ready; whether one was."""
        key = self._newest_complete_keyframe()
        if key is not None and (not self._in_step or self._floor is None or key > self._floor):
            log.debug("video resumes at the keyframe %d (floor %s, hole %s)", key,
                      self._floor, self._hole)
            self._drop_below(key)  # nothing before a complete keyframe is needed
            self._in_step = True
        if not self._in_step:
            if not self._held:
                self._stuck_since = None
            elif self._stuck_since is None:
                self._stuck_since = now
            return False
        assert self._floor is not None
        end, missing = self._frame_from(self._floor)
        if end is not None:
            self._take(self._floor, end)
            return True
        if missing is not None and self._newest is not None and self._newest > missing:
            self._hole = missing
            if self._stuck_since is None:
                self._stuck_since = now
        return False

    def _frame_from(self, start: int) -> tuple[int | None, int | None]:
        """The last packet of the complete frame at ``start``, else the first one missing."""
        first = self._held.get(start)
        if first is None:
            return None, start
        seq = start
        while True:
            packet = self._held[seq]
            if packet.marker:
                return seq, None
            following = self._held.get(seq + 1)
            if following is None:
                return None, seq + 1
            if following.timestamp != first.timestamp:
                return seq, None  # the marker was not set: the next frame has begun
            seq += 1

    def _newest_complete_keyframe(self) -> int | None:
        for key in sorted(self._keys, reverse=True):
            end, _ = self._frame_from(key)
            if end is not None:
                return key
        return None

    def _take(self, start: int, end: int) -> None:
        packets = [self._held.pop(seq) for seq in range(start, end + 1)]
        if start in self._keys:
            self.stats.video_keyframes += 1
        self._keys.difference_update(range(start, end + 1))
        self._floor = end + 1
        self._hole = None
        self._stuck_since = None
        self.stats.video_frames += 1
        frame = JitterFrame(data=b"".join(_data(p) for p in packets),
                            timestamp=packets[0].timestamp)
        self._deliver(frame, packets[0].payload_type)

    def _drop_below(self, seq: int) -> None:
        dropped = [s for s in self._held if s < seq]
        timestamps = {self._held[s].timestamp for s in dropped}
        for s in dropped:
            del self._held[s]
        self._keys.difference_update(dropped)
        self.stats.video_skipped += len(timestamps)
        self._floor = seq if self._floor is None else max(self._floor, seq)
        self._hole = None
        self._stuck_since = None

    def _pli_due(self, now: float) -> bool:
        if self._echo_at is not None and now >= self._echo_at:
            self._echo_at = None
            if self._stuck_since is not None:
                self.stats.plis += 1
                log.debug("PLI again")
                return True
        wait = self._round_trip() + RETRANSMISSION_MARGIN_S
        wanted = self._keyframe_wanted
        if self._stuck_since is not None:
            out_of_reach = (self._hole is not None and self._newest is not None
                            and self._newest - self._hole >= NACK_REACH)
            wanted = wanted or out_of_reach or now - self._stuck_since >= wait
        if not wanted or now - self._last_pli < wait:
            return False
        log.debug("PLI: hole %s, stuck %.3f s, asked %s", self._hole,
                  -1.0 if self._stuck_since is None else now - self._stuck_since,
                  self._keyframe_wanted)
        self._last_pli = now
        self._echo_at = now + PLI_ECHO_S
        self._keyframe_wanted = False
        self.stats.plis += 1
        return True


class AudioReorderBuffer:
    """Puts audio packets back in order, and waits for a missing one only while it may still
    come: for ``wait_s`` after a packet behind it came, and until one comes at the pace of
    the stream.

    Every frame ready is handed to ``deliver`` at once: in order, a packet goes on as it
    comes, and those held behind a missing one go together when it comes or is given up.
    The wait starts at ``AUDIO_MIN_WAIT_S``, grows to what the packets that came too late
    would have needed (up to ``AUDIO_MAX_WAIT_S``), and comes back down when they stop.
    """

    def __init__(self, deliver: Deliver, clock: Clock = time.monotonic,
                 clock_rate: Callable[[int], int | None] = lambda payload_type: None) -> None:
        self._deliver = deliver
        self._clock = clock
        self._clock_rate = clock_rate
        self._held: dict[int, tuple[RtpPacket, float]] = {}  # with when it came
        self._seq = _Unwrapper()
        self._next: int | None = None  # the packet to hand on next
        self._newest: int | None = None
        self.wait_s = AUDIO_MIN_WAIT_S
        self._wait_needed_at = clock()
        self._given_up: dict[int, float] = {}  # packet -> since when a later one was here
        self._last: tuple[float, int] | None = None  # when the last packet came, its timestamp
        self.stats = HealingStatistics()

    def statistics(self) -> HealingStatistics:
        self.stats.audio_wait_ms = round(self.wait_s * 1000)
        return self.stats

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        paced = self._paced(now, packet)
        seq = self._seq.extend(packet.sequence_number)
        if self._next is not None and seq < self._next - STREAM_RESTART:
            self._seq, self._next, self._newest = _Unwrapper(), None, None
            self._held.clear()
            seq = self._seq.extend(packet.sequence_number)
        if self._next is None:
            self._next = seq
        if seq < self._next:
            self.stats.audio_late += 1
            seen = self._given_up.pop(seq, None)
            if seen is not None:
                log.debug("audio packet %d came %.3f s after a later one, given up", seq,
                          now - seen)
                self._needed(now - seen, now, grow=True)
            return False, None
        if self._held and self._newest is not None and seq < self._newest:
            self._needed(now - self._first_after(seq), now, grow=False)  # overtaken
        self._held[seq] = (packet, now)
        self._newest = seq if self._newest is None else max(self._newest, seq)
        self._decay(now)
        self._release(now, paced)
        return False, None

    def _paced(self, now: float, packet: RtpPacket) -> bool:
        """Whether ``packet`` came at the pace of the stream (see AUDIO_PACE)."""
        last, self._last = self._last, (now, packet.timestamp)
        if last is None:
            return False
        rate = self._clock_rate(packet.payload_type) or OPUS_CLOCK_RATE
        step = ((packet.timestamp - last[1] + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        gap = now - last[0]
        return AUDIO_PACE * abs(step) / rate <= gap < AUDIO_SILENCE_S

    def _first_after(self, seq: int) -> float:
        """Since when a packet after ``seq`` has been here: how long it was missed."""
        return min(came for s, (_, came) in self._held.items() if s > seq)

    def _needed(self, lateness: float, now: float, grow: bool) -> None:
        """A packet came this late: wait that long if it came too late; either way keep
        the wait while packets need most of it."""
        if grow and lateness >= self.wait_s:
            self.wait_s = min(lateness + AUDIO_WAIT_STEP_S, AUDIO_MAX_WAIT_S)
        if lateness >= self.wait_s / 2:
            self._wait_needed_at = now

    def _decay(self, now: float) -> None:
        if self.wait_s > AUDIO_MIN_WAIT_S and now - self._wait_needed_at >= AUDIO_HOLD_S:
            self.wait_s = max(self.wait_s - AUDIO_WAIT_STEP_S, AUDIO_MIN_WAIT_S)
            self._wait_needed_at = now - AUDIO_HOLD_S + AUDIO_DECAY_S  # the next step

    def _release(self, now: float, paced: bool) -> None:
        assert self._next is not None
        while self._held:
            if self._next not in self._held:
                seen = min(came for _, came in self._held.values())
                if now - seen < self.wait_s or not (paced or len(self._held) > AUDIO_MAX_HELD):
                    return  # it may still come
                self._give_up(min(self._held), seen)
            packet, _ = self._held.pop(self._next)
            self._next += 1
            self.stats.audio_frames += 1
            self._deliver(JitterFrame(data=_data(packet), timestamp=packet.timestamp),
                          packet.payload_type)

    def _give_up(self, resume: int, seen: float) -> None:
        assert self._next is not None
        for seq in range(max(self._next, resume - AUDIO_GIVEN_UP_MEMORY), resume):
            self._given_up[seq] = seen
        while len(self._given_up) > AUDIO_GIVEN_UP_MEMORY:
            del self._given_up[next(iter(self._given_up))]
        self.stats.audio_lost += resume - self._next
        self._next = resume


# --- per peer connection ---------------------------------------------------------------------

Buffer = VideoFrameBuffer | AudioReorderBuffer


class _Healing:
    """What ``heal`` keeps for one peer connection."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = weakref.ref(pc)
        self.buffers: list[Buffer] = []
        self.round_trip_s: float | None = None  # measured by this link's senders
        self.codecs: dict[int, RTCRtpCodecParameters] = {}  # by payload type
        self.task: asyncio.Task[None] | None = None

    def round_trip(self) -> float:
        return DEFAULT_RTT_S if self.round_trip_s is None else self.round_trip_s

    def keyframe_start(self, payload_type: int, payload: bytes) -> bool | None:
        codec = self._codec(payload_type)
        reader = None if codec is None else KEYFRAME_START.get(codec.name.lower())
        return None if reader is None else reader(payload)

    def clock_rate(self, payload_type: int) -> int | None:
        codec = self._codec(payload_type)
        return None if codec is None else codec.clockRate

    def _codec(self, payload_type: int) -> RTCRtpCodecParameters | None:
        """From the remote description: its payload types are what the remote sends."""
        if payload_type not in self.codecs:
            pc = self._pc()
            description = pc.remoteDescription if pc is not None else None
            for media in SessionDescription.parse(description.sdp).media if description else []:
                for codec in media.rtp.codecs:
                    if codec.payloadType is not None:
                        self.codecs[codec.payloadType] = codec
        return self.codecs.get(payload_type)


_healed: weakref.WeakKeyDictionary[RTCPeerConnection, _Healing] = weakref.WeakKeyDictionary()


def heal(pc: RTCPeerConnection, *, keyframe_interval_s: float = KEYFRAME_INTERVAL_S) -> None:
    """Make this peer connection's media heal. Call it right after creating ``pc``, on
    the event loop (it starts one small task, which ends with the connection).

    Receivers made later (by ``setRemoteDescription``) are healed as their track
    appears, before any packet reaches them; receivers that exist already are healed
    now, so a call after negotiation works too, as long as no media has flowed yet.
    Video senders send a keyframe at least every ``keyframe_interval_s``. Calling it
    twice changes nothing.
    """
    if pc in _healed:
        return
    healing = _healed[pc] = _Healing(pc)
    for transceiver in pc.getTransceivers():
        _heal_receiver(transceiver.receiver, transceiver.kind, healing)

    def on_track(track: MediaStreamTrack) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is track:
                _heal_receiver(transceiver.receiver, track.kind, healing)

    def on_state() -> None:
        if pc.connectionState in ("failed", "closed") and healing.task is not None:
            # Not kept: a cancelled task holds its CancelledError, whose traceback holds
            # the task's last frame and what it held (the senders, so the connection).
            task, healing.task = healing.task, None
            task.cancel()

    pc.on("track", on_track)
    pc.on("connectionstatechange", on_state)
    healing.task = asyncio.get_running_loop().create_task(
        _keep_link_fresh(weakref.ref(pc), healing, keyframe_interval_s), name="summitline-healing")


def request_keyframe(pc: RTCPeerConnection) -> None:
    """Ask the remote side for a keyframe now (a PLI goes with the next video packet,
    within the usual rate limit). For a link that resumed; healed buffers also notice a
    resumed link by themselves."""
    healing = _healed.get(pc)
    for buffer in healing.buffers if healing else []:
        if isinstance(buffer, VideoFrameBuffer):
            buffer.request_keyframe()


def statistics(pc: RTCPeerConnection) -> HealingStatistics:
    """What healing did on this peer connection so far (zeros if it was not healed)."""
    total = HealingStatistics()
    healing = _healed.get(pc)
    for buffer in healing.buffers if healing else []:
        total = total + buffer.statistics()
    return total


def _heal_receiver(receiver: RTCRtpReceiver, kind: str, healing: _Healing) -> None:
    make: Callable[[Deliver], Buffer]
    if kind == "video":
        make = functools.partial(VideoFrameBuffer, keyframe_start=healing.keyframe_start,
                                 round_trip=healing.round_trip)
    elif kind == "audio":
        make = functools.partial(AudioReorderBuffer, clock_rate=healing.clock_rate)
    else:
        return
    buffer = _install(receiver, make)
    if buffer is not None:
        healing.buffers.append(buffer)
        if kind == "video":
            _nack_twice(receiver)


# aiortc 1.16.0, rtcrtpreceiver.py. A receiver makes its jitter buffer in __init__
# (JitterBuffer(capacity=16, prefetch=4) for audio, JitterBuffer(capacity=512,
# is_video=True) for video). _handle_rtp_packet calls its add(packet) once per packet,
# sends a PLI when told to, and queues at most the one frame returned for its decoder
# thread:
#     encoded_frame.timestamp = self.__timestamp_mapper.map(encoded_frame.timestamp)
#     self.__decoder_queue.put((codec, encoded_frame))      # if self.__decoder_thread
# One frame per packet is why a backlog never drains there. There is no public way to
# give a receiver another buffer, nor to queue more frames, so these name-mangled
# attributes are used, per receiver, here and nowhere else (client/closing.py reads the
# thread and queue too, for its own reason).
_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_CODECS = "_RTCRtpReceiver__codecs"  # payload type -> codec, filled by receive()
_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
_THREAD = "_RTCRtpReceiver__decoder_thread"
_QUEUE = "_RTCRtpReceiver__decoder_queue"


def _install(receiver: RTCRtpReceiver, make: Callable[[Deliver], Buffer]) -> Buffer | None:
    """Give ``receiver`` the buffer ``make(deliver)``; None if it has one of ours already,
    or if this aiortc is not the one these names were read from (the link then runs on
    aiortc's own buffer, unhealed, and says so)."""
    current = getattr(receiver, _BUFFER, None)
    if isinstance(current, VideoFrameBuffer | AudioReorderBuffer):
        return None
    missing = [n for n in (_CODECS, _MAPPER, _THREAD, _QUEUE) if not hasattr(receiver, n)]
    if missing or not isinstance(current, JitterBuffer):
        log.warning("aiortc's RTCRtpReceiver is not as in 1.16 (%s): this link's media is "
                    "not healed", ", ".join(missing) or "no jitter buffer")
        return None

    # The buffer is kept in ``_healed`` for as long as the peer connection lives, and the
    # receiver leads back to it (its DTLS transport's listeners): held strongly here, a
    # weak dictionary's value would keep its own key, and every closed connection alive.
    receiver_ref = weakref.ref(receiver)

    def deliver(frame: JitterFrame, payload_type: int) -> None:
        receiver = receiver_ref()
        if receiver is None:
            return
        codec = getattr(receiver, _CODECS).get(payload_type)
        if codec is None or getattr(receiver, _THREAD) is None:
            return  # not negotiated, or the receiver stopped: aiortc drops it too
        frame.timestamp = getattr(receiver, _MAPPER).map(frame.timestamp)
        getattr(receiver, _QUEUE).put((codec, frame))

    buffer = make(deliver)
    setattr(receiver, _BUFFER, buffer)
    return buffer


# aiortc 1.16.0, rtcrtpreceiver.py: _handle_rtp_packet awaits _send_rtcp_nack(ssrc, lost)
# once when a new gap appears, listing every packet still missing, and the sender
# retransmits each packet listed, once per NACK. One lost NACK or one lost
# retransmission leaves a hole only a keyframe can close (about 4 % of losses on a 2 %
# path, each a freeze of nearly a second at 300 ms round trip). Said twice, both must be
# lost: about 0.1 %. The cost is a second copy of what is retransmitted.
_NACK = "_send_rtcp_nack"


def _nack_twice(receiver: RTCRtpReceiver) -> None:
    send = getattr(receiver, _NACK)

    async def twice(media_ssrc: int, lost: list[int]) -> None:
        await send(media_ssrc, lost)
        await send(media_ssrc, lost)

    setattr(receiver, _NACK, twice)


def _force_keyframe(sender: RTCRtpSender) -> None:
    # aiortc 1.16.0, rtcrtpsender.py: _send_keyframe() is what the sender itself calls on
    # a PLI or FIR: the next frame it encodes is a keyframe (VP8 and H.264 alike).
    sender._send_keyframe()


async def _keep_link_fresh(pc_ref: weakref.ref[RTCPeerConnection], healing: _Healing,
                           keyframe_interval_s: float) -> None:
    """While the peer connection lives: track its round trip, and send keyframes. It holds
    the peer connection only while it works (each round in ``_refresh``, whose frame is
    gone before the next sleep), so a connection nobody closed can still go."""
    since_keyframe = 0.0
    while True:
        await asyncio.sleep(RTT_POLL_S)
        since = await _refresh(pc_ref(), healing, since_keyframe + RTT_POLL_S,
                               keyframe_interval_s)
        if since is None:
            return
        since_keyframe = since


async def _refresh(pc: RTCPeerConnection | None, healing: _Healing, since_keyframe: float,
                   keyframe_interval_s: float) -> float | None:
    """One round: the round trip, and a keyframe if one is due. The seconds since the last
    keyframe; None once ``pc`` is gone for good."""
    senders = _live_senders(pc)
    if senders is None:
        return None
    healing.round_trip_s = await _round_trip(senders) or healing.round_trip_s
    if not senders or since_keyframe < keyframe_interval_s:
        return since_keyframe
    for sender in senders:
        # a shared encoder (client/encoding.py) keeps this interval itself, for all links
        if sender.kind == "video" and not getattr(sender.track, "keeps_own_keyframes", False):
            _force_keyframe(sender)
    return 0.0


def _live_senders(pc: RTCPeerConnection | None) -> list[RTCRtpSender] | None:
    """The senders with a track of a connected ``pc``; None once it is gone for good."""
    if pc is None or pc.connectionState in ("failed", "closed"):
        return None
    if pc.connectionState != "connected":
        return []
    return [s for s in pc.getSenders() if s.track is not None]


async def _round_trip(senders: list[RTCRtpSender]) -> float | None:
    for sender in senders:
        report = await sender.getStats()
        for stats in report.values():
            rtt = getattr(stats, "roundTripTime", None)
            if stats.type == "remote-inbound-rtp" and isinstance(rtt, float):
                return rtt
    return None

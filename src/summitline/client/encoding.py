"""One encode per kind for every peer connection of an endpoint (a briefing's mesh).

aiortc (read from 1.16.0) gives every ``RTCRtpSender`` an encoder of its own: an
endpoint linked with seven others encodes its picture seven times. Its sender also takes
what is already encoded: a track whose ``recv()`` returns an ``av.Packet`` is only
packed into RTP (``Encoder.pack``: its own picture id, sequence numbers, timestamp
origin, SRTP), not encoded. So here one encoder per kind reads the source once, and
every link's copy (``EncodedCopy``) gets the same encoded frames.

What a shared encoder must do that each sender did for itself:

* **keyframes**: a sender answers a PLI or FIR from its receiver by forcing its next
  frame to be a keyframe (``RTCRtpSender._send_keyframe``; client/healing.py calls it
  too). Each copy's sender is made to ask the shared encoder instead: the next frame is
  a keyframe for every link. A new copy asks for one, and passes nothing on before it.
  The periodic keyframe of client/healing.py is the encoder's own, every
  ``KEYFRAME_INTERVAL_S`` whatever the number of links (per link it would be one per
  link and interval).
* **bitrate**: a sender's receiver estimates the bitrate its path takes (REMB), which
  aiortc sets on that sender's encoder. The shared encoder follows the lowest of them:
  what every link carries.
* a copy that falls behind (its link's sender stalled) drops what waits and resumes at
  the next keyframe, which it asks for; the others are not held up.

The private parts of aiortc this touches, each read from 1.16.0 and named once here:
``RTCRtpSender._send_keyframe`` (replaced on each copy's sender),
``RTCRtpSender.__encoder`` (read for its REMB ``target_bitrate``), and
``RTCRtpTransceiver._codecs`` (read for the negotiated codec). A link that negotiated a
codec other than VP8 or Opus (H.264 from a browser that preferred it), or an aiortc where
these names are gone, gets frames as before and encodes for itself (its audio with
aiortc's Opus settings: full band too, but stereo at 96 kb/s).

End-to-end frame encryption (client/framecrypt.py): with ``seal`` set, each encoded
frame is sealed once, here, before any sender packs it, so that every link (or an SFU)
carries the same ciphertext. A link whose codec is not the shared one then sends nothing
rather than frames it would encode, and could not seal, itself.

Audio levels: aiortc writes the RTP audio-level header extension only for a frame it
encodes; a shared Opus packet goes without it. Browsers read the level of what they
decode (``getStats`` ``audioLevel``), which is unchanged.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.codecs.vpx import DEFAULT_BITRATE, Vp8Encoder
from aiortc.mediastreams import VIDEO_TIME_BASE, MediaStreamError

from summitline.client.opus import FloorOpusEncoder

log = logging.getLogger(__name__)
if TYPE_CHECKING:
    Packet = av.Packet[Any]  # generic in PyAV's stubs only
else:
    Packet = av.Packet

OPUS_TIME_BASE = fractions.Fraction(1, 48_000)
SHARED = {"video": "video/vp8", "audio": "audio/opus"}  # kind -> the codec shared
# A copy this far behind (about 2 s of video, 1.3 s of audio) gives up what waits.
BACKLOG = 64
_KEYFRAME = "_send_keyframe"  # RTCRtpSender: called on a PLI or FIR
_SENDER_ENCODER = "_RTCRtpSender__encoder"  # its packer here, with REMB's target_bitrate
_CODECS = "_codecs"  # RTCRtpTransceiver: negotiated codecs, the first one sent


class _WholeVp8(Vp8Encoder):
    """aiortc's VP8 encoder, settings and all, handing out whole frames: each sender
    packs them into RTP itself."""

    @classmethod
    def _packetize(cls, buffer: bytes, picture_id: int) -> list[bytes]:
        return [buffer]


def _vp8_keyframe(data: bytes) -> bool:
    return bool(data) and not data[0] & 1  # RFC 6386 §9.1: P bit 0 is a key frame


class SharedEncoder:
    """Reads ``open_source()`` once while any copy is subscribed; encodes every frame
    once; hands each encoded frame to every copy."""

    def __init__(self, kind: str, open_source: Callable[[], MediaStreamTrack],
                 keyframe_interval_s: float,
                 seal: Callable[[str, bytes], bytes] | None = None) -> None:
        self.kind = kind
        self.seal = seal  # (kind, encoded frame) -> the frame encrypted end to end
        self._open_source = open_source
        self._keyframe_interval_s = keyframe_interval_s
        self._copies: set[EncodedCopy] = set()
        self._task: asyncio.Task[None] | None = None
        self._keyframe_wanted = False
        self._last_keyframe = 0.0
        self._encoder: _WholeVp8 | FloorOpusEncoder | None = None
        self.encoded = 0  # frames encoded, for measurements
        self.keyframes = 0  # of which keyframes
        self.requests = 0  # keyframe requests from the links' senders

    def request_keyframe(self) -> None:
        self.requests += 1
        self._keyframe_wanted = True

    def subscribe(self, copy: EncodedCopy) -> None:
        self._copies.add(copy)
        self._keyframe_wanted = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"summitline-encoder-{self.kind}")

    def unsubscribe(self, copy: EncodedCopy) -> None:
        self._copies.discard(copy)
        if not self._copies and self._task is not None:
            self._task.cancel()
            self._task = None

    def _bitrate(self) -> int:
        """The lowest bitrate a copy's receiver allows (REMB); aiortc's default before any
        said."""
        rates = [r for c in self._copies if (r := c.target_bitrate()) is not None]
        return min(rates, default=DEFAULT_BITRATE)

    def _encode(self, frame: av.frame.Frame, keyframe: bool) -> list[Packet]:
        """In a worker thread, as aiortc's sender encodes."""
        if self.kind == "video":
            if not isinstance(self._encoder, _WholeVp8):
                self._encoder = _WholeVp8()
            payloads, timestamp = self._encoder.encode(frame, keyframe)
            time_base = VIDEO_TIME_BASE
        else:
            if not isinstance(self._encoder, FloorOpusEncoder):
                self._encoder = FloorOpusEncoder()  # full band, mono (client/opus.py)
            payloads, timestamp = self._encoder.encode(frame)
            time_base = OPUS_TIME_BASE
        packets = []
        for i, data in enumerate(p for p in payloads if p):
            packet = av.Packet(data)
            packet.pts = timestamp + i * 960 if self.kind == "audio" else timestamp
            packet.time_base = time_base
            packets.append(packet)
        return packets

    def _sealed(self, packet: Packet) -> Packet:
        assert self.seal is not None
        sealed = av.Packet(self.seal(self.kind, bytes(packet)))
        sealed.pts, sealed.time_base = packet.pts, packet.time_base
        return sealed

    async def _run(self) -> None:
        source = self._open_source()
        loop = asyncio.get_running_loop()
        try:
            while self._copies:
                frame = await source.recv()
                assert isinstance(frame, av.frame.Frame)
                if self.kind == "video":
                    if time.monotonic() - self._last_keyframe >= self._keyframe_interval_s:
                        self._keyframe_wanted = True
                    if isinstance(self._encoder, _WholeVp8):
                        self._encoder.target_bitrate = self._bitrate()
                keyframe, self._keyframe_wanted = self._keyframe_wanted, False
                packets = await loop.run_in_executor(None, self._encode, frame, keyframe)
                self.encoded += 1
                for packet in packets:
                    key = self.kind == "audio" or _vp8_keyframe(bytes(packet))
                    if key and self.kind == "video":
                        self._last_keyframe = time.monotonic()
                        self.keyframes += 1
                    if self.seal is not None:
                        packet = self._sealed(packet)
                    for copy in list(self._copies):
                        copy.put(packet, key)
        except MediaStreamError:
            for copy in list(self._copies):
                copy.end()
        finally:
            source.stop()  # a relay's copy: unsubscribes it


class EncodedCopy(MediaStreamTrack):
    """One peer connection's copy of a kind: the shared encoder's frames, packed by the
    sender it is bound to (``bind``), or frames from ``fallback()`` to encode itself
    when that sender's codec is not the shared one."""

    keeps_own_keyframes = True  # client/healing.py leaves the periodic keyframe to us

    def __init__(self, encoder: SharedEncoder,
                 fallback: Callable[[], MediaStreamTrack | None]) -> None:
        super().__init__()
        self.kind = encoder.kind
        self._encoder = encoder
        self._fallback_source = fallback
        self._fallback: MediaStreamTrack | None = None
        self._queue: asyncio.Queue[Packet | None] = asyncio.Queue()
        self._waiting_for_key = True  # a decoder starts at a keyframe
        self._sender: weakref.ref[RTCRtpSender] | None = None
        self._pc: weakref.ref[RTCPeerConnection] | None = None
        self._started = False

    def bind(self, pc: RTCPeerConnection, sender: RTCRtpSender) -> None:
        """The sender that sends this copy: its keyframe requests go to the encoder."""
        self._pc, self._sender = weakref.ref(pc), weakref.ref(sender)

    def _codec(self) -> str | None:
        pc, sender = (self._pc() if self._pc else None), (self._sender() if self._sender
                                                          else None)
        for t in pc.getTransceivers() if pc and sender else []:
            if t.sender is sender:
                codecs = getattr(t, _CODECS, None)
                return str(codecs[0].mimeType).lower() if codecs else None
        return None

    @property
    def shared(self) -> bool:
        """Sending the shared encoding (False: not started yet, or encoding itself)."""
        return self._started and self._fallback is None

    def _start(self) -> None:
        self._started = True
        sender = self._sender() if self._sender else None
        if (sender is not None and self._codec() == SHARED[self.kind]
                and callable(getattr(sender, _KEYFRAME, None))):
            setattr(sender, _KEYFRAME, self._encoder.request_keyframe)
            self._encoder.subscribe(self)
            return
        if self._encoder.seal is not None:
            log.warning("%s link sends %s: frames are encrypted end to end only in %s, so "
                        "it sends nothing", self.kind, self._codec(), SHARED[self.kind])
            return
        log.info("%s link sends %s: encoding for itself", self.kind, self._codec())
        self._fallback = self._fallback_source()

    def target_bitrate(self) -> int | None:
        sender = self._sender() if self._sender else None
        packer = getattr(sender, _SENDER_ENCODER, None)
        rate = getattr(packer, "target_bitrate", None)
        return rate if isinstance(rate, int) else None

    def put(self, packet: Packet, key: bool) -> None:
        if self._waiting_for_key and not key:
            return
        self._waiting_for_key = False
        if self._queue.qsize() >= BACKLOG:  # this link stalled: resume at a keyframe
            while not self._queue.empty():
                self._queue.get_nowait()
            if self.kind == "video" and not key:
                self._waiting_for_key = True
                self._encoder.request_keyframe()
                return
        self._queue.put_nowait(packet)

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def recv(self) -> Packet | av.frame.Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._started:
            self._start()
        if self._fallback is not None:
            return await self._fallback.recv()
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        super().stop()
        self._encoder.unsubscribe(self)
        if self._fallback is not None:
            self._fallback.stop()

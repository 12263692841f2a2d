"""The Python endpoint's end-to-end frame encryption (docs/protocol.md 5.9, 5.10).

``FrameCrypt`` holds this device's media key and counter per kind (audio, video), its
ECDH key for the call, and the media keys of each kind it may receive from the devices it
hears: an interpreter that hears a principal but may not see it holds its audio key only.
The sending half is ``FrameCrypt.seal``,
which the shared encoder (client/encoding.py) applies to each encoded frame before any
sender packs it into RTP. The receiving half is ``open_frames(pc, receiver, opener)``:
aiortc depacketizes RTP and reassembles a frame in its jitter buffer, then queues it for
its decoder thread (``RTCRtpReceiver.__decoder_queue``, read from aiortc 1.16.0). That
queue, on one receiver object, is replaced here by one that opens each frame as it is
queued: a frame that does not open is dropped before the decoder, and after a drop
video waits for a key frame (and asks for one).
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver

from summitline.client.healing import request_keyframe
from summitline.core import policy
from summitline.core.plan import CallPlan
from summitline.crypto import framekeys
from summitline.crypto.framekeys import KINDS, EcdhKey
from summitline.crypto.frames import FrameError, FrameKey, FrameOpener, FrameSealer
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

log = logging.getLogger(__name__)

CODEC = {"video": "vp8", "audio": "opus"}  # what the shared encoder sends per kind
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"  # aiortc 1.16.0, name-mangled
KEY_BYTES = 16  # AES-128-GCM, as the browser's samples and SFrame's default suite


def kinds_heard(plan: CallPlan, sender: str, receiver: str) -> frozenset[str]:
    """The kinds of ``sender``'s media the plan lets ``receiver`` get in some media phase:
    ``receiver`` is handed ``sender``'s key of those kinds only."""
    return frozenset(str(kind) for kind in policy.media_in_call(plan, sender, receiver))


def hears(plan: CallPlan, sender: str, receiver: str) -> bool:
    """Whether the plan lets ``receiver`` get any media of ``sender`` in a media phase:
    only such a device is handed any of ``sender``'s keys."""
    return bool(kinds_heard(plan, sender, receiver))


class FrameCrypt:
    def __init__(self, device: PrivateKey, call: str) -> None:
        self._device = device
        self._call = call
        self.ecdh = EcdhKey()
        self.sealers = {kind: FrameSealer(FrameKey.generate(0, KEY_BYTES)) for kind in KINDS}
        # (sender device, kind) -> its keys of that kind
        self.openers: dict[tuple[str, str], FrameOpener] = {}
        self.peer_ecdh: dict[str, bytes] = {}  # device -> its ECDH key for the call
        # device -> kind -> the key id of that kind we last wrapped to it
        self.handed: dict[str, dict[str, int]] = {}
        self.refused = 0  # frames dropped because they did not open

    def key_id(self, kind: str) -> int:
        return self.sealers[kind].key.key_id

    def seal(self, kind: str, frame: bytes) -> bytes:
        return self.sealers[kind].seal(CODEC[kind], frame)

    def open(self, sender: str, kind: str, frame: bytes) -> bytes:
        """Open a frame that came from ``sender`` on a receiver of ``kind`` (known from
        the track, never from the frame), with ``sender``'s key of that kind."""
        opener = self.openers.get((sender, kind))
        if opener is None:
            raise FrameError(f"no {kind} key from this sender")
        return opener.open(frame)

    def rotate(self) -> None:
        """A new media key of each kind (a device that heard us left): sealed with from
        now on."""
        for sealer in self.sealers.values():
            sealer.rekey(FrameKey.generate(sealer.key.key_id + 1, KEY_BYTES))

    def hands_anew(self, plan: CallPlan, to: str) -> bool:
        """Whether a ``frame-key`` for ``to`` now would hand it a key it was not handed
        (a device that joins, or comes back after it left), one we have sealed frames
        under: then we make new keys first, so that it opens nothing sent before it came
        (docs/protocol.md 5.10)."""
        if to not in self.peer_ecdh:
            return False
        handed = self.handed.get(to, {})
        return any(handed.get(kind) != self.key_id(kind) and self.sealers[kind].counter > 0
                   for kind in kinds_heard(plan, self._device.fingerprint, to))

    def message(self, plan: CallPlan, to: str) -> dict[str, Any]:
        """The ``frame-key`` for ``to``: our ECDH key, and our media key of each kind
        ``to`` may receive from us, if we know its ECDH key."""
        peer = self.peer_ecdh.get(to)
        keys = {kind: self.sealers[kind].key
                for kind in kinds_heard(plan, self._device.fingerprint, to)} \
            if peer is not None else {}
        if keys:
            self.handed[to] = {kind: key.key_id for kind, key in keys.items()}
        return framekeys.message(self._device, self.ecdh, call=self._call,
                                 plan_hash=plan.hash, receiver=to, peer_ecdh=peer, keys=keys)

    def take(self, plan: CallPlan, msg: dict[str, Any], sender: PublicKey) -> tuple[bool, bool]:
        """Take a relayed ``frame-key`` (SignatureError unless ``sender``, a device of the
        plan, signed it for us). Returns (its ECDH key is new to us, it held a key).
        A key of a kind the plan does not let us receive from ``sender`` is refused: a
        sender does not hand one, so the message is not what the plan says."""
        got = framekeys.receive(msg, sender, self.ecdh, call=self._call,
                                plan_hash=plan.hash, me=self._device.fingerprint)
        device = sender.fingerprint
        extra = set(got.keys) - kinds_heard(plan, device, self._device.fingerprint)
        if extra:
            raise SignatureError(f"frame-key hands a {sorted(extra)[0]} key the plan does "
                                 "not let us receive")
        new = self.peer_ecdh.get(device) != got.ecdh
        self.peer_ecdh[device] = got.ecdh
        if new:
            self.handed.pop(device, None)
        for kind, key in got.keys.items():
            self.openers.setdefault((device, kind), FrameOpener()).add(key)
        return new, bool(got.keys)


class _OpeningQueue(queue.Queue[Any]):
    """aiortc's decoder queue of one receiver, opening each frame as it is queued."""

    def __init__(self, kind: str, opener: Callable[[str, bytes], bytes],
                 on_refused: Callable[[], None], want_keyframe: Callable[[], None]) -> None:
        super().__init__()
        self._kind = kind
        self._opener = opener
        self._on_refused = on_refused
        self._want_keyframe = want_keyframe
        self._broken = kind == "video"  # a decoder starts at a key frame

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the decoder's end
            super().put(item, block, timeout)
            return
        _codec, frame = item
        try:
            frame.data = self._opener(self._kind, bytes(frame.data))
        except FrameError:
            self._on_refused()
            self._broken = self._kind == "video"
            return
        if self._broken:
            if frame.data and frame.data[0] & 1:  # an inter frame: nothing to build on
                self._want_keyframe()
                return
            self._broken = False
        super().put(item, block, timeout)


def open_frames(pc: RTCPeerConnection, receiver: RTCRtpReceiver,
                opener: Callable[[str, bytes], bytes], on_refused: Callable[[], None]) -> None:
    """Make ``receiver`` open every frame with ``opener`` (given the receiver's kind and
    the frame) before its decoder sees it.
    Call it before the receiver starts (on its track event); idempotent."""
    current = getattr(receiver, _DECODER_QUEUE, None)
    if isinstance(current, _OpeningQueue):
        return
    if not isinstance(current, queue.Queue) or not current.empty():
        raise RuntimeError("aiortc's RTCRtpReceiver has no idle decoder queue: "
                           "summitline.client.framecrypt must follow this aiortc version")
    setattr(receiver, _DECODER_QUEUE, _OpeningQueue(
        receiver.track.kind, opener, on_refused, lambda: request_keyframe(pc)))

"""The Python endpoint's end-to-end frame encryption (docs/protocol.md 5.9, 5.10).

``FrameCrypt`` holds this device's media key and counter, its ECDH key for the call,
and the media keys of the devices it hears. The sending half is ``FrameCrypt.seal``,
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
from summitline.core.roles import Phase
from summitline.crypto import framekeys
from summitline.crypto.framekeys import EcdhKey
from summitline.crypto.frames import FrameError, FrameKey, FrameOpener, FrameSealer
from summitline.crypto.keys import PrivateKey, PublicKey

log = logging.getLogger(__name__)

CODEC = {"video": "vp8", "audio": "opus"}  # what the shared encoder sends per kind
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"  # aiortc 1.16.0, name-mangled
KEY_BYTES = 16  # AES-128-GCM, as the browser's samples and SFrame's default suite


def hears(plan: CallPlan, sender: str, receiver: str) -> bool:
    """Whether the plan lets ``receiver`` get any media of ``sender`` in a media phase:
    only such a device is handed ``sender``'s key."""
    return any(policy.media(plan, phase, sender, receiver)
               for phase in (Phase.OPEN, Phase.CLOSED))


class FrameCrypt:
    def __init__(self, device: PrivateKey, call: str) -> None:
        self._device = device
        self._call = call
        self.ecdh = EcdhKey()
        self.sealer = FrameSealer(FrameKey.generate(0, KEY_BYTES))
        self.openers: dict[str, FrameOpener] = {}  # sender device -> its keys
        self.peer_ecdh: dict[str, bytes] = {}  # device -> its ECDH key for the call
        self.handed: dict[str, int] = {}  # device -> the key id we last wrapped to it
        self.refused = 0  # frames dropped because they did not open

    @property
    def key_id(self) -> int:
        return self.sealer.key.key_id

    def seal(self, kind: str, frame: bytes) -> bytes:
        return self.sealer.seal(CODEC[kind], frame)

    def open(self, sender: str, frame: bytes) -> bytes:
        opener = self.openers.get(sender)
        if opener is None:
            raise FrameError("no key from this sender yet")
        return opener.open(frame)

    def rotate(self) -> None:
        """A new media key (a device that heard us left): sealed with from now on."""
        self.sealer.rekey(FrameKey.generate(self.key_id + 1, KEY_BYTES))

    def hands_anew(self, plan: CallPlan, to: str) -> bool:
        """Whether a ``frame-key`` for ``to`` now would hand it a key it was not handed
        (a device that joins, or comes back after it left), one we have sealed frames
        under: then we make a new key first, so that it opens nothing sent before it came
        (docs/protocol.md 5.10)."""
        return to in self.peer_ecdh and hears(plan, self._device.fingerprint, to) and \
            self.handed.get(to) != self.key_id and self.sealer.counter > 0

    def message(self, plan: CallPlan, to: str) -> dict[str, Any]:
        """The ``frame-key`` for ``to``: our ECDH key, and our media key if ``to`` hears
        us and we know its ECDH key."""
        peer = self.peer_ecdh.get(to)
        key = self.sealer.key if peer is not None and hears(plan, self._device.fingerprint,
                                                            to) else None
        if key is not None:
            self.handed[to] = key.key_id
        return framekeys.message(self._device, self.ecdh, call=self._call,
                                 plan_hash=plan.hash, receiver=to, peer_ecdh=peer, key=key)

    def take(self, plan: CallPlan, msg: dict[str, Any], sender: PublicKey) -> tuple[bool, bool]:
        """Take a relayed ``frame-key`` (SignatureError unless ``sender``, a device of the
        plan, signed it for us). Returns (its ECDH key is new to us, it held a key)."""
        got = framekeys.receive(msg, sender, self.ecdh, call=self._call,
                                plan_hash=plan.hash, me=self._device.fingerprint)
        device = sender.fingerprint
        new = self.peer_ecdh.get(device) != got.ecdh
        self.peer_ecdh[device] = got.ecdh
        if new:
            self.handed.pop(device, None)
        if got.key is not None:
            self.openers.setdefault(device, FrameOpener()).add(got.key)
        return new, got.key is not None


class _OpeningQueue(queue.Queue[Any]):
    """aiortc's decoder queue of one receiver, opening each frame as it is queued."""

    def __init__(self, kind: str, opener: Callable[[bytes], bytes],
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
            frame.data = self._opener(bytes(frame.data))
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
                opener: Callable[[bytes], bytes], on_refused: Callable[[], None]) -> None:
    """Make ``receiver`` open every frame with ``opener`` before its decoder sees it.
    Call it before the receiver starts (on its track event); idempotent."""
    current = getattr(receiver, _DECODER_QUEUE, None)
    if isinstance(current, _OpeningQueue):
        return
    if not isinstance(current, queue.Queue) or not current.empty():
        raise RuntimeError("aiortc's RTCRtpReceiver has no idle decoder queue: "
                           "summitline.client.framecrypt must follow this aiortc version")
    setattr(receiver, _DECODER_QUEUE, _OpeningQueue(
        receiver.track.kind, opener, on_refused, lambda: request_keyframe(pc)))

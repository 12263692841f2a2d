"""End-to-end encryption of encoded media frames (docs/protocol.md, "Frame encryption").

A sender encrypts each encoded frame (a whole VP8 frame, one Opus packet) before it is
packed into RTP, and each receiver decrypts it after depacketization, before decoding.
So a forwarding server (an SFU) sees only ciphertext, and the RTP and VP8 payload
descriptors it routes by stay as they are. Layout of an encrypted frame::

    clear header (H bytes) | ciphertext (len(frame) - H) | tag (16) | trailer (14)
    trailer = key id (uint32 BE) | counter (uint64 BE) | H (uint8) | version (0x01)

H keeps in the clear what a forwarder reads to find a keyframe and the picture size:
10 bytes of a VP8 key frame (the frame tag and the start code, width and height, RFC 6386
§9.1), 3 of a VP8 inter frame (the frame tag), 1 of an Opus packet (the TOC byte). The
trailer is at the end so that those bytes stay where the forwarder looks for them.

The nonce is the key's 12-byte salt XOR the counter (big-endian, in the last 8 bytes).
The AAD is the clear header followed by the trailer: nothing of the frame goes unsigned.
A counter is used once per key; a sender has a ``FrameSealer`` (key and counter) per kind.
A receiver opens each counter of a key at most once (``ReplayWindow``): a forwarder that
sends a frame again, or an old one, gets it dropped, not played twice.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
TAG_BYTES = 16
SALT_BYTES = 12
KEY_SIZES = (16, 32)  # AES-128-GCM or AES-256-GCM
_TRAILER = struct.Struct(">IQBB")  # key id, counter, clear header length, version
TRAILER_BYTES = _TRAILER.size  # 14
OVERHEAD = TAG_BYTES + TRAILER_BYTES
# What stays in the clear (see the module docstring).
VP8_KEY_CLEAR = 10
VP8_DELTA_CLEAR = 3
OPUS_CLEAR = 1
MAX_COUNTER = 2**64 - 1
MAX_KEY_ID = 2**32 - 1


class FrameError(Exception):
    """A frame that cannot be decrypted: not ours, tampered with, or its key unknown."""


def clear_bytes(codec: str, frame: bytes) -> int:
    """How many leading bytes of ``frame`` (encoded with ``codec``, 'vp8' or 'opus')
    stay in the clear."""
    if codec == "vp8":
        wanted = VP8_DELTA_CLEAR if frame and frame[0] & 1 else VP8_KEY_CLEAR
    elif codec == "opus":
        wanted = OPUS_CLEAR
    else:
        wanted = 0
    return min(wanted, len(frame))


@dataclass(frozen=True)
class FrameKey:
    """One sender's media key: ``key_id`` names it to receivers."""

    key_id: int
    key: bytes
    salt: bytes

    def __post_init__(self) -> None:
        if len(self.key) not in KEY_SIZES:
            raise ValueError("a frame key is 16 or 32 bytes")
        if len(self.salt) != SALT_BYTES:
            raise ValueError(f"a frame salt is {SALT_BYTES} bytes")
        if not 0 <= self.key_id <= MAX_KEY_ID:
            raise ValueError("a key id is a 32-bit unsigned integer")

    @classmethod
    def generate(cls, key_id: int, size: int = 16) -> FrameKey:
        return cls(key_id, os.urandom(size), os.urandom(SALT_BYTES))

    def __repr__(self) -> str:  # never show key material, even in a traceback
        return f"FrameKey(key_id={self.key_id})"


def _nonce(salt: bytes, counter: int) -> bytes:
    return bytes(a ^ b for a, b in zip(salt, bytes(4) + counter.to_bytes(8, "big"),
                                       strict=True))


def seal(key: FrameKey, counter: int, codec: str, frame: bytes) -> bytes:
    """``frame`` encrypted under ``key`` with ``counter`` (never used twice per key)."""
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError("the counter is a 64-bit unsigned integer")
    h = clear_bytes(codec, frame)
    trailer = _TRAILER.pack(key.key_id, counter, h, VERSION)
    header = frame[:h]
    sealed = AESGCM(key.key).encrypt(_nonce(key.salt, counter), frame[h:], header + trailer)
    return header + sealed + trailer


def key_id_of(data: bytes) -> int:
    """The key id an encrypted frame names (FrameError if it is not one)."""
    return _parse(data)[0]


def _parse(data: bytes) -> tuple[int, int, int]:
    if len(data) < OVERHEAD:
        raise FrameError("too short to be an encrypted frame")
    key_id, counter, h, version = _TRAILER.unpack(data[-TRAILER_BYTES:])
    if version != VERSION:
        raise FrameError(f"unknown frame format version {version}")
    if h > len(data) - OVERHEAD:
        raise FrameError("clear header longer than the frame")
    return key_id, counter, h


def open_frame(key: FrameKey, data: bytes) -> bytes:
    """The frame ``data`` encrypts under ``key``; FrameError if it does not."""
    key_id, counter, h = _parse(data)
    if key_id != key.key_id:
        raise FrameError(f"frame is under key {key_id}, not {key.key_id}")
    header, trailer = data[:h], data[-TRAILER_BYTES:]
    try:
        body = AESGCM(key.key).decrypt(_nonce(key.salt, counter),
                                       data[h:-TRAILER_BYTES], header + trailer)
    except InvalidTag:
        raise FrameError("frame does not authenticate under its key") from None
    return header + body


@dataclass
class FrameSealer:
    """A sender's current key and counter, shared by all it sends (audio and video)."""

    key: FrameKey
    counter: int = 0

    def rekey(self, key: FrameKey) -> None:
        self.key, self.counter = key, 0

    def seal(self, codec: str, frame: bytes) -> bytes:
        counter, self.counter = self.counter, self.counter + 1
        return seal(self.key, counter, codec, frame)


# Old keys a receiver keeps for frames still in flight after a rotation.
KEPT_KEYS = 4
# How far behind the highest counter opened under a key a frame may still come (the
# jitter buffer and retransmissions deliver frames out of order): 1024 frames is some
# 20 s of Opus, a minute of video.
REPLAY_WINDOW = 1024


@dataclass
class ReplayWindow:
    """The counters opened under one key: each once, none more than REPLAY_WINDOW below
    the highest."""

    top: int = -1
    seen: set[int] = field(default_factory=set)

    def fresh(self, counter: int) -> bool:
        return counter > self.top - REPLAY_WINDOW and counter not in self.seen

    def accept(self, counter: int) -> bool:
        """Mark ``counter`` opened; False if it was, or is too old."""
        if not self.fresh(counter):
            return False
        self.seen.add(counter)
        if counter > self.top:
            self.top = counter
            if len(self.seen) > 2 * REPLAY_WINDOW:
                self.seen = {c for c in self.seen if c > self.top - REPLAY_WINDOW}
        return True


@dataclass
class FrameOpener:
    """A receiver's keys of one sender, by key id, each with its replay window."""

    keys: dict[int, FrameKey] = field(default_factory=dict)
    windows: dict[int, ReplayWindow] = field(default_factory=dict)

    def add(self, key: FrameKey) -> None:
        known = self.keys.get(key.key_id)
        if known is None or (known.key, known.salt) != (key.key, key.salt):
            # a new key (or the sender's new session reusing an id): counters start over
            self.windows[key.key_id] = ReplayWindow()
        self.keys[key.key_id] = key
        for old in sorted(self.keys)[:-KEPT_KEYS]:
            del self.keys[old]
            del self.windows[old]

    def open(self, data: bytes) -> bytes:
        key_id, counter, _h = _parse(data)
        key = self.keys.get(key_id)
        if key is None:
            raise FrameError(f"no key {key_id} from this sender")
        window = self.windows[key_id]
        if not window.fresh(counter):
            raise FrameError(f"frame {counter} under key {key_id} was opened already, or is "
                             "too old: a replay")
        plain = open_frame(key, data)  # authenticated before the window moves
        window.accept(counter)  # fresh, checked above: nothing ran in between
        return plain

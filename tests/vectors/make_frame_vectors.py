"""Write tests/vectors/frames.json: encrypted frames and a wrapped frame key that Python
(tests/core/test_frames.py) and the browser (tests/browser/test_frames.py) must both
produce and open byte for byte, and tampered frames both must refuse.

Run it again only to change the vectors on purpose
(``python -m tests.vectors.make_frame_vectors``); both test suites then check the new file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from summitline.crypto import framekeys, frames
from summitline.crypto.encoding import b64u
from summitline.crypto.framekeys import EcdhKey
from summitline.crypto.keys import PrivateKey

OUT = Path(__file__).with_name("frames.json")


def fixed(label: str, n: int) -> bytes:
    """Deterministic bytes, so that the file changes only when the format does."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:n]


def vp8_key_frame(n: int) -> bytes:
    # frame tag with P=0 (key frame), start code, 320x240, then "data"
    return bytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]) + \
        fixed("vp8-key", n - 10)


def vp8_delta_frame(n: int) -> bytes:
    return bytes([0x31, 0x07, 0x00]) + fixed("vp8-delta", n - 3)


def frame_cases() -> list[dict[str, Any]]:
    k128 = frames.FrameKey(7, fixed("key-128", 16), fixed("salt-128", 12))
    k256 = frames.FrameKey(0xFFFFFFFF, fixed("key-256", 32), fixed("salt-256", 12))
    cases = [
        ("vp8 key frame", k128, 0, "vp8", vp8_key_frame(200)),
        ("vp8 delta frame", k128, 1, "vp8", vp8_delta_frame(90)),
        ("opus packet", k128, 2, "opus", bytes([0xFC]) + fixed("opus", 60)),
        ("vp8 key frame, AES-256, high counter", k256, 2**40 + 3, "vp8",
         vp8_key_frame(64)),
        ("vp8 frame shorter than its clear header", k128, 5, "vp8", bytes([0x10, 0x02])),
        ("empty opus packet", k128, 6, "opus", b""),
    ]
    return [{"case": name, "key_id": key.key_id, "key": key.key.hex(),
             "salt": key.salt.hex(), "counter": counter, "codec": codec,
             "frame": frame.hex(), "sealed": frames.seal(key, counter, codec, frame).hex()}
            for name, key, counter, codec, frame in cases]


def tampered(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first case's sealed frame with one byte changed in each part: all refused."""
    sealed = bytes.fromhex(cases[0]["sealed"])
    where = {"clear header": 2, "ciphertext": 40, "tag": len(sealed) - 20,
             "key id in the trailer": len(sealed) - 14 + 3,
             "counter in the trailer": len(sealed) - 3,
             "clear length in the trailer": len(sealed) - 2}
    out = []
    for name, at in where.items():
        bad = bytearray(sealed)
        bad[at] ^= 0x01
        out.append({"case": name, "sealed": bad.hex()})
    out.append({"case": "truncated", "sealed": sealed[:-1].hex()})
    return out


def jwk(secret: bytes) -> dict[str, str]:
    """The ECDH private key of ``secret`` as WebCrypto imports it."""
    pub = EcdhKey.from_secret(secret).public
    return {"kty": "EC", "crv": "P-256", "d": b64u(secret), "x": b64u(pub[1:33]),
            "y": b64u(pub[33:]), "ext": True}


def frame_key() -> dict[str, Any]:
    call, device = "call-frames", PrivateKey.generate()
    receiver = hashlib.sha256(b"receiver").hexdigest()
    s_secret, r_secret = fixed("sender-ecdh", 32), fixed("receiver-ecdh", 32)
    sender_ecdh, receiver_ecdh = EcdhKey.from_secret(s_secret), EcdhKey.from_secret(r_secret)
    keys = {"audio": frames.FrameKey(3, fixed("media-key", 16), fixed("media-salt", 12)),
            "video": frames.FrameKey(5, fixed("video-key", 16), fixed("video-salt", 12))}
    nonces = {kind: fixed(f"wrap-nonce/{kind}", 12) for kind in keys}
    msg = framekeys.message(device, sender_ecdh, call=call, plan_hash="ab" * 32,
                            receiver=receiver, peer_ecdh=receiver_ecdh.public, keys=keys,
                            nonces=nonces)
    return {"call": call, "plan_hash": "ab" * 32, "sender": device.fingerprint,
            "sender_key": device.public.b64u, "receiver": receiver,
            "sender_ecdh": jwk(s_secret), "receiver_ecdh": jwk(r_secret),
            "keys": {kind: {"key_id": key.key_id, "key": key.key.hex(),
                            "salt": key.salt.hex(), "nonce": nonces[kind].hex()}
                     for kind, key in keys.items()},
            "message": msg}


def main() -> None:
    cases = frame_cases()
    doc = {"frames": cases, "tampered": tampered(cases), "frame_key": frame_key()}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} frames)")


if __name__ == "__main__":
    main()

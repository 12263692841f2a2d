"""Frame encryption and frame keys, from the Python side of the shared vectors
(tests/vectors/frames.json; the browser checks the same file in
tests/browser/test_frames.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from summitline.core import messages
from summitline.crypto import framekeys, frames
from summitline.crypto.encoding import b64u, unb64u
from summitline.crypto.framekeys import EcdhKey
from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "frames.json").read_text())


def key_of(v: dict[str, Any]) -> frames.FrameKey:
    return frames.FrameKey(v["key_id"], bytes.fromhex(v["key"]), bytes.fromhex(v["salt"]))


@pytest.mark.parametrize("v", VECTORS["frames"], ids=lambda v: v["case"])
def test_a_known_frame_seals_to_the_known_bytes_and_opens(v: dict[str, Any]) -> None:
    frame, sealed = bytes.fromhex(v["frame"]), bytes.fromhex(v["sealed"])
    assert frames.seal(key_of(v), v["counter"], v["codec"], frame) == sealed
    assert frames.open_frame(key_of(v), sealed) == frame
    h = frames.clear_bytes(v["codec"], frame)
    assert sealed[:h] == frame[:h]  # what an SFU reads stays readable
    assert len(sealed) == len(frame) + frames.OVERHEAD


def test_the_clear_header_is_what_an_sfu_needs() -> None:
    key, delta = (bytes.fromhex(v["frame"]) for v in VECTORS["frames"][:2])
    assert frames.clear_bytes("vp8", key) == 10 and frames.clear_bytes("vp8", delta) == 3
    assert frames.clear_bytes("opus", b"\xfc\x00") == 1


@pytest.mark.parametrize("v", VECTORS["tampered"], ids=lambda v: v["case"])
def test_a_tampered_frame_is_refused(v: dict[str, Any]) -> None:
    opener = frames.FrameOpener()
    opener.add(key_of(VECTORS["frames"][0]))
    with pytest.raises(frames.FrameError):
        opener.open(bytes.fromhex(v["sealed"]))


def test_a_frame_under_another_key_is_refused() -> None:
    v = VECTORS["frames"][0]
    wrong = frames.FrameKey(v["key_id"], bytes(16), bytes(12))
    with pytest.raises(frames.FrameError, match="does not authenticate"):
        frames.open_frame(wrong, bytes.fromhex(v["sealed"]))
    opener = frames.FrameOpener()
    with pytest.raises(frames.FrameError, match="no key 7"):
        opener.open(bytes.fromhex(v["sealed"]))


def test_the_sealer_never_reuses_a_counter_and_restarts_on_a_new_key() -> None:
    sealer = frames.FrameSealer(frames.FrameKey.generate(1))
    a, b = sealer.seal("opus", b"\x01abc"), sealer.seal("vp8", b"\x01abc")
    assert a[-10:-2] == (0).to_bytes(8, "big") and b[-10:-2] == (1).to_bytes(8, "big")
    sealer.rekey(frames.FrameKey.generate(2))
    c = sealer.seal("opus", b"\x01abc")
    assert frames.key_id_of(c) == 2 and c[-10:-2] == bytes(8)


def test_a_receiver_keeps_a_few_old_keys_for_frames_in_flight() -> None:
    opener = frames.FrameOpener()
    keys = [frames.FrameKey.generate(i) for i in range(frames.KEPT_KEYS + 2)]
    for k in keys:
        opener.add(k)
    assert sorted(opener.keys) == [k.key_id for k in keys[-frames.KEPT_KEYS:]]


def test_a_receiver_opens_each_frame_once_and_none_too_old() -> None:
    key = frames.FrameKey.generate(3)
    sealer, opener = frames.FrameSealer(key), frames.FrameOpener()
    opener.add(key)
    sealed = [sealer.seal("opus", bytes([1, n % 256])) for n in range(frames.REPLAY_WINDOW + 5)]
    assert opener.open(sealed[1]) == b"\x01\x01"
    assert opener.open(sealed[0]) == b"\x01\x00"  # out of order within the window: fine
    with pytest.raises(frames.FrameError, match="a replay"):
        opener.open(sealed[1])  # a forwarder sends it again
    opener.add(key)  # the same key handed again (a new frame-key): the window stays
    with pytest.raises(frames.FrameError, match="a replay"):
        opener.open(sealed[0])
    opener.open(sealed[-1])  # far ahead: frames more than the window behind are refused
    with pytest.raises(frames.FrameError, match="too old"):
        opener.open(sealed[3])
    assert opener.open(sealed[-2]) == sealed[-2][:1] + bytes([(len(sealed) - 2) % 256])
    tampered = bytearray(sealed[-3])
    tampered[2] ^= 1
    with pytest.raises(frames.FrameError, match="authenticate"):
        opener.open(bytes(tampered))
    assert opener.open(sealed[-3]) == sealed[-3][:1] + bytes([(len(sealed) - 3) % 256])
    # the sender's next session reuses key id 3 with a new key: its counters start over
    again = frames.FrameKey.generate(3)
    opener.add(again)
    assert opener.open(frames.FrameSealer(again).seal("opus", b"\x01z")) == b"\x01z"


def test_the_replay_window_forgets_what_falls_behind_it() -> None:
    window = frames.ReplayWindow()
    for c in range(5 * frames.REPLAY_WINDOW):
        assert window.accept(c)
    assert len(window.seen) <= 2 * frames.REPLAY_WINDOW + 1
    assert not window.accept(5 * frames.REPLAY_WINDOW - 1)
    assert not window.accept(4 * frames.REPLAY_WINDOW - 1)  # below the window
    assert not window.accept(4 * frames.REPLAY_WINDOW + 1)  # within the window, and seen
    assert window.accept(5 * frames.REPLAY_WINDOW + 7)


def vector_ecdh(jwk: dict[str, str]) -> EcdhKey:
    return EcdhKey.from_secret(unb64u(jwk["d"]))


def test_the_known_frame_key_message_opens_for_its_receiver_only() -> None:
    v = VECTORS["frame_key"]
    sender, receiver = vector_ecdh(v["sender_ecdh"]), vector_ecdh(v["receiver_ecdh"])
    msg = v["message"]
    keys = {kind: key_of(k) for kind, k in v["keys"].items()}
    assert [e["kind"] for e in msg["keys"]] == ["audio", "video"]
    for entry in msg["keys"]:
        kind = entry["kind"]
        assert entry["key_id"] == keys[kind].key_id
        assert entry["wrapped"] == b64u(framekeys.wrap(
            sender, receiver.public, kind, keys[kind], call=v["call"], sender=v["sender"],
            receiver=v["receiver"], nonce=bytes.fromhex(v["keys"][kind]["nonce"])))
    got = framekeys.receive(msg, PublicKey.from_b64u(v["sender_key"]), receiver,
                            call=v["call"], plan_hash=v["plan_hash"], me=v["receiver"])
    assert got.keys == keys and got.ecdh == sender.public
    # someone else, holding the message: its signature is not for it
    with pytest.raises(SignatureError):
        framekeys.receive(msg, PublicKey.from_b64u(v["sender_key"]), EcdhKey(),
                          call=v["call"], plan_hash=v["plan_hash"], me="cd" * 32)
    # the server swapping in its own ECDH key: the signature no longer holds
    with pytest.raises(SignatureError):
        framekeys.receive({**msg, "ecdh": b64u(EcdhKey().public)},
                          PublicKey.from_b64u(v["sender_key"]), receiver,
                          call=v["call"], plan_hash=v["plan_hash"], me=v["receiver"])
    # nor relabelling the audio key as video, or dropping one: signed as a whole
    audio, video = msg["keys"]
    for keys_sent in ([{**audio, "kind": "video"}], [video], [video, audio]):
        with pytest.raises(SignatureError):
            framekeys.receive({**msg, "keys": keys_sent},
                              PublicKey.from_b64u(v["sender_key"]), receiver,
                              call=v["call"], plan_hash=v["plan_hash"], me=v["receiver"])


def test_a_wrapped_key_opens_only_as_the_kind_it_was_wrapped_for() -> None:
    a, b, key = EcdhKey(), EcdhKey(), frames.FrameKey.generate(4)
    who = {"call": "c", "sender": "aa" * 32, "receiver": "bb" * 32}
    blob = framekeys.wrap(a, b.public, "audio", key, **who)
    assert framekeys.unwrap(b, a.public, "audio", 4, blob, **who) == key
    with pytest.raises(SignatureError):
        framekeys.unwrap(b, a.public, "video", 4, blob, **who)


def test_a_key_not_signed_by_the_plan_device_is_refused() -> None:
    device, stranger, ecdh, mine = (PrivateKey.generate(), PrivateKey.generate(),
                                    EcdhKey(), EcdhKey())
    me = "ef" * 32
    forged = framekeys.message(stranger, ecdh, call="c", plan_hash="00" * 32, receiver=me,
                               peer_ecdh=mine.public,
                               keys={"audio": frames.FrameKey.generate(1)})
    with pytest.raises(SignatureError):
        framekeys.receive(forged, device.public, mine, call="c", plan_hash="00" * 32, me=me)
    good = framekeys.message(device, ecdh, call="c", plan_hash="00" * 32, receiver=me,
                             peer_ecdh=mine.public,
                             keys={"video": frames.FrameKey.generate(1, 32)})
    assert set(framekeys.receive(good, device.public, mine, call="c", plan_hash="00" * 32,
                                 me=me).keys) == {"video"}


def test_the_frame_key_message_is_validated_and_bounded() -> None:
    v = VECTORS["frame_key"]
    raw = json.dumps({**v["message"], "to": v["receiver"]})
    parsed = messages.parse_client(raw)
    assert isinstance(parsed, messages.FrameKey)
    relayed = messages.relayed(parsed, v["sender"])
    assert relayed["for"] == v["message"]["for"] and relayed["from"] == v["sender"]
    with pytest.raises(messages.RemoteProtocolError):
        messages.parse_client(json.dumps({**v["message"], "keys": [
            {"kind": "audio", "key_id": 1, "wrapped": "A" * 400}]}))
    with pytest.raises(messages.RemoteProtocolError):
        messages.parse_client(json.dumps({**v["message"], "keys": [
            {"kind": "data", "key_id": 1, "wrapped": "A" * 75}]}))
    with pytest.raises(messages.RemoteProtocolError):
        messages.parse_client(json.dumps({**v["message"], "keys": v["message"]["keys"] * 2}))
    with pytest.raises(messages.RemoteProtocolError):
        messages.parse_client(json.dumps({**v["message"], "ecdh": "short"}))

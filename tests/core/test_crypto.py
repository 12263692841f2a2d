from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from summitline.core.sas import sas
from summitline.crypto import sdp as signed_sdp
from summitline.crypto.encoding import b64u, unb64u
from summitline.crypto.keys import CURVE_ORDER, HALF_ORDER, PrivateKey, PublicKey, SignatureError
from summitline.crypto.keystore import Keystore, KeystoreError

SDP = """v=0
o=- 1 1 IN IP4 0.0.0.0
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=fingerprint:sha-256 AB:CD:EF:01
m=video 9 UDP/TLS/RTP/SAVPF 96
a=fingerprint:sha-256 AB:CD:EF:01
a=fingerprint:sha-512 11:22
"""


def test_signatures_are_p1363_and_verify_only_the_signed_statement() -> None:
    key = PrivateKey.generate()
    sig = key.sign({"purpose": "test", "n": 1})
    assert len(unb64u(sig)) == 64
    key.public.verify({"purpose": "test", "n": 1}, sig)
    with pytest.raises(SignatureError):
        key.public.verify({"purpose": "test", "n": 2}, sig)
    with pytest.raises(SignatureError):
        PrivateKey.generate().public.verify({"purpose": "test", "n": 1}, sig)


def test_public_keys_round_trip_and_garbage_is_refused() -> None:
    key = PrivateKey.generate().public
    assert PublicKey.from_b64u(key.b64u) == key
    with pytest.raises(SignatureError):
        PublicKey.from_b64u("AAAA")


def test_fingerprints_are_extracted_normalised() -> None:
    assert signed_sdp.fingerprints(SDP) == ["sha-256 AB:CD:EF:01", "sha-512 11:22"]


def test_a_swapped_dtls_fingerprint_fails_the_sdp_signature() -> None:
    key = PrivateKey.generate()
    args = dict(call="c", plan_hash="p", receiver="r", generation=1, kind="offer")
    sig = signed_sdp.sign(key, sdp=SDP, **args)  # type: ignore[arg-type]
    signed_sdp.verify(key.public, sig, sdp=SDP, **args)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        signed_sdp.verify(key.public, sig, sdp=SDP.replace("AB:CD", "AB:CE"), **args)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):  # and an offer signed for generation 1 is not generation 2
        signed_sdp.verify(key.public, sig, sdp=SDP, **{**args, "generation": 2})  # type: ignore[arg-type]


def test_the_short_authentication_string_is_symmetric_and_sensitive() -> None:
    a, b = ["sha-256 AA"], ["sha-256 BB"]
    assert sas("c", a, b) == sas("c", b, a)
    assert sas("c", a, b) != sas("c", a, ["sha-256 BC"])
    assert len(sas("c", a, b).replace(" ", "")) == 6


def test_keystore_files_are_private(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys").create()
    key = store.generate("device")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "device.key").stat().st_mode) == 0o600
    assert store.load_private("device").fingerprint == key.fingerprint
    os.chmod(tmp_path / "keys" / "device.key", 0o640)
    with pytest.raises(KeystoreError, match="chmod 600"):
        store.load_private("device")
    with pytest.raises(KeystoreError, match="no key"):
        store.load_private("other")


def test_pins_refuse_a_second_key_for_a_delegation(tmp_path: Path) -> None:
    store = Keystore(tmp_path).create()
    first, second = PrivateKey.generate().public, PrivateKey.generate().public
    store.pin(first.fingerprint, "US", first)
    assert store.pinned() == {first.fingerprint: first}
    with pytest.raises(KeystoreError, match="not come with a rotation"):
        store.pin(first.fingerprint, "US", second)
    with pytest.raises(KeystoreError, match="not the fingerprint"):
        store.pin(second.fingerprint, "UK", first)
    # along a chain that retires the pinned key, the pin follows (the Operator checks
    # the chain's signatures; the keystore only that it claims to start from the pin)
    step = {"previous": first.b64u, "key": second.b64u, "at": 1, "signature": "s",
            "proof": "p"}
    store.pin(first.fingerprint, "US", second, "name-sig", [step])
    assert store.pinned() == {first.fingerprint: second}
    assert store.pin_views()[first.fingerprint]["rotations"] == [step]
    assert repr(PrivateKey.generate()).startswith("PrivateKey(")


def test_signatures_are_low_s_and_the_high_twin_is_refused() -> None:
    key = PrivateKey.generate()
    for i in range(40):  # about half of raw ECDSA signatures are high-S
        st = {"purpose": "summitline/test", "i": i}
        raw = unb64u(key.sign(st))
        s = int.from_bytes(raw[32:], "big")
        assert s <= HALF_ORDER
        high = b64u(raw[:32] + (CURVE_ORDER - s).to_bytes(32, "big"))
        with pytest.raises(SignatureError, match="low-S"):
            key.public.verify(st, high)

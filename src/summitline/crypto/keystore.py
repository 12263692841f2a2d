"""A keystore on disk: private keys readable only by their owner, and pinned keys.

Layout of the directory (mode 0700):
  <name>.key      PKCS#8 PEM private key, mode 0600
  pins.json       delegation id -> {name, key, name_signature, rotations}: the keys
                  pinned at link time, and followed through the delegation's own
                  signed key rotations (``rotations``: its chain from its first key)
  operator.json   what the delegation's operator keeps itself, not the server:
                  {"revoked": [device id, ...], "languages": {device id: [language, ...]}}
Loading a private key that others can read is refused, as ssh refuses it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from summitline.crypto.keys import PrivateKey, PublicKey, SignatureError

_PRIVATE_MODE = 0o600
_DIR_MODE = 0o700


class KeystoreError(Exception):
    """The keystore cannot be used as it is. The message says what to do."""


class Keystore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> Keystore:
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, _DIR_MODE)
        return self

    def _key_path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise KeystoreError(f"invalid key name {name!r}")
        return self.path / f"{name}.key"

    def save_private(self, name: str, key: PrivateKey) -> Path:
        path = self._key_path(name)
        # Create with the final mode so the key is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(key.to_pem())
            f.flush()
            os.fsync(f.fileno())
        return path

    def load_private(self, name: str) -> PrivateKey:
        path = self._key_path(name)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise KeystoreError(f"no key {name!r} in keystore {self.path}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeystoreError(f"{path} is accessible by other users; "
                                f"run 'chmod 600 {path}' and try again")
        try:
            return PrivateKey.from_pem(path.read_bytes())
        except (ValueError, SignatureError) as exc:
            raise KeystoreError(f"{path} does not hold a usable P-256 key: {exc}") from exc

    def generate(self, name: str) -> PrivateKey:
        key = PrivateKey.generate()
        self.save_private(name, key)
        return key

    # -- pins ------------------------------------------------------------------------------
    def pin(self, delegation_id: str, name: str, key: PublicKey, name_signature: str = "",
            rotations: list[dict[str, Any]] | None = None) -> None:
        """Keep ``key`` as the pinned key of ``delegation_id``. A first pin must be the key
        whose fingerprint is the id, or come with the chain (``rotations``, as a
        delegation view gives it) that leads there from the id. A later pin may replace
        the key only along its chain: a step must retire the key pinned now. (The caller,
        ``Operator``, verifies the chain's signatures; this refuses a replacement that
        does not even claim to follow one.)"""
        steps = rotations or []
        pins = self._read_pins()
        old = pins.get(delegation_id)
        if old is None:
            first = PublicKey.from_b64u(steps[0]["previous"]) if steps else key
            if first.fingerprint != delegation_id:
                raise KeystoreError("refusing to pin: the id is not the fingerprint of the key "
                                    "(nor of the first key of its chain)")
        elif old["key"] != key.b64u and not any(s.get("previous") == old["key"] for s in steps):
            raise KeystoreError(f"delegation {name!r} is already pinned to another key, and "
                                "the new one does not come with a rotation from it")
        pins[delegation_id] = {"name": name, "key": key.b64u, "name_signature": name_signature,
                               "rotations": steps}
        tmp = self.path / "pins.json.tmp"
        tmp.write_text(json.dumps(pins, indent=2, sort_keys=True))
        os.replace(tmp, self.path / "pins.json")

    def pinned(self) -> dict[str, PublicKey]:
        return {k: PublicKey.from_b64u(v["key"]) for k, v in self._read_pins().items()}

    def pin_views(self) -> dict[str, dict[str, Any]]:
        """Each pin as a delegation view: {id, name, key, name_signature, rotations}."""
        return {k: {"id": k, "name": v["name"], "key": v["key"],
                    "name_signature": v.get("name_signature", ""),
                    "rotations": v.get("rotations", [])}
                for k, v in self._read_pins().items()}

    def _read_pins(self) -> dict[str, dict[str, Any]]:
        path = self.path / "pins.json"
        if not path.exists():
            return {}
        try:
            pins = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise KeystoreError(f"{path} is damaged: {exc}") from exc
        if not isinstance(pins, dict):
            raise KeystoreError(f"{path} is damaged: not a JSON object")
        return pins

    # -- what the operator keeps itself ---------------------------------------------------
    def operator_state(self) -> dict[str, Any]:
        """The devices this delegation revoked and the languages stated at certification."""
        path = self.path / "operator.json"
        if not path.exists():
            return {"revoked": [], "languages": {}}
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise KeystoreError(f"{path} is damaged: {exc}") from exc
        if not isinstance(state, dict) or not isinstance(state.get("revoked"), list) or \
                not isinstance(state.get("languages"), dict):
            raise KeystoreError(f"{path} is damaged: not the operator's state")
        return state

    def save_operator_state(self, revoked: set[str], languages: dict[str, tuple[str, ...]]) \
            -> None:
        tmp = self.path / "operator.json.tmp"
        tmp.write_text(json.dumps({"revoked": sorted(revoked),
                                   "languages": {d: list(v) for d, v in languages.items()}},
                                  indent=2, sort_keys=True))
        os.replace(tmp, self.path / "operator.json")

"""TURN credentials for coturn's REST scheme (``use-auth-secret``).

The server shares a secret with coturn and mints, for each authenticated device, a
username ``<expiry>:<device>`` and a password ``base64(HMAC-SHA1(secret, username))``.
coturn checks them without asking the server. They are handed out only in ``welcome``,
after the device has proved its key: strangers get no relay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

# Long enough for the longest call to start (a credential gates only new allocations:
# a relay allocated before expiry keeps refreshing), short enough to be worthless soon.
DEFAULT_TTL_S = 6 * 3600


@dataclass(frozen=True)
class TurnSettings:
    urls: tuple[str, ...]  # e.g. ("turn:turn.example.org:3478?transport=udp",)
    secret: str
    ttl_s: int = DEFAULT_TTL_S

    def __repr__(self) -> str:  # never print the secret
        return f"TurnSettings(urls={self.urls!r}, ttl_s={self.ttl_s})"


def credentials(turn: TurnSettings, device: str, now_s: int) -> dict[str, Any]:
    username = f"{now_s + turn.ttl_s}:{device[:16]}"
    digest = hmac.new(turn.secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"urls": list(turn.urls), "username": username,
            "credential": base64.b64encode(digest).decode()}

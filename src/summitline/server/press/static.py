"""The HLS programme from a static web server: no Python on a broadcaster's requests.

With ``summitline serve --hls-dir DIR --hls-url URL --hls-secret-file FILE`` the programme's
playlist and segments are written as plain files to ``DIR/{call}/`` (the playlist
atomically, each segment complete before the playlist names it), and a web server or CDN
in front serves ``URL/{call}/...`` from there (deploy/nginx/summitline-hls.conf).

Who may read them is checked by that server, statelessly, with nginx's ``secure_link``:
the press token answer carries an HLS key for the call, valid as long as the token,
which a player sends as the press token is sent, in ``Authorization: Bearer KEY``, never
in a URL. The key is ``EXPIRES.HASH``: ``EXPIRES`` in Unix seconds, and ``HASH`` the
unpadded base64url MD5 of ``EXPIRES`` + ``call`` + ``" "`` + the shared secret, which is
what ``secure_link_md5 "$hls_expires$call SECRET"`` computes. nginx offers MD5 only; the
secret at the end and the short lifetime (at most 15 minutes, as the token) are what it
rests on (docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class StaticHls:
    url: str  # where the web server serves the HLS directory, e.g. https://press.example/hls
    secret: str  # shared with the web server's secure_link_md5

    def key(self, call: str, expires_ms: int) -> str:
        expires = expires_ms // 1000
        digest = hashlib.md5(f"{expires}{call} {self.secret}".encode(),  # noqa: S324
                             usedforsecurity=True).digest()
        return f"{expires}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"

    def playlist(self, call: str) -> str:
        return f"{self.url.rstrip('/')}/{call}/index.m3u8"

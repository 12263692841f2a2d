"""axe-core, the accessibility checker, for the browser tests only: one pinned version of
the npm package, checked against the integrity the registry publishes for it, kept in a
cache directory and injected into a page with ``add_script_tag``. It is never served
with the client.

The tests run in a network namespace with only loopback, so the package is fetched
before them: ``python3 -m tests.browser.axe`` (what .ci/run does) downloads the package's
tarball from the npm registry (no npm needed: the registry serves it over HTTPS at a fixed
address) and checks it against the pinned integrity. The cache is $SUMMITLINE_AXE_CACHE
(default ~/.cache/summitline/axe).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.14.1"
URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
# the registry's dist.integrity of axe-core@4.14.1 (npm view axe-core@4.14.1 dist.integrity)
INTEGRITY = ("sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe"
             "37OgudVGtQ==")


def cache() -> Path:
    default = Path.home() / ".cache" / "summitline" / "axe"
    return Path(os.environ.get("SUMMITLINE_AXE_CACHE", default))


def tarball() -> Path:
    return cache() / f"axe-core-{VERSION}.tgz"


def integrity_of(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch() -> Path:
    """The checked tarball in the cache, downloaded from the registry if it is not there."""
    path = tarball()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        with urllib.request.urlopen(URL, timeout=120) as response:  # noqa: S310 (pinned https)
            partial.write_bytes(response.read())
        partial.replace(path)
    if integrity_of(path) != INTEGRITY:
        path.unlink()
        raise RuntimeError(f"axe-core {VERSION}: the tarball does not match its integrity")
    return path


def script() -> str:
    """The text of axe.min.js from the cached tarball (checked again before use)."""
    path = tarball()
    if not path.exists():
        raise FileNotFoundError(
            f"axe-core {VERSION} is not in {path.parent}: run `python3 -m tests.browser.axe`"
            " before the tests (it needs the npm registry)")
    if integrity_of(path) != INTEGRITY:
        raise RuntimeError(f"{path}: does not match the integrity of axe-core {VERSION}")
    with tarfile.open(path) as tar:
        member = tar.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode("utf-8")


if __name__ == "__main__":
    print(fetch())
    sys.exit(0)

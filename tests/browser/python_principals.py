"""Python principals of a browser test, in a process of their own: aiortc encodes and
decodes in the event loop, and the test's server runs in the test's loop, so that
endpoints in the same process starve its signaling (a briefing of five on 2 cores
dropped the browsers' keepalives).

Run as ``python -m tests.browser.python_principals`` (from the repository root) with
one JSON line on stdin: {"url", "call", "principals": [{"pem", "pinned": {id: b64u}}]}
(and "ice": "janus" for a call whose media goes through the test's Janus, whose
candidates are on tests/janus.py's veth: then the principals' are there too).
Then, per line on stdin: "status" answers one JSON line, per device: joined, the group
code, the pair code and the video and audio frames decoded from each remote; "wait N
[REMOTE]" answers it once every principal here decoded more than N video frames from
REMOTE (from each of the others without one); "media N [REMOTE]" the same with more than
N of both video and audio frames; "leave" leaves and exits. The test bounds every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from summitline.client.ice import loopback
from summitline.client.media import MediaSource
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey, PublicKey
from tests.janus import viewer_ice


def status(sessions: list[CallSession], remotes: list[str]) -> dict[str, Any]:
    return {s.device: {
        "joined": s.joined.is_set(), "group": s.group_code(),
        "sas": {r: s.short_authentication_string(r) for r in remotes if r != s.device},
        "frames": {r: s.frames_from(r, MediaKind.VIDEO) for r in remotes if r != s.device},
        "audio": {r: s.frames_from(r, MediaKind.AUDIO) for r in remotes if r != s.device},
        "alarms": s.alarms} for s in sessions}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    sessions = [CallSession(spec["url"], spec["call"], Identity(
        PrivateKey.from_pem(p["pem"].encode()),
        {d: PublicKey.from_b64u(k) for d, k in p["pinned"].items()}),
        ice=viewer_ice() if spec.get("ice") == "janus" else loopback(),
        source=MediaSource.synthetic(160, 120, 10))  # small: 2 cores hold the whole test
        for p in spec["principals"]]
    tasks = [asyncio.create_task(s.run()) for s in sessions]
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "leave":
                break
            if line.startswith(("wait ", "media ")):
                command, n, *remote = line.split()
                kinds = [MediaKind.VIDEO] if command == "wait" else list(MediaKind)

                def enough(s: CallSession, n: int = int(n), remote: list[str] = remote,
                           kinds: list[MediaKind] = kinds) -> bool:
                    return all(s.frames_from(r, kind) > n for kind in kinds
                               for r in remote or spec["remotes"] if r != s.device)
                await asyncio.gather(*(s.wait_for(lambda s=s: enough(s)) for s in sessions))
            print(json.dumps(status(sessions, spec["remotes"])), flush=True)
    finally:
        for s in sessions:
            await s.leave()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


if __name__ == "__main__":
    asyncio.run(main())

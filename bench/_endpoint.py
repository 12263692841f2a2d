"""One endpoint of bench/interpretation.py in a process of its own, driven over a pipe.

A process per endpoint, so that the figures are the path's and not one event loop's
queueing. CLOCK_MONOTONIC is the same in every process of the machine, so times noted
in one process compare with times noted in another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from multiprocessing.connection import Connection
from typing import Any

from summitline.client import soundcheck
from summitline.client.ice import loopback
from summitline.client.media import MediaSource, PatternVideoTrack
from summitline.client.session import CallSession, Identity
from summitline.core.roles import MediaKind
from summitline.crypto.keys import PrivateKey, PublicKey

FLOOR_HEARD_S = 1.0  # the floor's last second, for its frequency response


def run(conn: Connection, spec: dict[str, Any]) -> None:
    """Process entry: ``spec`` says who (keys, call, server) and what voice."""
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve(conn, spec))


async def _serve(conn: Connection, spec: dict[str, Any]) -> None:
    from bench.interpretation import BurstTrack, Onsets  # the measuring parts

    burst = BurstTrack() if spec["voice"] == "bursts" else None
    source = {"bursts": lambda: MediaSource(burst, PatternVideoTrack()),
              "tone": MediaSource.synthetic,
              "soundcheck": lambda: MediaSource(soundcheck.SoundCheckTrack(),
                                                PatternVideoTrack()),
              "parrot": lambda: MediaSource.interpreter(parrot=True),
              "none": lambda: MediaSource.synthetic()}[spec["voice"]]()
    key = PrivateKey.from_pem(spec["key"].encode())
    pins = {k: PublicKey.from_b64u(v) for k, v in spec["pins"].items()}
    session = CallSession(spec["ws"], spec["call"], Identity(key, pins), ice=loopback(),
                          source=source)
    task = asyncio.create_task(session.run())
    onsets: dict[str, Onsets] = {}
    mix = None
    floor = soundcheck.Recorder(FLOOR_HEARD_S)  # what this endpoint last heard of the floor

    def listen(remote: str, frame: Any, arrived: float) -> None:
        onsets.setdefault(remote, Onsets()).feed(frame, arrived)

    def hear_floor(remote: str, frame: Any, arrived: float) -> None:
        if remote == spec.get("floor"):
            floor.feed(frame)

    session.audio_listeners.append(hear_floor)

    if spec.get("listen"):
        session.audio_listeners.append(listen)
        await asyncio.wait_for(session.joined.wait(), 30)
        mix = session.listen(spec["listen"])
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        op, arg = command[0], (command[1] if len(command) > 1 else None)
        if op == "ready":  # links to everyone, audio flowing
            await asyncio.wait_for(session.wait_for(lambda n=arg: len(session.links) == n
                                   and all(link.frames[MediaKind.AUDIO] > 10
                                           for link in session.links.values())), 60)
            conn.send(True)
        elif op == "live":
            await session.go_live()
            await asyncio.wait_for(session.wait_for(lambda: session.live), 30)
            conn.send(True)
        elif op == "handover":
            await session.handover(arg)
            conn.send(time.monotonic())
        elif op == "bursts":  # wait until this many bursts have left
            await asyncio.wait_for(session.wait_for(
                lambda n=arg: burst is not None and len(burst.sent) >= n), 120)
            conn.send(len(burst.sent) if burst else 0)
        elif op == "await_playing":  # wait until the listener plays this voice
            assert mix is not None
            await asyncio.wait_for(session.wait_for(lambda who=arg: mix.playing == who), 30)
            conn.send(len(mix.played))
        elif op == "settle":  # let this much time pass in the endpoint's own loop
            deadline = time.monotonic() + arg
            await asyncio.wait_for(session.wait_for(lambda t=deadline: time.monotonic() > t),
                                   30)
            conn.send(len(mix.played) if mix else 0)
        elif op == "report":
            conn.send({"sent": burst.sent if burst else [],
                       "onsets": {r: o.times for r, o in onsets.items()},
                       "played": mix.played if mix else [],
                       "floor_levels": soundcheck.levels_db(floor.pcm()) if floor.full
                       else None})
        elif op == "stop":
            await session.leave()
            task.cancel()
            conn.send(True)
            return

"""Closing a peer connection in bounded time, whatever aiortc's decoder threads do.

Each ``RTCRtpReceiver`` of aiortc (1.16) decodes in a thread of its own, fed by an
unbounded ``queue.Queue`` of encoded frames. To stop it, the receiver puts ``None`` at
the *end* of that queue and calls ``Thread.join()`` with no timeout, on the event loop's
thread. The join therefore waits until the thread has decoded every frame queued before
the sentinel (a decoder that fell behind on a starved machine has a backlog of minutes)
and finished the decode it is in. The loop is blocked all that while: no timer, no
``asyncio.timeout``, no signal handler of asyncio or uvicorn runs. The receiver does
this on ``RTCPeerConnection.close()``, on an RTCP BYE from the remote side and when the
DTLS transport is lost, so closing either end can freeze both.

``guard_decoders(pc)`` bends this per receiver object, on one peer connection only:
stopping a guarded receiver drops the frames not yet decoded, hands the thread its
sentinel, ends the track at once and does not join; ``close_peer`` then waits for the
threads off the loop, within its bound. A thread stuck for good is left behind (it
cannot be killed) and listed by ``abandoned_decoders()``: aiortc makes these threads
non-daemon, so a command that must exit checks that list and exits without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import queue
import threading
import time
import weakref
from typing import Any

from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

# A peer connection closes in about 1 ms here, and within 30 ms with three busy processes
# beside it on 2 cores (tests/client/test_shutdown.py); 2 s leaves a wide margin for a
# starved machine, and is still short enough not to hold up a call's end, a demo
# stopped by SIGTERM or a test's teardown.
CLOSE_TIMEOUT_S = 2.0

# aiortc's private names (RTCRtpReceiver, name-mangled), checked when a receiver is
# guarded so that an aiortc that renamed them fails loudly instead of hanging again.
_THREAD = "_RTCRtpReceiver__decoder_thread"
_QUEUE = "_RTCRtpReceiver__decoder_queue"
_STOP = "_RTCRtpReceiver__stop_decoder"

# glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB),
# and its trim threshold to twice that. Every peer connection allocates codec and packet
# buffers of a few hundred kB; once the first connection has closed, its successors' are
# taken from the heap instead of mmap, and the heap, fragmented, is never given back:
# with a peer connection per repair, RSS grew 3 MB per repair in a two-hour call. A fixed
# threshold (glibc's own default, no longer moved) keeps such blocks in mmap, returned on
# free. mallopt's parameter number of M_MMAP_THRESHOLD in glibc's malloc.h:
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def fixed_malloc_threshold() -> bool:
    """Keep glibc's mmap threshold fixed for the whole process (see above); idempotent.
    False where the C library has no ``mallopt`` or refuses (not glibc: nothing to do)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


_detached: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_closing: set[asyncio.Task[None]] = set()  # closes that outlived their bound, still running


def guard_decoders(pc: RTCPeerConnection) -> None:
    """From now on, stopping any current receiver of ``pc`` (on close, on the remote's
    BYE, on a lost DTLS transport) never waits for its decoder thread on the event loop.
    Idempotent; call it again after a negotiation that added receivers."""
    for receiver in pc.getReceivers():
        if _STOP in vars(receiver):
            continue
        missing = [n for n in (_THREAD, _QUEUE) if not hasattr(receiver, n)]
        if missing or not hasattr(receiver, _STOP):
            raise RuntimeError(f"aiortc's RTCRtpReceiver has no {missing or _STOP}: "
                               "summitline.client.closing must follow this aiortc version")
        setattr(receiver, _STOP, functools.partial(_stop_unjoined, receiver))


def _stop_unjoined(receiver: Any) -> threading.Thread | None:
    """The receiver's stop of its decoder, without the join. Returns the thread."""
    thread: threading.Thread | None = getattr(receiver, _THREAD)
    if thread is None:
        return None
    setattr(receiver, _THREAD, None)  # aiortc queues no more frames for it
    frames: queue.Queue[Any] = getattr(receiver, _QUEUE)
    with frames.mutex:  # what is not decoded yet would only be thrown away
        frames.queue.clear()
    frames.put(None)
    # The thread ends the track when it reaches the sentinel; a stuck one never does,
    # and whoever reads the track would wait for ever.
    receiver.track._queue.put_nowait(None)
    _detached.add(thread)
    return thread


def abandoned_decoders() -> list[threading.Thread]:
    """Decoder threads stopped by a guarded receiver that have not ended (yet)."""
    return [t for t in list(_detached) if t.is_alive()]


async def close_peer(pc: RTCPeerConnection, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """Close ``pc``; return within ``timeout_s`` (the event loop is never blocked for
    longer than a queue operation meanwhile). True if it closed cleanly: the close ran
    to its end and every decoder thread ended. Otherwise the close goes on in the
    background and a stuck decoder thread is left behind (see ``abandoned_decoders``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    guard_decoders(pc)
    threads = [t for t in (_stop_unjoined(r) for r in pc.getReceivers()) if t is not None]
    task = loop.create_task(pc.close())
    _closing.add(task)
    task.add_done_callback(_closed)
    closed = False
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.shield(task)
        closed = True
    except TimeoutError:
        log.warning("closing a peer connection took over %.1f s; left to finish in the "
                    "background", timeout_s)
    except Exception as exc:  # aiortc's close failing is no reason to fail the caller
        log.warning("closing a peer connection failed: %r", exc)
    ended = await _ended(threads, max(0.0, deadline - loop.time()))
    if not ended:
        log.warning("%d decoder thread(s) still busy %.1f s after the close began; left "
                    "behind", sum(t.is_alive() for t in threads), timeout_s)
    return closed and ended


def _closed(task: asyncio.Task[None]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("background close of a peer connection failed: %r", task.exception())


async def _ended(threads: list[threading.Thread], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``threads`` to end, joining them in a helper thread
    so that the event loop never waits on a join."""
    alive = [t for t in threads if t.is_alive()]
    if not alive:
        return True
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def join() -> None:
        end = time.monotonic() + timeout_s
        for t in alive:
            t.join(max(0.0, end - time.monotonic()))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=join, name="summitline-decoder-join", daemon=True).start()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s + 0.1):  # the helper settles by then
            await done
    return not any(t.is_alive() for t in alive)

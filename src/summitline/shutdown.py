"""Stopping a command on SIGTERM or SIGINT: the first signal asks for a clean stop, a
second one aborts at once, and a stop that overruns its deadline ends the process.

The handlers are plain ``signal.signal`` handlers, not the event loop's: they run on the
main thread even while the loop is busy, and the second signal needs no Python at all
(its default action is restored by the first).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The longest a clean stop may take once signalled: closing peer connections (2 s each,
# client/closing.py), the server's goodbye to its WebSockets and its graceful shutdown
# (server/run.py) and the demo's record signatures take about 1 s in all; three times
# the sum of their bounds. Past it the process exits with EXIT_OVERRAN.
STOP_DEADLINE_S = 20.0
EXIT_OVERRAN = 3


@contextlib.contextmanager
def stop_on_signals(on_stop: Callable[[int], None],
                    deadline_s: float = STOP_DEADLINE_S) -> Iterator[None]:
    """While inside, the first SIGTERM or SIGINT calls ``on_stop(signal number)`` (on the
    main thread, in the handler: only set a flag or call ``loop.call_soon_threadsafe``),
    gives both signals back their default action, so that a second one ends the process
    at once, and arms a watchdog that ends it if it still runs ``deadline_s`` later.
    The watchdog stays armed after the block: the process is stopping. Main thread only.
    """
    def first(signum: int, frame: FrameType | None) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        watchdog = threading.Timer(deadline_s, _overran, (signum, deadline_s))
        watchdog.daemon = True
        watchdog.start()
        on_stop(signum)

    previous = {s: signal.signal(s, first) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            if signal.getsignal(s) is first:
                signal.signal(s, handler)


def _overran(signum: int, deadline_s: float) -> None:
    os.write(2, f"summitline: still stopping {deadline_s:.0f} s after "
                f"{signal.Signals(signum).name}; exiting now\n".encode())
    os._exit(EXIT_OVERRAN)

"""What the fixtures that run a real daemon share (coturn, Janus, nginx): its log read up
to the line that says it is ready, then drained in the background so that a full pipe
never stalls it, and written out once it stopped, for a failure's post-mortem; and a stop
that is bounded (terminate, then kill)."""

from __future__ import annotations

import asyncio
from pathlib import Path


class DaemonLog:
    def __init__(self, stream: asyncio.StreamReader, name: str) -> None:
        self.stream, self.name = stream, name
        self.lines: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def ready(self, line: str, timeout_s: float) -> None:
        """Wait (bounded) for a log line containing ``line``; then drain the rest."""
        async def read() -> None:
            while got := (await self.stream.readline()).decode(errors="replace"):
                self.lines.append(got)
                if line in got:
                    return
            raise RuntimeError(f"{self.name} exited:\n" + "".join(self.lines[-20:]))
        await asyncio.wait_for(read(), timeout_s)
        self._drain = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        while got := await self.stream.readline():
            self.lines.append(got.decode(errors="replace"))

    async def finish(self, path: Path, timeout_s: float) -> None:
        """Once the daemon stopped: the drain ends with its pipe; the log to ``path``."""
        if self._drain is not None:
            await asyncio.wait_for(self._drain, timeout_s)
        path.write_text("".join(self.lines))  # noqa: ASYNC240 - once, after it stopped


async def stop(proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Terminate, and kill what does not end within ``timeout_s``; bounded either way."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await asyncio.wait_for(proc.wait(), timeout_s)

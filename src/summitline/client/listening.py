"""What a principal hears of an interpretation channel, handovers included.

The booth has one live interpreter at a time, but the two partners' voices reach the
listener over different paths: switching at the booth message would leave a gap (the
new voice is not here yet) or an overlap. So the listener keeps playing the voice it
plays until the newly live interpreter is actually heard, then switches, and never
plays both. (The interpreter handing over keeps speaking for HANDOVER_TAIL_S, so the
old voice lasts until the new one arrives.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from summitline.client.media import loudness

SILENT = 0.01  # RMS of full scale below which a frame is not speech
# Longest wait for the new voice before the old one is let go even if the new is silent
# (a new interpreter may take a breath first). Matches the outgoing one's tail.
SWITCH_TIMEOUT_S = 1.5


@dataclass
class ChannelMix:
    """Picks, frame by frame, whose voice a listener of ``channel`` hears."""

    channel: str
    playing: str | None = None  # the interpreter whose frames are played
    live: str | None = None  # who the booth says is live
    _since: float = 0.0
    played: list[tuple[float, str, bool]] = field(default_factory=list)  # (t, who, loud)

    booth_members: frozenset[str] = frozenset()  # the plan's interpreters of the channel

    def booth(self, live: dict[str, str], now: float) -> None:
        new = live.get(self.channel)
        if new is not None and self.booth_members and new not in self.booth_members:
            new = None  # the server names someone the plan does not seat in this booth
        if new != self.live:
            self.live, self._since = new, now
            if self.playing is None:
                self.playing = new

    def hear(self, remote: str, frame: Any, arrived: float) -> Any | None:
        """The frame to play for this channel, or None (not from the voice played)."""
        if remote == self.live and remote != self.playing and (
                loudness(frame) > SILENT or arrived - self._since > SWITCH_TIMEOUT_S):
            self.playing = remote  # the new voice is here: switch, never mixing the two
        if remote != self.playing:
            return None
        self.played.append((arrived, remote, loudness(frame) > SILENT))
        return frame

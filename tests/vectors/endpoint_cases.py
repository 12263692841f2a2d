"""Scenarios of the endpoint's link rules (``summitline.core.endpoint``): input sequences
that ``make_vectors.py`` replays through the Python rules to write
``tests/vectors/endpoint.json``, which the browser's ``web/endpoint.js`` must replay to
the same actions. ``tests/core/test_endpoint.py`` asserts what each one must show."""

from __future__ import annotations

from summitline.core import endpoint as ep

A, B, C = "a" * 64, "b" * 64, "c" * 64  # A offers to B; C answers B
AV = frozenset({"audio", "video"})
AUDIO = frozenset({"audio"})


def up(me: str, remote: str, t: int = 0) -> list[ep.Input]:
    """A first link that connects and carries both kinds; generation 1."""
    first: list[ep.Input] = [ep.Welcome(t, (remote,)), ep.Grants(t, ((remote, AV),))]
    if not ep.offers(me, remote):
        first.append(ep.OfferIn(t + 10, remote, 1))
    return first + [ep.State(t + 100, remote, 1, "connected"),
                    ep.Media(t + 200, remote, 1, AV), ep.Tick(t + 250)]


def flowing(remote: str, generation: int, start: int, end: int,
            kinds: frozenset[str] = AV) -> list[ep.Input]:
    """Media and ticks every 250 ms from ``start`` to ``end``."""
    out: list[ep.Input] = []
    for t in range(start, end, 250):
        out += [ep.Media(t, remote, generation, kinds), ep.Tick(t + 1)]
    return out


def ticks(start: int, end: int) -> list[ep.Input]:
    return [ep.Tick(t) for t in range(start, end, 250)]


CASES: dict[str, tuple[str, list[ep.Input]]] = {
    "first link, offerer": (A, up(A, B)),
    "first link, answerer": (C, up(C, B)),
    "stall and repair, offerer": (A, up(A, B) + flowing(B, 1, 500, 2000) + ticks(2000, 3500)
                                  + [ep.State(3600, B, 2, "connected"),
                                     ep.Media(3700, B, 2, AV), ep.Tick(3750)]),
    "retries back off to 2 s": (A, up(A, B) + ticks(500, 12000)),
    "an answered try that is connecting is given time": (
        A, up(A, B) + ticks(500, 1500) + [ep.State(1600, B, 2, "connecting")]
        + ticks(1750, 6000)),
    "the old link resumes by itself": (A, up(A, B) + ticks(500, 2500)
                                       + flowing(B, 1, 2500, 3500)),
    "stall and repair, answerer": (C, up(C, B) + ticks(500, 2500)
                                   + [ep.OfferIn(2600, B, 2), ep.State(2700, B, 2, "connected"),
                                      ep.Media(2800, B, 2, AV), ep.Tick(2850)]),
    "signaling down: the repair waits for welcome": (
        A, up(A, B) + [ep.SignalingLost(400)] + ticks(500, 3000)
        + [ep.Welcome(3100, (B,), ((B, 1),))] + ticks(3250, 3600)),
    "a muted camera is no stall": (
        A, up(A, B) + [ep.Muted(300, B, frozenset({"video"}))]
        + flowing(B, 1, 500, 3000, AUDIO) + [ep.Muted(3000, B, frozenset())]
        + flowing(B, 1, 3250, 3800, AUDIO) + ticks(3800, 4500)),
    "the peer reports its side lost": (
        A, up(A, B) + flowing(B, 1, 500, 1000)
        + [ep.PeerReport(1000, B, 1, "lost")] + flowing(B, 1, 1250, 1750)
        + [ep.State(1800, B, 2, "connected"), ep.Media(1900, B, 2, AV), ep.Tick(1950)]),
    "the peer's late lost and restored arrive together": (
        A, up(A, B) + flowing(B, 1, 500, 1000)
        + [ep.PeerReport(1000, B, 1, "lost"), ep.PeerReport(1010, B, 1, "restored")]
        + flowing(B, 1, 1250, 3000)),
    "a failed connection is a stall at once": (A, up(A, B) + [ep.State(600, B, 1, "failed")]),
    "a replayed offer is refused": (C, up(C, B) + [ep.OfferIn(700, B, 1)]),
    "the phase ends the links": (A, up(A, B) + [ep.Grants(800, ())]),
    "a first link that never connects is tried again": (A, [
        ep.Welcome(0, (B,)), ep.Grants(0, ((B, AV),))] + ticks(250, 11000)),
    "the peer joins later": (A, [ep.Welcome(0, ()), ep.Grants(0, ((B, AV),)),
                                 *ticks(250, 1000), ep.PeerJoined(1100, B)]),
    "bye closes the link and the offerer offers again": (
        A, up(A, B) + [ep.Bye(600, B, 1)]),
}

"""The endpoint's link rules (core/endpoint.py): who offers, stalls, make-before-break
repair, backoff, reports; with no event loop and a clock that is just a number."""

from __future__ import annotations

import json

import pytest

from summitline.core import endpoint as ep
from tests.vectors.endpoint_cases import AV, CASES, A, B, C
from tests.vectors.make_endpoint_vectors import OUT, vectors


def run(name: str) -> list[tuple[ep.Input, ep.Action]]:
    me, inputs = CASES[name]
    state, out = ep.Endpoint(me), []
    for item in inputs:
        state, actions = state.apply(item)
        out += [(item, a) for a in actions]
    return out


def actions(name: str, *types: type) -> list[ep.Action]:
    return [a for _, a in run(name) if not types or isinstance(a, types)]


def at(name: str, cls: type) -> list[int]:
    """When (the input's time) each action of ``cls`` came."""
    return [i.now_ms for i, a in run(name) if isinstance(a, cls)]


def test_the_device_whose_id_sorts_first_offers() -> None:
    assert ep.offers(A, B) and not ep.offers(B, A) and not ep.offers(C, B)
    assert actions("first link, offerer", ep.Offer) == [ep.Offer(B, 1)]
    assert actions("first link, answerer", ep.Offer) == []
    assert actions("first link, answerer", ep.Answer) == [ep.Answer(B, 1)]
    assert ep.Status(B, "ok", 200) in actions("first link, offerer")


def test_a_stall_is_seen_within_1_5_s_reported_once_and_repaired_make_before_break() -> None:
    name = "stall and repair, offerer"
    (lost,) = [a for a in actions(name, ep.Report) if a.state == "lost"]
    assert lost == ep.Report(B, 1, "lost")
    last_frame = 1750
    (seen,) = at(name, ep.Report)[:1]
    assert seen - last_frame <= 1500
    assert ep.Status(B, "reconnecting", last_frame) in actions(name)
    # the new generation is offered at once; the old one closes only once it carries
    assert actions(name, ep.Offer, ep.Close) == [ep.Offer(B, 1), ep.Offer(B, 2),
                                                  ep.Close(B, 1)]
    assert at(name, ep.Close) == [3700]
    restored = actions(name, ep.Report)[-1]
    assert restored == ep.Report(B, 2, "restored", 3700 - last_frame)


def test_retries_back_off_and_never_more_than_2_s_apart() -> None:
    times = at("retries back off to 2 s", ep.Offer)[1:]  # the repairs
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] == ep.FIRST_TRY_MS and max(gaps) == ep.MAX_TRY_MS and len(times) >= 5
    # each try closes the one before it; the playing link stays open throughout
    closes = actions("retries back off to 2 s", ep.Close)
    assert ep.Close(B, 1) not in closes and len(closes) == len(times) - 1


def test_a_try_that_is_connecting_is_not_cut_short() -> None:
    name = "an answered try that is connecting is given time"
    assert at(name, ep.Offer) == [0, 1250, 1250 + ep.NEGOTIATED_TRY_MS]


def test_an_old_link_that_resumes_closes_the_try() -> None:
    name = "the old link resumes by itself"
    assert actions(name, ep.Close)[-1] == ep.Close(B, 3)
    assert actions(name, ep.Report)[-1] == ep.Report(B, 1, "restored", 2500 - 200)


def test_the_answerer_reports_and_waits_for_the_offer() -> None:
    name = "stall and repair, answerer"
    assert actions(name, ep.Offer) == []
    assert actions(name, ep.Answer) == [ep.Answer(B, 1), ep.Answer(B, 2)]
    assert actions(name, ep.Report)[0].state == "lost"
    assert actions(name, ep.Close) == [ep.Close(B, 1)]


def test_a_repair_waits_for_signaling_and_goes_out_on_welcome() -> None:
    name = "signaling down: the repair waits for welcome"
    assert at(name, ep.Offer) == [0, 3100]
    assert actions(name, ep.Offer)[-1] == ep.Offer(B, 2)


def test_announced_silence_is_not_a_stall_and_a_kind_back_on_gets_a_fresh_second() -> None:
    name = "a muted camera is no stall"
    (lost,) = at(name, ep.Report)
    assert lost == 4050  # video announced on at 3000 and never came: a stall after 1 s


def test_the_peer_may_see_what_this_end_does_not() -> None:
    name = "the peer reports its side lost"
    # its report stood PEER_GRACE_MS without a "restored": repaired then
    assert at(name, ep.Offer) == [0, 1500]
    assert ep.Status(B, "reconnecting", 1500) in actions(name)
    assert actions(name, ep.Report)[-1] == ep.Report(B, 2, "restored", 1900 - 1500)
    # a late "lost" followed by its "restored" (both queued during an outage) is no stall
    assert actions("the peer's late lost and restored arrive together", ep.Report) == []


def test_failures_and_byes_are_stalls_at_once_and_replays_alarm() -> None:
    assert at("a failed connection is a stall at once", ep.Offer) == [0, 600]
    assert at("bye closes the link and the offerer offers again", ep.Offer) == [0, 600]
    (alarm,) = actions("a replayed offer is refused", ep.Alarm)
    assert "old generation 1" in alarm.text
    assert actions("a replayed offer is refused", ep.Answer) == [ep.Answer(B, 1)]


def test_grants_withdrawn_close_every_link_and_late_peers_get_offers() -> None:
    assert actions("the phase ends the links", ep.Close) == [ep.Close(B, 1)]
    assert at("the peer joins later", ep.Offer) == [1100]
    assert at("a first link that never connects is tried again", ep.Offer) == [
        0, ep.CONNECT_TRY_MS, 2 * ep.CONNECT_TRY_MS]


def test_an_input_that_does_not_apply_changes_nothing() -> None:
    state = ep.Endpoint(A)
    for item in [ep.Media(5, B, 1, AV), ep.State(5, B, 3, "failed"), ep.Bye(5, B, 1),
                 ep.PeerReport(5, B, 1, "lost"), ep.Refused(5, B, 1), ep.Muted(5, B, AV)]:
        after, out = state.apply(item)
        assert after == state and out == []


@pytest.mark.parametrize("name", list(CASES))
def test_inputs_and_actions_round_trip_through_json(name: str) -> None:
    for item, action in run(name):
        assert ep.from_json(ep.to_json(item)) == item
        assert ep.from_json(ep.to_json(action)) == action


def test_the_shared_vectors_are_what_the_rules_give() -> None:
    assert json.loads(OUT.read_text()) == vectors()

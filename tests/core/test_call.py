"""The call state machine: the transition table, admission, generations, and, for any
sequence of events, its invariants (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from summitline.core import call as c
from summitline.core.record import Entry, check_chain, describe, replay
from summitline.core.roles import Phase, Role
from tests import factories
from tests.factories import World

W = World()
PLAN = W.plan(press_window_s=60)
SIGNED = W.signed(PLAN)
A, SPARE, B = W.us_principal.fingerprint, W.us_spare.fingerprint, W.ru_principal.fingerprint
AIDE, INTERP, OUT = W.us_aide.fingerprint, W.ru_interpreter.fingerprint, W.outsider.fingerprint


def started(*devices: str) -> c.Call:
    return factories.started(PLAN, *devices)


def test_every_transition_of_the_table_is_reachable_and_nothing_else() -> None:
    closed_plan = W.plan(press_window_s=0)
    assert c.Call(PLAN).apply(c.Start(0)).phase is Phase.OPEN
    assert c.Call(closed_plan).apply(c.Start(0)).phase is Phase.CLOSED
    assert c.Call(PLAN).apply(c.Start(0)).apply(c.CloseDoors(1)).phase is Phase.CLOSED
    for state in (c.Call(PLAN), started(), started().apply(c.CloseDoors(2))):
        assert state.apply(c.End(5)).phase is Phase.ENDED
    ended = started().apply(c.End(5))
    for event in (c.Start(6), c.CloseDoors(6), c.End(6)):
        with pytest.raises(c.IllegalEvent) as err:
            ended.apply(event)
        assert err.value.code == "phase"


def test_press_deadline_follows_the_plan() -> None:
    state = c.Call(PLAN).apply(c.Start(1000))
    assert state.press_deadline_ms == 1000 + 60_000
    assert state.apply(c.CloseDoors(2000)).press_deadline_ms is None


def test_only_one_principal_per_delegation_is_admitted() -> None:
    state = started(A)
    with pytest.raises(c.IllegalEvent) as err:
        state.apply(c.Join(SPARE))
    assert err.value.code == "seat-taken"
    # once the primary leaves, the spare terminal may take the seat
    assert SPARE in state.apply(c.Leave(A)).apply(c.Join(SPARE)).admitted


@pytest.mark.parametrize("device, code", [(OUT, "not-in-plan"), (A, "already-joined")])
def test_refused_joins(device: str, code: str) -> None:
    state = started(A)
    with pytest.raises(c.IllegalEvent) as err:
        state.apply(c.Join(device))
    assert err.value.code == code


def test_offers_need_a_newer_generation_and_answers_a_pending_offer() -> None:
    state = started(A, B).apply(c.Offer(B, A, 1))
    with pytest.raises(c.IllegalEvent, match="replayed"):
        state.apply(c.Offer(B, A, 1))
    with pytest.raises(c.IllegalEvent) as err:
        state.apply(c.Answer(B, A, 1))  # the offerer cannot answer itself
    assert err.value.code == "no-offer"
    answered = state.apply(c.Answer(A, B, 1))
    with pytest.raises(c.IllegalEvent):
        answered.apply(c.Answer(A, B, 1))  # answered once only
    assert answered.apply(c.Offer(A, B, 2)).generation(A, B) == 2


def test_offers_follow_the_permission_table() -> None:
    state = started(A, B, AIDE, INTERP)
    with pytest.raises(c.IllegalEvent) as err:
        state.apply(c.Offer(A, AIDE, 1))
    assert err.value.code == "not-permitted"
    state.apply(c.Offer(A, INTERP, 1))  # floor audio to the interpreter is allowed
    with pytest.raises(c.IllegalEvent):
        c.Call(PLAN).apply(c.Join(A)).apply(c.Join(B)).apply(c.Offer(A, B, 1))  # not started


def test_reset_drops_every_admission_but_keeps_generations() -> None:
    state = started(A, B).apply(c.Offer(A, B, 3)).apply(c.Reset())
    assert state.admitted == frozenset()
    assert state.generation(A, B) == 3


# -- properties over any sequence of events ------------------------------------------
DEVICES = [A, SPARE, B, AIDE, INTERP, OUT]
events = st.one_of(
    st.builds(c.Start, st.integers(0, 10**6)),
    st.builds(c.CloseDoors, st.integers(0, 10**6)),
    st.builds(c.End, st.integers(0, 10**6)),
    st.builds(c.Join, st.sampled_from(DEVICES)),
    st.builds(c.Leave, st.sampled_from(DEVICES)),
    st.just(c.Reset()),
    st.builds(c.Offer, st.sampled_from(DEVICES), st.sampled_from(DEVICES), st.integers(1, 4)),
    st.builds(c.Answer, st.sampled_from(DEVICES), st.sampled_from(DEVICES), st.integers(1, 4)),
)

@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=60))
def test_invariants_hold_for_any_sequence_of_events(seq: list[c.Event]) -> None:
    state = c.Call(PLAN)
    entries: list[Entry] = []
    for i, event in enumerate(seq):
        before = state
        try:
            state = state.apply(event)
        except c.IllegalEvent:
            assert state == before  # an illegal event changes nothing
            continue
        at = event.at_ms if isinstance(event, c.Start | c.CloseDoors | c.End) else i
        entries.append(Entry.make(entries[-1] if entries else None, at, *describe(event)))
        # nobody outside the plan is admitted
        assert all(PLAN.participant(d) is not None for d in state.admitted)
        # at most one principal per delegation
        principals = [PLAN.participant(d) for d in state.admitted]
        delegations = [p.delegation for p in principals if p and p.role is Role.PRINCIPAL]
        assert len(delegations) == len(set(delegations))
        assert OUT not in state.admitted
        if state.phase is Phase.ENDED:
            assert not state.admitted
    # the chain of what was applied verifies, and replays to the same state
    if entries:
        assert check_chain([e.to_json() for e in entries]) == entries
    assert replay(SIGNED, entries) == state

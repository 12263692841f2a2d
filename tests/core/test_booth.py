"""Interpretation in the core: booths, one live interpreter each, handover, relay; and
a two-hour-and-five-minute call with booth handovers every half hour, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from summitline.client.operator import participant
from summitline.core import call as c
from summitline.core.plan import CallPlan
from summitline.core.record import Entry, advance, check_chain, describe, replay, summary
from summitline.core.roles import Role
from summitline.crypto.keys import PrivateKey
from tests.factories import World, started

W = World()
RU_PARTNER, EN_INTERP = PrivateKey.generate(), PrivateKey.generate()
BASE = W.plan(press_window_s=300)
PLAN = CallPlan(**{**BASE.__dict__, "participants": (
    *BASE.participants,
    participant(RU_PARTNER, W.ru, Role.INTERPRETER, "RU interpreter 2", "ru"),
    participant(EN_INTERP, W.us, Role.INTERPRETER, "US interpreter", "en"))})
SIGNED = W.signed(PLAN)
A, B = W.us_principal.fingerprint, W.ru_principal.fingerprint
I1, I2, IE = W.ru_interpreter.fingerprint, RU_PARTNER.fingerprint, EN_INTERP.fingerprint


def in_call(*devices: str) -> c.Call:
    return started(PLAN, *devices)


def test_channels_and_booths_come_from_the_plan() -> None:
    assert PLAN.channels == ["en", "ru"]
    assert [p.device for p in PLAN.booth("ru")] == [I1, I2]


def test_one_live_interpreter_per_booth_and_only_it_hands_over() -> None:
    state = in_call(A, B, I1, I2, IE).apply(c.GoLive(I1))
    assert state.live == {"ru": I1}
    for event, code in [(c.GoLive(I2), "booth-busy"), (c.GoLive(I1), "already-live"),
                        (c.Handover(I2, I1), "not-live"), (c.Handover(I1, IE), "not-partner"),
                        (c.Handover(I1, I1), "not-partner"), (c.GoLive(A), "not-interpreter")]:
        with pytest.raises(c.IllegalEvent) as err:
            state.apply(event)
        assert err.value.code == code, event
    handed = state.apply(c.Handover(I1, I2))
    assert handed.live == {"ru": I2}
    assert handed.apply(c.GoLive(IE)).live == {"ru": I2, "en": IE}  # booths are separate
    assert handed.apply(c.Leave(I2)).live == {}  # the live one leaves: its booth is quiet


def test_no_interpretation_before_the_start_or_from_outside() -> None:
    with pytest.raises(c.IllegalEvent) as err:
        c.Call(PLAN).apply(c.Join(I1)).apply(c.GoLive(I1))
    assert err.value.code == "phase"
    with pytest.raises(c.IllegalEvent):
        in_call(I1).apply(c.Handover(I1, I2))  # not live; and I2 is not even connected
    state = in_call(I1).apply(c.GoLive(I1))
    with pytest.raises(c.IllegalEvent) as err:
        state.apply(c.Handover(I1, I2))
    assert err.value.code == "peer-absent"


def test_relay_takes_another_channel_as_source() -> None:
    state = in_call(I1, IE)
    assert state.source_of(I1) == c.FLOOR
    assert state.apply(c.SetSource(I1, "en")).source_of(I1) == "en"
    for source in ("ru", "fr"):  # not its own channel, not one nobody speaks into
        with pytest.raises(c.IllegalEvent) as err:
            state.apply(c.SetSource(I1, source))
        assert err.value.code == "bad-source"


DEVICES = [A, B, I1, I2, IE]
booth_events = st.one_of(
    st.builds(c.Join, st.sampled_from(DEVICES)), st.builds(c.Leave, st.sampled_from(DEVICES)),
    st.builds(c.GoLive, st.sampled_from(DEVICES)),
    st.builds(c.Handover, st.sampled_from(DEVICES), st.sampled_from(DEVICES)),
    st.builds(c.GoQuiet, st.sampled_from(DEVICES)), st.just(c.Reset()),
    st.builds(c.SetSource, st.sampled_from(DEVICES), st.sampled_from(["floor", "ru", "en"])))


@settings(max_examples=300, deadline=None)
@given(st.lists(booth_events, max_size=50))
def test_a_booth_never_has_two_live_or_a_stranger_live(seq: list[c.Event]) -> None:
    state = c.Call(PLAN).apply(c.Start(0))
    for event in seq:
        try:
            state = state.apply(event)
        except c.IllegalEvent:
            continue
        live = list(state.live.values())
        assert len(live) == len(set(live))
        for channel, device in state.live.items():
            p = PLAN.participant(device)
            assert p is not None and p.role is Role.INTERPRETER and p.language == channel


@dataclass
class FakeClock:
    now_ms: int = 1_638_892_800_000  # 7 December 2021, 16:00 UTC

    def advance(self, minutes: int) -> int:
        self.now_ms += minutes * 60_000
        return self.now_ms


def test_a_two_hour_five_minute_call_with_handovers_every_half_hour() -> None:
    clock = FakeClock()
    state, head = c.Call(PLAN), None
    entries: list[Entry] = []

    def step(event: c.Event) -> None:
        nonlocal state, head
        state, head = advance(state, head, clock.now_ms, *describe(event), event)
        entries.append(head)

    for d in (A, B, I1, I2):
        step(c.Join(d))
    step(c.Start(clock.now_ms))
    step(c.GoLive(I1))
    step(c.CloseDoors(clock.advance(5)))  # the press had the first five minutes
    live, partner = I1, I2
    for minutes in (25, 30, 30, 30):  # to 0:30, 1:00, 1:30 and 2:00
        clock.advance(minutes)
        step(c.Handover(live, partner))
        live, partner = partner, live
    step(c.End(clock.advance(5)))  # 2:05 after the start

    facts = summary(entries)
    assert facts["duration_ms"] == (2 * 60 + 5) * 60_000
    handovers = [e for e in entries if e.kind == "booth.handover"]
    assert [(e.at - facts["started_ms"]) // 60_000 for e in handovers] == [30, 60, 90, 120]
    assert [e.data["to"] for e in handovers] == [I2, I1, I2, I1]
    assert check_chain([e.to_json() for e in entries]) == entries
    assert replay(SIGNED, entries) == state and state.phase is c.Phase.ENDED


def test_a_booth_held_by_someone_gone_after_a_restart_is_free() -> None:
    state = in_call(I1, I2).apply(c.GoLive(I1)).apply(c.Reset()).apply(c.Join(I2))
    assert state.live == {"ru": I1} and I1 not in state.admitted
    assert state.apply(c.GoLive(I2)).live == {"ru": I2}  # not stuck until the end


def test_a_handover_by_request_waits_for_the_partner() -> None:
    state = in_call(A, B, I1, I2, IE).apply(c.GoLive(I1))
    asked = state.apply(c.RequestHandover(I1, I2, 1000))
    assert asked.live == {"ru": I1} and asked.requests == {"ru": (I1, I2, 1000)}  # still live
    accepted = asked.apply(c.HandoverAnswer(I2, I1, True, 1000 + c.HANDOVER_ANSWER_MS))
    assert accepted.live == {"ru": I2} and accepted.requests == {}
    declined = asked.apply(c.HandoverAnswer(I2, I1, False, 2000))
    assert declined.live == {"ru": I1} and declined.requests == {}
    for event, code in [
            (c.HandoverAnswer(I2, I1, True, 1001 + c.HANDOVER_ANSWER_MS), "request-expired"),
            (c.HandoverAnswer(I1, I2, True, 2000), "no-request"),  # the asker cannot answer
            (c.RequestHandover(I2, I1, 2000), "not-live"),
            (c.RequestHandover(I1, IE, 2000), "not-partner")]:
        with pytest.raises(c.IllegalEvent) as err:
            asked.apply(event)
        assert err.value.code == code, event
    with pytest.raises(c.IllegalEvent) as err:  # answered once: nothing left to accept
        declined.apply(c.HandoverAnswer(I2, I1, True, 3000))
    assert err.value.code == "no-request"


@pytest.mark.parametrize("withdraw", [c.GoQuiet(I1), c.Handover(I1, I2), c.Leave(I1),
                                      c.Leave(I2), c.Reset()])
def test_a_change_in_the_booth_withdraws_the_request(withdraw: c.Event) -> None:
    asked = in_call(A, B, I1, I2).apply(c.GoLive(I1)).apply(c.RequestHandover(I1, I2, 0))
    assert asked.apply(withdraw).requests == {}


def test_request_accept_and_decline_are_recorded_and_replay() -> None:
    signed = W.signed(PLAN)
    state, head, entries = c.Call(PLAN), None, []
    steps: list[tuple[int, c.Event]] = [(0, c.Start(0)), *((0, c.Join(d)) for d in (I1, I2)),
                                        (0, c.GoLive(I1)), (10, c.RequestHandover(I1, I2, 10)),
                                        (20, c.HandoverAnswer(I2, I1, False, 20)),
                                        (30, c.RequestHandover(I1, I2, 30)),
                                        (40, c.HandoverAnswer(I2, I1, True, 40))]
    for at, event in steps:
        kind, data = describe(event)
        state, head = advance(state, head, at, kind, data, event)
        entries.append(head)
    assert [e.kind for e in entries[-4:]] == ["booth.request", "booth.decline", "booth.request",
                                              "booth.accept"]
    assert replay(signed, entries) == state and state.live == {"ru": I2}

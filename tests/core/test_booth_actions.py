"""Signed booth actions (core/booth.py): an endpoint believes the server's word on who is
live only where an interpreter of that booth signed it, newer than anything seen."""

from __future__ import annotations

from typing import Any

from summitline.core.booth import BoothLedger
from summitline.crypto import statements
from summitline.crypto.keys import PrivateKey
from tests.core.test_booth import I1, I2, PLAN, RU_PARTNER, W

CALL = PLAN.call


def act(key: PrivateKey, action: str, seq: int, to: str | None = None,
        channel: str = "ru") -> dict[str, Any]:
    signature = key.sign(statements.booth(CALL, PLAN.hash, channel, action, key.fingerprint,
                                          seq, 1000 + seq, to))
    return {"action": action, "from": key.fingerprint, "to": to, "seq": seq,
            "at": 1000 + seq, "signature": signature}


def test_a_signed_go_live_and_handover_are_believed() -> None:
    ledger = BoothLedger(CALL, PLAN)
    assert ledger.take({"ru": act(W.ru_interpreter, "live", 1)}) == []
    assert ledger.live({"ru": I1}) == ({"ru": I1}, [])
    assert ledger.take({"ru": act(W.ru_interpreter, "handover", 2, I2)}) == []
    assert ledger.live({"ru": I2}) == ({"ru": I2}, []) and ledger.next_seq("ru") == 3
    assert ledger.take({"ru": act(RU_PARTNER, "quiet", 3)}) == []
    assert ledger.live({}) == ({}, [])


def test_the_server_may_take_off_air_but_not_put_on() -> None:
    ledger = BoothLedger(CALL, PLAN)
    live, alarms = ledger.live({"ru": I1})  # nobody signed anything
    assert live == {} and "not believed" in alarms[0]
    ledger.take({"ru": act(W.ru_interpreter, "live", 1)})
    assert ledger.live({}) == ({}, [])  # it left: quiet, without a signature
    assert ledger.live({"ru": I2})[0] == {}  # but not its partner


def test_forged_actions_are_ignored() -> None:
    ledger = BoothLedger(CALL, PLAN)
    stranger = PrivateKey.generate()
    forged = {**act(stranger, "live", 1), "from": I1}  # the server's key, I1's name
    principal = act(W.us_principal, "live", 1)  # not an interpreter of the booth
    outside = act(W.ru_interpreter, "handover", 1, W.us_principal.fingerprint)
    other_channel = act(W.ru_interpreter, "live", 1, channel="en")
    for action, channel in ((forged, "ru"), (principal, "ru"), (outside, "ru"),
                            (other_channel, "en")):
        alarms = ledger.take({channel: action})
        assert len(alarms) == 1 and "ignored" in alarms[0], action
    assert ledger.holder == {} and ledger.seq == {}
    assert ledger.take({"ru": {**act(W.ru_interpreter, "live", 1), "seq": True}})  # malformed
    assert ledger.take({"xx": act(W.ru_interpreter, "live", 1)})  # no such channel


def test_an_old_action_replayed_is_stale() -> None:
    ledger = BoothLedger(CALL, PLAN)
    go_live = act(W.ru_interpreter, "live", 1)
    ledger.take({"ru": go_live})
    assert ledger.take({"ru": go_live}) == []  # the same action shown again: current
    ledger.take({"ru": act(W.ru_interpreter, "quiet", 2)})
    alarms = ledger.take({"ru": go_live})
    assert "replayed" in alarms[0] and ledger.live({"ru": I1})[0] == {}
    # the same sequence number with another action (two partners raced): not taken
    alarms = ledger.take({"ru": act(RU_PARTNER, "live", 2)})
    assert "replayed" in alarms[0] and ledger.holder["ru"] is None


def test_a_request_and_its_answer_say_who_stays_live() -> None:
    ledger = BoothLedger(CALL, PLAN)
    ledger.take({"ru": act(W.ru_interpreter, "live", 1)})
    assert ledger.take({"ru": act(W.ru_interpreter, "request", 2, I2)}) == []
    assert ledger.live({"ru": I1})[0] == {"ru": I1}  # asking is not handing over
    assert ledger.take({"ru": act(RU_PARTNER, "decline", 3, I1)}) == []
    assert ledger.live({"ru": I1})[0] == {"ru": I1}  # declined: the asker stays live
    ledger.take({"ru": act(W.ru_interpreter, "request", 4, I2)})
    assert ledger.asker("ru", I2) == I1 and ledger.asker("ru", I1) is None
    assert ledger.take({"ru": act(RU_PARTNER, "accept", 5, I1)}) == []
    assert ledger.live({"ru": I2})[0] == {"ru": I2} and ledger.live({"ru": I1})[0] == {}
    assert ledger.asker("ru", I2) is None  # answered
    # an answer or a request must name a partner of the booth, and only these name one
    for bad in (act(RU_PARTNER, "accept", 6, W.us_principal.fingerprint),
                act(RU_PARTNER, "request", 6, RU_PARTNER.fingerprint),
                {**act(RU_PARTNER, "decline", 6, I1), "to": None}):
        assert ledger.take({"ru": bad}), bad

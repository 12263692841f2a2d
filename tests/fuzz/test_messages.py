"""Every signaling message type, fuzzed (hypothesis): the parser returns a message or a
RemoteProtocolError with a stable code, and nothing else, whatever arrives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from summitline.core import messages as m

CODES = {"too-big", "malformed", "unknown-type", "invalid"}
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.text(max_size=200)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
FIELDS = ["version", "call", "device", "nonce", "signature", "to", "generation", "sdp",
          "candidate", "sdp_mid", "sdp_mline_index", "id", "peers"]


def plausible(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A message of ``kind`` with any subset of the known fields, of any JSON value,
    sometimes the right shape, plus sometimes an unknown field."""
    hexfp = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
    good = {"device": hexfp, "to": hexfp, "generation": st.integers(-5, 2**32),
            "signature": st.text(min_size=80, max_size=100), "nonce": st.text(min_size=16,
                                                                             max_size=64)}
    fields = {f: (good[f] | json_values) if f in good else json_values for f in FIELDS}
    return st.fixed_dictionaries({"type": st.just(kind)},
                                 optional={**fields, "extra": json_values})


def parse(raw: str | bytes) -> None:
    try:
        msg = m.parse_client(raw)
    except m.RemoteProtocolError as exc:
        assert exc.code in CODES and str(exc)
    else:
        assert msg.type in m.CLIENT_TYPES


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(m.CLIENT_TYPES + ("welcome", "", "offer ")).flatmap(plausible))
def test_every_message_type_with_any_fields(obj: dict[str, Any]) -> None:
    parse(json.dumps(obj))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=2000) | json_values.map(json.dumps))
def test_any_bytes_at_all(raw: str | bytes) -> None:
    parse(raw)


def test_a_message_over_the_limit_is_refused_before_parsing() -> None:
    raw = '{"type":"ping","pad":"' + "é" * (m.MAX_MESSAGE_BYTES // 2) + '"}'
    try:
        m.parse_client(raw)
    except m.RemoteProtocolError as exc:
        assert exc.code == "too-big"  # counted in bytes: é is two
    else:
        raise AssertionError("accepted an oversized message")

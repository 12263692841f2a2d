"""The OpenAPI document is part of the contract: every JSON answer of the REST API has a
typed model (server/views.py) that names its fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from summitline.server.app import Settings, create_app

# Answers that are not JSON objects of ours: files, SDP, media, and the protocol's own
# JSON Schemas (documented in docs/protocol.md §4).
NOT_VIEWS = {
    ("get", "/api/protocol"),
    ("get", "/api/delegations/{id}/events"),  # text/event-stream (server/events.py)
    ("get", "/api/calls/{call}/record/export"),
    ("get", "/api/calls/{call}/record/export.html"),
    ("get", "/api/calls/{call}/photos/{photo_id}.jpg"),
    ("get", "/api/pressroom/{call}/photos/{delegation}.jpg"),
    ("post", "/api/press/{call}/whep"),
    ("get", "/api/press/{call}/hls/{name}"),
}


def answers(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ok = next((op["responses"][code] for code in ("200", "201")
                       if code in op["responses"]), None)
            if ok is None:  # 204 only (a WHEP PATCH or DELETE): no body to type
                assert "204" in op["responses"], (method, path)
                continue
            out[(method, path)] = ok.get("content", {}).get("application/json", {}).get(
                "schema", {})
    return out


def test_every_json_answer_has_a_typed_model(tmp_path: Path) -> None:
    doc = create_app(Settings(data_dir=tmp_path)).openapi()
    untyped = [f"{m.upper()} {p}" for (m, p), schema in answers(doc).items()
               if (m, p) not in NOT_VIEWS
               and "$ref" not in schema and "$ref" not in schema.get("items", {})]
    assert untyped == []
    assert len(answers(doc)) > 25  # the routes are there at all


def test_the_models_name_their_fields_and_forbid_others(tmp_path: Path) -> None:
    schemas = create_app(Settings(data_dir=tmp_path)).openapi()["components"]["schemas"]
    call = schemas["CallView"]
    assert {"call", "phase", "press_deadline_ms", "connected", "health", "started_ms",
            "events"} <= set(call["properties"])
    assert call["additionalProperties"] is False
    seat = schemas["SeatRow"]["properties"]
    assert {"certificate", "revoked", "delegation"} <= set(seat)

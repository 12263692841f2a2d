"""The press's routes: viewer tokens (issued by an operator), watching over WebRTC in the
manner of WHEP (POST an SDP offer, get the answer; through Janus, get Janus's offer and
PATCH the answer), HLS for broadcasters, and the window's public state for the press page.

The press hold no keys: a token is a bearer secret the server checks, valid for a short
time and for one call; with it a viewer receives the programme while the window is open
and nothing else. Only the token's SHA-256 is stored.

The token travels only in ``Authorization: Bearer``, never in a URL: a URL lands in access
logs, proxies' logs and browser history. HLS players that cannot set a header (Safari's
native player) are not served: broadcasters' ingest (ffmpeg ``-headers``, hls.js
``xhrSetup``, VLC, GStreamer) can. A per-viewer path token would be a second bearer
secret in every log line, valid as long as the first, for no gain in what it protects.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import Field

from summitline.core.roles import Phase
from summitline.server import views as v
from summitline.server.api import Id, Sig, _Body, bad, hub, room_of, signed_control
from summitline.server.press.gateway import PressRefused

TOKEN_TTL_MS = 15 * 60 * 1000
TOKEN = r"^[A-Za-z0-9_-]{43}$"
VIEWER = r"^[A-Za-z0-9_-]{22}$"
SDP_TYPE = "Summitline-SDP-Type"  # "answer" (the gateway) or "offer" (Janus)


class TokenRequest(_Body):
    delegation: Id
    at: int
    signature: Sig
    ttl_s: Annotated[int, Field(ge=30, le=TOKEN_TTL_MS // 1000)] = TOKEN_TTL_MS // 1000


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def router() -> APIRouter:
    r = APIRouter(prefix="/api")

    @r.post("/calls/{call}/press/tokens", status_code=201, response_model=v.PressToken)
    async def issue_token(call: str, body: TokenRequest, request: Request) -> dict[str, Any]:
        """An operator issues a short-lived viewer token (signed control "press-token")."""
        h = hub(request)
        room, d = await signed_control(h, call, "press-token", body.delegation, body.at,
                                       body.signature, "the token request")
        now = h.clock()
        if room.signed.plan.press_window_s == 0:
            raise bad(409, "the plan of this call has no press window")
        token = secrets.token_urlsafe(32)
        expires = now + body.ttl_s * 1000
        await h.store.add_press_token(_hash(token), call, d.id, expires)
        static = h.press.static_hls
        return {"token": token, "expires_ms": expires,
                "press_page": f"/press.html#/press/{call}/{token}",
                "hls": f"/api/press/{call}/hls/index.m3u8",
                "hls_static": static.playlist(call) if static else None,
                "hls_key": static.key(call, expires) if static else None}

    async def check(request: Request, call: str, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        h = hub(request)
        row = await h.store.press_token(_hash(token)) if _valid(token) else None
        if row is None or row["call"] != call:
            raise bad(401, "no such press token for this call")
        if row["expires"] <= h.clock():
            raise bad(401, "the press token has expired; ask the press office for a new one")

    @r.get("/press/{call}", response_model=v.PressWindow)
    async def window(call: str, request: Request) -> dict[str, Any]:
        """What the press page shows: the title and whether the window is open. Only
        for a call whose plan has a press window (else 404, as for an unknown call)."""
        h = hub(request)
        room = await room_of(h, call)
        if room.signed.plan.press_window_s == 0:
            # a call without a press window has no press page: the same answer as for
            # an unknown call, so that this route tells nobody which calls exist
            raise bad(404, f"no call {call!r} on this server")
        phase = room.state.phase
        press = h.press.state(call)
        state = ("open" if phase is Phase.OPEN and press == "open" else
                 "waiting" if phase in (Phase.PLANNED, Phase.OPEN) else
                 "closed" if phase is Phase.CLOSED else "ended")
        return {"call": call, "title": room.signed.plan.title, "state": state,
                "delegations": [d.name for d in room.signed.plan.delegations],
                "press_deadline_ms": room.state.press_deadline_ms,
                "channels": list(room.signed.plan.press_channels)}

    @r.post("/press/{call}/whep", status_code=201,
            responses={201: {"content": {"application/sdp": {}}}})
    async def watch(call: str, request: Request,
                    authorization: Annotated[str, Header()] = "",
                    channel: Annotated[str | None, Query(max_length=16)] = None) -> Response:
        """A press viewer: POST an SDP offer (recvonly video VP8, audio Opus) with
        ``Authorization: Bearer TOKEN``; the answer comes back as application/sdp. With
        ``?channel=``, the audio is that interpretation channel (if the plan gives it to
        the press) over the floor, ducked."""
        await check(request, call, authorization)
        if request.headers.get("content-type", "").split(";")[0] != "application/sdp":
            raise bad(415, "send the offer as application/sdp")
        offer = (await request.body()).decode("utf-8", "replace")
        if len(offer) > 64 * 1024 or not offer.startswith("v=0"):
            raise bad(400, "the body is not an SDP offer")
        press = hub(request).press
        try:
            if press.janus is not None:
                # through Janus: its Streaming plugin offers, the viewer answers (PATCH)
                viewer, janus_offer = await press.offer(call, channel)
                return Response(janus_offer, status_code=201, media_type="application/sdp",
                                headers={"Location": f"/api/press/{call}/whep/{viewer}",
                                         SDP_TYPE: "offer"})
            _pc, answer = await press.watch(call, offer, channel)
        except PressRefused as exc:
            raise bad(exc.status, str(exc)) from None
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={SDP_TYPE: "answer"})

    @r.patch("/press/{call}/whep/{viewer}", status_code=204)
    async def answer(call: str, viewer: Annotated[str, Path(pattern=VIEWER)],
                     request: Request,
                     authorization: Annotated[str, Header()] = "") -> Response:
        """Through Janus: the viewer's answer (application/sdp) to the offer it got."""
        await check(request, call, authorization)
        if request.headers.get("content-type", "").split(";")[0] != "application/sdp":
            raise bad(415, "send the answer as application/sdp")
        sdp = (await request.body()).decode("utf-8", "replace")
        if len(sdp) > 64 * 1024 or not sdp.startswith("v=0"):
            raise bad(400, "the body is not an SDP answer")
        try:
            await hub(request).press.answer(call, viewer, sdp)
        except PressRefused as exc:
            raise bad(exc.status, str(exc)) from None
        return Response(status_code=204)

    @r.delete("/press/{call}/whep/{viewer}", status_code=204)
    async def hang_up(call: str, viewer: Annotated[str, Path(pattern=VIEWER)],
                      request: Request,
                      authorization: Annotated[str, Header()] = "") -> Response:
        """Through Janus: the viewer leaves."""
        await check(request, call, authorization)
        try:
            await hub(request).press.leave(call, viewer)
        except PressRefused as exc:
            raise bad(exc.status, str(exc)) from None
        return Response(status_code=204)

    @r.get("/press/{call}/hls/{name}")
    async def hls(call: str, name: str, request: Request,
                  authorization: Annotated[str, Header()] = "") -> FileResponse:
        """The HLS programme for broadcasters (H.264 + AAC), playlist and segments each
        with ``Authorization: Bearer TOKEN``; the playlist ends with the window."""
        await check(request, call, authorization)
        path = hub(request).press.hls_file(call, name)
        if path is None:
            raise bad(404, "no such file of this call's press programme")
        kind = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp2t"
        return FileResponse(path, media_type=kind, headers={"Cache-Control": "no-cache"})

    return r


def _valid(token: str) -> bool:
    return re.match(TOKEN, token) is not None
